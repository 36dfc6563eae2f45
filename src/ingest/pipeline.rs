//! The poll loop of one pipeline, on its own thread: poll a record, add it to the batch, commit
//! when due, and stop cleanly on a stop request or, with `--until-caught-up`, once every
//! partition of the topic is committed to its target (or `--timeout` passes).
//!
//! The loop never holds the engine's lock while polling (the rebalance callback runs inside
//! `poll` and takes it). When the engine asks for it (fenced, offsets unreadable, assignment
//! lost), the consumer is dropped and a new one joins: every position is then derived from
//! Delta again, which is simpler and safer than repairing positions in place. With static
//! membership the new consumer takes the old one's place in the group at once.
//!
//! What the operator reads while nothing seems to happen: a pipeline with no partition says,
//! after [`QUIET`] and then every [`EVERY`], which group it waits for and why (joining; every
//! partition held by another member, named) — also in `/readyz`; an `--until-caught-up` run
//! names the partitions it waits for that other members hold, on the same schedule.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::watch;

use super::buffer::Record;
use super::catchup::Trailing;
use super::clock::Now;
use super::consumer::{self, EngineContext};
use super::engine::{Engine, EngineError, Flushed, Submitted};
use super::group;
use crate::config::Config;
use crate::kafka::diagnosis::{Diagnosed, Diagnosis};
use crate::offsets::PartitionOffsets;
use crate::telemetry::PipelineMetrics;

/// How long a pipeline may wait (for partitions, or for other members' partitions) before it
/// says why: a normal join takes a few seconds and is not worth a line.
pub const QUIET: Duration = Duration::from_secs(5);
/// How often it says it again while still waiting.
pub const EVERY: Duration = Duration::from_secs(30);
/// How long a group description may take (the loop is blocked meanwhile; it only asks while it
/// has nothing else to do or once per [`EVERY`]).
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the loop looks at whether it waits for partitions.
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// How long a consumer may hold no partition while the broker cannot even describe its group
/// before it is recreated. Seen once after a broker restart: one pipeline's consumer kept
/// failing every group request with a transport error for minutes while the other pipelines'
/// consumers, in the same process, were served again; a new consumer joins at once.
const WEDGED_AFTER: Duration = Duration::from_secs(90);
/// How long a clean stop may spend leaving the group.
const LEAVE_BUDGET: Duration = Duration::from_secs(10);
/// `FencedInstanceId` has two causes the client cannot tell apart: another process joined
/// with this one's `group.instance.id`, or **this** consumer rejoined (after a broker restart
/// or a lost session — seen in the outage test) while a request of its previous membership,
/// such as the asynchronous group offset commit, was still in flight, and the broker fenced
/// that request (librdkafka makes it fatal). Neither the member id librdkafka reports nor the
/// group description separates them reliably (a rejoin whose response was lost leaves the
/// broker with a member id the client never learnt). So a fence is forgiven this many times per
/// [`FENCE_WINDOW`] — the consumer is recreated and rejoins — and the next one stops the
/// pipeline with [`PipelineError::InstanceFenced`]. Two processes sharing an id fence each
/// other in turn; the one that was fenced first runs out first and stops, the other goes on.
/// While they alternate, Delta's txn conflict check keeps every commit exact.
const FENCES_FORGIVEN: usize = 2;
const FENCE_WINDOW: Duration = Duration::from_secs(600);

/// Why a pipeline stopped (without error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// A stop was requested; everything read was committed.
    Requested,
    /// `--until-caught-up`: every partition is committed to its target.
    CaughtUp,
    /// `--until-caught-up --timeout`: the deadline passed with these partitions short of their
    /// targets (what this process read was committed).
    TimedOut(Vec<Trailing>),
}

/// What ends a pipeline with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("pipeline {pipeline}: cannot create the Kafka consumer; check kafka.brokers and kafka.properties")]
    Consumer {
        pipeline: String,
        #[source]
        source: KafkaError,
    },
    #[error(
        "pipeline {pipeline}: the broker keeps fencing this process's group.instance.id {member} \
         (ingest.instance_id {instance_id:?}) in consumer group {group} ({code:?}): most likely another running \
         process uses the same instance id (or the broker is restarting over and over). Two running pixlake \
         processes must not share an instance id: give each its own ingest.instance_id (PIXLAKE__INGEST__INSTANCE_ID), \
         e.g. the pod name of a StatefulSet. (With group.protocol=consumer the broker also refuses a restart of this \
         instance until the crashed one's session expires; the default classic protocol does not.) Nothing was \
         committed after the fence; what this process had read is read again by the partitions' owner"
    )]
    InstanceFenced { pipeline: String, group: String, member: String, instance_id: String, code: RDKafkaErrorCode },
    #[error("pipeline {pipeline}: the Kafka consumer failed for good ({code:?}): {reason}")]
    Fatal { pipeline: String, code: RDKafkaErrorCode, reason: String },
}

fn lock(engine: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    engine.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the loop needs besides the engine.
pub struct Run {
    /// `--until-caught-up --timeout`: when to give up.
    pub deadline: Option<Instant>,
    /// `--until-caught-up`: the latest offsets in Delta of every partition, read every few
    /// seconds by a watcher task.
    pub watched: Option<watch::Receiver<PartitionOffsets>>,
    /// When the consumer was fenced lately (see [`FENCES_FORGIVEN`]).
    pub fences: Vec<Instant>,
}

/// Runs the pipeline until it stops, recreating its consumer whenever the engine asks.
pub fn run(config: &Config, engine: Arc<Mutex<Engine>>, mut run: Run) -> Result<Stopped, PipelineError> {
    let pipeline = lock(&engine).pipeline.clone();
    loop {
        let consumer = consumer::create(config, &pipeline, engine.clone())
            .map_err(|source| PipelineError::Consumer { pipeline: pipeline.name.clone(), source })?;
        consumer
            .subscribe(&[pipeline.topic.as_str()])
            .map_err(|source| PipelineError::Consumer { pipeline: pipeline.name.clone(), source })?;
        let outcome = poll_loop(config, &engine, &consumer, &mut run);
        match &outcome {
            // A clean stop leaves the group (a static member would otherwise keep its
            // partitions for a whole session); the revoke callback runs in there.
            Ok(Some(_)) => consumer::leave(&consumer, LEAVE_BUDGET),
            // Whatever is buffered was not committed: do not try again while leaving.
            Err(_) => lock(&engine).abandon("stopping after an error".into()),
            Ok(None) => {}
        }
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

/// Broker trouble reporting: the first error, then a reminder every 30 s, then the recovery —
/// an outage as an outage, a cause retrying will not cure (refused credentials, an untrusted
/// certificate, an undecodable batch) as that cause with the setting to fix, also in
/// `pixlake_kafka_problem` and `/readyz`.
#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    last_log: Option<Instant>,
    last_error: Option<Instant>,
    errors: u64,
    /// The cause last shown in the metrics.
    shown: Option<Diagnosed>,
}

/// A consumer that polled without an error this long has recovered, even on an idle partition
/// (no record, and librdkafka reports a partition's end once per offset): librdkafka retries a
/// refused connection within `reconnect.backoff.max.ms` (10 s), so a cause that persists shows
/// again well within it.
const RECOVERED_AFTER: Duration = Duration::from_secs(30);

impl Outage {
    fn error(&mut self, pipeline: &str, e: &KafkaError, diagnosed: Option<Diagnosed>, metrics: &PipelineMetrics) {
        self.errors += 1;
        let now = Instant::now();
        self.last_error = Some(now);
        let since = *self.since.get_or_insert(now);
        let changed = diagnosed.as_ref().map(|d| d.problem) != self.shown.as_ref().map(|d| d.problem);
        if changed {
            metrics.set_kafka_problem(diagnosed.as_ref());
        }
        if changed || self.last_log.is_none_or(|l| now - l >= EVERY) {
            self.last_log = Some(now);
            let down_for_s = (now - since).as_secs();
            match &diagnosed {
                Some(d) => tracing::error!(
                    pipeline,
                    down_for_s,
                    "Kafka cannot be used: {d}; retrying, but this \
                    needs a change of configuration (or on the broker)"
                ),
                None => tracing::warn!(pipeline, error = %e, down_for_s,
                    "Kafka is not serving this consumer; buffered data is kept and nothing is committed past it; retrying"),
            }
        }
        self.shown = diagnosed;
    }

    /// A poll brought nothing: after [`RECOVERED_AFTER`] without an error, the trouble is over.
    fn quiet(&mut self, pipeline: &str, diagnosis: &Diagnosis, metrics: &PipelineMetrics) {
        if self.last_error.is_some_and(|t| t.elapsed() >= RECOVERED_AFTER) {
            self.ok(pipeline, diagnosis, metrics);
        }
    }

    fn ok(&mut self, pipeline: &str, diagnosis: &Diagnosis, metrics: &PipelineMetrics) {
        self.last_error = None;
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
        // The client works: whatever was diagnosed before (a transient TLS warning…) is stale.
        diagnosis.clear();
        if self.shown.take().is_some() {
            metrics.set_kafka_problem(None);
        }
    }
}

/// When a waiting condition started and when it was last reported: the first report after
/// [`QUIET`], then one every [`EVERY`].
#[derive(Default)]
struct Reminder {
    since: Option<Instant>,
    last: Option<Instant>,
}

impl Reminder {
    /// Whether to report now, the condition holding at `now`.
    fn due(&mut self, now: Instant) -> bool {
        let since = *self.since.get_or_insert(now);
        let due = match self.last {
            None => now - since >= QUIET,
            Some(last) => now - last >= EVERY,
        };
        if due {
            self.last = Some(now);
        }
        due
    }

    /// The condition no longer holds.
    fn clear(&mut self) {
        *self = Reminder::default();
    }
}

/// How long the loop waits for the batch in flight, without polling, when the next one is due
/// before it pauses the partitions.
const WAIT_BEFORE_PAUSE: Duration = Duration::from_secs(2);

/// Backpressure: while a batch is due and the previous one is still with the committer, no
/// record is taken, so what is held stays within one batch being committed and one at its
/// limits in the buffer.
///
/// First the loop simply waits for the committer, up to [`WAIT_BEFORE_PAUSE`]: librdkafka keeps
/// the records it fetched ahead and its own threads keep the group session alive; a rebalance
/// waits that long at most, far within `max.poll.interval.ms`. A committer slower than that (a
/// slow or failing warehouse) gets the owned partitions paused instead: the loop keeps polling
/// — rebalances and `max.poll.interval.ms` are served — but no record arrives. Pausing drops
/// what librdkafka fetched ahead, which is why it is not the first resort; a resumed partition
/// is read from the position after the last record delivered (one delivered twice is dropped
/// as a redelivery).
#[derive(Default)]
struct Backpressure {
    /// The engine's rebalance count when the assignment was last paused: partitions assigned
    /// since are not paused yet.
    paused: Option<u64>,
}

impl Backpressure {
    fn holding(&self) -> bool {
        self.paused.is_some()
    }

    fn hold(&mut self, consumer: &BaseConsumer<EngineContext>, e: &Engine) {
        let rebalances = e.totals.rebalances;
        if self.paused == Some(rebalances) {
            return;
        }
        if let Ok(assignment) = consumer.assignment()
            && let Err(err) = consumer.pause(&assignment)
        {
            tracing::warn!(pipeline = %e.pipeline.name, error = %err, "could not pause the partitions; reading on");
        }
        if self.paused.is_none() {
            e.paused(true);
        }
        self.paused = Some(rebalances);
    }

    fn release(&mut self, consumer: &BaseConsumer<EngineContext>, e: &Engine) {
        if self.paused.take().is_none() {
            return;
        }
        if let Ok(assignment) = consumer.assignment()
            && let Err(err) = consumer.resume(&assignment)
        {
            tracing::warn!(pipeline = %e.pipeline.name, error = %err, "could not resume the partitions");
        }
        e.paused(false);
    }
}

/// Polls until a stop (`Some`) or until the consumer must be recreated (`None`).
///
/// Per record: one poll, one clock reading, one lock of the engine (released before the next
/// poll, which may run the rebalance callback). What is not about the record — `--until-caught-
/// up` progress, waiting explanations — is looked at every [`LOOK_EVERY`], or when the poll
/// brought no record.
fn poll_loop(
    config: &Config,
    engine: &Mutex<Engine>,
    consumer: &BaseConsumer<EngineContext>,
    run: &mut Run,
) -> Result<Option<Stopped>, PipelineError> {
    let (pipeline, metrics) = {
        let e = lock(engine);
        (e.pipeline.clone(), e.metrics.clone())
    };
    let diagnosis = &consumer.context().diagnosis;
    let name = pipeline.name.as_str();
    // Flushes give up at the `--timeout` deadline rather than retrying past it.
    let deadline = run.deadline;
    let mut outage = Outage::default();
    let (mut unassigned, mut others) = (Reminder::default(), Reminder::default());
    // Since when the group could not be described while this consumer had no partition.
    let mut undescribed_since: Option<Instant> = None;
    let mut next_look = Instant::now();
    let mut timeout = Duration::ZERO;
    let mut backpressure = Backpressure::default();
    loop {
        let polled = consumer.poll(timeout);
        let now = Now::read();
        let mut e = lock(engine);
        let quiet = match polled {
            None => {
                outage.quiet(name, diagnosis, &metrics);
                true
            }
            Some(Ok(m)) => {
                outage.ok(name, diagnosis, &metrics);
                let record = Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis().map(|ms| ms * 1000),
                    key: m.key(),
                    value: m.payload(),
                };
                e.add(&record, now)?;
                false
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                outage.ok(name, diagnosis, &metrics);
                let position = consumer
                    .position()
                    .ok()
                    .and_then(|tpl| tpl.find_partition(&pipeline.topic, p).and_then(|e| e.offset().to_raw()))
                    .unwrap_or(-1);
                e.reached(p, position);
                true
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                let member = config.ingest.group_instance_id(name);
                run.fences.retain(|t| now.at - *t < FENCE_WINDOW);
                if code == RDKafkaErrorCode::FencedInstanceId && run.fences.len() < FENCES_FORGIVEN {
                    // Most likely fenced by itself (see FENCES_FORGIVEN): join again.
                    run.fences.push(now.at);
                    tracing::warn!(pipeline = name, group = %pipeline.group, member = %member,
                        "the broker fenced this consumer's group.instance.id: after a broker restart or a lost session \
                         that is a request sent before the consumer rejoined; restarting the consumer (if another \
                         process shares ingest.instance_id, one of the two stops soon)");
                    e.abandon("fenced by the group coordinator".into());
                    return Ok(None);
                }
                let reason = consumer.client().fatal_error().map_or_else(|| format!("{code:?}"), |(_, r)| r);
                return Err(if consumer::is_fenced(code) {
                    PipelineError::InstanceFenced {
                        pipeline: name.to_owned(),
                        group: pipeline.group.clone(),
                        member,
                        instance_id: config.ingest.instance_id.clone(),
                        code,
                    }
                } else {
                    PipelineError::Fatal { pipeline: name.to_owned(), code, reason }
                });
            }
            Some(Err(err)) => {
                metrics.kafka_errors.inc();
                // Poll errors (an undecodable batch) are diagnosed here, error events (a refused
                // password) by the context's callback.
                if diagnosis.get().is_none() {
                    diagnosis.note(crate::kafka::diagnosis::code_of(&err), &err.to_string());
                }
                outage.error(name, &err, diagnosis.get(), &metrics);
                true
            }
        };
        if let Some(rx) = &mut run.watched
            && rx.has_changed().unwrap_or(false)
        {
            e.watched(&rx.borrow_and_update());
        }
        if e.abandoned().is_some() {
            return Ok(None);
        }
        if e.shutdown.requested() {
            e.flush(consumer, true, "shutdown", None, now)?;
            return Ok(if e.abandoned().is_some() { None } else { Some(Stopped::Requested) });
        }
        // The batch goes to the committer when due; reading goes on meanwhile. If the previous
        // batch is still being committed, the loop waits for it a little (see `Backpressure`),
        // then pauses the partitions until it is.
        let mut submitted = match e.due(now.at) {
            Some(reason) => e.submit(consumer, false, reason, deadline, now)?,
            None => match e.collect(consumer)? {
                Flushed::Fenced => Submitted::Fenced,
                _ => Submitted::Nothing,
            },
        };
        if submitted == Submitted::Busy && !backpressure.holding() {
            submitted = match e.wait_within(consumer, WAIT_BEFORE_PAUSE)? {
                Flushed::Fenced => Submitted::Fenced,
                _ => {
                    let now = Now::read();
                    match e.due(now.at) {
                        Some(reason) => e.submit(consumer, false, reason, deadline, now)?,
                        None => Submitted::Nothing,
                    }
                }
            };
        }
        match submitted {
            Submitted::Fenced => return Ok(None),
            Submitted::Busy => backpressure.hold(consumer, &e),
            Submitted::Sent | Submitted::Nothing => backpressure.release(consumer, &e),
        }
        timeout = e.poll_timeout(now.at);
        if !quiet && now.at < next_look {
            continue;
        }
        next_look = now.at + LOOK_EVERY;
        if e.until_caught_up() {
            if e.read_to_target()
                && !e.owned_caught_up()
                && e.has_pending()
                && e.flush(consumer, true, "caught-up", deadline, now)? == Flushed::Fenced
            {
                return Ok(None);
            }
            if e.caught_up() {
                return Ok(Some(Stopped::CaughtUp));
            }
            if deadline.is_some_and(|d| now.at >= d) {
                // What was read is committed (within the shutdown grace period) before giving up.
                let grace = Some(now.at + config.ingest.shutdown_grace);
                e.flush(consumer, true, "timeout", grace, now)?;
                if e.abandoned().is_some() {
                    return Ok(None);
                }
                if e.caught_up() {
                    return Ok(Some(Stopped::CaughtUp));
                }
                let owned: Vec<i32> = e.owned().collect();
                let mut trailing = e.catch_up().map(|c| c.trailing()).unwrap_or_default();
                trailing.iter_mut().for_each(|t| t.owned = owned.contains(&t.partition));
                return Ok(Some(Stopped::TimedOut(trailing)));
            }
        }
        let none_owned = e.owned().next().is_none();
        // `--until-caught-up`: partitions short of their targets that this process does not
        // own; someone else must commit them (or hand them over).
        let theirs: Vec<Trailing> = e
            .catch_up()
            .map(|c| c.trailing().into_iter().filter(|t| !e.owned().any(|p| p == t.partition)).collect())
            .unwrap_or_default();
        drop(e);
        if none_owned {
            others.clear();
            if unassigned.due(now.at) {
                if say_why_unassigned(engine, consumer) {
                    undescribed_since = None;
                } else if undescribed_since.get_or_insert(now.at).elapsed() >= WEDGED_AFTER
                    && consumer.context().diagnosis.get().is_none()
                {
                    tracing::warn!(pipeline = name, group = %pipeline.group,
                        "no partition and no answer about the group for {} s; recreating the consumer",
                        WEDGED_AFTER.as_secs());
                    return Ok(None);
                }
            }
        } else {
            undescribed_since = None;
            unassigned.clear();
            if theirs.is_empty() {
                others.clear();
            } else if others.due(now.at) {
                say_who_holds(engine, consumer, &theirs);
            }
        }
    }
}

/// Logs (and shows in `/readyz`) why the pipeline has no partition, from the group's
/// description; false when the broker could not describe the group.
fn say_why_unassigned(engine: &Mutex<Engine>, consumer: &BaseConsumer<EngineContext>) -> bool {
    let (pipeline, metrics) = {
        let e = lock(engine);
        (e.pipeline.clone(), e.metrics.clone())
    };
    let (why, described) = match consumer.context().diagnosis.get() {
        // The broker cannot be asked about the group either.
        Some(problem) => (format!("cannot join group {}: {problem}", pipeline.group), false),
        None => match group::describe(consumer, &pipeline.group, &pipeline.topic, DESCRIBE_TIMEOUT) {
            Ok(view) => (view.why_unassigned(&pipeline.topic), true),
            Err(e) => (format!("joining group {}: the broker did not describe the group ({e})", pipeline.group), false),
        },
    };
    tracing::info!(pipeline = %pipeline.name, group = %pipeline.group, "no partition assigned yet: {why}");
    if lock(engine).owned().next().is_none() {
        metrics.set_waiting(Some(why));
    }
    described
}

/// Logs the partitions an `--until-caught-up` run waits for that other members hold, and who
/// holds them.
fn say_who_holds(engine: &Mutex<Engine>, consumer: &BaseConsumer<EngineContext>, theirs: &[Trailing]) {
    let pipeline = lock(engine).pipeline.clone();
    let list: Vec<String> = theirs.iter().map(Trailing::to_string).collect();
    let partitions: Vec<i32> = theirs.iter().map(|t| t.partition).collect();
    let holders = match group::describe(consumer, &pipeline.group, &pipeline.topic, DESCRIBE_TIMEOUT) {
        Ok(view) => {
            let held: Vec<String> = view
                .holders(&partitions)
                .iter()
                .map(|(member, held)| super::membership::describe(member, held))
                .collect();
            if held.is_empty() {
                format!("no member holds them right now (group {} is {})", pipeline.group, view.state)
            } else {
                format!("held by {}", held.join("; "))
            }
        }
        Err(e) => format!("the broker did not describe group {} ({e})", pipeline.group),
    };
    tracing::info!(pipeline = %pipeline.name, topic = %pipeline.topic,
        "--until-caught-up waits for partitions {} of {} that this process does not own to be committed up to the \
         end seen at start; {holders}; a crashed member keeps its partitions until its session expires",
        list.join(", "), pipeline.topic);
}
