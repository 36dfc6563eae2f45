use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        ($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/iso20022/", $name)))
    };
}

/// The valid archive, in the order a gateway writes it.
const VALID: [(&str, &str); 11] = [
    fixture!("valid/01-pacs008-sent.xml"),
    fixture!("valid/02-pacs002-sent-settled.xml"),
    fixture!("valid/03-pacs008-sent-manual.xml"),
    fixture!("valid/04-pacs002-sent-rejected.xml"),
    fixture!("valid/05-pacs008-received.xml"),
    fixture!("valid/06-pacs002-received-accepted.xml"),
    fixture!("valid/07-pacs002-received-settled.xml"),
    fixture!("valid/08-pacs004-sent.xml"),
    fixture!("valid/09-pacs002-return-settled.xml"),
    fixture!("valid/10-pacs004-received.xml"),
    fixture!("valid/11-admi002.xml"),
];

fn reader() -> Reader {
    Reader { participant: "60701190".into(), source: "spi-log".into() }
}

/// The events a sequence of messages publishes, joined the way the shipper's store does
/// (statuses before their original wait for it).
fn events(messages: &[&str]) -> Vec<Outgoing> {
    let r = reader();
    let mut originals: HashMap<String, Original> = HashMap::new();
    let mut waiting: Vec<Status> = Vec::new();
    let mut out = Vec::new();
    for m in messages {
        match r.read(m.as_bytes()).unwrap().message {
            Message::Originals(os) => {
                for o in os {
                    out.extend(first_event(&o));
                    for s in waiting.iter().filter(|s| s.original_id == o.id) {
                        out.extend(join(&o, s));
                    }
                    waiting.retain(|s| s.original_id != o.id);
                    originals.insert(o.id.clone(), o);
                }
            }
            Message::Statuses(ss) => {
                for s in ss {
                    match originals.get(&s.original_id) {
                        Some(o) => out.extend(join(o, &s)),
                        None => waiting.push(s),
                    }
                }
            }
            Message::Other(_) => {}
        }
    }
    out
}

fn json_of(o: &Outgoing) -> Value {
    serde_json::from_slice(&o.value).unwrap()
}

/// The rule ingest would reject `o` with, if any.
fn verdict(o: &Outgoing) -> Result<(), &'static str> {
    let now = crate::pix::time::parse_rfc3339("2026-12-02T00:00:00Z").unwrap();
    crate::pix::Decoder::new(1 << 20).decode(Some(&o.value), Some(o.category), now).map(|_| ()).map_err(|r| r.rule.id())
}

#[test]
fn the_archive_round_trips_to_the_expected_events() {
    let messages: Vec<&str> = VALID.iter().map(|(_, m)| *m).collect();
    let out = events(&messages);
    let got: Vec<(Category, String, String, String)> = out
        .iter()
        .map(|o| {
            let v = json_of(o);
            let status = v["data"]["status"].as_str().unwrap_or("-").to_owned();
            (o.category, o.key.clone(), status, v["event_time"].as_str().unwrap().to_owned())
        })
        .collect();
    let (sent, manual, received) =
        ("E6070119020261201143012ab34CD56e", "E6070119020261201150099xy88ZZ77q", "E1823612020261201160355Kp0Lm1Nq2");
    let row = |c, k: &str, s: &str, t: &str| (c, k.to_owned(), s.to_owned(), t.to_owned());
    assert_eq!(
        got,
        [
            row(Category::Payment, sent, "ACSP", "2026-12-01T14:30:05.120Z"),
            row(Category::Payment, sent, "ACSC", "2026-12-01T14:30:06.480Z"),
            row(Category::Payment, manual, "ACSP", "2026-12-01T15:00:30.900Z"),
            row(Category::Payment, manual, "RJCT", "2026-12-01T15:00:32.100Z"),
            // The received Pix: one receipt, at its settlement (the ACSP adds nothing).
            row(Category::Receipt, received, "-", "2026-12-01T16:03:11.250Z"),
            row(Category::Refund, received, "EM_PROCESSAMENTO", "2026-12-01T17:00:42.300Z"),
            row(Category::Refund, received, "DEVOLVIDO", "2026-12-01T17:00:43.900Z"),
            row(Category::Refund, sent, "EM_PROCESSAMENTO", "2026-12-01T18:00:07.400Z"),
        ]
    );
    // Every field, for one event of each kind.
    assert_eq!(
        json_of(&out[1]),
        json!({
            "event_id": Uuid::new_v5(&NAMESPACE, format!("iso20022:payment:{sent}:ACSC").as_bytes()).to_string(),
            "event_type": "payment", "schema_version": 1, "source": "spi-log",
            "event_time": "2026-12-01T14:30:06.480Z",
            "data": {
                "end_to_end_id": sent, "amount": "150.00", "currency": "BRL", "initiation_type": "DICT", "status": "ACSC",
                "payer": {"ispb": "60701190", "branch": "0001", "account": "123456", "account_type": "CACC",
                          "document": "52998224725", "name": "Maria da Silva"},
                "payee": {"ispb": "18236120", "branch": "0001", "account": "98765432", "account_type": "TRAN",
                          "document": "11144477735", "name": "Joao Souza"},
                "pix_key": "joao.souza@example.com", "pix_key_type": "EMAIL", "remittance_info": "aluguel dezembro"
            }
        })
    );
    assert_eq!(json_of(&out[3])["data"]["reject_reason"], "AM04");
    assert_eq!(json_of(&out[3])["data"].get("pix_key"), None, "a manual payment has no key");
    assert_eq!(
        json_of(&out[4])["data"],
        json!({
            "end_to_end_id": received, "txid": "fc9a4366ff3d4964b5dbc6c91a8722d3", "amount": "89.90",
            "payer": {"ispb": "18236120", "branch": "0001", "account": "7654321", "account_type": "CACC",
                      "document": "11222333000181", "name": "Padaria Pao Quente Ltda"},
            "payee": {"ispb": "60701190", "branch": "1234", "account": "24681357", "account_type": "SVGS",
                      "document": "39053344705", "name": "Ana Pereira"},
            "pix_key": "+5511987654321", "payer_info": "pedido 42", "received_at": "2026-12-01T16:03:11.250Z"
        })
    );
    assert_eq!(
        json_of(&out[6])["data"],
        json!({
            "return_id": "D6070119020261201170042Rt5Yu6Io7", "original_end_to_end_id": received, "direction": "SENT",
            "amount": "89.90", "reason_code": "MD06", "status": "DEVOLVIDO", "requested_at": "2026-12-01T17:00:42.300Z",
            "settled_at": "2026-12-01T17:00:43.900Z", "description": "devolucao a pedido do cliente"
        })
    );
    assert_eq!(json_of(&out[7])["data"]["direction"], "RECEIVED");
    assert_eq!(json_of(&out[7])["data"]["reason_code"], "FR01");
    // What the shipper publishes is what ingest accepts.
    for o in &out {
        assert_eq!(verdict(o), Ok(()), "{}", String::from_utf8_lossy(&o.value));
    }
    let ids: std::collections::BTreeSet<String> = out.iter().map(|o| json_of(o)["event_id"].to_string()).collect();
    assert_eq!(ids.len(), out.len(), "every event has its own id");
}

#[test]
fn a_status_read_before_its_original_gives_the_same_events() {
    let messages: Vec<&str> = VALID.iter().map(|(_, m)| *m).collect();
    let in_order = events(&messages);
    // The archive read backwards: every status comes before what it reports on.
    let backwards: Vec<&str> = messages.iter().rev().copied().collect();
    let mut a: Vec<Vec<u8>> = in_order.into_iter().map(|o| o.value).collect();
    let mut b: Vec<Vec<u8>> = events(&backwards).into_iter().map(|o| o.value).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn other_message_types_are_skipped_and_a_bare_document_is_read() {
    assert_eq!(reader().read(VALID[10].1.as_bytes()).unwrap().message, Message::Other("admi.002.001.01".into()));
    assert_eq!(reader().read(VALID[0].1.as_bytes()).unwrap().created, Some(1_796_135_405), "2026-12-01T14:30:05.200Z");
    // Without SPI's envelope (an archive that keeps only the ISO 20022 document).
    let doc = VALID[1].1;
    let bare = &doc[doc.find("<Document>").unwrap()..doc.find("</Envelope>").unwrap()];
    match reader().read(bare.as_bytes()).unwrap().message {
        Message::Statuses(s) => assert_eq!(s[0].status, "ACSC"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn broken_messages_name_their_rule_and_element() {
    let cases = [
        (
            fixture!("broken/not-well-formed.xml"),
            HardRule::MalformedXml,
            "Envelope/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/Cdtr/Nm",
        ),
        (
            fixture!("broken/missing-end-to-end-id.xml"),
            HardRule::MissingField,
            "Envelope/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/PmtId/EndToEndId",
        ),
        (
            fixture!("broken/missing-debtor-agent.xml"),
            HardRule::MissingField,
            "Envelope/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/DbtrAgt",
        ),
        (
            fixture!("broken/unknown-status.xml"),
            HardRule::InvalidEnum,
            "Envelope/Document/FIToFIPmtStsRpt/TxInfAndSts/TxSts",
        ),
        (fixture!("broken/not-spi.xml"), HardRule::MalformedXml, "html"),
    ];
    for ((name, xml), rule, path) in cases {
        let why = reader().read(xml.as_bytes()).unwrap_err();
        assert_eq!((why.rule, why.path.as_str()), (rule, path), "{name}: {}", why.message);
    }
    // Another PSP's message: neither agent is ours.
    let other = Reader { participant: "90400888".into(), source: "spi-log".into() };
    assert_eq!(other.read(VALID[0].1.as_bytes()).unwrap_err().rule, HardRule::InvalidIspb);
    assert_eq!(reader().read(b"\xff\xfe<Document/>").unwrap_err().rule, HardRule::MalformedXml);
    assert_eq!(reader().read(b"<Document/>").unwrap_err().rule, HardRule::MissingField);
}

proptest! {
    /// A message cut anywhere (a file copied while the gateway wrote it) is refused, never
    /// mistaken for a complete one.
    #[test]
    fn a_truncated_message_is_refused(which in 0usize..10, cut in 0.0f64..1.0) {
        let xml = VALID[which].1.trim_end();
        let end = ((xml.len() as f64) * cut) as usize;
        let end = (0..=end).rev().find(|&i| xml.is_char_boundary(i)).unwrap_or(0);
        let part = &xml[..end];
        prop_assume!(!part.trim().is_empty());
        prop_assert!(reader().read(part.as_bytes()).is_err());
    }

    /// Amounts, ids and names are carried as written (escaped XML text included).
    #[test]
    fn values_are_carried_as_written(
        cents in 1u64..1_000_000_000,
        suffix in "[a-zA-Z0-9]{11}",
        name in "[A-Za-z][A-Za-z &<>']{0,39}",
    ) {
        let e2e = format!("E60701190202612011430{suffix}");
        let amount = format!("{}.{:02}", cents / 100, cents % 100);
        let escaped = name.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let xml = VALID[0].1
            .replace("E6070119020261201143012ab34CD56e", &e2e)
            .replace(">150.00<", &format!(">{amount}<"))
            .replace("Joao Souza", &escaped);
        let Message::Originals(o) = reader().read(xml.as_bytes()).unwrap().message else { panic!("a pacs.008") };
        let v = &o[0].event["data"];
        prop_assert_eq!(v["end_to_end_id"].as_str(), Some(e2e.as_str()));
        prop_assert_eq!(v["amount"].as_str(), Some(amount.as_str()));
        prop_assert_eq!(v["payee"]["name"].as_str(), Some(name.trim()));
    }
}
