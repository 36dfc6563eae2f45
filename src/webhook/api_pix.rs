//! The API Pix webhook body, mapped to wire-format v1 events. Pure: no I/O.
//!
//! A PSP POSTs `{"pix":[…]}` (Banco Central's API Pix, `webhook` callbacks): each item is a Pix
//! received into one of the bank's accounts, with the refunds (`devolucoes`) made of it so far.
//! Each item becomes one **receipt** (the receiving account from `webhook.receiver`), each refund
//! one **refund** event (`direction: SENT` — the receiver returns money).
//!
//! What is checked here is only the webhook's own shape (required members, their JSON types):
//! a body that fails it is answered 400 and nothing of it is published. Everything else —
//! an EndToEndId without a real date, an amount with three decimals, a payer CPF with wrong
//! check digits — is pixlake's rules' business at ingest: the event is published and lands in
//! `pix_quarantine` with its rule id, where it is kept, counted and replayable, instead of being
//! refused to a PSP that would retry it forever.
//!
//! **Event ids are derived from the item**, never random, so that a retried request produces
//! the same events: `uuid5(NAMESPACE, "api-pix:receipt:{endToEndId}")` for a receipt and
//! `uuid5(NAMESPACE, "api-pix:refund:{rtrId}:{status}")` for a refund — a refund reported again
//! with a new status (EM_PROCESSAMENTO, then DEVOLVIDO) is a new event, the same status twice is
//! not. Analysts can recompute them (Python: `uuid.uuid5(uuid.UUID(NAMESPACE), name)`).
//!
//! The payer's document is not part of Banco Central's `Pix` object; PSPs add it as
//! `pagador: {cpf|cnpj, nome}` (or Efí's `gnExtras.pagador`). Without it the receipt still goes
//! out, with no `payer.document`, and ingest quarantines it as `MISSING_FIELD` — visible and
//! replayable — rather than inventing one.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::pix::Category;
use crate::produce::wire::{WireData, WireEvent, WireParty, WireReceipt, WireRefund};

/// The namespace of derived event ids (a fixed, random UUID of pixlake's).
pub const NAMESPACE: Uuid = Uuid::from_u128(0x5c1e_7a0b_3f2d_4e8a_9b61_d2c4_0f8e_a713);

/// One event ready to publish: its topic's category, key (the EndToEndId) and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub category: Category,
    /// The derived event id (the deduplication key).
    pub id: Uuid,
    /// The Kafka key: the EndToEndId (a refund's original one).
    pub key: String,
    /// Wire format v1, JSON.
    pub value: Vec<u8>,
}

/// A body that is not an API Pix webhook: the reason, with the JSON path of the culprit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an API Pix webhook body: {0}")]
pub struct BadBody(pub String);

/// What the configuration says about the receiving side.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// `source` of every event (`webhook.source`).
    pub source: String,
    /// The receiving account (`webhook.receiver`): the payee of every receipt.
    pub receiver: WireParty,
    /// The largest event (`validation.max_message_bytes`): a larger one would be refused by
    /// ingest as OVERSIZED_MESSAGE, or by Kafka — the body is refused instead.
    pub max_event_bytes: usize,
}

#[derive(Deserialize)]
struct Body {
    pix: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    end_to_end_id: String,
    #[serde(default)]
    txid: Option<String>,
    valor: Amount,
    chave: String,
    horario: String,
    #[serde(default)]
    info_pagador: Option<String>,
    #[serde(default)]
    pagador: Option<Payer>,
    #[serde(default)]
    gn_extras: Option<Extras>,
    #[serde(default)]
    devolucoes: Vec<Devolucao>,
}

/// `valor`: a decimal string in API Pix; some PSPs send a number (kept as written).
#[derive(Deserialize)]
#[serde(untagged)]
enum Amount {
    Text(String),
    Number(serde_json::Number),
}

impl Amount {
    fn wire(self) -> Value {
        match self {
            Amount::Text(s) => Value::String(s),
            Amount::Number(n) => Value::Number(n),
        }
    }
}

#[derive(Deserialize, Default)]
struct Payer {
    #[serde(default)]
    cpf: Option<String>,
    #[serde(default)]
    cnpj: Option<String>,
    #[serde(default)]
    nome: Option<String>,
}

#[derive(Deserialize)]
struct Extras {
    #[serde(default)]
    pagador: Option<Payer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Devolucao {
    id: String,
    rtr_id: String,
    valor: Amount,
    #[serde(default)]
    natureza: Option<String>,
    horario: RefundTimes,
    status: String,
    #[serde(default)]
    motivo: Option<String>,
}

#[derive(Deserialize)]
struct RefundTimes {
    solicitacao: String,
    #[serde(default)]
    liquidacao: Option<String>,
}

/// The pacs.004 reason of an API Pix `natureza` (absent: ORIGINAL, as API Pix defaults it).
/// An unknown one is passed on as written: ingest rejects it as `INVALID_ENUM`.
fn reason_code(natureza: Option<&str>) -> String {
    match natureza.unwrap_or("ORIGINAL") {
        "ORIGINAL" => "MD06",
        "RETIRADA" => "SL02",
        "MED_OPERACIONAL" => "BE08",
        "MED_FRAUDE" => "FR01",
        other => other,
    }
    .to_owned()
}

/// The derived id of a receipt.
pub fn receipt_id(end_to_end_id: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("api-pix:receipt:{end_to_end_id}").as_bytes())
}

/// The derived id of a refund in one status.
pub fn refund_id(rtr_id: &str, status: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("api-pix:refund:{rtr_id}:{status}").as_bytes())
}

/// Maps a webhook body to the events it reports, in order (each receipt before its refunds).
pub fn map(body: &[u8], mapping: &Mapping) -> Result<Vec<Outgoing>, BadBody> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let body: Body = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        BadBody(if path == "." { inner.to_string() } else { format!("{path}: {inner}") })
    })?;
    if body.pix.is_empty() {
        return Err(BadBody("pix: an empty list reports nothing".into()));
    }
    let mut out = Vec::with_capacity(body.pix.len());
    for (i, item) in body.pix.into_iter().enumerate() {
        if item.end_to_end_id.trim().is_empty() {
            return Err(BadBody(format!("pix[{i}].endToEndId: empty")));
        }
        let e2e = item.end_to_end_id.trim().to_owned();
        // The payer's institution is the EndToEndId's: `E` + the payer PSP's ISPB + …
        let payer_ispb = e2e.get(1..9).unwrap_or_default().to_owned();
        let payer = item.pagador.or(item.gn_extras.and_then(|x| x.pagador)).unwrap_or_default();
        let receipt = WireEvent {
            event_id: receipt_id(&e2e).to_string(),
            event_type: Category::Receipt.as_str().to_owned(),
            schema_version: Value::from(1),
            source: Some(mapping.source.clone()),
            event_time: item.horario.clone(),
            data: WireData::Receipt(WireReceipt {
                end_to_end_id: e2e.clone(),
                txid: item.txid,
                amount: item.valor.wire(),
                pix_key: item.chave,
                pix_key_type: None,
                payer: WireParty {
                    ispb: Value::String(payer_ispb),
                    branch: None,
                    account: None,
                    account_type: None,
                    document: payer.cpf.or(payer.cnpj),
                    name: payer.nome,
                },
                payee: mapping.receiver.clone(),
                payer_info: item.info_pagador,
                received_at: item.horario,
            }),
            trace_id: None,
        };
        out.push(outgoing(Category::Receipt, &e2e, receipt, mapping.max_event_bytes, i)?);
        for (j, d) in item.devolucoes.into_iter().enumerate() {
            if d.rtr_id.trim().is_empty() {
                return Err(BadBody(format!("pix[{i}].devolucoes[{j}].rtrId: empty")));
            }
            let event_time = d.horario.liquidacao.clone().unwrap_or_else(|| d.horario.solicitacao.clone());
            let refund = WireEvent {
                event_id: refund_id(d.rtr_id.trim(), &d.status).to_string(),
                event_type: Category::Refund.as_str().to_owned(),
                schema_version: Value::from(1),
                source: Some(mapping.source.clone()),
                event_time,
                data: WireData::Refund(WireRefund {
                    return_id: d.rtr_id.trim().to_owned(),
                    original_end_to_end_id: e2e.clone(),
                    refund_request_id: Some(d.id),
                    direction: "SENT".into(),
                    amount: d.valor.wire(),
                    reason_code: reason_code(d.natureza.as_deref()),
                    status: d.status,
                    requested_at: d.horario.solicitacao,
                    settled_at: d.horario.liquidacao,
                    description: d.motivo,
                }),
                trace_id: None,
            };
            out.push(outgoing(Category::Refund, &e2e, refund, mapping.max_event_bytes, i)?);
        }
    }
    Ok(out)
}

fn outgoing(category: Category, key: &str, event: WireEvent, max: usize, item: usize) -> Result<Outgoing, BadBody> {
    let id = Uuid::parse_str(&event.event_id).map_err(|e| BadBody(format!("event id: {e}")))?;
    let value = serde_json::to_vec(&event).map_err(|e| BadBody(e.to_string()))?;
    if value.len() > max {
        return Err(BadBody(format!(
            "pix[{item}]: its {category} event would be {} bytes, more than validation.max_message_bytes ({max})",
            value.len()
        )));
    }
    Ok(Outgoing { category, id, key: key.to_owned(), value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mapping() -> Mapping {
        Mapping {
            source: "api-pix-webhook".into(),
            receiver: WireParty {
                ispb: Value::String("60701190".into()),
                branch: Some("0001".into()),
                account: Some("123456".into()),
                account_type: Some("CACC".into()),
                document: Some("11222333000181".into()),
                name: Some("Loja Exemplo Ltda".into()),
            },
            max_event_bytes: 1 << 20,
        }
    }

    const BODY: &str = r#"{"pix":[{"endToEndId":"E18236120202611301320ab12CD34ef5","txid":"655dfdb1a4514b4b9b3a9a6d2f1e0c1b","valor":"110.00",
        "componentesValor":{"original":{"valor":"110.00"}},"chave":"7d9f0335-8dcc-4054-9bf9-0dbd61d36906",
        "horario":"2026-11-30T13:20:01.511Z","infoPagador":"pedido 1234","pagador":{"cpf":"52998224725","nome":"Fulano de Tal"},
        "devolucoes":[{"id":"123ABC","rtrId":"D6070119020261130132500000000001","valor":"10.00","natureza":"MED_FRAUDE",
          "horario":{"solicitacao":"2026-11-30T13:25:00.000Z","liquidacao":"2026-11-30T13:25:02.100Z"},"status":"DEVOLVIDO",
          "motivo":"golpe"}]}]}"#;

    /// The rule ingest would reject `o` with, if any.
    fn verdict(o: &Outgoing) -> Result<(), &'static str> {
        let now = crate::pix::time::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        let decoder = crate::pix::Decoder::new(1 << 20);
        decoder.decode(Some(&o.value), Some(o.category), now).map(|_| ()).map_err(|r| r.rule.id())
    }

    #[test]
    fn an_item_is_a_receipt_and_each_refund_an_event_that_passes_the_rules() {
        let out = map(BODY.as_bytes(), &mapping()).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].category, Category::Receipt);
        assert_eq!(out[1].category, Category::Refund);
        assert!(out.iter().all(|o| o.key == "E18236120202611301320ab12CD34ef5"));
        let receipt: Value = serde_json::from_slice(&out[0].value).unwrap();
        assert_eq!(receipt["data"]["payer"]["ispb"], "18236120");
        assert_eq!(receipt["data"]["payer"]["document"], "52998224725");
        assert_eq!(receipt["data"]["payee"]["account"], "123456");
        assert_eq!(receipt["data"]["received_at"], "2026-11-30T13:20:01.511Z");
        let refund: Value = serde_json::from_slice(&out[1].value).unwrap();
        assert_eq!(refund["data"]["reason_code"], "FR01");
        assert_eq!(refund["data"]["original_end_to_end_id"], "E18236120202611301320ab12CD34ef5");
        assert_eq!(refund["event_time"], "2026-11-30T13:25:02.100Z");
        // What the webhook publishes is what ingest accepts.
        for o in &out {
            assert_eq!(verdict(o), Ok(()), "{}", String::from_utf8_lossy(&o.value));
        }
    }

    #[test]
    fn ids_are_derived_so_a_retry_publishes_the_same_events() {
        let a = map(BODY.as_bytes(), &mapping()).unwrap();
        let b = map(BODY.as_bytes(), &mapping()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].id, receipt_id("E18236120202611301320ab12CD34ef5"));
        // Python's uuid.uuid5(uuid.UUID("5c1e7a0b-3f2d-4e8a-9b61-d2c40f8ea713"), "api-pix:receipt:E1")
        assert_eq!(receipt_id("E1").to_string(), "e71b0437-e26d-541f-8bbe-fda03b9d7c0a");
        // A new status is a new event; the same status is the same one.
        let again = BODY.replace("DEVOLVIDO", "EM_PROCESSAMENTO");
        let c = map(again.as_bytes(), &mapping()).unwrap();
        assert_eq!(c[0].id, a[0].id);
        assert_ne!(c[1].id, a[1].id);
    }

    #[test]
    fn a_body_that_is_not_a_webhook_is_refused_with_the_path() {
        let bad = |body: &str| map(body.as_bytes(), &mapping()).unwrap_err().0;
        assert!(bad("not json").contains("expected"), "{}", bad("not json"));
        assert!(bad(r#"{"pics":[]}"#).contains("missing field `pix`"));
        assert_eq!(bad(r#"{"pix":[]}"#), "pix: an empty list reports nothing");
        let no_amount = BODY.replace(r#""valor":"110.00","#, "");
        assert!(bad(&no_amount).contains("missing field `valor`"), "{}", bad(&no_amount));
        let wrong = BODY.replace(r#""chave":"7d9f0335-8dcc-4054-9bf9-0dbd61d36906""#, r#""chave":7"#);
        assert!(bad(&wrong).starts_with("pix[0].chave: invalid type"), "{}", bad(&wrong));
        let refund = BODY.replace(r#""rtrId":"D6070119020261130132500000000001","#, "");
        assert!(bad(&refund).contains("pix[0].devolucoes[0]"), "{}", bad(&refund));
        let huge = BODY.replace("pedido 1234", &"x".repeat(2 << 20));
        assert!(bad(&huge).starts_with("pix[0]: its receipt event would be"), "{}", bad(&huge));
    }

    #[test]
    fn no_payer_document_goes_out_without_one_for_ingest_to_quarantine() {
        let body = BODY.replace(r#""pagador":{"cpf":"52998224725","nome":"Fulano de Tal"},"#, "");
        let out = map(body.as_bytes(), &mapping()).unwrap();
        let receipt: Value = serde_json::from_slice(&out[0].value).unwrap();
        assert!(receipt["data"]["payer"].get("document").is_none());
        assert_eq!(verdict(&out[0]), Err("MISSING_FIELD"));
        // Efí's extension is read too.
        let efi = BODY
            .replace(r#""pagador":{"#, r#""gnExtras":{"pagador":{"#)
            .replace(r#""Fulano de Tal"},"#, r#""Fulano de Tal"}},"#);
        let out = map(efi.as_bytes(), &mapping()).unwrap();
        let receipt: Value = serde_json::from_slice(&out[0].value).unwrap();
        assert_eq!(receipt["data"]["payer"]["document"], "52998224725");
    }

    proptest! {
        /// Whatever the items, the mapping is deterministic and every id is distinct per event.
        #[test]
        fn ids_are_stable_and_distinct(e2es in proptest::collection::btree_set("E[0-9]{8}2026113012[0-9]{2}[a-z0-9]{11}", 1..20)) {
            let items: Vec<String> = e2es.iter().map(|e| format!(
                r#"{{"endToEndId":"{e}","valor":"1.00","chave":"a@b.com","horario":"2026-11-30T12:00:00Z"}}"#)).collect();
            let body = format!(r#"{{"pix":[{}]}}"#, items.join(","));
            let a = map(body.as_bytes(), &mapping()).unwrap();
            prop_assert_eq!(&a, &map(body.as_bytes(), &mapping()).unwrap());
            let ids: std::collections::BTreeSet<_> = a.iter().map(|o| o.id).collect();
            prop_assert_eq!(ids.len(), e2es.len());
        }
    }
}
