//! Where each owned source partition stands, pure: what each table has durably committed, what
//! has been read, and therefore where to start, what to keep and what to commit next.
//!
//! A partition's records go to two tables — valid ones to the category table, rejected ones to
//! `pix_quarantine` — and the two tables are two Delta commits, which cannot be one atomic
//! step. So each table keeps its **own** offset (`txn` version = next offset it covers), and:
//!
//! * reading starts at the lower of the two ([`CommittedOffsets::resume`]); a table that never
//!   committed for the partition means "from the earliest retained record";
//! * a record is kept for a table only if its offset is at or past that table's offset
//!   ([`Progress::route`]); below it, the row is already durable there and is skipped;
//! * a commit of a table advances its offset to what was *read* ([`Progress::read`]), not to
//!   the last row it holds: every record below `read` that belongs in the table is in it, either
//!   from an earlier commit or in this one.
//!
//! A crash between the two commits therefore leaves one table ahead; the restart re-reads from
//! the other table's offset and the table that is ahead skips what it has. Records are never
//! lost (reading starts at the lowest durable offset) and never doubled (each table drops what
//! it already covers).

use crate::offsets::CommittedOffsets;
pub use crate::offsets::Table;

/// What to do with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Buffer it for its table.
    Keep,
    /// Its table already has it (re-read after a crash between the two tables' commits).
    Durable,
    /// Already read in this assignment (a redelivery); dropping it keeps the batch free of
    /// doubles.
    Redelivered,
}

/// One owned partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// What each table has durably committed (read from Delta at assignment, then moved by
    /// this process's own commits).
    pub committed: CommittedOffsets,
    /// Offset after the last record taken (kept or skipped) since assignment; `None`: nothing
    /// read yet.
    pub read: Option<i64>,
    /// `(low, high)` watermarks read when ingest started, for `--until-caught-up`.
    pub target: Option<(i64, i64)>,
}

impl Progress {
    /// A partition just assigned, with the offsets its tables have committed.
    pub fn assigned(committed: CommittedOffsets) -> Self {
        Progress { committed, read: None, target: None }
    }

    /// The offset to start reading at; `None`: the earliest retained record.
    pub fn start(&self) -> Option<i64> {
        self.committed.resume()
    }

    /// The committed offset of `table`.
    pub fn committed(&self, table: Table) -> Option<i64> {
        self.committed.of(table)
    }

    /// Decides about the record at `offset` bound for `table`, and counts it as read.
    pub fn route(&mut self, offset: i64, table: Table) -> Route {
        if self.read.is_some_and(|r| offset < r) {
            return Route::Redelivered;
        }
        self.read = Some(offset + 1);
        if self.committed(table).is_some_and(|c| offset < c) { Route::Durable } else { Route::Keep }
    }

    /// The consumer reached the end of the partition at `position`: every record before it has
    /// been delivered (offsets with no record — transaction markers, compacted records — count
    /// as read).
    pub fn reached(&mut self, position: i64) {
        if position >= 0 && self.read.is_none_or(|r| position > r) && self.start().is_none_or(|s| position >= s) {
            self.read = Some(position);
        }
    }

    /// The offset a commit of `table` would record, when it moves that table's offset forward.
    pub fn pending(&self, table: Table) -> Option<i64> {
        let read = self.read?;
        match self.committed(table) {
            Some(c) if c >= read => None,
            _ => Some(read),
        }
    }

    /// Records that `table` committed up to `next`.
    pub fn commit(&mut self, table: Table, next: i64) {
        self.committed.set(table, next);
    }

    /// Offset below which both tables are complete (`None` before both have committed).
    pub fn durable(&self) -> Option<i64> {
        self.start()
    }

    /// Whether both tables are committed up to the target (`--until-caught-up`). An empty
    /// partition is caught up from the start.
    pub fn caught_up(&self) -> bool {
        self.target.is_some_and(|(low, high)| self.committed.caught_up(low, high))
    }

    /// Whether everything up to the target has been read (the rest is a final commit away).
    pub fn read_to_target(&self) -> bool {
        match self.target {
            None => false,
            Some((low, high)) => {
                high <= low || self.read.or(self.start()).is_some_and(|r| r >= high) || self.caught_up()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn assigned(category: Option<i64>, quarantine: Option<i64>) -> Progress {
        Progress::assigned(CommittedOffsets::new(category, quarantine))
    }

    #[test]
    fn starts_at_the_lower_table_offset() {
        assert_eq!(assigned(Some(10), Some(7)).start(), Some(7));
        assert_eq!(assigned(Some(10), None).start(), None, "quarantine never committed: from earliest");
        assert_eq!(assigned(None, None).start(), None);
    }

    #[test]
    fn the_table_ahead_skips_what_it_has() {
        let mut p = assigned(Some(10), Some(7));
        assert_eq!(p.route(7, Table::Category), Route::Durable);
        assert_eq!(p.route(8, Table::Quarantine), Route::Keep);
        assert_eq!(p.route(8, Table::Quarantine), Route::Redelivered);
        assert_eq!(p.route(10, Table::Category), Route::Keep);
        assert_eq!(p.pending(Table::Category), Some(11));
        assert_eq!(p.pending(Table::Quarantine), Some(11));
        p.commit(Table::Category, 11);
        assert_eq!(p.pending(Table::Category), None);
        assert_eq!(p.durable(), Some(7));
    }

    #[test]
    fn end_of_partition_counts_gaps_as_read() {
        let mut p = assigned(Some(5), Some(5));
        p.target = Some((0, 9));
        p.reached(9);
        assert_eq!(p.read, Some(9));
        assert!(p.read_to_target() && !p.caught_up());
        p.commit(Table::Category, 9);
        p.commit(Table::Quarantine, 9);
        assert!(p.caught_up());
        let mut empty = assigned(None, None);
        empty.target = Some((4, 4));
        assert!(empty.caught_up(), "nothing to read");
        let mut behind = assigned(Some(5), Some(5));
        behind.reached(3);
        assert_eq!(behind.read, None, "a stale position before the start is ignored");
    }

    /// A simulated run: records (each valid or not) are read in order, tables commit at random
    /// moments, the process crashes at random moments (losing everything not committed) and
    /// restarts from [`Progress::start`]; Kafka redelivers at random. At the end every offset
    /// below the durable offset is in exactly one table, and nothing is in both.
    #[derive(Debug, Clone)]
    enum Step {
        Read,
        Redeliver(u8),
        Commit(bool),
        Crash,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => Just(Step::Read),
            1 => any::<u8>().prop_map(Step::Redeliver),
            2 => any::<bool>().prop_map(Step::Commit),
            1 => Just(Step::Crash),
        ]
    }

    proptest! {
        #[test]
        fn crashes_between_the_two_commits_lose_and_double_nothing(
            valid in proptest::collection::vec(any::<bool>(), 1..60),
            steps in proptest::collection::vec(step(), 1..200),
        ) {
            let table_of = |o: i64| if valid[o as usize] { Table::Category } else { Table::Quarantine };
            // Durable state: rows per table and their txn offsets.
            let mut rows: [BTreeMap<i64, u32>; 2] = [BTreeMap::new(), BTreeMap::new()];
            let mut txn: [Option<i64>; 2] = [None, None];
            let mut p = assigned(None, None);
            let mut next = 0i64;
            let mut buffered: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
            let n = valid.len() as i64;
            for s in steps {
                match s {
                    Step::Read if next < n => {
                        let t = table_of(next);
                        if p.route(next, t) == Route::Keep {
                            buffered[t as usize].push(next);
                        }
                        next += 1;
                    }
                    Step::Redeliver(back) => next = (next - i64::from(back % 4)).max(p.start().unwrap_or(0)),
                    Step::Commit(quarantine_first) => {
                        let order = if quarantine_first { [Table::Quarantine, Table::Category] } else { [Table::Category, Table::Quarantine] };
                        for t in order {
                            if let Some(v) = p.pending(t) {
                                for o in buffered[t as usize].drain(..) {
                                    *rows[t as usize].entry(o).or_default() += 1;
                                }
                                txn[t as usize] = Some(v);
                                p.commit(t, v);
                            }
                        }
                    }
                    Step::Crash => {
                        buffered = [Vec::new(), Vec::new()];
                        p = assigned(txn[0], txn[1]);
                        next = p.start().unwrap_or(0);
                    }
                    Step::Read => {}
                }
            }
            let durable = p.durable().unwrap_or(0);
            for o in 0..durable {
                let t = table_of(o) as usize;
                prop_assert_eq!(rows[t].get(&o).copied(), Some(1), "offset {} once in its table", o);
                prop_assert_eq!(rows[1 - t].get(&o), None, "offset {} not in the other table", o);
            }
            for table in &rows {
                prop_assert!(table.values().all(|&c| c == 1), "no doubles");
            }
        }
    }
}
