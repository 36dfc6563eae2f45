//! The wire format v1 as the generator writes it: owned, serializable mirrors of SPEC §2.
//!
//! Fields are `String`/`Value` (not the validated domain types) on purpose: the generator must be
//! able to write every *invalid* variant too — a number where a string belongs, a missing field,
//! an unknown enum value.

use serde::Serialize;
use serde_json::Value;

/// One event.
#[derive(Clone, Debug, Serialize)]
pub struct WireEvent {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub event_time: String,
    pub data: WireData,
    /// Not part of wire format v1: set on some records to exercise `_rescued_data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// `data`, by category.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum WireData {
    Payment(WirePayment),
    Receipt(WireReceipt),
    Refund(WireRefund),
}

/// A participant.
#[derive(Clone, Debug, Serialize)]
pub struct WireParty {
    pub ispb: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_type: Option<String>,
    /// Absent only where a source does not know it (an API Pix webhook without the payer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `data` of a payment.
#[derive(Clone, Debug, Serialize)]
pub struct WirePayment {
    pub end_to_end_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txid: Option<String>,
    pub amount: Value,
    pub currency: String,
    pub initiation_type: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_reason: Option<String>,
    pub payer: WireParty,
    pub payee: WireParty,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pix_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pix_key_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remittance_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// `data` of a receipt.
#[derive(Clone, Debug, Serialize)]
pub struct WireReceipt {
    pub end_to_end_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txid: Option<String>,
    pub amount: Value,
    pub pix_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pix_key_type: Option<String>,
    pub payer: WireParty,
    pub payee: WireParty,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payer_info: Option<String>,
    pub received_at: String,
}

/// `data` of a refund.
#[derive(Clone, Debug, Serialize)]
pub struct WireRefund {
    pub return_id: String,
    pub original_end_to_end_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_request_id: Option<String>,
    pub direction: String,
    pub amount: Value,
    pub reason_code: String,
    pub status: String,
    pub requested_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An amount as the wire's decimal string.
pub fn amount_str(cents: i64) -> Value {
    Value::String(crate::pix::amount::format_cents(cents))
}
