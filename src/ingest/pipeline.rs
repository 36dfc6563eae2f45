//! The poll loop of one pipeline, on its own thread: poll a record, add it to the batch, commit
//! when due, and stop cleanly on a stop request or, with `--until-caught-up`, at the target.
//!
//! The loop never holds the engine's lock while polling (the rebalance callback runs inside
//! `poll` and takes it). When the engine asks for it (fenced, offsets unreadable, assignment
//! lost), the consumer is dropped — it leaves the group — and a new one joins: every position is
//! then derived from Delta again, which is simpler and safer than repairing positions in place.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

use super::buffer::Record;
use super::consumer::{self, EngineContext};
use super::engine::{Engine, EngineError, Flushed, now_micros};
use crate::config::Config;

/// Why a pipeline stopped (without error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// A stop was requested; everything read was committed.
    Requested,
    /// `--until-caught-up`: every owned partition is committed to its target.
    CaughtUp,
}

/// What ends a pipeline with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(
        "pipeline {pipeline}: cannot create the Kafka consumer: {source}; check kafka.brokers and kafka.properties"
    )]
    Consumer {
        pipeline: String,
        #[source]
        source: KafkaError,
    },
}

fn lock(engine: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    engine.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the pipeline until it stops, recreating its consumer whenever the engine asks.
pub fn run(config: &Config, engine: Arc<Mutex<Engine>>) -> Result<Stopped, PipelineError> {
    let pipeline = lock(&engine).pipeline.clone();
    loop {
        let consumer = consumer::create(config, &pipeline, engine.clone())
            .map_err(|source| PipelineError::Consumer { pipeline: pipeline.name.clone(), source })?;
        consumer
            .subscribe(&[pipeline.topic.as_str()])
            .map_err(|source| PipelineError::Consumer { pipeline: pipeline.name.clone(), source })?;
        let outcome = poll_loop(&engine, &consumer);
        if outcome.is_err() {
            // Whatever is buffered was not committed: do not try again while leaving the group.
            lock(&engine).abandon("stopping after an error".into());
        }
        // Leaving the group runs the revoke callback (lock not held here).
        drop(consumer);
        match outcome? {
            Some(stopped) => return Ok(stopped),
            None => {
                let mut e = lock(&engine);
                tracing::warn!(pipeline = %pipeline.name, "rejoining the consumer group");
                e.reset();
                drop(e);
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// Broker outage reporting: the first error, then a reminder every 30 s, then the recovery.
#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    last_log: Option<Instant>,
    errors: u64,
}

impl Outage {
    fn error(&mut self, pipeline: &str, e: &KafkaError) {
        self.errors += 1;
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        if self.last_log.is_none_or(|l| now - l >= Duration::from_secs(30)) {
            self.last_log = Some(now);
            tracing::warn!(pipeline, error = %e, down_for_s = (now - since).as_secs(),
                "Kafka is not serving this consumer; buffered data is kept and nothing is committed past it; retrying");
        }
    }

    fn ok(&mut self, pipeline: &str) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                pipeline,
                after_s = since.elapsed().as_secs(),
                errors = self.errors,
                "Kafka is serving again"
            );
            self.last_log = None;
            self.errors = 0;
        }
    }
}

/// Polls until a stop (`Some`) or until the consumer must be recreated (`None`).
fn poll_loop(engine: &Mutex<Engine>, consumer: &BaseConsumer<EngineContext>) -> Result<Option<Stopped>, EngineError> {
    let (name, topic, kafka_errors) = {
        let e = lock(engine);
        (e.pipeline.name.clone(), e.pipeline.topic.clone(), e.metrics.kafka_errors.clone())
    };
    let mut outage = Outage::default();
    loop {
        let timeout = lock(engine).poll_timeout();
        match consumer.poll(timeout) {
            None => {}
            Some(Ok(m)) => {
                outage.ok(&name);
                let record = Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis().map(|ms| ms * 1000),
                    key: m.key(),
                    value: m.payload(),
                };
                lock(engine).add(&record, now_micros())?;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                outage.ok(&name);
                let position = consumer
                    .position()
                    .ok()
                    .and_then(|tpl| tpl.find_partition(&topic, p).and_then(|e| e.offset().to_raw()))
                    .unwrap_or(-1);
                lock(engine).reached(p, position);
            }
            Some(Err(e)) => {
                kafka_errors.inc();
                outage.error(&name, &e)
            }
        }
        let mut e = lock(engine);
        if e.abandoned().is_some() {
            return Ok(None);
        }
        if e.shutdown.requested() {
            e.flush(consumer, true, "shutdown", None)?;
            return Ok(if e.abandoned().is_some() { None } else { Some(Stopped::Requested) });
        }
        if let Some(reason) = e.due()
            && e.flush(consumer, false, reason, None)? == Flushed::Fenced
        {
            return Ok(None);
        }
        if e.read_to_target() && e.has_pending() && e.flush(consumer, true, "caught-up", None)? == Flushed::Fenced {
            return Ok(None);
        }
        if e.caught_up() {
            return Ok(Some(Stopped::CaughtUp));
        }
    }
}
