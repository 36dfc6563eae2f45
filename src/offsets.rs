//! Where a source partition stands in Delta, pure: the offsets the two tables of its pipeline
//! have committed, where reading resumes, how far behind Kafka that is, and the `txn` app ids
//! the offsets are stored under. Every command that reads offsets (ingest, status, audit,
//! offsets reset, dlq replay) and the test checker go through [`CommittedOffsets`]; the one
//! reader that fills it is `sink::delta::read_offsets`.
//!
//! A partition's records go to two tables — valid ones to the category table, rejected ones to
//! `pix_quarantine` — each commit carrying that table's own offset (the `txn` version = the next
//! offset the table covers). The partition is committed up to the **lower** of the two: below
//! it both tables have every record that belongs to them; that is where a restart resumes, what
//! `pixlake status` shows as committed, what the consumer group's offsets are set to for lag
//! tools, and what lag is counted from ([`CommittedOffsets::lag`]).

use std::collections::BTreeMap;

/// The two tables a partition's records go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// The category table (`pix_payments`, …): valid events.
    Category,
    /// `pix_quarantine`: rejected records.
    Quarantine,
}

impl Table {
    /// Both tables, in the order a batch commits them.
    pub const BOTH: [Table; 2] = [Table::Category, Table::Quarantine];
}

/// The offsets one source partition has committed in its two tables (`None`: that table never
/// committed for the partition, i.e. reading starts at the earliest retained record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommittedOffsets {
    /// Next offset the category table covers.
    pub category: Option<i64>,
    /// Next offset `pix_quarantine` covers.
    pub quarantine: Option<i64>,
}

impl CommittedOffsets {
    /// Offsets as read from the two tables.
    pub fn new(category: Option<i64>, quarantine: Option<i64>) -> Self {
        CommittedOffsets { category, quarantine }
    }

    /// The committed offset of `table`.
    pub fn of(&self, table: Table) -> Option<i64> {
        match table {
            Table::Category => self.category,
            Table::Quarantine => self.quarantine,
        }
    }

    /// Records that `table` committed up to `next`.
    pub fn set(&mut self, table: Table, next: i64) {
        match table {
            Table::Category => self.category = Some(next),
            Table::Quarantine => self.quarantine = Some(next),
        }
    }

    /// Where reading resumes: the lower of the two offsets, below which both tables are
    /// complete. `None` until both tables have committed (then: the earliest retained record).
    pub fn resume(&self) -> Option<i64> {
        Some(self.category?.min(self.quarantine?))
    }

    /// The first offset still to be archived given Kafka's low watermark: the resume offset, or
    /// `low` when nothing was committed or retention deleted records past it.
    pub fn next_to_archive(&self, low: i64) -> i64 {
        self.resume().unwrap_or(low).max(low)
    }

    /// **The** lag of pixlake, in records: records between the committed (resume) offset and
    /// the high watermark — what a restart would read again, and exactly what Kafka lag tools
    /// show for the group (pixlake sets the group's offsets to the resume offset after each
    /// commit). Offsets below `low` were deleted by retention and cannot be read any more, so
    /// they are not counted. Never negative.
    pub fn lag(&self, low: i64, high: i64) -> i64 {
        (high - self.next_to_archive(low)).max(0)
    }

    /// Whether both tables are committed up to `high` (the `--until-caught-up` test). A
    /// partition with nothing readable (`high <= low`) is caught up from the start.
    pub fn caught_up(&self, low: i64, high: i64) -> bool {
        self.lag(low, high) == 0
    }
}

/// Committed offsets of a pipeline's partitions, keyed by partition id.
pub type PartitionOffsets = BTreeMap<i32, CommittedOffsets>;

/// The `txn` app ids of one pipeline's partitions. The pipeline name is part of the id, so two
/// pipelines reading the same topic into different tables (or both into `pix_quarantine`) never
/// share an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppIds<'a> {
    pipeline: &'a str,
    topic: &'a str,
}

impl<'a> AppIds<'a> {
    /// The app ids of `pipeline` reading `topic`.
    pub fn new(pipeline: &'a str, topic: &'a str) -> Self {
        AppIds { pipeline, topic }
    }

    /// The source topic.
    pub fn topic(&self) -> &'a str {
        self.topic
    }

    /// The app id of `partition` in `table`: `pixlake:{pipeline}:{topic}:{partition}` in the
    /// category table, `pixlake:{pipeline}:quarantine:{topic}:{partition}` in `pix_quarantine`.
    pub fn of(&self, table: Table, partition: i32) -> String {
        match table {
            Table::Category => format!("pixlake:{}:{}:{partition}", self.pipeline, self.topic),
            Table::Quarantine => format!("pixlake:{}:quarantine:{}:{partition}", self.pipeline, self.topic),
        }
    }
}

/// A txn version as an offset: negative versions (ingest's "owned, nothing committed yet"
/// declaration, see `ingest::engine::NEVER_COMMITTED`) mean no offset.
pub fn offset(version: Option<i64>) -> Option<i64> {
    version.filter(|v| *v >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn resumes_at_the_lower_table_offset() {
        assert_eq!(CommittedOffsets::new(Some(10), Some(7)).resume(), Some(7));
        assert_eq!(CommittedOffsets::new(Some(10), None).resume(), None, "quarantine never committed: from earliest");
        assert_eq!(CommittedOffsets::default().resume(), None);
    }

    #[test]
    fn lag_counts_from_the_resume_offset_within_retention() {
        let c = CommittedOffsets::new(Some(100), Some(90));
        assert_eq!(c.lag(0, 100), 10, "the trailing table counts");
        assert_eq!(c.lag(95, 100), 5, "records deleted by retention are not lag");
        assert_eq!(CommittedOffsets::default().lag(40, 100), 60, "nothing committed: from the low watermark");
        assert_eq!(CommittedOffsets::new(Some(120), Some(120)).lag(0, 100), 0, "never negative");
        assert!(CommittedOffsets::default().caught_up(4, 4), "empty partition");
        assert!(!CommittedOffsets::new(Some(9), None).caught_up(0, 9), "quarantine never committed");
    }

    #[test]
    fn app_ids_are_what_the_tables_hold() {
        let ids = AppIds::new("payments", "pix.payments");
        assert_eq!(ids.of(Table::Category, 3), "pixlake:payments:pix.payments:3");
        assert_eq!(ids.of(Table::Quarantine, 3), "pixlake:payments:quarantine:pix.payments:3");
        assert_eq!(offset(Some(-1)), None);
        assert_eq!(offset(Some(0)), Some(0));
    }

    proptest! {
        /// Lag is zero exactly when both tables reached the high watermark (or nothing is
        /// readable), and moving either table forward never increases it.
        #[test]
        fn lag_is_zero_exactly_when_both_tables_are_there(
            c in proptest::option::of(0i64..1000), q in proptest::option::of(0i64..1000),
            low in 0i64..500, len in 0i64..500, step in 0i64..100,
        ) {
            let high = low + len;
            let o = CommittedOffsets::new(c, q);
            prop_assert!(o.lag(low, high) >= 0);
            let both_there = c.zip(q).is_some_and(|(c, q)| c.min(q) >= high);
            prop_assert_eq!(o.caught_up(low, high), both_there || high <= low);
            for t in Table::BOTH {
                let mut moved = o;
                moved.set(t, o.of(t).unwrap_or(0) + step);
                prop_assert!(moved.lag(low, high) <= o.lag(low, high));
            }
        }
    }
}
