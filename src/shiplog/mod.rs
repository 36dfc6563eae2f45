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
//! backoff (a record whose fate librdkafka does not know is read back from its partition
//! first, and counts as sent if it is there), and a line larger than `validation.max_message_bytes` goes to the DLQ cut to that
//! size (`OVERSIZED_MESSAGE`) rather than to a broker that would refuse it.
//!
//! Modules: [`follow`] (files), [`mapping`] (pure), [`checkpoint`].

pub mod checkpoint;
pub mod follow;
pub mod framing;
pub mod iso20022;
pub mod join;
pub mod mapping;
pub mod shape;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::Config;
use crate::config::shiplog::Format;
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
    #[error(
        "ship_log.iso20022 is not set; give at least participant_ispb, your PSP's ISPB (see config/pixlake.yaml and \
         the README's ship-log section)"
    )]
    NoIso20022,
    #[error("no file pattern given; run `pixlake ship-log PATH…` (e.g. '/var/log/core/*.jsonl', quoted)")]
    NoPaths,
    #[error(transparent)]
    Join(#[from] join::JoinError),
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
    /// ISO 20022 messages of other types (admi, camt…): no event.
    pub skipped: u64,
    pub batches: u64,
    /// Batches sent again after Kafka did not acknowledge them.
    pub retried: u64,
}

/// Ships until `stop` is set (finishing the batch in hand when Kafka takes it).
pub fn run(config: &Config, paths: &[String], format: Format, stop: Arc<AtomicBool>) -> Result<Summary, ShipLogError> {
    let s = &config.ship_log;
    if paths.is_empty() {
        return Err(ShipLogError::NoPaths);
    }
    let mut shaper = shape::Shaper::new(config, format)?;
    let topics = Topics::from_config(config);
    let publisher = Publisher::new(&config.kafka, config.validation.max_message_bytes)?;
    // A missing topic would hold every record forever: say so now.
    let mut names: Vec<&str> = Category::ALL.iter().map(|c| topics.get(*c)).collect();
    names.push(&config.dlq.topic);
    publisher.require_topics(&names, Duration::from_secs(10))?;
    let framing = match format {
        Format::JsonLines => framing::Framing::Lines,
        Format::Iso20022 => framing::Framing::Xml,
    };
    let mut follower = follow::Follower::new(paths, checkpoint::load(&s.checkpoint_path)?)?.with_framing(framing);
    let metrics = Metrics::new(&config.ingest.instance_id)?;
    let counters = ShipLogMetrics::new(&metrics)?;
    let failing = Arc::new(AtomicBool::new(false));
    let runtime = serve_metrics(config, metrics, failing.clone(), stop.clone())?;
    let probe = crate::probe::Probe::from_env();
    let max = config.validation.max_message_bytes;
    let mut summary = Summary::default();
    tracing::info!(patterns = ?paths, ?format, checkpoint = %s.checkpoint_path.display(), "ship-log: starting");
    let mut saved = follower.positions();
    while !stop.load(Ordering::Relaxed) {
        let lines = follower.poll(s.batch_lines);
        counters.files.set(follower.len() as i64);
        let mut skipped = 0;
        let outs = shaper.shape(&lines, max, &mut skipped)?;
        if outs.is_empty() {
            // Blank lines, truncations, files read to their end, messages of no interest:
            // positions moved, no record.
            shaper.commit()?;
            let now = follower.positions();
            if now != saved {
                checkpoint::save(&s.checkpoint_path, now.clone())?;
                saved = now;
            }
            summary.lines += lines.len() as u64;
            summary.skipped += skipped;
            counters.skipped.inc_by(skipped);
            if lines.is_empty() {
                std::thread::sleep(s.poll_interval);
            }
            continue;
        }
        // Published until every record is acknowledged; only refused ones are sent again.
        let mut todo: Vec<usize> = (0..outs.len()).collect();
        let mut backoff = Duration::from_millis(200);
        let acknowledged = loop {
            let records = todo
                .iter()
                .map(|&i| {
                    let o = &outs[i];
                    Record {
                        topic: o.category.map_or(config.dlq.topic.as_str(), |c| topics.get(c)),
                        key: o.key.as_deref().map(str::as_bytes),
                        value: &o.value,
                        headers: o.dead.as_ref().map(shape::dead_letter_headers),
                    }
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
                records = lines.len(),
                "ship-log: stopping with a batch unacknowledged; it is read again from the checkpoint at the next start"
            );
            break;
        }
        if failing.swap(false, Ordering::Relaxed) {
            tracing::info!("ship-log: Kafka acknowledges again");
        }
        probe.hit("ship-log-acked");
        shaper.commit()?;
        let now = follower.positions();
        checkpoint::save(&s.checkpoint_path, now.clone())?;
        saved = now;
        probe.hit("ship-log-checkpointed");
        let dead = outs.iter().filter(|o| o.dead.is_some()).count() as u64;
        let events = outs.len() as u64 - dead;
        summary.lines += lines.len() as u64;
        summary.dead_lettered += dead;
        summary.published += events;
        summary.skipped += skipped;
        summary.batches += 1;
        counters.published.inc_by(events);
        counters.dead_lettered.inc_by(dead);
        counters.skipped.inc_by(skipped);
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
