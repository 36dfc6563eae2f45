//! The ceiling of `scripts/bench.sh`: how fast this machine hands records to a consumer that
//! fetches exactly as `pixlake ingest` does — one consumer thread per pipeline, the pipelines'
//! topics read concurrently, librdkafka settings from `ingest`'s own builder
//! (`pixlake::ingest::consumer_settings`, so `kafka.*` settings and overrides apply) — and does
//! nothing with them beyond touching each value's length.
//!
//!   cargo run --release --example noop_consume [-- CONFIG]
//!
//! Configuration as for `pixlake` (file, then `PIXLAKE__…` variables). Every partition of every
//! pipeline's topic is assigned from the beginning (no group join, no offsets committed) and read
//! to the end offset it had at the start. Prints one JSON line: events, bytes, seconds.

use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::Offset;

/// Reads `topic` to its current end; returns (records, value bytes).
fn drain(consumer: &BaseConsumer, topic: &str) -> Result<(u64, u64), KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut assignment = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > low {
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
            ends.insert(p, high);
        }
    }
    consumer.assign(&assignment)?;
    let (mut records, mut bytes) = (0u64, 0u64);
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload().map_or(0, <[u8]>::len) as u64;
                if ends.get(&m.partition()).is_some_and(|&end| m.offset() + 1 >= end) {
                    ends.remove(&m.partition());
                }
            }
            // At the end (its last offset may hold no record: transaction markers, compaction).
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ends.remove(&p);
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok((records, bytes))
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).map(std::path::PathBuf::from);
    let config = pixlake::config::Config::load(path.as_deref())?;
    let started = Instant::now();
    let readers: Vec<_> = config
        .pipelines
        .iter()
        .map(|pipeline| {
            let mut settings = pixlake::ingest::consumer_settings(&config, pipeline);
            // Its own group, never joined (assign, no commits): nothing of ingest's is touched.
            settings.set("group.id", format!("pixlake-noop-{}", pipeline.name));
            settings.remove("group.instance.id");
            let topic = pipeline.topic.clone();
            std::thread::spawn(move || -> Result<(u64, u64), KafkaError> {
                let consumer: BaseConsumer = settings.create()?;
                drain(&consumer, &topic)
            })
        })
        .collect();
    let (mut records, mut bytes) = (0, 0);
    for reader in readers {
        let (r, b) = reader.join().map_err(|_| anyhow::anyhow!("a reader thread panicked"))??;
        records += r;
        bytes += b;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(r#"{{"events":{records},"bytes":{bytes},"seconds":{seconds:.3}}}"#);
    Ok(())
}
