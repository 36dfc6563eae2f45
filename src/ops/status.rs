//! `pixlake status`: per pipeline and partition, the offsets committed in Delta next to Kafka's
//! watermarks, the lag in records and in seconds, and each table's version, last commit and
//! size. Read-only: safe while `ingest` runs (it reads the latest committed versions).

use super::source::{self, SourceError, TIMEOUT};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::Config;
use crate::offsets::CommittedOffsets;
use crate::pix::batch::QUARANTINE_TABLE;
use crate::sink::delta::{SinkError, TableInfo, inspect};

/// One source partition.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionStatus {
    pub partition: i32,
    /// Next offset the category table covers (`None`: never committed).
    pub table_offset: Option<i64>,
    /// Next offset `pix_quarantine` covers.
    pub quarantine_offset: Option<i64>,
    /// Offset below which both tables are complete: where ingestion resumes.
    pub committed: Option<i64>,
    /// Kafka's low and high watermarks.
    pub low: i64,
    pub high: i64,
    /// Records between the committed offset (or the low watermark) and the high watermark
    /// ([`CommittedOffsets::lag`], the same figure as `pixlake_consumer_lag_records`).
    pub lag_records: i64,
    /// Age of the first record at or past the committed offset (0 when caught up; `None` if
    /// unknown).
    pub lag_seconds: Option<f64>,
    /// The member of the pipeline's consumer group that holds the partition now: its
    /// `ingest.instance_id` (the static member's `group.instance.id` less the pipeline) and host;
    /// `None` when no member holds it (no instance running, or a rebalance under way).
    pub owner: Option<Owner>,
}

/// Who holds a partition.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Owner {
    /// `ingest.instance_id` of a static member; the client id of a dynamic one.
    pub instance: String,
    /// The host its connection comes from.
    pub host: String,
}

/// One table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableStatus {
    pub table: String,
    /// `None`: not created yet.
    pub version: Option<u64>,
    pub last_commit_ms: Option<i64>,
    pub rows: u64,
    pub files: u64,
}

/// One pipeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PipelineStatus {
    pub pipeline: String,
    pub topic: String,
    pub group: String,
    pub table: TableStatus,
    pub partitions: Vec<PartitionStatus>,
    pub lag_records: i64,
    /// The consumer group's state as the broker describes it (`Stable`, `Empty`,
    /// `PreparingRebalance`…; `None` if it could not be described).
    pub group_state: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    pub pipelines: Vec<PipelineStatus>,
    pub quarantine: TableStatus,
}

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Table(#[from] Box<SinkError>),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Scope(#[from] crate::config::UnknownName),
}

/// Reads the status of `pipelines` (all when empty), `now_ms` being the current time.
pub fn read(config: &Config, pipelines: &[String], now_ms: i64) -> Result<Status, StatusError> {
    let rt = source::runtime()?;
    let consumer = source::reader(config, "status", &[])?;
    let kafka = source::kafka(config, &consumer);
    let selected = config.select(pipelines)?;
    let quarantine = source::open(&rt, config, QUARANTINE_TABLE)?;
    let describe = |name: &str, table: Option<&deltalake::DeltaTable>| match table {
        Some(t) => rt.block_on(inspect(name, t)).map_err(Box::new),
        None => Ok(None),
    };
    let mut out = Vec::new();
    for p in selected {
        let ids = source::partitions(&consumer, &p.topic).map_err(kafka)?;
        let ids = ids.ok_or_else(|| SourceError::NoTopic(p.topic.clone()))?;
        let table = source::open(&rt, config, &p.table)?;
        let offsets = source::offsets(&rt, p, &ids, table.as_ref(), quarantine.as_ref())?;
        let mut partitions = Vec::new();
        for (&n, committed) in &offsets {
            let (low, high) = consumer.fetch_watermarks(&p.topic, n, TIMEOUT).map_err(kafka)?;
            partitions.push(PartitionStatus {
                partition: n,
                table_offset: committed.category,
                quarantine_offset: committed.quarantine,
                committed: committed.resume(),
                low,
                high,
                lag_records: committed.lag(low, high),
                lag_seconds: None,
                owner: None,
            });
        }
        oldest_uncommitted(&consumer, &p.topic, &mut partitions, now_ms);
        // Which instance holds which partition, from the group (a read: it never joins it).
        let view = crate::ingest::group::describe(&consumer, &p.group, &p.topic, TIMEOUT).ok();
        if let Some(view) = &view {
            for x in &mut partitions {
                x.owner = view.members.iter().find(|m| m.partitions.contains(&x.partition)).map(|m| Owner {
                    instance: m.name.strip_suffix(&format!("-{}", p.name)).unwrap_or(&m.name).to_owned(),
                    host: m.host.trim_start_matches('/').to_owned(),
                });
            }
        }
        let lag_records = partitions.iter().map(|x| x.lag_records).sum();
        out.push(PipelineStatus {
            pipeline: p.name.clone(),
            topic: p.topic.clone(),
            group: p.group.clone(),
            table: table_status(&p.table, describe(&p.table, table.as_ref())?.as_ref()),
            partitions,
            lag_records,
            group_state: view.map(|v| v.state),
        });
    }
    let quarantine = describe(QUARANTINE_TABLE, quarantine.as_ref())?;
    Ok(Status { pipelines: out, quarantine: table_status(QUARANTINE_TABLE, quarantine.as_ref()) })
}

fn table_status(name: &str, info: Option<&TableInfo>) -> TableStatus {
    TableStatus {
        table: name.to_owned(),
        version: info.map(|i| i.version),
        last_commit_ms: info.and_then(|i| i.last_commit_ms),
        rows: info.map_or(0, |i| i.rows),
        files: info.map_or(0, |i| i.files),
    }
}

/// Fills `lag_seconds`: 0 for partitions caught up; for the others, the age of the first record
/// at or past the committed offset (its Kafka timestamp), read by assigning a throwaway consumer there. Left
/// `None` when that record cannot be read within a few seconds.
fn oldest_uncommitted(consumer: &crate::kafka::Reader, topic: &str, partitions: &mut [PartitionStatus], now_ms: i64) {
    let mut tpl = TopicPartitionList::new();
    for p in partitions.iter_mut() {
        if p.lag_records == 0 {
            p.lag_seconds = Some(0.0);
        } else {
            let at = CommittedOffsets::new(p.table_offset, p.quarantine_offset).next_to_archive(p.low);
            let _ = tpl.add_partition_offset(topic, p.partition, Offset::Offset(at));
        }
    }
    if tpl.count() == 0 || consumer.assign(&tpl).is_err() {
        return;
    }
    let mut missing = tpl.count();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while missing > 0 && std::time::Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else { continue };
        if let Some(p) = partitions.iter_mut().find(|p| p.partition == m.partition() && p.lag_seconds.is_none())
            && let Some(ts) = m.timestamp().to_millis()
        {
            p.lag_seconds = Some(((now_ms - ts).max(0)) as f64 / 1000.0);
            missing -= 1;
        }
    }
    let _ = consumer.unassign();
}
