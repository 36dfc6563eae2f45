//! The micro-batch being filled: each record read is decoded once, routed by its partition's
//! [`Progress`], and appended column by column to the category table's builder or to the
//! quarantine builder (then also handed to the dead-letter queue). Nothing is copied per record
//! beyond what the Arrow builders and the DLQ producer keep.

use std::collections::BTreeMap;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;

use super::clock::Now;
use super::progress::{Progress, Route, Table};
use crate::deadletter::{DeadLetter, DeadLetterQueue};
use crate::pix::time::Micros;
use crate::pix::{Category, CategoryBatchBuilder, Decoder, KafkaMeta, QuarantineBatchBuilder};

/// One Kafka record, as the engine sees it (independent of the client library).
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub partition: i32,
    pub offset: i64,
    /// Record timestamp, UTC microseconds.
    pub timestamp: Option<Micros>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Counts of what a pipeline did; summed over batches for the run's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records read from Kafka.
    pub records: u64,
    /// Bytes of record values read.
    pub bytes: u64,
    /// Rows committed to the category table.
    pub rows: u64,
    /// Rows committed to `pix_quarantine`, by rule id.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Rows committed to the category table with a soft rule flag, by rule id.
    pub flagged: BTreeMap<&'static str, u64>,
    /// Records skipped because their table already had them (re-read after a crash).
    pub durable_skipped: u64,
    /// Records delivered twice by Kafka within one assignment and dropped.
    pub redelivered: u64,
    /// Dead letters that could not be published (they are in `pix_quarantine`).
    pub dlq_failures: u64,
}

impl Counts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counts) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.rows += other.rows;
        for (rule, n) in &other.rejected {
            *self.rejected.entry(rule).or_default() += n;
        }
        for (rule, n) in &other.flagged {
            *self.flagged.entry(rule).or_default() += n;
        }
        self.durable_skipped += other.durable_skipped;
        self.redelivered += other.redelivered;
        self.dlq_failures += other.dlq_failures;
    }

    /// Rows committed to `pix_quarantine`.
    pub fn quarantined(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// The rows of one micro-batch, ready to commit.
pub struct Batch {
    /// Category table rows (`None`: no row).
    pub rows: Option<RecordBatch>,
    /// Quarantine rows (`None`: no row).
    pub quarantine: Option<RecordBatch>,
    /// What the batch holds (rows and rejections are counted as committed once it is).
    pub counts: Counts,
}

/// The micro-batch of one pipeline.
pub struct Buffer {
    pipeline: String,
    topic: String,
    category: Category,
    decoder: Decoder,
    rows: CategoryBatchBuilder,
    quarantine: QuarantineBatchBuilder,
    counts: Counts,
    bytes: usize,
    first: Option<Instant>,
}

impl Buffer {
    /// An empty buffer for `pipeline` reading `topic` of `category`.
    pub fn new(pipeline: &str, topic: &str, category: Category, decoder: Decoder, capacity: usize) -> Self {
        Buffer {
            pipeline: pipeline.to_owned(),
            topic: topic.to_owned(),
            category,
            decoder,
            rows: CategoryBatchBuilder::new(category, capacity),
            quarantine: QuarantineBatchBuilder::new(),
            counts: Counts::default(),
            bytes: 0,
            first: None,
        }
    }

    /// Rows buffered for both tables.
    pub fn len(&self) -> usize {
        self.rows.len() + self.quarantine.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of record values buffered.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the oldest buffered record was read.
    pub fn first(&self) -> Option<Instant> {
        self.first
    }

    /// Rows waiting for `pix_quarantine` (whose dead letters must be acknowledged before the
    /// commit).
    pub fn quarantined(&self) -> usize {
        self.quarantine.len()
    }

    /// Decodes `record`, routes it with its partition's `progress` and appends it to the right
    /// builder; a rejected record is also published to `dlq`. A dead letter that cannot be
    /// queued is counted, not fatal: its row still goes to `pix_quarantine`.
    pub fn add(
        &mut self,
        record: &Record<'_>,
        progress: &mut Progress,
        dlq: &mut dyn DeadLetterQueue,
        now: Now,
    ) -> Result<(), ArrowError> {
        let (at, now) = (now.at, now.wall);
        self.counts.records += 1;
        let len = record.value.map_or(0, <[u8]>::len);
        self.counts.bytes += len as u64;
        let meta = KafkaMeta {
            topic: &self.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
        };
        let verdict = self.decoder.decode(record.value, Some(self.category), now);
        let table = if verdict.is_ok() { Table::Category } else { Table::Quarantine };
        match progress.route(record.offset, table) {
            Route::Keep => {}
            Route::Durable => {
                self.counts.durable_skipped += 1;
                return Ok(());
            }
            Route::Redelivered => {
                self.counts.redelivered += 1;
                return Ok(());
            }
        }
        self.bytes += len;
        self.first.get_or_insert(at);
        match verdict {
            Ok(event) => {
                self.rows.append(&event, &meta, now).map_err(|e| ArrowError::InvalidArgumentError(e.to_string()))?;
                if !event.flags.is_empty() {
                    for rule in event.flags.iter() {
                        *self.counts.flagged.entry(rule.id()).or_default() += 1;
                    }
                }
            }
            Err(rejection) => {
                self.quarantine.append(&meta, record.key, record.value, &rejection, &self.pipeline, now);
                *self.counts.rejected.entry(rejection.rule.id()).or_default() += 1;
                let letter = DeadLetter {
                    source: meta,
                    key: record.key,
                    value: record.value,
                    rejection: &rejection,
                    pipeline: &self.pipeline,
                };
                if let Err(e) = dlq.publish(&letter) {
                    self.counts.dlq_failures += 1;
                    tracing::warn!(pipeline = %self.pipeline, partition = record.partition, offset = record.offset,
                        error = %crate::telemetry::Chain(&e), "dead letter not queued; the record is still written to pix_quarantine");
                }
            }
        }
        Ok(())
    }

    /// Takes the buffered rows as a [`Batch`]; the buffer is empty afterwards.
    pub fn take(&mut self) -> Result<Batch, ArrowError> {
        // A table without rows this time lets go of the buffers it kept for them.
        let rows = if self.rows.is_empty() {
            self.rows.release();
            None
        } else {
            Some(self.rows.finish()?)
        };
        let quarantine = if self.quarantine.is_empty() {
            self.quarantine.release();
            None
        } else {
            Some(self.quarantine.finish()?)
        };
        let mut counts = std::mem::take(&mut self.counts);
        counts.rows = rows.as_ref().map_or(0, |b| b.num_rows() as u64);
        self.bytes = 0;
        self.first = None;
        Ok(Batch { rows, quarantine, counts })
    }

    /// Hands back the rows of a batch once committed (or given up on), for the builders of the
    /// batch after the one being read to be made on their buffers
    /// ([`CategoryBatchBuilder::recycle`]).
    pub fn recycle(&mut self, table: Table, rows: RecordBatch) {
        match table {
            Table::Category => self.rows.recycle(rows),
            Table::Quarantine => self.quarantine.recycle(rows),
        }
    }

    /// Columns of the builders being filled that are on a committed batch's buffers (category
    /// table, quarantine).
    #[cfg(test)]
    pub fn reused_columns(&self) -> (usize, usize) {
        (self.rows.reused_columns(), self.quarantine.reused_columns())
    }

    /// Drops everything buffered (the records will be read again).
    pub fn clear(&mut self) {
        // Finishing is the builders' only reset; the arrays are dropped.
        let _ = self.rows.finish();
        let _ = self.quarantine.finish();
        self.counts = Counts::default();
        self.bytes = 0;
        self.first = None;
    }
}
