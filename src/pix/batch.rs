//! Table schemas (SPEC §4) and columnar batch builders: validated events and rejected records
//! are appended column by column and come out as an Arrow `RecordBatch`, ready for Parquet.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryBuilder, Date32Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;

use super::columns::{self, EnvelopeColumns, KafkaMeta, finish_into};
use super::event::{Category, Event, EventData};
use super::rules::Rejection;
use super::time::{DAY, Micros};
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

enum DataColumns {
    Payment(payment::Columns),
    Receipt(receipt::Columns),
    Refund(refund::Columns),
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
}

impl CategoryBatchBuilder {
    /// A builder for `category`, sized for `capacity` rows (it grows past that if needed).
    pub fn new(category: Category, capacity: usize) -> Self {
        CategoryBatchBuilder {
            category,
            schema: category_schema(category),
            capacity,
            envelope: EnvelopeColumns::with_capacity(capacity),
            data: Self::data_columns(category, capacity),
            rescued: StringBuilder::new(),
            rows: 0,
        }
    }

    fn data_columns(category: Category, capacity: usize) -> DataColumns {
        match category {
            Category::Payment => DataColumns::Payment(payment::Columns::with_capacity(capacity)),
            Category::Receipt => DataColumns::Receipt(receipt::Columns::with_capacity(capacity)),
            Category::Refund => DataColumns::Refund(refund::Columns::with_capacity(capacity)),
        }
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
    pub fn append(&mut self, ev: &Event<'_>, meta: &KafkaMeta<'_>, ingest_time: Micros) -> Result<(), CategoryMismatch> {
        match (&mut self.data, &ev.data) {
            (DataColumns::Payment(c), EventData::Payment(p)) => c.append(p),
            (DataColumns::Receipt(c), EventData::Receipt(r)) => c.append(r),
            (DataColumns::Refund(c), EventData::Refund(r)) => c.append(r),
            _ => {
                return Err(CategoryMismatch {
                    expected: self.category,
                    found: ev.envelope.category,
                });
            }
        }
        self.envelope.append(&ev.envelope, ev.flags, meta, ingest_time);
        self.rescued.append_option(ev.rescued.as_deref());
        self.rows += 1;
        Ok(())
    }

    /// The pending rows as a batch; the builder is empty afterwards and can be reused.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        self.envelope.finish(&mut cols);
        match &mut self.data {
            DataColumns::Payment(c) => c.finish(&mut cols),
            DataColumns::Receipt(c) => c.finish(&mut cols),
            DataColumns::Refund(c) => c.finish(&mut cols),
        }
        finish_into(&mut cols, &mut self.rescued);
        self.rows = 0;
        // Builders keep no capacity after finish; give the next batch its reserve back.
        self.envelope = EnvelopeColumns::with_capacity(self.capacity);
        self.data = Self::data_columns(self.category, self.capacity);
        RecordBatch::try_new(self.schema.clone(), cols)
    }
}

/// Accumulates rejected records as `pix_quarantine` rows.
pub struct QuarantineBatchBuilder {
    schema: SchemaRef,
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
    rows: usize,
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
            kafka_topic: StringBuilder::new(),
            kafka_partition: Int32Builder::new(),
            kafka_offset: Int64Builder::new(),
            kafka_timestamp: columns::timestamp_builder(0),
            kafka_key: BinaryBuilder::new(),
            raw_value: BinaryBuilder::new(),
            raw_text: StringBuilder::new(),
            error_rule: StringBuilder::new(),
            error_field: StringBuilder::new(),
            error_message: StringBuilder::new(),
            pipeline: StringBuilder::new(),
            ingest_time: columns::timestamp_builder(0),
            ingest_date: Date32Builder::new(),
            rows: 0,
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
        self.kafka_topic.append_value(meta.topic);
        self.kafka_partition.append_value(meta.partition);
        self.kafka_offset.append_value(meta.offset);
        self.kafka_timestamp.append_option(meta.timestamp);
        self.kafka_key.append_option(key);
        self.raw_value.append_option(value);
        self.raw_text.append_option(value.and_then(|v| std::str::from_utf8(v).ok()));
        self.error_rule.append_value(rejection.rule.id());
        self.error_field.append_value(rejection.field);
        self.error_message.append_value(&rejection.message);
        self.pipeline.append_value(pipeline);
        self.ingest_time.append_value(ingest_time);
        self.ingest_date.append_value(ingest_time.div_euclid(DAY) as i32);
        self.rows += 1;
    }

    /// The pending rows as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
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
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), cols)
    }
}
