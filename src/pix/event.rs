//! The wire format v1 envelope and the decoder: Kafka message value → validated, normalized
//! [`Event`] or a [`Rejection`] with its hard rule.
//!
//! Checks run in a fixed order — size, JSON, `event_type` (and the topic's category), schema
//! version, `event_id`, `source`, `event_time`, then `data` field by field — and the first
//! violation is the one reported, so a record is rejected for one clear reason.

use std::borrow::Cow;

use super::fields::{Obj, object_spec};
use super::ids::{Uuid36, check_transaction_id};
use super::json::{Dynamic, JsonKind, RawObject, ScanError, Spec};
use super::rules::{Flags, HardRule, Rejection, SoftRule};
use super::time::{MINUTE, Micros, sao_paulo_date_hour};
use super::{payment, receipt, refund};

object_spec!(pub ROOT = "" {
    EVENT_ID = "event_id", EVENT_TYPE = "event_type", SCHEMA_VERSION = "schema_version",
    SOURCE = "source", EVENT_TIME = "event_time", DATA = "data",
});
use ROOT as F;

/// `data` is parsed in the same pass as the envelope when `event_type` precedes it.
static DATA_BY_EVENT_TYPE: Dynamic = Dynamic {
    field: ROOT::DATA,
    selector: ROOT::EVENT_TYPE,
    resolve: |event_type| {
        let category = Category::ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(event_type))?;
        Some(Category::data_spec(category))
    },
};

/// Default limit of a message value (SPEC: 1 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// How far in the future `event_time` may be before `FUTURE_EVENT_TIME` (clock skew allowance).
pub const FUTURE_TOLERANCE: Micros = 5 * MINUTE;

/// The category of an event: which topic it belongs on and which table it lands in.
///
/// Adding a category means one new module beside `payment.rs` and one variant here
/// (see `docs/extending.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Pagamentos: outgoing Pix (pacs.008).
    Payment,
    /// Recebimentos: incoming Pix, as a bank's API Pix webhook reports it.
    Receipt,
    /// Estornos / devoluções (pacs.004).
    Refund,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 3] = [Category::Payment, Category::Receipt, Category::Refund];

    /// The `event_type` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Payment => "payment",
            Category::Receipt => "receipt",
            Category::Refund => "refund",
        }
    }

    /// The category named by an `event_type` (exact spelling).
    pub fn from_event_type(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The spec of `data` for this category.
    pub fn data_spec(self) -> &'static Spec {
        match self {
            Category::Payment => &payment::DATA,
            Category::Receipt => &receipt::DATA,
            Category::Refund => &refund::DATA,
        }
    }

    /// The default topic (SPEC §1).
    pub fn default_topic(self) -> &'static str {
        match self {
            Category::Payment => "pix.payments",
            Category::Receipt => "pix.receipts",
            Category::Refund => "pix.refunds",
        }
    }

    /// The default table (SPEC §1).
    pub fn default_table(self) -> &'static str {
        match self {
            Category::Payment => "pix_payments",
            Category::Receipt => "pix_receipts",
            Category::Refund => "pix_refunds",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The envelope columns every category shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Lowercase UUID.
    pub event_id: Uuid36,
    /// Category from `event_type`.
    pub category: Category,
    /// Always 1 in wire format v1.
    pub schema_version: i32,
    /// Producer name.
    pub source: Cow<'a, str>,
    /// UTC microseconds.
    pub event_time: Micros,
    /// Days since epoch of `event_time` in America/Sao_Paulo (the partition column).
    pub event_date: i32,
    /// Local hour of `event_time` in America/Sao_Paulo (for the night-time limit).
    pub local_hour: u32,
}

/// The category-specific part of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventData<'a> {
    Payment(payment::Payment<'a>),
    Receipt(receipt::Receipt<'a>),
    Refund(refund::Refund<'a>),
}

/// A validated, normalized event; strings borrow from the message value where normalization left
/// them unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// Shared columns.
    pub envelope: Envelope<'a>,
    /// Category columns.
    pub data: EventData<'a>,
    /// Soft rules applied.
    pub flags: Flags,
    /// Unknown fields as a JSON object (`_rescued_data`), `None` when there were none.
    pub rescued: Option<String>,
}

/// What validation of one record produced.
pub type Verdict<'a> = Result<Event<'a>, Rejection>;

/// Mutable state of one record's validation: soft flags and rescued fields.
pub struct Ctx {
    /// Soft rules applied so far.
    pub flags: Flags,
    /// Rescued fields so far, as the inside of a JSON object (empty: none).
    pub rescued: String,
    /// Processing time, for `FUTURE_EVENT_TIME`.
    pub now: Micros,
}

impl Ctx {
    /// Keeps an object's unknown fields.
    pub fn rescue(&mut self, obj: &Obj<'_>) {
        obj.rescue_into(&mut self.rescued);
    }
}

/// Decodes and validates message values. Holds only settings: share it freely.
#[derive(Clone, Debug)]
pub struct Decoder {
    max_message_bytes: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

impl Decoder {
    /// A decoder refusing values above `max_message_bytes` (`OVERSIZED_MESSAGE`).
    pub fn new(max_message_bytes: usize) -> Self {
        Decoder { max_message_bytes }
    }

    /// The size limit.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Validates one message value. `expected` is the category of the topic it was published to
    /// (`None`: take it from `event_type`); `now` is the processing time.
    pub fn decode<'a>(&self, value: Option<&'a [u8]>, expected: Option<Category>, now: Micros) -> Verdict<'a> {
        let bytes = value.ok_or_else(|| {
            Rejection::new(HardRule::MalformedJson, "", "the message has no value (null or tombstone)")
        })?;
        if bytes.len() > self.max_message_bytes {
            return Err(Rejection::new(
                HardRule::OversizedMessage,
                "",
                format!(
                    "{} bytes, more than the {} allowed (validation.max_message_bytes)",
                    bytes.len(),
                    self.max_message_bytes
                ),
            ));
        }
        let root = RawObject::parse_message(bytes, &ROOT, Some(&DATA_BY_EVENT_TYPE)).map_err(|e| match e {
            ScanError::Malformed(m) => Rejection::new(HardRule::MalformedJson, "", format!("not UTF-8 JSON: {m}")),
            ScanError::NotAnObject(kind) => {
                Rejection::new(HardRule::MalformedJson, "", format!("expected a JSON object, found {kind}"))
            }
        })?;
        let mut root = Obj::new(root)?;
        let mut ctx = Ctx { flags: Flags::empty(), rescued: String::new(), now };
        ctx.rescue(&root);
        let envelope = envelope(&root, expected, &mut ctx)?;
        let data = match envelope.category {
            Category::Payment => EventData::Payment(payment::parse(&mut root, &envelope, &mut ctx)?),
            Category::Receipt => EventData::Receipt(receipt::parse(&mut root, &envelope, &mut ctx)?),
            Category::Refund => EventData::Refund(refund::parse(&mut root, &envelope, &mut ctx)?),
        };
        let rescued = if ctx.rescued.is_empty() {
            None
        } else {
            ctx.flags.insert(SoftRule::RescuedData);
            ctx.rescued.push('}');
            Some(ctx.rescued)
        };
        Ok(Event { envelope, data, flags: ctx.flags, rescued })
    }
}

fn envelope<'a>(o: &Obj<'a>, expected: Option<Category>, ctx: &mut Ctx) -> Result<Envelope<'a>, Rejection> {
    let flags = &mut ctx.flags;
    let event_type = o.req_str(F::EVENT_TYPE, flags)?;
    let category = match Category::from_event_type(&event_type) {
        Some(c) => c,
        None => {
            let c =
                Category::ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(&event_type)).ok_or_else(|| {
                    o.reject(
                        HardRule::UnknownEventType,
                        F::EVENT_TYPE,
                        "not a known event type; use payment, receipt or refund",
                    )
                })?;
            flags.insert(SoftRule::EnumCaseNormalized);
            c
        }
    };
    if let Some(expected) = expected
        && expected != category
    {
        return Err(o.reject(
            HardRule::TopicMismatch,
            F::EVENT_TYPE,
            format!("a {category} event was published to the topic of {expected} events; publish it to its own topic"),
        ));
    }
    let schema_version = schema_version(o, flags)?;
    let id_text = o.req_str(F::EVENT_ID, flags)?;
    let (event_id, lowered) = Uuid36::parse(&id_text)
        .ok_or_else(|| o.reject(HardRule::InvalidEventId, F::EVENT_ID, "not a UUID (8-4-4-4-12 hexadecimal digits)"))?;
    if lowered {
        flags.insert(SoftRule::EventIdLowercased);
    }
    let source = o.req_str(F::SOURCE, flags)?;
    let n = if source.len() > 64 { source.chars().count() } else { 0 };
    if n > 64 {
        return Err(o.reject(HardRule::InvalidLength, F::SOURCE, format!("{n} characters, at most 64 allowed")));
    }
    let event_time = o.req_time(F::EVENT_TIME, flags)?;
    if event_time > ctx.now + FUTURE_TOLERANCE {
        flags.insert(SoftRule::FutureEventTime);
    }
    let (event_date, local_hour) = sao_paulo_date_hour(event_time);
    Ok(Envelope { event_id, category, schema_version, source, event_time, event_date, local_hour })
}

fn schema_version(o: &Obj<'_>, flags: &mut Flags) -> Result<i32, Rejection> {
    let unsupported = |v: &str| {
        o.reject(
            HardRule::UnsupportedSchemaVersion,
            F::SCHEMA_VERSION,
            format!("version {v} is not supported; this pixlake reads wire format version 1"),
        )
    };
    match o.kind(F::SCHEMA_VERSION) {
        None => Err(o.reject(HardRule::MissingField, F::SCHEMA_VERSION, "required field is missing, null or empty")),
        Some(JsonKind::Number) => {
            let text = o.raw(F::SCHEMA_VERSION).map(|r| r.get()).unwrap_or_default();
            if !text.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
                return Err(o.reject(
                    HardRule::WrongType,
                    F::SCHEMA_VERSION,
                    "expected the integer 1, found a fractional number",
                ));
            }
            if text == "1" { Ok(1) } else { Err(unsupported(text)) }
        }
        Some(JsonKind::String) => {
            let s = o.req_str(F::SCHEMA_VERSION, flags)?;
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(o.reject(
                    HardRule::WrongType,
                    F::SCHEMA_VERSION,
                    "expected the integer 1, found a non-numeric string",
                ));
            }
            if s == "1" {
                flags.insert(SoftRule::SchemaVersionCoerced);
                Ok(1)
            } else {
                Err(unsupported(&s))
            }
        }
        Some(kind) => {
            Err(o.reject(HardRule::WrongType, F::SCHEMA_VERSION, format!("expected the integer 1, found {kind}")))
        }
    }
}

/// A required EndToEndId at field `f` of `d`, checked, with `E2E_TIME_SKEW` against the envelope.
pub fn end_to_end_id<'a>(
    d: &Obj<'a>,
    f: usize,
    env: &Envelope<'_>,
    flags: &mut Flags,
) -> Result<Cow<'a, str>, Rejection> {
    let id = d.req_str(f, flags)?;
    let info = check_transaction_id(&id, b'E').map_err(|m| d.reject(HardRule::InvalidE2eId, f, m))?;
    check_skew(info.minute, env.event_time, flags);
    Ok(id)
}

/// `E2E_TIME_SKEW`: a transaction id's minute more than 12 h away from `event_time`.
pub fn check_skew(id_minute: Micros, event_time: Micros, flags: &mut Flags) {
    if (id_minute - event_time).abs() > 12 * 60 * MINUTE {
        flags.insert(SoftRule::E2eTimeSkew);
    }
}
