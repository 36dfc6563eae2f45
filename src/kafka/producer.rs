//! An acknowledged producer: every record is either confirmed by all in-sync replicas
//! (`acks=all`, idempotent) or counted as failed — nothing is reported sent on hope.
//!
//! librdkafka queues records and delivers them on its own thread; delivery reports come back
//! through [`Context::delivery`]. [`AckedProducer::finish`] flushes and returns the totals, so a
//! caller can refuse to report success while any record is unconfirmed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::diagnosis::{Diagnosed, Diagnosis};
use crate::config::KafkaConfig;

/// Delivery counters shared with librdkafka's callback thread.
#[derive(Default, Debug)]
pub struct Counters {
    /// Records handed to librdkafka.
    pub queued: AtomicU64,
    /// Records acknowledged by the broker.
    pub delivered: AtomicU64,
    /// Records that failed for good (after librdkafka's own retries).
    pub failed: AtomicU64,
    /// Bytes of values acknowledged.
    pub bytes: AtomicU64,
    /// Signalled after each delivery report, for [`AckedProducer::flush`].
    reported: (Mutex<()>, Condvar),
}

impl Counters {
    /// Records whose delivery report came (acknowledged or failed).
    fn settled(&self) -> u64 {
        self.delivered.load(Ordering::Acquire) + self.failed.load(Ordering::Acquire)
    }

    /// Wakes [`AckedProducer::flush`] (the lock orders this after its check of the counters).
    fn notify(&self) {
        drop(self.reported.0.lock().unwrap_or_else(PoisonError::into_inner));
        self.reported.1.notify_all();
    }
}

/// Receives delivery reports, and error events for the diagnosis.
pub struct Context {
    counters: Arc<Counters>,
    first_error: std::sync::Mutex<Option<String>>,
    diagnosis: Diagnosis,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::diagnosis::log_and_note(&self.diagnosis, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Unrecognized errors too (a fatal idempotent-producer error on the DLQ) must be seen.
        if self.diagnosis.note(super::diagnosis::code_of(&error), reason).is_none() {
            tracing::warn!(target: "librdkafka", %error, "{reason}");
        }
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(m) => {
                self.diagnosis.clear();
                let len = m.payload_len() as u64;
                self.counters.bytes.fetch_add(len, Ordering::Relaxed);
                self.counters.delivered.fetch_add(1, Ordering::Release);
            }
            Err((e, _)) => {
                if let Ok(mut first) = self.first_error.lock()
                    && first.is_none()
                {
                    *first = Some(e.to_string());
                }
                self.counters.failed.fetch_add(1, Ordering::Release);
            }
        }
        self.counters.notify();
    }
}

/// Totals after a flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: u64,
    pub failed: u64,
    pub bytes: u64,
    /// The first delivery error, if any.
    pub first_error: Option<String>,
}

/// Errors of the acknowledged producer.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("cannot create the Kafka producer; check kafka.brokers and kafka.properties")]
    Create(#[source] KafkaError),
    #[error("cannot queue a record to {topic}")]
    Enqueue {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("{pending} record(s) still unacknowledged after {timeout:?}; is the broker at {brokers} reachable?")]
    FlushTimeout { pending: i32, timeout: Duration, brokers: String },
    #[error(
        "topic {topic} does not exist on Kafka at {brokers}; create it (kafka-topics.sh --create, or scripts/kafka.sh \
         topics for the local broker), or point pipelines[].topic at one that does"
    )]
    NoTopic { topic: String, brokers: String },
    #[error("{pending} record(s) unacknowledged: Kafka at {brokers} cannot be used")]
    Broker {
        pending: i32,
        brokers: String,
        #[source]
        problem: Diagnosed,
    },
}

/// An unacknowledged record is an outage to a retry loop (see [`crate::fault`]).
impl crate::fault::Classify for ProduceError {
    fn permanent(&self) -> Option<crate::fault::Permanent> {
        None
    }
}

/// A producer whose every record is acknowledged or counted as failed.
pub struct AckedProducer {
    inner: ThreadedProducer<Context>,
    counters: Arc<Counters>,
    brokers: String,
}

impl AckedProducer {
    /// Creates the producer: idempotent, `acks=all`, lz4 batches, room for large records;
    /// records wait up to `linger_ms` for more to share their request (unless `kafka.producer`
    /// sets `linger.ms`).
    pub fn new(kafka: &KafkaConfig, max_message_bytes: usize, linger_ms: u32) -> Result<Self, ProduceError> {
        let max = (max_message_bytes + 64 * 1024).max(1_000_000).to_string();
        let linger = linger_ms.to_string();
        let config = super::client_config(
            kafka,
            super::Role::Producer,
            &[
                ("linger.ms", &linger),
                ("batch.size", "4000000"),
                ("compression.type", "lz4"),
                ("queue.buffering.max.messages", "1000000"),
                ("queue.buffering.max.kbytes", "1048576"),
                ("message.timeout.ms", "300000"),
                ("message.max.bytes", &max),
            ],
            // Every record's report is what `flush` waits for: reports of errors only would
            // make it time out.
            &[("acks", "all"), ("enable.idempotence", "true"), ("delivery.report.only.error", "false")],
        );
        let counters = Arc::new(Counters::default());
        let context = Context {
            counters: counters.clone(),
            first_error: std::sync::Mutex::new(None),
            diagnosis: Diagnosis::default(),
        };
        let inner = config.create_with_context(context).map_err(ProduceError::Create)?;
        Ok(AckedProducer { inner, counters, brokers: kafka.brokers.clone() })
    }

    /// Queues one record (a `None` key or value is sent as null), waiting while librdkafka's
    /// queue is full.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), ProduceError> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        loop {
            match self.inner.send(record) {
                Ok(()) => {
                    self.counters.queued.fetch_add(1, Ordering::Release);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((source, _)) => {
                    return Err(ProduceError::Enqueue { topic: topic.to_owned(), source });
                }
            }
        }
    }

    /// Fails with [`ProduceError::NoTopic`] for the first of `topics` the cluster does not have
    /// (see [`require_topics`]).
    pub fn require_topics(&self, topics: &[&str], timeout: Duration) -> Result<(), ProduceError> {
        require_topics(self.inner.client(), &self.brokers, topics, timeout, || self.problem())
    }

    /// Records queued and not yet acknowledged or failed.
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }

    /// The configured brokers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// Records acknowledged so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Why the broker cannot take records, if the client found a cause retrying will not cure
    /// (refused credentials, an untrusted certificate…).
    pub fn problem(&self) -> Option<Diagnosed> {
        self.inner.context().diagnosis.get()
    }

    /// Waits until every record queued so far is acknowledged or failed, at most `timeout`;
    /// the producer stays usable. Gives up early, with the cause, once the client's diagnosis
    /// has one ([`AckedProducer::problem`]).
    ///
    /// Not rdkafka's `flush`: with a [`ThreadedProducer`] the delivery reports go to its own
    /// polling thread, and `flush` polls the same queue in steps of 100 ms that no report
    /// shortens — every flush with a record outstanding took 100 ms or more (measured: the
    /// dead-letter wait of each ingest batch, 73 of 90 batches between 100 and 250 ms). This
    /// waits on the delivery reports themselves: a record is sent after `linger.ms` (5 ms for
    /// dead letters) and reported once the broker acknowledges it (3–5 ms per batch measured).
    ///
    /// "Queued so far" counts every thread's records: with several threads sending, a flush
    /// also waits for records another thread queued meanwhile (every caller today sends and
    /// flushes from one thread).
    pub fn flush(&self, timeout: Duration) -> Result<(), ProduceError> {
        let until = std::time::Instant::now() + timeout;
        let target = self.counters.queued.load(Ordering::Acquire);
        // `rd_kafka_flush` without a wait wakes the broker threads; it does not reliably cut
        // the linger short (librdkafka clears its flushing flag before they run). Its error only
        // says the queue is not empty yet.
        let _ = self.inner.flush(Duration::ZERO);
        let (lock, reported) = &self.counters.reported;
        let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let settled = self.counters.settled();
            if settled >= target {
                return Ok(());
            }
            let pending = i32::try_from(target - settled).unwrap_or(i32::MAX);
            if let Some(problem) = self.problem() {
                return Err(ProduceError::Broker { pending, brokers: self.brokers.clone(), problem });
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(ProduceError::FlushTimeout { pending, timeout, brokers: self.brokers.clone() });
            }
            // Woken by each report; the bound re-checks the diagnosis of an outage.
            guard = reported
                .wait_timeout(guard, left.min(Duration::from_secs(1)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Flushes (at most `timeout`) and returns the totals.
    pub fn finish(self, timeout: Duration) -> Result<Delivery, ProduceError> {
        self.flush(timeout)?;
        let first_error = self.inner.context().first_error.lock().ok().and_then(|e| e.clone());
        Ok(Delivery {
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
            first_error,
        })
    }
}

/// Fails with [`ProduceError::NoTopic`] for the first of `topics` the cluster `client` talks to
/// says it does not have (or could create, where the broker auto-creates topics). A cluster that
/// does not answer within `timeout` is not judged here: sending and flushing report that; a cause
/// retrying will not cure (`problem`: a refused password or certificate) is named at once.
pub fn require_topics<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    brokers: &str,
    topics: &[&str],
    timeout: Duration,
    problem: impl Fn() -> Option<Diagnosed>,
) -> Result<(), ProduceError> {
    // In one-second steps: a refused password or certificate is named as soon as it is known.
    let until = std::time::Instant::now() + timeout;
    let metadata = loop {
        let step = until.saturating_duration_since(std::time::Instant::now()).min(Duration::from_secs(1));
        match client.fetch_metadata(None, step) {
            Ok(m) => break m,
            Err(_) => {
                if let Some(problem) = problem() {
                    return Err(ProduceError::Broker { pending: 0, brokers: brokers.to_owned(), problem });
                }
                if std::time::Instant::now() >= until {
                    return Ok(());
                }
            }
        }
    };
    let known = |t: &str| metadata.topics().iter().any(|m| m.name() == t && !m.partitions().is_empty());
    match topics.iter().find(|t| !known(t)) {
        // Where the broker creates topics on first use, asking for it creates it.
        // (Its first answer for a topic it just created is "leader not available".)
        Some(t)
            if client.fetch_metadata(Some(t), timeout).is_ok_and(|m| {
                m.topics().first().is_some_and(|m| match m.error() {
                    None => !m.partitions().is_empty(),
                    Some(e) => e == rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                })
            }) =>
        {
            Ok(())
        }
        Some(t) => Err(ProduceError::NoTopic { topic: (*t).to_owned(), brokers: brokers.to_owned() }),
        None => Ok(()),
    }
}
