//! How far behind Kafka the tables are, per owned partition: in records (high watermark minus
//! the offset below which every record's row is visible in its table) and in seconds (the age of
//! the oldest record whose row is not visible yet).
//!
//! "Visible" is not quite the committed offset of `pixlake_delta_committed_offset`: that one is
//! where a restart would resume, the lower of the two tables' txn offsets, and a table that
//! receives no rows (`pix_quarantine` on a clean stream) moves its offset only every
//! `ingest.idle_commit_ms`. Its rows are all there meanwhile, so lag counts from what is visible,
//! and reaches 0 as soon as the last batch is committed.
//!
//! The watermarks come from the consumer (librdkafka statistics every
//! `statistics.interval.ms`, and its cached watermarks after each commit). Record timestamps are
//! Kafka's.

use crate::pix::time::Micros;
use crate::telemetry::PartitionMetrics;

/// Lag in records and seconds. `seconds` is `None` when records are behind but none of them
/// (nor any earlier one) was read yet: nothing tells their age.
///
/// * records: `high − max(visible, low)`, never negative; `visible` `None` (nothing committed
///   yet) counts from `low`. Offsets below `low` were deleted by retention and cannot be read.
/// * seconds: 0 when caught up; else `now −` the Kafka timestamp of the oldest record read but
///   not durable; if none is buffered (the consumer is not reading, e.g. the broker is down),
///   `now −` the timestamp of the newest durable record — an upper bound, the first missing
///   record being at least as recent.
pub fn lag(
    visible: Option<i64>,
    low: i64,
    high: i64,
    oldest_pending: Option<Micros>,
    newest_durable: Option<Micros>,
    now: Micros,
) -> (i64, Option<f64>) {
    let records = (high - visible.unwrap_or(low).max(low)).max(0);
    if records == 0 {
        return (0, Some(0.0));
    }
    let since = oldest_pending.or(newest_durable);
    (records, since.map(|ts| ((now - ts).max(0)) as f64 / 1e6))
}

/// The lag bookkeeping of one owned partition and its gauges.
pub struct PartitionLag {
    /// The partition's series.
    pub metrics: PartitionMetrics,
    watermarks: Option<(i64, i64)>,
    visible: Option<i64>,
    oldest_pending: Option<Micros>,
    newest_read: Option<Micros>,
    newest_durable: Option<Micros>,
}

impl PartitionLag {
    /// A partition just assigned, whose rows are visible below `visible` (its durable offset).
    pub fn new(metrics: PartitionMetrics, visible: Option<i64>) -> Self {
        PartitionLag {
            metrics,
            watermarks: None,
            visible,
            oldest_pending: None,
            newest_read: None,
            newest_durable: None,
        }
    }

    /// A record with Kafka timestamp `ts` was read and is waiting for a commit.
    pub fn read(&mut self, ts: Option<Micros>) {
        if let Some(ts) = ts {
            self.oldest_pending.get_or_insert(ts);
            self.newest_read = Some(self.newest_read.map_or(ts, |n| n.max(ts)));
        }
    }

    /// Everything read so far is durable: every row below `visible` is in its table.
    pub fn saved(&mut self, visible: Option<i64>) {
        if visible.is_some() {
            self.visible = visible;
        }
        self.oldest_pending = None;
        if self.newest_read.is_some() {
            self.newest_durable = self.newest_read;
        }
    }

    /// What was read is dropped (to be read again).
    pub fn dropped(&mut self) {
        self.oldest_pending = None;
        self.newest_read = self.newest_durable;
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

    /// Sets the gauges at `now`; `durable` is where a restart would resume.
    pub fn publish(&self, durable: Option<i64>, now: Micros) {
        self.metrics.committed_offset.set(durable.unwrap_or(-1));
        let Some((low, high)) = self.watermarks else {
            return;
        };
        self.metrics.high_watermark.set(high);
        let (records, seconds) = lag(self.visible, low, high, self.oldest_pending, self.newest_durable, now);
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

    #[test]
    fn caught_up_is_zero_in_both() {
        assert_eq!(lag(Some(100), 0, 100, None, Some(5 * S), 60 * S), (0, Some(0.0)));
        assert_eq!(lag(None, 0, 0, None, None, 60 * S), (0, Some(0.0)), "empty partition, nothing committed");
    }

    #[test]
    fn behind_counts_records_and_the_oldest_pending_age() {
        assert_eq!(lag(Some(90), 0, 100, Some(50 * S), Some(40 * S), 60 * S), (10, Some(10.0)));
        // Nothing buffered (consumer stalled): bounded by the newest durable record's age.
        assert_eq!(lag(Some(90), 0, 100, None, Some(40 * S), 60 * S), (10, Some(20.0)));
        // Nothing read yet: age unknown.
        assert_eq!(lag(None, 0, 100, None, None, 60 * S), (100, None));
    }

    #[test]
    fn retention_bounds_the_lag() {
        // Committed offset 10 but retention deleted everything below 40.
        assert_eq!(lag(Some(10), 40, 100, None, None, 0).0, 60);
    }

    #[test]
    fn bookkeeping_follows_reads_and_commits() {
        let m = crate::telemetry::Metrics::new().unwrap().pipeline("p", "t", "tbl").partition(0);
        let mut l = PartitionLag::new(m.clone(), None);
        l.watermarks(0, 10);
        l.read(Some(5 * S));
        l.read(Some(7 * S));
        l.publish(None, 10 * S);
        assert_eq!((m.lag_records.get(), m.lag_seconds.get(), m.committed_offset.get()), (10, 5.0, -1));
        // Both rows visible; the quarantine table's offset still trails (durable 0).
        l.saved(Some(2));
        l.publish(Some(0), 10 * S);
        assert_eq!((m.lag_records.get(), m.lag_seconds.get(), m.committed_offset.get()), (8, 3.0, 0));
        l.watermarks(-1001, 2);
        l.publish(Some(0), 10 * S);
        assert_eq!((m.lag_records.get(), m.lag_seconds.get(), m.high_watermark.get()), (0, 0.0, 2));
    }

    proptest! {
        /// Lag is never negative and is zero exactly when the visible offset reached the high
        /// watermark (or the partition holds nothing readable).
        #[test]
        fn never_negative(visible in proptest::option::of(0i64..1000), low in 0i64..500, len in 0i64..500,
                          pending in proptest::option::of(0i64..100), now in 100i64..200) {
            let high = low + len;
            let (records, seconds) = lag(visible, low, high, pending.map(|p| p * S), None, now * S);
            prop_assert!(records >= 0);
            prop_assert_eq!(records == 0, visible.unwrap_or(low).max(low) >= high);
            if let Some(s) = seconds { prop_assert!(s >= 0.0); }
        }
    }
}
