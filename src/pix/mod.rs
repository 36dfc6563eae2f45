//! The Pix domain — pure: bytes and `now` in, values out; no I/O, no clock, no global state.
//!
//! ```text
//! message value ──json──▶ RawObject ──event/payment/receipt/refund──▶ Event | Rejection
//!                                                                        │
//!                                        batch::CategoryBatchBuilder ◀───┘ (Arrow columns)
//! ```
//!
//! * [`rules`]: the catalogue of hard and soft rule ids (SPEC §3, `docs/rules.md`).
//! * [`json`], [`fields`]: one-pass scanning of JSON objects and typed field access.
//! * [`time`], [`amount`], [`ids`], [`documents`], [`keys`], [`codes`]: value formats.
//! * [`event`]: the wire format v1 envelope and the [`Decoder`]; [`participant`], [`payment`],
//!   [`receipt`], [`refund`]: one module per category with its rules and columns.
//! * [`columns`], [`batch`]: Arrow schemas (SPEC §4) and columnar builders; [`reserve`]: the
//!   builders of a table's next batch on the buffers of one already written; [`ahead`]: where
//!   they write next, prefetched.

pub mod ahead;
pub mod amount;
pub mod batch;
pub mod codes;
pub mod columns;
pub mod documents;
pub mod event;
pub mod fields;
pub mod ids;
pub mod json;
pub mod keys;
pub mod participant;
pub mod payment;
pub mod receipt;
pub mod refund;
pub mod reserve;
pub mod rules;
pub mod swar;
pub mod time;

pub use batch::{CategoryBatchBuilder, QuarantineBatchBuilder, category_schema, quarantine_schema};
pub use columns::KafkaMeta;
pub use event::{Category, Decoder, Event, EventData, Verdict};
pub use rules::{Flags, HardRule, Rejection, SoftRule};

#[cfg(test)]
mod tests;
