//! Dead letters: where a rejected record goes besides `pix_quarantine` — the `pix.dlq` topic,
//! carrying the original key and value untouched and the reason in headers (SPEC §4), including
//! the `__connect.errors.*` headers tools built for Kafka Connect read.
//!
//! The DLQ topic is a notification channel, **at least once**: records are published and
//! acknowledged *before* the Delta commit that quarantines them, so a crash in between can
//! publish a record twice but never loses one. The exactly-once copy is `pix_quarantine`
//! (committed with its offsets like every table); DLQ consumers deduplicate on
//! (`pixlake.source.topic`, `pixlake.source.partition`, `pixlake.source.offset`).

pub mod headers;
mod kafka;

pub use headers::DeadLetter;
pub use kafka::KafkaDeadLetterQueue;

use crate::kafka::producer::ProduceError;

/// Where dead letters are published. A trait at this external edge so the engine can be tested
/// with a fake and a deployment can route dead letters elsewhere.
pub trait DeadLetterQueue: Send {
    /// Queues one dead letter.
    fn publish(&mut self, letter: &DeadLetter<'_>) -> Result<(), ProduceError>;
    /// Waits until every queued dead letter is acknowledged; returns how many failed for good.
    fn flush(&mut self) -> Result<u64, ProduceError>;
}
