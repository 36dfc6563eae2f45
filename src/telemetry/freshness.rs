//! Freshness: the time from a record's Kafka timestamp to the Delta commit that makes its row
//! visible to readers — what an analyst waiting for a payment in a notebook experiences.

use arrow::array::{Array, RecordBatch, TimestampMicrosecondArray};
use prometheus::Histogram;

/// The column both pixlake table kinds carry the Kafka timestamp in (SPEC §4).
pub const KAFKA_TIMESTAMP: &str = "kafka_timestamp";

/// Observes, for every row of `rows` that has a Kafka timestamp, `visible_at − timestamp` in
/// seconds (`visible_at` in UTC microseconds; clock skew between producer and pixlake can make
/// it negative, which counts in the lowest bucket). One local histogram per batch, so the shared
/// one is touched once.
pub fn observe(histogram: &Histogram, rows: &RecordBatch, visible_at: i64) {
    let Some(column) = rows.column_by_name(KAFKA_TIMESTAMP) else {
        return;
    };
    let Some(timestamps) = column.as_any().downcast_ref::<TimestampMicrosecondArray>() else {
        return;
    };
    let local = histogram.local();
    for i in 0..timestamps.len() {
        if timestamps.is_valid(i) {
            local.observe((visible_at - timestamps.value(i)) as f64 / 1e6);
        }
    }
    local.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use prometheus::HistogramOpts;
    use std::sync::Arc;

    #[test]
    fn every_timestamped_row_is_observed_once() {
        let schema = Schema::new(vec![Field::new(
            KAFKA_TIMESTAMP,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )]);
        let ts = TimestampMicrosecondArray::from(vec![Some(1_000_000), None, Some(3_000_000)]).with_timezone("UTC");
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ts)]).unwrap();
        let h = Histogram::with_opts(HistogramOpts::new("f", "f").buckets(vec![1.0, 5.0])).unwrap();
        observe(&h, &batch, 5_000_000);
        assert_eq!(h.get_sample_count(), 2);
        assert!((h.get_sample_sum() - 6.0).abs() < 1e-9, "4 s + 2 s");
    }
}
