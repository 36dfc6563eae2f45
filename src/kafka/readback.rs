//! Whether records whose delivery is in doubt are in their partition: read back from a known
//! lower bound to the partition's end, and compared byte for byte (key, value, headers).
//!
//! librdkafka reports some failed records as *possibly persisted*: the request left, and its
//! answer never came or cannot be trusted (the producer failed for good meanwhile, or its id
//! changed while the request was in flight). Sending such a record again may write it twice;
//! not sending it may lose it. The log itself says which: see [`find`].

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedHeaders, Headers, Message, OwnedHeaders};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::kafka::Reader;

/// How long one watermark request may take.
const WATERMARKS_TIMEOUT: Duration = Duration::from_secs(5);

/// A record to look for.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub topic: String,
    pub partition: i32,
    /// An offset the record cannot be before (`None`: the partition's start). [`find`] raises it
    /// past what it read without finding the record, so a read cut short resumes there.
    pub from: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Option<OwnedHeaders>,
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
    #[error(
        "{topic} [{partition}] was read back to offset {reached} of {end} within {budget:?}; it goes on from there"
    )]
    Incomplete { topic: String, partition: i32, reached: i64, end: i64, budget: Duration },
}

/// A client that reads partitions back (never joins a group, never commits), records of open
/// or aborted transactions included: the question is whether a record is in the log.
pub fn reader(kafka: &KafkaConfig) -> Result<Reader, KafkaError> {
    crate::kafka::reader(
        kafka,
        "read-back",
        &[("enable.partition.eof", "true"), ("isolation.level", "read_uncommitted")],
    )
}

/// Marks in `found` which of `wanted` are in their partition between their `from` and the
/// partition's end (its high watermark) now, comparing key, value and headers. Each partition
/// is read once, from the lowest `from` of its records, within `budget`; a partition not read
/// to its end (out of time, or an error) is an error once the others are read, and the `from`
/// of its records not found yet is raised to where the read got, for the next call to go on
/// from there.
///
/// "Not found" means "not written" under three conditions the caller must meet (see
/// [`super::verdicts`]): the record's delivery has failed; `from` is an offset the record
/// cannot be before (the partition's end before the record was queued, or past a record
/// acknowledged before that); and enough time has passed since the failure for a request still
/// inside the broker to be appended and to fall below the high watermark. A record with the
/// same bytes written by someone else counts as found: either way the event is in Kafka.
pub fn find(reader: &Reader, wanted: &mut [Wanted], found: &mut [bool], budget: Duration) -> Result<(), ReadBackError> {
    let mut partitions: Vec<(String, i32)> = wanted.iter().map(|w| (w.topic.clone(), w.partition)).collect();
    partitions.sort_unstable();
    partitions.dedup();
    // A partition that cannot be read does not hold up the others: its error comes at the end.
    let mut first_error = None;
    for (topic, partition) in partitions {
        let here: Vec<usize> = (0..wanted.len())
            .filter(|&i| !found[i] && wanted[i].topic == topic && wanted[i].partition == partition)
            .collect();
        if here.is_empty() {
            continue;
        }
        let kafka = |source| ReadBackError::Kafka { topic: topic.clone(), partition, source };
        let (low, end) = match reader.fetch_watermarks(&topic, partition, WATERMARKS_TIMEOUT) {
            Ok(w) => w,
            Err(e) => {
                first_error.get_or_insert(kafka(e));
                continue;
            }
        };
        let from = here.iter().map(|&i| wanted[i].from.unwrap_or(low)).min().unwrap_or(low).max(low);
        let (upto, error) = if from >= end {
            (end, None)
        } else {
            match read(reader, &topic, partition, from, end, budget, &here, wanted, found) {
                Ok(reached) => (reached, None),
                Err(Read::Kafka(e, reached)) => (reached, Some(kafka(e))),
                Err(Read::Incomplete(reached)) => {
                    (reached, Some(ReadBackError::Incomplete { topic: topic.clone(), partition, reached, end, budget }))
                }
            }
        };
        let _ = reader.unassign();
        // What was read holds none of the records not found: the next read starts after it.
        for &i in &here {
            if !found[i] && wanted[i].from.is_none_or(|f| f < upto) {
                wanted[i].from = Some(upto);
            }
        }
        if let Some(e) = error {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Why a read of one partition stopped short, and where it got.
enum Read {
    Kafka(KafkaError, i64),
    Incomplete(i64),
}

/// Reads `topic`/`partition` from `from` up to `end` (or until `here` are all found); returns
/// where it got.
#[allow(clippy::too_many_arguments)]
fn read(
    reader: &Reader,
    topic: &str,
    partition: i32,
    from: i64,
    end: i64,
    budget: Duration,
    here: &[usize],
    wanted: &[Wanted],
    found: &mut [bool],
) -> Result<i64, Read> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from)).map_err(|e| Read::Kafka(e, from))?;
    reader.assign(&tpl).map_err(|e| Read::Kafka(e, from))?;
    let deadline = Instant::now() + budget;
    let mut reached = from;
    while reached < end && here.iter().any(|&i| !found[i]) {
        if Instant::now() > deadline {
            return Err(Read::Incomplete(reached));
        }
        match reader.poll(Duration::from_millis(500)) {
            // Only this partition's messages: nothing of an earlier assignment counts.
            Some(Ok(m)) if m.topic() == topic && m.partition() == partition => {
                reached = reached.max(m.offset() + 1);
                for &i in here {
                    let w = &wanted[i];
                    if !found[i]
                        && m.offset() >= w.from.unwrap_or(0)
                        && m.payload() == Some(&w.value[..])
                        && m.key() == w.key.as_deref()
                        && same_headers(m.headers(), w.headers.as_ref())
                    {
                        found[i] = true;
                    }
                }
            }
            Some(Ok(_)) => {}
            // The end of the partition (what is left below `end` are transaction markers):
            // believed only if this partition's position says so.
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => {
                let position = reader
                    .position()
                    .ok()
                    .and_then(|tpl| tpl.find_partition(topic, partition).and_then(|e| e.offset().to_raw()));
                if let Some(at) = position.filter(|&at| at >= end) {
                    reached = reached.max(at);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => return Err(Read::Kafka(e, reached)),
        }
    }
    Ok(reached.max(from))
}

/// Whether a record's headers are `expected`, in order (no headers and none expected alike).
fn same_headers(got: Option<&BorrowedHeaders>, expected: Option<&OwnedHeaders>) -> bool {
    let got_len = got.map_or(0, Headers::count);
    let expected_len = expected.map_or(0, Headers::count);
    if got_len != expected_len {
        return false;
    }
    let (Some(got), Some(expected)) = (got, expected) else { return true };
    (0..got_len).all(|i| {
        let (a, b) = (got.get(i), expected.get(i));
        a.key == b.key && a.value == b.value
    })
}
