//! `--until-caught-up` over **every** partition of a pipeline's topic (SPEC §6), pure: the high
//! watermarks read when ingest started are the targets; a partition is done once both of its
//! tables' offsets reach its target, whoever committed them — this process, or another member
//! of the group (a crashed member still holding partitions, another instance). "All my
//! assigned partitions are caught up" is not enough: a member killed while it held partitions,
//! or one that joined late, can keep some of them for a whole session.

use std::collections::BTreeMap;

use crate::offsets::{CommittedOffsets, PartitionOffsets};

/// Who brought a partition to its target, for the end-of-run summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CaughtUpBy {
    /// It was caught up when ingest started (nothing new since the last run).
    Already,
    /// This process committed up to the target.
    ThisProcess,
    /// Another writer did (seen in Delta at assignment or while watching the partition).
    Another,
}

impl CaughtUpBy {
    /// The word in summaries and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CaughtUpBy::Already => "already",
            CaughtUpBy::ThisProcess => "this_process",
            CaughtUpBy::Another => "another",
        }
    }
}

/// A partition still short of its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailing {
    pub partition: i32,
    /// The offsets last seen in Delta.
    pub committed: CommittedOffsets,
    /// Low and high watermarks read at start.
    pub low: i64,
    pub high: i64,
    /// Whether this process owned it when it gave up (`--timeout`): still reading it, rather
    /// than waiting for another member.
    pub owned: bool,
}

impl std::fmt::Display for Trailing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.committed.resume() {
            Some(c) => write!(f, "{} (committed {c} of {})", self.partition, self.high),
            None => write!(f, "{} (nothing committed, {} records)", self.partition, self.high - self.low),
        }
    }
}

/// Where a pipeline stands against its `--until-caught-up` targets.
#[derive(Debug, Clone, Default)]
pub struct CatchUp {
    /// `(low, high)` watermarks of every partition, read at start.
    targets: BTreeMap<i32, (i64, i64)>,
    /// The latest committed offsets seen per partition.
    latest: PartitionOffsets,
    /// Partitions done, and by whom.
    by: BTreeMap<i32, CaughtUpBy>,
}

impl CatchUp {
    /// Targets for every partition, and the offsets Delta had at start.
    pub fn new(targets: BTreeMap<i32, (i64, i64)>, at_start: &PartitionOffsets) -> Self {
        let mut c = CatchUp { targets, ..CatchUp::default() };
        for (&p, &o) in at_start {
            c.observe(p, o, CaughtUpBy::Already);
        }
        c
    }

    /// The target of `partition` (`None`: not a partition of the topic at start).
    pub fn target(&self, partition: i32) -> Option<(i64, i64)> {
        self.targets.get(&partition).copied()
    }

    /// `partition` has `committed` offsets, as `who` made them.
    pub fn observe(&mut self, partition: i32, committed: CommittedOffsets, who: CaughtUpBy) {
        let Some(&(low, high)) = self.targets.get(&partition) else { return };
        self.latest.insert(partition, committed);
        if committed.caught_up(low, high) {
            self.by.entry(partition).or_insert(who);
        }
    }

    /// Whether every partition reached its target (`by` only ever holds partitions that have
    /// one, so counting is enough: this is asked after every record).
    pub fn done(&self) -> bool {
        self.by.len() == self.targets.len()
    }

    /// The partitions short of their targets, in order.
    pub fn trailing(&self) -> Vec<Trailing> {
        self.targets
            .iter()
            .filter(|(p, _)| !self.by.contains_key(p))
            .map(|(&partition, &(low, high))| Trailing {
                partition,
                committed: self.latest.get(&partition).copied().unwrap_or_default(),
                low,
                high,
                owned: false,
            })
            .collect()
    }

    /// The partitions done, by whom.
    pub fn by(&self) -> &BTreeMap<i32, CaughtUpBy> {
        &self.by
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(c: i64, q: i64) -> CommittedOffsets {
        CommittedOffsets::new(Some(c), Some(q))
    }

    #[test]
    fn done_only_when_every_partition_is_there_whoever_committed_it() {
        let targets = BTreeMap::from([(0, (0, 10)), (1, (0, 20)), (2, (5, 5))]);
        let start = PartitionOffsets::from([(0, at(10, 10)), (1, at(3, 3)), (2, CommittedOffsets::default())]);
        let mut c = CatchUp::new(targets, &start);
        assert_eq!(c.by().get(&0), Some(&CaughtUpBy::Already));
        assert_eq!(c.by().get(&2), Some(&CaughtUpBy::Already), "nothing readable");
        assert!(!c.done());
        assert_eq!(c.trailing(), vec![Trailing { partition: 1, committed: at(3, 3), low: 0, high: 20, owned: false }]);
        // Only one table there: not yet.
        c.observe(1, at(20, 19), CaughtUpBy::Another);
        assert!(!c.done());
        c.observe(1, at(25, 20), CaughtUpBy::Another);
        assert!(c.done());
        assert_eq!(c.by().get(&1), Some(&CaughtUpBy::Another));
        // Later observations do not change who did it; unknown partitions are ignored.
        c.observe(1, at(30, 30), CaughtUpBy::ThisProcess);
        c.observe(9, at(1, 1), CaughtUpBy::ThisProcess);
        assert_eq!(c.by().get(&1), Some(&CaughtUpBy::Another));
        assert_eq!(c.by().len(), 3);
    }

    #[test]
    fn trailing_partitions_say_where_they_are() {
        let t = Trailing { partition: 4, committed: at(7, 5), low: 0, high: 9, owned: false };
        assert_eq!(t.to_string(), "4 (committed 5 of 9)");
        let t = Trailing { partition: 0, committed: CommittedOffsets::default(), low: 2, high: 9, owned: true };
        assert_eq!(t.to_string(), "0 (nothing committed, 7 records)");
    }
}
