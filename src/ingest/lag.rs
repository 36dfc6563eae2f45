//! How far behind Kafka the tables are, per owned partition, by pixlake's one definition of lag
//! ([`CommittedOffsets::lag`]): in records, the high watermark minus the committed offset — the
//! lower of the two tables' offsets, where a restart resumes and what the consumer group's
//! offsets are set to; in seconds, the age of the oldest record at or past that offset. `pixlake
//! status` and Kafka's lag tools show the same figures.
//!
//! A table that receives no rows (`pix_quarantine` on a clean stream) moves its offset only with
//! the batches that have rows for it, or every `ingest.idle_commit_ms`; until then its partitions
//! count as behind by what was read since, although every row is in the category table. The
//! freshness histogram (`pixlake_freshness_seconds`) measures when rows became visible.
//!
//! The watermarks come from the consumer (librdkafka statistics every
//! `statistics.interval.ms`). Record timestamps are Kafka's.

use crate::offsets::{CommittedOffsets, Table};
use crate::pix::time::Micros;
use crate::telemetry::PartitionMetrics;

/// Lag in records and seconds of a partition with `committed` offsets and watermarks
/// `low`/`high`. `seconds` is `None` when records are behind but none of them (nor any earlier
/// one) was read yet: nothing tells their age.
///
/// * records: [`CommittedOffsets::lag`];
/// * seconds: 0 when caught up; else `now −` the Kafka timestamp of the oldest record read at or
///   past the committed offset; if none was read (the consumer is not reading, e.g. the broker is
///   down), `now −` the timestamp of the newest record read before it — an upper bound, the
///   first missing record being at least as recent.
pub fn lag(
    committed: &CommittedOffsets,
    low: i64,
    high: i64,
    oldest_behind: Option<Micros>,
    newest_committed: Option<Micros>,
    now: Micros,
) -> (i64, Option<f64>) {
    let records = committed.lag(low, high);
    if records == 0 {
        return (0, Some(0.0));
    }
    let since = oldest_behind.or(newest_committed);
    (records, since.map(|ts| ((now - ts).max(0)) as f64 / 1e6))
}

/// The lag bookkeeping of one owned partition and its gauges.
pub struct PartitionLag {
    /// The partition's series.
    pub metrics: PartitionMetrics,
    watermarks: Option<(i64, i64)>,
    /// Per table: the Kafka timestamp of the oldest record read at or past that table's
    /// committed offset since it last committed.
    oldest_behind: [Option<Micros>; 2],
    newest_read: Option<Micros>,
    newest_committed: Option<Micros>,
}

impl PartitionLag {
    /// A partition just assigned.
    pub fn new(metrics: PartitionMetrics) -> Self {
        PartitionLag {
            metrics,
            watermarks: None,
            oldest_behind: [None, None],
            newest_read: None,
            newest_committed: None,
        }
    }

    /// The record at `offset` with Kafka timestamp `ts` was read; `committed` are the
    /// partition's offsets before it.
    pub fn read(&mut self, offset: i64, ts: Option<Micros>, committed: &CommittedOffsets) {
        let Some(ts) = ts else { return };
        for t in Table::BOTH {
            if committed.of(t).is_none_or(|c| offset >= c) {
                self.oldest_behind[t as usize].get_or_insert(ts);
            }
        }
        self.newest_read = Some(self.newest_read.map_or(ts, |n| n.max(ts)));
    }

    /// `table` committed everything read so far.
    pub fn saved(&mut self, table: Table) {
        self.oldest_behind[table as usize] = None;
        if self.oldest_behind.iter().all(Option::is_none) && self.newest_read.is_some() {
            self.newest_committed = self.newest_read;
        }
    }

    /// What was read is dropped (to be read again).
    pub fn dropped(&mut self) {
        self.oldest_behind = [None, None];
        self.newest_read = self.newest_committed;
    }

    /// The partition's low and high watermarks, as last seen (negative values: unknown; the
    /// consumer learns the low one only when it needs it, so an unknown low keeps the last
    /// known one, or 0).
    pub fn watermarks(&mut self, low: i64, high: i64) {
        if high >= 0 {
            let low = if low >= 0 { low } else { self.watermarks.map_or(0, |w| w.0) };
            self.watermarks = Some((low.min(high), high));
        }
    }

    /// Sets the gauges at `now` for a partition with `committed` offsets.
    pub fn publish(&self, committed: &CommittedOffsets, now: Micros) {
        self.metrics.committed_offset.set(committed.resume().unwrap_or(-1));
        let Some((low, high)) = self.watermarks else {
            return;
        };
        self.metrics.high_watermark.set(high);
        let oldest = self.oldest_behind.iter().flatten().min().copied();
        let (records, seconds) = lag(committed, low, high, oldest, self.newest_committed, now);
        self.metrics.lag_records.set(records);
        if let Some(s) = seconds {
            self.metrics.lag_seconds.set(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1_000_000;

    fn both(c: i64, q: i64) -> CommittedOffsets {
        CommittedOffsets::new(Some(c), Some(q))
    }

    #[test]
    fn caught_up_is_zero_in_both() {
        assert_eq!(lag(&both(100, 100), 0, 100, None, Some(5 * S), 60 * S), (0, Some(0.0)));
        assert_eq!(lag(&CommittedOffsets::default(), 0, 0, None, None, 60 * S), (0, Some(0.0)), "empty partition");
    }

    #[test]
    fn behind_counts_records_and_the_oldest_age() {
        assert_eq!(lag(&both(95, 90), 0, 100, Some(50 * S), Some(40 * S), 60 * S), (10, Some(10.0)));
        // Nothing read past the offset (consumer stalled): bounded by the newest committed record.
        assert_eq!(lag(&both(90, 90), 0, 100, None, Some(40 * S), 60 * S), (10, Some(20.0)));
        // Nothing read yet: age unknown.
        assert_eq!(lag(&CommittedOffsets::default(), 0, 100, None, None, 60 * S), (100, None));
    }

    #[test]
    fn bookkeeping_follows_reads_and_commits_of_each_table() {
        let m = crate::telemetry::Metrics::new("test").unwrap().pipeline("p", "t", "tbl").partition(0);
        let mut l = PartitionLag::new(m.clone());
        let mut c = CommittedOffsets::default();
        l.watermarks(0, 10);
        l.read(0, Some(5 * S), &c);
        l.read(1, Some(7 * S), &c);
        l.publish(&c, 10 * S);
        assert_eq!((m.lag_records.get(), m.lag_seconds.get(), m.committed_offset.get()), (10, 5.0, -1));
        // The category table committed both records; the quarantine's offset still trails at 0:
        // lag counts from there.
        c.set(Table::Category, 2);
        c.set(Table::Quarantine, 0);
        l.saved(Table::Category);
        l.publish(&c, 10 * S);
        assert_eq!((m.lag_records.get(), m.lag_seconds.get(), m.committed_offset.get()), (10, 5.0, 0));
        // A record read after the category commit is behind in both tables.
        l.read(2, Some(8 * S), &c);
        c.set(Table::Quarantine, 3);
        l.saved(Table::Quarantine);
        l.publish(&c, 10 * S);
        assert_eq!((m.lag_records.get(), m.lag_seconds.get(), m.committed_offset.get()), (8, 2.0, 2));
        c.set(Table::Category, 3);
        l.saved(Table::Category);
        l.watermarks(-1001, 3);
        l.publish(&c, 10 * S);
        assert_eq!((m.lag_records.get(), m.lag_seconds.get(), m.high_watermark.get()), (0, 0.0, 3));
    }

    proptest! {
        /// Lag is never negative and is zero exactly when the committed offsets are.
        #[test]
        fn never_negative(c in proptest::option::of(0i64..1000), q in proptest::option::of(0i64..1000),
                          low in 0i64..500, len in 0i64..500,
                          pending in proptest::option::of(0i64..100), now in 100i64..200) {
            let high = low + len;
            let committed = CommittedOffsets::new(c, q);
            let (records, seconds) = lag(&committed, low, high, pending.map(|p| p * S), None, now * S);
            // Counted by hand: offsets in [low, high) at or past the lower table offset.
            let from = match (c, q) { (Some(c), Some(q)) => c.min(q), _ => 0 };
            let by_hand = (low..high).filter(|&o| o >= from).count() as i64;
            prop_assert_eq!(records, by_hand);
            prop_assert_eq!(seconds == Some(0.0), by_hand == 0, "0 s exactly when nothing is behind");
            if by_hand > 0 {
                prop_assert_eq!(seconds, pending.map(|p| (now - p) as f64), "the oldest record's age");
            }
        }
    }
}
