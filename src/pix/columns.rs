//! Arrow column types and builders shared by the tables: field constructors, the envelope
//! columns (SPEC §4) and the flattened participant columns (`payer_ispb`, `payee_document`, …).
//!
//! Types map to Delta as Spark expects: `Timestamp(µs, "UTC")` → `timestamp`,
//! `Decimal128(18, 2)` → `decimal(18,2)`, `Date32` → `date`, `List<Utf8>` with item field
//! `element` → `array<string>`.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Date32Builder, Decimal128Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Decimal128Type, Field, TimeUnit, TimestampMicrosecondType};

use super::ahead::Ahead;
use super::event::Envelope;
use super::participant::Participant;
use super::reserve::Reserve;
use super::rules::Flags;
use super::time::Micros;

/// The time zone of every timestamp column.
pub const UTC: &str = "UTC";

/// A string column.
pub fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// A UTC timestamp column (microseconds).
pub fn timestamp(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())), nullable)
}

/// A `decimal(18,2)` amount column.
pub fn amount(name: &str) -> Field {
    Field::new(name, DataType::Decimal128(18, 2), false)
}

/// The item field of `array<string>` columns, named as Delta/Parquet readers expect.
pub fn list_item() -> Arc<Field> {
    Arc::new(Field::new("element", DataType::Utf8, true))
}

/// A builder for `decimal(18,2)`.
pub fn amount_builder(r: &mut Reserve) -> Decimal128Builder {
    r.primitive::<Decimal128Type>().with_data_type(DataType::Decimal128(18, 2))
}

/// A builder for UTC timestamps.
pub fn timestamp_builder(r: &mut Reserve) -> TimestampMicrosecondBuilder {
    r.primitive::<TimestampMicrosecondType>().with_timezone(UTC)
}

/// Finishes `builder` and appends its array to `out`.
pub fn finish_into(out: &mut Vec<ArrayRef>, builder: &mut dyn ArrayBuilder) {
    out.push(builder.finish());
}

/// Whether a table column holds few distinct values — enumerations, participant codes, topics,
/// partitions, dates, rule ids — and is worth dictionary encoding in Parquet. Ids, amounts,
/// names, documents, keys, offsets and timestamps are (nearly) unique per row.
pub fn few_values(column: &str) -> bool {
    const NAMES: &[&str] = &[
        "event_type",
        "schema_version",
        "source",
        "event_date",
        "kafka_topic",
        "kafka_partition",
        "quality_flags",
        "currency",
        "initiation_type",
        "status",
        "reject_reason",
        "pix_key_type",
        "channel",
        "direction",
        "reason_code",
        "error_rule",
        "error_field",
        "pipeline",
        "ingest_date",
    ];
    const SUFFIXES: &[&str] = &["_ispb", "_branch", "_account_type", "_document_type"];
    NAMES.contains(&column) || SUFFIXES.iter().any(|s| column.ends_with(s))
}

/// Whether a column holds random identifiers (UUIDs, producers' random alphanumerics): nothing
/// for Snappy to find, which only looks for repeated byte runs — compressing `event_id` saved a
/// tenth of its bytes for a share of the writer's CPU. Stored uncompressed.
pub fn random_text(column: &str) -> bool {
    matches!(column, "event_id" | "txid" | "refund_request_id")
}

/// How a table's columns are laid out in Parquet, beyond the writer's defaults (plain encoding,
/// Snappy, no dictionary). Paths as in the Parquet schema: a list's path is its elements'
/// (`quality_flags.list.element`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encodings {
    /// Dictionary-encoded: the columns with [`few_values`].
    pub dictionary: Vec<String>,
    /// `DELTA_BINARY_PACKED`: the other 64-bit integer columns — offsets, timestamps, amounts
    /// (`decimal(18,2)` is stored as INT64) — whose neighbours differ by little: an offset column
    /// takes a few hundred bytes instead of 8 per row, a timestamp a third of its plain size,
    /// and Snappy has that much less to compress.
    pub delta: Vec<String>,
    /// Not compressed: [`random_text`].
    pub uncompressed: Vec<String>,
}

/// The [`Encodings`] of a table of `schema`.
pub fn encodings(schema: &arrow::datatypes::Schema) -> Encodings {
    let mut e = Encodings::default();
    for f in schema.fields() {
        let name = f.name();
        if few_values(name) {
            e.dictionary.push(match f.data_type() {
                DataType::List(item) => format!("{name}.list.{}", item.name()),
                _ => name.clone(),
            });
        } else if matches!(f.data_type(), DataType::Int64 | DataType::Timestamp(_, _))
            || matches!(f.data_type(), DataType::Decimal128(p, _) if *p <= 18)
        {
            e.delta.push(name.clone());
        } else if random_text(name) {
            e.uncompressed.push(name.clone());
        }
    }
    e
}

/// Where a record came from in Kafka.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KafkaMeta<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Record timestamp (create or log-append time), UTC microseconds, if the record has one.
    pub timestamp: Option<Micros>,
}

/// The envelope columns, first in every category table.
pub fn envelope_fields() -> Vec<Field> {
    vec![
        utf8("event_id", false),
        utf8("event_type", false),
        Field::new("schema_version", DataType::Int32, false),
        utf8("source", false),
        timestamp("event_time", false),
        Field::new("event_date", DataType::Date32, false),
        timestamp("ingest_time", false),
        utf8("kafka_topic", false),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
        timestamp("kafka_timestamp", true),
        Field::new("quality_flags", DataType::List(list_item()), false),
    ]
}

/// Builders for [`envelope_fields`].
pub struct EnvelopeColumns {
    event_id: StringBuilder,
    event_type: StringBuilder,
    schema_version: Int32Builder,
    source: StringBuilder,
    event_time: TimestampMicrosecondBuilder,
    event_date: Date32Builder,
    ingest_time: TimestampMicrosecondBuilder,
    kafka_topic: StringBuilder,
    kafka_partition: Int32Builder,
    kafka_offset: Int64Builder,
    kafka_timestamp: TimestampMicrosecondBuilder,
    quality_flags: ListBuilder<StringBuilder>,
}

impl EnvelopeColumns {
    /// Builders on `r`'s memory (fields in [`envelope_fields`] order: `r` hands out columns in
    /// schema order).
    pub fn new(r: &mut Reserve) -> Self {
        EnvelopeColumns {
            event_id: r.utf8(36),
            event_type: r.utf8(7),
            schema_version: r.primitive(),
            source: r.utf8(12),
            event_time: timestamp_builder(r),
            event_date: r.primitive(),
            ingest_time: timestamp_builder(r),
            kafka_topic: r.utf8(12),
            kafka_partition: r.primitive(),
            kafka_offset: r.primitive(),
            kafka_timestamp: timestamp_builder(r),
            quality_flags: {
                // Few rows have flags: a fresh list builder costs little.
                r.skip();
                ListBuilder::with_capacity(StringBuilder::new(), r.rows()).with_field(list_item())
            },
        }
    }

    /// Appends one row's envelope.
    pub fn append(&mut self, e: &Envelope<'_>, flags: Flags, meta: &KafkaMeta<'_>, ingest_time: Micros) {
        // Where this row goes, asked for before it is written (`pix::ahead`).
        self.event_id.ahead();
        self.event_type.ahead();
        self.schema_version.ahead();
        self.source.ahead();
        self.event_time.ahead();
        self.event_date.ahead();
        self.ingest_time.ahead();
        self.kafka_topic.ahead();
        self.kafka_partition.ahead();
        self.kafka_offset.ahead();
        self.kafka_timestamp.ahead();
        self.event_id.append_value(e.event_id.as_str());
        self.event_type.append_value(e.category.as_str());
        self.schema_version.append_value(e.schema_version);
        self.source.append_value(&e.source);
        self.event_time.append_value(e.event_time);
        self.event_date.append_value(e.event_date);
        self.ingest_time.append_value(ingest_time);
        self.kafka_topic.append_value(meta.topic);
        self.kafka_partition.append_value(meta.partition);
        self.kafka_offset.append_value(meta.offset);
        self.kafka_timestamp.append_option(meta.timestamp);
        for rule in flags.iter() {
            self.quality_flags.values().append_value(rule.id());
        }
        self.quality_flags.append(true);
    }

    /// Finishes the arrays, in [`envelope_fields`] order, into `out`.
    pub fn finish(&mut self, out: &mut Vec<ArrayRef>) {
        finish_into(out, &mut self.event_id);
        finish_into(out, &mut self.event_type);
        finish_into(out, &mut self.schema_version);
        finish_into(out, &mut self.source);
        finish_into(out, &mut self.event_time);
        finish_into(out, &mut self.event_date);
        finish_into(out, &mut self.ingest_time);
        finish_into(out, &mut self.kafka_topic);
        finish_into(out, &mut self.kafka_partition);
        finish_into(out, &mut self.kafka_offset);
        finish_into(out, &mut self.kafka_timestamp);
        finish_into(out, &mut self.quality_flags);
    }
}

/// Builders for one participant's flattened columns.
pub struct ParticipantColumns {
    ispb: StringBuilder,
    branch: StringBuilder,
    account: StringBuilder,
    account_type: StringBuilder,
    document: StringBuilder,
    document_type: StringBuilder,
    name: StringBuilder,
}

impl ParticipantColumns {
    /// The columns `{prefix}_ispb`, `{prefix}_branch`, … in builder order.
    pub fn fields(prefix: &str) -> Vec<Field> {
        vec![
            utf8(&format!("{prefix}_ispb"), false),
            utf8(&format!("{prefix}_branch"), true),
            utf8(&format!("{prefix}_account"), true),
            utf8(&format!("{prefix}_account_type"), true),
            utf8(&format!("{prefix}_document"), false),
            utf8(&format!("{prefix}_document_type"), false),
            utf8(&format!("{prefix}_name"), true),
        ]
    }

    /// Builders on `r`'s memory, in [`ParticipantColumns::fields`] order.
    pub fn new(r: &mut Reserve) -> Self {
        ParticipantColumns {
            ispb: r.utf8(8),
            branch: r.utf8(4),
            account: r.utf8(10),
            account_type: r.utf8(4),
            document: r.utf8(14),
            document_type: r.utf8(4),
            name: r.utf8(20),
        }
    }

    /// Appends one participant.
    pub fn append(&mut self, p: &Participant<'_>) {
        // Where this row goes, asked for before it is written (`pix::ahead`).
        self.ispb.ahead();
        self.branch.ahead();
        self.account.ahead();
        self.account_type.ahead();
        self.document.ahead();
        self.document_type.ahead();
        self.name.ahead();
        self.ispb.append_value(p.ispb.as_str());
        self.branch.append_option(p.branch.as_deref());
        self.account.append_option(p.account.as_deref());
        self.account_type.append_option(p.account_type.map(|t| t.code()));
        self.document.append_value(&p.document.value);
        self.document_type.append_value(p.document.kind.as_str());
        self.name.append_option(p.name.as_deref());
    }

    /// Finishes the arrays into `out`.
    pub fn finish(&mut self, out: &mut Vec<ArrayRef>) {
        finish_into(out, &mut self.ispb);
        finish_into(out, &mut self.branch);
        finish_into(out, &mut self.account);
        finish_into(out, &mut self.account_type);
        finish_into(out, &mut self.document);
        finish_into(out, &mut self.document_type);
        finish_into(out, &mut self.name);
    }
}
