//! `pixlake offsets reset`: Kafka's `--reset-offsets` vocabulary for offsets that live in the
//! Delta log. A plan first (the default, `--dry-run`): per partition the committed offset, the
//! new one, how many rows a rewind replaces and how many records a skip leaves out. With
//! `--execute`, each table gets one commit that sets the partitions' `txn` versions **and**
//! removes their rows at or past the new offsets ([`crate::sink::delta::rewind`]), so
//! re-ingestion recreates them exactly once.
//!
//! A running `ingest` would race with the reset, so, as Kafka's own tool does, the reset refuses
//! while the pipeline's consumer group has live members. (Were one to slip through, its next
//! commit would be refused by the txn conflict check and it would restart from the new offsets.)
//! A crash between the two tables' commits leaves the category table reset and the quarantine
//! not: ingestion stays exact (each table skips what it has) and running the same reset again
//! completes it.

use super::source::{self, SourceError, TIMEOUT};
use std::collections::HashMap;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::{Config, Pipeline};
use crate::kafka::{Role, client_config};
use crate::offsets::{AppIds, Table};
use crate::pix::batch::QUARANTINE_TABLE;
use crate::sink::delta::{Cut, RewindError, SinkError, rewind, scan};
use crate::telemetry::progress::Progress;

/// Where to move the offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Earliest,
    Latest,
    Offset(i64),
    ShiftBy(i64),
    /// Epoch milliseconds: the first record at or after it.
    Time(i64),
}

/// One partition of the plan.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Move {
    pub pipeline: String,
    pub topic: String,
    pub partition: i32,
    /// Where ingestion resumes today (`None`: never committed, i.e. the earliest record).
    pub current: Option<i64>,
    pub new: i64,
    pub low: i64,
    pub high: i64,
    /// Rows removed from the category table / quarantine (re-created by re-ingestion).
    pub replaced_rows: u64,
    /// Records between the current and the new offset that will not be ingested.
    pub skipped_records: i64,
}

/// Why a reset cannot be planned or applied.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(transparent)]
    Table(#[from] Box<SinkError>),
    #[error(transparent)]
    Rewind(#[from] Box<RewindError>),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{0}")]
    Scope(String),
    #[error(transparent)]
    Unknown(#[from] crate::config::UnknownName),
    #[error(
        "consumer group {group} has {members} live member(s): stop `pixlake ingest` for pipeline {pipeline} first (like kafka-consumer-groups.sh --reset-offsets, the reset needs an inactive group)"
    )]
    GroupActive { group: String, pipeline: String, members: usize },
}

/// The pipelines and partitions a reset applies to: `--pipeline` names and `--topic T[:P,…]`.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub pipelines: Vec<String>,
    /// (topic, partitions; empty = all).
    pub topics: Vec<(String, Vec<i32>)>,
}

impl Scope {
    /// Parses `T` or `T:P,P,…`.
    pub fn parse_topic(s: &str) -> Result<(String, Vec<i32>), String> {
        match s.split_once(':') {
            None => Ok((s.to_owned(), Vec::new())),
            Some((t, ps)) => {
                let parts: Result<Vec<i32>, _> = ps.split(',').map(|p| p.trim().parse::<i32>()).collect();
                parts.map(|p| (t.to_owned(), p)).map_err(|_| format!("`{s}`: partitions must be numbers, e.g. {t}:0,2"))
            }
        }
    }
}

/// Plans the reset (and applies it when `execute`). Returns the moves.
pub fn reset(
    config: &Config,
    scope: &Scope,
    target: Target,
    execute: bool,
    progress: &dyn Progress,
) -> Result<Vec<Move>, ResetError> {
    let rt = source::runtime()?;
    let consumer = source::reader(config, "offsets", &[])?;
    let kafka = source::kafka(config, &consumer);
    let selected = select(config, scope)?;
    let location = |t: &str| source::location(config, t);
    let mut plans = Vec::new();
    for (p, partitions) in selected {
        let partitions = if partitions.is_empty() {
            source::partitions(&consumer, &p.topic).map_err(kafka)?.unwrap_or_default()
        } else {
            partitions
        };
        if partitions.is_empty() {
            return Err(ResetError::Scope(format!("topic {} has no partitions on the broker", p.topic)));
        }
        let table_at = source::open(&rt, config, &p.table)?;
        let quarantine_at = source::open(&rt, config, QUARANTINE_TABLE)?;
        let offsets = source::offsets(&rt, p, &partitions, table_at.as_ref(), quarantine_at.as_ref())?;
        let table = rt.block_on(scan(&p.table, table_at.as_ref(), progress)).map_err(Box::new)?;
        let quarantine = rt.block_on(scan(QUARANTINE_TABLE, quarantine_at.as_ref(), progress)).map_err(Box::new)?;
        let mut moves = Vec::new();
        for (&n, committed) in &offsets {
            let (low, high) = consumer.fetch_watermarks(&p.topic, n, TIMEOUT).map_err(kafka)?;
            let current = committed.resume();
            let new = match target {
                Target::Earliest => low,
                Target::Latest => high,
                Target::Offset(o) => o,
                Target::ShiftBy(d) => current.unwrap_or(low) + d,
                Target::Time(ms) => {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(&p.topic, n, Offset::Offset(ms)).map_err(kafka)?;
                    let found = consumer.offsets_for_times(tpl, TIMEOUT).map_err(kafka)?;
                    match found.find_partition(&p.topic, n).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => o,
                        _ => high,
                    }
                }
            }
            .clamp(low, high);
            let count = |rows: &crate::sink::delta::TableRows| {
                rows.of(&p.topic, n).iter().filter(|&&o| o >= new).count() as u64
            };
            moves.push(Move {
                pipeline: p.name.clone(),
                topic: p.topic.clone(),
                partition: n,
                current,
                new,
                low,
                high,
                replaced_rows: count(&table) + count(&quarantine),
                skipped_records: (new - current.unwrap_or(low)).max(0),
            });
        }
        plans.push((p, moves));
    }
    if execute {
        // Every group is checked before anything moves: a refusal must not come after some
        // pipelines were already rewound.
        for (p, _) in &plans {
            refuse_live_group(&consumer, config, p)?;
        }
        for (p, moves) in &plans {
            apply(&rt, config, p, moves, &location, progress)?;
        }
    }
    Ok(plans.into_iter().flat_map(|(_, moves)| moves).collect())
}

/// The reset needs the pipeline's consumer group without members, like Kafka's own tool.
fn refuse_live_group(consumer: &crate::kafka::Reader, config: &Config, p: &Pipeline) -> Result<(), ResetError> {
    let kafka = source::kafka(config, consumer);
    let groups = consumer.fetch_group_list(Some(&p.group), TIMEOUT).map_err(kafka)?;
    if let Some(g) = groups.groups().iter().find(|g| g.name() == p.group && !g.members().is_empty()) {
        return Err(ResetError::GroupActive {
            group: p.group.clone(),
            pipeline: p.name.clone(),
            members: g.members().len(),
        });
    }
    Ok(())
}

fn select<'a>(config: &'a Config, scope: &Scope) -> Result<Vec<(&'a Pipeline, Vec<i32>)>, ResetError> {
    config.select(&scope.pipelines)?;
    let topics: Vec<String> = scope.topics.iter().map(|(t, _)| t.clone()).collect();
    config.check_topics(&topics)?;
    let mut out = Vec::new();
    for p in &config.pipelines {
        let by_name = scope.pipelines.is_empty() || scope.pipelines.contains(&p.name);
        let by_topic = scope.topics.iter().find(|(t, _)| t == &p.topic);
        if by_name && (scope.topics.is_empty() || by_topic.is_some()) {
            out.push((p, by_topic.map(|(_, ps)| ps.clone()).unwrap_or_default()));
        }
    }
    if out.is_empty() {
        return Err(ResetError::Scope("the scope selects no pipeline".into()));
    }
    Ok(out)
}

fn apply(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    p: &Pipeline,
    moves: &[Move],
    location: &impl Fn(&str) -> Result<crate::sink::delta::Location, Box<SinkError>>,
    progress: &dyn Progress,
) -> Result<(), ResetError> {
    let record: Vec<serde_json::Value> = moves
        .iter()
        .map(|m| serde_json::json!({"topic": m.topic, "partition": m.partition, "from": m.current.unwrap_or(m.low), "to": m.new, "skipped": m.skipped_records}))
        .collect();
    let metadata = HashMap::from([
        ("pixlake.operation".to_owned(), serde_json::Value::from("offsets-reset")),
        ("pixlake.pipeline".to_owned(), serde_json::Value::from(p.name.as_str())),
        ("pixlake.reset".to_owned(), serde_json::Value::from(record)),
    ]);
    let ids = AppIds::new(&p.name, &p.topic);
    let cuts = |table: Table| -> Vec<Cut> {
        moves
            .iter()
            .map(|m| Cut {
                topic: m.topic.clone(),
                partition: m.partition,
                app_id: ids.of(table, m.partition),
                offset: m.new,
            })
            .collect()
    };
    rt.block_on(rewind(&p.table, &location(&p.table)?, &cuts(Table::Category), metadata.clone(), progress))
        .map_err(Box::new)?;
    rt.block_on(rewind(QUARANTINE_TABLE, &location(QUARANTINE_TABLE)?, &cuts(Table::Quarantine), metadata, progress))
        .map_err(Box::new)?;
    // The group's offsets follow, for lag tools (best effort: Delta is the source of truth).
    let group: Result<BaseConsumer, _> =
        client_config(&config.kafka, Role::Consumer, &[], &[("group.id", &p.group)]).create();
    if let Ok(g) = group {
        let mut tpl = TopicPartitionList::new();
        for m in moves {
            let _ = tpl.add_partition_offset(&m.topic, m.partition, Offset::Offset(m.new));
        }
        if let Err(e) = g.commit(&tpl, CommitMode::Sync) {
            tracing::warn!(group = %p.group, error = %crate::telemetry::Chain(&e), "could not move the group's offsets (lag tools only)");
        }
    }
    Ok(())
}

/// Parses an ISO-8601 duration of days, hours, minutes and seconds (`P1DT2H`, `PT30M`,
/// `PT1.5S`) into milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}` is not an ISO-8601 duration like P1DT2H or PT30M");
    let rest = s.strip_prefix('P').ok_or_else(bad)?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    if days.is_empty() && time.is_empty() {
        return Err(bad());
    }
    let mut ms = 0f64;
    let mut take = |part: &str, units: &[(char, f64)]| -> Result<(), String> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let unit = units.iter().find(|(u, _)| *u == c).ok_or_else(bad)?;
                ms += num.parse::<f64>().map_err(|_| bad())? * unit.1;
                num.clear();
            }
        }
        if num.is_empty() { Ok(()) } else { Err(bad()) }
    };
    take(days, &[('W', 604_800_000.0), ('D', 86_400_000.0)])?;
    take(time, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1_000.0)])?;
    Ok(ms.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("P1DT2H"), Ok(93_600_000));
        assert_eq!(parse_duration("PT30M"), Ok(1_800_000));
        assert_eq!(parse_duration("PT1.5S"), Ok(1_500));
        assert_eq!(parse_duration("P2W"), Ok(1_209_600_000));
        for bad in ["", "P", "1D", "PT", "P1X", "PT5", "P1H"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_scopes() {
        assert_eq!(Scope::parse_topic("pix.payments"), Ok(("pix.payments".into(), vec![])));
        assert_eq!(Scope::parse_topic("pix.payments:0,2"), Ok(("pix.payments".into(), vec![0, 2])));
        assert!(Scope::parse_topic("pix.payments:a").is_err());
    }
}
