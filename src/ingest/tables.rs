//! The two tables of one pipeline — its category table and `pix_quarantine` — and their offsets.

use std::collections::HashMap;

use arrow::array::RecordBatch;

use crate::config::{Config, Pipeline};
use crate::offsets::{AppIds, PartitionOffsets, Table};
use crate::pix::batch::{EVENT_DATE, INGEST_DATE, QUARANTINE_TABLE};
use crate::pix::columns::encodings;
use crate::pix::{category_schema, quarantine_schema};
use crate::probe::Probe;
use crate::sink::delta::{CommitOutcome, DeltaTableWriter, Location, SinkError, written_offsets};

/// The writers of one pipeline. Each pipeline has its own writer on `pix_quarantine`: their
/// appends never conflict (different app ids), and each fence stays per pipeline.
pub struct Tables {
    pipeline: String,
    topic: String,
    category: DeltaTableWriter,
    quarantine: DeltaTableWriter,
}

/// Creates `pix_quarantine` if it does not exist yet, before the pipelines start: they all
/// write it and would otherwise race to create it on a first run. The loser of such a race opens
/// the winner's table ([`DeltaTableWriter::open_or_create`]), but delta-rs logs its lost commit
/// as an ERROR — noise on every first start. Best effort, bounded: a failure here (storage not
/// reachable yet) is met again by the pipelines, which retry. Instances starting together can
/// still race; the loser then logs that ERROR once.
pub async fn create_quarantine(config: &Config) {
    let Ok(location) = Location::in_warehouse(&config.warehouse, QUARANTINE_TABLE) else { return };
    let create = DeltaTableWriter::open_or_create(QUARANTINE_TABLE, &location, quarantine_schema(), INGEST_DATE);
    match tokio::time::timeout(std::time::Duration::from_secs(30), create).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::debug!(error = %crate::telemetry::Chain(&e),
            "creating pix_quarantine before the pipelines start failed; each pipeline tries again"),
        Err(_) => {
            tracing::debug!("creating pix_quarantine before the pipelines start timed out; each pipeline tries again")
        }
    }
}

impl Tables {
    /// Opens (creating on first use) the pipeline's table and `pix_quarantine`.
    pub async fn open(config: &Config, pipeline: &Pipeline, probe: &Probe) -> Result<Self, SinkError> {
        let location = |table: &str| Location::in_warehouse(&config.warehouse, table);
        let schema = category_schema(pipeline.category);
        let layout = encodings(&schema);
        let category =
            DeltaTableWriter::open_or_create(&pipeline.table, &location(&pipeline.table)?, schema, EVENT_DATE)
                .await?
                .with_encodings(&layout)
                .with_probe(probe.clone());
        let schema = quarantine_schema();
        let layout = encodings(&schema);
        let quarantine =
            DeltaTableWriter::open_or_create(QUARANTINE_TABLE, &location(QUARANTINE_TABLE)?, schema, INGEST_DATE)
                .await?
                .with_encodings(&layout)
                .with_probe(probe.clone());
        Ok(Tables { pipeline: pipeline.name.clone(), topic: pipeline.topic.clone(), category, quarantine })
    }

    /// Waits for the checkpoints being written beside the commits.
    pub async fn settle(&mut self) {
        self.category.settle().await;
        self.quarantine.settle().await
    }

    /// The txn app ids of the pipeline's partitions.
    pub fn ids(&self) -> AppIds<'_> {
        AppIds::new(&self.pipeline, &self.topic)
    }

    /// Both writers move to their table's latest version (see [`DeltaTableWriter::refresh`] for
    /// the check the caller owes after this).
    pub async fn refresh(&mut self) -> Result<(), SinkError> {
        self.category.refresh().await?;
        self.quarantine.refresh().await
    }

    /// The committed offsets of `partitions`, as of the writers' current versions.
    pub async fn offsets(&self, partitions: &[i32]) -> Result<PartitionOffsets, SinkError> {
        let writers = [(Table::Category, Some(&self.category)), (Table::Quarantine, Some(&self.quarantine))];
        written_offsets(self.ids(), partitions, writers).await
    }

    /// The two writers apart, the category table's first, so that they can commit at the same
    /// time.
    pub fn split(&mut self) -> [TableWriter<'_>; 2] {
        let ids = AppIds::new(&self.pipeline, &self.topic);
        [
            TableWriter { ids, table: Table::Category, writer: &mut self.category },
            TableWriter { ids, table: Table::Quarantine, writer: &mut self.quarantine },
        ]
    }
}

/// One of a pipeline's two writers, with the pipeline's app ids.
pub struct TableWriter<'a> {
    ids: AppIds<'a>,
    table: Table,
    writer: &'a mut DeltaTableWriter,
}

impl TableWriter<'_> {
    /// Commits `rows` (possibly none) with the `(partition, next offset)` txn actions.
    pub async fn commit(
        &mut self,
        rows: Option<RecordBatch>,
        offsets: &[(i32, i64)],
        metadata: HashMap<String, serde_json::Value>,
    ) -> Result<CommitOutcome, SinkError> {
        let txns = offsets.iter().map(|&(p, v)| (self.ids.of(self.table, p), v)).collect();
        self.writer.commit(rows.into_iter().collect(), txns, metadata).await
    }
}
