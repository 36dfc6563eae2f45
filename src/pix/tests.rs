//! Decoder tests: one or more real examples per rule, valid and invalid, and property tests.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::rules::{HardRule, SoftRule};
use super::time::parse_rfc3339;
use super::{Category, Decoder, EventData};

const NOW: &str = "2026-11-22T00:00:00Z";

fn now() -> i64 {
    parse_rfc3339(NOW).unwrap()
}

fn payment() -> Value {
    json!({
        "event_id": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        "event_type": "payment",
        "schema_version": 1,
        "source": "bank-api",
        "event_time": "2026-11-20T13:05:00.123Z",
        "data": {
            "end_to_end_id": "E18236120202611201304s0326120V4K",
            "amount": "1234.50",
            "currency": "BRL",
            "initiation_type": "DICT",
            "status": "ACSC",
            "payer": {"ispb": "18236120", "branch": "0001", "account": "1234567", "account_type": "CACC",
                      "document": "52998224725", "name": "Maria da Silva"},
            "payee": {"ispb": "60701190", "branch": "1500", "account": "99887", "account_type": "TRAN",
                      "document": "18236120000158", "name": "Padaria Estrela Ltda"},
            "pix_key": "fulano@example.com",
            "pix_key_type": "EMAIL",
            "channel": "APP",
            "device_id": "dev-1"
        }
    })
}

fn receipt() -> Value {
    json!({
        "event_id": "9b2e4c1a-0d7f-4e8a-b1c2-d3e4f5a6b7c8",
        "event_type": "receipt",
        "schema_version": 1,
        "source": "bank-api",
        "event_time": "2026-11-20T10:06:00-03:00",
        "data": {
            "end_to_end_id": "E9040088820261120130500123873170",
            "txid": "7978c0c97ea847e78e8849634473c1f1",
            "amount": "45.00",
            "pix_key": "+5511998765432",
            "payer": {"ispb": "90400888", "document": "111.444.777-35", "name": "João Pereira"},
            "payee": {"ispb": "18236120", "branch": "0001", "account": "1234567", "account_type": "CACC",
                      "document": "52998224725"},
            "payer_info": "obrigado",
            "received_at": "2026-11-20T13:05:30Z"
        }
    })
}

fn refund() -> Value {
    json!({
        "event_id": "c0ffee00-0000-4000-8000-000000000001",
        "event_type": "refund",
        "schema_version": 1,
        "source": "spi-log",
        "event_time": "2026-11-21T12:00:00Z",
        "data": {
            "return_id": "D60701190202611211159abcdefghijk",
            "original_end_to_end_id": "E18236120202611201304s0326120V4K",
            "refund_request_id": "devolucao123",
            "direction": "RECEIVED",
            "amount": "100.00",
            "reason_code": "MD06",
            "status": "DEVOLVIDO",
            "requested_at": "2026-11-21T11:59:00Z",
            "settled_at": "2026-11-21T11:59:03Z"
        }
    })
}

fn decode(v: &Value) -> super::Verdict<'static> {
    let bytes: &'static [u8] = Box::leak(serde_json::to_vec(v).unwrap().into_boxed_slice());
    Decoder::default().decode(Some(bytes), None, now())
}

fn with(mut v: Value, path: &str, new: Value) -> Value {
    let mut node = &mut v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        node = node.get_mut(*p).unwrap();
    }
    let last = parts[parts.len() - 1];
    if new.is_null() {
        node.as_object_mut().unwrap().remove(last);
    } else {
        node[last] = new;
    }
    v
}

#[track_caller]
fn rejected(v: Value, rule: HardRule, field: &str) {
    match decode(&v) {
        Err(r) => {
            assert_eq!((r.rule, r.field), (rule, field), "{}", r.message);
            assert!(!r.message.is_empty());
        }
        Ok(e) => panic!("expected {rule} at {field}, got a valid event {e:?}"),
    }
}

#[track_caller]
fn flagged(v: Value, flag: SoftRule) -> super::Event<'static> {
    let e = decode(&v).unwrap_or_else(|r| panic!("expected valid with {flag}, got {r}"));
    assert!(e.flags.contains(flag), "{flag} not in {:?}", e.flags);
    e
}

#[test]
fn the_examples_are_valid() {
    for v in [payment(), receipt(), refund()] {
        let e = decode(&v).unwrap();
        assert!(e.flags.is_empty() || v["event_type"] == "receipt", "{:?}", e.flags);
        assert!(e.rescued.is_none());
    }
    let e = decode(&payment()).unwrap();
    let EventData::Payment(p) = &e.data else { panic!() };
    assert_eq!(p.amount, 123_450);
    assert_eq!(e.envelope.event_time, parse_rfc3339("2026-11-20T13:05:00.123Z").unwrap());
    // 13:05 UTC is 10:05 in São Paulo, the same date.
    assert_eq!(e.envelope.event_date, super::time::days_from_civil(2026, 11, 20) as i32);
    let r = decode(&receipt()).unwrap();
    assert!(r.flags.contains(SoftRule::PixKeyTypeInferred));
    assert!(r.flags.contains(SoftRule::DocumentNormalized));
}

#[test]
fn malformed_and_oversized() {
    let d = Decoder::new(2048);
    let bad: [&[u8]; 7] = [b"", b"not json", b"{\"a\":", b"[1,2]", b"\"text\"", b"{\"a\":\"\xe7\xe3o\"}", b"{} {}"];
    for b in bad {
        let r = d.decode(Some(b), None, now()).unwrap_err();
        assert_eq!(r.rule, HardRule::MalformedJson, "{:?}", String::from_utf8_lossy(b));
    }
    assert_eq!(d.decode(None, None, now()).unwrap_err().rule, HardRule::MalformedJson);
    let big = vec![b' '; 2049];
    assert_eq!(d.decode(Some(&big), None, now()).unwrap_err().rule, HardRule::OversizedMessage);
}

#[test]
fn envelope_rules() {
    rejected(with(payment(), "source", Value::Null), HardRule::MissingField, "source");
    rejected(with(payment(), "source", json!("")), HardRule::MissingField, "source");
    rejected(with(payment(), "source", json!(7)), HardRule::WrongType, "source");
    rejected(with(payment(), "source", json!("s".repeat(65))), HardRule::InvalidLength, "source");
    rejected(with(payment(), "event_type", json!("chargeback")), HardRule::UnknownEventType, "event_type");
    rejected(with(payment(), "schema_version", json!(2)), HardRule::UnsupportedSchemaVersion, "schema_version");
    rejected(with(payment(), "schema_version", json!(1.5)), HardRule::WrongType, "schema_version");
    rejected(with(payment(), "schema_version", json!("one")), HardRule::WrongType, "schema_version");
    rejected(
        with(payment(), "event_id", json!("3f2504e04f8941d39a0c0305e82c3301")),
        HardRule::InvalidEventId,
        "event_id",
    );
    rejected(with(payment(), "event_time", json!("2026-11-20T10:00:00")), HardRule::InvalidTimestamp, "event_time");
    rejected(with(payment(), "event_time", json!("2026-02-30T10:00:00Z")), HardRule::InvalidTimestamp, "event_time");
    rejected(with(payment(), "event_time", json!("2026-11-20T24:00:00Z")), HardRule::InvalidTimestamp, "event_time");
    rejected(with(payment(), "data", json!("x")), HardRule::WrongType, "data");
    flagged(with(payment(), "schema_version", json!("1")), SoftRule::SchemaVersionCoerced);
    flagged(with(payment(), "event_type", json!("Payment")), SoftRule::EnumCaseNormalized);
    let e = flagged(
        with(payment(), "event_id", json!("3F2504E0-4F89-41D3-9A0C-0305E82C3301")),
        SoftRule::EventIdLowercased,
    );
    assert_eq!(e.envelope.event_id.as_str(), "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    let e = flagged(with(payment(), "source", json!("  bank-api ")), SoftRule::WhitespaceTrimmed);
    assert_eq!(e.envelope.source, "bank-api");
    // Escaped strings (decoded, then trimmed) and Unicode spaces take the same rule; a value of
    // spaces only is no value; no space, no flag.
    let escaped = String::from_utf8(serde_json::to_vec(&payment()).unwrap())
        .unwrap()
        .replace(r#""source":"bank-api""#, r#""source":"\t bank-\u0061pi\u00a0""#);
    assert!(escaped.contains(r#"\u00a0"#), "the example's source is bank-api");
    let e = decode(&serde_json::from_str(&escaped).unwrap()).unwrap();
    assert_eq!((e.envelope.source.as_ref(), e.flags.contains(SoftRule::WhitespaceTrimmed)), ("bank-api", true));
    let e = Decoder::default().decode(Some(escaped.as_bytes()), None, now()).unwrap();
    assert_eq!((e.envelope.source.as_ref(), e.flags.contains(SoftRule::WhitespaceTrimmed)), ("bank-api", true));
    let e = flagged(with(payment(), "source", json!("bank-api\u{a0}")), SoftRule::WhitespaceTrimmed);
    assert_eq!(e.envelope.source, "bank-api");
    rejected(with(payment(), "source", json!(" \t ")), HardRule::MissingField, "source");
    let e = flagged(with(payment(), "source", json!("\u{b}bank-api")), SoftRule::WhitespaceTrimmed);
    assert_eq!(e.envelope.source, "bank-api", "a vertical tab is whitespace to str::trim at either end");
    assert!(!decode(&payment()).unwrap().flags.contains(SoftRule::WhitespaceTrimmed));
    flagged(with(payment(), "event_time", json!("2026-11-22T00:06:00Z")), SoftRule::FutureEventTime);
    let in_tolerance = decode(&with(payment(), "event_time", json!("2026-11-22T00:04:00Z"))).unwrap();
    assert!(!in_tolerance.flags.contains(SoftRule::FutureEventTime));
}

#[test]
fn duplicate_fields_and_topic() {
    let text = br#"{"event_id":"3f2504e0-4f89-41d3-9a0c-0305e82c3301","event_type":"payment","event_type":"refund"}"#;
    let r = Decoder::default().decode(Some(text), None, now()).unwrap_err();
    assert_eq!((r.rule, r.field), (HardRule::DuplicateField, "event_type"));
    let bytes = serde_json::to_vec(&payment()).unwrap();
    let r = Decoder::default().decode(Some(&bytes), Some(Category::Refund), now()).unwrap_err();
    assert_eq!(r.rule, HardRule::TopicMismatch);
    assert!(Decoder::default().decode(Some(&bytes), Some(Category::Payment), now()).is_ok());
}

#[test]
fn amounts() {
    for (v, rule) in [
        (json!("0.00"), HardRule::InvalidAmount),
        (json!("1e3"), HardRule::InvalidAmount),
        (json!("10.001"), HardRule::InvalidAmount),
        (json!("-5"), HardRule::InvalidAmount),
        (json!("12345678901.00"), HardRule::InvalidAmount),
        (json!(true), HardRule::WrongType),
        (json!({"valor": "1.00"}), HardRule::WrongType),
    ] {
        rejected(with(payment(), "data.amount", v), rule, "data.amount");
    }
    rejected(with(payment(), "data.amount", Value::Null), HardRule::MissingField, "data.amount");
    let e = flagged(with(payment(), "data.amount", json!(1234.5)), SoftRule::AmountFromNumber);
    let EventData::Payment(p) = e.data else { panic!() };
    assert_eq!(p.amount, 123_450);
    // A JSON number with an exponent, converted from its text: 1e3 = R$ 1,000.00.
    let bytes = serde_json::to_vec(&payment()).unwrap();
    let text = String::from_utf8(bytes).unwrap().replace("\"1234.50\"", "1e3");
    let e = Decoder::default().decode(Some(text.as_bytes()), None, now()).unwrap();
    let EventData::Payment(p) = e.data else { panic!() };
    assert_eq!(p.amount, 100_000);
}

#[test]
fn transaction_ids() {
    rejected(
        with(payment(), "data.end_to_end_id", json!("E18236120202602301304s0326120V4K")),
        HardRule::InvalidE2eId,
        "data.end_to_end_id",
    );
    rejected(
        with(payment(), "data.end_to_end_id", json!("E18236120202611202404s0326120V4K")),
        HardRule::InvalidE2eId,
        "data.end_to_end_id",
    );
    rejected(
        with(payment(), "data.end_to_end_id", json!("D18236120202611201304s0326120V4K")),
        HardRule::InvalidE2eId,
        "data.end_to_end_id",
    );
    rejected(
        with(refund(), "data.return_id", json!("E60701190202611211159abcdefghijk")),
        HardRule::InvalidReturnId,
        "data.return_id",
    );
    rejected(
        with(refund(), "data.return_id", json!("D60701190202602291159abcdefghijk")),
        HardRule::InvalidReturnId,
        "data.return_id",
    );
    rejected(
        with(refund(), "data.original_end_to_end_id", json!("E1823612020261120")),
        HardRule::InvalidE2eId,
        "data.original_end_to_end_id",
    );
    // Alphanumeric ISPB (API Pix 2.9.0) in both ids.
    assert!(decode(&with(payment(), "data.end_to_end_id", json!("E1A2B3C4D202611201304s0326120V4K"))).is_ok());
    // The id's minute 13:04 is 12 h+ away from an event at 02:00 the next day.
    let v = with(payment(), "event_time", json!("2026-11-21T02:00:00Z"));
    flagged(v, SoftRule::E2eTimeSkew);
    rejected(
        with(refund(), "data.refund_request_id", json!("req-1")),
        HardRule::InvalidRefundRequestId,
        "data.refund_request_id",
    );
}

#[test]
fn txids_of_every_length_class() {
    let p = |init: &str, txid: Value, key: bool| {
        let mut v = with(payment(), "data.initiation_type", json!(init));
        v = with(v, "data.txid", txid);
        if !key {
            v = with(v, "data.pix_key", Value::Null);
            v = with(v, "data.pix_key_type", Value::Null);
        }
        v
    };
    let t = |n: usize| json!("a".repeat(n));
    // QRDN: 26–35.
    assert!(decode(&p("QRDN", t(26), true)).is_ok());
    assert!(decode(&p("QRDN", t(35), true)).is_ok());
    rejected(p("QRDN", t(25), true), HardRule::InvalidTxid, "data.txid");
    rejected(p("QRDN", Value::Null, true), HardRule::MissingField, "data.txid");
    // QRES and INIC: up to 25; QRES without txid carries ***.
    assert!(decode(&p("QRES", t(25), true)).is_ok());
    rejected(p("INIC", t(26), true), HardRule::InvalidTxid, "data.txid");
    let e = flagged(p("QRES", json!("***"), true), SoftRule::TxidPlaceholderNulled);
    let EventData::Payment(pay) = e.data else { panic!() };
    assert_eq!(pay.txid, None);
    // MANU and DICT: none.
    rejected(p("DICT", t(10), true), HardRule::InvalidTxid, "data.txid");
    rejected(p("MANU", t(10), false), HardRule::InvalidTxid, "data.txid");
    // Format: 1–35 alphanumerics anywhere.
    rejected(p("QRDN", json!("abc-def-ghi-jkl-mno-pqr-stu-vw"), true), HardRule::InvalidTxid, "data.txid");
    rejected(p("QRDN", t(36), true), HardRule::InvalidTxid, "data.txid");
    rejected(with(receipt(), "data.txid", json!("abc 123")), HardRule::InvalidTxid, "data.txid");
}

#[test]
fn documents_and_participants() {
    rejected(with(payment(), "data.payer.document", json!("52998224724")), HardRule::InvalidCpf, "data.payer.document");
    rejected(
        with(payment(), "data.payer.document", json!("111.111.111-11")),
        HardRule::InvalidCpf,
        "data.payer.document",
    );
    rejected(
        with(payment(), "data.payee.document", json!("18236120000159")),
        HardRule::InvalidCnpj,
        "data.payee.document",
    );
    rejected(
        with(payment(), "data.payee.document", json!("12ABC34501DE36")),
        HardRule::InvalidCnpj,
        "data.payee.document",
    );
    let e = flagged(with(payment(), "data.payee.document", json!("12.abc.345/01de-35")), SoftRule::DocumentNormalized);
    let EventData::Payment(p) = e.data else { panic!() };
    assert_eq!(p.payee.document.value, "12ABC34501DE35");
    rejected(with(payment(), "data.payee.ispb", json!("00038166")), HardRule::InvalidIspb, "data.payee.ispb");
    rejected(with(payment(), "data.payee.ispb", json!("abc")), HardRule::InvalidIspb, "data.payee.ispb");
    rejected(with(payment(), "data.payee.ispb", json!(-5)), HardRule::InvalidIspb, "data.payee.ispb");
    let e = flagged(with(payment(), "data.payee.ispb", json!(360305)), SoftRule::IspbPadded);
    let EventData::Payment(p) = e.data else { panic!() };
    assert_eq!(p.payee.ispb.as_str(), "00360305");
    rejected(with(payment(), "data.payer.branch", json!("12345")), HardRule::InvalidAccount, "data.payer.branch");
    rejected(with(payment(), "data.payer.account", json!("1234-5")), HardRule::InvalidAccount, "data.payer.account");
    rejected(
        with(payment(), "data.payer.account_type", json!("SLRY")),
        HardRule::InvalidEnum,
        "data.payer.account_type",
    );
    assert!(decode(&with(payment(), "data.payee.account_type", json!("SLRY"))).is_ok());
    flagged(with(payment(), "data.payee.account_type", json!("Poupanca")), SoftRule::AccountTypeMapped);
    rejected(with(payment(), "data.payer.name", json!("n".repeat(141))), HardRule::InvalidLength, "data.payer.name");
    rejected(with(payment(), "data.payer", json!([1])), HardRule::WrongType, "data.payer");
}

#[test]
fn keys_and_initiation() {
    let key = |k: &str, t: &str| with(with(payment(), "data.pix_key", json!(k)), "data.pix_key_type", json!(t));
    rejected(key("fulano", "EMAIL"), HardRule::InvalidPixKey, "data.pix_key");
    rejected(key("1234", "PHONE"), HardRule::InvalidPixKey, "data.pix_key");
    rejected(key("52998224725", "EMAIL"), HardRule::InvalidPixKey, "data.pix_key");
    rejected(key("18236120000158", "CPF"), HardRule::InvalidPixKey, "data.pix_key");
    rejected(key("x", "TELEFONE"), HardRule::InvalidEnum, "data.pix_key_type");
    let e = flagged(key("(11) 99876-5432", "PHONE"), SoftRule::PhoneNormalized);
    let EventData::Payment(p) = e.data else { panic!() };
    assert_eq!(p.pix_key.unwrap().value, "+5511998765432");
    flagged(key("Fulano@Example.com", "EMAIL"), SoftRule::EmailLowercased);
    flagged(key("123E4567-E89B-42D3-A456-426614174000", "EVP"), SoftRule::EvpLowercased);
    rejected(with(payment(), "data.initiation_type", json!("MANU")), HardRule::InitiationKeyMismatch, "data.pix_key");
    rejected(with(payment(), "data.pix_key", Value::Null), HardRule::MissingField, "data.pix_key");
    rejected(with(payment(), "data.pix_key_type", Value::Null), HardRule::MissingField, "data.pix_key_type");
    rejected(with(receipt(), "data.pix_key", json!("???")), HardRule::InvalidPixKey, "data.pix_key");
}

#[test]
fn payment_status_rules() {
    rejected(with(payment(), "data.status", json!("RJCT")), HardRule::MissingRejectReason, "data.reject_reason");
    let rj = with(with(payment(), "data.status", json!("RJCT")), "data.reject_reason", json!("AM04"));
    assert!(decode(&rj).is_ok());
    rejected(
        with(rj.clone(), "data.reject_reason", json!("saldo insuficiente")),
        HardRule::InvalidEnum,
        "data.reject_reason",
    );
    flagged(with(payment(), "data.reject_reason", json!("AM04")), SoftRule::RejectReasonWithoutRjct);
    rejected(with(payment(), "data.status", json!("SETTLED")), HardRule::InvalidEnum, "data.status");
    flagged(with(payment(), "data.status", json!("acsc")), SoftRule::EnumCaseNormalized);
    rejected(with(payment(), "data.currency", json!("USD")), HardRule::InvalidCurrency, "data.currency");
    rejected(with(payment(), "data.channel", json!("SMS")), HardRule::InvalidEnum, "data.channel");
}

#[test]
fn night_limit() {
    // 23:30 in São Paulo, R$ 1,234.50 from a CPF.
    let night = with(payment(), "event_time", json!("2026-11-21T02:30:00Z"));
    let night = with(night, "data.end_to_end_id", json!("E18236120202611210230s0326120V4K"));
    flagged(night.clone(), SoftRule::NightLimitExceeded);
    let small = with(night.clone(), "data.amount", json!("1000.00"));
    assert!(!decode(&small).unwrap().flags.contains(SoftRule::NightLimitExceeded));
    let company = with(night, "data.payer.document", json!("18236120000158"));
    assert!(!decode(&company).unwrap().flags.contains(SoftRule::NightLimitExceeded));
    assert!(!decode(&payment()).unwrap().flags.contains(SoftRule::NightLimitExceeded));
}

#[test]
fn refund_rules() {
    rejected(with(refund(), "data.settled_at", Value::Null), HardRule::InconsistentRefund, "data.settled_at");
    rejected(with(refund(), "data.status", json!("EM_PROCESSAMENTO")), HardRule::InconsistentRefund, "data.settled_at");
    rejected(
        with(refund(), "data.settled_at", json!("2026-11-21T11:00:00Z")),
        HardRule::InconsistentRefund,
        "data.settled_at",
    );
    rejected(
        with(refund(), "data.return_id", json!("D60701190202611191159abcdefghijk")),
        HardRule::InconsistentRefund,
        "data.return_id",
    );
    rejected(with(refund(), "data.reason_code", json!("AM04")), HardRule::InvalidEnum, "data.reason_code");
    rejected(with(refund(), "data.direction", json!("IN")), HardRule::InvalidEnum, "data.direction");
    flagged(with(refund(), "data.status", json!("devolvido")), SoftRule::EnumCaseNormalized);
    // A fraud MED claim 90 days after the Pix.
    let late = with(refund(), "data.reason_code", json!("FR01"));
    let late = with(late, "data.original_end_to_end_id", json!("E18236120202608201304s0326120V4K"));
    flagged(late, SoftRule::MedWindowExceeded);
}

#[test]
fn unknown_fields_are_rescued() {
    let v = with(payment(), "trace_id", json!("abc"));
    let v = with(v, "data.payer.nickname", json!({"x": [1, 2]}));
    let e = flagged(v, SoftRule::RescuedData);
    let rescued: Value = serde_json::from_str(e.rescued.as_deref().unwrap()).unwrap();
    assert_eq!(rescued, json!({"trace_id": "abc", "data.payer.nickname": {"x": [1, 2]}}));
}

#[test]
fn timestamps_with_offsets_are_utc() {
    let e = decode(&receipt()).unwrap();
    assert_eq!(e.envelope.event_time, parse_rfc3339("2026-11-20T13:06:00Z").unwrap());
}

fn generated(seed: u64, skip: usize) -> Vec<u8> {
    use crate::produce::{Generator, Settings};
    let mut g = Generator::new(Settings { seed, fraud_ratio: 0.1, events_per_day: 100_000.0, ..Settings::default() });
    g.nth(skip).unwrap().value
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        prop_oneof![Just("payment"), Just("receipt"), Just("refund"), Just("1"), Just("BRL")]
            .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z_]{1,12}",
                    Just("event_type".to_owned()),
                    Just("data".to_owned()),
                    Just("amount".to_owned()),
                    Just("payer".to_owned())
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_events_pass_and_survive_a_json_round_trip(seed in any::<u64>(), skip in 0usize..50) {
        let bytes = generated(seed, skip);
        let d = Decoder::default();
        let first = d.decode(Some(&bytes), None, now());
        prop_assert!(first.is_ok(), "{:?}\n{}", first, String::from_utf8_lossy(&bytes));
        let tree: Value = serde_json::from_slice(&bytes).unwrap();
        let again = serde_json::to_vec_pretty(&tree).unwrap();
        prop_assert_eq!(first, d.decode(Some(&again), None, now()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Decoder::default().decode(Some(&bytes), None, now());
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let r = Decoder::default().decode(Some(&bytes), None, now());
        if !v.is_object() {
            prop_assert_eq!(r.unwrap_err().rule, HardRule::MalformedJson);
        }
    }

    #[test]
    fn any_field_replaced_by_any_json_gives_an_event_or_a_rejection(
        seed in any::<u64>(), pick in any::<prop::sample::Index>(), v in json_value()
    ) {
        let bytes = generated(seed, 0);
        let mut tree: Value = serde_json::from_slice(&bytes).unwrap();
        let mut paths = Vec::new();
        fn walk(v: &Value, prefix: String, out: &mut Vec<String>) {
            if let Value::Object(m) = v {
                for (k, child) in m {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    out.push(p.clone());
                    walk(child, p, out);
                }
            }
        }
        walk(&tree, String::new(), &mut paths);
        let path = pick.get(&paths).clone();
        tree = with(tree, &path, v);
        let bytes = serde_json::to_vec(&tree).unwrap();
        match Decoder::default().decode(Some(&bytes), None, now()) {
            Ok(_) => {}
            Err(r) => prop_assert!(!r.message.is_empty()),
        }
    }
}

#[test]
fn only_columns_with_few_values_are_dictionary_encoded() {
    use super::columns::encodings;
    for category in Category::ALL {
        let schema = super::category_schema(category);
        let e = encodings(&schema);
        let columns = e.dictionary;
        let mut delta = vec!["event_time", "ingest_time", "kafka_offset", "kafka_timestamp", "amount"];
        delta.extend(match category {
            Category::Payment => &[][..],
            Category::Receipt => &["received_at"],
            Category::Refund => &["requested_at", "settled_at"],
        });
        assert_eq!(e.delta, delta, "{category:?}: the 64-bit integer columns");
        let random: &[&str] = match category {
            Category::Payment | Category::Receipt => &["event_id", "txid"],
            Category::Refund => &["event_id", "refund_request_id"],
        };
        assert_eq!(e.uncompressed, random, "{category:?}");
        let specific: &[&str] = match category {
            Category::Payment => &["status", "payer_ispb", "payee_document_type", "initiation_type"],
            Category::Receipt => &["payer_ispb", "pix_key_type"],
            Category::Refund => &["status", "reason_code", "direction"],
        };
        for wanted in ["event_type", "source", "kafka_topic", "quality_flags.list.element"].iter().chain(specific) {
            assert!(columns.iter().any(|c| c == wanted), "{category:?}: {wanted} in {columns:?}");
        }
        for unique in
            ["event_id", "end_to_end_id", "kafka_offset", "event_time", "amount", "payer_document", "payer_name"]
        {
            assert!(!columns.iter().any(|c| c == unique), "{category:?}: {unique} is not dictionary-encoded");
        }
        for c in &columns {
            let top = c.split('.').next().unwrap_or_default();
            assert!(schema.field_with_name(top).is_ok(), "{category:?}: {c} is a column");
        }
    }
    let quarantine = encodings(&super::quarantine_schema());
    assert!(quarantine.dictionary.contains(&"error_rule".to_owned()));
    assert!(!quarantine.dictionary.contains(&"raw_value".to_owned()));
    assert_eq!(quarantine.delta, ["kafka_offset", "kafka_timestamp", "ingest_time"]);
}
