//! The state of one pipeline between polls — owned partitions, the micro-batch, the committer
//! that owns the two table writers, the dead-letter queue — and the things that change it: a
//! record arrives, a batch is sealed and handed to the committer, its reply arrives, partitions
//! are assigned or revoked.
//!
//! The consumer's rebalance callback and the poll loop both work on this state (the callback
//! runs inside `poll`, on the same thread), so it lives behind a mutex the loop never holds
//! while polling.
//!
//! Nothing here reads the clock for a decision or talks to the consumer directly: `now` is
//! passed in ([`Now`]), the group is reached through the [`Group`] trait and dead letters
//! through [`DeadLetterQueue`], so the unit tests (`tests.rs`) build an engine over real local
//! Delta tables with a fake group and a fake DLQ, and move time forward at will.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::error::ArrowError;
use tokio::runtime::Handle;

use super::buffer::{Buffer, Counts, Record};
use super::catchup::{CatchUp, CaughtUpBy};
use super::clock::Now;
use super::committer::{Committer, Context, End, Gone, Landed, Reply, Sealed, TableCommit};
use super::group::Group;
use super::lag::PartitionLag;
use super::progress::{Progress, Table};
use super::retry::{GaveUp, Retries, Shutdown, retry};
use super::tables::Tables;
use crate::batch::FlushPolicy;
use crate::config::Pipeline;
use crate::deadletter::DeadLetterQueue;
use crate::offsets::PartitionOffsets;
use crate::pix::time::Micros;
use crate::probe::Probe;
use crate::telemetry::PipelineMetrics;

/// The txn version declaring an owned partition for which nothing was ever committed (read back
/// as "no offset": start from the earliest record).
///
/// Why declare at all: a commit is fenced only when a concurrent commit carries one of *its*
/// app ids, and after committing, the writer's base version moves to its own commit — past
/// every commit in between, judged once (`sink::delta::append`) and never again. A commit that left out an owned partition would let another
/// writer's commit for that partition slip in unnoticed (the zombie test found exactly this: a
/// partition assigned but not read yet). So each commit carries a txn for every owned partition:
/// its new offset, its unchanged one, or this marker.
pub const NEVER_COMMITTED: i64 = -1;

/// How long a rebalance callback may spend flushing or reading offsets before it gives up
/// (dropping the batch, to be re-read) so the group is not held up for longer.
pub const REBALANCE_BUDGET: Duration = Duration::from_secs(60);

/// How long a poll may wait while a batch is in flight: its reply is applied (offsets, lag, the
/// group's offsets) within this of arriving.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(10);

/// What stops a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Retrying did not succeed within the time allowed, or the failure is permanent.
    #[error("pipeline {pipeline} stopped (nothing uncommitted is lost: it is read again on the next start)")]
    GaveUp {
        pipeline: String,
        #[source]
        source: GaveUp,
    },
    #[error(transparent)]
    Committer(#[from] Gone),
    /// Building the Arrow batch failed (a bug: please report it with the log).
    #[error("pipeline {pipeline}: building the batch failed; this is a bug, please report it with the log")]
    Arrow {
        pipeline: String,
        #[source]
        source: ArrowError,
    },
}

/// How a flush ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flushed {
    /// Nothing became durable: nothing was due, or the reply that came changed nothing (a
    /// batch the engine had dropped; a give-up, returned as an error right after).
    Nothing,
    /// The rows and offsets are durable.
    Committed,
    /// Another writer committed for one of our partitions: the batch is dropped and the
    /// consumer must be recreated to start again from the offsets in Delta.
    Fenced,
}

/// What [`Engine::submit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Nothing was due for either table.
    Nothing,
    /// The batch is with the committer.
    Sent,
    /// The previous batch is still in flight: the batch stays in the buffer (pause reading).
    Busy,
    /// A reply said another writer committed for one of our partitions (see [`Flushed::Fenced`]).
    Fenced,
}

/// Totals of a pipeline's run, for the report.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub counts: Counts,
    /// Delta commits made (both tables).
    pub commits: u64,
    /// Time the committer spent on batches, from taking one to its reply (both tables at once:
    /// Parquet encoding, uploads and the log commits; retries, fences and give-ups included).
    pub commit_time: Duration,
    /// Commits refused because another writer owned a partition.
    pub fenced: u64,
    /// Assignments and revocations handled.
    pub rebalances: u64,
    /// Times the consumer was recreated to resynchronise with Delta.
    pub restarts: u64,
}

/// One pipeline's engine state.
pub struct Engine {
    pub(super) pipeline: Pipeline,
    /// Owns the tables; commits sealed batches while the poll loop reads on.
    committer: Committer,
    /// Moves whenever the engine drops what it holds: replies of older batches move no offset.
    epoch: u64,
    /// A commit moved offsets the group has not been told yet.
    group_owed: bool,
    /// A commit gave up: the pipeline's error, returned by the next [`Engine::settle`].
    failed: Option<GaveUp>,
    buffer: Buffer,
    dlq: Box<dyn DeadLetterQueue>,
    parts: BTreeMap<i32, Progress>,
    policy: FlushPolicy,
    idle_commit: Duration,
    /// Per table: when it last committed (a table receiving no rows joins a batch commit once
    /// this is `idle_commit` old) and since when its offsets trail what was read (`None`: they
    /// do not), which makes a commit due after `idle_commit`.
    last_commit: [Instant; 2],
    trailing_since: [Option<Instant>; 2],
    /// `--until-caught-up`: the targets of every partition and who reached them.
    catch_up: Option<CatchUp>,
    pub(super) shutdown: Shutdown,
    pub(super) retries: Arc<Retries>,
    pub(super) totals: Totals,
    /// Set when the consumer must be recreated (fenced, or offsets unreadable at assignment);
    /// while set, nothing is committed and revocations drop the batch.
    abandon: Option<String>,
    probe: Probe,
    /// The pipeline's metrics.
    pub(super) metrics: PipelineMetrics,
    /// Lag bookkeeping of each owned partition (same keys as `parts`).
    lags: BTreeMap<i32, PartitionLag>,
}

/// The settings an engine is built with.
pub struct EngineSettings {
    pub policy: FlushPolicy,
    pub idle_commit: Duration,
    /// `--until-caught-up`: every partition's target, read at start (`None`: run until stopped).
    pub catch_up: Option<CatchUp>,
    /// `ingest.instance_id`.
    pub instance_id: String,
    pub shutdown: Shutdown,
    pub retries: Arc<Retries>,
    /// Crash-test points (`table-committed`, `quarantine-committed`, `committed`…).
    pub probe: Probe,
    /// The pipeline's metrics.
    pub metrics: PipelineMetrics,
}

impl Engine {
    /// A pipeline's engine over opened `tables` (handed to its committer thread), created at
    /// `now`.
    pub fn new(
        pipeline: Pipeline,
        runtime: Handle,
        tables: Tables,
        buffer: Buffer,
        dlq: Box<dyn DeadLetterQueue>,
        s: EngineSettings,
        now: Instant,
    ) -> std::io::Result<Self> {
        let committer = Committer::start(
            tables,
            Context {
                pipeline: pipeline.name.clone(),
                instance_id: s.instance_id,
                runtime,
                shutdown: s.shutdown.clone(),
                retries: s.retries.clone(),
                probe: s.probe.clone(),
                metrics: s.metrics.clone(),
            },
        )?;
        Ok(Engine {
            pipeline,
            committer,
            epoch: 0,
            group_owed: false,
            failed: None,
            buffer,
            dlq,
            parts: BTreeMap::new(),
            policy: s.policy,
            idle_commit: s.idle_commit,
            last_commit: [now, now],
            trailing_since: [None, None],
            catch_up: s.catch_up,
            shutdown: s.shutdown,
            retries: s.retries,
            totals: Totals::default(),
            abandon: None,
            probe: s.probe,
            metrics: s.metrics,
            lags: BTreeMap::new(),
        })
    }

    fn arrow(&self, source: ArrowError) -> EngineError {
        EngineError::Arrow { pipeline: self.pipeline.name.clone(), source }
    }

    fn gave_up(&self, source: GaveUp) -> EngineError {
        EngineError::GaveUp { pipeline: self.pipeline.name.clone(), source }
    }

    /// Rows read and not yet durable: buffered, or in the batch in flight.
    fn show_buffered(&self) {
        self.metrics.buffered_rows.set((self.buffer.len() + self.committer.rows_in_flight()) as i64);
    }

    /// Why the consumer must be recreated, if it must.
    pub fn abandoned(&self) -> Option<&str> {
        self.abandon.as_deref()
    }

    pub(super) fn abandon(&mut self, reason: String) {
        tracing::warn!(pipeline = %self.pipeline.name, %reason, "dropping the batch; the consumer restarts from the offsets in Delta");
        self.buffer.clear();
        self.epoch += 1;
        self.metrics.buffered_rows.set(0);
        self.lags.values_mut().for_each(PartitionLag::dropped);
        self.abandon.get_or_insert(reason);
    }

    /// Forgets every partition and the batch, before a new consumer joins the group.
    pub fn reset(&mut self) {
        self.buffer.clear();
        self.epoch += 1;
        // A new consumer starts with nothing paused.
        self.paused(false);
        self.parts.clear();
        self.forget(&self.lags.keys().copied().collect::<Vec<_>>());
        self.abandon = None;
        self.totals.restarts += 1;
        self.metrics.restarts.inc();
    }

    /// Drops the per-partition series of `partitions` (no longer owned).
    fn forget(&mut self, partitions: &[i32]) {
        for p in partitions {
            if self.lags.remove(p).is_some() {
                self.metrics.forget_partition(*p);
            }
        }
        self.metrics.set_assigned(self.parts.len());
        self.show_buffered();
        for t in Table::BOTH {
            if !self.parts.values().any(|p| p.pending(t).is_some()) {
                self.trailing_since[t as usize] = None;
            }
        }
    }

    /// Publishes every owned partition's lag at `now`.
    fn publish_lag(&self, now: Micros) {
        for (p, lag) in &self.lags {
            if let Some(progress) = self.parts.get(p) {
                lag.publish(&progress.committed, now);
            }
        }
    }

    /// librdkafka statistics (every `statistics.interval.ms`): broker connections and the
    /// partitions' watermarks, then the lag gauges.
    pub fn observe(&mut self, stats: &rdkafka::Statistics, now: Micros) {
        let up = stats.brokers.values().filter(|b| b.nodeid >= 0 && b.state == "UP").count();
        self.metrics.brokers_up.set(up as i64);
        if let Some(topic) = stats.topics.get(&self.pipeline.topic) {
            for (p, lag) in &mut self.lags {
                if let Some(part) = topic.partitions.get(p) {
                    lag.watermarks(part.lo_offset, part.hi_offset);
                }
            }
        }
        self.publish_lag(now);
    }

    /// Takes one record into the batch. Records of partitions not owned (in flight across a
    /// revocation) are ignored: their new owner reads them.
    pub fn add(&mut self, record: &Record<'_>, now: Now) -> Result<(), EngineError> {
        if self.abandon.is_some() {
            return Ok(());
        }
        let Some(progress) = self.parts.get_mut(&record.partition) else {
            return Ok(());
        };
        let result = self.buffer.add(record, progress, self.dlq.as_mut(), now);
        for t in Table::BOTH {
            if self.trailing_since[t as usize].is_none() && progress.pending(t).is_some() {
                self.trailing_since[t as usize] = Some(now.at);
            }
        }
        if let Some(lag) = self.lags.get_mut(&record.partition) {
            lag.metrics.records.inc();
            lag.metrics.bytes.inc_by(record.value.map_or(0, <[u8]>::len) as u64);
            lag.read(record.offset, record.timestamp, &progress.committed);
        }
        self.show_buffered();
        result.map_err(|e| self.arrow(e))
    }

    /// The consumer reached the end of `partition` at `position`.
    pub fn reached(&mut self, partition: i32, position: i64) {
        if let Some(p) = self.parts.get_mut(&partition) {
            p.reached(position);
        }
    }

    /// How long the loop may wait for records before a flush could become due (or, with a
    /// batch in flight, before its reply is looked for).
    pub fn poll_timeout(&self, now: Instant) -> Duration {
        if self.committer.busy() {
            // Nothing can be sealed before the reply: a due batch must not turn this into a
            // spin (`poll(0)`) while the partitions are paused.
            return IN_FLIGHT_POLL;
        }
        let age = self.buffer.first().map_or(Duration::ZERO, |f| now.saturating_duration_since(f));
        self.policy.time_left(self.buffer.len(), age).min(Duration::from_millis(100))
    }

    /// Why the batch should be committed at `now`, if it should: a batch limit, or a table
    /// that has no row waiting and whose offsets have trailed what was read for `idle_commit`.
    /// (A table with rows waiting commits by the batch limits, and the trailing is counted from
    /// the first record read past the table's offset: the idle rule must not turn the first
    /// record after a quiet spell into a commit of its own.)
    pub fn due(&self, now: Instant) -> Option<&'static str> {
        let age = self.buffer.first().map_or(Duration::ZERO, |f| now.saturating_duration_since(f));
        if let Some(reason) = self.policy.check(self.buffer.len(), self.buffer.bytes(), age) {
            return Some(reason.as_str());
        }
        let waiting = |t: Table| match t {
            Table::Category => self.buffer.len() > self.buffer.quarantined(),
            Table::Quarantine => self.buffer.quarantined() > 0,
        };
        let trailing = |t: Table| {
            !waiting(t)
                && self.trailing_since[t as usize]
                    .is_some_and(|since| now.saturating_duration_since(since) >= self.idle_commit)
                && self.parts.values().any(|p| p.pending(t).is_some())
        };
        (trailing(Table::Category) || trailing(Table::Quarantine)).then_some("idle")
    }

    /// Whether this is an `--until-caught-up` run.
    pub fn until_caught_up(&self) -> bool {
        self.catch_up.is_some()
    }

    /// `--until-caught-up`: every partition's progress against its target, whoever owns it.
    pub fn catch_up(&self) -> Option<&CatchUp> {
        self.catch_up.as_ref()
    }

    /// `--until-caught-up`: whether every owned partition has been read to its target (what is
    /// left for them is a final commit).
    pub fn read_to_target(&self) -> bool {
        self.until_caught_up() && self.parts.values().all(|p| p.target.is_none() || p.read_to_target())
    }

    /// `--until-caught-up`: whether every owned partition is committed to its target.
    pub fn owned_caught_up(&self) -> bool {
        self.parts.values().all(|p| p.target.is_none() || p.caught_up())
    }

    /// `--until-caught-up`: whether every partition of the topic is committed to its target,
    /// by this process or another.
    pub fn caught_up(&self) -> bool {
        self.catch_up.as_ref().is_some_and(CatchUp::done)
    }

    /// `--until-caught-up`: the latest offsets in Delta (read by the watcher); those of
    /// partitions this process does not own tell what other writers committed.
    pub fn watched(&mut self, offsets: &PartitionOffsets) {
        let Some(catch_up) = &mut self.catch_up else { return };
        for (p, o) in offsets {
            if !self.parts.contains_key(p) {
                catch_up.observe(*p, *o, CaughtUpBy::Another);
            }
        }
    }

    /// The partitions this process owns.
    pub fn owned(&self) -> impl Iterator<Item = i32> + '_ {
        self.parts.keys().copied()
    }

    /// Whether anything is buffered or in flight, or any table's offsets trail what was read.
    pub fn has_pending(&self) -> bool {
        !self.buffer.is_empty()
            || self.committer.busy()
            || self
                .parts
                .values()
                .any(|p| p.pending(Table::Category).is_some() || p.pending(Table::Quarantine).is_some())
    }

    /// Commits the batch and waits for it: the batch in flight is acknowledged first, then
    /// dead letters, then one Delta commit per table that has rows (or, when `force` or idle
    /// for long, whose offsets trail), each carrying its `txn` offsets; then the same offsets to
    /// the Kafka group, for lag tools only.
    ///
    /// Retries storage and broker failures with backoff, keeping the batch, until `deadline`
    /// (or the shutdown grace period) passes. A fence drops the batch and asks for a consumer
    /// restart ([`Flushed::Fenced`]).
    pub fn flush(
        &mut self,
        group: &dyn Group,
        force: bool,
        reason: &'static str,
        deadline: Option<Instant>,
        now: Now,
    ) -> Result<Flushed, EngineError> {
        let drained = self.wait(group)?;
        if drained == Flushed::Fenced {
            return Ok(drained);
        }
        match self.submit(group, force, reason, deadline, now)? {
            // (Not busy after `wait`.)
            Submitted::Sent | Submitted::Busy => self.wait(group),
            Submitted::Fenced => Ok(Flushed::Fenced),
            Submitted::Nothing => Ok(drained),
        }
    }

    /// Hands the batch to the committer without waiting for it (the poll loop goes on reading
    /// meanwhile), unless one is still in flight ([`Submitted::Busy`]: the caller pauses the
    /// partitions). Replies that arrived are applied first.
    pub fn submit(
        &mut self,
        group: &dyn Group,
        force: bool,
        reason: &'static str,
        deadline: Option<Instant>,
        now: Now,
    ) -> Result<Submitted, EngineError> {
        if self.collect(group)? == Flushed::Fenced {
            return Ok(Submitted::Fenced);
        }
        if self.abandon.is_some() {
            return Ok(Submitted::Nothing);
        }
        if self.committer.busy() {
            return Ok(Submitted::Busy);
        }
        let Some(sealed) = self.seal(force, reason, deadline, now)? else {
            return Ok(Submitted::Nothing);
        };
        self.committer.send(sealed)?;
        self.show_buffered();
        self.probe.hit("sealed");
        Ok(Submitted::Sent)
    }

    /// The poll loop paused (`true`) or resumed the partitions for backpressure.
    pub fn paused(&self, paused: bool) {
        self.metrics.paused.set(i64::from(paused));
        if paused {
            self.metrics.pauses.inc();
            self.probe.hit("paused");
        }
    }

    /// Applies the committer's replies that arrived, without waiting: [`Flushed::Committed`]
    /// when a batch became durable, [`Flushed::Fenced`] when one was refused.
    pub fn collect(&mut self, group: &dyn Group) -> Result<Flushed, EngineError> {
        let mut out = Flushed::Nothing;
        while let Some(reply) = self.committer.try_reply()? {
            out = out.max(self.apply(reply));
        }
        self.settle(group)?;
        Ok(out)
    }

    /// Waits for the batch in flight, if any, and applies its reply.
    pub fn wait(&mut self, group: &dyn Group) -> Result<Flushed, EngineError> {
        let mut out = Flushed::Nothing;
        while self.committer.busy() {
            let reply = self.committer.reply()?;
            out = out.max(self.apply(reply));
        }
        self.settle(group)?;
        Ok(out)
    }

    /// Waits up to `timeout` for the batch in flight and applies its reply if it came.
    pub fn wait_within(&mut self, group: &dyn Group, timeout: Duration) -> Result<Flushed, EngineError> {
        let mut out = Flushed::Nothing;
        if self.committer.busy()
            && let Some(reply) = self.committer.reply_within(timeout)?
        {
            out = self.apply(reply);
        }
        self.settle(group)?;
        Ok(out)
    }

    /// A batch that gave up while a rebalance waited for it (its retries cut short, see
    /// [`Committer::cut_off`]) drops what the engine holds instead of stopping the pipeline.
    fn given_up_in_rebalance(&mut self) {
        if let Some(e) = self.failed.take() {
            tracing::error!(pipeline = %self.pipeline.name, error = %crate::telemetry::Chain(&e),
                "the batch in flight could not be committed within the rebalance budget; it is read again");
            self.abandon("the batch in flight could not be committed during a rebalance".into());
        }
    }

    /// After replies: the group's offsets if a commit moved them, and a commit that gave up
    /// as the pipeline's error.
    fn settle(&mut self, group: &dyn Group) -> Result<(), EngineError> {
        if std::mem::take(&mut self.group_owed) {
            self.commit_group(group);
        }
        match self.failed.take() {
            Some(e) => Err(self.gave_up(e)),
            None => Ok(()),
        }
    }

    /// Takes the batch out of the buffer for the committer, marking its offsets sealed; `None`
    /// when there is nothing to commit. Dead letters are acknowledged first (a rejected
    /// record reaches `pix.dlq` before `pix_quarantine`).
    fn seal(
        &mut self,
        force: bool,
        reason: &'static str,
        deadline: Option<Instant>,
        now: Now,
    ) -> Result<Option<Sealed>, EngineError> {
        let mut dlq_failed = 0;
        let started = Instant::now();
        let dead_letters = self.buffer.quarantined() > 0;
        if dead_letters {
            let shutdown = self.shutdown.clone();
            let deadline = move || shutdown.earliest([deadline]);
            let dlq = &mut self.dlq;
            dlq_failed = retry(
                "publishing dead letters",
                "the DLQ topic is not acknowledging; the batch is kept and nothing is committed until it does",
                self.retries.of_cause(&self.retries.dlq),
                &deadline,
                || dlq.flush(),
            )
            .map_err(|e| self.gave_up(e))?;
            if dlq_failed > 0 {
                tracing::error!(pipeline = %self.pipeline.name, failed = dlq_failed,
                    "dead letters could not be published after the producer's retries; their rows are in pix_quarantine");
            }
        }
        let acknowledged = Instant::now();
        let mut batch = self.buffer.take().map_err(|e| self.arrow(e))?;
        batch.counts.dlq_failures += dlq_failed;
        // Both kinds: refused when queued (counted by the buffer) and given up on while flushing.
        self.metrics.dlq_failures.inc_by(batch.counts.dlq_failures);
        let mut commits = Vec::new();
        for table in Table::BOTH {
            let rows = match table {
                Table::Category => batch.rows.take(),
                Table::Quarantine => batch.quarantine.take(),
            };
            let offsets: Vec<(i32, i64)> =
                self.parts.iter().filter_map(|(&p, progress)| progress.pending(table).map(|v| (p, v))).collect();
            let idle_for = now.at.saturating_duration_since(self.last_commit[table as usize]);
            if offsets.is_empty() || (rows.is_none() && !force && idle_for < self.idle_commit) {
                continue;
            }
            // Every commit declares every partition this writer owns, moved or not (see
            // `NEVER_COMMITTED`): that is what makes any other writer's commit for one of them
            // a conflict, instead of something our next commit silently absorbs. (Nothing is
            // sealed now: a batch is sealed only once the previous one was acknowledged.)
            let declared: Vec<(i32, i64)> = self
                .parts
                .iter()
                .map(|(&p, progress)| {
                    debug_assert!(progress.sealed[table as usize].is_none());
                    let moved = offsets.iter().find(|o| o.0 == p).map(|o| o.1);
                    (p, moved.or(progress.committed(table)).unwrap_or(NEVER_COMMITTED))
                })
                .collect();
            for &(p, v) in &offsets {
                if let Some(progress) = self.parts.get_mut(&p) {
                    progress.seal(table, v);
                }
            }
            self.last_commit[table as usize] = now.at;
            // The commit covers every partition's pending offset of this table.
            self.trailing_since[table as usize] = None;
            commits.push(TableCommit { table, rows, offsets, declared });
        }
        if commits.is_empty() {
            self.totals.counts.add(&batch.counts);
            self.show_buffered();
            return Ok(None);
        }
        let sealed_at = Instant::now();
        let stages = &self.metrics.stages;
        // Only batches with dead letters wait for them: the others would pull the mean to 0.
        if dead_letters {
            stages.dead_letters.observe(acknowledged.saturating_duration_since(started).as_secs_f64());
        }
        stages.seal.observe(sealed_at.saturating_duration_since(acknowledged).as_secs_f64());
        Ok(Some(Sealed { epoch: self.epoch, reason, deadline, commits, counts: batch.counts, sealed_at }))
    }

    /// Applies one reply of the committer: offsets move for what landed, a fence abandons, a
    /// give-up is kept for [`Engine::settle`]. A reply from before the engine dropped what it
    /// held (an older epoch) changes nothing but the report's totals: those partitions start
    /// again from Delta, which has the batch if it landed (see [`super::committer`]).
    fn apply(&mut self, reply: Reply) -> Flushed {
        let Reply::Done(mut done) = reply else {
            // Offsets are only asked for by `assign`, which waits for its own reply.
            return Flushed::Nothing;
        };
        // Memory only, whatever became of the batch: its buffers are the next batches'.
        for (table, rows) in std::mem::take(&mut done.spent) {
            self.buffer.recycle(table, rows);
        }
        self.metrics.stages.reply.observe(done.finished.elapsed().as_secs_f64());
        self.totals.commits += done.landed.len() as u64;
        self.totals.commit_time += done.elapsed;
        if done.epoch != self.epoch {
            let outcome = match &done.end {
                End::Complete => {
                    // Its rows are durable and are not read again by this process (the next
                    // assignment starts after them): the report counts them.
                    self.totals.counts.add(&done.counts);
                    "committed"
                }
                End::Fenced => {
                    // Still a commit Delta refused: the report counts it.
                    self.totals.fenced += 1;
                    "refused (fenced)"
                }
                End::GaveUp(_) => "given up",
            };
            tracing::debug!(pipeline = %self.pipeline.name, outcome,
                "a batch from before the engine dropped its partitions ended; they restart from the offsets in Delta");
            return Flushed::Nothing;
        }
        for landed in &done.landed {
            for &(p, v) in &landed.offsets {
                if let Some(progress) = self.parts.get_mut(&p) {
                    progress.commit(landed.table, v);
                    if let Some(c) = &mut self.catch_up {
                        c.observe(p, progress.committed, CaughtUpBy::ThisProcess);
                    }
                }
                if let Some(lag) = self.lags.get_mut(&p) {
                    lag.saved(landed.table);
                }
            }
            match landed.table {
                Table::Category => done.counts.flagged.iter().for_each(|(r, &n)| self.metrics.flagged(r, n)),
                Table::Quarantine => done.counts.rejected.iter().for_each(|(r, &n)| self.metrics.rejected(r, n)),
            }
        }
        self.show_buffered();
        match done.end {
            End::GaveUp(e) => {
                self.failed = Some(e);
                return Flushed::Nothing;
            }
            End::Fenced => {
                self.totals.fenced += 1;
                self.abandon(format!(
                    "another writer committed offsets of {} for a partition this process holds (a rebalance it \
                     has not seen yet, or an earlier attempt of this commit that did land)",
                    self.pipeline.topic
                ));
                return Flushed::Fenced;
            }
            End::Complete => {}
        }
        self.totals.counts.add(&done.counts);
        self.probe.hit("committed");
        self.group_owed = true;
        // The watermarks come with the consumer's statistics; one older than the committed
        // offset counts as no lag.
        let wall = super::clock::wall_micros();
        self.publish_lag(wall);
        self.metrics.batches.inc();
        self.metrics.last_commit.set(wall as f64 / 1e6);
        BatchCommitted {
            pipeline: &self.pipeline.name,
            reason: done.reason,
            counts: &done.counts,
            landed: &done.landed,
            parts: &self.parts,
            elapsed: done.sealed_at.elapsed(),
        }
        .log();
        Flushed::Committed
    }

    /// Sets the group's offsets to the committed (resume) offsets, for lag tools: they then
    /// show the lag `pixlake status` shows. Never read back by pixlake.
    fn commit_group(&self, group: &dyn Group) {
        let offsets: Vec<(i32, i64)> =
            self.parts.iter().filter_map(|(&p, progress)| progress.durable().map(|d| (p, d))).collect();
        if let Err(e) = group.commit_offsets(&self.pipeline.topic, &offsets) {
            // Not a retry: the next batch commits them again. Kafka lag tools show a stale lag
            // meanwhile, which is worth a line, not an error.
            tracing::info!(pipeline = %self.pipeline.name, error = %crate::telemetry::Chain(&e),
                "could not set the consumer group's offsets (used by Kafka lag tools only; the next commit sets them)");
        }
    }

    /// Partitions were assigned: read the offsets of every owned partition from Delta (after
    /// moving the writers to the latest version) and return where each new partition starts.
    ///
    /// Partitions this process already owned are checked against what it committed itself: if
    /// Delta shows another value, another writer committed for them while this one was not
    /// looking, and only a restart from Delta is safe (see `DeltaTableWriter::refresh`).
    pub fn assign(&mut self, new: &[i32], now: Now) -> Result<Vec<(i32, Option<i64>)>, EngineError> {
        self.totals.rebalances += 1;
        self.metrics.assignments.inc();
        let kept: Vec<i32> = self.parts.keys().copied().filter(|p| !new.contains(p)).collect();
        let all: Vec<i32> = kept.iter().chain(new).copied().collect();
        // The offsets come after every batch sent before (the committer answers in order): a
        // batch in flight is applied first, so what this process committed is compared with
        // Delta as it is after it.
        // A batch in flight gets the rebalance budget to land, the offset read as much again.
        let cutoff = now.at + REBALANCE_BUDGET;
        self.committer.cut_off(Some(cutoff));
        let asked = self.committer.ask_offsets(all, cutoff + REBALANCE_BUDGET);
        let offsets = asked.and_then(|()| {
            loop {
                match self.committer.reply()? {
                    Reply::Offsets(read) => break Ok(read),
                    done => {
                        self.apply(done);
                        self.given_up_in_rebalance();
                    }
                }
            }
        });
        self.committer.cut_off(None);
        let offsets = offsets?.map_err(|e| self.gave_up(e))?;
        let mut starts = Vec::with_capacity(new.len());
        for (&p, &committed) in &offsets {
            match self.parts.get(&p) {
                Some(mine) if mine.committed != committed => {
                    self.abandon(format!(
                        "partition {p} of {}: Delta has offsets {:?}/{:?}, this process committed {:?}/{:?}",
                        self.pipeline.topic,
                        committed.category,
                        committed.quarantine,
                        mine.committed.category,
                        mine.committed.quarantine
                    ));
                }
                Some(_) => {}
                None => {
                    let mut progress = Progress::assigned(committed);
                    if let Some(c) = &mut self.catch_up {
                        progress.target = c.target(p);
                        c.observe(p, committed, CaughtUpBy::Another);
                    }
                    starts.push((p, progress.start()));
                    self.lags.insert(p, PartitionLag::new(self.metrics.partition(p)));
                    self.parts.insert(p, progress);
                }
            }
        }
        self.metrics.set_assigned(self.parts.len());
        self.publish_lag(now.wall);
        if !starts.is_empty() {
            self.probe.hit("assigned");
        }
        tracing::info!(pipeline = %self.pipeline.name, group = %self.pipeline.group, assigned = ?starts, kept = ?kept,
            "partitions assigned; starting at the offsets in Delta (None = earliest)");
        Ok(starts)
    }

    /// Partitions are being taken away: commit what is buffered for them first (so the next
    /// owner starts right after it), unless the assignment is already lost — then another
    /// member may own them and the batch is dropped, to be read again by whoever owns them.
    pub fn revoke(&mut self, group: &dyn Group, revoked: &[i32], lost: bool, now: Now) {
        self.totals.rebalances += 1;
        self.metrics.revocations.inc();
        if lost {
            // A batch in flight may still land; its reply must not move offsets of partitions
            // that may be someone else's by now.
            self.epoch += 1;
            self.buffer.clear();
            for p in revoked {
                self.parts.remove(p);
            }
            self.forget(revoked);
            if !self.parts.is_empty() {
                self.abandon("the assignment was lost".into());
            }
            return;
        }
        if self.abandon.is_none() && self.has_pending() {
            let budget = now.at + REBALANCE_BUDGET;
            self.committer.cut_off(Some(budget));
            let flushed = self.flush(group, true, "rebalance", Some(budget), now);
            self.committer.cut_off(None);
            if let Err(e) = flushed {
                tracing::error!(pipeline = %self.pipeline.name, error = %crate::telemetry::Chain(&e),
                    "could not commit before giving partitions away; their next owner reads the batch again");
                self.abandon("the batch could not be committed before a rebalance".into());
            }
        }
        for p in revoked {
            self.parts.remove(p);
        }
        self.forget(revoked);
        if self.abandon.is_some() {
            // Everything buffered was dropped; the partitions still owned must restart from Delta.
            self.buffer.clear();
        }
        if !revoked.is_empty() {
            self.probe.hit("revoked");
        }
        tracing::info!(pipeline = %self.pipeline.name, revoked = ?revoked, "partitions revoked");
    }
}

/// The log line of a committed batch: one per batch, at info, with what an operator searches
/// for (pipeline, partitions and their durable offsets, rows, rejects, table versions, time).
struct BatchCommitted<'a> {
    pipeline: &'a str,
    reason: &'static str,
    counts: &'a Counts,
    /// The table commits made.
    landed: &'a [Landed],
    parts: &'a BTreeMap<i32, Progress>,
    elapsed: Duration,
}

impl BatchCommitted<'_> {
    fn log(&self) {
        let offsets: Vec<String> =
            self.parts.iter().filter_map(|(p, pr)| pr.durable().map(|d| format!("{p}:{d}"))).collect();
        let version = |t: Table| self.landed.iter().find(|c| c.table == t).map(|c| c.version);
        tracing::info!(
            pipeline = self.pipeline,
            reason = self.reason,
            partitions = self.parts.len(),
            rows = self.counts.rows,
            rejected = self.counts.quarantined(),
            table_version = version(Table::Category),
            quarantine_version = version(Table::Quarantine),
            offsets = %offsets.join(","),
            ms = self.elapsed.as_millis() as u64,
            "committed batch"
        );
    }
}
