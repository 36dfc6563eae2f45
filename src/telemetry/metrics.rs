//! The Prometheus metrics of one pixlake process: one [`Registry`] (no global state: tests run
//! several engines in one process), the metric families, and [`PipelineMetrics`], the handles a
//! pipeline updates — already labelled, so the hot path never formats a label.
//!
//! Naming follows Prometheus conventions: counters end in `_total`, durations are `_seconds`,
//! sizes `_bytes`. Labels: `pipeline` everywhere; `topic`/`partition` on per-partition series
//! (removed when the partition is revoked, so several instances of one group never report the
//! same partition); `table` where a pipeline writes two tables; `rule` for rule ids (a closed
//! set: SPEC's hard and soft rule ids).
//!
//! When counters move: records and bytes when a record is read; rows, rejections, flags, files
//! and freshness only once the Delta commit holding them succeeded — so `pixlake_rows_written_total`
//! equals the rows the run added to the tables, whatever was dropped and re-read on the way.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Bucket bounds of `pixlake_commit_duration_seconds`: a Delta commit (Parquet encoding, upload,
/// log write) takes from milliseconds (local disk) to tens of seconds (object store, retries).
const COMMIT_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Bucket bounds of `pixlake_batch_stage_seconds`: most stages take a millisecond or a few
/// tens of them; a broker or warehouse in trouble stretches one to seconds.
const STAGE_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Bucket bounds of `pixlake_freshness_seconds`: from the Kafka record timestamp to the Delta
/// version that makes the row visible. Dominated by `batch.max_latency_ms` (5 s by default) when
/// keeping up; minutes to hours while catching up a backlog.
const FRESHNESS_BUCKETS: &[f64] =
    &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 21600.0];

/// Why registering a metric failed (a bug: two families with one name).
#[derive(Debug, thiserror::Error)]
#[error("cannot register a metric; this is a bug, please report it")]
pub struct MetricsError(#[from] prometheus::Error);

/// Every metric family pixlake exports, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    records: IntCounterVec,
    bytes: IntCounterVec,
    rows: IntCounterVec,
    rejections: IntCounterVec,
    flags: IntCounterVec,
    dlq_failures: IntCounterVec,
    batches: IntCounterVec,
    commits: IntCounterVec,
    commit_seconds: HistogramVec,
    stage_seconds: HistogramVec,
    files: IntCounterVec,
    file_bytes: IntCounterVec,
    table_version: IntGaugeVec,
    committed_offset: IntGaugeVec,
    high_watermark: IntGaugeVec,
    lag_records: IntGaugeVec,
    lag_seconds: GaugeVec,
    freshness: HistogramVec,
    rebalances: IntCounterVec,
    restarts: IntCounterVec,
    retries: IntCounterVec,
    brokers_up: IntGaugeVec,
    kafka_errors: IntCounterVec,
    assigned: IntGaugeVec,
    unassigned: IntGauge,
    kafka_problem: IntGaugeVec,
    permanent_failures: IntCounterVec,
    buffered_rows: IntGaugeVec,
    paused: IntGaugeVec,
    pauses: IntCounterVec,
    last_commit: GaugeVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// A registry holding every pixlake family, the process collector (RSS, CPU, open files,
    /// on Linux) and `pixlake_build_info` naming this process's `instance_id`
    /// (`ingest.instance_id`).
    pub fn new(instance_id: &str) -> Result<Self, MetricsError> {
        let metrics = Self::families()?;
        let info = IntGaugeVec::new(
            opts("pixlake_build_info", "pixlake version and this process's ingest.instance_id (always 1)."),
            &["version", "instance_id"],
        )?;
        info.with_label_values(&[env!("CARGO_PKG_VERSION"), instance_id]).set(1);
        metrics.registry.register(Box::new(info))?;
        #[cfg(target_os = "linux")]
        metrics.registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(metrics)
    }

    fn families() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, MetricsError> {
            let c = IntCounterVec::new(opts(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, MetricsError> {
            let g = IntGaugeVec::new(opts(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let fgauge = |name: &str, help: &str, labels: &[&str]| -> Result<GaugeVec, MetricsError> {
            let g = GaugeVec::new(opts(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let histogram =
            |name: &str, help: &str, labels: &[&str], buckets: &[f64]| -> Result<HistogramVec, MetricsError> {
                let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        const P: &[&str] = &["pipeline"];
        const PART: &[&str] = &["pipeline", "topic", "partition"];
        const TABLE: &[&str] = &["pipeline", "table"];
        const RULE: &[&str] = &["pipeline", "rule"];
        let metrics = Metrics {
            records: counter("pixlake_records_consumed_total", "Kafka records read.", PART)?,
            bytes: counter("pixlake_consumed_bytes_total", "Bytes of Kafka record values read.", PART)?,
            rows: counter("pixlake_rows_written_total", "Rows committed to a Delta table.", TABLE)?,
            rejections: counter(
                "pixlake_rejections_total",
                "Records committed to pix_quarantine, by hard rule id.",
                RULE,
            )?,
            flags: counter(
                "pixlake_quality_flags_total",
                "Soft rule flags on rows committed to a category table, by rule id.",
                RULE,
            )?,
            dlq_failures: counter(
                "pixlake_dlq_publish_failures_total",
                "Dead letters the producer could not publish (their rows are in pix_quarantine).",
                P,
            )?,
            batches: counter(
                "pixlake_batches_committed_total",
                "Micro-batches committed (one or two Delta commits).",
                P,
            )?,
            commits: counter(
                "pixlake_delta_commits_total",
                "Delta commit attempts by outcome: committed, fenced (another writer owns a partition), failed (retried).",
                &["pipeline", "table", "outcome"],
            )?,
            commit_seconds: histogram(
                "pixlake_commit_duration_seconds",
                "Time to write a batch's Parquet files and commit them to a Delta table.",
                TABLE,
                COMMIT_BUCKETS,
            )?,
            stage_seconds: histogram(
                "pixlake_batch_stage_seconds",
                "Where a batch's time goes between sealing and its offsets moving, by stage: dead_letters (waiting for \
                 the DLQ's acknowledgements, batches with dead letters only), seal (finishing the Arrow columns), queued (waiting for the committer), \
                 parquet (encoding and uploading a table's files), log (appending a table's Delta log entry), commit \
                 (both tables, as the committer saw it), reply (from the committer's answer to the poll loop \
                 applying it).",
                &["pipeline", "stage"],
                STAGE_BUCKETS,
            )?,
            files: counter("pixlake_parquet_files_written_total", "Parquet data files committed.", TABLE)?,
            file_bytes: counter(
                "pixlake_parquet_written_bytes_total",
                "Bytes of Parquet data files committed.",
                TABLE,
            )?,
            table_version: gauge(
                "pixlake_delta_table_version",
                "Latest Delta table version this process committed.",
                TABLE,
            )?,
            committed_offset: gauge(
                "pixlake_delta_committed_offset",
                "Committed offset in Delta: where a restart resumes, the lower of the category and quarantine tables' txn offsets; -1: none yet.",
                PART,
            )?,
            high_watermark: gauge(
                "pixlake_kafka_high_watermark",
                "High watermark of the partition as last seen by the consumer.",
                PART,
            )?,
            lag_records: gauge(
                "pixlake_consumer_lag_records",
                "Records at or past the committed offset (high watermark minus pixlake_delta_committed_offset; what pixlake status and Kafka lag tools show for the group).",
                PART,
            )?,
            lag_seconds: fgauge(
                "pixlake_consumer_lag_seconds",
                "Age of the oldest record at or past the committed offset (0 when caught up; an upper bound when it was not read yet).",
                PART,
            )?,
            freshness: histogram(
                "pixlake_freshness_seconds",
                "From a record's Kafka timestamp to the Delta commit that made its row visible.",
                TABLE,
                FRESHNESS_BUCKETS,
            )?,
            rebalances: counter(
                "pixlake_rebalances_total",
                "Partition assignments and revocations handled.",
                &["pipeline", "kind"],
            )?,
            restarts: counter(
                "pixlake_consumer_restarts_total",
                "Consumers recreated to restart from the offsets in Delta (fenced, assignment lost).",
                P,
            )?,
            retries: counter(
                "pixlake_retries_total",
                "Failed attempts that were retried with backoff, by cause: dlq, delta, offsets.",
                &["pipeline", "cause"],
            )?,
            brokers_up: gauge(
                "pixlake_kafka_brokers_up",
                "Brokers the pipeline's consumer is connected to (librdkafka statistics).",
                P,
            )?,
            kafka_errors: counter(
                "pixlake_kafka_errors_total",
                "Errors returned by the consumer's poll (broker down, unreachable, authentication).",
                P,
            )?,
            assigned: gauge("pixlake_assigned_partitions", "Partitions assigned to this process.", P)?,
            unassigned: {
                let g = IntGauge::new(
                    "pixlake_unassigned_pipelines",
                    "Pipelines of this process with no partition assigned (joining, or every partition held by other members).",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            kafka_problem: gauge(
                "pixlake_kafka_problem",
                "1 while the pipeline's Kafka clients report a cause retrying will not cure, by kind: authentication, \
                 untrusted_broker_certificate, client_certificate, tls, authorization, decompression.",
                &["pipeline", "kind"],
            )?,
            permanent_failures: counter(
                "pixlake_permanent_failures_total",
                "Failed attempts whose cause retrying does not cure, by cause: access_denied, unsupported_table, \
                 table_changed, bad_location (the pipeline stops after a few in a row).",
                &["pipeline", "cause"],
            )?,
            buffered_rows: gauge(
                "pixlake_buffered_rows",
                "Rows read and not yet committed (buffered, or in the batch being committed).",
                P,
            )?,
            paused: gauge(
                "pixlake_paused",
                "1 while the pipeline's partitions are paused because the next batch is due and the previous one is \
                 still being committed (backpressure: the warehouse is the bottleneck).",
                P,
            )?,
            pauses: counter("pixlake_pauses_total", "Times the pipeline paused its partitions for backpressure.", P)?,
            last_commit: fgauge(
                "pixlake_last_commit_timestamp_seconds",
                "Unix time of the pipeline's last successful batch commit.",
                P,
            )?,
            registry,
        };
        Ok(metrics)
    }

    /// The registry in Prometheus text format (what `/metrics` serves).
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 << 10);
        // Encoding into a Vec fails only on a metric with invalid names, which `new` rejects.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The names of every family (for the dashboard and alert-rule tests).
    pub fn family_names(&self) -> Vec<String> {
        self.registry.gather().iter().map(|f| f.name().to_owned()).collect()
    }

    /// The handles of one pipeline.
    pub fn pipeline(&self, name: &str, topic: &str, table: &str) -> PipelineMetrics {
        let p = [name];
        let t = |table: &str, family: &IntCounterVec| family.with_label_values(&[name, table]);
        let per_table = |table: &str| TableMetrics {
            rows: t(table, &self.rows),
            files: t(table, &self.files),
            file_bytes: t(table, &self.file_bytes),
            committed: self.commits.with_label_values(&[name, table, "committed"]),
            fenced: self.commits.with_label_values(&[name, table, "fenced"]),
            failed: self.commits.with_label_values(&[name, table, "failed"]),
            commit_seconds: self.commit_seconds.with_label_values(&[name, table]),
            freshness: self.freshness.with_label_values(&[name, table]),
            version: self.table_version.with_label_values(&[name, table]),
        };
        PipelineMetrics {
            pipeline: name.to_owned(),
            topic: topic.to_owned(),
            category: per_table(table),
            quarantine: per_table(crate::pix::batch::QUARANTINE_TABLE),
            rejections: self.rejections.clone(),
            flags: self.flags.clone(),
            dlq_failures: self.dlq_failures.with_label_values(&p),
            batches: self.batches.with_label_values(&p),
            assignments: self.rebalances.with_label_values(&[name, "assign"]),
            revocations: self.rebalances.with_label_values(&[name, "revoke"]),
            restarts: self.restarts.with_label_values(&p),
            retries_dlq: self.retries.with_label_values(&[name, "dlq"]),
            retries_delta: self.retries.with_label_values(&[name, "delta"]),
            retries_offsets: self.retries.with_label_values(&[name, "offsets"]),
            brokers_up: self.brokers_up.with_label_values(&p),
            kafka_errors: self.kafka_errors.with_label_values(&p),
            assigned: {
                // A pipeline starts with no partition.
                self.unassigned.inc();
                self.assigned.with_label_values(&p)
            },
            unassigned: self.unassigned.clone(),
            waiting: Arc::new(Mutex::new(None)),
            kafka_problems: crate::kafka::diagnosis::Problem::ALL
                .map(|p| (p, self.kafka_problem.with_label_values(&[name, p.kind()]))),
            kafka_problem: Arc::new(Mutex::new(None)),
            permanent: PermanentFailures {
                counters: crate::fault::Permanent::ALL
                    .map(|c| (c, self.permanent_failures.with_label_values(&[name, c.kind()]))),
                failing: Arc::new(Mutex::new(Vec::new())),
            },
            buffered_rows: self.buffered_rows.with_label_values(&p),
            paused: self.paused.with_label_values(&p),
            pauses: self.pauses.with_label_values(&p),
            last_commit: self.last_commit.with_label_values(&p),
            stages: BatchStages {
                dead_letters: self.stage_seconds.with_label_values(&[name, "dead_letters"]),
                seal: self.stage_seconds.with_label_values(&[name, "seal"]),
                queued: self.stage_seconds.with_label_values(&[name, "queued"]),
                parquet: self.stage_seconds.with_label_values(&[name, "parquet"]),
                log: self.stage_seconds.with_label_values(&[name, "log"]),
                commit: self.stage_seconds.with_label_values(&[name, "commit"]),
                reply: self.stage_seconds.with_label_values(&[name, "reply"]),
            },
            families: self.clone(),
        }
    }
}

/// The series of one table written by a pipeline.
#[derive(Clone)]
pub struct TableMetrics {
    pub rows: IntCounter,
    pub files: IntCounter,
    pub file_bytes: IntCounter,
    pub committed: IntCounter,
    pub fenced: IntCounter,
    pub failed: IntCounter,
    pub commit_seconds: Histogram,
    pub freshness: Histogram,
    pub version: IntGauge,
}

impl TableMetrics {
    /// A commit of `rows` at `version` succeeded after `elapsed` (retries included), adding
    /// `files` Parquet files of `bytes` in all; its rows became visible at `visible_at` (UTC
    /// microseconds).
    pub fn committed(
        &self,
        version: u64,
        files: u64,
        bytes: u64,
        rows: Option<&arrow::array::RecordBatch>,
        elapsed: std::time::Duration,
        visible_at: i64,
    ) {
        self.committed.inc();
        self.commit_seconds.observe(elapsed.as_secs_f64());
        self.version.set(version as i64);
        self.files.inc_by(files);
        self.file_bytes.inc_by(bytes);
        if let Some(rows) = rows {
            self.rows.inc_by(rows.num_rows() as u64);
            super::freshness::observe(&self.freshness, rows, visible_at);
        }
    }
}

/// `pixlake_batch_stage_seconds` of one pipeline: where a batch's time goes, stage by stage.
#[derive(Clone)]
pub struct BatchStages {
    pub dead_letters: Histogram,
    pub seal: Histogram,
    pub queued: Histogram,
    pub parquet: Histogram,
    pub log: Histogram,
    pub commit: Histogram,
    pub reply: Histogram,
}

/// The series of one pipeline, labelled once.
#[derive(Clone)]
pub struct PipelineMetrics {
    pipeline: String,
    topic: String,
    pub category: TableMetrics,
    pub quarantine: TableMetrics,
    rejections: IntCounterVec,
    flags: IntCounterVec,
    pub dlq_failures: IntCounter,
    pub batches: IntCounter,
    pub assignments: IntCounter,
    pub revocations: IntCounter,
    pub restarts: IntCounter,
    pub retries_dlq: IntCounter,
    pub retries_delta: IntCounter,
    pub retries_offsets: IntCounter,
    pub brokers_up: IntGauge,
    pub kafka_errors: IntCounter,
    /// Partitions owned: set it through [`PipelineMetrics::set_assigned`].
    pub assigned: IntGauge,
    unassigned: IntGauge,
    /// Why the pipeline has no partition, while it has none (for `/readyz`).
    pub waiting: Arc<Mutex<Option<String>>>,
    kafka_problems: [(crate::kafka::diagnosis::Problem, IntGauge); 6],
    /// What its Kafka clients cannot get past, while they cannot (for `/readyz`).
    kafka_problem: Arc<Mutex<Option<String>>>,
    /// Failures retrying does not cure (`pixlake_permanent_failures_total`, `/readyz`).
    pub permanent: PermanentFailures,
    pub buffered_rows: IntGauge,
    /// `pixlake_paused` and `pixlake_pauses_total`.
    pub paused: IntGauge,
    pub pauses: IntCounter,
    pub last_commit: Gauge,
    pub stages: BatchStages,
    families: Metrics,
}

/// A pipeline's failures that retrying does not cure: counted by cause, and shown in `/readyz`
/// while they last.
///
/// Each is kept under the name of what failed (a retry loop's `what`: committing to one table,
/// reading offsets…) until an attempt of that same thing succeeds, or its retrying runs out of
/// time (its work dropped: see `ingest::retry`): the two tables of a batch
/// commit side by side, and the other table's success says nothing about this one (clearing on
/// any success made `/readyz` flap while one table kept failing).
#[derive(Clone)]
pub struct PermanentFailures {
    counters: [(crate::fault::Permanent, IntCounter); 4],
    /// `(what, message)`, the latest last.
    failing: Arc<Mutex<Vec<(&'static str, String)>>>,
}

impl PermanentFailures {
    /// An attempt of `what` failed for `cause`; `message` says what and why.
    pub fn failed(&self, what: &'static str, cause: crate::fault::Permanent, message: String) {
        if let Some((_, c)) = self.counters.iter().find(|(k, _)| *k == cause) {
            c.inc();
        }
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        failing.retain(|(w, _)| *w != what);
        failing.push((what, message));
    }

    /// An attempt of `what` succeeded.
    pub fn cleared(&self, what: &'static str) {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner).retain(|(w, _)| *w != what);
    }

    /// The latest permanent failure of something that has not succeeded since.
    pub fn failing(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner).last().map(|(_, m)| m.clone())
    }

    /// Attempts that failed for `cause`.
    pub fn count(&self, cause: crate::fault::Permanent) -> u64 {
        self.counters.iter().find(|(k, _)| *k == cause).map_or(0, |(_, c)| c.get())
    }
}

/// The series of one owned partition; dropped from the registry when it is revoked.
#[derive(Clone)]
pub struct PartitionMetrics {
    pub records: IntCounter,
    pub bytes: IntCounter,
    pub committed_offset: IntGauge,
    pub high_watermark: IntGauge,
    pub lag_records: IntGauge,
    pub lag_seconds: Gauge,
}

impl PipelineMetrics {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.pipeline
    }

    /// The pipeline now owns `partitions` partitions (`pixlake_assigned_partitions`, and
    /// `pixlake_unassigned_pipelines` when it goes to or from none).
    pub fn set_assigned(&self, partitions: usize) {
        let before = self.assigned.get();
        self.assigned.set(partitions as i64);
        match (before == 0, partitions == 0) {
            (true, false) => {
                self.unassigned.dec();
                self.set_waiting(None);
            }
            (false, true) => self.unassigned.inc(),
            _ => {}
        }
    }

    /// Records why the pipeline waits for partitions (`None`: it does not).
    pub fn set_waiting(&self, why: Option<String>) {
        *self.waiting.lock().unwrap_or_else(PoisonError::into_inner) = why;
    }

    /// Why the pipeline waits for partitions, if it does.
    pub fn waiting(&self) -> Option<String> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The pipeline's Kafka clients report `problem` (`None`: they work again):
    /// `pixlake_kafka_problem` and `/readyz`.
    pub fn set_kafka_problem(&self, problem: Option<&crate::kafka::diagnosis::Diagnosed>) {
        for (kind, gauge) in &self.kafka_problems {
            gauge.set(i64::from(problem.is_some_and(|p| p.problem == *kind)));
        }
        *self.kafka_problem.lock().unwrap_or_else(PoisonError::into_inner) = problem.map(ToString::to_string);
    }

    /// What the pipeline's Kafka clients cannot get past, if anything.
    pub fn kafka_problem(&self) -> Option<String> {
        self.kafka_problem.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The handles of `partition` (registering its series).
    pub fn partition(&self, partition: i32) -> PartitionMetrics {
        let p = partition.to_string();
        let l = [self.pipeline.as_str(), self.topic.as_str(), p.as_str()];
        let f = &self.families;
        PartitionMetrics {
            records: f.records.with_label_values(&l),
            bytes: f.bytes.with_label_values(&l),
            committed_offset: f.committed_offset.with_label_values(&l),
            high_watermark: f.high_watermark.with_label_values(&l),
            lag_records: f.lag_records.with_label_values(&l),
            lag_seconds: f.lag_seconds.with_label_values(&l),
        }
    }

    /// Forgets the gauges of a revoked `partition` (its new owner reports them). The counters
    /// stay: a counter series that vanished and came back would read as a reset.
    pub fn forget_partition(&self, partition: i32) {
        let p = partition.to_string();
        let l = [self.pipeline.as_str(), self.topic.as_str(), p.as_str()];
        let f = &self.families;
        let _ = f.committed_offset.remove_label_values(&l);
        let _ = f.high_watermark.remove_label_values(&l);
        let _ = f.lag_records.remove_label_values(&l);
        let _ = f.lag_seconds.remove_label_values(&l);
    }

    /// Counts `n` committed rejections of `rule`.
    pub fn rejected(&self, rule: &str, n: u64) {
        self.rejections.with_label_values(&[self.pipeline.as_str(), rule]).inc_by(n);
    }

    /// Counts `n` committed rows flagged with soft `rule`.
    pub fn flagged(&self, rule: &str, n: u64) {
        self.flags.with_label_values(&[self.pipeline.as_str(), rule]).inc_by(n);
    }
}

/// The families of `pixlake webhook`, registered beside the process ones.
#[derive(Clone)]
pub struct WebhookMetrics {
    requests: IntCounterVec,
    /// Events acknowledged by Kafka, by event type.
    pub published: IntCounterVec,
    /// Events not published again because an earlier request did (PSP retries).
    pub duplicates: IntCounter,
    /// From the first event queued to the last acknowledgement, per request.
    pub publish_seconds: Histogram,
    /// Requests being handled.
    pub in_flight: IntGauge,
}

impl WebhookMetrics {
    /// Registers the webhook families in `metrics`' registry.
    pub fn new(metrics: &Metrics) -> Result<Self, MetricsError> {
        let r = &metrics.registry;
        let requests = IntCounterVec::new(
            opts("pixlake_webhook_requests_total", "Webhook requests answered, by HTTP status."),
            &["status"],
        )?;
        let published = IntCounterVec::new(
            opts("pixlake_webhook_events_published_total", "Events the webhook published and Kafka acknowledged."),
            &["event_type"],
        )?;
        let duplicates = IntCounter::with_opts(opts(
            "pixlake_webhook_duplicate_events_total",
            "Events of a request already published by an earlier one (PSP retries), not published again.",
        ))?;
        let publish_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "pixlake_webhook_publish_duration_seconds",
                "Time from a request's first event queued to Kafka's last acknowledgement.",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )?;
        let in_flight =
            IntGauge::with_opts(opts("pixlake_webhook_requests_in_flight", "Webhook requests being handled."))?;
        r.register(Box::new(requests.clone()))?;
        r.register(Box::new(published.clone()))?;
        r.register(Box::new(duplicates.clone()))?;
        r.register(Box::new(publish_seconds.clone()))?;
        r.register(Box::new(in_flight.clone()))?;
        // The statuses the webhook answers, present from the start (rates need a zero).
        for status in ["200", "400", "401", "404", "405", "408", "413", "503"] {
            requests.with_label_values(&[status]);
        }
        for c in crate::pix::Category::ALL {
            published.with_label_values(&[c.as_str()]);
        }
        Ok(WebhookMetrics { requests, published, duplicates, publish_seconds, in_flight })
    }

    /// Counts one answered request.
    pub fn answered(&self, status: u16) {
        self.requests.with_label_values(&[status.to_string().as_str()]).inc();
    }
}

/// The families of `pixlake ship-log`.
#[derive(Clone)]
pub struct ShipLogMetrics {
    /// Lines published as events (and acknowledged).
    pub published: IntCounter,
    /// Lines that could not be mapped, published to the DLQ topic (and acknowledged).
    pub dead_lettered: IntCounter,
    /// ISO 20022 messages of other types than pacs.008/002/004, skipped.
    pub skipped: IntCounter,
    /// Batches acknowledged and checkpointed.
    pub batches: IntCounter,
    /// Batches sent again because Kafka did not acknowledge them.
    pub retries: IntCounter,
    /// Files open (followed, or rotated away and being read to their end).
    pub files: IntGauge,
}

impl ShipLogMetrics {
    /// Registers the shipper's families in `metrics`' registry.
    pub fn new(metrics: &Metrics) -> Result<Self, MetricsError> {
        let r = &metrics.registry;
        let counter = |name: &str, help: &str| -> Result<IntCounter, MetricsError> {
            let c = IntCounter::with_opts(opts(name, help))?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let files = IntGauge::with_opts(opts("pixlake_shiplog_files_followed", "Log files the shipper has open."))?;
        r.register(Box::new(files.clone()))?;
        Ok(ShipLogMetrics {
            published: counter(
                "pixlake_shiplog_lines_published_total",
                "Events published from log lines or ISO 20022 messages, acknowledged by Kafka.",
            )?,
            dead_lettered: counter(
                "pixlake_shiplog_lines_dead_lettered_total",
                "Log lines or ISO 20022 messages that could not be mapped (and pacs.002 reports never matched), published to the DLQ topic.",
            )?,
            skipped: counter(
                "pixlake_shiplog_messages_skipped_total",
                "ISO 20022 messages of other types than pacs.008, pacs.002 and pacs.004 (admi, camt…), read and skipped.",
            )?,
            batches: counter(
                "pixlake_shiplog_batches_total",
                "Batches of lines acknowledged by Kafka and checkpointed.",
            )?,
            retries: counter(
                "pixlake_shiplog_batch_retries_total",
                "Batches sent again because Kafka did not acknowledge every record.",
            )?,
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unassigned_pipelines_are_counted_until_they_get_partitions() {
        let m = Metrics::new("node-1").unwrap();
        let (a, b) = (m.pipeline("a", "t.a", "ta"), m.pipeline("b", "t.b", "tb"));
        assert_eq!(m.unassigned.get(), 2, "pipelines start with no partition");
        a.set_waiting(Some("joining".into()));
        a.set_assigned(3);
        assert_eq!((m.unassigned.get(), a.waiting()), (1, None), "assigned: no longer waiting");
        a.set_assigned(2);
        b.set_assigned(0);
        assert_eq!(m.unassigned.get(), 1);
        a.set_assigned(0);
        assert_eq!(m.unassigned.get(), 2);
        let text = m.render();
        assert!(text.contains("pixlake_unassigned_pipelines 2"), "{text}");
        assert!(text.contains(r#"pixlake_build_info{instance_id="node-1",version="#), "{text}");
    }
}
