//! Whether records whose delivery is in doubt are in their partition: read back from a known
//! lower bound to the partition's end, and compared byte for byte.
//!
//! librdkafka reports some failed records as *possibly persisted*: the request left, and its
//! answer never came (the connection closed under it; or the idempotent producer's id changed
//! while it was in flight, which fails it for good). Sending such a record again may write it
//! twice; not sending it may lose it. The log itself says which: see [`find`].

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::kafka::Reader;

/// How long one watermark request may take.
const WATERMARKS_TIMEOUT: Duration = Duration::from_secs(5);

/// A record to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub topic: String,
    pub partition: i32,
    /// An offset the record cannot be before (`None`: the partition's start).
    pub from: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// Why a read-back did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    #[error("cannot read {topic} [{partition}] back")]
    Kafka {
        topic: String,
        partition: i32,
        #[source]
        source: KafkaError,
    },
    #[error("{topic} [{partition}] was read back to offset {reached} of {end} within {budget:?}")]
    Incomplete { topic: String, partition: i32, reached: i64, end: i64, budget: Duration },
}

/// A client that reads partitions back (never joins a group, never commits), records of
/// transactions included: the question is whether a record is in the log, not whether it is
/// committed.
pub fn reader(kafka: &KafkaConfig) -> Result<Reader, KafkaError> {
    crate::kafka::reader(
        kafka,
        "read-back",
        &[("enable.partition.eof", "true"), ("isolation.level", "read_uncommitted")],
    )
}

/// For each of `wanted`, whether a record with its key and value is in its partition between
/// its `from` and the partition's end now. Each partition is read once, from the lowest `from`
/// of its records, within `budget` per partition.
///
/// Why "not found" means "not written", given that the record's delivery failed before this
/// is called: `from` is an offset below which the record cannot be (the end of the partition
/// before the record was queued, or past a record acknowledged before that), and a request
/// that failed was appended, if ever, before its failure was reported — so a record written
/// is below the end read here. A record with the same bytes written by someone else counts as
/// found: either way the event is in Kafka.
pub fn find(reader: &Reader, wanted: &[Wanted], budget: Duration) -> Result<Vec<bool>, ReadBackError> {
    let mut found = vec![false; wanted.len()];
    let mut partitions: Vec<(&str, i32)> = wanted.iter().map(|w| (w.topic.as_str(), w.partition)).collect();
    partitions.sort_unstable();
    partitions.dedup();
    for (topic, partition) in partitions {
        let here: Vec<usize> =
            (0..wanted.len()).filter(|&i| wanted[i].topic == topic && wanted[i].partition == partition).collect();
        let kafka = |source| ReadBackError::Kafka { topic: topic.to_owned(), partition, source };
        let (low, end) = reader.fetch_watermarks(topic, partition, WATERMARKS_TIMEOUT).map_err(kafka)?;
        let from = here.iter().map(|&i| wanted[i].from.unwrap_or(low)).min().unwrap_or(low).max(low);
        if from >= end {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(from)).map_err(kafka)?;
        reader.assign(&tpl).map_err(kafka)?;
        let deadline = Instant::now() + budget;
        let mut reached = from;
        let outcome = loop {
            if reached >= end || here.iter().all(|&i| found[i]) {
                break Ok(());
            }
            if Instant::now() > deadline {
                break Err(ReadBackError::Incomplete { topic: topic.to_owned(), partition, reached, end, budget });
            }
            match reader.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    reached = m.offset() + 1;
                    for &i in &here {
                        let w = &wanted[i];
                        if !found[i] && m.offset() >= w.from.unwrap_or(low) && m.payload() == Some(&w.value[..]) {
                            found[i] = m.key() == w.key.as_deref();
                        }
                    }
                }
                // The end as of now: what is appended later was not in flight before the failure.
                Some(Err(KafkaError::PartitionEOF(_))) => break Ok(()),
                Some(Err(e)) => break Err(kafka(e)),
                None => {}
            }
        };
        let _ = reader.unassign();
        outcome?;
    }
    Ok(found)
}
