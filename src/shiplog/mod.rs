//! `pixlake ship-log PATH…`: follows a core-banking system's JSON-lines logs and publishes each
//! line, mapped to wire format v1, to its category topic — at least once, never a line lost.
//!
//! ```text
//! files (tail -F: rename / copy-truncate rotation, new files) ──follow──▶ batch of lines
//!   ──mapping──▶ events (lines that cannot be mapped ──▶ DLQ topic, reason + file/line headers)
//!   ──Kafka (idempotent, acks=all), every record acknowledged──▶ checkpoint (fsync, rename)
//! ```
//!
//! **The guarantee**: the checkpoint — per file identity, the offset after the last line — is
//! written only after Kafka acknowledged every record of the batch before it. A crash at any
//! moment restarts from the checkpoint: no line is lost, and at most the lines of the batch
//! that was in flight (`ship_log.batch_lines`) are published again, with the same derived event
//! ids (or the source's own, when mapped), so they can be told apart downstream. A batch Kafka
//! does not acknowledge is sent again, with backoff, until it is (or the shipper is stopped).
//!
//! Modules: [`follow`] (files), [`mapping`] (pure), [`checkpoint`].

pub mod checkpoint;
pub mod follow;
pub mod mapping;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};

use crate::config::Config;
use crate::kafka::producer::{AckedProducer, ProduceError};
use crate::pix::Category;
use crate::produce::sink::Topics;
use crate::telemetry::metrics::{Metrics, MetricsError, ShipLogMetrics};

/// The most a retried batch waits between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a batch may wait for Kafka's acknowledgements before it is sent again.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the shipper cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ShipLogError {
    #[error(
        "ship_log.mapping is not set; describe how a log line becomes an event (see config/pixlake.yaml and the \
         README's ship-log section)"
    )]
    NoMapping,
    #[error("no file pattern given; run `pixlake ship-log PATH…` (e.g. '/var/log/core/*.jsonl', quoted)")]
    NoPaths,
    #[error(transparent)]
    Follow(#[from] follow::FollowError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    Kafka(#[from] ProduceError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::server::ListenError),
    #[error("cannot start the async runtime of the metrics listener")]
    Runtime(#[source] std::io::Error),
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub published: u64,
    pub dead_lettered: u64,
    pub batches: u64,
    /// Batches sent again after Kafka did not acknowledge them.
    pub retried: u64,
}

/// DLQ headers of a line that could not be mapped (SPEC §4's error headers; the source is a
/// file, so `pixlake.source.file` / `.line` / `.offset` instead of topic, partition, offset).
fn dead_letter_headers(line: &follow::Line, why: &mapping::Unmapped) -> OwnedHeaders {
    let pairs = [
        (crate::deadletter::headers::RULE, why.rule.id().to_owned()),
        (crate::deadletter::headers::FIELD, why.field.clone()),
        (crate::deadletter::headers::MESSAGE, why.message.clone()),
        ("pixlake.source.file", line.path.display().to_string()),
        ("pixlake.source.line", line.number.to_string()),
        ("pixlake.source.offset", line.offset.to_string()),
        (crate::deadletter::headers::PIPELINE, "ship-log".to_owned()),
    ];
    pairs.iter().fold(OwnedHeaders::new_with_capacity(pairs.len()), |h, (key, value)| {
        h.insert(Header { key, value: Some(value.as_bytes()) })
    })
}

/// Ships until `stop` is set (finishing the batch in hand when Kafka takes it).
pub fn run(config: &Config, paths: &[String], stop: Arc<AtomicBool>) -> Result<Summary, ShipLogError> {
    let s = &config.ship_log;
    let mapping = s.mapping.as_ref().ok_or(ShipLogError::NoMapping)?;
    if paths.is_empty() {
        return Err(ShipLogError::NoPaths);
    }
    let topics = Topics::from_config(config);
    let producer = AckedProducer::new(&config.kafka, config.validation.max_message_bytes)?;
    let mut names: Vec<&str> = Category::ALL.iter().map(|c| topics.get(*c)).collect();
    names.push(&config.dlq.topic);
    producer.require_topics(&names, Duration::from_secs(10))?;
    let mut follower = follow::Follower::new(paths, checkpoint::load(&s.checkpoint_path)?)?;
    let metrics = Metrics::new(&config.ingest.instance_id)?;
    let counters = ShipLogMetrics::new(&metrics)?;
    let failing = Arc::new(AtomicBool::new(false));
    let runtime = serve_metrics(config, metrics, failing.clone(), stop.clone())?;
    let probe = crate::probe::Probe::from_env();
    let mut summary = Summary::default();
    tracing::info!(patterns = ?paths, checkpoint = %s.checkpoint_path.display(), "ship-log: starting");
    let mut saved = follower.positions();
    while !stop.load(Ordering::Relaxed) {
        let lines = follower.poll(s.batch_lines)?;
        counters.files.set(follower.len() as i64);
        if lines.is_empty() {
            // Blank lines, truncations, files read to their end: positions moved, no record.
            let now = follower.positions();
            if now != saved {
                checkpoint::save(&s.checkpoint_path, now.clone())?;
                saved = now;
            }
            std::thread::sleep(s.poll_interval);
            continue;
        }
        let mapped: Vec<Result<mapping::Mapped, mapping::Unmapped>> =
            lines.iter().map(|l| mapping.map(&l.bytes)).collect();
        let mut backoff = Duration::from_millis(200);
        loop {
            match send_batch(&producer, &topics, &config.dlq.topic, &lines, &mapped) {
                Ok(()) => break,
                Err(e) => {
                    summary.retried += 1;
                    counters.retries.inc();
                    if !failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %crate::telemetry::Chain(&e), lines = lines.len(),
                            "ship-log: Kafka did not acknowledge the batch; sending it again until it does (the checkpoint waits)");
                    }
                    if stop.load(Ordering::Relaxed) {
                        tracing::info!(
                            lines = lines.len(),
                            "ship-log: stopping with a batch unacknowledged; it is read again from the checkpoint at the next start"
                        );
                        runtime.shutdown_background();
                        return Ok(summary);
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if failing.swap(false, Ordering::Relaxed) {
            tracing::info!("ship-log: Kafka acknowledges again");
        }
        probe.hit("ship-log-acked");
        let now = follower.positions();
        checkpoint::save(&s.checkpoint_path, now.clone())?;
        saved = now;
        probe.hit("ship-log-checkpointed");
        let dead = mapped.iter().filter(|m| m.is_err()).count() as u64;
        summary.lines += lines.len() as u64;
        summary.dead_lettered += dead;
        summary.published += lines.len() as u64 - dead;
        summary.batches += 1;
        counters.published.inc_by(lines.len() as u64 - dead);
        counters.dead_lettered.inc_by(dead);
        counters.batches.inc();
    }
    runtime.shutdown_background();
    Ok(summary)
}

/// Publishes a batch and waits for every acknowledgement; `Err` if any record was not.
fn send_batch(
    producer: &AckedProducer,
    topics: &Topics,
    dlq: &str,
    lines: &[follow::Line],
    mapped: &[Result<mapping::Mapped, mapping::Unmapped>],
) -> Result<(), ProduceError> {
    let failed_before = producer.counters().failed.load(Ordering::Relaxed);
    for (line, m) in lines.iter().zip(mapped) {
        match m {
            Ok(m) => {
                producer.send(topics.get(m.category), m.key.as_deref().map(str::as_bytes), Some(&m.value), None)?
            }
            Err(why) => producer.send(dlq, None, Some(&line.bytes), Some(dead_letter_headers(line, why)))?,
        }
    }
    producer.flush(FLUSH_TIMEOUT)?;
    let failed = producer.counters().failed.load(Ordering::Relaxed) - failed_before;
    if failed > 0 {
        return Err(ProduceError::FlushTimeout {
            pending: failed as i32,
            timeout: FLUSH_TIMEOUT,
            brokers: producer.brokers().to_owned(),
        });
    }
    Ok(())
}

/// `/metrics`, `/healthz`, `/readyz` (ready while Kafka acknowledges) on `telemetry.listen`.
fn serve_metrics(
    config: &Config,
    metrics: Metrics,
    failing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Result<tokio::runtime::Runtime, ShipLogError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ship-log-metrics")
        .enable_all()
        .build()
        .map_err(ShipLogError::Runtime)?;
    if let Some(addr) = config.telemetry.listen {
        let listener = runtime.block_on(crate::telemetry::server::bind(addr))?;
        let endpoints = Arc::new(crate::telemetry::server::Endpoints {
            metrics,
            readiness: crate::telemetry::server::Readiness::Check(Box::new(move || {
                let ready = !failing.load(Ordering::Relaxed);
                let mut body = serde_json::json!({ "ready": ready });
                if !ready {
                    body["kafka"] = "the last batch was not acknowledged".into();
                }
                (ready, body)
            })),
        });
        runtime.spawn(crate::telemetry::server::serve(listener, endpoints, async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    Ok(runtime)
}
