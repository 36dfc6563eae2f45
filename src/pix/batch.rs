//! Table schemas (SPEC §4) and columnar batch builders: validated events and rejected records
//! are appended column by column and come out as an Arrow `RecordBatch`, ready for Parquet.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Date32Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;

use super::columns::{self, EnvelopeColumns, KafkaMeta, finish_into};
use super::event::{Category, Event, EventData};
use super::reserve::Reserve;
use super::rules::Rejection;
use super::time::{Micros, sao_paulo_date_hour};
use super::{payment, receipt, refund};

/// Column holding unknown fields as JSON (Databricks Auto Loader's name).
pub const RESCUED_COLUMN: &str = "_rescued_data";
/// Partition column of the category tables.
pub const EVENT_DATE: &str = "event_date";
/// Partition column of `pix_quarantine`.
pub const INGEST_DATE: &str = "ingest_date";
/// Default name of the quarantine table.
pub const QUARANTINE_TABLE: &str = "pix_quarantine";

/// The Arrow schema of a category table: envelope, category columns, `_rescued_data`.
pub fn category_schema(c: Category) -> SchemaRef {
    let mut fields = columns::envelope_fields();
    fields.extend(match c {
        Category::Payment => payment::fields(),
        Category::Receipt => receipt::fields(),
        Category::Refund => refund::fields(),
    });
    fields.push(columns::utf8(RESCUED_COLUMN, true));
    Arc::new(Schema::new(fields))
}

/// The Arrow schema of `pix_quarantine`.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        columns::utf8("kafka_topic", false),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
        columns::timestamp("kafka_timestamp", true),
        Field::new("kafka_key", DataType::Binary, true),
        Field::new("raw_value", DataType::Binary, true),
        columns::utf8("raw_text", true),
        columns::utf8("error_rule", false),
        columns::utf8("error_field", false),
        columns::utf8("error_message", false),
        columns::utf8("pipeline", false),
        columns::timestamp("ingest_time", false),
        Field::new(INGEST_DATE, DataType::Date32, false),
    ]))
}

/// One builder set per table (boxed: the variants differ in size and live as long as the batch).
enum DataColumns {
    Payment(Box<payment::Columns>),
    Receipt(Box<receipt::Columns>),
    Refund(Box<refund::Columns>),
}

/// An event of another category was appended to a builder (a wiring bug, reported not panicked).
#[derive(Debug, thiserror::Error)]
#[error("a {found} event cannot be appended to a {expected} batch")]
pub struct CategoryMismatch {
    pub expected: Category,
    pub found: Category,
}

/// Accumulates validated events of one category as Arrow columns.
pub struct CategoryBatchBuilder {
    category: Category,
    schema: SchemaRef,
    capacity: usize,
    envelope: EnvelopeColumns,
    data: DataColumns,
    rescued: StringBuilder,
    rows: usize,
    /// A written batch handed back ([`recycle`](Self::recycle)): the next builders' memory.
    spare: Option<RecordBatch>,
    /// Columns of the current builders that are on a previous batch's buffers.
    reused: usize,
}

impl CategoryBatchBuilder {
    /// A builder for `category`, sized for `capacity` rows (it grows past that if needed).
    pub fn new(category: Category, capacity: usize) -> Self {
        let (envelope, data, rescued) = Self::columns(category, &mut Reserve::fresh(capacity));
        CategoryBatchBuilder {
            category,
            schema: category_schema(category),
            capacity,
            envelope,
            data,
            rescued,
            rows: 0,
            spare: None,
            reused: 0,
        }
    }

    /// Every column's builder, in schema order, on `r`'s memory.
    fn columns(category: Category, r: &mut Reserve) -> (EnvelopeColumns, DataColumns, StringBuilder) {
        let envelope = EnvelopeColumns::new(r);
        let data = match category {
            Category::Payment => DataColumns::Payment(Box::new(payment::Columns::new(r))),
            Category::Receipt => DataColumns::Receipt(Box::new(receipt::Columns::new(r))),
            Category::Refund => DataColumns::Refund(Box::new(refund::Columns::new(r))),
        };
        // `_rescued_data` is null in nearly every row.
        (envelope, data, r.utf8(0))
    }

    /// The table schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row is pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one validated event read at `meta`, written at `ingest_time`.
    pub fn append(
        &mut self,
        ev: &Event<'_>,
        meta: &KafkaMeta<'_>,
        ingest_time: Micros,
    ) -> Result<(), CategoryMismatch> {
        match (&mut self.data, &ev.data) {
            (DataColumns::Payment(c), EventData::Payment(p)) => c.append(p),
            (DataColumns::Receipt(c), EventData::Receipt(r)) => c.append(r),
            (DataColumns::Refund(c), EventData::Refund(r)) => c.append(r),
            _ => {
                return Err(CategoryMismatch { expected: self.category, found: ev.envelope.category });
            }
        }
        self.envelope.append(&ev.envelope, ev.flags, meta, ingest_time);
        self.rescued.append_option(ev.rescued.as_deref());
        self.rows += 1;
        Ok(())
    }

    /// Hands back a batch this builder finished, once nothing needs it any more (written and
    /// dropped everywhere else): the builders after the next [`finish`](Self::finish) are made
    /// on its buffers. A batch of another schema, or one whose arrays are still held, only costs
    /// fresh allocations, as without it.
    pub fn recycle(&mut self, batch: RecordBatch) {
        if batch.schema_ref() == &self.schema {
            self.spare = Some(batch);
        }
    }

    /// Columns of the builders in use that took a previous batch's buffers (0 until a batch was
    /// handed back and the builder finished once since).
    pub fn reused_columns(&self) -> usize {
        self.reused
    }

    /// Gives back memory kept for rows that did not come: with no row pending, drops the batch
    /// handed back and replaces builders on reused buffers with fresh ones. For a table that had
    /// nothing to commit (an idle pipeline, a batch without rejections): otherwise the buffers of
    /// its last busy batches would stay held until it next has rows.
    pub fn release(&mut self) {
        if self.rows == 0 && (self.spare.is_some() || self.reused > 0) {
            self.spare = None;
            if self.reused > 0 {
                (self.envelope, self.data, self.rescued) =
                    Self::columns(self.category, &mut Reserve::fresh(self.capacity));
                self.reused = 0;
            }
        }
    }

    /// The pending rows as a batch; the builder is empty afterwards and can be reused.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let mut reserve = match self.spare.take() {
            Some(batch) => Reserve::from_batch(self.capacity, batch),
            None => Reserve::fresh(self.capacity),
        };
        let (envelope, data, rescued) = Self::columns(self.category, &mut reserve);
        self.reused = reserve.reused();
        let mut envelope = std::mem::replace(&mut self.envelope, envelope);
        let mut data = std::mem::replace(&mut self.data, data);
        let mut rescued = std::mem::replace(&mut self.rescued, rescued);
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        envelope.finish(&mut cols);
        match &mut data {
            DataColumns::Payment(c) => c.finish(&mut cols),
            DataColumns::Receipt(c) => c.finish(&mut cols),
            DataColumns::Refund(c) => c.finish(&mut cols),
        }
        finish_into(&mut cols, &mut rescued);
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), cols)
    }
}

/// The builders of `pix_quarantine`'s columns, in schema order.
struct QuarantineColumns {
    kafka_topic: StringBuilder,
    kafka_partition: Int32Builder,
    kafka_offset: Int64Builder,
    kafka_timestamp: TimestampMicrosecondBuilder,
    kafka_key: BinaryBuilder,
    raw_value: BinaryBuilder,
    raw_text: StringBuilder,
    error_rule: StringBuilder,
    error_field: StringBuilder,
    error_message: StringBuilder,
    pipeline: StringBuilder,
    ingest_time: TimestampMicrosecondBuilder,
    ingest_date: Date32Builder,
}

impl QuarantineColumns {
    /// Rows fresh builders are sized for: rejections are few, and the builders take the size
    /// of the batches they had once one is handed back.
    const ROWS: usize = 1024;

    fn new(r: &mut Reserve) -> Self {
        QuarantineColumns {
            kafka_topic: r.utf8(1),
            kafka_partition: r.primitive(),
            kafka_offset: r.primitive(),
            kafka_timestamp: columns::timestamp_builder(r),
            kafka_key: r.binary(1),
            raw_value: r.binary(1),
            raw_text: r.utf8(1),
            error_rule: r.utf8(1),
            error_field: r.utf8(1),
            error_message: r.utf8(1),
            pipeline: r.utf8(1),
            ingest_time: columns::timestamp_builder(r),
            ingest_date: r.primitive(),
        }
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(13);
        finish_into(&mut cols, &mut self.kafka_topic);
        finish_into(&mut cols, &mut self.kafka_partition);
        finish_into(&mut cols, &mut self.kafka_offset);
        finish_into(&mut cols, &mut self.kafka_timestamp);
        finish_into(&mut cols, &mut self.kafka_key);
        finish_into(&mut cols, &mut self.raw_value);
        finish_into(&mut cols, &mut self.raw_text);
        finish_into(&mut cols, &mut self.error_rule);
        finish_into(&mut cols, &mut self.error_field);
        finish_into(&mut cols, &mut self.error_message);
        finish_into(&mut cols, &mut self.pipeline);
        finish_into(&mut cols, &mut self.ingest_time);
        finish_into(&mut cols, &mut self.ingest_date);
        cols
    }
}

/// Accumulates rejected records as `pix_quarantine` rows.
pub struct QuarantineBatchBuilder {
    schema: SchemaRef,
    c: QuarantineColumns,
    rows: usize,
    /// A written batch handed back: the next builders' memory.
    spare: Option<RecordBatch>,
    reused: usize,
}

impl Default for QuarantineBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl QuarantineBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        QuarantineBatchBuilder {
            schema: quarantine_schema(),
            c: QuarantineColumns::new(&mut Reserve::fresh(QuarantineColumns::ROWS)),
            rows: 0,
            spare: None,
            reused: 0,
        }
    }

    /// Rows pending.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row is pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one rejected record with its original key and value, untouched.
    pub fn append(
        &mut self,
        meta: &KafkaMeta<'_>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        rejection: &Rejection,
        pipeline: &str,
        ingest_time: Micros,
    ) {
        let c = &mut self.c;
        c.kafka_topic.append_value(meta.topic);
        c.kafka_partition.append_value(meta.partition);
        c.kafka_offset.append_value(meta.offset);
        c.kafka_timestamp.append_option(meta.timestamp);
        c.kafka_key.append_option(key);
        c.raw_value.append_option(value);
        c.raw_text.append_option(value.and_then(|v| std::str::from_utf8(v).ok()));
        c.error_rule.append_value(rejection.rule.id());
        c.error_field.append_value(rejection.field);
        c.error_message.append_value(&rejection.message);
        c.pipeline.append_value(pipeline);
        c.ingest_time.append_value(ingest_time);
        c.ingest_date.append_value(sao_paulo_date_hour(ingest_time).0);
        self.rows += 1;
    }

    /// As [`CategoryBatchBuilder::recycle`].
    pub fn recycle(&mut self, batch: RecordBatch) {
        if batch.schema_ref() == &self.schema {
            self.spare = Some(batch);
        }
    }

    /// As [`CategoryBatchBuilder::reused_columns`].
    pub fn reused_columns(&self) -> usize {
        self.reused
    }

    /// As [`CategoryBatchBuilder::release`].
    pub fn release(&mut self) {
        if self.rows == 0 && (self.spare.is_some() || self.reused > 0) {
            self.spare = None;
            if self.reused > 0 {
                self.c = QuarantineColumns::new(&mut Reserve::fresh(QuarantineColumns::ROWS));
                self.reused = 0;
            }
        }
    }

    /// The pending rows as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let mut reserve = match self.spare.take() {
            Some(batch) => Reserve::from_batch(QuarantineColumns::ROWS, batch),
            None => Reserve::fresh(QuarantineColumns::ROWS),
        };
        let next = QuarantineColumns::new(&mut reserve);
        self.reused = reserve.reused();
        let cols = std::mem::replace(&mut self.c, next).finish();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), cols)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType};

    use super::*;
    use crate::pix::Decoder;
    use crate::pix::rules::HardRule;
    use crate::pix::time::parse_rfc3339;

    const PAYMENT: &[u8] = include_bytes!("../../tests/data/payment.json");

    fn meta(offset: i64) -> KafkaMeta<'static> {
        KafkaMeta { topic: "pix.payments", partition: 3, offset, timestamp: Some(1_000_000) }
    }

    #[test]
    fn category_batches_follow_the_schema() {
        let now = parse_rfc3339("2026-11-22T00:00:00Z").unwrap();
        let messy = String::from_utf8(PAYMENT.to_vec())
            .unwrap()
            .replace("\"1234.50\"", "1234.5")
            .replace("\"bank-api\"", "\" bank-api\"");
        let d = Decoder::default();
        let mut b = CategoryBatchBuilder::new(Category::Payment, 2);
        for (i, v) in [PAYMENT, messy.as_bytes(), PAYMENT].iter().enumerate() {
            let ev = d.decode(Some(v), Some(Category::Payment), now).unwrap();
            b.append(&ev, &meta(i as i64 + 10), now).unwrap();
        }
        assert_eq!(b.len(), 3);
        let batch = b.finish().unwrap();
        assert!(b.is_empty());
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema(), category_schema(Category::Payment));
        let col = |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("{name}")).clone();
        assert_eq!(col("amount").as_primitive::<Decimal128Type>().value(1), 123_450);
        assert_eq!(col("kafka_offset").as_primitive::<Int64Type>().values().to_vec(), vec![10, 11, 12]);
        assert_eq!(
            col("event_time").as_primitive::<TimestampMicrosecondType>().value(0),
            parse_rfc3339("2026-11-20T13:05:00.123Z").unwrap()
        );
        assert_eq!(
            col(EVENT_DATE).as_primitive::<Date32Type>().value(0),
            crate::pix::time::days_from_civil(2026, 11, 20) as i32
        );
        let flags = col("quality_flags");
        let flags = flags.as_list::<i32>();
        assert_eq!(flags.value(0).len(), 0);
        let row1 = flags.value(1);
        let row1: Vec<&str> = row1.as_string::<i32>().iter().map(Option::unwrap).collect();
        assert_eq!(row1, vec!["WHITESPACE_TRIMMED", "AMOUNT_FROM_NUMBER"]);
        assert_eq!(col("payer_document").as_string::<i32>().value(0), "52998224725");
        assert_eq!(col("payer_document_type").as_string::<i32>().value(0), "CPF");
        assert!(col(RESCUED_COLUMN).is_null(0));
        // A receipt cannot go into a payment batch.
        let receipt = br#"{"event_id":"9b2e4c1a-0d7f-4e8a-b1c2-d3e4f5a6b7c8","event_type":"receipt","schema_version":1,"source":"x","event_time":"2026-11-20T13:06:00Z","data":{"end_to_end_id":"E9040088820261120130500123873170","amount":"1.00","pix_key":"+5511998765432","payer":{"ispb":"90400888","document":"11144477735"},"payee":{"ispb":"18236120","document":"52998224725"},"received_at":"2026-11-20T13:05:30Z"}}"#;
        let ev = d.decode(Some(receipt), None, now).unwrap();
        assert!(b.append(&ev, &meta(0), now).is_err());
        assert!(b.is_empty());
    }

    /// Builds the same events into a fresh builder and into one recycling its previous batch, for
    /// every category: the batches are equal and, once a batch was handed back, every column but
    /// the flag list (made fresh, see `EnvelopeColumns::new`) is on the old buffers.
    #[test]
    fn a_recycled_batch_s_buffers_carry_the_next_batch_and_nothing_of_its_rows() {
        let now = parse_rfc3339("2026-11-22T00:00:00Z").unwrap();
        let d = Decoder::default();
        let settings = crate::produce::Settings { seed: 11, invalid_ratio: 0.0, ..Default::default() };
        let records: Vec<_> = crate::produce::Generator::new(settings).take(3000).collect();
        for category in Category::ALL {
            let values: Vec<&[u8]> =
                records.iter().filter(|r| r.category == category).map(|r| r.value.as_slice()).take(200).collect();
            assert!(values.len() >= 100, "{category}: enough events");
            // `n` events starting at the `from`-th, so that consecutive batches differ.
            let fill = |b: &mut CategoryBatchBuilder, from: usize, n: usize| {
                for (i, v) in values.iter().cycle().skip(from).take(n).enumerate() {
                    let ev = d.decode(Some(v), Some(category), now).unwrap();
                    b.append(&ev, &meta(i as i64), now).unwrap();
                }
                b.finish().unwrap()
            };
            let mut fresh = CategoryBatchBuilder::new(category, 4);
            let mut recycling = CategoryBatchBuilder::new(category, 4);
            let first = fill(&mut recycling, 0, 100);
            assert_eq!(recycling.reused_columns(), 0, "nothing handed back yet");
            let event_ids = first.column(0).to_data().buffers()[1].as_ptr();
            recycling.recycle(first);
            let _ = fill(&mut recycling, 100, 30);
            let columns = category_schema(category).fields().len();
            assert_eq!(recycling.reused_columns(), columns - 1, "{category}");
            let second = fill(&mut recycling, 7, 30);
            assert_eq!(
                second.column(0).to_data().buffers()[1].as_ptr(),
                event_ids,
                "event_id on the first batch's bytes"
            );
            assert_eq!(second, fill(&mut fresh, 7, 30), "{category}: a fresh builder's rows, none of the old ones");
        }
    }

    #[test]
    fn a_batch_still_held_or_of_another_table_is_not_taken_and_an_idle_builder_lets_go() {
        let now = parse_rfc3339("2026-11-22T00:00:00Z").unwrap();
        let d = Decoder::default();
        let fill = |b: &mut CategoryBatchBuilder, n: usize| {
            for i in 0..n {
                let ev = d.decode(Some(PAYMENT), Some(Category::Payment), now).unwrap();
                b.append(&ev, &meta(i as i64), now).unwrap();
            }
            b.finish().unwrap()
        };
        let mut b = CategoryBatchBuilder::new(Category::Payment, 4);
        let kept = fill(&mut b, 5);
        b.recycle(kept.clone());
        let _ = fill(&mut b, 5);
        assert_eq!(b.reused_columns(), 0, "held by `kept`");
        assert_eq!(kept.num_rows(), 5);
        b.recycle(CategoryBatchBuilder::new(Category::Refund, 1).finish().unwrap());
        let _ = fill(&mut b, 1);
        assert_eq!(b.reused_columns(), 0, "another table's schema");
        // Reusing, then a seal with nothing pending: the builder goes back to fresh buffers.
        let spent = fill(&mut b, 50);
        b.recycle(spent);
        let spent = fill(&mut b, 50);
        assert!(b.reused_columns() > 0);
        b.recycle(spent);
        b.release();
        assert_eq!(b.reused_columns(), 0);
        let _ = fill(&mut b, 3);
        assert_eq!(b.reused_columns(), 0, "the batch handed back was dropped too");
    }

    #[test]
    fn a_recycled_quarantine_batch_carries_the_next_one() {
        let rej = Decoder::default().decode(Some(b"{"), None, 0).unwrap_err();
        let fill = |q: &mut QuarantineBatchBuilder, n: i64| {
            for i in 0..n {
                let value = format!("{{ bad {i}");
                q.append(&meta(i), Some(b"k"), Some(value.as_bytes()), &rej, "payments", 86_400_000_000 + i);
            }
            q.finish().unwrap()
        };
        let (mut fresh, mut recycling) = (QuarantineBatchBuilder::new(), QuarantineBatchBuilder::new());
        let first = fill(&mut recycling, 2000);
        recycling.recycle(first);
        let _ = fill(&mut recycling, 3);
        assert_eq!(recycling.reused_columns(), quarantine_schema().fields().len());
        assert_eq!(fill(&mut recycling, 3), fill(&mut fresh, 3));
        recycling.release();
        assert_eq!(recycling.reused_columns(), 0, "nothing pending: fresh builders");
        assert_eq!(fill(&mut recycling, 3), fill(&mut fresh, 3));
    }

    #[test]
    fn every_category_schema_builds_empty_batches() {
        for c in Category::ALL {
            let batch = CategoryBatchBuilder::new(c, 0).finish().unwrap();
            assert_eq!(batch.num_rows(), 0);
            assert_eq!(batch.schema().field(0).name(), "event_id");
            assert_eq!(batch.schema().fields().last().unwrap().name(), RESCUED_COLUMN);
        }
    }

    #[test]
    fn quarantine_keeps_the_original_bytes() {
        let mut q = QuarantineBatchBuilder::new();
        let raw: &[u8] = b"{\"a\":\"\xe7\xe3\"}";
        let rej = Decoder::default().decode(Some(raw), None, 0).unwrap_err();
        assert_eq!(rej.rule, HardRule::MalformedJson);
        q.append(&meta(5), Some(b"k"), Some(raw), &rej, "payments", 86_400_000_000 * 3 + 5);
        q.append(&meta(6), None, None, &rej, "payments", 0);
        let batch = q.finish().unwrap();
        assert_eq!(batch.schema(), quarantine_schema());
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(col("raw_value").as_binary::<i32>().value(0), raw);
        assert!(col("raw_text").is_null(0), "not UTF-8: no text");
        assert!(col("raw_value").is_null(1), "a tombstone has no value");
        assert_eq!(col("error_rule").as_string::<i32>().value(0), "MALFORMED_JSON");
        // Midnight UTC of day 3 is still day 2 in São Paulo (the partition follows local dates).
        assert_eq!(col(INGEST_DATE).as_primitive::<Date32Type>().value(0), 2);
    }
}
