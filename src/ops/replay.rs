//! `pixlake dlq replay`: after a rule was fixed or relaxed, re-validate quarantined records with
//! the current rules and move those that pass to their category table.
//!
//! Two commits, ordered so that an interruption never loses a row: first the passing rows are
//! **appended to the category table** (rows already there from an interrupted run are not
//! appended again), then they are **removed from `pix_quarantine`**. A run killed between the
//! two leaves those rows in both tables until the next run, which finds them in the category
//! table and only removes them from quarantine: running it again, any number of times, gives
//! the same final tables.
//!
//! The rows that pass are appended in chunks (a commit each), so an interruption can leave some
//! chunks in both tables: the next run finds them in the category table and only removes them.
//!
//! Only records below the category table's committed offset for their partition are moved:
//! past it, `ingest` would read them again and, now that they pass, append them a second time.
//! Those are reported as deferred (run again once ingest has caught up).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{Array, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::TimestampMicrosecondType;
use serde::Serialize;

use crate::config::{Config, Pipeline};
use crate::offsets::AppIds;
use crate::pix::batch::{EVENT_DATE, QUARANTINE_TABLE};
use crate::pix::{CategoryBatchBuilder, Decoder, KafkaMeta, category_schema};
use crate::probe::Probe;
use crate::sink::delta::{
    DeltaTableWriter, Loaded, RewindError, SMALL_ROWS, SinkError, TableBatches, coordinates, delete_rows, read_offsets,
};
use crate::telemetry::progress::Progress;

/// Which quarantined records to consider.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Rule ids (empty: all).
    pub rules: Vec<String>,
    /// Source topics (empty: all pipelines' topics).
    pub topics: Vec<String>,
    /// Kafka record time range, epoch microseconds, inclusive start, exclusive end.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// What a replay did, per pipeline and rule.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Replayed {
    /// Rows moved to their category table, by the rule that had rejected them.
    pub moved: BTreeMap<String, u64>,
    /// Rows that still fail, by their current rule.
    pub still_rejected: BTreeMap<String, u64>,
    /// Rows that pass but wait for ingest to commit past them.
    pub deferred: u64,
    /// Rows found in the category table already (an interrupted earlier run) and removed from
    /// quarantine now.
    pub completed_from_earlier_run: u64,
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Table(#[from] Box<SinkError>),
    #[error(transparent)]
    Remove(#[from] Box<RewindError>),
    #[error("building the rows failed; this is a bug, please report it")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(
        "pix_quarantine has a data file without kafka_timestamp, raw_value or error_rule of pixlake's types (was it \
         written by another tool?); nothing was moved: find that file (it is not one pixlake wrote) and restore or remove it"
    )]
    Unreadable,
    #[error(transparent)]
    Scope(#[from] crate::config::UnknownName),
    #[error(transparent)]
    Source(#[from] super::source::SourceError),
}

/// Rows appended to the category table per commit, and raw bytes decoded per commit: a replay
/// of millions of records holds at most one such chunk (and one read batch) in memory.
const CHUNK_ROWS: usize = 20_000;
const CHUNK_BYTES: usize = 64 << 20;

/// The quarantine columns a replay decodes from.
const WIDE: [&str; 6] =
    ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "raw_value", "error_rule"];
/// The quarantine columns that select candidates (no raw value: never downloaded for them).
const NARROW: [&str; 5] = ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "error_rule"];

/// Quarantined records, by source partition, as offsets.
type Keys = BTreeMap<i32, HashSet<i64>>;

/// Replays the quarantined records matching `filter`, per pipeline.
///
/// Streams `pix_quarantine`: one pass over its small columns finds the candidates (their
/// coordinates only), a second one decodes their raw values a batch at a time, and the rows that
/// pass are appended to the category table in chunks of [`CHUNK_ROWS`]. Memory is bounded by a
/// batch, a chunk and the candidates' coordinates — never by the quarantine's size.
pub fn replay(
    config: &Config,
    filter: &Filter,
    probe: &Probe,
    progress: &dyn Progress,
) -> Result<BTreeMap<String, Replayed>, ReplayError> {
    let rt = super::source::runtime()?;
    config.check_topics(&filter.topics)?;
    // A rule id that does not exist would match nothing and report success.
    let known: Vec<String> = crate::pix::HardRule::ALL.iter().map(|r| r.id().to_owned()).collect();
    if let Some(unknown) = filter.rules.iter().find(|r| !known.contains(r)) {
        return Err(crate::config::UnknownName { what: "hard rule", name: unknown.clone(), known }.into());
    }
    let run = Run {
        rt: &rt,
        config,
        filter,
        decoder: Decoder::new(config.validation.max_message_bytes),
        now: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64),
        probe,
        progress,
    };
    let mut out = BTreeMap::new();
    for p in config.pipelines.iter().filter(|p| filter.topics.is_empty() || filter.topics.contains(&p.topic)) {
        out.insert(p.name.clone(), replay_pipeline(&run, p)?);
    }
    Ok(out)
}

/// What every pipeline's replay shares.
struct Run<'a> {
    rt: &'a tokio::runtime::Runtime,
    config: &'a Config,
    filter: &'a Filter,
    decoder: Decoder,
    /// When the replay started: the rows' `ingest_time` and the rules' clock.
    now: i64,
    probe: &'a Probe,
    progress: &'a dyn Progress,
}

fn replay_pipeline(run: &Run<'_>, p: &Pipeline) -> Result<Replayed, ReplayError> {
    let Run { rt, config, filter, now, probe, progress, .. } = *run;
    let decoder = &run.decoder;
    let mut report = Replayed::default();
    // The quarantine as it is now (another pipeline's replay may just have rewritten it).
    let Some(quarantine) = super::source::open(rt, config, QUARANTINE_TABLE)? else { return Ok(report) };
    progress.step(&format!("finding {}'s records in {QUARANTINE_TABLE}", p.topic), None, "rows");
    let mut candidates = candidates(rt, &quarantine, &p.topic, filter, progress)?;
    if candidates.is_empty() {
        return Ok(report);
    }
    // The category table's committed offsets (a record past it will be read again by ingest,
    // which now accepts it) and the candidates it holds already (an interrupted earlier run),
    // from one loaded version.
    let partitions: Vec<i32> = candidates.keys().copied().collect();
    let table_at = super::source::open(rt, config, &p.table)?;
    let offsets = rt
        .block_on(read_offsets(
            AppIds::new(&p.name, &p.topic),
            &partitions,
            Loaded { name: &p.table, table: table_at.as_ref() },
            Loaded { name: QUARANTINE_TABLE, table: None },
        ))
        .map_err(Box::new)?;
    let committed = |n: i32| offsets.get(&n).and_then(|o| o.category);
    progress.step(&format!("looking for them in {}", p.table), None, "rows");
    let present = match &table_at {
        Some(t) => held(rt, &p.table, t, &p.topic, &candidates, progress)?,
        None => HashSet::new(),
    };
    let metadata = HashMap::from([
        ("pixlake.operation".to_owned(), serde_json::Value::from("dlq-replay")),
        ("pixlake.pipeline".to_owned(), serde_json::Value::from(p.name.as_str())),
    ]);
    let mut chunk = Chunk { builder: CategoryBatchBuilder::new(p.category, 1024), bytes: 0, writer: None };
    let mut remove: HashSet<(i32, i64)> = HashSet::new();
    let total = candidates.values().map(|c| c.len() as u64).sum();
    progress.step(&format!("replaying {} records of {}", total, p.topic), Some(total), "records");
    let mut rows = TableBatches::new(QUARANTINE_TABLE, &quarantine, &WIDE, SMALL_ROWS).map_err(Box::new)?;
    while let Some(b) = rt.block_on(rows.next()).map_err(Box::new)? {
        let (topic, part, off) = coordinates(QUARANTINE_TABLE, &b).map_err(Box::new)?;
        let (ts, rule) = time_and_rule(&b)?;
        let raw =
            b.column_by_name("raw_value").and_then(|c| c.as_binary_opt::<i32>()).ok_or(ReplayError::Unreadable)?;
        for i in 0..b.num_rows() {
            let (n, o) = (part.value(i), off.value(i));
            // Each candidate once (and its memory freed as it is handled).
            if !topic.is_valid(i) || topic.value(i) != p.topic || !candidates.get_mut(&n).is_some_and(|c| c.remove(&o))
            {
                continue;
            }
            progress.advance(1);
            let value = raw.is_valid(i).then(|| raw.value(i));
            match decoder.decode(value, Some(p.category), now) {
                Err(rejection) => *report.still_rejected.entry(rejection.rule.id().to_owned()).or_default() += 1,
                Ok(_) if committed(n).is_none_or(|c| o >= c) => report.deferred += 1,
                Ok(event) => {
                    if present.contains(&(n, o)) {
                        report.completed_from_earlier_run += 1;
                    } else {
                        let t = ts.is_valid(i).then(|| ts.value(i));
                        let meta = KafkaMeta { topic: &p.topic, partition: n, offset: o, timestamp: t };
                        chunk
                            .builder
                            .append(&event, &meta, now)
                            .map_err(|e| arrow::error::ArrowError::InvalidArgumentError(e.to_string()))?;
                        chunk.bytes += value.map_or(0, <[u8]>::len);
                        *report.moved.entry(rule.value(i).to_owned()).or_default() += 1;
                    }
                    remove.insert((n, o));
                }
            }
            if chunk.builder.len() >= CHUNK_ROWS || chunk.bytes >= CHUNK_BYTES {
                chunk.append(rt, config, p, &metadata)?;
            }
        }
    }
    chunk.append(rt, config, p, &metadata)?;
    if remove.is_empty() {
        return Ok(report);
    }
    probe.hit("replay-inserted");
    let location = super::source::location(config, QUARANTINE_TABLE)?;
    rt.block_on(delete_rows(QUARANTINE_TABLE, &location, &p.topic, &remove, metadata, progress)).map_err(Box::new)?;
    Ok(report)
}

/// The rows that passed, waiting to be appended to the category table.
struct Chunk {
    builder: CategoryBatchBuilder,
    /// Raw bytes decoded into it.
    bytes: usize,
    writer: Option<DeltaTableWriter>,
}

impl Chunk {
    /// Appends what is pending (nothing when empty) in one commit.
    fn append(
        &mut self,
        rt: &tokio::runtime::Runtime,
        config: &Config,
        p: &Pipeline,
        metadata: &HashMap<String, serde_json::Value>,
    ) -> Result<(), ReplayError> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let batch = self.builder.finish()?;
        self.bytes = 0;
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(
                rt.block_on(DeltaTableWriter::open_or_create(
                    &p.table,
                    &super::source::location(config, &p.table)?,
                    category_schema(p.category),
                    EVENT_DATE,
                ))
                .map_err(Box::new)?,
            ),
        };
        rt.block_on(writer.commit(vec![batch], vec![], metadata.clone())).map_err(Box::new)?;
        Ok(())
    }
}

/// The `kafka_timestamp` and `error_rule` columns of a quarantine batch.
fn time_and_rule(b: &RecordBatch) -> Result<(&TimestampMicrosecondArray, &StringArray), ReplayError> {
    let ts = b.column_by_name("kafka_timestamp").and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
    let rule = b.column_by_name("error_rule").and_then(|c| c.as_string_opt::<i32>());
    ts.zip(rule).ok_or(ReplayError::Unreadable)
}

/// The coordinates of the quarantined records of `topic` that `filter` selects, from the small
/// columns only.
fn candidates(
    rt: &tokio::runtime::Runtime,
    quarantine: &deltalake::DeltaTable,
    topic: &str,
    filter: &Filter,
    progress: &dyn Progress,
) -> Result<Keys, ReplayError> {
    let mut out = Keys::new();
    let mut rows = TableBatches::new(QUARANTINE_TABLE, quarantine, &NARROW, SMALL_ROWS).map_err(Box::new)?;
    while let Some(b) = rt.block_on(rows.next()).map_err(Box::new)? {
        let (t, part, off) = coordinates(QUARANTINE_TABLE, &b).map_err(Box::new)?;
        let (ts, rule) = time_and_rule(&b)?;
        progress.advance(b.num_rows() as u64);
        for i in 0..b.num_rows() {
            if !t.is_valid(i)
                || t.value(i) != topic
                || (!filter.rules.is_empty() && !filter.rules.iter().any(|r| r == rule.value(i)))
            {
                continue;
            }
            let time = ts.is_valid(i).then(|| ts.value(i));
            if filter.since.is_some_and(|s| time.is_none_or(|t| t < s))
                || filter.until.is_some_and(|u| time.is_none_or(|t| t >= u))
            {
                continue;
            }
            out.entry(part.value(i)).or_default().insert(off.value(i));
        }
    }
    Ok(out)
}

/// Which of `candidates` the category table `table` already holds.
fn held(
    rt: &tokio::runtime::Runtime,
    name: &str,
    table: &deltalake::DeltaTable,
    topic: &str,
    candidates: &Keys,
    progress: &dyn Progress,
) -> Result<HashSet<(i32, i64)>, ReplayError> {
    let mut out = HashSet::new();
    let mut rows = TableBatches::new(name, table, &["kafka_topic", "kafka_partition", "kafka_offset"], SMALL_ROWS)
        .map_err(Box::new)?;
    while let Some(b) = rt.block_on(rows.next()).map_err(Box::new)? {
        let (t, part, off) = coordinates(name, &b).map_err(Box::new)?;
        progress.advance(b.num_rows() as u64);
        for i in 0..b.num_rows() {
            let (n, o) = (part.value(i), off.value(i));
            if t.is_valid(i) && t.value(i) == topic && candidates.get(&n).is_some_and(|c| c.contains(&o)) {
                out.insert((n, o));
            }
        }
    }
    Ok(out)
}
