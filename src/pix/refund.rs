//! Refunds (estornos / devoluções): pacs.004 returns, MED included — wire fields, rules and
//! `pix_refunds` columns.

use std::borrow::Cow;

use arrow::array::{ArrayRef, Decimal128Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::Field;

use super::ahead::Ahead;
use super::codes::{RefundDirection, RefundReason, RefundStatus};
use super::columns::{self, finish_into};
use super::event::{Ctx, Envelope, ROOT, check_skew};
use super::fields::{Obj, object_spec};
use super::ids::{check_transaction_id, is_alnum_id};
use super::reserve::Reserve;
use super::rules::{HardRule, Rejection, SoftRule};
use super::time::{DAY, MINUTE, Micros};

object_spec!(pub DATA = "data" {
    RETURN_ID = "return_id", ORIGINAL_END_TO_END_ID = "original_end_to_end_id",
    REFUND_REQUEST_ID = "refund_request_id", DIRECTION = "direction", AMOUNT = "amount",
    REASON_CODE = "reason_code", STATUS = "status", REQUESTED_AT = "requested_at",
    SETTLED_AT = "settled_at", DESCRIPTION = "description",
});
use DATA as F;

/// How long after a Pix the payer's bank may open a MED claim (80 days).
pub const MED_WINDOW: Micros = 80 * DAY;

/// A validated refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund<'a> {
    pub return_id: Cow<'a, str>,
    pub original_end_to_end_id: Cow<'a, str>,
    pub refund_request_id: Option<Cow<'a, str>>,
    pub direction: RefundDirection,
    /// Centavos.
    pub amount: i64,
    pub reason_code: RefundReason,
    pub status: RefundStatus,
    pub requested_at: Micros,
    pub settled_at: Option<Micros>,
    pub description: Option<Cow<'a, str>>,
}

/// Reads and checks `data` of a refund.
pub fn parse<'a>(root: &mut Obj<'a>, env: &Envelope<'_>, ctx: &mut Ctx) -> Result<Refund<'a>, Rejection> {
    let d = root.req_object(ROOT::DATA, &DATA)?;
    ctx.rescue(&d);
    let flags = &mut ctx.flags;

    let return_id = d.req_str(F::RETURN_ID, flags)?;
    let rtr =
        check_transaction_id(&return_id, b'D').map_err(|m| d.reject(HardRule::InvalidReturnId, F::RETURN_ID, m))?;
    check_skew(rtr.minute, env.event_time, flags);
    let original_end_to_end_id = d.req_str(F::ORIGINAL_END_TO_END_ID, flags)?;
    let original = check_transaction_id(&original_end_to_end_id, b'E')
        .map_err(|m| d.reject(HardRule::InvalidE2eId, F::ORIGINAL_END_TO_END_ID, m))?;
    let refund_request_id = d.opt_str(F::REFUND_REQUEST_ID, flags)?;
    if let Some(id) = &refund_request_id
        && !is_alnum_id(id, 35)
    {
        return Err(d.reject(
            HardRule::InvalidRefundRequestId,
            F::REFUND_REQUEST_ID,
            "a refund request id is 1–35 letters and digits",
        ));
    }
    let direction = d.req_code::<RefundDirection>(F::DIRECTION, flags)?;
    let amount = d.req_amount(F::AMOUNT, flags)?;
    let reason_code = d.req_code::<RefundReason>(F::REASON_CODE, flags)?;
    let status = d.req_code::<RefundStatus>(F::STATUS, flags)?;
    let requested_at = d.req_time(F::REQUESTED_AT, flags)?;
    let settled_at = d.opt_time(F::SETTLED_AT, flags)?;
    let description = d.opt_text(F::DESCRIPTION, 140, flags)?;

    // A return id is generated when the return is made: its minute cannot precede the
    // original Pix's minute.
    if rtr.minute < original.minute {
        return Err(d.reject(
            HardRule::InconsistentRefund,
            F::RETURN_ID,
            "the return id's date is before the original EndToEndId's: a Pix cannot be returned before it was made",
        ));
    }
    match (status, settled_at) {
        (RefundStatus::Devolvido, None) => {
            return Err(d.reject(HardRule::InconsistentRefund, F::SETTLED_AT, "a DEVOLVIDO refund needs settled_at"));
        }
        (RefundStatus::EmProcessamento | RefundStatus::NaoRealizado, Some(_)) => {
            return Err(d.reject(
                HardRule::InconsistentRefund,
                F::SETTLED_AT,
                format!("a refund with status {} has not settled: drop settled_at or fix status", status.code()),
            ));
        }
        (_, Some(s)) if s + MINUTE < requested_at => {
            return Err(d.reject(HardRule::InconsistentRefund, F::SETTLED_AT, "settled_at is before requested_at"));
        }
        _ => {}
    }
    if matches!(reason_code, RefundReason::Fr01 | RefundReason::Be08) && requested_at - original.minute > MED_WINDOW {
        flags.insert(SoftRule::MedWindowExceeded);
    }
    Ok(Refund {
        return_id,
        original_end_to_end_id,
        refund_request_id,
        direction,
        amount,
        reason_code,
        status,
        requested_at,
        settled_at,
        description,
    })
}

/// The `pix_refunds` columns after the envelope.
pub fn fields() -> Vec<Field> {
    vec![
        columns::utf8("return_id", false),
        columns::utf8("original_end_to_end_id", false),
        columns::utf8("refund_request_id", true),
        columns::utf8("direction", false),
        columns::amount("amount"),
        columns::utf8("reason_code", false),
        columns::utf8("status", false),
        columns::timestamp("requested_at", false),
        columns::timestamp("settled_at", true),
        columns::utf8("description", true),
    ]
}

/// Column builders for [`fields`].
pub struct Columns {
    return_id: StringBuilder,
    original_end_to_end_id: StringBuilder,
    refund_request_id: StringBuilder,
    direction: StringBuilder,
    amount: Decimal128Builder,
    reason_code: StringBuilder,
    status: StringBuilder,
    requested_at: TimestampMicrosecondBuilder,
    settled_at: TimestampMicrosecondBuilder,
    description: StringBuilder,
}

impl Columns {
    /// Builders on `r`'s memory, in [`fields`] order.
    pub fn new(r: &mut Reserve) -> Self {
        Columns {
            return_id: r.utf8(32),
            original_end_to_end_id: r.utf8(32),
            refund_request_id: r.utf8(16),
            direction: r.utf8(8),
            amount: columns::amount_builder(r),
            reason_code: r.utf8(4),
            status: r.utf8(12),
            requested_at: columns::timestamp_builder(r),
            settled_at: columns::timestamp_builder(r),
            description: r.utf8(8),
        }
    }

    /// Appends one refund.
    pub fn append(&mut self, r: &Refund<'_>) {
        // Where this row goes, asked for before it is written (`pix::ahead`).
        self.return_id.ahead();
        self.original_end_to_end_id.ahead();
        self.refund_request_id.ahead();
        self.direction.ahead();
        self.amount.ahead();
        self.reason_code.ahead();
        self.status.ahead();
        self.requested_at.ahead();
        self.settled_at.ahead();
        self.description.ahead();
        self.return_id.append_value(&r.return_id);
        self.original_end_to_end_id.append_value(&r.original_end_to_end_id);
        self.refund_request_id.append_option(r.refund_request_id.as_deref());
        self.direction.append_value(r.direction.code());
        self.amount.append_value(i128::from(r.amount));
        self.reason_code.append_value(r.reason_code.code());
        self.status.append_value(r.status.code());
        self.requested_at.append_value(r.requested_at);
        self.settled_at.append_option(r.settled_at);
        self.description.append_option(r.description.as_deref());
    }

    /// Finishes the arrays, in [`fields`] order, into `out`.
    pub fn finish(&mut self, out: &mut Vec<ArrayRef>) {
        finish_into(out, &mut self.return_id);
        finish_into(out, &mut self.original_end_to_end_id);
        finish_into(out, &mut self.refund_request_id);
        finish_into(out, &mut self.direction);
        finish_into(out, &mut self.amount);
        finish_into(out, &mut self.reason_code);
        finish_into(out, &mut self.status);
        finish_into(out, &mut self.requested_at);
        finish_into(out, &mut self.settled_at);
        finish_into(out, &mut self.description);
    }
}
