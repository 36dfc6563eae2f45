//! `pixlake audit`: checks SPEC §5 per source partition against what Kafka still holds — every
//! record in the retained range below the committed offset is in exactly one of {category
//! table, `pix_quarantine`}, no record is in the tables twice, and no table holds rows at or past
//! its own committed offset. The command an operator runs after an incident.
//!
//! The comparison ([`check`]) is pure; [`run`] gathers its inputs: each table's rows and txn
//! offsets from one version, and the offsets that really exist in Kafka (compacted topics and
//! transaction markers leave holes in the offset sequence, which are not losses).

use super::source::{self, SourceError, TIMEOUT};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::Config;
use crate::offsets::CommittedOffsets;
use crate::pix::batch::QUARANTINE_TABLE;
use crate::sink::delta::{SinkError, chosen_gaps, scan};
use crate::telemetry::progress::Progress;

/// What [`check`] found for one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    /// Rows for this partition in both tables.
    pub rows: u64,
    /// Records below the committed offset in no table.
    pub missing: u64,
    pub first_missing: Option<i64>,
    /// Records present more than once (each extra copy counts).
    pub duplicates: u64,
    pub first_duplicate: Option<i64>,
    /// Rows at or past their table's committed offset (visible data the offsets do not cover).
    pub beyond: u64,
    pub first_beyond: Option<i64>,
}

impl Findings {
    /// Violations of the invariant.
    pub fn violations(&self) -> u64 {
        self.missing + self.duplicates + self.beyond
    }
}

/// Compares one partition's rows (`category`, `quarantine`: offsets, any order) with the tables'
/// `committed` offsets and `source`: the offsets that exist in Kafka, ascending, limited to the
/// range that must be covered (retained and below the committed offset).
pub fn check(category: &[i64], quarantine: &[i64], committed: CommittedOffsets, source: &[i64]) -> Findings {
    let mut f = Findings { rows: (category.len() + quarantine.len()) as u64, ..Findings::default() };
    let past = |offsets: &[i64], limit: Option<i64>, f: &mut Findings| {
        for &o in offsets.iter().filter(|&&o| limit.is_none_or(|l| o >= l)) {
            f.beyond += 1;
            f.first_beyond = Some(f.first_beyond.map_or(o, |b: i64| b.min(o)));
        }
    };
    past(category, committed.category, &mut f);
    past(quarantine, committed.quarantine, &mut f);
    let mut all: Vec<i64> = category.iter().chain(quarantine).copied().collect();
    all.sort_unstable();
    for w in all.windows(2) {
        if w[0] == w[1] {
            f.duplicates += 1;
            f.first_duplicate.get_or_insert(w[0]);
        }
    }
    all.dedup();
    for &o in source {
        if all.binary_search(&o).is_err() {
            f.missing += 1;
            f.first_missing.get_or_insert(o);
        }
    }
    f
}

/// One partition's audit.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartitionAudit {
    pub pipeline: String,
    pub topic: String,
    pub partition: i32,
    pub low: i64,
    pub high: i64,
    pub table_offset: Option<i64>,
    pub quarantine_offset: Option<i64>,
    /// Below this offset both tables must be complete (`None`: nothing committed yet).
    pub committed: Option<i64>,
    /// Records checked in Kafka (retained and below the committed offset).
    pub checked: u64,
    /// Records in ranges `offsets reset` skipped on purpose (not expected in the tables).
    pub chosen_gap: u64,
    #[serde(flatten)]
    pub findings: Findings,
}

/// The whole audit.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Audit {
    pub partitions: Vec<PartitionAudit>,
    pub violations: u64,
}

/// Why the audit could not run.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Table(#[from] Box<SinkError>),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(
        "{topic}:{partition}: could only read Kafka up to offset {reached} of {until} in {secs} s; retry when the broker is healthy"
    )]
    SourceIncomplete { topic: String, partition: i32, reached: i64, until: i64, secs: u64 },
    #[error(transparent)]
    Scope(#[from] crate::config::UnknownName),
    #[error("no partition to audit: the topics of the selected pipelines have none on the broker; nothing was checked")]
    NothingChecked,
}

/// Audits `pipelines` (all when empty).
pub fn run(config: &Config, pipelines: &[String], progress: &dyn Progress) -> Result<Audit, AuditError> {
    let rt = source::runtime()?;
    let consumer = source::reader(config, "audit", &[("enable.partition.eof", "true")])?;
    let kafka = source::kafka(config, &consumer);
    let selected = config.select(pipelines)?;
    // Rows and offsets of each table come from one loaded version, so they agree even while
    // ingest commits.
    let quarantine_table = source::open(&rt, config, QUARANTINE_TABLE)?;
    let quarantine = rt.block_on(scan(QUARANTINE_TABLE, quarantine_table.as_ref(), progress)).map_err(Box::new)?;
    let mut out = Vec::new();
    for p in selected {
        let ids = source::partitions(&consumer, &p.topic).map_err(kafka)?;
        let ids = ids.ok_or_else(|| SourceError::NoTopic(p.topic.clone()))?;
        let table_at = source::open(&rt, config, &p.table)?;
        let offsets = source::offsets(&rt, p, &ids, table_at.as_ref(), quarantine_table.as_ref())?;
        let table = rt.block_on(scan(&p.table, table_at.as_ref(), progress)).map_err(Box::new)?;
        let gaps = match &table_at {
            Some(t) => rt.block_on(chosen_gaps(&p.table, t)).map_err(Box::new)?,
            None => Vec::new(),
        };
        let mut ranges = Vec::with_capacity(offsets.len());
        for (&n, committed) in &offsets {
            let (low, high) = consumer.fetch_watermarks(&p.topic, n, TIMEOUT).map_err(kafka)?;
            ranges.push((n, *committed, low, high, committed.resume().unwrap_or(low).min(high)));
        }
        let total = ranges.iter().map(|r| (r.4 - r.2).max(0) as u64).sum();
        progress.step(&format!("checking {} against Kafka", p.topic), Some(total), "records");
        for (n, committed, low, high, until) in ranges {
            let source = source_offsets(&consumer, &p.topic, n, low, until, progress).map_err(|e| match e {
                Read::Kafka(source) => kafka(source).into(),
                Read::Incomplete(reached) => AuditError::SourceIncomplete {
                    topic: p.topic.clone(),
                    partition: n,
                    reached,
                    until,
                    secs: SOURCE_BUDGET.as_secs(),
                },
            })?;
            let skipped =
                |o: i64| gaps.iter().any(|(t, gp, from, to)| t == &p.topic && *gp == n && o >= *from && o < *to);
            let (gap, source): (Vec<i64>, Vec<i64>) = source.into_iter().partition(|&o| skipped(o));
            let findings = check(table.of(&p.topic, n), quarantine.of(&p.topic, n), committed, &source);
            out.push(PartitionAudit {
                pipeline: p.name.clone(),
                topic: p.topic.clone(),
                partition: n,
                low,
                high,
                table_offset: committed.category,
                quarantine_offset: committed.quarantine,
                committed: committed.resume(),
                checked: source.len() as u64,
                chosen_gap: gap.len() as u64,
                findings,
            });
        }
    }
    // An audit that looked at nothing proves nothing: it must not pass.
    if out.is_empty() {
        return Err(AuditError::NothingChecked);
    }
    let violations = out.iter().map(|p| p.findings.violations()).sum();
    Ok(Audit { partitions: out, violations })
}

const SOURCE_BUDGET: Duration = Duration::from_secs(300);

enum Read {
    Kafka(KafkaError),
    Incomplete(i64),
}

/// The offsets that exist in `topic`/`partition` within `[from, until)`, ascending.
fn source_offsets(
    consumer: &crate::kafka::Reader,
    topic: &str,
    partition: i32,
    from: i64,
    until: i64,
    progress: &dyn Progress,
) -> Result<Vec<i64>, Read> {
    let mut offsets = Vec::new();
    if from >= until {
        return Ok(offsets);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from)).map_err(Read::Kafka)?;
    consumer.assign(&tpl).map_err(Read::Kafka)?;
    let deadline = Instant::now() + SOURCE_BUDGET;
    let mut reached = from;
    while reached < until {
        if Instant::now() > deadline {
            let _ = consumer.unassign();
            return Err(Read::Incomplete(reached));
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                if m.offset() < until {
                    offsets.push(m.offset());
                }
                progress.advance((m.offset() + 1).min(until).saturating_sub(reached).max(0) as u64);
                reached = m.offset() + 1;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            // Refused credentials or certificates will not pass by waiting: report them now.
            Some(Err(e)) => {
                let diagnosis = &consumer.context().diagnosis;
                diagnosis.note(crate::kafka::diagnosis::code_of(&e), &e.to_string());
                if diagnosis.get().is_some() {
                    let _ = consumer.unassign();
                    return Err(Read::Kafka(e));
                }
            }
            None => {}
        }
    }
    let _ = consumer.unassign();
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn both(category: i64, quarantine: i64) -> CommittedOffsets {
        CommittedOffsets::new(Some(category), Some(quarantine))
    }

    #[test]
    fn a_clean_partition_has_no_findings() {
        let f = check(&[0, 2, 3], &[1], both(4, 4), &[0, 1, 2, 3]);
        assert_eq!(f, Findings { rows: 4, ..Findings::default() });
    }

    #[test]
    fn each_kind_of_violation_is_counted() {
        // 1 is missing, 2 is doubled (once in each table), 5 is past the category offset.
        let f = check(&[0, 2, 3, 5], &[2], both(5, 4), &[0, 1, 2, 3]);
        assert_eq!((f.missing, f.first_missing), (1, Some(1)));
        assert_eq!((f.duplicates, f.first_duplicate), (1, Some(2)));
        assert_eq!((f.beyond, f.first_beyond), (1, Some(5)));
        assert_eq!(f.violations(), 3);
        // A table that never committed must hold no row at all.
        assert_eq!(check(&[7], &[], CommittedOffsets::new(None, Some(0)), &[]).beyond, 1);
    }

    #[test]
    fn holes_in_the_source_are_not_losses() {
        // Offsets 2 and 3 do not exist in Kafka (compaction, transaction markers).
        assert_eq!(check(&[0, 1, 4], &[], both(5, 5), &[0, 1, 4]).violations(), 0);
    }

    proptest! {
        /// Removing a present offset is found as missing; adding a copy as a duplicate.
        #[test]
        fn planted_faults_are_found(n in 1i64..200, pick in any::<prop::sample::Index>(), dup in any::<bool>()) {
            let source: Vec<i64> = (0..n).collect();
            let victim = source[pick.index(n as usize)];
            let mut rows: Vec<i64> = source.clone();
            if dup { rows.push(victim) } else { rows.retain(|&o| o != victim) }
            let f = check(&rows, &[], both(n, n), &source);
            prop_assert_eq!(f.violations(), 1);
            if dup { prop_assert_eq!(f.first_duplicate, Some(victim)) } else { prop_assert_eq!(f.first_missing, Some(victim)) }
        }
    }
}
