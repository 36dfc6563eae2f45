//! The sources' producer (`webhook`, `ship-log`): publishes a group of records and waits for
//! Kafka's verdict on each one — acknowledged, or refused for good — with an idempotent,
//! `acks=all` producer whose records never time out.
//!
//! Why never time out: a record failed on a timeout may have been written with its
//! acknowledgement lost, and sending it again would write it twice. Kept by the producer
//! through an outage, it is delivered once (same producer id and sequence) when the broker is
//! back. Callers bound how long *they* wait (the webhook answers 503), not the record's life.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use rdkafka::message::OwnedHeaders;

use crate::config::KafkaConfig;
use crate::kafka::diagnosis::{self, Diagnosed, Diagnosis};

/// Why a record was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot create the Kafka producer; check kafka.brokers and kafka.properties")]
    Create(#[source] KafkaError),
    #[error("Kafka did not acknowledge an event to {topic}; is the broker at {brokers} up?")]
    NotAcknowledged {
        topic: String,
        brokers: String,
        #[source]
        source: Box<KafkaError>,
    },
    #[error("Kafka at {brokers} cannot be used; fix what the cause names")]
    Broker {
        brokers: String,
        #[source]
        problem: Diagnosed,
    },
}

/// Logs like every pixlake client, and keeps the diagnosis where the webhook can read it.
struct Context(Arc<Diagnosis>);

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        diagnosis::log_and_note(&self.0, level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.0.note(diagnosis::code_of(&error), reason).is_none() {
            tracing::debug!(target: "librdkafka", %error, "{reason}");
        }
    }
}

/// One record to publish.
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Option<OwnedHeaders>,
}

/// Kafka's verdict on a group of records.
#[derive(Debug)]
pub struct Published {
    /// Per record, in order: acknowledged or not.
    pub acknowledged: Vec<bool>,
    /// The first failure, if any event was not acknowledged.
    pub first_error: Option<PublishError>,
}

/// The producer.
pub struct Publisher {
    producer: FutureProducer<Context>,
    diagnosis: Arc<Diagnosis>,
    brokers: String,
}

impl Publisher {
    /// An idempotent, `acks=all` producer whose records never time out (see the module doc),
    /// taking records up to `max_message_bytes`.
    pub fn new(kafka: &KafkaConfig, max_message_bytes: usize) -> Result<Self, PublishError> {
        let max = (max_message_bytes + 64 * 1024).max(1_000_000).to_string();
        let config = crate::kafka::client_config(
            kafka,
            crate::kafka::Role::Producer,
            // A request's events go out together: no lingering for more. What an outage may
            // hold is bounded (new requests wait, then 503).
            &[
                ("linger.ms", "2"),
                ("compression.type", "lz4"),
                ("queue.buffering.max.kbytes", "262144"),
                ("message.max.bytes", &max),
            ],
            // Every record's report is its verdict: reports of errors only would leave the
            // successful ones' futures waiting for ever.
            &[
                ("acks", "all"),
                ("enable.idempotence", "true"),
                ("message.timeout.ms", "0"),
                ("delivery.report.only.error", "false"),
            ],
        );
        let diagnosis = Arc::new(Diagnosis::default());
        let producer = config.create_with_context(Context(diagnosis.clone())).map_err(PublishError::Create)?;
        Ok(Publisher { producer, diagnosis, brokers: kafka.brokers.clone() })
    }

    /// Publishes `events` and waits for Kafka's verdict on every one of them (none is left
    /// queued behind the caller's back): which were acknowledged, and the first failure.
    ///
    /// Records do not time out (see the module doc): this returns once Kafka acknowledged each
    /// record, or refused it for good (an unknown topic, a record too large, a fatal producer
    /// error).
    pub async fn publish(&self, records: Vec<Record<'_>>) -> Published {
        let mut pending = Vec::with_capacity(records.len());
        let mut first_error = None;
        for r in records {
            let topic = r.topic;
            let mut record = FutureRecord::to(topic).payload(r.value);
            if let Some(k) = r.key {
                record = record.key(k);
            }
            if let Some(h) = r.headers {
                record = record.headers(h);
            }
            let queued = loop {
                match self.producer.send_result(record) {
                    Ok(f) => break Some(f),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((source, _)) => {
                        first_error.get_or_insert_with(|| self.failed(topic, source));
                        break None;
                    }
                }
            };
            pending.push((topic, queued));
        }
        let mut acknowledged = Vec::with_capacity(pending.len());
        for (topic, future) in pending {
            let Some(future) = future else {
                acknowledged.push(false);
                continue;
            };
            let error = match future.await {
                Ok(Ok(_)) => {
                    acknowledged.push(true);
                    continue;
                }
                Ok(Err((source, _))) => source,
                // The producer went away under the record: nothing is known of it.
                Err(_) => KafkaError::Canceled,
            };
            acknowledged.push(false);
            first_error.get_or_insert_with(|| self.failed(topic, error));
        }
        if first_error.is_none() {
            self.diagnosis.clear();
        }
        Published { acknowledged, first_error }
    }

    fn failed(&self, topic: &str, source: KafkaError) -> PublishError {
        match self.diagnosis.get() {
            Some(problem) => PublishError::Broker { brokers: self.brokers.clone(), problem },
            None => PublishError::NotAcknowledged {
                topic: topic.to_owned(),
                brokers: self.brokers.clone(),
                source: Box::new(source),
            },
        }
    }

    /// Fails for the first of `topics` the cluster does not have (see
    /// [`super::producer::require_topics`]): a missing topic would hold every record forever.
    pub fn require_topics(&self, topics: &[&str], timeout: Duration) -> Result<(), super::producer::ProduceError> {
        super::producer::require_topics(self.producer.client(), &self.brokers, topics, timeout, || self.problem())
    }

    /// What the client found wrong with the cluster that retrying will not cure, if anything.
    pub fn problem(&self) -> Option<Diagnosed> {
        self.diagnosis.get()
    }

    /// Waits for every queued record (at most `timeout`); returns how many are still unsent.
    pub fn flush(&self, timeout: Duration) -> i32 {
        let _ = self.producer.flush(timeout);
        self.producer.in_flight_count()
    }
}
