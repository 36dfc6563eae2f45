//! The Kafka consumer of one pipeline and its rebalance callback.
//!
//! Partitions start where **Delta** says, not where the consumer group says: on every
//! assignment the callback reads the tables' `txn` offsets and puts them into the assignment
//! list itself (`assign` / `incremental_assign` with explicit offsets), so there is no window in
//! which the consumer fetches from the group's offset and no racing `seek` (which librdkafka
//! refuses right after an assignment). On revocation the callback commits the batch before the
//! partitions go, so the next owner starts right after it.
//!
//! Both eager (`range`, `roundrobin`) and cooperative (`cooperative-sticky`, the default here)
//! assignment strategies are served: the callback asks librdkafka which protocol is in use.
//!
//! # Static membership, and why the classic protocol
//!
//! Each pipeline's consumer joins its group with `group.instance.id` = `{ingest.instance_id}-
//! {pipeline}` (KIP-345). Tried against Kafka 4.1 with librdkafka 2.12 (the ids below are what
//! the broker answered):
//!
//! * **classic protocol, static**: a process restarted after `kill -9` with the same id is
//!   handed its old assignment within 0.1 s, without a rebalance — the broker replaces the dead
//!   member, whose session has not expired. Without static membership the same restart waits
//!   out the dead member's `session.timeout.ms` (45 s by default). A second process started with
//!   the id of a *live* one replaces it the same way: the older process gets the fatal
//!   `FencedInstanceId` at its next heartbeat. The broker cannot tell a dead member from a live
//!   duplicate until the session ends, and a consumer can also be fenced by a request of its own
//!   previous membership (after a broker restart); so a fenced pipeline rejoins a couple of
//!   times (`pipeline::FENCES_FORGIVEN`), the duplicates fence each other in turn, and within
//!   seconds the first one to run out stops with exit 2 naming `ingest.instance_id`
//!   ([`is_fenced`]). Hence the id must be unique per running process and stable across its
//!   restarts (a StatefulSet pod name); by default it is the host name (`{host}-batch` for an
//!   `--until-caught-up` run, so a batch run beside a daemon on the same host takes nothing
//!   from it).
//! * **consumer protocol (KIP-848, `group.protocol=consumer`), static**: the restarted process is
//!   refused with the fatal `UnreleasedInstanceId` for as long as the dead member's session
//!   lasts (the broker's `group.consumer.session.timeout.ms`, 45 s): exactly the wait static
//!   membership is here to remove. A duplicate of a live process is refused (rather than the
//!   live one fenced), which is nicer, but a crash loop would stack 45 s waits again. So pixlake
//!   stays on the classic protocol (rebalance callback, cooperative-sticky) by default; an
//!   operator may still set `group.protocol` in `kafka.consumer`.
//!
//! A static member does not leave the group when it closes (KIP-345): the broker keeps its
//! partitions for it until its session expires. That is what a crash or a restart wants, not
//! a stop: a clean stop (SIGTERM, or `--until-caught-up` done) therefore unsubscribes first —
//! librdkafka then sends the LeaveGroup a static member otherwise never sends (checked: the group
//! is `Empty` right after) — so other instances take the partitions over at once and `offsets
//! reset` finds the group inactive ([`leave`]).
//!
//! `max.poll.interval.ms` (default 300 s) bounds the time between two polls; a flush (DLQ
//! acknowledgements + two Delta commits, seconds at most) stays far below it. Retries during a
//! long storage or broker outage can exceed it: librdkafka then leaves the group and the
//! partitions go to another member. That costs a rebalance, not correctness: whichever commit
//! comes second for a partition is refused by Delta's conflict check (the engine's fence), so
//! the interval is a liveness setting here, never a safety one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};

use super::clock::Now;
use super::engine::Engine;
use crate::config::{Config, Pipeline};
use crate::kafka::diagnosis::Diagnosis;

/// Group offset commits failing in a row before it is a warning (a rebalance fails a few).
const GROUP_COMMIT_WARN_AFTER: u32 = 20;

/// The consumer's context: the pipeline's engine, shared with the poll loop, and what the
/// client's error events diagnosed (see [`crate::kafka::diagnosis`]).
pub struct EngineContext {
    engine: Arc<Mutex<Engine>>,
    topic: String,
    pub diagnosis: Diagnosis,
    /// Asynchronous group offset commits failed in a row.
    group_commit_failures: AtomicU32,
}

impl EngineContext {
    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect()
    }
}

impl ClientContext for EngineContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::kafka::diagnosis::log_and_note(&self.diagnosis, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // The end of a partition is reported as an error event too; it is news, not trouble
        // (the poll loop gets it as well and acts on it).
        if matches!(error, KafkaError::PartitionEOF(_))
            || crate::kafka::diagnosis::code_of(&error) == Some(RDKafkaErrorCode::PartitionEOF)
        {
            tracing::debug!(target: "librdkafka", topic = %self.topic, "{reason}");
            return;
        }
        self.diagnosis.note(crate::kafka::diagnosis::code_of(&error), reason);
        tracing::warn!(target: "librdkafka", topic = %self.topic, %error, "{reason}");
    }

    /// Served inside `poll` (the loop does not hold the engine then), every
    /// `statistics.interval.ms`.
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.engine().observe(&statistics, Now::read().wall);
    }
}

impl ConsumerContext for EngineContext {
    /// The result of the asynchronous group offset commit that follows each Delta commit. Those
    /// offsets serve Kafka lag tools only (pixlake never reads them), so a failure costs a stale
    /// lag in those tools until the next commit works. A rebalance makes some fail as a matter
    /// of course (`REBALANCE_IN_PROGRESS`, `ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`): said at
    /// info when a streak starts, at warn when it lasts [`GROUP_COMMIT_WARN_AFTER`] commits, and
    /// once when it works again.
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _offsets: &TopicPartitionList) {
        let streak = match &result {
            Ok(()) => self.group_commit_failures.swap(0, Ordering::Relaxed),
            Err(_) => self.group_commit_failures.fetch_add(1, Ordering::Relaxed) + 1,
        };
        let what = "the consumer group's offsets (shown by Kafka lag tools; pixlake's offsets are in Delta) could \
                    not be set; trying again after the next commit";
        match result {
            Err(e) if streak == 1 => tracing::info!(topic = %self.topic, error = %e, "{what}"),
            Err(e) if streak == GROUP_COMMIT_WARN_AFTER => {
                tracing::warn!(topic = %self.topic, error = %e, failures = streak, "{what}")
            }
            Ok(()) if streak > 0 => tracing::info!(topic = %self.topic, "the consumer group's offsets are set again"),
            _ => {}
        }
    }

    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let partitions = self.partitions(tpl);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut engine = self.engine();
                match engine.assign(&partitions, Now::read()) {
                    Ok(starts) => {
                        for (p, start) in starts {
                            let offset = start.map_or(Offset::Beginning, Offset::Offset);
                            if let Err(e) = tpl.set_partition_offset(&self.topic, p, offset) {
                                tracing::error!(topic = %self.topic, partition = p, error = %e, "cannot set the start offset");
                            }
                        }
                        let result = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                        // librdkafka keeps a partition paused by the application across its
                        // revocation and reassignment (the poll loop's backpressure pauses every
                        // owned partition): a partition given back must start unpaused, or it
                        // would never be read again. The loop pauses it anew if it must.
                        let result = result.and_then(|()| consumer.resume(tpl));
                        if let Err(e) = result {
                            tracing::error!(topic = %self.topic, error = %e, "assignment refused by librdkafka; restarting the consumer");
                            engine.abandon(format!("assign failed: {e}"));
                        }
                    }
                    Err(e) => {
                        // Without offsets no partition may start: leave the group and rejoin.
                        let e = crate::telemetry::Chain(&e).to_string();
                        tracing::error!(topic = %self.topic, error = %e, "cannot start the assigned partitions");
                        engine.abandon(format!("offsets unreadable: {e}"));
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                self.engine().revoke(consumer, &partitions, lost, Now::read());
                let result = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = result {
                    tracing::warn!(topic = %self.topic, error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(topic = %self.topic, error = ?other, "rebalance error; dropping the assignment");
                let _ = consumer.unassign();
            }
        }
    }
}

/// Creates the consumer of `pipeline` (not yet subscribed), with [`settings`].
pub fn create(
    config: &Config,
    pipeline: &Pipeline,
    engine: Arc<Mutex<Engine>>,
) -> Result<BaseConsumer<EngineContext>, KafkaError> {
    settings(config, pipeline).create_with_context(EngineContext {
        engine,
        topic: pipeline.topic.clone(),
        diagnosis: Diagnosis::default(),
        group_commit_failures: AtomicU32::new(0),
    })
}

/// The librdkafka settings of `pipeline`'s consumer: pixlake's defaults, the operator's
/// `kafka` maps, and the overrides pixlake's correctness depends on — no automatic offset
/// commits or stores (Delta holds the offsets), end-of-partition events (for
/// `--until-caught-up` and idle partitions). Public for the benchmark's no-op consumer, which
/// must fetch exactly as ingest does.
pub fn settings(config: &Config, pipeline: &Pipeline) -> rdkafka::ClientConfig {
    let client_id = format!("pixlake-{}", pipeline.name);
    let instance = config.ingest.group_instance_id(&pipeline.name);
    let mut defaults = vec![
        ("client.id", client_id.as_str()),
        ("partition.assignment.strategy", "cooperative-sticky"),
        ("auto.offset.reset", "earliest"),
        ("session.timeout.ms", "45000"),
        ("max.poll.interval.ms", "300000"),
        // Prefetch: 32 MiB per consumer. librdkafka's 1 GiB and pixlake's former 128 MiB only
        // cost memory: with the queue backoff below, 1 000 000 events took 4.5-4.9 s with 16 or
        // 32 MiB against 5.6 s with 128 MiB, and 865 MiB peak instead of 1 018.
        ("fetch.max.bytes", "33554432"),
        ("queued.max.messages.kbytes", "32768"),
        // When the prefetch queue is at its limit, librdkafka postpones the partition's next
        // fetch by this much (1 s by default): with a small queue (ingest.memory_limit_mb) the
        // reader then starved — 1 000 000 events with a 4 MiB queue took 46.5 s, 4.4 s with
        // 10 ms (and 5.1 s with the default 128 MiB queue). A full queue means records are
        // waiting to be read anyway, so the extra fetch requests are few.
        ("fetch.queue.backoff.ms", "10"),
        // Watermarks and broker states for the metrics (lag, connectivity); 0 turns them off.
        ("statistics.interval.ms", "2000"),
    ];
    if config.ingest.static_membership {
        defaults.push(("group.instance.id", instance.as_str()));
    }
    crate::kafka::client_config(
        &config.kafka,
        crate::kafka::Role::Consumer,
        &defaults,
        &[
            ("group.id", pipeline.group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
        ],
    )
}

/// Whether a fatal consumer error means another process joined the group with this one's
/// `group.instance.id` (see the module documentation).
pub fn is_fenced(code: RDKafkaErrorCode) -> bool {
    matches!(code, RDKafkaErrorCode::FencedInstanceId | RDKafkaErrorCode::UnreleasedInstanceId)
}

/// Leaves the group on a clean stop: unsubscribes, then polls (serving the revoke callback,
/// which commits what is left) until the assignment is gone or `budget` passes. Only after
/// that does dropping the consumer close it — a static member that closed without this would
/// keep its partitions for a whole session.
pub fn leave(consumer: &BaseConsumer<EngineContext>, budget: Duration) {
    consumer.unsubscribe();
    let until = Instant::now() + budget;
    while Instant::now() < until {
        let _ = consumer.poll(Duration::from_millis(50));
        if consumer.assignment().map_or(true, |a| a.count() == 0) {
            // One more round for the LeaveGroup request librdkafka sends after unassigning.
            let _ = consumer.poll(Duration::from_millis(50));
            return;
        }
    }
}
