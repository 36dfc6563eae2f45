//! Operator commands that read (and later change) what ingestion left: `status`, `audit`, `offsets reset`, `dlq replay` and `maintain`; offsets
//! reset, DLQ replay, maintenance and audit build on the same table and Kafka views.

pub mod audit;
pub mod maintain;
pub mod replay;
pub mod reset;
mod source;
pub mod status;
