//! Payments (pagamentos): outgoing Pix, pacs.008 — wire fields, rules and `pix_payments` columns.

use std::borrow::Cow;

use arrow::array::{ArrayRef, Decimal128Builder, StringBuilder};
use arrow::datatypes::Field;

use super::ahead::Ahead;
use super::codes::{Channel, Currency, InitiationType, KeyRule, PaymentStatus};
use super::columns::{self, ParticipantColumns, finish_into};
use super::documents::DocumentKind;
use super::event::{Ctx, Envelope, ROOT, end_to_end_id};
use super::fields::{Obj, object_spec};
use super::ids::is_alnum_id;
use super::keys::{PixKey, PixKeyType, check_key};
use super::participant::{self, Participant, Role};
use super::reserve::Reserve;
use super::rules::{HardRule, Rejection, SoftRule};

object_spec!(pub DATA = "data" {
    END_TO_END_ID = "end_to_end_id", TXID = "txid", AMOUNT = "amount", CURRENCY = "currency",
    INITIATION_TYPE = "initiation_type", STATUS = "status", REJECT_REASON = "reject_reason",
    PAYER = "payer" => super::participant::PAYER, PAYEE = "payee" => super::participant::PAYEE, PIX_KEY = "pix_key", PIX_KEY_TYPE = "pix_key_type",
    REMITTANCE_INFO = "remittance_info", CHANNEL = "channel", DEVICE_ID = "device_id",
});
use DATA as F;

/// Night-time limit for individuals (BCB, 20:00–06:00): R$ 1,000.00 in centavos.
pub const NIGHT_LIMIT_CENTS: i64 = 100_000;

/// A validated payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment<'a> {
    pub end_to_end_id: Cow<'a, str>,
    pub txid: Option<Cow<'a, str>>,
    /// Centavos.
    pub amount: i64,
    pub initiation_type: InitiationType,
    pub status: PaymentStatus,
    pub reject_reason: Option<Cow<'a, str>>,
    pub payer: Participant<'a>,
    pub payee: Participant<'a>,
    pub pix_key: Option<PixKey<'a>>,
    pub remittance_info: Option<Cow<'a, str>>,
    pub channel: Option<Channel>,
    pub device_id: Option<Cow<'a, str>>,
}

/// Reads and checks `data` of a payment.
pub fn parse<'a>(root: &mut Obj<'a>, env: &Envelope<'_>, ctx: &mut Ctx) -> Result<Payment<'a>, Rejection> {
    let mut d = root.req_object(ROOT::DATA, &DATA)?;
    ctx.rescue(&d);
    let flags = &mut ctx.flags;

    let end_to_end_id = end_to_end_id(&d, F::END_TO_END_ID, env, flags)?;

    let txid = txid(&d, F::TXID, flags)?;
    let amount = d.req_amount(F::AMOUNT, flags)?;
    let currency_text = d.req_str(F::CURRENCY, flags)?;
    if <Currency as super::codes::Code>::parse(&currency_text, flags).is_none() {
        return Err(d.reject(HardRule::InvalidCurrency, F::CURRENCY, "Pix settles in reais only; use BRL"));
    }
    let initiation_type = d.req_code::<InitiationType>(F::INITIATION_TYPE, flags)?;
    let status = d.req_code::<PaymentStatus>(F::STATUS, flags)?;
    let reject_reason = d.opt_str(F::REJECT_REASON, flags)?;
    match (&reject_reason, status) {
        (None, PaymentStatus::Rjct) => {
            return Err(d.reject(
                HardRule::MissingRejectReason,
                F::REJECT_REASON,
                "a rejected payment (RJCT) needs its ISO 20022 reason code, e.g. AM04",
            ));
        }
        (Some(r), _) if r.len() != 4 || !r.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) => {
            return Err(d.reject(
                HardRule::InvalidEnum,
                F::REJECT_REASON,
                "a reject reason is a 4-character ISO 20022 code such as AB03, AM04, FRAD",
            ));
        }
        (Some(_), PaymentStatus::Acsp | PaymentStatus::Acsc) => flags.insert(SoftRule::RejectReasonWithoutRjct),
        _ => {}
    }

    let payer = participant::read(&mut d, F::PAYER, Role::Payer, ctx)?;
    let payee = participant::read(&mut d, F::PAYEE, Role::Payee, ctx)?;
    let flags = &mut ctx.flags;

    let key_text = d.opt_str(F::PIX_KEY, flags)?;
    let pix_key = match (initiation_type.key_rule(), key_text) {
        (KeyRule::Forbidden, Some(_)) => {
            return Err(d.reject(
                HardRule::InitiationKeyMismatch,
                F::PIX_KEY,
                "a manual (MANU) payment is made to an account, not a key; drop pix_key or fix initiation_type",
            ));
        }
        (KeyRule::Required, None) => {
            return Err(d.reject(
                HardRule::MissingField,
                F::PIX_KEY,
                format!("a {} payment needs the Pix key it was sent to", initiation_type.code()),
            ));
        }
        (_, None) => None,
        (_, Some(key)) => {
            let kind = d.req_code::<PixKeyType>(F::PIX_KEY_TYPE, flags)?;
            Some(check_key(key, kind, flags).map_err(|m| d.reject(HardRule::InvalidPixKey, F::PIX_KEY, m))?)
        }
    };
    match (initiation_type.txid_lengths(), &txid) {
        (None, Some(_)) => {
            return Err(d.reject(
                HardRule::InvalidTxid,
                F::TXID,
                format!("a {} payment carries no txid", initiation_type.code()),
            ));
        }
        (Some(range), Some(t)) if !range.contains(&t.len()) => {
            return Err(d.reject(
                HardRule::InvalidTxid,
                F::TXID,
                format!(
                    "a {} payment's txid has {}–{} characters, this one has {}",
                    initiation_type.code(),
                    range.start(),
                    range.end(),
                    t.len()
                ),
            ));
        }
        (_, None) if initiation_type == InitiationType::Qrdn => {
            return Err(d.reject(
                HardRule::MissingField,
                F::TXID,
                "a dynamic QR code (QRDN) payment needs the charge's txid (26–35 characters)",
            ));
        }
        _ => {}
    }
    let remittance_info = d.opt_text(F::REMITTANCE_INFO, 140, flags)?;
    let channel = d.opt_code::<Channel>(F::CHANNEL, flags)?;
    let device_id = d.opt_text(F::DEVICE_ID, 64, flags)?;

    if payer.document.kind == DocumentKind::Cpf && amount > NIGHT_LIMIT_CENTS && !(6..20).contains(&env.local_hour) {
        flags.insert(SoftRule::NightLimitExceeded);
    }
    Ok(Payment {
        end_to_end_id,
        txid,
        amount,
        initiation_type,
        status,
        reject_reason,
        payer,
        payee,
        pix_key,
        remittance_info,
        channel,
        device_id,
    })
}

/// An optional txid: `***` (static QR without txid) becomes null, otherwise 1–35 alphanumerics.
pub fn txid<'a>(d: &Obj<'a>, f: usize, flags: &mut super::rules::Flags) -> Result<Option<Cow<'a, str>>, Rejection> {
    match d.opt_str(f, flags)? {
        Some(t) if t == "***" => {
            flags.insert(SoftRule::TxidPlaceholderNulled);
            Ok(None)
        }
        Some(t) if !is_alnum_id(&t, 35) => Err(d.reject(HardRule::InvalidTxid, f, "a txid is 1–35 letters and digits")),
        other => Ok(other),
    }
}

/// The `pix_payments` columns after the envelope.
pub fn fields() -> Vec<Field> {
    let mut v = vec![
        columns::utf8("end_to_end_id", false),
        columns::utf8("txid", true),
        columns::amount("amount"),
        columns::utf8("currency", false),
        columns::utf8("initiation_type", false),
        columns::utf8("status", false),
        columns::utf8("reject_reason", true),
    ];
    v.extend(ParticipantColumns::fields("payer"));
    v.extend(ParticipantColumns::fields("payee"));
    v.extend([
        columns::utf8("pix_key", true),
        columns::utf8("pix_key_type", true),
        columns::utf8("remittance_info", true),
        columns::utf8("channel", true),
        columns::utf8("device_id", true),
    ]);
    v
}

/// Column builders for [`fields`].
pub struct Columns {
    end_to_end_id: StringBuilder,
    txid: StringBuilder,
    amount: Decimal128Builder,
    currency: StringBuilder,
    initiation_type: StringBuilder,
    status: StringBuilder,
    reject_reason: StringBuilder,
    payer: ParticipantColumns,
    payee: ParticipantColumns,
    pix_key: StringBuilder,
    pix_key_type: StringBuilder,
    remittance_info: StringBuilder,
    channel: StringBuilder,
    device_id: StringBuilder,
}

impl Columns {
    /// Builders on `r`'s memory, in [`fields`] order.
    pub fn new(r: &mut Reserve) -> Self {
        Columns {
            end_to_end_id: r.utf8(32),
            txid: r.utf8(8),
            amount: columns::amount_builder(r),
            currency: r.utf8(3),
            initiation_type: r.utf8(4),
            status: r.utf8(4),
            reject_reason: r.utf8(0),
            payer: ParticipantColumns::new(r),
            payee: ParticipantColumns::new(r),
            pix_key: r.utf8(24),
            pix_key_type: r.utf8(5),
            remittance_info: r.utf8(8),
            channel: r.utf8(3),
            device_id: r.utf8(16),
        }
    }

    /// Appends one payment.
    pub fn append(&mut self, p: &Payment<'_>) {
        // Where this row goes, asked for before it is written (`pix::ahead`).
        self.end_to_end_id.ahead();
        self.txid.ahead();
        self.amount.ahead();
        self.currency.ahead();
        self.initiation_type.ahead();
        self.status.ahead();
        self.reject_reason.ahead();
        self.pix_key.ahead();
        self.pix_key_type.ahead();
        self.remittance_info.ahead();
        self.channel.ahead();
        self.device_id.ahead();
        self.end_to_end_id.append_value(&p.end_to_end_id);
        self.txid.append_option(p.txid.as_deref());
        self.amount.append_value(i128::from(p.amount));
        self.currency.append_value("BRL");
        self.initiation_type.append_value(p.initiation_type.code());
        self.status.append_value(p.status.code());
        self.reject_reason.append_option(p.reject_reason.as_deref());
        self.payer.append(&p.payer);
        self.payee.append(&p.payee);
        self.pix_key.append_option(p.pix_key.as_ref().map(|k| k.value.as_ref()));
        self.pix_key_type.append_option(p.pix_key.as_ref().map(|k| k.kind.as_str()));
        self.remittance_info.append_option(p.remittance_info.as_deref());
        self.channel.append_option(p.channel.map(Channel::code));
        self.device_id.append_option(p.device_id.as_deref());
    }

    /// Finishes the arrays, in [`fields`] order, into `out`.
    pub fn finish(&mut self, out: &mut Vec<ArrayRef>) {
        finish_into(out, &mut self.end_to_end_id);
        finish_into(out, &mut self.txid);
        finish_into(out, &mut self.amount);
        finish_into(out, &mut self.currency);
        finish_into(out, &mut self.initiation_type);
        finish_into(out, &mut self.status);
        finish_into(out, &mut self.reject_reason);
        self.payer.finish(out);
        self.payee.finish(out);
        finish_into(out, &mut self.pix_key);
        finish_into(out, &mut self.pix_key_type);
        finish_into(out, &mut self.remittance_info);
        finish_into(out, &mut self.channel);
        finish_into(out, &mut self.device_id);
    }
}
