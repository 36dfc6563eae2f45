//! The engine without a broker: real Delta tables in a temporary directory, a fake consumer
//! group and a fake dead-letter queue, and a clock the tests move. Each test is one rule of the
//! exactly-once argument (`ingest/mod.rs`) that used to be guarded only by timing-dependent
//! integration tests.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;

use super::*;
use crate::config::Config;
use crate::deadletter::DeadLetter;
use crate::ingest::buffer::Buffer;
use crate::ingest::catchup::CatchUp;
use crate::kafka::producer::ProduceError;
use crate::offsets::{AppIds, CommittedOffsets};
use crate::pix::batch::{EVENT_DATE, INGEST_DATE, QUARANTINE_TABLE};
use crate::pix::{Category, Decoder, category_schema, quarantine_schema};
use crate::sink::delta::CommitOutcome;
use crate::sink::delta::{DeltaTableWriter, Loaded, open_existing, read_offsets, scan};
use crate::telemetry::Metrics;

/// Dead letters as the fake DLQ saw them.
#[derive(Default)]
struct Letters {
    /// (partition, offset) of every dead letter queued.
    published: Vec<(i32, i64)>,
    /// Refuse every publish.
    refuse: bool,
    /// Dead letters `flush` reports as failed for good, once.
    fail_at_flush: u64,
}

struct FakeDlq(Arc<Mutex<Letters>>);

impl DeadLetterQueue for FakeDlq {
    fn publish(&mut self, letter: &DeadLetter<'_>) -> Result<(), ProduceError> {
        let mut l = self.0.lock().unwrap();
        if l.refuse {
            return Err(ProduceError::Enqueue { topic: "pix.dlq".into(), source: KafkaError::Canceled });
        }
        l.published.push((letter.source.partition, letter.source.offset));
        Ok(())
    }

    fn flush(&mut self) -> Result<u64, ProduceError> {
        Ok(std::mem::take(&mut self.0.lock().unwrap().fail_at_flush))
    }
}

/// Offsets the engine told the group, per call.
#[derive(Default)]
struct FakeGroup(RefCell<Vec<Vec<(i32, i64)>>>);

impl Group for FakeGroup {
    fn commit_offsets(&self, _topic: &str, offsets: &[(i32, i64)]) -> Result<(), KafkaError> {
        self.0.borrow_mut().push(offsets.to_vec());
        Ok(())
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    config: Config,
    engine: Engine,
    letters: Arc<Mutex<Letters>>,
    group: FakeGroup,
    /// When the engine was created: the tests' time zero.
    t0: Instant,
    valid: Vec<Vec<u8>>,
}

impl Harness {
    fn new(catch_up: Option<CatchUp>) -> Harness {
        Harness::with_probe(catch_up, Probe::default())
    }

    /// With `probe` on the commit path (`slow:encoded:MS` makes every table commit that slow).
    fn with_probe(catch_up: Option<CatchUp>, probe: Probe) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("warehouse").display().to_string();
        let config = Config::from_yaml("", "test", [("PIXLAKE__WAREHOUSE__ROOT".to_owned(), root)]).unwrap();
        let pipeline = config.pipelines[0].clone();
        assert_eq!(pipeline.category, Category::Payment);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let tables = rt.block_on(Tables::open(&config, &pipeline, &probe)).unwrap();
        let metrics = Metrics::new("test").unwrap().pipeline(&pipeline.name, &pipeline.topic, &pipeline.table);
        let decoder = Decoder::new(config.validation.max_message_bytes);
        let buffer = Buffer::new(&pipeline.name, &pipeline.topic, pipeline.category, decoder, 1024);
        let letters = Arc::new(Mutex::new(Letters::default()));
        let settings = EngineSettings {
            policy: config.batch,
            idle_commit: config.ingest.idle_commit,
            catch_up,
            instance_id: "unit".into(),
            shutdown: Shutdown::new(Arc::new(AtomicBool::new(false)), Duration::from_secs(5)),
            retries: Arc::new(Retries::of(&metrics, crate::fault::PERMANENT_ATTEMPTS)),
            probe,
            metrics,
        };
        let t0 = Instant::now();
        let dlq = Box::new(FakeDlq(letters.clone()));
        let engine = Engine::new(pipeline, rt.handle().clone(), tables, buffer, dlq, settings, t0).unwrap();
        let mut settings = crate::produce::Settings { seed: 7, ..crate::produce::Settings::default() };
        settings.invalid_ratio = 0.0;
        let valid = crate::produce::Generator::new(settings)
            .filter(|r| r.category == Category::Payment)
            .take(64)
            .map(|r| r.value)
            .collect();
        Harness { _dir: dir, rt, config, engine, letters, group: FakeGroup::default(), t0, valid }
    }

    fn at(&self, after: Duration) -> Now {
        Now { at: self.t0 + after, wall: crate::ingest::clock::wall_micros() }
    }

    fn assign(&mut self, partitions: &[i32]) -> Vec<(i32, Option<i64>)> {
        let now = self.at(Duration::ZERO);
        self.engine.assign(partitions, now).unwrap()
    }

    /// Reads the record at `offset` of `partition`: a valid payment, or bytes that are not JSON.
    fn read(&mut self, partition: i32, offset: i64, valid: bool) {
        let value = if valid { self.valid[offset as usize % self.valid.len()].clone() } else { b"{not json".to_vec() };
        let record =
            Record { partition, offset, timestamp: Some(1_700_000_000_000_000), key: None, value: Some(&value) };
        let now = self.at(Duration::ZERO);
        self.engine.add(&record, now).unwrap();
    }

    fn flush(&mut self, force: bool, after: Duration) -> Flushed {
        let now = self.at(after);
        self.engine.flush(&self.group, force, "test", None, now).unwrap()
    }

    fn location(&self, table: &str) -> crate::sink::delta::Location {
        crate::sink::delta::Location::in_warehouse(&self.config.warehouse, table).unwrap()
    }

    fn table_name(kind: Table) -> &'static str {
        match kind {
            Table::Category => "pix_payments",
            Table::Quarantine => QUARANTINE_TABLE,
        }
    }

    /// The raw txn version of `partition` in `kind` (negative ones included).
    fn raw_txn(&self, kind: Table, partition: i32) -> Option<i64> {
        let name = Self::table_name(kind);
        let table = self.rt.block_on(open_existing(name, &self.location(name))).unwrap().unwrap();
        let id = AppIds::new("payments", "pix.payments").of(kind, partition);
        self.rt.block_on(table.snapshot().unwrap().transaction_version(table.log_store().as_ref(), id)).unwrap()
    }

    /// The committed offsets as any reader sees them.
    fn committed(&self, partition: i32) -> CommittedOffsets {
        let open = |name: &str| self.rt.block_on(open_existing(name, &self.location(name))).unwrap();
        let (category, quarantine) = (open("pix_payments"), open(QUARANTINE_TABLE));
        let offsets = self
            .rt
            .block_on(read_offsets(
                AppIds::new("payments", "pix.payments"),
                &[partition],
                Loaded { name: "pix_payments", table: category.as_ref() },
                Loaded { name: QUARANTINE_TABLE, table: quarantine.as_ref() },
            ))
            .unwrap();
        offsets[&partition]
    }

    /// Offsets of the rows `kind` holds for `partition`.
    fn rows(&self, kind: Table, partition: i32) -> Vec<i64> {
        let name = Self::table_name(kind);
        let table = self.rt.block_on(open_existing(name, &self.location(name))).unwrap();
        let mut rows = self
            .rt
            .block_on(scan(name, table.as_ref(), &crate::telemetry::progress::Silent))
            .unwrap()
            .of("pix.payments", partition)
            .to_vec();
        rows.sort_unstable();
        rows
    }

    /// Another writer (the partition's new owner) commits `offset` for `partition` in `kind`.
    fn other_writer_commits(&self, kind: Table, partition: i32, offset: i64) {
        let name = Self::table_name(kind);
        let (schema, by) = match kind {
            Table::Category => (category_schema(Category::Payment), EVENT_DATE),
            Table::Quarantine => (quarantine_schema(), INGEST_DATE),
        };
        let mut w = self.rt.block_on(DeltaTableWriter::open_or_create(name, &self.location(name), schema, by)).unwrap();
        let id = AppIds::new("payments", "pix.payments").of(kind, partition);
        let out = self.rt.block_on(w.commit(vec![], vec![(id, offset)], HashMap::new())).unwrap();
        assert!(matches!(out, CommitOutcome::Committed { .. }), "{out:?}");
    }
}

#[test]
fn an_owned_partition_never_read_is_declared_minus_one_in_both_tables() {
    let mut h = Harness::new(None);
    assert_eq!(h.assign(&[0, 1]), vec![(0, None), (1, None)], "never committed: from the earliest record");
    for o in 0..3 {
        h.read(0, o, true);
    }
    h.read(0, 3, false);
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Committed);
    for kind in Table::BOTH {
        assert_eq!(h.raw_txn(kind, 0), Some(4), "{kind:?}: partition 0 moved");
        assert_eq!(h.raw_txn(kind, 1), Some(NEVER_COMMITTED), "{kind:?}: partition 1 declared, not moved");
    }
    // Read back, the declaration is "no offset": start from the earliest record.
    assert_eq!(h.committed(1), CommittedOffsets::default());
    assert_eq!(h.committed(0), CommittedOffsets::new(Some(4), Some(4)));
    assert_eq!((h.rows(Table::Category, 0), h.rows(Table::Quarantine, 0)), (vec![0, 1, 2], vec![3]));
    // The group is told where a restart would resume, for lag tools.
    assert_eq!(h.group.0.borrow().last(), Some(&vec![(0, 4)]));
}

#[test]
fn the_trailing_table_commits_after_idle_commit_and_not_before() {
    let mut h = Harness::new(None);
    let idle = h.config.ingest.idle_commit;
    h.assign(&[0]);
    for o in 0..5 {
        h.read(0, o, true);
    }
    // A batch with rows for the category table only: pix_quarantine is not committed.
    assert_eq!(h.flush(false, Duration::from_secs(1)), Flushed::Committed);
    assert_eq!(h.committed(0), CommittedOffsets::new(Some(5), None));
    assert_eq!(h.engine.due(h.t0 + idle - Duration::from_millis(1)), None, "not before idle_commit_ms");
    assert_eq!(h.flush(false, idle - Duration::from_millis(1)), Flushed::Nothing, "a flush then commits nothing");
    assert_eq!(h.engine.due(h.t0 + idle), Some("idle"));
    assert_eq!(h.flush(false, idle), Flushed::Committed);
    assert_eq!(h.committed(0), CommittedOffsets::new(Some(5), Some(5)), "the quarantine's offset caught up");
    assert!(h.rows(Table::Quarantine, 0).is_empty(), "an offset-only commit");
    assert_eq!(h.engine.due(h.t0 + idle * 3), None, "nothing trails any more");
}

#[test]
fn a_table_with_rows_waiting_commits_by_the_batch_limits_not_the_idle_rule() {
    let mut h = Harness::new(None);
    let (idle, latency) = (h.config.ingest.idle_commit, h.config.batch.max_latency);
    h.assign(&[0]);
    // Long after the last commit, one valid record arrives (read at time zero of the batch).
    let later = idle * 3;
    let value = h.valid[0].clone();
    let record = Record { partition: 0, offset: 0, timestamp: None, key: None, value: Some(&value) };
    h.engine.add(&record, h.at(later)).unwrap();
    assert_eq!(h.engine.due(h.t0 + later), None, "not committed alone");
    // pix_quarantine has nothing waiting and trails: it commits with the batch.
    assert_eq!(h.engine.due(h.t0 + later + latency), Some("latency"));
    assert_eq!(h.flush(false, later + latency), Flushed::Committed);
    assert_eq!(h.committed(0), CommittedOffsets::new(Some(1), Some(1)), "both tables, the idle one included");
}

#[test]
fn a_partition_declared_in_every_commit_fences_another_writers_commit_for_it() {
    let mut h = Harness::new(None);
    h.assign(&[0, 1]);
    h.read(0, 0, true);
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Committed);
    // Partition 1 — owned, never read — was committed by another writer meanwhile.
    h.other_writer_commits(Table::Category, 1, 5);
    h.read(0, 1, true);
    // This commit moves only partition 0, but declares partition 1 too: refused.
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Fenced);
    assert_eq!(h.rows(Table::Category, 0), vec![0]);
}

#[test]
fn a_fence_drops_the_batch_and_asks_for_a_restart() {
    let mut h = Harness::new(None);
    h.assign(&[0]);
    for o in 0..3 {
        h.read(0, o, true);
    }
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Committed);
    // The partition was given to another member, which committed past us.
    h.other_writer_commits(Table::Category, 0, 10);
    for o in 3..6 {
        h.read(0, o, true);
    }
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Fenced);
    assert!(h.engine.abandoned().is_some(), "the consumer must restart from Delta");
    assert_eq!(h.engine.buffer.len(), 0, "the batch is dropped");
    assert_eq!(h.engine.totals.fenced, 1);
    assert_eq!(h.rows(Table::Category, 0), vec![0, 1, 2], "the fenced rows never became visible");
    assert_eq!(h.committed(0).category, Some(10));
    // While abandoned, nothing more is taken or committed.
    h.read(0, 6, true);
    assert_eq!(h.engine.buffer.len(), 0);
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Nothing);
}

#[test]
fn an_assignment_whose_offsets_differ_from_what_this_process_committed_abandons() {
    let mut h = Harness::new(None);
    h.assign(&[0]);
    for o in 0..3 {
        h.read(0, o, true);
    }
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Committed);
    assert!(h.engine.abandoned().is_none());
    // Meanwhile another writer committed for partition 0 (this process missed a revocation).
    h.other_writer_commits(Table::Quarantine, 0, 8);
    // An incremental assignment keeps partition 0: its offsets are checked against ours.
    let starts = h.assign(&[1]);
    assert_eq!(starts, vec![(1, None)]);
    let why = h.engine.abandoned().expect("abandoned").to_owned();
    assert!(why.contains("partition 0") && why.contains("Some(8)"), "{why}");
}

#[test]
fn a_lost_revoke_clears_everything() {
    let mut h = Harness::new(None);
    h.assign(&[0, 1]);
    h.read(0, 0, true);
    h.read(1, 0, false);
    assert_eq!(h.engine.metrics.assigned.get(), 2);
    let now = h.at(Duration::ZERO);
    h.engine.revoke(&h.group, &[0, 1], true, now);
    assert_eq!(h.engine.owned().count(), 0);
    assert_eq!(h.engine.buffer.len(), 0, "nothing buffered survives a lost assignment");
    assert!(!h.engine.has_pending());
    assert_eq!(h.engine.metrics.assigned.get(), 0);
    assert!(h.group.0.borrow().is_empty(), "nothing committed for partitions another member may own");
    assert_eq!(h.raw_txn(Table::Category, 0), None);
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Nothing);
    // A lost revocation of part of the assignment: the rest must restart from Delta too.
    let mut h = Harness::new(None);
    h.assign(&[0, 1]);
    h.read(1, 0, true);
    let now = h.at(Duration::ZERO);
    h.engine.revoke(&h.group, &[0], true, now);
    assert!(h.engine.abandoned().is_some());
    assert_eq!(h.engine.buffer.len(), 0);
}

#[test]
fn a_revoke_commits_what_is_buffered_for_the_next_owner() {
    let mut h = Harness::new(None);
    h.assign(&[0, 1]);
    h.read(0, 0, true);
    h.read(1, 0, false);
    let now = h.at(Duration::ZERO);
    h.engine.revoke(&h.group, &[1], false, now);
    assert_eq!(h.engine.owned().collect::<Vec<_>>(), vec![0]);
    assert_eq!(h.committed(1), CommittedOffsets::new(Some(1), Some(1)), "the next owner starts after it");
    assert_eq!(h.rows(Table::Quarantine, 1), vec![0]);
}

#[test]
fn a_dlq_publish_failure_is_counted_and_the_row_still_goes_to_quarantine() {
    let mut h = Harness::new(None);
    h.letters.lock().unwrap().refuse = true;
    h.assign(&[0]);
    h.read(0, 0, false);
    h.read(0, 1, true);
    h.letters.lock().unwrap().refuse = false;
    h.read(0, 2, false);
    // One more dead letter the producer gives up on while flushing.
    h.letters.lock().unwrap().fail_at_flush = 1;
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Committed);
    assert_eq!(h.letters.lock().unwrap().published, vec![(0, 2)]);
    assert_eq!(h.rows(Table::Quarantine, 0), vec![0, 2], "both rejected records are quarantined");
    assert_eq!(h.rows(Table::Category, 0), vec![1]);
    assert_eq!(h.engine.totals.counts.dlq_failures, 2);
    assert_eq!(h.engine.metrics.dlq_failures.get(), 2, "pixlake_dlq_publish_failures_total counts both");
}

#[test]
fn until_caught_up_counts_partitions_this_process_does_not_own() {
    let targets = BTreeMap::from([(0, (0, 3)), (1, (0, 2))]);
    let mut h = Harness::new(Some(CatchUp::new(targets, &PartitionOffsets::new())));
    h.assign(&[0]);
    for o in 0..3 {
        h.read(0, o, true);
    }
    assert!(h.engine.read_to_target() && !h.engine.owned_caught_up());
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Committed);
    assert!(h.engine.owned_caught_up());
    assert!(!h.engine.caught_up(), "partition 1 is held elsewhere and behind");
    assert_eq!(h.engine.catch_up().unwrap().trailing().iter().map(|t| t.partition).collect::<Vec<_>>(), vec![1]);
    // The watcher reads what another writer committed for partition 1 (and, for partition 0,
    // a value this process's own commits already cover).
    let seen = PartitionOffsets::from([(0, CommittedOffsets::default()), (1, CommittedOffsets::new(Some(2), Some(2)))]);
    h.engine.watched(&seen);
    assert!(h.engine.caught_up());
    let by = h.engine.catch_up().unwrap().by().clone();
    assert_eq!(by, BTreeMap::from([(0, CaughtUpBy::ThisProcess), (1, CaughtUpBy::Another)]));
}

impl Harness {
    fn submit(&mut self, after: Duration) -> Submitted {
        let now = self.at(after);
        self.engine.submit(&self.group, true, "test", None, now).unwrap()
    }

    fn wait(&mut self) -> Flushed {
        self.engine.wait(&self.group).unwrap()
    }
}

/// A warehouse slow enough that a batch is still in flight when the test looks.
fn slow() -> Probe {
    Probe::parse("slow:encoded:300")
}

#[test]
fn reading_goes_on_while_the_sealed_batch_commits_and_each_range_is_committed_once() {
    let mut h = Harness::with_probe(None, slow());
    h.assign(&[0]);
    for o in 0..5 {
        h.read(0, o, o != 2);
    }
    assert_eq!(h.submit(Duration::ZERO), Submitted::Sent);
    assert!(h.engine.has_pending(), "a batch in flight is pending");
    // The next batch is read while the first is committed; it cannot be sealed before.
    for o in 5..9 {
        h.read(0, o, o != 7);
    }
    assert_eq!(h.submit(Duration::ZERO), Submitted::Busy);
    assert_eq!(h.engine.buffer.len(), 4, "the second batch stays in the buffer");
    assert_eq!(h.committed(0), CommittedOffsets::default(), "nothing durable yet");
    assert_eq!(h.wait(), Flushed::Committed);
    assert_eq!(h.committed(0), CommittedOffsets::new(Some(5), Some(5)), "the first batch's offsets, not more");
    assert_eq!(h.submit(Duration::ZERO), Submitted::Sent);
    assert_eq!(h.wait(), Flushed::Committed);
    assert!(!h.engine.has_pending());
    assert_eq!(h.committed(0), CommittedOffsets::new(Some(9), Some(9)));
    assert_eq!(h.rows(Table::Category, 0), vec![0, 1, 3, 4, 5, 6, 8]);
    assert_eq!(h.rows(Table::Quarantine, 0), vec![2, 7]);
    assert_eq!(h.engine.totals.commits, 4);
    assert_eq!(h.engine.totals.counts.rows, 7);
    assert_eq!(h.group.0.borrow().last(), Some(&vec![(0, 9)]), "the group learns the offsets on the reply");
}

/// The committer hands each written batch back, and the builders after the next seal are made
/// on its buffers (`crate::pix::reserve`): what is read then still lands, row for row.
#[test]
fn a_committed_batch_s_buffers_carry_the_batches_after_it() {
    let mut h = Harness::new(None);
    h.assign(&[0]);
    let batch = |h: &mut Harness, from: i64| {
        for o in from..from + 5 {
            h.read(0, o, o % 5 != 2);
        }
        assert_eq!(h.submit(Duration::ZERO), Submitted::Sent);
        assert_eq!(h.wait(), Flushed::Committed);
    };
    batch(&mut h, 0);
    assert_eq!(h.engine.buffer.reused_columns(), (0, 0), "the first batch's builders are fresh");
    batch(&mut h, 5);
    let expected = (category_schema(Category::Payment).fields().len() - 1, quarantine_schema().fields().len());
    assert_eq!(h.engine.buffer.reused_columns(), expected, "every column but the flag list on batch 1's buffers");
    batch(&mut h, 10);
    assert_eq!(h.engine.buffer.reused_columns(), expected);
    assert_eq!(h.rows(Table::Category, 0), [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14]);
    assert_eq!(h.rows(Table::Quarantine, 0), [2, 7, 12]);
}

#[test]
fn offsets_move_on_the_reply_not_on_the_seal() {
    let mut h = Harness::new(None);
    h.assign(&[0]);
    for o in 0..4 {
        h.read(0, o, true);
    }
    assert_eq!(h.submit(Duration::ZERO), Submitted::Sent);
    let p = h.engine.parts[&0];
    assert_eq!(p.sealed[Table::Category as usize], Some(4));
    assert_eq!(p.committed(Table::Category), None, "not durable yet as far as the engine knows");
    assert_eq!(p.pending(Table::Category), None, "the sealed range is not offered again");
    assert_eq!(h.engine.due(h.t0 + h.config.ingest.idle_commit * 2), None, "the idle rule waits for the reply");
    assert_eq!(h.wait(), Flushed::Committed);
    let p = h.engine.parts[&0];
    assert_eq!((p.sealed, p.committed), ([None, None], CommittedOffsets::new(Some(4), Some(4))));
}

#[test]
fn a_fence_drops_the_batch_in_flight_and_the_one_being_read() {
    let mut h = Harness::new(None);
    h.assign(&[0]);
    h.read(0, 0, true);
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Committed);
    // Another member owns the partition by now and committed past us.
    h.other_writer_commits(Table::Category, 0, 10);
    for o in 1..4 {
        h.read(0, o, true);
    }
    assert_eq!(h.submit(Duration::ZERO), Submitted::Sent);
    for o in 4..7 {
        h.read(0, o, o != 5);
    }
    assert_eq!(h.wait(), Flushed::Fenced);
    assert!(h.engine.abandoned().is_some(), "the consumer must restart from Delta");
    assert_eq!(h.engine.buffer.len(), 0, "the batch being read is dropped too");
    assert_eq!(h.submit(Duration::ZERO), Submitted::Nothing, "nothing is committed once abandoned");
    assert_eq!(h.rows(Table::Category, 0), vec![0], "the fenced rows never became visible");
    assert!(h.rows(Table::Quarantine, 0).is_empty());
    assert_eq!(h.engine.totals.fenced, 1);
}

#[test]
fn an_assignment_reads_offsets_after_the_batch_in_flight() {
    let mut h = Harness::with_probe(None, slow());
    h.assign(&[0]);
    for o in 0..6 {
        h.read(0, o, true);
    }
    assert_eq!(h.submit(Duration::ZERO), Submitted::Sent);
    // A rebalance adds partition 1 while the batch of partition 0 is in flight: partition 0's
    // offsets are compared with Delta after the reply, so it is not mistaken for a zombie.
    assert_eq!(h.assign(&[1]), vec![(1, None)]);
    assert!(h.engine.abandoned().is_none(), "{:?}", h.engine.abandoned());
    assert!(!h.engine.has_pending(), "the reply was applied");
    assert_eq!(h.engine.parts[&0].committed, CommittedOffsets::new(Some(6), Some(6)));
    // After a reset (the consumer recreated) with a batch in flight, the new assignment's
    // offsets are read after that batch: it starts where Delta says, past it.
    for o in 6..9 {
        h.read(0, o, true);
    }
    assert_eq!(h.submit(Duration::ZERO), Submitted::Sent);
    h.engine.reset();
    assert_eq!(h.assign(&[0]), vec![(0, Some(9))], "starts after the batch that was in flight");
    assert_eq!(h.rows(Table::Category, 0), (0..9).collect::<Vec<_>>());
}

#[test]
fn a_fence_of_a_batch_whose_partitions_were_lost_restarts_nothing() {
    let mut h = Harness::with_probe(None, slow());
    h.assign(&[0]);
    for o in 0..4 {
        h.read(0, o, true);
    }
    // The partition's new owner has committed past us: our batch will be refused.
    h.other_writer_commits(Table::Category, 0, 10);
    assert_eq!(h.submit(Duration::ZERO), Submitted::Sent);
    let now = h.at(Duration::ZERO);
    h.engine.revoke(&h.group, &[0], true, now);
    // The refusal arrives after the engine gave the partition up: nothing to abandon, no restart.
    assert_eq!(h.wait(), Flushed::Nothing);
    assert!(h.engine.abandoned().is_none(), "{:?}", h.engine.abandoned());
    assert_eq!(h.engine.totals.fenced, 1, "the refused commit is still reported");
    assert!(!h.engine.has_pending());
    assert!(h.rows(Table::Category, 0).is_empty());
    // The batch's quarantine commit (offsets only) went at the same time and nobody had
    // declared the partition there: it landed. Given back later, the partition starts where
    // Delta says, the lower of the two: records 4..10 are read again, for the quarantine only.
    assert_eq!(h.assign(&[0]), vec![(0, Some(4))]);
    assert_eq!(h.committed(0), CommittedOffsets::new(Some(10), Some(4)));
    assert!(h.rows(Table::Quarantine, 0).is_empty());
}

#[test]
fn a_revoke_waits_for_the_batch_in_flight_then_commits_the_rest_for_the_next_owner() {
    let mut h = Harness::with_probe(None, slow());
    h.assign(&[0, 1]);
    for o in 0..3 {
        h.read(0, o, true);
    }
    assert_eq!(h.submit(Duration::ZERO), Submitted::Sent);
    for o in 0..2 {
        h.read(1, o, o == 0);
    }
    h.read(0, 3, true);
    let now = h.at(Duration::ZERO);
    h.engine.revoke(&h.group, &[0], false, now);
    assert!(h.engine.abandoned().is_none(), "{:?}", h.engine.abandoned());
    assert!(!h.engine.has_pending(), "both batches committed before the partition went");
    assert_eq!(h.committed(0), CommittedOffsets::new(Some(4), Some(4)));
    assert_eq!(h.committed(1), CommittedOffsets::new(Some(2), Some(2)));
    assert_eq!(h.rows(Table::Category, 0), vec![0, 1, 2, 3]);
    assert_eq!((h.rows(Table::Category, 1), h.rows(Table::Quarantine, 1)), (vec![0], vec![1]));
    assert_eq!(h.engine.owned().collect::<Vec<_>>(), vec![1]);
}

#[test]
fn data_files_dictionary_encode_only_the_columns_with_few_values() {
    use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
    let mut h = Harness::new(None);
    h.assign(&[0]);
    for o in 0..40 {
        h.read(0, o, true);
    }
    assert_eq!(h.flush(true, Duration::ZERO), Flushed::Committed);
    let root = std::path::Path::new(&h.config.warehouse.root).join("pix_payments");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap().map(Result::unwrap) {
            let path = e.path();
            if path.is_dir() && !path.ends_with("_delta_log") {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty());
    for f in files {
        let reader = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
        let row_group = reader.metadata().row_group(0);
        let dictionary = |name: &str| {
            let column = row_group.columns().iter().find(|c| c.column_path().string() == name).unwrap();
            column.dictionary_page_offset().is_some()
        };
        assert!(dictionary("status") && dictionary("payer_ispb"), "{f:?}: few values, dictionary");
        assert!(
            !dictionary("event_id") && !dictionary("end_to_end_id") && !dictionary("kafka_offset"),
            "{f:?}: unique, plain"
        );
        assert!(reader.metadata().file_metadata().created_by().is_some_and(|c| c.starts_with("pixlake")));
    }
}

#[test]
fn a_fence_of_one_table_stops_the_other_tables_retries() {
    let mut h = Harness::with_probe(None, Probe::default());
    h.assign(&[0]);
    for o in 0..4 {
        h.read(0, o, o != 1);
    }
    // The partition's new owner has committed past us in the category table, and
    // pix_quarantine's log cannot be written (a file where its directory was): that commit
    // fails, a failure classified permanent, so it would be retried PERMANENT_ATTEMPTS times
    // (25 s or more) without the stop (no deadline, no shutdown).
    h.other_writer_commits(Table::Category, 0, 10);
    let log = h._dir.path().join("warehouse").join(QUARANTINE_TABLE).join("_delta_log");
    std::fs::rename(&log, log.with_extension("saved")).unwrap();
    std::fs::write(&log, b"not a directory").unwrap();
    assert_eq!(h.submit(Duration::ZERO), Submitted::Sent);
    // The category table's fence stops the quarantine's retries: the batch ends, fenced.
    assert_eq!(h.engine.wait_within(&h.group, Duration::from_secs(60)).unwrap(), Flushed::Fenced);
    assert!(!h.engine.committer.busy(), "the batch ended");
    let failed = h.engine.metrics.quarantine.failed.get();
    assert!((1..u64::from(crate::fault::PERMANENT_ATTEMPTS)).contains(&failed), "quarantine attempts: {failed}");
    assert_eq!(h.engine.totals.fenced, 1);
    std::fs::remove_file(&log).unwrap();
    std::fs::rename(log.with_extension("saved"), &log).unwrap();
    assert!(h.rows(Table::Quarantine, 0).is_empty());
}
