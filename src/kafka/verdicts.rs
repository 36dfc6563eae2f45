//! The sources' producer (`webhook`, `ship-log`): publishes a group of records and waits for
//! Kafka's verdict on each one — written, or not written — with an idempotent, `acks=all`
//! producer whose records never time out.
//!
//! Why never time out: a record failed on a timeout may have been written with its
//! acknowledgement lost, and sending it again would write it twice. Kept by the producer
//! through an outage, it is delivered once (same producer id and sequence) when the broker is
//! back. Callers bound how long *they* wait (the webhook answers 503), not the record's life.
//!
//! **Records in doubt.** A few failures still leave a record's fate unknown: librdkafka
//! reports them *possibly persisted* (`rd_kafka_message_status`) — a request that left and got
//! no answer, failed for good because the idempotent producer's id changed while it was in
//! flight (an epoch bump after another partition's failure, as a broker stopping can cause).
//! Such a record is neither acknowledged (it may be missing) nor failed (a caller's retry may
//! write it twice): [`Publisher::publish`] reads its partition back ([`super::readback`]) once
//! the broker answers, from an offset the record cannot be before — the partition's end when
//! the publisher started, raised past each acknowledged record — and reports it written if it
//! is there. Callers see only written or not written, and publish again only what is not.

use std::collections::HashMap;
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

/// How long one read-back of records in doubt may take per partition before it is tried again.
const READ_BACK_BUDGET: Duration = Duration::from_secs(30);
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
    /// Sent, with no answer: in the log or not (see the module doc).
    InDoubt {
        partition: i32,
        error: KafkaError,
    },
}

/// Logs like every pixlake client, keeps the diagnosis where the webhook can read it, and
/// turns each delivery report into a [`Report`] for the record's sender.
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
                        Report::InDoubt { partition: m.partition(), error: error.clone() }
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
                ("message.timeout.ms", "0"),
                ("delivery.report.only.error", "false"),
            ],
        );
        let diagnosis = Arc::new(Diagnosis::default());
        let producer = config.create_with_context(Context(diagnosis.clone())).map_err(PublishError::Create)?;
        Ok(Publisher { producer, diagnosis, kafka: kafka.clone(), floors: Mutex::new(HashMap::new()) })
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
        for (r, rx) in records.iter().zip(pending) {
            let report = match rx {
                None => None,
                // The producer went away under the record: nothing is known of it.
                Some(rx) => Some(rx.await.unwrap_or(Report::NotWritten(KafkaError::Canceled))),
            };
            if let Some(Report::NotWritten(e) | Report::InDoubt { error: e, .. }) = &report {
                first_error.get_or_insert_with(|| self.failed(r.topic, e.clone()));
            }
            reports.push(report);
        }
        self.raise_floors(records.iter().zip(&reports).filter_map(|(r, report)| match report {
            Some(Report::Written { partition, offset }) => Some((r.topic, *partition, *offset)),
            _ => None,
        }));
        let mut acknowledged: Vec<bool> = reports.iter().map(|r| matches!(r, Some(Report::Written { .. }))).collect();
        let doubts: Vec<(usize, Wanted)> = records
            .iter()
            .zip(&reports)
            .enumerate()
            .filter_map(|(i, (r, report))| match report {
                Some(Report::InDoubt { partition, .. }) => Some((
                    i,
                    Wanted {
                        topic: r.topic.to_owned(),
                        partition: *partition,
                        from: floors.get(r.topic).and_then(|p| p.get(*partition as usize).copied().flatten()),
                        key: r.key.map(<[u8]>::to_vec),
                        value: r.value.to_vec(),
                    },
                )),
                _ => None,
            })
            .collect();
        if !doubts.is_empty() {
            let (at, wanted): (Vec<usize>, Vec<Wanted>) = doubts.into_iter().unzip();
            for (i, written) in at.into_iter().zip(self.read_back(wanted).await) {
                acknowledged[i] = written;
            }
        }
        if first_error.is_none() {
            self.diagnosis.clear();
        }
        Published { acknowledged, first_error }
    }

    /// Reads `wanted` back until the broker answers (see the module doc): whether each is written.
    async fn read_back(&self, wanted: Vec<Wanted>) -> Vec<bool> {
        use backon::BackoffBuilder;
        let unknown = wanted.iter().filter(|w| w.from.is_none()).count();
        tracing::warn!(
            records = wanted.len(),
            without_lower_bound = unknown,
            "Kafka failed records after sending them, without saying whether it wrote them; reading their partitions \
             back before publishing any of them again"
        );
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(READ_BACK_MAX_DELAY)
            .without_max_times()
            .build();
        let mut wanted = wanted;
        loop {
            let kafka = self.kafka.clone();
            let attempt = tokio::task::spawn_blocking(move || {
                let found = readback::reader(&kafka)
                    .map_err(|source| readback::ReadBackError::Kafka {
                        topic: wanted.first().map(|w| w.topic.clone()).unwrap_or_default(),
                        partition: -1,
                        source,
                    })
                    .and_then(|reader| readback::find(&reader, &wanted, READ_BACK_BUDGET));
                (wanted, found)
            })
            .await;
            match attempt {
                Ok((_, Ok(found))) => {
                    tracing::info!(
                        records = found.len(),
                        written = found.iter().filter(|f| **f).count(),
                        "records in doubt read back: those found count as published, the others are not"
                    );
                    return found;
                }
                Ok((back, Err(e))) => {
                    tracing::warn!(error = %crate::telemetry::Chain(&e), "cannot read records in doubt back yet; retrying");
                    wanted = back;
                }
                // A panic in the read-back (a bug): nothing learnt; not written is what the
                // caller assumed before records in doubt were told apart.
                Err(join) => {
                    tracing::error!(error = %join, "the read-back of records in doubt failed; this is a bug, please report it");
                    return Vec::new();
                }
            }
            tokio::time::sleep(delays.next().unwrap_or(READ_BACK_MAX_DELAY)).await;
        }
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
            let Ok(p) = usize::try_from(partition) else { continue };
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
        let client = self.producer.client();
        super::producer::require_topics(client, &self.kafka.brokers, topics, timeout, || self.problem())?;
        let mut ends = Vec::new();
        for &topic in topics {
            let Ok(metadata) = client.fetch_metadata(Some(topic), timeout) else { continue };
            for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
                if let Ok((_, end)) = client.fetch_watermarks(topic, p.id(), timeout) {
                    // As if a record just below the end were acknowledged: the floor is the end.
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

    /// Waits for every queued record (at most `timeout`); returns how many are still unsent.
    pub fn flush(&self, timeout: Duration) -> i32 {
        let _ = self.producer.flush(timeout);
        self.producer.in_flight_count()
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
        let publisher = Publisher::new(&kafka, 1_000_000).unwrap();
        publisher.require_topics(&["doubt"], Duration::from_secs(10)).unwrap();
        if let Some((k, v)) = before {
            let other: BaseProducer = ClientConfig::new().set("bootstrap.servers", &kafka.brokers).create().unwrap();
            other.send(BaseRecord::to("doubt").key(k).payload(v)).unwrap();
            other.flush(Duration::from_secs(10)).unwrap();
        }
        mock.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER]);
        let record = Record { topic: "doubt", key: Some(key), value, headers: None };
        tokio::time::timeout(Duration::from_secs(60), publisher.publish(vec![record])).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_in_doubt_that_is_in_its_partition_counts_as_written() {
        let out = publish_in_doubt(Some((b"k1", b"event one")), b"k1", b"event one").await;
        assert_eq!(out.acknowledged, vec![true]);
        // The failure is still told (the producer is dead after it).
        assert!(out.first_error.is_some());
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
