//! The committer: one thread per pipeline that owns the pipeline's two Delta writers and does
//! all the work that touches them — Parquet encoding, uploads, the log commits with their `txn`
//! actions, and the offset reads of an assignment — while the poll thread reads and decodes the
//! next batch.
//!
//! # Why overlapping keeps exactly-once
//!
//! * **One job at a time, answered in order.** Jobs run strictly in the order they were sent
//!   and their replies come back in that order. An assignment's offset read therefore always
//!   sees every commit sent before it, landed or refused: the offsets it hands librdkafka never
//!   trail a commit of this process.
//! * **At most one batch in flight.** The engine seals the next batch only once the previous
//!   one is acknowledged ([`Committer::busy`]). Each commit builds on the writer's own previous
//!   commit (its base version), exactly as when committing in place, so the zombie fence
//!   (every owned partition declared in every commit) is unchanged; a batch that is due while
//!   one is in flight waits in the buffer and the partitions are paused (backpressure).
//! * **Offsets move on the acknowledgement, not on the seal.** Sealing marks the batch's
//!   offsets as *sealed* ([`super::progress::Progress::seal`]); the committed offsets — where a
//!   restart starts, what the group is told — move when the reply says the rows are durable. A
//!   crash with a batch in flight loses memory only: the restart reads from Delta.
//! * **Epochs.** Each batch carries the engine's epoch, which moves whenever the engine drops
//!   what it holds (fenced, assignment lost, consumer recreated). A reply from an older epoch
//!   moves no offset and changes nothing else: its partitions are read again from what Delta
//!   says (which, by the first point, includes the batch if it landed).
//! * **Rebalances are not held up.** A rebalance callback that must wait for the batch in
//!   flight first cuts its retries short ([`Committer::cut_off`]): a batch that cannot be
//!   committed within the rebalance budget is given up, the engine drops what it holds, and the
//!   records are read again by whoever owns them.
//!
//! The two tables of a batch are committed at the same time, each on its own thread: they have
//! separate logs, so one may land and the other not, in either order — [`super::progress`]
//! argues why the order does not matter and a property test plays crashes between them. A
//! fence or a give-up of one stops the other's retries (not an attempt under way): the engine
//! drops the batch, and whatever landed is read back from Delta.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use tokio::runtime::Handle;

use super::buffer::Counts;
use super::progress::Table;
use super::retry::{GaveUp, Retries, Shutdown, retry};
use super::tables::{TableWriter, Tables};
use crate::offsets::PartitionOffsets;
use crate::probe::Probe;
use crate::sink::delta::CommitOutcome;
use crate::telemetry::PipelineMetrics;

/// One table's part of a sealed batch.
pub struct TableCommit {
    pub table: Table,
    /// The rows (none: an offsets-only commit).
    pub rows: Option<RecordBatch>,
    /// The partitions whose offset this commit moves, and to where.
    pub offsets: Vec<(i32, i64)>,
    /// The txn of every owned partition (moved or not): what makes another writer's commit for
    /// one of them a conflict.
    pub declared: Vec<(i32, i64)>,
}

/// A batch handed to the committer.
pub struct Sealed {
    pub epoch: u64,
    pub reason: &'static str,
    /// Give up retrying after this (besides the shutdown grace period).
    pub deadline: Option<Instant>,
    /// One per table at most (category first); committed at the same time.
    pub commits: Vec<TableCommit>,
    pub counts: Counts,
    pub sealed_at: Instant,
}

impl Sealed {
    fn rows(&self) -> usize {
        self.commits.iter().filter_map(|c| c.rows.as_ref()).map(RecordBatch::num_rows).sum()
    }
}

/// One table commit that landed.
#[derive(Debug)]
pub struct Landed {
    pub table: Table,
    pub offsets: Vec<(i32, i64)>,
    pub version: u64,
}

/// How a batch's job ended.
#[derive(Debug)]
pub enum End {
    /// Every table committed.
    Complete,
    /// Another writer committed for one of the batch's partitions; the other table's retries
    /// stopped (it may have landed).
    Fenced,
    /// Retrying did not succeed in time (or cannot); the other table's retries stopped (it may
    /// have landed).
    GaveUp(GaveUp),
}

/// The reply to a [`Sealed`] batch.
#[derive(Debug)]
pub struct Done {
    pub epoch: u64,
    pub reason: &'static str,
    pub counts: Counts,
    pub sealed_at: Instant,
    /// The tables that committed, category first (one may have despite a fence or a give-up of
    /// the other).
    pub landed: Vec<Landed>,
    pub end: End,
    /// Time spent committing (encoding, uploads, log commits, retries; both tables at once).
    pub elapsed: Duration,
    /// When the committer answered.
    pub finished: Instant,
    /// The batch's rows, written (or given up on) and held by nothing else: their buffers are
    /// the next batches' builders ([`super::buffer::Buffer::recycle`]).
    pub spent: Vec<Spent>,
}

/// A table's rows of a batch whose commit ended.
pub type Spent = (Table, RecordBatch);

enum Job {
    Commit(Box<Sealed>),
    Offsets { partitions: Vec<i32>, budget: Instant },
}

/// What the committer answers, in job order.
pub enum Reply {
    Done(Box<Done>),
    Offsets(Result<PartitionOffsets, GaveUp>),
}

/// The committer thread has stopped (it only does when it panicked: a bug).
#[derive(Debug, thiserror::Error)]
#[error("the committer thread of pipeline {0} stopped; this is a bug, please report it with the log")]
pub struct Gone(pub String);

/// What the committer thread needs besides the tables.
pub struct Context {
    pub pipeline: String,
    pub instance_id: String,
    pub runtime: Handle,
    pub shutdown: Shutdown,
    pub retries: Arc<Retries>,
    pub probe: Probe,
    pub metrics: PipelineMetrics,
}

/// The engine's end of the committer.
pub struct Committer {
    pipeline: String,
    jobs: Sender<Job>,
    replies: Receiver<Reply>,
    /// Rows of the batch in flight (`None`: none is).
    in_flight: Option<usize>,
    /// When the batch in flight must stop retrying, whatever its own deadline (shared with the
    /// thread, read before each attempt).
    cutoff: Cutoff,
}

type Cutoff = Arc<Mutex<Option<Instant>>>;

impl Committer {
    /// Starts the committer thread of `tables`. It ends when this handle is dropped (after the
    /// job it is doing).
    pub fn start(tables: Tables, cx: Context) -> std::io::Result<Self> {
        let (jobs, job_rx) = mpsc::channel();
        let (reply_tx, replies) = mpsc::channel();
        let pipeline = cx.pipeline.clone();
        let cutoff = Cutoff::default();
        let mut worker = Worker { tables, cx, cutoff: cutoff.clone() };
        std::thread::Builder::new().name(format!("pixlake-{pipeline}-commit")).spawn(move || {
            while let Ok(job) = job_rx.recv() {
                let reply = match job {
                    Job::Commit(sealed) => Reply::Done(Box::new(worker.commit(*sealed))),
                    Job::Offsets { partitions, budget } => Reply::Offsets(worker.offsets(&partitions, budget)),
                };
                if reply_tx.send(reply).is_err() {
                    break;
                }
            }
            // A checkpoint still being written finishes before the runtime can go away (within
            // bounds: one left unfinished is only written again at the next interval).
            let tables = &mut worker.tables;
            let _ = worker
                .cx
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(30), tables.settle()).await });
        })?;
        Ok(Committer { pipeline, jobs, replies, in_flight: None, cutoff })
    }

    /// From now on the batch in flight gives up retrying at `at` (`None`: at its own deadline).
    pub fn cut_off(&self, at: Option<Instant>) {
        *self.cutoff.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    fn gone(&self) -> Gone {
        Gone(self.pipeline.clone())
    }

    /// Whether a batch is in flight.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Rows of the batch in flight.
    pub fn rows_in_flight(&self) -> usize {
        self.in_flight.unwrap_or(0)
    }

    /// Hands `sealed` over (the caller checked it is not [`Committer::busy`]).
    pub fn send(&mut self, sealed: Sealed) -> Result<(), Gone> {
        debug_assert!(self.in_flight.is_none(), "one batch in flight at most");
        let rows = sealed.rows();
        self.jobs.send(Job::Commit(Box::new(sealed))).map_err(|_| self.gone())?;
        self.in_flight = Some(rows);
        Ok(())
    }

    /// Asks for the offsets of `partitions` as of the tables' latest versions (after every job
    /// sent before), retrying until `budget` at most.
    pub fn ask_offsets(&mut self, partitions: Vec<i32>, budget: Instant) -> Result<(), Gone> {
        self.jobs.send(Job::Offsets { partitions, budget }).map_err(|_| self.gone())
    }

    /// The next reply, if one is there.
    pub fn try_reply(&mut self) -> Result<Option<Reply>, Gone> {
        match self.replies.try_recv() {
            Ok(r) => Ok(Some(self.received(r))),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(self.gone()),
        }
    }

    /// The next reply, waiting for it up to `timeout`.
    pub fn reply_within(&mut self, timeout: Duration) -> Result<Option<Reply>, Gone> {
        match self.replies.recv_timeout(timeout) {
            Ok(r) => Ok(Some(self.received(r))),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(self.gone()),
        }
    }

    /// The next reply, waiting for it.
    pub fn reply(&mut self) -> Result<Reply, Gone> {
        match self.replies.recv() {
            Ok(r) => Ok(self.received(r)),
            Err(_) => Err(self.gone()),
        }
    }

    fn received(&mut self, reply: Reply) -> Reply {
        if matches!(reply, Reply::Done(_)) {
            self.in_flight = None;
        }
        reply
    }
}

/// The committer thread's state.
struct Worker {
    tables: Tables,
    cx: Context,
    cutoff: Cutoff,
}

impl Worker {
    /// Commits the tables of `sealed` at the same time (the category table on this thread,
    /// `pix_quarantine` on a scoped one), each retrying failures with backoff until the batch's
    /// deadline (or the shutdown grace period). A fence or a give-up of one stops the other's
    /// retries: the engine drops the batch either way.
    fn commit(&mut self, sealed: Sealed) -> Done {
        let started = Instant::now();
        let Sealed { epoch, reason, deadline, commits, counts, sealed_at } = sealed;
        let stages = &self.cx.metrics.stages;
        stages.queued.observe(started.saturating_duration_since(sealed_at).as_secs_f64());
        let stop = AtomicBool::new(false);
        let (shutdown, cutoff) = (self.cx.shutdown.clone(), self.cutoff.clone());
        let deadline = || {
            if stop.load(Ordering::Relaxed) {
                return Some(Instant::now());
            }
            shutdown.earliest([deadline, *cutoff.lock().unwrap_or_else(PoisonError::into_inner)])
        };
        let metadata = HashMap::from([
            ("pixlake.pipeline".to_owned(), serde_json::Value::from(self.cx.pipeline.as_str())),
            ("pixlake.reason".to_owned(), serde_json::Value::from(reason)),
            ("pixlake.instance".to_owned(), serde_json::Value::from(self.cx.instance_id.as_str())),
        ]);
        let cx = &self.cx;
        let one = |writer: TableWriter<'_>, mut c: TableCommit| {
            // A panic (a bug) stops the other table too, which the scope then waits for.
            let _stop_on_panic = StopOnPanic(&stop);
            let ended = commit_table(cx, writer, &mut c, &deadline, metadata.clone());
            if ended.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            (ended, c.rows.map(|rows| (c.table, rows)))
        };
        // Each table appears once at most in a batch (see the engine's seal).
        let mut writers = self.tables.split().map(Some);
        let mut pairs = commits.into_iter().filter_map(|c| writers[c.table as usize].take().map(|w| (w, c)));
        let ended: Vec<(Result<Landed, End>, Option<Spent>)> = match (pairs.next(), pairs.next()) {
            (None, _) => Vec::new(),
            (Some((w, c)), None) => vec![one(w, c)],
            (Some((w, c)), Some(other)) => {
                let slot = Mutex::new(Some(other));
                let take = || slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                std::thread::scope(|scope| {
                    let spawned = std::thread::Builder::new()
                        .name(format!("pixlake-{}-commit2", cx.pipeline))
                        .spawn_scoped(scope, || take().map(|(w, c)| one(w, c)));
                    let first = one(w, c);
                    let second = match spawned {
                        Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                        // No thread to spare: the second table after the first.
                        Err(_) => take().map(|(w, c)| one(w, c)),
                    };
                    [Some(first), second].into_iter().flatten().collect()
                })
            }
        };
        let (mut landed, mut end, mut spent) = (Vec::new(), End::Complete, Vec::new());
        for (e, rows) in ended {
            spent.extend(rows);
            match e {
                Ok(l) => landed.push(l),
                // A fence says more than a give-up (which may only be the other table's stop),
                // and a permanent cause more than a passing one (which may be that stop too).
                Err(End::Fenced) => end = End::Fenced,
                Err(End::GaveUp(e)) => match &end {
                    End::Complete => end = End::GaveUp(e),
                    End::GaveUp(first) if first.permanent.is_none() && e.permanent.is_some() => end = End::GaveUp(e),
                    _ => {}
                },
                Err(End::Complete) => {}
            }
        }
        let finished = Instant::now();
        let elapsed = finished.saturating_duration_since(started);
        stages.commit.observe(elapsed.as_secs_f64());
        Done { epoch, reason, counts, sealed_at, landed, end, elapsed, finished, spent }
    }

    /// Moves both writers to their tables' latest versions and reads the offsets of
    /// `partitions`, retrying until `budget` (or the shutdown grace period).
    fn offsets(&mut self, partitions: &[i32], budget: Instant) -> Result<PartitionOffsets, GaveUp> {
        let shutdown = self.cx.shutdown.clone();
        let deadline = move || shutdown.earliest([Some(budget)]);
        let (tables, runtime) = (&mut self.tables, &self.cx.runtime);
        retry(
            "reading offsets from Delta",
            "the table's log could not be read; check the warehouse storage",
            self.cx.retries.of_cause(&self.cx.retries.offsets),
            &deadline,
            || {
                runtime.block_on(async {
                    tables.refresh().await?;
                    tables.offsets(partitions).await
                })
            },
        )
    }
}

/// Commits one table's part of a batch, retrying failures with backoff until `deadline`.
fn commit_table(
    cx: &Context,
    mut writer: TableWriter<'_>,
    c: &mut TableCommit,
    deadline: &(impl Fn() -> Option<Instant> + Sync),
    metadata: HashMap<String, serde_json::Value>,
) -> Result<Landed, End> {
    let tm = match c.table {
        Table::Category => &cx.metrics.category,
        Table::Quarantine => &cx.metrics.quarantine,
    };
    let started = Instant::now();
    let mut attempt_started = started;
    let outcome = retry(
        match c.table {
            // Two names: the tables retry side by side, and /readyz keeps each one's failure
            // until that table commits.
            Table::Category => "committing to Delta",
            Table::Quarantine => "committing to Delta (quarantine)",
        },
        "the table could not be written; the batch is kept and committed once it can be",
        cx.retries.of_cause(&cx.retries.delta),
        deadline,
        || {
            attempt_started = Instant::now();
            let attempt = cx.runtime.block_on(writer.commit(c.rows.clone(), &c.declared, metadata.clone()));
            if attempt.is_err() {
                tm.failed.inc();
            }
            attempt
        },
    );
    match outcome {
        Ok(CommitOutcome::Committed { version, files, bytes, written }) => {
            let stages = &cx.metrics.stages;
            stages.parquet.observe(written.as_secs_f64());
            stages.log.observe(attempt_started.elapsed().saturating_sub(written).as_secs_f64());
            tm.committed(version, files, bytes, c.rows.as_ref(), started.elapsed(), super::clock::wall_micros());
            cx.probe.hit(match c.table {
                Table::Category => "table-committed",
                Table::Quarantine => "quarantine-committed",
            });
            Ok(Landed { table: c.table, offsets: std::mem::take(&mut c.offsets), version })
        }
        Ok(CommitOutcome::Fenced) => {
            cx.probe.hit("fenced");
            tm.fenced.inc();
            Err(End::Fenced)
        }
        Err(e) => Err(End::GaveUp(e)),
    }
}

/// Sets the flag that stops the other table's retries when dropped during a panic.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}
