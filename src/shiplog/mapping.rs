//! A core-banking log line (one JSON object) mapped to a wire-format v1 event by the field
//! mapping of `ship_log.mapping`. Pure: no I/O.
//!
//! Each wire field names where its value comes from — a source field path (`from: a.b.c`) or a
//! constant (`const: BRL`) — and how to turn it into the wire's spelling: an enum map
//! (`map: {OK: ACSC}`), an amount in centavos or reais (`amount: centavos`), a timestamp whose
//! naive form is in `ship_log.time_zone` (`time: true`). A line that cannot be mapped — not a
//! JSON object, a required source field absent, a value outside its map — is returned as
//! [`Unmapped`] with a SPEC rule id, for the DLQ; whether a mapped event then passes pixlake's
//! rules is ingest's business (it quarantines what does not).
//!
//! The event id is the source's own when one is mapped (`event_id: {from: id}`), else derived
//! from the line's bytes: `uuid5(NAMESPACE, "ship-log:" + line)`. A line shipped twice (the
//! at-least-once replay of the last unacknowledged batch) carries the same id both times.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::pix::{Category, HardRule};

/// Where a wire value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// A source field, by its dotted path.
    From(Vec<String>),
    /// A constant.
    Const(Value),
}

/// How a value is turned into the wire's spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// As it is.
    Plain,
    /// An amount in centavos (an integer) → the wire's decimal string.
    Centavos,
    /// An amount in reais (decimal text or number) → passed on as decimal text.
    Reais,
    /// A timestamp: with an offset or `Z` as it is; naive ones in the mapping's time zone.
    Time,
}

/// One wire field's rule.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRule {
    /// The wire path, e.g. `["data", "payer", "ispb"]`.
    pub target: Vec<String>,
    pub origin: Origin,
    /// Source value (as text) → wire value.
    pub map: Option<BTreeMap<String, Value>>,
    pub kind: Kind,
    /// An absent source value leaves the wire field out instead of failing the line.
    pub optional: bool,
}

/// The whole mapping.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// `source` of every event.
    pub source: String,
    /// The event type: its rule must give `payment`, `receipt` or `refund`.
    pub event_type: FieldRule,
    /// Every other wire field (`event_id` and `event_time` included).
    pub fields: Vec<FieldRule>,
    /// Zone of naive timestamps.
    pub time_zone: chrono_tz::Tz,
}

/// A mapped line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub category: Category,
    /// The Kafka key: the EndToEndId (a refund's original one), if mapped.
    pub key: Option<String>,
    /// Wire format v1, JSON.
    pub value: Vec<u8>,
}

/// A line that cannot be mapped: the rule, the wire field, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmapped {
    pub rule: HardRule,
    pub field: String,
    pub message: String,
}

/// The namespace of derived event ids (the webhook's, so ids of both sources are one family).
pub const NAMESPACE: Uuid = crate::webhook::api_pix::NAMESPACE;

fn lookup<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(root, |v, k| v.get(k.as_str())).filter(|v| !v.is_null())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Mapping {
    /// Maps one line (without its newline).
    pub fn map(&self, line: &[u8]) -> Result<Mapped, Unmapped> {
        let root: Value = serde_json::from_slice(line).map_err(|e| Unmapped {
            rule: HardRule::MalformedJson,
            field: String::new(),
            message: format!("not JSON: {e}"),
        })?;
        if !root.is_object() {
            return Err(Unmapped {
                rule: HardRule::MalformedJson,
                field: String::new(),
                message: "a log line must be a JSON object".into(),
            });
        }
        let event_type = self.value(&self.event_type, &root)?.map(|v| text(&v)).unwrap_or_default();
        let category = Category::from_event_type(&event_type).ok_or_else(|| Unmapped {
            rule: HardRule::UnknownEventType,
            field: "event_type".into(),
            message: format!("`{event_type}` is not payment, receipt or refund; check ship_log.mapping.event_type"),
        })?;
        let mut event = Map::new();
        event.insert("event_type".into(), Value::String(event_type));
        event.insert("schema_version".into(), Value::from(1));
        event.insert("source".into(), Value::String(self.source.clone()));
        for rule in &self.fields {
            if let Some(v) = self.value(rule, &root)? {
                set(&mut event, &rule.target, v);
            }
        }
        if !event.contains_key("event_id") {
            let id = Uuid::new_v5(&NAMESPACE, &[b"ship-log:".as_slice(), line].concat());
            event.insert("event_id".into(), Value::String(id.to_string()));
        }
        let data = event.get("data");
        let key = data.and_then(|d| d.get("end_to_end_id").or_else(|| d.get("original_end_to_end_id"))).map(text);
        let value = serde_json::to_vec(&Value::Object(event)).map_err(|e| Unmapped {
            rule: HardRule::MalformedJson,
            field: String::new(),
            message: e.to_string(),
        })?;
        Ok(Mapped { category, key, value })
    }

    /// The wire value of one rule for `root` (`None`: optional and absent).
    fn value(&self, rule: &FieldRule, root: &Value) -> Result<Option<Value>, Unmapped> {
        let field = rule.target.join(".");
        let fail = |rule: HardRule, message: String| Unmapped { rule, field: field.clone(), message };
        let raw = match &rule.origin {
            Origin::Const(v) => v.clone(),
            Origin::From(path) => match lookup(root, path) {
                Some(v) => v.clone(),
                None if rule.optional => return Ok(None),
                None => {
                    return Err(fail(HardRule::MissingField, format!("source field `{}` is absent", path.join("."))));
                }
            },
        };
        let v = match &rule.map {
            Some(map) => map.get(&text(&raw)).cloned().ok_or_else(|| {
                fail(
                    HardRule::InvalidEnum,
                    format!(
                        "`{}` is not in the mapping's map (known: {})",
                        text(&raw),
                        map.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?,
            None => raw,
        };
        Ok(Some(match rule.kind {
            Kind::Plain => v,
            Kind::Reais => match v {
                Value::Number(n) => Value::String(n.to_string()),
                other => other,
            },
            Kind::Centavos => {
                let cents = match &v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    fail(HardRule::InvalidAmount, format!("`{}` is not a whole number of centavos", text(&v)))
                })?;
                Value::String(crate::pix::amount::format_cents(cents))
            }
            Kind::Time => Value::String(self.time(&text(&v)).ok_or_else(|| {
                fail(
                    HardRule::InvalidTimestamp,
                    format!("`{}` is not a date and time (RFC 3339, or naive in {})", text(&v), self.time_zone),
                )
            })?),
        }))
    }

    /// RFC 3339 with an offset as it is; a naive `YYYY-MM-DD[T ]HH:MM:SS[.fff]` in the zone.
    fn time(&self, s: &str) -> Option<String> {
        let s = s.trim();
        if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
            return Some(s.to_owned());
        }
        let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())?;
        use chrono::TimeZone;
        // A time that occurs twice (a clock set back) is the earlier; one that never occurs is refused.
        let local = self.time_zone.from_local_datetime(&naive).earliest()?;
        Some(local.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

fn set(map: &mut Map<String, Value>, path: &[String], v: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert(last.clone(), v);
        }
        [head, rest @ ..] => {
            let child = map.entry(head.clone()).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(m) = child {
                set(m, rest, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn from(target: &str, source: &str) -> FieldRule {
        FieldRule {
            target: target.split('.').map(str::to_owned).collect(),
            origin: Origin::From(source.split('.').map(str::to_owned).collect()),
            map: None,
            kind: Kind::Plain,
            optional: false,
        }
    }

    fn mapping() -> Mapping {
        let mut status = from("data.status", "situacao");
        status.map = Some([("OK".to_owned(), Value::from("ACSC")), ("PEND".to_owned(), Value::from("ACSP"))].into());
        let mut amount = from("data.amount", "valor_centavos");
        amount.kind = Kind::Centavos;
        let mut time = from("event_time", "quando");
        time.kind = Kind::Time;
        let mut kind = from("event_type", "tipo");
        kind.map = Some([("PIX_ENVIADO".to_owned(), Value::from("payment"))].into());
        let mut txid = from("data.txid", "txid");
        txid.optional = true;
        let constant = |target: &str, v: &str| FieldRule {
            target: target.split('.').map(str::to_owned).collect(),
            origin: Origin::Const(Value::from(v)),
            map: None,
            kind: Kind::Plain,
            optional: false,
        };
        Mapping {
            source: "core-banking".into(),
            event_type: kind,
            fields: vec![
                time,
                from("data.end_to_end_id", "e2e"),
                amount,
                status,
                txid,
                constant("data.currency", "BRL"),
                constant("data.initiation_type", "MANU"),
                from("data.payer.ispb", "origem.ispb"),
                from("data.payer.document", "origem.doc"),
                from("data.payee.ispb", "destino.ispb"),
                from("data.payee.document", "destino.doc"),
            ],
            time_zone: chrono_tz::America::Sao_Paulo,
        }
    }

    const LINE: &str = r#"{"tipo":"PIX_ENVIADO","quando":"2026-12-01 09:00:30.250","e2e":"E18236120202612011200ab12CD34ef5","valor_centavos":123456,"situacao":"OK","origem":{"ispb":"18236120","doc":"52998224725"},"destino":{"ispb":"60701190","doc":"11222333000181"}}"#;

    #[test]
    fn a_line_becomes_an_event_ingest_accepts() {
        let m = mapping().map(LINE.as_bytes()).unwrap();
        assert_eq!(m.category, Category::Payment);
        assert_eq!(m.key.as_deref(), Some("E18236120202612011200ab12CD34ef5"));
        let v: Value = serde_json::from_slice(&m.value).unwrap();
        assert_eq!(v["event_time"], "2026-12-01T12:00:30.250Z", "São Paulo is UTC−3");
        assert_eq!(v["data"]["amount"], "1234.56");
        assert_eq!(v["data"]["status"], "ACSC");
        assert_eq!(v["data"]["payee"]["document"], "11222333000181");
        assert!(v["data"].get("txid").is_none(), "optional and absent: left out");
        let now = crate::pix::time::parse_rfc3339("2026-12-02T00:00:00Z").unwrap();
        let verdict = crate::pix::Decoder::new(1 << 20).decode(Some(&m.value), Some(Category::Payment), now);
        assert!(verdict.is_ok(), "{:?}", verdict.err());
        // The same line twice: the same event id.
        assert_eq!(mapping().map(LINE.as_bytes()).unwrap(), m);
    }

    #[test]
    fn lines_that_cannot_be_mapped_say_the_rule_and_field() {
        let m = mapping();
        let err = |line: &str| m.map(line.as_bytes()).unwrap_err();
        assert_eq!(err("{oops").rule, HardRule::MalformedJson);
        assert_eq!(err("[1]").rule, HardRule::MalformedJson);
        let e = err(&LINE.replace(r#""e2e":"E18236120202612011200ab12CD34ef5","#, ""));
        assert_eq!((e.rule, e.field.as_str()), (HardRule::MissingField, "data.end_to_end_id"));
        assert!(e.message.contains("`e2e`"), "{e:?}");
        let e = err(&LINE.replace(r#""OK""#, r#""WHAT""#));
        assert_eq!((e.rule, e.field.as_str()), (HardRule::InvalidEnum, "data.status"));
        let e = err(&LINE.replace("PIX_ENVIADO", "OUTRO"));
        assert_eq!((e.rule, e.field.as_str()), (HardRule::InvalidEnum, "event_type"));
        let e = err(&LINE.replace("123456", r#""12,50""#));
        assert_eq!(e.rule, HardRule::InvalidAmount);
        let e = err(&LINE.replace("2026-12-01 09:00:30.250", "ontem"));
        assert_eq!(e.rule, HardRule::InvalidTimestamp);
    }

    #[test]
    fn times_with_an_offset_pass_and_a_nonexistent_local_time_is_refused() {
        let m = mapping();
        assert_eq!(m.time("2026-12-01T09:00:00-03:00").as_deref(), Some("2026-12-01T09:00:00-03:00"));
        assert_eq!(m.time("2026-12-01T09:00:00").as_deref(), Some("2026-12-01T12:00:00Z"));
        let mut ny = m.clone();
        ny.time_zone = chrono_tz::America::New_York;
        assert_eq!(ny.time("2026-03-08 02:30:00"), None, "skipped by the DST change");
    }

    proptest! {
        /// Any centavos amount maps to the decimal text that parses back to it.
        #[test]
        fn centavos_round_trip(cents in 1i64..999_999_999_999) {
            let line = LINE.replace("123456", &cents.to_string());
            let v: Value = serde_json::from_slice(&mapping().map(line.as_bytes()).unwrap().value).unwrap();
            let text = v["data"]["amount"].as_str().unwrap().to_owned();
            prop_assert_eq!(crate::pix::amount::parse_decimal_str(&text).unwrap(), cents);
        }
    }
}
