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
//!
//! Commits run on the committer thread while reading goes on, so a table's offset has a third
//! state between "read" and "committed": **sealed** — handed to the committer, not yet durable
//! ([`Progress::seal`]). What the next commit would record ([`Progress::pending`]) counts from
//! the sealed offset, so a batch never re-offers the range of the one before it; the committed
//! offset (where a restart would start, what the group is told) moves only when the commit is
//! acknowledged ([`Progress::commit`]). A crash with a batch sealed loses only memory: the
//! restart starts from the committed offsets, as after any crash.

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
    /// Per table (indexed by [`Table`]): the offset of a commit handed to the committer and not
    /// acknowledged yet.
    pub sealed: [Option<i64>; 2],
}

impl Progress {
    /// A partition just assigned, with the offsets its tables have committed.
    pub fn assigned(committed: CommittedOffsets) -> Self {
        Progress { committed, read: None, target: None, sealed: [None, None] }
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

    /// The offset a commit of `table` would record, when it moves that table's offset past
    /// both the committed one and the one of a commit in flight.
    pub fn pending(&self, table: Table) -> Option<i64> {
        let read = self.read?;
        match self.committed(table).max(self.sealed[table as usize]) {
            Some(c) if c >= read => None,
            _ => Some(read),
        }
    }

    /// A commit of `table` up to `next` was handed to the committer.
    pub fn seal(&mut self, table: Table, next: i64) {
        self.sealed[table as usize] = Some(next);
    }

    /// Records that `table` committed up to `next` (the acknowledgement of a sealed commit, or
    /// a commit made in place).
    pub fn commit(&mut self, table: Table, next: i64) {
        self.committed.set(table, next);
        if self.sealed[table as usize].is_some_and(|s| s <= next) {
            self.sealed[table as usize] = None;
        }
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

    /// A simulated run, as the engine does it: records (each valid or not) are read in order;
    /// at random moments the buffered rows are sealed and handed to the committer, which
    /// commits the two tables one after the other (in either order) while reading goes on, and
    /// the acknowledgement moves the committed offsets once both landed; the process crashes at
    /// random moments — between a seal and its first commit, between the two commits, between
    /// the commits and the acknowledgement — losing everything not durable, and restarts from
    /// [`Progress::start`]; Kafka redelivers at random. At the end every offset below the
    /// durable offset is in exactly one table, and nothing is in both.
    #[derive(Debug, Clone)]
    enum Step {
        Read,
        Redeliver(u8),
        Seal(bool),
        Land,
        Ack,
        Crash,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => Just(Step::Read),
            1 => any::<u8>().prop_map(Step::Redeliver),
            1 => any::<bool>().prop_map(Step::Seal),
            1 => Just(Step::Land),
            1 => Just(Step::Ack),
            1 => Just(Step::Crash),
        ]
    }

    /// One table's part of a sealed batch: its rows, its txn offset, whether it landed.
    struct Part {
        table: Table,
        next: i64,
        rows: Vec<i64>,
        landed: bool,
    }

    proptest! {
        #[test]
        fn crashes_around_sealed_batches_and_between_the_two_commits_lose_and_double_nothing(
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
            // The batch in the committer (at most one, as in the engine), in commit order.
            let mut sealed: Option<Vec<Part>> = None;
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
                    Step::Seal(quarantine_first) if sealed.is_none() => {
                        let order = if quarantine_first { [Table::Quarantine, Table::Category] } else { [Table::Category, Table::Quarantine] };
                        let mut parts = Vec::new();
                        for t in order {
                            if let Some(v) = p.pending(t) {
                                p.seal(t, v);
                                parts.push(Part { table: t, next: v, rows: std::mem::take(&mut buffered[t as usize]), landed: false });
                            }
                        }
                        prop_assert!(p.pending(Table::Category).is_none() && p.pending(Table::Quarantine).is_none(),
                            "nothing read is pending once sealed");
                        sealed = Some(parts);
                    }
                    Step::Land => {
                        if let Some(part) = sealed.iter_mut().flatten().find(|part| !part.landed) {
                            for &o in &part.rows {
                                *rows[part.table as usize].entry(o).or_default() += 1;
                            }
                            txn[part.table as usize] = Some(part.next);
                            part.landed = true;
                        }
                    }
                    Step::Ack if sealed.as_ref().is_some_and(|parts| parts.iter().all(|part| part.landed)) => {
                        for part in sealed.take().into_iter().flatten() {
                            p.commit(part.table, part.next);
                        }
                    }
                    Step::Crash => {
                        buffered = [Vec::new(), Vec::new()];
                        sealed = None;
                        p = assigned(txn[0], txn[1]);
                        next = p.start().unwrap_or(0);
                    }
                    Step::Read | Step::Seal(_) | Step::Ack => {}
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
