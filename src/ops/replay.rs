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
//! Only records below the category table's committed offset for their partition are moved:
//! past it, `ingest` would read them again and, now that they pass, append them a second time.
//! Those are reported as deferred (run again once ingest has caught up).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use serde::Serialize;

use crate::config::{Config, Pipeline};
use crate::offsets::AppIds;
use crate::pix::batch::{EVENT_DATE, QUARANTINE_TABLE};
use crate::pix::{CategoryBatchBuilder, Decoder, KafkaMeta, category_schema};
use crate::probe::Probe;
use crate::sink::delta::{
    DeltaTableWriter, Loaded, RewindError, SinkError, delete_rows, read_offsets, read_rows, scan,
};

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
    #[error(transparent)]
    Scope(#[from] crate::config::UnknownName),
    #[error(transparent)]
    Source(#[from] super::source::SourceError),
}

type Key = (String, i32, i64);

/// Replays the quarantined records matching `filter`, per pipeline.
pub fn replay(config: &Config, filter: &Filter, probe: &Probe) -> Result<BTreeMap<String, Replayed>, ReplayError> {
    let rt = super::source::runtime()?;
    config.check_topics(&filter.topics)?;
    // A rule id that does not exist would match nothing and report success.
    let known: Vec<String> = crate::pix::HardRule::ALL.iter().map(|r| r.id().to_owned()).collect();
    if let Some(unknown) = filter.rules.iter().find(|r| !known.contains(r)) {
        return Err(crate::config::UnknownName { what: "hard rule", name: unknown.clone(), known }.into());
    }
    let location = |t: &str| super::source::location(config, t);
    let quarantine = rt
        .block_on(read_rows(
            QUARANTINE_TABLE,
            location(QUARANTINE_TABLE)?,
            &["kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "raw_value", "error_rule"],
        ))
        .map_err(Box::new)?;
    let decoder = Decoder::new(config.validation.max_message_bytes);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    let mut out = BTreeMap::new();
    for p in config.pipelines.iter().filter(|p| filter.topics.is_empty() || filter.topics.contains(&p.topic)) {
        out.insert(p.name.clone(), replay_pipeline(&rt, p, &quarantine, filter, &decoder, now, probe, &location)?);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn replay_pipeline(
    rt: &tokio::runtime::Runtime,
    p: &Pipeline,
    quarantine: &[RecordBatch],
    filter: &Filter,
    decoder: &Decoder,
    now: i64,
    probe: &Probe,
    location: &impl Fn(&str) -> Result<url::Url, Box<SinkError>>,
) -> Result<Replayed, ReplayError> {
    let mut report = Replayed::default();
    // The category table's rows and committed offsets (for partitions with candidates).
    let mut candidates = Vec::new();
    for b in quarantine {
        if b.num_columns() < 6 {
            continue;
        }
        let topic = b.column(0).as_string::<i32>();
        let part = b.column(1).as_primitive::<Int32Type>();
        let off = b.column(2).as_primitive::<Int64Type>();
        let ts = b.column(3).as_primitive::<TimestampMicrosecondType>();
        let raw = b.column(4).as_binary::<i32>();
        let rule = b.column(5).as_string::<i32>();
        for i in 0..b.num_rows() {
            if topic.value(i) != p.topic
                || (!filter.rules.is_empty() && !filter.rules.iter().any(|r| r == rule.value(i)))
            {
                continue;
            }
            let t = ts.is_valid(i).then(|| ts.value(i));
            if filter.since.is_some_and(|s| t.is_none_or(|t| t < s))
                || filter.until.is_some_and(|u| t.is_none_or(|t| t >= u))
            {
                continue;
            }
            candidates.push((part.value(i), off.value(i), t, raw.is_valid(i).then(|| raw.value(i)), rule.value(i)));
        }
    }
    if candidates.is_empty() {
        return Ok(report);
    }
    let partitions: Vec<i32> =
        candidates.iter().map(|c| c.0).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    // Rows and offsets of the category table from one loaded version. Only its own offset
    // matters here: a record past it will be read again by ingest.
    let table_at = rt.block_on(crate::sink::delta::open_existing(&p.table, location(&p.table)?)).map_err(Box::new)?;
    let offsets = rt
        .block_on(read_offsets(
            AppIds::new(&p.name, &p.topic),
            &partitions,
            Loaded { name: &p.table, table: table_at.as_ref() },
            Loaded { name: QUARANTINE_TABLE, table: None },
        ))
        .map_err(Box::new)?;
    let table = rt.block_on(scan(&p.table, table_at.as_ref())).map_err(Box::new)?;
    let committed = |n: i32| offsets.get(&n).and_then(|o| o.category);
    let present: HashSet<(i32, i64)> =
        partitions.iter().flat_map(|&n| table.of(&p.topic, n).iter().map(move |&o| (n, o))).collect();
    let mut builder = CategoryBatchBuilder::new(p.category, candidates.len());
    let mut remove: HashSet<Key> = HashSet::new();
    for (n, o, t, raw, rule) in &candidates {
        match decoder.decode(*raw, Some(p.category), now) {
            Err(rejection) => *report.still_rejected.entry(rejection.rule.id().to_owned()).or_default() += 1,
            Ok(_) if committed(*n).is_none_or(|c| *o >= c) => report.deferred += 1,
            Ok(event) => {
                if present.contains(&(*n, *o)) {
                    report.completed_from_earlier_run += 1;
                } else {
                    let meta = KafkaMeta { topic: &p.topic, partition: *n, offset: *o, timestamp: *t };
                    builder
                        .append(&event, &meta, now)
                        .map_err(|e| arrow::error::ArrowError::InvalidArgumentError(e.to_string()))?;
                    *report.moved.entry((*rule).to_owned()).or_default() += 1;
                }
                remove.insert((p.topic.clone(), *n, *o));
            }
        }
    }
    if remove.is_empty() {
        return Ok(report);
    }
    let metadata = HashMap::from([
        ("pixlake.operation".to_owned(), serde_json::Value::from("dlq-replay")),
        ("pixlake.pipeline".to_owned(), serde_json::Value::from(p.name.as_str())),
    ]);
    if !builder.is_empty() {
        let batch = builder.finish()?;
        let mut writer = rt
            .block_on(DeltaTableWriter::open_or_create(
                &p.table,
                location(&p.table)?,
                category_schema(p.category),
                EVENT_DATE,
            ))
            .map_err(Box::new)?;
        rt.block_on(writer.commit(vec![batch], vec![], metadata.clone())).map_err(Box::new)?;
    }
    probe.hit("replay-inserted");
    rt.block_on(delete_rows(QUARANTINE_TABLE, location(QUARANTINE_TABLE)?, &remove, metadata)).map_err(Box::new)?;
    Ok(report)
}
