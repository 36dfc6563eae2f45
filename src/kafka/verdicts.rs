//! The sources' producer (`webhook`, `ship-log`): publishes a group of records and waits for
//! Kafka's verdict on each one — written, or not written — with an idempotent, `acks=all`
//! producer whose records never time out.
//!
//! Why never time out: a record failed on a timeout may have been written with its
//! acknowledgement lost, and sending it again would write it twice. Kept by the producer
//! through an outage, it is delivered once (same producer id and sequence) when the broker is
//! back. Callers bound how long *they* wait (the webhook answers 503), not the record's life.
//!
//! **One request in flight per broker connection.** When a request fails while the next one of
//! its partition is already in flight, that one is refused for the sequence gap and librdkafka
//! bumps the producer's epoch — for every partition. Each partition's queue is then renumbered
//! under the new epoch, records waiting to be retried after an unanswered request included
//! (possibly written): their retry is a new record to the broker, appended a second time and
//! reported delivered, which neither the deduplication index nor the read-back below can see.
//! With one request in flight per connection a partition never has a second request behind a
//! failed one, and that bump does not happen. The other bumps remain, and with them the
//! duplicates: a record refused for good by the broker (authorization, a record larger than the
//! topic's `max.message.bytes`, an invalid record or timestamp, a policy) and an unknown producer
//! id — each while some partition holds records to retry after an unanswered request, which can
//! last a whole outage. (Message timeouts, the third cause, are off: see above.)
//!
//! **Records in doubt.** Some failures leave a record's fate unknown: librdkafka reports them
//! *possibly persisted* (`rd_kafka_message_status`) — sent, then failed for good before a
//! trustworthy answer (the idempotent producer's fatal errors; its id changing under the
//! request). Such a record is neither acknowledged (it may be missing) nor refused (a caller's
//! retry may write it twice). [`Publisher::publish`] waits [`READ_BACK_AFTER`] — time for a
//! request still inside the broker to be appended and to fall below the high watermark — then
//! reads its partition back ([`super::readback`]) from an offset the record cannot be before
//! (the partition's high watermark when the publisher started, raised past each acknowledged
//! record), retrying until the broker answers, and reports it written if it is there. Not
//! covered: a record held above the high watermark longer than that wait (a follower neither
//! in sync nor dropped from the ISR), a request held in an overloaded broker's queue longer, a
//! partition truncated below an acknowledged offset (unclean leader election), a topic
//! re-created under its name while the publisher runs. After a fatal error the producer takes
//! nothing more ([`Publisher::fatal`]): the process must be restarted, once the read-back ended
//! (the webhook's stop waits for it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::bindings::{rd_kafka_message_status, rd_kafka_msg_status_t};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::oneshot;

use super::readback::{self, Wanted};
use crate::config::KafkaConfig;
use crate::kafka::diagnosis::{self, Diagnosed, Diagnosis};

/// How long one read-back of records in doubt may take per partition before it goes on in the
/// next attempt from where it got.
pub const READ_BACK_BUDGET: Duration = Duration::from_secs(30);
/// How long after a record's failure its partition is read back: librdkafka's default
/// `request.timeout.ms` (how long the broker may hold a produce request waiting for the
/// replicas) plus the broker's default `replica.lag.time.max.ms` (how long a follower that does
/// not fetch can hold the high watermark below an appended record before it leaves the ISR).
pub const READ_BACK_AFTER: Duration = Duration::from_secs(60);
/// The longest wait between read-back attempts while the broker does not answer.
const READ_BACK_MAX_DELAY: Duration = Duration::from_secs(10);

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

/// What librdkafka reported for one record.
#[derive(Debug)]
enum Report {
    Written {
        partition: i32,
        offset: i64,
    },
    /// Not in the log: sending it again cannot write it twice.
    NotWritten(KafkaError),
    /// Sent, with no answer: in the log or not (see the module doc). Counted as unsettled from
    /// its report until it is read back (or the caller gives up).
    InDoubt {
        partition: i32,
        error: KafkaError,
        counted: Unsettled,
    },
}

/// Logs like every pixlake client, keeps the diagnosis where the webhook can read it, and
/// turns each delivery report into a [`Report`] for the record's sender.
struct Context {
    diagnosis: Arc<Diagnosis>,
    /// Records in doubt not read back yet.
    in_doubt: Arc<AtomicUsize>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        diagnosis::log_and_note(&self.diagnosis, level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::Global(RDKafkaErrorCode::Fatal)) {
            tracing::error!(target: "librdkafka", %error,
                "{reason}; the producer takes nothing more: stop the process (SIGTERM: it waits for the read-back of \
                 records in doubt) and start it again");
        } else if self.diagnosis.note(diagnosis::code_of(&error), reason).is_none() {
            tracing::debug!(target: "librdkafka", %error, "{reason}");
        }
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Box<oneshot::Sender<Report>>;

    fn delivery(&self, result: &DeliveryResult<'_>, sender: Self::DeliveryOpaque) {
        let report = match result {
            Ok(m) => Report::Written { partition: m.partition(), offset: m.offset() },
            Err((error, m)) => {
                // SAFETY: `m` is the delivery report's message, valid for this call;
                // rd_kafka_message_status only reads it.
                let status = unsafe { rd_kafka_message_status(m.ptr()) };
                match status {
                    rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_PERSISTED => {
                        Report::Written { partition: m.partition(), offset: m.offset() }
                    }
                    // A record never given a partition was never sent (librdkafka assigns it
                    // before a record can leave).
                    rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED if m.partition() >= 0 => {
                        Report::InDoubt {
                            partition: m.partition(),
                            error: error.clone(),
                            counted: Unsettled::count(&self.in_doubt),
                        }
                    }
                    _ => Report::NotWritten(error.clone()),
                }
            }
        };
        // The sender may have stopped waiting (a stopping ship-log): nothing to tell then.
        let _ = sender.send(report);
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
    /// Per record, in order: written to Kafka or not.
    pub acknowledged: Vec<bool>,
    /// The first failure, if any event was not written.
    pub first_error: Option<PublishError>,
}

/// Per topic, per partition: an offset no record queued from now on can land before (the
/// partition's end when the publisher started, raised past each acknowledged record).
type Floors = HashMap<String, Vec<Option<i64>>>;

/// The producer.
pub struct Publisher {
    producer: ThreadedProducer<Context>,
    diagnosis: Arc<Diagnosis>,
    kafka: KafkaConfig,
    floors: Mutex<Floors>,
    /// Records being read back (counted by [`Publisher::flush`] as not yet settled).
    in_doubt: Arc<AtomicUsize>,
    read_back_after: Duration,
}

/// One record in doubt, counted until dropped.
#[derive(Debug)]
struct Unsettled(Arc<AtomicUsize>);

impl Unsettled {
    fn count(counter: &Arc<AtomicUsize>) -> Unsettled {
        counter.fetch_add(1, Ordering::Relaxed);
        Unsettled(counter.clone())
    }
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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
            // successful ones' senders waiting for ever.
            &[
                ("acks", "all"),
                ("enable.idempotence", "true"),
                // See the module doc: no epoch bump behind an unanswered request.
                ("max.in.flight.requests.per.connection", "1"),
                ("message.timeout.ms", "0"),
                ("delivery.report.only.error", "false"),
            ],
        );
        let diagnosis = Arc::new(Diagnosis::default());
        let in_doubt = Arc::new(AtomicUsize::new(0));
        let context = Context { diagnosis: diagnosis.clone(), in_doubt: in_doubt.clone() };
        let producer = config.create_with_context(context).map_err(PublishError::Create)?;
        Ok(Publisher {
            producer,
            diagnosis,
            kafka: kafka.clone(),
            floors: Mutex::new(HashMap::new()),
            in_doubt,
            read_back_after: READ_BACK_AFTER,
        })
    }

    /// Publishes `records` and waits for Kafka's verdict on every one of them (none is left
    /// queued behind the caller's back): which were written, and the first failure.
    ///
    /// Records do not time out (see the module doc): this returns once Kafka acknowledged each
    /// record, or refused it for good (an unknown topic, a record too large, a fatal producer
    /// error), and once every record in doubt was read back — which waits for the broker.
    pub async fn publish(&self, records: Vec<Record<'_>>) -> Published {
        // Before anything is queued: every record lands at or after these.
        let floors = self.floors_of(records.iter().map(|r| r.topic));
        let mut pending = Vec::with_capacity(records.len());
        let mut first_error = None;
        for r in &records {
            let (tx, rx) = oneshot::channel();
            let mut record = BaseRecord::with_opaque_to(r.topic, Box::new(tx)).payload(r.value);
            if let Some(k) = r.key {
                record = record.key(k);
            }
            if let Some(h) = &r.headers {
                record = record.headers(h.clone());
            }
            let queued = loop {
                match self.producer.send(record) {
                    Ok(()) => break Some(rx),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((source, _)) => {
                        first_error.get_or_insert_with(|| self.failed(r.topic, source));
                        break None;
                    }
                }
            };
            pending.push(queued);
        }
        let mut reports = Vec::with_capacity(pending.len());
        for rx in pending {
            reports.push(match rx {
                None => None,
                // The producer went away under the record (it lives as long as `self`): nothing
                // is known of it.
                Some(rx) => Some(rx.await.unwrap_or(Report::NotWritten(KafkaError::Canceled))),
            });
        }
        self.raise_floors(records.iter().zip(&reports).filter_map(|(r, report)| match report {
            Some(Report::Written { partition, offset }) => Some((r.topic, *partition, *offset)),
            _ => None,
        }));
        let mut acknowledged: Vec<bool> = reports.iter().map(|r| matches!(r, Some(Report::Written { .. }))).collect();
        let mut doubts = Vec::new();
        for (i, (r, report)) in records.iter().zip(reports).enumerate() {
            match report {
                Some(Report::NotWritten(e)) => {
                    first_error.get_or_insert_with(|| self.failed(r.topic, e));
                }
                Some(Report::InDoubt { partition, error, counted }) => {
                    let from = floors.get(r.topic).and_then(|p| p.get(partition as usize).copied().flatten());
                    let wanted = Wanted {
                        topic: r.topic.to_owned(),
                        partition,
                        from,
                        key: r.key.map(<[u8]>::to_vec),
                        value: r.value.to_vec(),
                        headers: r.headers.clone(),
                    };
                    doubts.push((i, wanted, error, counted));
                }
                Some(Report::Written { .. }) | None => {}
            }
        }
        if !doubts.is_empty() {
            let wanted = doubts.iter().map(|(_, w, _, _)| w.clone()).collect();
            let found = self.read_back(wanted).await;
            for ((i, w, error, _counted), written) in doubts.into_iter().zip(found) {
                acknowledged[i] = written;
                if !written {
                    first_error.get_or_insert_with(|| self.failed(&w.topic, error));
                }
            }
        }
        if first_error.is_none() {
            self.diagnosis.clear();
        }
        Published { acknowledged, first_error }
    }

    /// Whether each of `wanted` is written (see the module doc): waits [`READ_BACK_AFTER`] (or
    /// what [`Publisher::with_read_back_after`] set), then reads back until that is known.
    async fn read_back(&self, mut wanted: Vec<Wanted>) -> Vec<bool> {
        use backon::BackoffBuilder;
        let unbounded = wanted.iter().filter(|w| w.from.is_none()).count();
        tracing::warn!(
            records = wanted.len(),
            read_from_the_start = unbounded,
            wait_s = self.read_back_after.as_secs(),
            "Kafka failed records after sending them, without knowing whether it wrote them; their partitions are \
             read back before any of them is published again"
        );
        tokio::time::sleep(self.read_back_after).await;
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(READ_BACK_MAX_DELAY)
            .without_max_times()
            .build();
        let mut found = vec![false; wanted.len()];
        loop {
            let kafka = self.kafka.clone();
            let (mut w, mut f) = (wanted.clone(), found.clone());
            let attempt = tokio::task::spawn_blocking(move || {
                let outcome = readback::reader(&kafka)
                    .map_err(|source| readback::ReadBackError::Kafka {
                        topic: w.first().map(|w| w.topic.clone()).unwrap_or_default(),
                        partition: -1,
                        source,
                    })
                    .and_then(|reader| readback::find(&reader, &mut w, &mut f, READ_BACK_BUDGET));
                (w, f, outcome)
            })
            .await;
            match attempt {
                Ok((_, f, Ok(()))) => {
                    tracing::info!(
                        records = f.len(),
                        written = f.iter().filter(|f| **f).count(),
                        "records in doubt read back: those found count as published, the others are published again"
                    );
                    return f;
                }
                // What was read is kept: the next attempt goes on from there.
                Ok((w, f, Err(e))) => {
                    tracing::warn!(error = %crate::telemetry::Chain(&e), "records in doubt not read back yet; retrying");
                    (wanted, found) = (w, f);
                }
                Err(join) => {
                    tracing::error!(error = %join, "the read-back of records in doubt failed; this is a bug, please \
                        report it; retrying");
                }
            }
            tokio::time::sleep(delays.next().unwrap_or(READ_BACK_MAX_DELAY)).await;
        }
    }

    /// Publishes with the read-back of records in doubt `after` their failure instead of
    /// [`READ_BACK_AFTER`] (tests).
    pub fn with_read_back_after(mut self, after: Duration) -> Self {
        self.read_back_after = after;
        self
    }

    /// The floors of `topics` now (see [`Floors`]).
    fn floors_of<'a>(&self, topics: impl Iterator<Item = &'a str>) -> Floors {
        let all = self.floors.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Floors::new();
        for t in topics {
            if !out.contains_key(t)
                && let Some(p) = all.get(t)
            {
                out.insert(t.to_owned(), p.clone());
            }
        }
        out
    }

    /// Raises the floors past records Kafka acknowledged.
    fn raise_floors<'a>(&self, written: impl Iterator<Item = (&'a str, i32, i64)>) {
        let mut all = self.floors.lock().unwrap_or_else(PoisonError::into_inner);
        for (topic, partition, offset) in written {
            // An acknowledgement without an offset (-1001: a retry the broker recognised) says nothing.
            let (Ok(p), true) = (usize::try_from(partition), offset >= 0) else { continue };
            if !all.contains_key(topic) {
                all.insert(topic.to_owned(), Vec::new());
            }
            let Some(floors) = all.get_mut(topic) else { continue };
            if floors.len() <= p {
                floors.resize(p + 1, None);
            }
            floors[p] = Some(floors[p].map_or(offset + 1, |f| f.max(offset + 1)));
        }
    }

    fn failed(&self, topic: &str, source: KafkaError) -> PublishError {
        match self.diagnosis.get() {
            Some(problem) => PublishError::Broker { brokers: self.kafka.brokers.clone(), problem },
            None => PublishError::NotAcknowledged {
                topic: topic.to_owned(),
                brokers: self.kafka.brokers.clone(),
                source: Box::new(source),
            },
        }
    }

    /// Fails for the first of `topics` the cluster does not have (see
    /// [`super::producer::require_topics`]): a missing topic would hold every record forever.
    /// Then learns where each of their partitions ends, before anything is published: the
    /// lower bound a record in doubt is read back from (see the module doc). A partition whose
    /// end cannot be learnt now (the broker is down) is read back from its start, if ever.
    pub fn require_topics(&self, topics: &[&str], timeout: Duration) -> Result<(), super::producer::ProduceError> {
        // Within `timeout` in all: a broker that stops answering leaves the ends unknown (those
        // partitions are read back from their start, if ever), it does not hold the start-up.
        let until = std::time::Instant::now() + timeout;
        let left = || until.saturating_duration_since(std::time::Instant::now());
        let client = self.producer.client();
        super::producer::require_topics(client, &self.kafka.brokers, topics, timeout, || self.problem())?;
        let mut ends = Vec::new();
        for &topic in topics {
            let Ok(metadata) = client.fetch_metadata(Some(topic), left()) else { continue };
            for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
                if let Ok((_, end)) = client.fetch_watermarks(topic, p.id(), left()) {
                    // As if the record just below the end were acknowledged: the floor is the
                    // end (an empty partition's, -1, says nothing: it is read from its start).
                    ends.push((topic, p.id(), end - 1));
                }
            }
        }
        self.raise_floors(ends.into_iter());
        Ok(())
    }

    /// What the client found wrong with the cluster that retrying will not cure, if anything.
    pub fn problem(&self) -> Option<Diagnosed> {
        self.diagnosis.get()
    }

    /// The producer's fatal error, if it had one: it takes nothing more (restart the process).
    pub fn fatal(&self) -> Option<String> {
        self.producer.client().fatal_error().map(|(code, reason)| format!("{reason} ({code:?})"))
    }

    /// Records in doubt not read back yet (see the module doc).
    pub fn in_doubt(&self) -> usize {
        self.in_doubt.load(Ordering::Relaxed)
    }

    /// Waits for every queued record (at most `timeout`); returns how many are still unsettled:
    /// queued, or being read back.
    pub fn flush(&self, timeout: Duration) -> i32 {
        let _ = self.producer.flush(timeout);
        self.producer.in_flight_count() + i32::try_from(self.in_doubt.load(Ordering::Relaxed)).unwrap_or(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    //! The records-in-doubt path against librdkafka's mock cluster, which can fail a produce
    //! request on demand: the first request answered OUT_OF_ORDER_SEQUENCE_NUMBER is the
    //! head-of-line desynchronization librdkafka fails for good as *possibly persisted*.

    use std::collections::BTreeMap;

    use rdkafka::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::*;

    fn kafka(brokers: String) -> KafkaConfig {
        KafkaConfig { brokers, properties: BTreeMap::new(), consumer: BTreeMap::new(), producer: BTreeMap::new() }
    }

    /// Publishes `key`/`value` once with the next produce request failed as possibly persisted,
    /// after `before` was written to the same partition by another producer.
    async fn publish_in_doubt(before: Option<(&[u8], &[u8])>, key: &[u8], value: &[u8]) -> Published {
        let mock = MockCluster::new(1).unwrap();
        mock.create_topic("doubt", 1, 1).unwrap();
        let kafka = kafka(mock.bootstrap_servers());
        let publisher = Publisher::new(&kafka, 1_000_000).unwrap().with_read_back_after(Duration::ZERO);
        publisher.require_topics(&["doubt"], Duration::from_secs(10)).unwrap();
        if let Some((k, v)) = before {
            let other: BaseProducer = ClientConfig::new().set("bootstrap.servers", &kafka.brokers).create().unwrap();
            other.send(BaseRecord::to("doubt").key(k).payload(v)).unwrap();
            other.flush(Duration::from_secs(10)).unwrap();
        }
        mock.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER]);
        let record = Record { topic: "doubt", key: Some(key), value, headers: None };
        let out = tokio::time::timeout(Duration::from_secs(60), publisher.publish(vec![record])).await.unwrap();
        // The error that made it doubtful is fatal: the producer says so for good (readiness).
        assert!(publisher.fatal().is_some());
        assert_eq!(publisher.in_doubt(), 0, "read back: nothing left unsettled");
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_in_doubt_that_is_in_its_partition_counts_as_written() {
        let out = publish_in_doubt(Some((b"k1", b"event one")), b"k1", b"event one").await;
        assert_eq!(out.acknowledged, vec![true]);
        // Written: no failure to tell.
        assert!(out.first_error.is_none(), "{:?}", out.first_error);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_in_doubt_that_is_not_in_its_partition_is_not_written() {
        // Same value under another key, and another value under the same key: neither is it.
        let out = publish_in_doubt(Some((b"k2", b"event one")), b"k1", b"event one").await;
        assert_eq!(out.acknowledged, vec![false]);
        let out = publish_in_doubt(Some((b"k1", b"event two")), b"k1", b"event one").await;
        assert_eq!(out.acknowledged, vec![false]);
        assert!(out.first_error.is_some());
    }
}
