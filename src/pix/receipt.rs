//! Receipts (recebimentos): incoming Pix as a bank's API Pix webhook reports it — wire fields,
//! rules and `pix_receipts` columns.

use std::borrow::Cow;

use arrow::array::{ArrayRef, Decimal128Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::Field;

use super::ahead::Ahead;
use super::columns::{self, ParticipantColumns, finish_into};
use super::event::{Ctx, Envelope, ROOT, end_to_end_id};
use super::fields::{Obj, object_spec};
use super::keys::{PixKey, PixKeyType, check_key, infer_key_type};
use super::participant::{self, Participant, Role};
use super::payment::txid;
use super::reserve::Reserve;
use super::rules::{HardRule, Rejection, SoftRule};
use super::time::Micros;

object_spec!(pub DATA = "data" {
    END_TO_END_ID = "end_to_end_id", TXID = "txid", AMOUNT = "amount", PIX_KEY = "pix_key",
    PIX_KEY_TYPE = "pix_key_type", PAYER = "payer" => super::participant::PAYER, PAYEE = "payee" => super::participant::PAYEE, PAYER_INFO = "payer_info",
    RECEIVED_AT = "received_at",
});
use DATA as F;

/// A validated receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt<'a> {
    pub end_to_end_id: Cow<'a, str>,
    pub txid: Option<Cow<'a, str>>,
    /// Centavos.
    pub amount: i64,
    pub pix_key: PixKey<'a>,
    pub payer: Participant<'a>,
    pub payee: Participant<'a>,
    pub payer_info: Option<Cow<'a, str>>,
    /// UTC microseconds (`horario` in API Pix).
    pub received_at: Micros,
}

/// Reads and checks `data` of a receipt.
pub fn parse<'a>(root: &mut Obj<'a>, env: &Envelope<'_>, ctx: &mut Ctx) -> Result<Receipt<'a>, Rejection> {
    let mut d = root.req_object(ROOT::DATA, &DATA)?;
    ctx.rescue(&d);
    let flags = &mut ctx.flags;

    let end_to_end_id = end_to_end_id(&d, F::END_TO_END_ID, env, flags)?;
    let txid = txid(&d, F::TXID, flags)?;
    let amount = d.req_amount(F::AMOUNT, flags)?;
    let key = d.req_str(F::PIX_KEY, flags)?;
    let kind = match d.opt_code::<PixKeyType>(F::PIX_KEY_TYPE, flags)? {
        Some(k) => k,
        None => {
            let k = infer_key_type(&key).ok_or_else(|| {
                d.reject(
                    HardRule::InvalidPixKey,
                    F::PIX_KEY,
                    "the key's type cannot be inferred (not a CPF, CNPJ, e-mail, phone or EVP); send pix_key_type",
                )
            })?;
            flags.insert(SoftRule::PixKeyTypeInferred);
            k
        }
    };
    let pix_key = check_key(key, kind, flags).map_err(|m| d.reject(HardRule::InvalidPixKey, F::PIX_KEY, m))?;

    let payer = participant::read(&mut d, F::PAYER, Role::Payer, ctx)?;
    let payee = participant::read(&mut d, F::PAYEE, Role::Payee, ctx)?;
    let flags = &mut ctx.flags;

    let payer_info = d.opt_text(F::PAYER_INFO, 140, flags)?;
    let received_at = d.req_time(F::RECEIVED_AT, flags)?;
    Ok(Receipt { end_to_end_id, txid, amount, pix_key, payer, payee, payer_info, received_at })
}

/// The `pix_receipts` columns after the envelope.
pub fn fields() -> Vec<Field> {
    let mut v = vec![
        columns::utf8("end_to_end_id", false),
        columns::utf8("txid", true),
        columns::amount("amount"),
        columns::utf8("pix_key", false),
        columns::utf8("pix_key_type", false),
    ];
    v.extend(ParticipantColumns::fields("payer"));
    v.extend(ParticipantColumns::fields("payee"));
    v.extend([columns::utf8("payer_info", true), columns::timestamp("received_at", false)]);
    v
}

/// Column builders for [`fields`].
pub struct Columns {
    end_to_end_id: StringBuilder,
    txid: StringBuilder,
    amount: Decimal128Builder,
    pix_key: StringBuilder,
    pix_key_type: StringBuilder,
    payer: ParticipantColumns,
    payee: ParticipantColumns,
    payer_info: StringBuilder,
    received_at: TimestampMicrosecondBuilder,
}

impl Columns {
    /// Builders on `r`'s memory, in [`fields`] order.
    pub fn new(r: &mut Reserve) -> Self {
        Columns {
            end_to_end_id: r.utf8(32),
            txid: r.utf8(16),
            amount: columns::amount_builder(r),
            pix_key: r.utf8(24),
            pix_key_type: r.utf8(5),
            payer: ParticipantColumns::new(r),
            payee: ParticipantColumns::new(r),
            payer_info: r.utf8(8),
            received_at: columns::timestamp_builder(r),
        }
    }

    /// Appends one receipt.
    pub fn append(&mut self, r: &Receipt<'_>) {
        // Where this row goes, asked for before it is written (`pix::ahead`).
        self.end_to_end_id.ahead();
        self.txid.ahead();
        self.amount.ahead();
        self.pix_key.ahead();
        self.pix_key_type.ahead();
        self.payer_info.ahead();
        self.received_at.ahead();
        self.end_to_end_id.append_value(&r.end_to_end_id);
        self.txid.append_option(r.txid.as_deref());
        self.amount.append_value(i128::from(r.amount));
        self.pix_key.append_value(&r.pix_key.value);
        self.pix_key_type.append_value(r.pix_key.kind.as_str());
        self.payer.append(&r.payer);
        self.payee.append(&r.payee);
        self.payer_info.append_option(r.payer_info.as_deref());
        self.received_at.append_value(r.received_at);
    }

    /// Finishes the arrays, in [`fields`] order, into `out`.
    pub fn finish(&mut self, out: &mut Vec<ArrayRef>) {
        finish_into(out, &mut self.end_to_end_id);
        finish_into(out, &mut self.txid);
        finish_into(out, &mut self.amount);
        finish_into(out, &mut self.pix_key);
        finish_into(out, &mut self.pix_key_type);
        self.payer.finish(out);
        self.payee.finish(out);
        finish_into(out, &mut self.payer_info);
        finish_into(out, &mut self.received_at);
    }
}
