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
//! ids (or the source's own, when mapped), so they can be told apart downstream. Without a
//! crash nothing is published twice: the producer never times a record out (through an outage
//! it keeps the batch and delivers each record once when the broker is back — see
//! [`crate::kafka::verdicts`]); only records Kafka refused for good are sent again, with
//! backoff, and a line larger than `validation.max_message_bytes` goes to the DLQ cut to that
//! size (`OVERSIZED_MESSAGE`) rather than to a broker that would refuse it.
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
use crate::kafka::producer::ProduceError;
use crate::kafka::verdicts::{PublishError, Publisher, Record};
use crate::pix::Category;
use crate::produce::sink::Topics;
use crate::telemetry::metrics::{Metrics, MetricsError, ShipLogMetrics};

/// The most a retried batch waits between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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
    Publish(#[from] PublishError),
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
pub fn dead_letter_headers(line: &follow::Line, why: &mapping::Unmapped) -> OwnedHeaders {
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
    let publisher = Publisher::new(&config.kafka, config.validation.max_message_bytes)?;
    // A missing topic would hold every record forever: say so now.
    let mut names: Vec<&str> = Category::ALL.iter().map(|c| topics.get(*c)).collect();
    names.push(&config.dlq.topic);
    publisher.require_topics(&names, Duration::from_secs(10))?;
    let mut follower = follow::Follower::new(paths, checkpoint::load(&s.checkpoint_path)?)?;
    let metrics = Metrics::new(&config.ingest.instance_id)?;
    let counters = ShipLogMetrics::new(&metrics)?;
    let failing = Arc::new(AtomicBool::new(false));
    let runtime = serve_metrics(config, metrics, failing.clone(), stop.clone())?;
    let probe = crate::probe::Probe::from_env();
    let max = config.validation.max_message_bytes;
    let mut summary = Summary::default();
    tracing::info!(patterns = ?paths, checkpoint = %s.checkpoint_path.display(), "ship-log: starting");
    let mut saved = follower.positions();
    while !stop.load(Ordering::Relaxed) {
        let lines = follower.poll(s.batch_lines);
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
        let mapped: Vec<Result<mapping::Mapped, mapping::Unmapped>> = lines
            .iter()
            .map(|l| {
                if l.bytes.len() > max {
                    return Err(mapping::Unmapped {
                        rule: crate::pix::HardRule::OversizedMessage,
                        field: String::new(),
                        message: format!(
                            "the line is {} bytes, more than validation.max_message_bytes ({max}); cut to that size here",
                            l.bytes.len()
                        ),
                    });
                }
                mapping.map(&l.bytes)
            })
            .collect();
        // Published until every record is acknowledged; only refused ones are sent again.
        let mut todo: Vec<usize> = (0..lines.len()).collect();
        let mut backoff = Duration::from_millis(200);
        let acknowledged = loop {
            let records = todo
                .iter()
                .map(|&i| match &mapped[i] {
                    Ok(m) => Record {
                        topic: topics.get(m.category),
                        key: m.key.as_deref().map(str::as_bytes),
                        value: &m.value,
                        headers: None,
                    },
                    Err(why) => Record {
                        topic: &config.dlq.topic,
                        key: None,
                        value: &lines[i].bytes[..lines[i].bytes.len().min(max)],
                        headers: Some(dead_letter_headers(&lines[i], why)),
                    },
                })
                .collect();
            let Some(outcome) = runtime.block_on(until_stopped(publisher.publish(records), &stop)) else {
                break false;
            };
            todo = todo.into_iter().zip(&outcome.acknowledged).filter(|(_, a)| !**a).map(|(i, _)| i).collect();
            let Some(e) = outcome.first_error else { break true };
            summary.retried += 1;
            counters.retries.inc();
            if !failing.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %crate::telemetry::Chain(&e), refused = todo.len(),
                    "ship-log: Kafka refused records of the batch; sending them again until it takes them (the checkpoint waits)");
            }
            if !sleep_unless_stopped(backoff, &stop) {
                break false;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        if !acknowledged {
            tracing::info!(
                lines = lines.len(),
                "ship-log: stopping with a batch unacknowledged; it is read again from the checkpoint at the next start"
            );
            break;
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

/// `work`, unless `stop` is set first (`None`).
async fn until_stopped<T>(work: impl std::future::Future<Output = T>, stop: &AtomicBool) -> Option<T> {
    tokio::select! {
        out = work => Some(out),
        () = async {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } => None,
    }
}

/// Sleeps `d` in short steps; `false` if `stop` was set meanwhile.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - std::time::Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
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
