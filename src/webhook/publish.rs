//! Publishing one request's events and waiting for Kafka's acknowledgement of every one of them
//! (idempotent producer, `acks=all`): the webhook answers 200 only after this returns `Ok`.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::api_pix::Outgoing;
use crate::config::KafkaConfig;
use crate::kafka::diagnosis::{self, Diagnosed, Diagnosis};
use crate::produce::sink::Topics;

/// Why a request's events are not all acknowledged. Every variant is answered 503: the PSP
/// retries, and what did get through is recognized then as a duplicate.
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
    #[error("Kafka at {brokers} cannot be used")]
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

/// The webhook's producer.
pub struct Publisher {
    producer: FutureProducer<Context>,
    diagnosis: Arc<Diagnosis>,
    topics: Topics,
    brokers: String,
}

impl Publisher {
    /// An idempotent, `acks=all` producer whose records time out after `timeout` (so that an
    /// outage is answered before the PSP's own timeout).
    pub fn new(kafka: &KafkaConfig, topics: Topics, timeout: Duration) -> Result<Self, PublishError> {
        let timeout_ms = timeout.as_millis().to_string();
        let config = crate::kafka::client_config(
            kafka,
            crate::kafka::Role::Producer,
            // A request's events go out together: no lingering for more.
            &[("linger.ms", "2"), ("compression.type", "lz4")],
            &[("acks", "all"), ("enable.idempotence", "true"), ("message.timeout.ms", &timeout_ms)],
        );
        let diagnosis = Arc::new(Diagnosis::default());
        let producer = config.create_with_context(Context(diagnosis.clone())).map_err(PublishError::Create)?;
        Ok(Publisher { producer, diagnosis, topics, brokers: kafka.brokers.clone() })
    }

    /// Publishes `events` and waits until Kafka acknowledged each one. Fails if any was not
    /// (the others may have been: their ids are deduplicated on the retry).
    pub async fn publish(&self, events: &[&Outgoing]) -> Result<(), PublishError> {
        let mut pending = Vec::with_capacity(events.len());
        for e in events {
            let topic = self.topics.get(e.category);
            let mut record = FutureRecord::to(topic).key(e.key.as_bytes()).payload(&e.value);
            let future = loop {
                match self.producer.send_result(record) {
                    Ok(f) => break f,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((source, _)) => return Err(self.failed(topic, source)),
                }
            };
            pending.push((topic, future));
        }
        let mut first_error = None;
        for (topic, future) in pending {
            let outcome = match future.await {
                Ok(Ok(_)) => continue,
                Ok(Err((source, _))) => source,
                // The producer went away under the record: nothing is known of it.
                Err(_) => KafkaError::Canceled,
            };
            first_error.get_or_insert_with(|| self.failed(topic, outcome));
        }
        match first_error {
            None => {
                self.diagnosis.clear();
                Ok(())
            }
            Some(e) => Err(e),
        }
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
