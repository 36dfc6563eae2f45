//! `pixlake status`: per pipeline and partition, the offsets committed in Delta next to Kafka's
//! watermarks, the lag in records and in seconds, and each table's version, last commit and
//! size. Read-only: safe while `ingest` runs (it reads the latest committed versions).

use super::source::{self, SourceError, TIMEOUT};
use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::{Config, Pipeline};
use crate::pix::batch::QUARANTINE_TABLE;
use crate::sink::delta::{SinkError, TableInfo, app_id, inspect, quarantine_app_id};

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
    /// Records between the committed offset (or the low watermark) and the high watermark.
    pub lag_records: i64,
    /// Age of the oldest record not yet committed (0 when caught up; `None` if unknown).
    pub lag_seconds: Option<f64>,
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
}

/// Reads the status of `pipelines` (all when empty), `now_ms` being the current time.
pub fn read(config: &Config, pipelines: &[String], now_ms: i64) -> Result<Status, StatusError> {
    let rt = source::runtime()?;
    let kafka = source::kafka(config);
    let consumer = source::reader(config, "status", &[]).map_err(kafka)?;
    let selected: Vec<&Pipeline> =
        config.pipelines.iter().filter(|p| pipelines.is_empty() || pipelines.contains(&p.name)).collect();
    let location = |t: &str| source::location(config, t);
    let mut quarantine_ids = Vec::new();
    let mut parts = BTreeMap::new();
    for p in &selected {
        let ids = source::partitions(&consumer, &p.topic).map_err(kafka)?;
        let ids = ids.ok_or_else(|| SourceError::NoTopic(p.topic.clone()))?;
        quarantine_ids.extend(ids.iter().map(|&n| quarantine_app_id(&p.name, &p.topic, n)));
        parts.insert(p.name.clone(), ids);
    }
    let quarantine =
        rt.block_on(inspect(QUARANTINE_TABLE, location(QUARANTINE_TABLE)?, &quarantine_ids)).map_err(Box::new)?;
    let mut quarantine_offsets = quarantine.as_ref().map(|q| q.offsets.clone()).unwrap_or_default().into_iter();
    let mut out = Vec::new();
    for p in selected {
        let ids = &parts[&p.name];
        let app_ids: Vec<String> = ids.iter().map(|&n| app_id(&p.name, &p.topic, n)).collect();
        let table = rt.block_on(inspect(&p.table, location(&p.table)?, &app_ids)).map_err(Box::new)?;
        let mut partitions = Vec::new();
        for (i, &n) in ids.iter().enumerate() {
            let table_offset = table.as_ref().and_then(|t| t.offsets[i]);
            let quarantine_offset = quarantine_offsets.next().flatten();
            let committed = table_offset.zip(quarantine_offset).map(|(a, b)| a.min(b));
            let (low, high) = consumer.fetch_watermarks(&p.topic, n, TIMEOUT).map_err(kafka)?;
            let from = committed.unwrap_or(low).max(low);
            partitions.push(PartitionStatus {
                partition: n,
                table_offset,
                quarantine_offset,
                committed,
                low,
                high,
                lag_records: (high - from).max(0),
                lag_seconds: None,
            });
        }
        oldest_uncommitted(&consumer, &p.topic, &mut partitions, now_ms);
        let lag_records = partitions.iter().map(|x| x.lag_records).sum();
        out.push(PipelineStatus {
            pipeline: p.name.clone(),
            topic: p.topic.clone(),
            group: p.group.clone(),
            table: table_status(&p.table, table.as_ref()),
            partitions,
            lag_records,
        });
    }
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
/// not committed (its Kafka timestamp), read by assigning a throwaway consumer there. Left
/// `None` when that record cannot be read within a few seconds.
fn oldest_uncommitted(consumer: &BaseConsumer, topic: &str, partitions: &mut [PartitionStatus], now_ms: i64) {
    let mut tpl = TopicPartitionList::new();
    for p in partitions.iter_mut() {
        if p.lag_records == 0 {
            p.lag_seconds = Some(0.0);
        } else {
            let at = p.committed.unwrap_or(p.low).max(p.low);
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
