//! SPI's ISO 20022 messages — pacs.008 (a Pix), pacs.002 (its status), pacs.004 (a return) — as
//! a PSP's SPI gateway archives them, mapped to wire-format v1 events. Pure: no I/O; the join
//! with earlier messages lives in [`crate::shiplog::join`].
//!
//! # What becomes an event
//!
//! A PSP's archive holds the messages it sent and received; `ship_log.iso20022.participant_ispb`
//! says which side it is on.
//!
//! | message | event |
//! |---|---|
//! | pacs.008, our PSP is the debtor agent (a Pix we sent) | **payment**, status `ACSP`, at once |
//! | pacs.008, our PSP is the creditor agent (a Pix we received) | nothing yet: a **receipt** once SPI reports it settled |
//! | pacs.002 `ACSC` / `RJCT` of a payment | **payment** with that status (and `reject_reason`) |
//! | pacs.002 `ACSC` of a received Pix | **receipt** (`received_at`: the settlement time) |
//! | pacs.004 (a return, `RtrId` `D…`) | **refund** `EM_PROCESSAMENTO`; `direction` SENT when the `RtrId` names our ISPB |
//! | pacs.002 `ACSC` / `RJCT` of a return | **refund** `DEVOLVIDO` (`settled_at`) / `NAO_REALIZADO` |
//!
//! A pacs.002 carries only the original's id, a status and a reason: the event it reports is
//! built from the original pacs.008 / pacs.004, which the shipper keeps for a window
//! (`join_window_seconds`). `ACSP` in a pacs.002 adds nothing to what the original said.
//!
//! # Ids
//!
//! Event ids are derived, never random, so a message read twice (the at-least-once replay of
//! the last unacknowledged batch) publishes the same events:
//! `uuid5(NAMESPACE, "iso20022:payment:{EndToEndId}:{status}")`,
//! `"iso20022:receipt:{EndToEndId}"`, `"iso20022:refund:{RtrId}:{status}"`. The Kafka key is
//! the EndToEndId (a refund's original one), as SPEC §1 wants.
//!
//! # What is refused
//!
//! Only the message's shape is checked here: not well-formed XML (`MALFORMED_XML`, with the path
//! of the element being read), a required element absent (`MISSING_FIELD`, with its path, e.g.
//! `Document/FIToFICstmrCdtTrf/CdtTrfTxInf/PmtId/EndToEndId`), a status outside ACSP/ACSC/RJCT
//! (`INVALID_ENUM`). Values — an ISPB, a CPF's check digits, an amount with three decimals — are
//! the wire rules' business at ingest, which quarantines them with their own rule ids. Other
//! message types an SPI archive holds (admi.002, camt.*, pibr.*) are skipped and counted.
//! The catalogue's purpose (`Purp`) has no place in wire format v1 and is not carried.

pub mod messages;

use quick_xml::events::Event;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::pix::{Category, HardRule};
use messages::{Account, Party};

/// The namespace of derived event ids (the webhook's and the log mapping's).
pub const NAMESPACE: Uuid = crate::webhook::api_pix::NAMESPACE;

/// A message that cannot be read: the rule, the element path, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub rule: HardRule,
    /// Element path, `/`-separated from the root (`Envelope/Document/…`).
    pub path: String,
    pub message: String,
}

/// What a transaction is, seen from our PSP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A Pix we sent (pacs.008, we are the debtor agent).
    Payment,
    /// A Pix we received (pacs.008, we are the creditor agent).
    Receipt,
    /// A return (pacs.004), either way.
    Refund,
}

/// A transaction a later pacs.002 may report on: the event as this message describes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Original {
    pub role: Role,
    /// The EndToEndId, or a return's `RtrId`: what a pacs.002 names as `OrgnlEndToEndId`.
    pub id: String,
    /// The Kafka key.
    pub key: String,
    /// The wire event (for a receipt: complete but for `received_at`, set by the join).
    pub event: Value,
}

/// One transaction status of a pacs.002.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// `OrgnlEndToEndId`.
    pub original_id: String,
    /// `ACSP`, `ACSC` or `RJCT`.
    pub status: String,
    pub reason: Option<String>,
    /// Settlement time if given, else the report's creation time.
    pub time: String,
}

/// What one message says.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// pacs.008 / pacs.004: one [`Original`] per transaction.
    Originals(Vec<Original>),
    /// pacs.002.
    Statuses(Vec<Status>),
    /// Another message type (its `Document` child's name): not a Pix event.
    Other(String),
}

/// A message read: what it says, and when it was created (`GrpHdr/CreDtTm`, Unix seconds;
/// `None` when absent or not a time) — the join's clock.
#[derive(Clone, Debug, PartialEq)]
pub struct Read {
    pub message: Message,
    pub created: Option<u64>,
}

/// A wire event ready to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub category: Category,
    pub key: String,
    pub value: Vec<u8>,
}

/// Reads `ship_log.iso20022` messages for one participant.
#[derive(Clone, Debug)]
pub struct Reader {
    /// Our PSP's ISPB (8 characters).
    pub participant: String,
    /// `source` of every event.
    pub source: String,
}

fn broken(rule: HardRule, path: impl Into<String>, message: impl Into<String>) -> Broken {
    Broken { rule, path: path.into(), message: message.into() }
}

/// The root's and the message's element names, checking the whole text is well-formed XML.
fn outline(xml: &str) -> Result<(String, Option<String>), Broken> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut root: Option<String> = None;
    let mut message: Option<String> = None;
    loop {
        let event = reader.read_event().map_err(|e| {
            broken(
                HardRule::MalformedXml,
                stack.join("/"),
                format!("not well-formed XML at byte {}: {e}", reader.error_position()),
            )
        })?;
        let opened = match &event {
            Event::Start(e) | Event::Empty(e) => Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned()),
            _ => None,
        };
        if let Some(name) = opened {
            if root.is_some() && stack.is_empty() {
                return Err(broken(HardRule::MalformedXml, "", format!("a second root element <{name}>")));
            }
            root.get_or_insert_with(|| name.clone());
            // The message is the Document's child (`Envelope/Document/X` or `Document/X`).
            let document_depth = usize::from(root.as_deref() == Some("Envelope")) + 1;
            if message.is_none() && stack.len() == document_depth && stack.last().is_some_and(|d| d == "Document") {
                message = Some(name.clone());
            }
            if matches!(event, Event::Start(_)) {
                stack.push(name);
            }
        }
        match event {
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) if stack.is_empty() && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(broken(HardRule::MalformedXml, "", "text outside the root element"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(broken(HardRule::MalformedXml, stack.join("/"), "the message ends before its elements are closed"));
    }
    let root = root.ok_or_else(|| broken(HardRule::MalformedXml, "", "no XML element"))?;
    Ok((root, message))
}

/// Deserializes the message part of `xml` (root `Envelope` or `Document`).
fn typed<T: DeserializeOwned>(xml: &str, root: &str) -> Result<T, Broken> {
    let mut de = quick_xml::de::Deserializer::from_str(xml);
    let (result, prefix) = if root == "Envelope" {
        (serde_path_to_error::deserialize::<_, messages::Envelope<T>>(&mut de).map(|e| e.document.message), "Envelope")
    } else {
        (serde_path_to_error::deserialize::<_, messages::Document<T>>(&mut de).map(|d| d.message), "Document")
    };
    result.map_err(|e| {
        let mut path = format!("{prefix}/{}", element_path(&e.path().to_string()));
        let inner = e.into_inner();
        let text = inner.to_string();
        // serde names the missing element in its message; the path is where it was expected.
        match text.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
            Some(field) => {
                path = format!("{path}/{field}");
                broken(HardRule::MissingField, path, format!("required element {field} is absent"))
            }
            None => broken(HardRule::MalformedXml, path, text),
        }
    })
}

/// serde's `A.B[0].C` as the element path `A/B/C` (SPI's messages carry one transaction).
fn element_path(serde_path: &str) -> String {
    let mut out = String::with_capacity(serde_path.len());
    let mut in_index = false;
    for c in serde_path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            '.' if !in_index => out.push('/'),
            c if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

fn text(t: &messages::Text) -> String {
    t.text.trim().to_owned()
}

fn opt(t: Option<&messages::Text>) -> Option<String> {
    t.map(text).filter(|s| !s.is_empty())
}

/// A required text that is present but empty is as good as absent.
fn required(t: &messages::Text, path: &str) -> Result<String, Broken> {
    let s = text(t);
    if s.is_empty() {
        return Err(broken(HardRule::MissingField, path, format!("required element {} is empty", last(path))));
    }
    Ok(s)
}

fn last(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn event_id(name: &str) -> String {
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// A wire participant from an agent, a party and its account.
fn party(agent: &messages::Agent, who: &Party, account: &Account) -> Value {
    let document = who.id.prvt_id.as_ref().or(who.id.org_id.as_ref()).map(|o| text(&o.othr.id));
    let mut p = json!({ "ispb": text(&agent.fin_instn_id.clr_sys_mmb_id.mmb_id) });
    let fields = [
        ("branch", opt(account.id.othr.issr.as_ref())),
        ("account", Some(text(&account.id.othr.id)).filter(|s| !s.is_empty())),
        ("account_type", account.tp.as_ref().and_then(|c| c.value()).map(str::to_owned)),
        ("document", document.filter(|s| !s.is_empty())),
        ("name", opt(who.nm.as_ref())),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            p[k] = Value::String(v);
        }
    }
    p
}

/// Sets `key` of `obj` when `value` is some.
fn put(obj: &mut Value, key: &str, value: Option<String>) {
    if let Some(v) = value {
        obj[key] = Value::String(v);
    }
}

impl Reader {
    /// Reads one message (the bytes of one framed record).
    pub fn read(&self, bytes: &[u8]) -> Result<Read, Broken> {
        let xml = std::str::from_utf8(bytes)
            .map_err(|e| broken(HardRule::MalformedXml, "", format!("not UTF-8 (SPI messages are): {e}")))?;
        let (root, message) = outline(xml)?;
        if root != "Envelope" && root != "Document" {
            return Err(broken(
                HardRule::MalformedXml,
                root.clone(),
                format!("the root element is <{root}>, not SPI's <Envelope> or an ISO 20022 <Document>"),
            ));
        }
        let message = message.ok_or_else(|| {
            let path = if root == "Envelope" { "Envelope/Document" } else { "Document" };
            broken(HardRule::MissingField, path, "no Document with a message in it")
        })?;
        let base = if root == "Envelope" { "Envelope/Document" } else { "Document" };
        let (message, created) = match message.as_str() {
            "FIToFICstmrCdtTrf" => {
                let m: messages::Pacs008 = typed(xml, &root)?;
                let base = format!("{base}/FIToFICstmrCdtTrf");
                let created = text(&m.grp_hdr.cre_dt_tm);
                let originals = m
                    .cdt_trf_tx_inf
                    .iter()
                    .map(|t| self.credit_transfer(t, &created, &format!("{base}/CdtTrfTxInf")))
                    .collect::<Result<_, _>>()?;
                (Message::Originals(originals), created)
            }
            "FIToFIPmtStsRpt" => {
                let m: messages::Pacs002 = typed(xml, &root)?;
                let base = format!("{base}/FIToFIPmtStsRpt/TxInfAndSts");
                let created = text(&m.grp_hdr.cre_dt_tm);
                let statuses = m.tx_inf_and_sts.iter().map(|s| status(s, &created, &base)).collect::<Result<_, _>>()?;
                (Message::Statuses(statuses), created)
            }
            "PmtRtr" => {
                let m: messages::Pacs004 = typed(xml, &root)?;
                let base = format!("{base}/PmtRtr/TxInf");
                let created = text(&m.grp_hdr.cre_dt_tm);
                let originals =
                    m.tx_inf.iter().map(|r| self.payment_return(r, &created, &base)).collect::<Result<_, _>>()?;
                (Message::Originals(originals), created)
            }
            other => (Message::Other(other.to_owned()), String::new()),
        };
        let created = crate::pix::time::parse_rfc3339(&created)
            .ok()
            .and_then(|micros| u64::try_from(micros.div_euclid(1_000_000)).ok());
        Ok(Read { message, created })
    }

    fn envelope(&self, id: String, event_type: &str, time: &str, data: Value) -> Value {
        json!({
            "event_id": id,
            "event_type": event_type,
            "schema_version": 1,
            "source": self.source,
            "event_time": time,
            "data": data,
        })
    }

    fn credit_transfer(&self, t: &messages::CreditTransfer, created: &str, base: &str) -> Result<Original, Broken> {
        let e2e = required(&t.pmt_id.end_to_end_id, &format!("{base}/PmtId/EndToEndId"))?;
        let debtor_agent = text(&t.dbtr_agt.fin_instn_id.clr_sys_mmb_id.mmb_id);
        let creditor_agent = text(&t.cdtr_agt.fin_instn_id.clr_sys_mmb_id.mmb_id);
        let role = if debtor_agent == self.participant {
            Role::Payment
        } else if creditor_agent == self.participant {
            Role::Receipt
        } else {
            return Err(broken(
                HardRule::InvalidIspb,
                format!("{base}/DbtrAgt"),
                format!(
                    "neither the debtor agent ({debtor_agent}) nor the creditor agent ({creditor_agent}) is \
                     ship_log.iso20022.participant_ispb ({}): another PSP's message, or the wrong participant configured",
                    self.participant
                ),
            ));
        };
        let initiation = t
            .mndt_rltd_inf
            .as_ref()
            .and_then(|m| m.tp.as_ref())
            .and_then(messages::LocalInstrument::value)
            .or_else(|| t.pmt_tp_inf.as_ref().and_then(messages::LocalInstrument::value))
            .map(str::to_owned);
        let key = opt(t.cdtr_acct.prxy.as_ref().map(|p| &p.id));
        let payer = party(&t.dbtr_agt, &t.dbtr, &t.dbtr_acct);
        let payee = party(&t.cdtr_agt, &t.cdtr, &t.cdtr_acct);
        let amount = t.intr_bk_sttlm_amt.value.trim().to_owned();
        let remittance = opt(t.rmt_inf.as_ref().and_then(|r| r.ustrd.as_ref()));
        let txid = opt(t.pmt_id.tx_id.as_ref());
        let event = if role == Role::Payment {
            let initiation = initiation.ok_or_else(|| {
                broken(
                    HardRule::MissingField,
                    format!("{base}/MndtRltdInf/Tp/LclInstrm/Prtry"),
                    "the initiation type (MANU, DICT, QRDN…) is absent, in MndtRltdInf/Tp/LclInstrm and in \
                     PmtTpInf/LclInstrm",
                )
            })?;
            let mut data = json!({
                "end_to_end_id": e2e,
                "amount": amount,
                "currency": t.intr_bk_sttlm_amt.currency.as_deref().map_or("BRL", str::trim),
                "initiation_type": initiation,
                "status": "ACSP",
                "payer": payer,
                "payee": payee,
            });
            put(&mut data, "txid", txid);
            let kind = key.as_deref().and_then(crate::pix::keys::infer_key_type).map(|k| k.as_str().to_owned());
            put(&mut data, "pix_key", key);
            put(&mut data, "pix_key_type", kind);
            put(&mut data, "remittance_info", remittance);
            let time = opt(t.accptnc_dt_tm.as_ref()).unwrap_or_else(|| created.to_owned());
            self.envelope(event_id(&format!("iso20022:payment:{e2e}:ACSP")), "payment", &time, data)
        } else {
            let mut data = json!({
                "end_to_end_id": e2e,
                "amount": amount,
                "payer": payer,
                "payee": payee,
            });
            put(&mut data, "txid", txid);
            // The type is left to ingest, which infers it and flags PIX_KEY_TYPE_INFERRED.
            put(&mut data, "pix_key", key);
            put(&mut data, "payer_info", remittance);
            self.envelope(event_id(&format!("iso20022:receipt:{e2e}")), "receipt", created, data)
        };
        Ok(Original { role, id: e2e.clone(), key: e2e, event })
    }

    fn payment_return(&self, r: &messages::Return, created: &str, base: &str) -> Result<Original, Broken> {
        let rtr_id = required(&r.rtr_id, &format!("{base}/RtrId"))?;
        let original = required(&r.orgnl_end_to_end_id, &format!("{base}/OrgnlEndToEndId"))?;
        let reason = r.rtr_rsn_inf.rsn.value().map(str::to_owned).ok_or_else(|| {
            broken(HardRule::MissingField, format!("{base}/RtrRsnInf/Rsn/Cd"), "the return reason is absent")
        })?;
        // `D` + the ISPB of who returns the money + …: ours, we sent it.
        let direction = if rtr_id.get(1..9) == Some(self.participant.as_str()) { "SENT" } else { "RECEIVED" };
        let mut data = json!({
            "return_id": rtr_id,
            "original_end_to_end_id": original,
            "direction": direction,
            "amount": r.rtrd_intr_bk_sttlm_amt.value.trim(),
            "reason_code": reason,
            "status": "EM_PROCESSAMENTO",
            "requested_at": created,
        });
        put(&mut data, "description", opt(r.rtr_rsn_inf.addtl_inf.as_ref()));
        let event =
            self.envelope(event_id(&format!("iso20022:refund:{rtr_id}:EM_PROCESSAMENTO")), "refund", created, data);
        Ok(Original { role: Role::Refund, id: rtr_id, key: original, event })
    }
}

fn status(s: &messages::TransactionStatus, created: &str, base: &str) -> Result<Status, Broken> {
    let original_id = required(&s.orgnl_end_to_end_id, &format!("{base}/OrgnlEndToEndId"))?;
    let status = text(&s.tx_sts);
    if !matches!(status.as_str(), "ACSP" | "ACSC" | "RJCT") {
        return Err(broken(
            HardRule::InvalidEnum,
            format!("{base}/TxSts"),
            format!("status `{status}` is not ACSP, ACSC or RJCT"),
        ));
    }
    Ok(Status {
        original_id,
        status,
        reason: s.sts_rsn_inf.as_ref().and_then(|r| r.rsn.value()).map(str::to_owned),
        // A date alone is no time of day: the report's creation time is then the better one.
        time: s
            .fctv_intr_bk_sttlm_dt
            .as_ref()
            .and_then(|d| opt(d.dt_tm.as_ref()))
            .unwrap_or_else(|| created.to_owned()),
    })
}

/// The event an original publishes when it is read (a received Pix waits for its settlement).
pub fn first_event(original: &Original) -> Option<Outgoing> {
    match original.role {
        Role::Payment | Role::Refund => Some(encode(original.role, &original.key, &original.event)),
        Role::Receipt => None,
    }
}

fn encode(role: Role, key: &str, event: &Value) -> Outgoing {
    let category = match role {
        Role::Payment => Category::Payment,
        Role::Receipt => Category::Receipt,
        Role::Refund => Category::Refund,
    };
    // A `Value` always serializes.
    let value = serde_json::to_vec(event).unwrap_or_default();
    Outgoing { category, key: key.to_owned(), value }
}

/// The event a pacs.002 status reports about `original`, if it reports anything new.
pub fn join(original: &Original, status: &Status) -> Option<Outgoing> {
    let mut event = original.event.clone();
    let data = &mut event["data"];
    let (name, time) = match (original.role, status.status.as_str()) {
        (_, "ACSP") => return None,
        (Role::Payment, s) => {
            data["status"] = s.into();
            if s == "RJCT" {
                put(data, "reject_reason", status.reason.clone());
            }
            (format!("iso20022:payment:{}:{s}", original.id), &status.time)
        }
        (Role::Receipt, "ACSC") => {
            data["received_at"] = status.time.clone().into();
            (format!("iso20022:receipt:{}", original.id), &status.time)
        }
        (Role::Receipt, _) => return None,
        (Role::Refund, s) => {
            let done = if s == "ACSC" { "DEVOLVIDO" } else { "NAO_REALIZADO" };
            data["status"] = done.into();
            if s == "ACSC" {
                data["settled_at"] = status.time.clone().into();
            }
            (format!("iso20022:refund:{}:{done}", original.id), &status.time)
        }
    };
    event["event_id"] = event_id(&name).into();
    event["event_time"] = time.clone().into();
    Some(encode(original.role, &original.key, &event))
}

#[cfg(test)]
mod tests;
