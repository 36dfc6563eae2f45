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

impl KafkaDeadLetterQueue {
    /// A producer for `config.dlq.topic`, sized for values up to twice the validation limit
    /// (oversized records are dead letters too).
    pub fn new(config: &Config, flush_timeout: Duration) -> Result<Self, ProduceError> {
        Ok(KafkaDeadLetterQueue {
            producer: AckedProducer::new(&config.kafka, config.validation.max_message_bytes * 2)?,
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
