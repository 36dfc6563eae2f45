//! Deliberately bad records: one corruption per hard rule, each breaking exactly that rule on an
//! otherwise valid event, and "messy" but valid spellings that exercise the soft rules.
//!
//! The validator checks fields in a fixed order and reports the first violation, so each
//! corruption touches only the field its rule is about; a unit test decodes thousands of them
//! and checks that the rule reported is the rule intended.

use rand::RngExt;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::people::{cnpj, cpf, splitmix};
use super::wire::{WireData, WireEvent, WireParty};
use crate::pix::Category;
use crate::pix::rules::HardRule;

/// Oversized records are large (≥ 1 MiB each): one in this many invalid records.
const OVERSIZED_EVERY: usize = 200;

/// The order invalid records cycle through: every hard rule but `OVERSIZED_MESSAGE` shuffled,
/// repeated, with `OVERSIZED_MESSAGE` once per [`OVERSIZED_EVERY`] slots.
pub fn plan(rng: &mut ChaCha8Rng) -> Vec<HardRule> {
    let mut others: Vec<HardRule> =
        HardRule::ALL.iter().copied().filter(|r| *r != HardRule::OversizedMessage && !r.source_only()).collect();
    let mut plan = Vec::with_capacity(OVERSIZED_EVERY);
    // The first cycle covers every rule early, so even a small run sees them all.
    others.shuffle(rng);
    plan.extend(others.iter().copied());
    plan.push(HardRule::OversizedMessage);
    while plan.len() < OVERSIZED_EVERY {
        others.shuffle(rng);
        plan.extend(others.iter().copied().take(OVERSIZED_EVERY - plan.len()));
    }
    plan
}

/// The category a corruption needs, if it is specific to one.
pub fn category_for(rule: HardRule) -> Option<Category> {
    use HardRule::*;
    match rule {
        InvalidReturnId | InvalidRefundRequestId | InconsistentRefund => Some(Category::Refund),
        InvalidCurrency
        | MissingRejectReason
        | InitiationKeyMismatch
        | InvalidEnum
        | InvalidCpf
        | InvalidCnpj
        | InvalidPixKey
        | InvalidAccount
        | InvalidIspb => Some(Category::Payment),
        InvalidTxid => Some(Category::Receipt),
        _ => None,
    }
}

fn payment(e: &mut WireEvent) -> Option<&mut super::wire::WirePayment> {
    match &mut e.data {
        WireData::Payment(p) => Some(p),
        _ => None,
    }
}

fn refund(e: &mut WireEvent) -> Option<&mut super::wire::WireRefund> {
    match &mut e.data {
        WireData::Refund(r) => Some(r),
        _ => None,
    }
}

fn other_category(c: Category, r: u64) -> Category {
    let others: Vec<Category> = Category::ALL.into_iter().filter(|x| *x != c).collect();
    others[(r % others.len() as u64) as usize]
}

/// Breaks `rule` in the event's fields. Returns the category to publish to when the rule is about
/// the topic (`TOPIC_MISMATCH`). Rules broken at the byte level are left to [`apply_bytes`].
pub fn apply(rng: &mut ChaCha8Rng, rule: HardRule, e: &mut WireEvent) -> Option<Category> {
    use HardRule::*;
    let r: u64 = rng.random();
    let category = Category::from_event_type(&e.event_type).unwrap_or(Category::Payment);
    match rule {
        MissingField => e.source = None,
        WrongType => match r % 3 {
            0 => e.schema_version = Value::Bool(true),
            1 => e.event_time = String::new(), // replaced below by a number
            _ => set_amount(e, serde_json::json!({"valor": "10.00"})),
        },
        UnknownEventType => e.event_type = ["chargeback", "pix_cobranca", "transfer", ""][(r % 3) as usize].into(),
        TopicMismatch => return Some(other_category(category, r)),
        UnsupportedSchemaVersion => {
            e.schema_version = if r.is_multiple_of(2) { Value::from(2) } else { Value::String("0".into()) }
        }
        InvalidEventId => {
            e.event_id = ["evt-42", "3f2504e04f8911d39a0c0305e82c3301", "3f2504e0-4f89-11d3-9a0c-0305e82c33g1"]
                [(r % 3) as usize]
                .into()
        }
        InvalidLength => e.source = Some("x".repeat(65 + (r % 40) as usize)),
        InvalidTimestamp => {
            e.event_time =
                ["2026-11-20T10:00:00", "2026-02-30T10:00:00Z", "20/11/2026 10:00", "2026-11-20T24:00:00-03:00"]
                    [(r % 4) as usize]
                    .into()
        }
        InvalidE2eId => {
            let bad = |id: &mut String| {
                // February 30th: passes the regex, fails the calendar; or one character short.
                if r.is_multiple_of(2) {
                    id.replace_range(13..17, "0230");
                } else {
                    id.pop();
                }
            };
            match &mut e.data {
                WireData::Payment(p) => bad(&mut p.end_to_end_id),
                WireData::Receipt(x) => bad(&mut x.end_to_end_id),
                WireData::Refund(x) => bad(&mut x.original_end_to_end_id),
            }
        }
        InvalidReturnId => {
            if let Some(x) = refund(e) {
                if r.is_multiple_of(2) {
                    x.return_id.replace_range(0..1, "E");
                } else {
                    x.return_id.replace_range(13..15, "13");
                }
            }
        }
        InvalidTxid => {
            if let WireData::Receipt(x) = &mut e.data {
                x.txid = Some(["abc-123", "txid com espaço", &"A".repeat(36)][(r % 3) as usize].to_string());
            }
        }
        InvalidRefundRequestId => {
            if let Some(x) = refund(e) {
                x.refund_request_id = Some(["req#1", "D-123", &"9".repeat(36)][(r % 3) as usize].to_string());
            }
        }
        InvalidAmount => set_amount(
            e,
            Value::String(["0.00", "1e3", "10.001", "-5", "12345678901.00", "12,50"][(r % 6) as usize].into()),
        ),
        InvalidCurrency => {
            if let Some(p) = payment(e) {
                p.currency = ["USD", "EUR", "R$"][(r % 3) as usize].into();
            }
        }
        InvalidIspb => {
            if let Some(p) = payment(e) {
                p.payee.ispb = Value::String(["00038166", "ABC", "1234567890", "nu-bank1"][(r % 4) as usize].into());
            }
        }
        InvalidAccount => {
            if let Some(p) = payment(e) {
                if r.is_multiple_of(2) {
                    p.payer.branch = Some("12345".into());
                } else {
                    p.payee.account = Some("12345-6".into());
                }
            }
        }
        InvalidCpf => {
            if let Some(p) = payment(e) {
                p.payer.document = Some(match r % 3 {
                    0 => "11111111111".into(),
                    1 => {
                        let mut c = cpf(splitmix(r));
                        let last = c.pop().map_or(b'0', |d| d as u8);
                        c.push((b'0' + (last - b'0' + 1) % 10) as char);
                        c
                    }
                    _ => "529.982.247-2".into(),
                });
            }
        }
        InvalidCnpj => {
            if let Some(p) = payment(e) {
                let mut c = cnpj(splitmix(r), r.is_multiple_of(2));
                let last = c.pop().map_or(b'0', |d| d as u8);
                c.push((b'0' + (last - b'0' + 1) % 10) as char);
                p.payee.document = Some(c);
            }
        }
        InvalidPixKey => {
            if let Some(p) = payment(e) {
                ensure_key(p);
                let (key, kind) =
                    [("fulano@", "EMAIL"), ("+5511998765432", "CPF"), ("123", "PHONE"), ("not-a-uuid", "EVP")]
                        [(r % 4) as usize];
                p.pix_key = Some(key.into());
                p.pix_key_type = Some(kind.into());
            }
        }
        InvalidEnum => {
            if let Some(p) = payment(e) {
                match r % 3 {
                    0 => p.status = "SETTLED".into(),
                    1 => p.initiation_type = "PIX".into(),
                    _ => p.channel = Some("SMS".into()),
                }
            }
        }
        MissingRejectReason => {
            if let Some(p) = payment(e) {
                p.status = "RJCT".into();
                p.reject_reason = None;
            }
        }
        InitiationKeyMismatch => {
            if let Some(p) = payment(e) {
                ensure_key(p);
                p.initiation_type = "MANU".into();
                p.txid = None;
            }
        }
        InconsistentRefund => {
            if let Some(x) = refund(e) {
                if r.is_multiple_of(2) {
                    x.status = "DEVOLVIDO".into();
                    x.settled_at = None;
                } else {
                    x.status = "EM_PROCESSAMENTO".into();
                    x.settled_at = Some(x.requested_at.clone());
                }
            }
        }
        OversizedMessage | MalformedJson | DuplicateField => {}
        // Applied by a source, never by ingest: not in the plan.
        MalformedXml | UnmatchedStatusReport => {}
    }
    None
}

fn set_amount(e: &mut WireEvent, v: Value) {
    match &mut e.data {
        WireData::Payment(p) => p.amount = v,
        WireData::Receipt(x) => x.amount = v,
        WireData::Refund(x) => x.amount = v,
    }
}

/// Makes a payment one that carries a key (a DICT payment to a valid EVP key).
fn ensure_key(p: &mut super::wire::WirePayment) {
    if p.pix_key.is_none() {
        p.initiation_type = "DICT".into();
        p.txid = None;
        p.pix_key = Some("123e4567-e89b-42d3-a456-426614174000".into());
        p.pix_key_type = Some("EVP".into());
    }
}

/// Breaks the rules that live below the JSON structure, on the serialized bytes. Never adds a
/// newline, so a JSON-lines file keeps one record per line.
pub fn apply_bytes(rng: &mut ChaCha8Rng, rule: HardRule, value: &mut Vec<u8>, max_message_bytes: usize) {
    let r: u64 = rng.random();
    match rule {
        HardRule::OversizedMessage => {
            // An unknown field padding the value just past the limit.
            let pad = max_message_bytes + 1 + (r % 64) as usize;
            let mut field = b"\"attachment\":\"".to_vec();
            field.resize(field.len() + pad, b'A');
            field.extend_from_slice(b"\",");
            value.splice(1..1, field);
        }
        HardRule::MalformedJson => match r % 4 {
            0 => value.truncate(value.len() / 2),
            1 => {
                // Latin-1 bytes where UTF-8 is required, as a misconfigured producer sends them.
                if let Some(i) = value.windows(2).position(|w| w == b"\"s") {
                    value.splice(i + 1..i + 1, [0xe7, 0xe3]);
                } else {
                    value.insert(1, 0xff);
                }
            }
            2 => {
                value.insert(0, b'[');
                value.push(b']');
            }
            _ => *value = b"ERROR 500: upstream timeout".to_vec(),
        },
        HardRule::DuplicateField => {
            value.splice(1..1, b"\"source\":\"replay\",".iter().copied());
        }
        HardRule::WrongType => {
            // The event_time variant: an epoch number instead of a string.
            if let Some(i) = find(value, b"\"event_time\":\"\"") {
                value.splice(i + 13..i + 15, b"1763640000".iter().copied());
            }
        }
        _ => {}
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Valid but untidy spellings, as real producers send them; each triggers a soft rule.
pub fn messy(rng: &mut ChaCha8Rng, e: &mut WireEvent) {
    let r: u64 = rng.random();
    match r % 10 {
        0 => e.event_id = e.event_id.to_uppercase(),
        1 => e.schema_version = Value::String("1".into()),
        2 => e.source = e.source.take().map(|s| format!(" {s} ")),
        3 => {
            if let Some(p) = party(e) {
                p.document = p.document.as_deref().map(punctuate);
            }
        }
        4 => {
            if let WireData::Payment(p) = &mut e.data {
                p.status = p.status.to_lowercase();
            }
        }
        5 => {
            let cents: i64 = amount_cents(e).unwrap_or(100);
            set_amount(e, serde_json::json!(cents as f64 / 100.0));
        }
        6 => {
            if let Some(p) = party(e)
                && let Some(Value::String(s)) = Some(&p.ispb)
                && s.starts_with('0')
                && s.bytes().all(|c| c.is_ascii_digit())
            {
                let n: u64 = s.parse().unwrap_or(0);
                p.ispb = Value::from(n);
            }
        }
        7 => {
            if let Some(p) = party(e)
                && p.account_type.as_deref() == Some("CACC")
            {
                p.account_type = Some("CORRENTE".into());
            }
        }
        8 => {
            // Keys as people type them.
            let key = match &mut e.data {
                WireData::Payment(p) => p.pix_key.as_mut().zip(p.pix_key_type.as_deref()),
                WireData::Receipt(x) => Some((&mut x.pix_key, x.pix_key_type.as_deref().unwrap_or(""))),
                WireData::Refund(_) => None,
            };
            if let Some((key, kind)) = key {
                match kind {
                    "PHONE" if key.len() == 14 => *key = format!("({}) {}-{}", &key[3..5], &key[5..10], &key[10..]),
                    "EMAIL" => *key = key.to_uppercase(),
                    "EVP" => *key = key.to_uppercase(),
                    "CPF" | "CNPJ" => *key = punctuate(key),
                    _ => {}
                }
            }
        }
        _ => {
            if r & 0x100 == 0 {
                // A field wire format v1 does not define, from a newer producer: rescued.
                e.trace_id = Some(format!("{:032x}", u128::from(r) << 64 | u128::from(r.rotate_left(17))));
            } else {
                // `Payment` instead of `payment`.
                let mut c = e.event_type.chars();
                if let Some(f) = c.next() {
                    e.event_type = f.to_uppercase().chain(c).collect();
                }
            }
        }
    }
}

fn party(e: &mut WireEvent) -> Option<&mut WireParty> {
    match &mut e.data {
        WireData::Payment(p) => Some(&mut p.payer),
        WireData::Receipt(x) => Some(&mut x.payee),
        WireData::Refund(_) => None,
    }
}

fn amount_cents(e: &WireEvent) -> Option<i64> {
    let v = match &e.data {
        WireData::Payment(p) => &p.amount,
        WireData::Receipt(x) => &x.amount,
        WireData::Refund(x) => &x.amount,
    };
    crate::pix::amount::parse_decimal_str(v.as_str()?).ok()
}

/// `52998224725` → `529.982.247-25`; `18236120000158` → `18.236.120/0001-58`.
pub fn punctuate(doc: &str) -> String {
    match doc.len() {
        11 => format!("{}.{}.{}-{}", &doc[0..3], &doc[3..6], &doc[6..9], &doc[9..]),
        14 => format!("{}.{}.{}/{}-{}", &doc[0..2], &doc[2..5], &doc[5..8], &doc[8..12], &doc[12..]),
        _ => doc.to_owned(),
    }
}
