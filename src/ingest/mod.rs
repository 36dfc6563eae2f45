//! The exactly-once engine behind `pixlake ingest`: one consumer group per pipeline, records
//! decoded into micro-batches, each batch committed to Delta with its Kafka offsets.
//!
//! ```text
//!   poll thread                                                    committer thread (owns the tables)
//!   Kafka topic ──poll──▶ Buffer (decode, route by Progress,  ──due, DLQ acked──▶ 1. category table: rows + txn
//!        ▲                Arrow builders)   seal: offsets "sealed"  (1 in flight)  2. pix_quarantine: rows + txn
//!        │                  │ rejected                                                  │
//!        │                  └──▶ pix.dlq (queued)          reply: offsets "committed" ◀─┘
//!        │                                                 then group offsets (lag tools)
//!   rebalance callback: start offsets read from the tables' txn actions (a committer job, after
//!   every batch sent before it); a due batch while one is in flight waits, then pauses reading
//! ```
//!
//! # Why no record is lost or doubled (SPEC §5)
//!
//! * **Offsets live in the commit that makes the rows visible.** Each table commit carries a
//!   `txn` action per source partition whose version is the next offset to read. After any
//!   crash a table has the rows and the offset together, or neither ([`crate::sink::delta`]).
//! * **Two tables, two offsets.** A partition's valid and rejected records go to different
//!   tables, committed one after the other; each table keeps its own offset and skips what it
//!   already has when records are re-read ([`progress`] argues this and a property test
//!   simulates crashes between the two commits).
//! * **Start where Delta says.** Every assignment reads the offsets from the tables and hands
//!   them to librdkafka in the assignment itself ([`consumer`]); Kafka's group offsets are
//!   written after each commit for lag tools and never read.
//! * **Zombies are fenced by Delta, not by timing.** A writer that lost its partitions without
//!   noticing (a long pause, a network split) still holds a table snapshot from before the new
//!   owner's commits; its next commit conflicts on the partition's app id and is refused
//!   (`ConcurrentTransaction`). For that, every commit carries a txn for *every* partition the
//!   writer owns, moved or not ([`engine::NEVER_COMMITTED`] explains why leaving one out lets
//!   another writer's commit slip in). The engine then drops its batch and rejoins the group. The same
//!   check catches a commit retried after an ambiguous failure that had in fact landed.
//! * **Dead letters before quarantine.** A rejected record is published to `pix.dlq` and
//!   acknowledged before the commit that puts it in `pix_quarantine`: the DLQ may see a record
//!   twice after a crash (consumers deduplicate on its source coordinates), the quarantine table
//!   never.
//! * **Failures keep the batch.** Storage and broker errors are retried with backoff
//!   ([`retry`]); nothing is committed past data that is not durable, and on a stop the batch is
//!   committed within the grace period or left to be read again.
//! * **Committing overlaps reading, offsets move on durability.** A batch is sealed and handed
//!   to the pipeline's committer thread while the poll loop reads the next; the committed
//!   offsets move only on the committer's reply, one batch is in flight at most, and replies
//!   of batches the engine has dropped move nothing ([`committer`] argues each point; the
//!   property test in [`progress`] plays crashes between seal, the two commits and the reply).

mod buffer;
pub mod catchup;
mod clock;
mod committer;
mod consumer;
mod engine;
pub mod group;
pub mod lag;
pub mod membership;
pub mod memory;
mod pipeline;
pub mod progress;
pub mod retry;
mod tables;
mod watcher;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use buffer::{Counts, Record};
pub use catchup::{CaughtUpBy, Trailing};
pub use consumer::settings as consumer_settings;
pub use engine::Totals;
pub use pipeline::Stopped;

use crate::config::{Config, Pipeline};
use crate::deadletter::KafkaDeadLetterQueue;
use crate::pix::Decoder;
use crate::probe::Probe;
use crate::telemetry::server::{self, Endpoints, Readiness};
use crate::telemetry::{Metrics, MetricsError, PipelineMetrics};
use buffer::Buffer;
use engine::{Engine, EngineSettings};
use retry::{Retries, Shutdown};
use tables::Tables;

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop once every partition of the pipelines' topics is committed up to the high
    /// watermark seen at start, by this process or another (SPEC §6).
    pub until_caught_up: bool,
    /// With `until_caught_up`: give up after this long (the pipelines then report
    /// [`Stopped::TimedOut`] with the partitions still short).
    pub timeout: Option<Duration>,
    /// Only these pipelines (by name); empty: all.
    pub pipelines: Vec<String>,
    /// Set to stop (SIGTERM/SIGINT): flush, commit, return.
    pub stop: Arc<AtomicBool>,
    /// Filled by [`run`] with what its pipelines hold uncommitted, for whoever must say it (a
    /// second stop request exits without committing).
    pub uncommitted: Uncommitted,
}

/// What a command has read and not committed, described for the operator on demand (set once
/// the command knows; read from another thread).
#[derive(Clone, Default)]
pub struct Uncommitted(Arc<std::sync::OnceLock<Box<dyn Fn() -> String + Send + Sync>>>);

impl Uncommitted {
    /// How to describe it from now on (the first call wins).
    pub fn set(&self, describe: impl Fn() -> String + Send + Sync + 'static) {
        let _ = self.0.set(Box::new(describe));
    }

    /// The description, once there is a way to make it.
    pub fn describe(&self) -> Option<String> {
        self.0.get().map(|f| f())
    }
}

impl std::fmt::Debug for Uncommitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Uncommitted")
    }
}

/// What a run did, per pipeline.
#[derive(Debug, Clone)]
pub struct Report {
    pub pipelines: Vec<PipelineReport>,
    pub elapsed: Duration,
}

/// One pipeline's part of the [`Report`].
#[derive(Debug, Clone)]
pub struct PipelineReport {
    pub name: String,
    pub topic: String,
    pub table: String,
    pub totals: Totals,
    /// Retries by cause: dead letters, Delta commits, offset reads.
    pub retries: [u64; 3],
    pub stopped: Stopped,
    /// `--until-caught-up`: the partitions committed to their targets, by whom.
    pub caught_up: BTreeMap<i32, CaughtUpBy>,
}

/// Why ingestion failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    UnknownPipeline(#[from] crate::config::UnknownName),
    #[error("cannot start the async runtime or a pipeline thread; check the process limits (threads, memory)")]
    Runtime(#[source] std::io::Error),
    #[error("pipeline {pipeline} cannot start")]
    Tables {
        pipeline: String,
        #[source]
        source: retry::GaveUp,
    },
    #[error("pipeline {pipeline} cannot tell where --until-caught-up must get to")]
    Targets {
        pipeline: String,
        #[source]
        source: watcher::StartError,
    },
    #[error("pipeline {pipeline}: cannot create the dead-letter producer")]
    DeadLetters {
        pipeline: String,
        #[source]
        source: Box<crate::kafka::producer::ProduceError>,
    },
    #[error(transparent)]
    Pipeline(#[from] pipeline::PipelineError),
    #[error("pipeline thread {0} panicked; this is a bug, please report it with the log")]
    Panicked(String),
    #[error(
        "pipelines {0:?} did not stop within ingest.shutdown_grace_ms + 15 s (most likely blocked leaving the \
         Kafka group); pixlake exited without them: what they committed is durable, the rest is read again on the \
         next start, and the group reassigns their partitions after session.timeout.ms"
    )]
    Hung(Vec<String>),
    #[error(transparent)]
    Memory(#[from] memory::TooSmall),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Listen(#[from] server::ListenError),
}

/// Runs the selected pipelines, each on its own thread with its own consumer, until `stop` is
/// set or (with `until_caught_up`) all are caught up. If one pipeline fails, the others are
/// asked to stop (flushing what they hold) and the first error is returned.
///
/// With `telemetry.listen` set, `/metrics`, `/healthz` and `/readyz` are served from before
/// the first table is opened until the last pipeline stopped.
pub fn run(config: &Config, options: Options) -> Result<Report, IngestError> {
    let selected: Vec<Pipeline> = config.select(&options.pipelines)?.into_iter().cloned().collect();
    let ingest = &config.ingest;
    let limited = memory::effective(ingest.memory_limit, selected.len(), config.batch.max_bytes)?;
    let budget = limited.map(|(_, b)| b);
    if let Some((limit, budget)) = limited
        && !selected.is_empty()
    {
        tracing::info!(
            limit_mb = limit >> 20,
            pipelines = selected.len(),
            batch_mb = budget.batch_bytes >> 20,
            prefetch_mb = budget.prefetch_kbytes >> 10,
            "memory: each pipeline commits batches of up to {} MiB of records and prefetches up to {} MiB \
             (ingest.memory_limit_mb{})",
            budget.batch_bytes >> 20,
            budget.prefetch_kbytes >> 10,
            if ingest.memory_limit.is_default() { ", not set: the default; 0 turns the limit off" } else { "" }
        );
    }
    let limited = budget.map(|b| b.apply(config));
    let config = limited.as_ref().unwrap_or(config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.ingest.worker_threads)
        .thread_name("pixlake-io")
        .enable_all()
        .build()
        .map_err(IngestError::Runtime)?;
    let started = Instant::now();
    let metrics = Metrics::new(&config.ingest.instance_id)?;
    let handles: Vec<PipelineMetrics> =
        selected.iter().map(|p| metrics.pipeline(&p.name, &p.topic, &p.table)).collect();
    let buffered: Vec<(String, prometheus::IntGauge)> =
        handles.iter().map(|h| (h.name().to_owned(), h.buffered_rows.clone())).collect();
    options.uncommitted.set(move || {
        let each: Vec<String> = buffered.iter().map(|(n, g)| format!("{n}: {} rows", g.get())).collect();
        format!("the rows read since the last commit ({})", each.join(", "))
    });
    let (listener_stop, listener_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(addr) = config.telemetry.listen {
        let listener = runtime.block_on(server::bind(addr))?;
        let bound = listener.local_addr().map_or_else(|_| addr.to_string(), |a| a.to_string());
        tracing::info!(address = %bound, "serving http://{bound}/metrics, /healthz and /readyz");
        let endpoints = Endpoints {
            metrics: metrics.clone(),
            readiness: Readiness::Pipelines { pipelines: handles.clone(), warehouse: config.warehouse.clone() },
        };
        runtime.spawn(server::serve(listener, Arc::new(endpoints), async {
            let _ = listener_stopped.await;
        }));
    }
    if !selected.is_empty() {
        runtime.block_on(tables::create_quarantine(config));
    }
    let shutdown = Shutdown::new(options.stop.clone(), config.ingest.shutdown_grace);
    // One probe for the process: "the N-th time a point is reached" counts across pipelines.
    let probe = Probe::from_env();
    let until =
        options.until_caught_up.then(|| Until { deadline: options.timeout.and_then(|t| started.checked_add(t)) });
    let threads: Vec<_> = selected
        .into_iter()
        .zip(handles)
        .map(|(pipeline, metrics)| {
            let (config, handle, shutdown, stop) =
                (config.clone(), runtime.handle().clone(), shutdown.clone(), options.stop.clone());
            let probe = probe.clone();
            let name = pipeline.name.clone();
            let thread = std::thread::Builder::new().name(format!("pixlake-{name}")).spawn(move || {
                let result = run_pipeline(&config, pipeline, handle, shutdown, until, probe, metrics);
                if result.is_err() {
                    // One pipeline down: the others commit what they hold and stop too.
                    stop.store(true, Ordering::Relaxed);
                }
                result
            });
            (name, thread)
        })
        .collect();
    let finished = Arc::new(AtomicBool::new(false));
    if let Some(every) = config.ingest.maintenance_interval {
        let names = threads.iter().map(|(n, _)| n.clone()).collect();
        schedule_maintenance(config.clone(), names, every, options.stop.clone(), finished.clone(), probe.clone());
    }
    let mut reports = Vec::new();
    let mut first_error = None;
    let mut running = Vec::new();
    let mut outcomes = Vec::new();
    for (name, thread) in threads {
        match thread {
            Ok(t) => running.push((name, t)),
            Err(e) => outcomes.push((name, Err(IngestError::Runtime(e)))),
        }
    }
    let give_up = || shutdown.deadline().is_some_and(|d| Instant::now() > d + STOP_MARGIN);
    let (joined, hung) = join_within(running, give_up);
    for (name, result) in joined {
        outcomes.push((name.clone(), result.unwrap_or_else(|_| Err(IngestError::Panicked(name)))));
    }
    if !hung.is_empty() {
        first_error = Some(IngestError::Hung(hung));
    }
    for (name, outcome) in outcomes {
        match outcome {
            Ok(r) => reports.push(r),
            // The first error is what the command reports (once, as its last line); the
            // others are said here, or they would not be said at all.
            Err(e) if first_error.is_some() => {
                tracing::error!(pipeline = %name, error = %crate::telemetry::Chain(&e), "pipeline stopped too");
            }
            Err(e) => first_error = Some(e),
        }
    }
    finished.store(true, Ordering::Relaxed);
    let _ = listener_stop.send(());
    match first_error {
        Some(e) => Err(e),
        None => Ok(Report { pipelines: reports, elapsed: started.elapsed() }),
    }
}

/// How long past the shutdown grace period [`run`] waits for a pipeline thread before returning
/// without it. librdkafka's consumer close (leaving the group, on the pipeline's thread) waits
/// without a time limit for the group coordinator; one orphaned test process was seen stuck
/// there for an hour after SIGTERM. Whatever such a thread committed is durable, what it held is
/// read again on the next start, and Delta fences it should it ever wake up: the process can exit.
pub const STOP_MARGIN: Duration = Duration::from_secs(15);

/// Joins `threads`, in order, until `give_up()` says to stop waiting; returns each joined
/// thread's result and the names of the ones still running.
fn join_within<T>(
    threads: Vec<(String, std::thread::JoinHandle<T>)>,
    give_up: impl Fn() -> bool,
) -> (Vec<(String, std::thread::Result<T>)>, Vec<String>) {
    let mut joined = Vec::new();
    let mut waiting = threads;
    while !waiting.is_empty() {
        let (done, rest): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|(_, t)| t.is_finished());
        joined.extend(done.into_iter().map(|(name, t)| (name, t.join())));
        waiting = rest;
        if !waiting.is_empty() {
            if give_up() {
                return (joined, waiting.into_iter().map(|(name, _)| name).collect());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (joined, Vec::new())
}

/// `--until-caught-up` (and its `--timeout`).
#[derive(Debug, Clone, Copy)]
struct Until {
    deadline: Option<Instant>,
}

fn run_pipeline(
    config: &Config,
    pipeline: Pipeline,
    runtime: tokio::runtime::Handle,
    shutdown: Shutdown,
    until: Option<Until>,
    probe: Probe,
    metrics: PipelineMetrics,
) -> Result<PipelineReport, IngestError> {
    let retries = Arc::new(Retries::of(&metrics, config.ingest.permanent_failure_attempts));
    let limit = until.and_then(|u| u.deadline);
    let tables = open_tables(config, &pipeline, &runtime, &shutdown, limit, &retries, &probe)?;
    let mut run = pipeline::Run { deadline: limit, watched: None, fences: Vec::new() };
    let catch_up = match until {
        None => None,
        Some(_) => {
            let (catch_up, watched) = watcher::start(config, &pipeline, &runtime, &shutdown, limit, &retries, &metrics)
                .map_err(|source| IngestError::Targets { pipeline: pipeline.name.clone(), source })?;
            run.watched = Some(watched);
            Some(catch_up)
        }
    };
    // Nothing new since the last run: done without joining the group.
    let done = catch_up.as_ref().is_some_and(catchup::CatchUp::done);
    let dlq = KafkaDeadLetterQueue::new(config, Duration::from_secs(10))
        .map_err(|e| IngestError::DeadLetters { pipeline: pipeline.name.clone(), source: Box::new(e) })?;
    let decoder = Decoder::new(config.validation.max_message_bytes);
    let capacity = memory::builder_rows(&config.batch);
    let buffer = Buffer::new(&pipeline.name, &pipeline.topic, pipeline.category, decoder, capacity);
    let settings = EngineSettings {
        policy: config.batch,
        idle_commit: config.ingest.idle_commit,
        catch_up,
        instance_id: config.ingest.instance_id.clone(),
        shutdown,
        retries: retries.clone(),
        probe,
        metrics,
    };
    let engine = Engine::new(pipeline.clone(), runtime, tables, buffer, Box::new(dlq), settings, Instant::now())
        .map_err(IngestError::Runtime)?;
    let engine = Arc::new(Mutex::new(engine));
    let stopped = if done {
        tracing::info!(pipeline = %pipeline.name, "every partition of {} is already committed up to its end", pipeline.topic);
        Stopped::CaughtUp
    } else {
        pipeline::run(config, engine.clone(), run)?
    };
    let engine = engine.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(PipelineReport {
        name: pipeline.name,
        topic: pipeline.topic,
        table: pipeline.table,
        totals: engine.totals.clone(),
        retries: [retries.dlq.get(), retries.delta.get(), retries.offsets.get()],
        stopped,
        caught_up: engine.catch_up().map(|c| c.by().clone()).unwrap_or_default(),
    })
}

/// Opens the pipeline's tables, retrying while the storage is unreachable, until a stop or
/// `limit` (`--timeout`); a permanent failure (a table with another schema, storage that
/// refuses pixlake) stops after a few attempts ([`crate::fault`]).
fn open_tables(
    config: &Config,
    pipeline: &Pipeline,
    runtime: &tokio::runtime::Handle,
    shutdown: &Shutdown,
    limit: Option<Instant>,
    retries: &Retries,
    probe: &Probe,
) -> Result<Tables, IngestError> {
    retry::retry(
        "opening the tables",
        "check warehouse.root and that the storage is reachable",
        retries.of_cause(&retries.delta),
        || [shutdown.deadline(), limit].into_iter().flatten().min(),
        || runtime.block_on(Tables::open(config, pipeline, probe)),
    )
    .map_err(|source| IngestError::Tables { pipeline: pipeline.name.clone(), source })
}

/// `ingest.maintenance_interval_ms`: runs `maintain` (compaction, checkpoint, vacuum with the
/// default 7-day retention; never forced) on the pipelines' tables every `every`, on a thread of
/// its own. Safe beside the pipelines (see `sink::delta::maintain`); a failed run is logged and
/// tried again at the next tick. The thread is not joined: a run cut short by the exit leaves
/// at most unreferenced files, which vacuum removes.
fn schedule_maintenance(
    config: Config,
    pipelines: Vec<String>,
    every: Duration,
    stop: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
    probe: Probe,
) {
    let spawned = std::thread::Builder::new().name("pixlake-maintain".into()).spawn(move || {
        let upkeep = crate::sink::delta::Upkeep {
            compact_target: Some(128 << 20),
            checkpoint: true,
            vacuum_retention_hours: Some(168),
            force: false,
        };
        let mut next = Instant::now() + every;
        while !stop.load(Ordering::Relaxed) && !finished.load(Ordering::Relaxed) {
            if Instant::now() < next {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            match crate::ops::maintain::run(&config, &pipelines, upkeep, &crate::telemetry::progress::Silent) {
                Ok(report) => {
                    let compacted: u64 = report.iter().map(|m| m.compacted_files).sum();
                    let vacuumed: u64 = report.iter().map(|m| m.vacuumed_files).sum();
                    tracing::info!(compacted, vacuumed, tables = report.len(), "scheduled maintenance done");
                    probe.hit("maintenance-done");
                }
                Err(e) => tracing::warn!(error = %crate::telemetry::Chain(&e),
                    "scheduled maintenance failed; trying again at the next interval"),
            }
            next = Instant::now() + every;
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the maintenance thread; run `pixlake maintain` from a scheduler");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_thread_that_never_ends_is_left_behind_once_told_to_give_up() {
        let release = Arc::new(AtomicBool::new(false));
        let r = release.clone();
        let threads = vec![
            ("quick".to_owned(), std::thread::spawn(|| 1)),
            (
                "stuck".to_owned(),
                std::thread::spawn(move || {
                    while !r.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    2
                }),
            ),
        ];
        let asked = std::cell::Cell::new(0);
        let (joined, hung) = join_within(threads, || {
            asked.set(asked.get() + 1);
            asked.get() > 3
        });
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].0, "quick");
        assert_eq!(*joined[0].1.as_ref().unwrap(), 1);
        assert_eq!(hung, vec!["stuck".to_owned()]);
        release.store(true, Ordering::Relaxed);
    }

    #[test]
    fn every_thread_is_joined_when_they_end() {
        let threads = (0..3).map(|i| (format!("p{i}"), std::thread::spawn(move || i))).collect();
        let (joined, hung) = join_within(threads, || false);
        assert!(hung.is_empty());
        let mut values: Vec<i32> = joined.into_iter().map(|(_, r)| r.unwrap()).collect();
        values.sort();
        assert_eq!(values, vec![0, 1, 2]);
    }
}
