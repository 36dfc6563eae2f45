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

/// Why a request's events are not all acknowledged. Answered 503: the PSP retries, and the
/// events that were acknowledged are recognized then as duplicates (their ids are recorded).
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
    #[error("Kafka at {brokers} cannot be used; fix what the cause names (the webhook answers 503 until then)")]
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

/// Kafka's verdict on a request's events.
#[derive(Debug)]
pub struct Published {
    /// Per event, in order: acknowledged or not.
    pub acknowledged: Vec<bool>,
    /// The first failure, if any event was not acknowledged.
    pub first_error: Option<PublishError>,
}

/// The webhook's producer.
pub struct Publisher {
    producer: FutureProducer<Context>,
    diagnosis: Arc<Diagnosis>,
    topics: Topics,
    brokers: String,
}

impl Publisher {
    /// An idempotent, `acks=all` producer whose records never time out: through an outage the
    /// producer keeps each record and, once the broker is back, delivers it exactly once (same
    /// producer id and sequence). A record failed on a timeout could have been written with its
    /// acknowledgement lost — and a retry would write it again. The request waits only
    /// `webhook.publish_timeout_ms` for the verdict (503 after that); the publication goes on,
    /// and records what gets through for the PSP's retry to find.
    pub fn new(kafka: &KafkaConfig, topics: Topics) -> Result<Self, PublishError> {
        let config = crate::kafka::client_config(
            kafka,
            crate::kafka::Role::Producer,
            // A request's events go out together: no lingering for more. What an outage may
            // hold is bounded (new requests wait, then 503).
            &[("linger.ms", "2"), ("compression.type", "lz4"), ("queue.buffering.max.kbytes", "262144")],
            &[("acks", "all"), ("enable.idempotence", "true"), ("message.timeout.ms", "0")],
        );
        let diagnosis = Arc::new(Diagnosis::default());
        let producer = config.create_with_context(Context(diagnosis.clone())).map_err(PublishError::Create)?;
        Ok(Publisher { producer, diagnosis, topics, brokers: kafka.brokers.clone() })
    }

    /// Publishes `events` and waits for Kafka's verdict on every one of them (none is left
    /// queued behind the caller's back): which were acknowledged, and the first failure.
    ///
    /// Records do not time out (see [`Publisher::new`]): this returns once Kafka acknowledged
    /// each record, or refused it for good (an unknown topic, a record too large, a fatal
    /// producer error).
    pub async fn publish(&self, events: &[&Outgoing]) -> Published {
        let mut pending = Vec::with_capacity(events.len());
        let mut first_error = None;
        for e in events {
            let topic = self.topics.get(e.category);
            let mut record = FutureRecord::to(topic).key(e.key.as_bytes()).payload(&e.value);
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
        let mut acknowledged = Vec::with_capacity(events.len());
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
