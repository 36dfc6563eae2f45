//! The DLQ topic through the acknowledged producer.

use std::time::Duration;

use super::{DeadLetter, DeadLetterQueue};
use crate::config::Config;
use crate::kafka::producer::{AckedProducer, ProduceError};

/// Publishes dead letters to the configured DLQ topic (idempotent, acks=all).
pub struct KafkaDeadLetterQueue {
    producer: AckedProducer,
    topic: String,
    flush_timeout: Duration,
    failed_reported: u64,
}

/// How long a dead letter waits for others to share its request. A batch's dead letters are
/// flushed — waited for — when it is sealed, on the thread that reads Kafka: lingering there is
/// reading time lost. With ingest's 100 ms (the `produce` command's throughput setting) a run
/// with small batches (`ingest.memory_limit_mb: 512`, 1 % invalid) took 9.8 s where 1 ms took
/// 8.0 s; the request count stays small (dead letters are rare, flushed once per batch).
const DLQ_LINGER_MS: u32 = 5;

impl KafkaDeadLetterQueue {
    /// A producer for `config.dlq.topic`, sized for values up to twice the validation limit
    /// (oversized records are dead letters too).
    pub fn new(config: &Config, flush_timeout: Duration) -> Result<Self, ProduceError> {
        Ok(KafkaDeadLetterQueue {
            producer: AckedProducer::new(&config.kafka, config.validation.max_message_bytes * 2, DLQ_LINGER_MS)?,
            topic: config.dlq.topic.clone(),
            flush_timeout,
            failed_reported: 0,
        })
    }
}

impl DeadLetterQueue for KafkaDeadLetterQueue {
    fn publish(&mut self, letter: &DeadLetter<'_>) -> Result<(), ProduceError> {
        self.producer.send(&self.topic, letter.key, letter.value, Some(letter.headers()))
    }

    fn flush(&mut self) -> Result<u64, ProduceError> {
        self.producer.flush(self.flush_timeout)?;
        let failed = self.producer.counters().failed.load(std::sync::atomic::Ordering::Relaxed);
        let new = failed - self.failed_reported;
        self.failed_reported = failed;
        Ok(new)
    }
}
