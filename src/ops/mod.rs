//! Operator commands that read (and later change) what ingestion left: `status` and `audit` today; offsets
//! reset, DLQ replay, maintenance and audit build on the same table and Kafka views.

pub mod audit;
pub mod status;
