//! `pixlake ingest` against the real broker: every record lands exactly once (a), two
//! instances in one group with one killed (c), SIGTERM mid-run (e). The invariant (SPEC §5) is
//! checked row by row by `common::lake`.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::lake::{Proc, Setup, check_complete, check_invariant, wait_committed};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;

fn ingest_until_caught_up(s: &Setup, extra: &[(&str, &str)]) -> serde_json::Value {
    let out = s.command(&["ingest", "--until-caught-up", "--json"], extra).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ingest failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn sum(report: &serde_json::Value, field: &str) -> u64 {
    report["pipelines"].as_array().unwrap().iter().map(|p| p[field].as_u64().unwrap()).sum()
}

/// (a) N records → exactly N rows over the category tables and pix_quarantine, each
/// (topic, partition, offset) once, rejected records with their original bytes, the same set
/// in the DLQ with its headers; a second run adds nothing.
#[test]
fn every_record_lands_exactly_once_with_rejected_bytes_intact() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("ingest-a", 3, dir.path());
    let n = 12_000;
    s.produce(n, 0.05, 21);
    let batch = [("PIXLAKE__BATCH__MAX_ROWS", "1500")];
    let report = ingest_until_caught_up(&s, &batch);
    assert_eq!(sum(&report, "records"), n, "{report}");
    let checked = check_complete(&s);
    assert_eq!(checked.total() as u64, n);
    assert_eq!(sum(&report, "rows") + sum(&report, "quarantined"), n);
    assert_eq!(checked.quarantined as u64, sum(&report, "quarantined"));
    assert!(checked.quarantined > 300 && checked.quarantined < 1000, "about 5 % rejected: {}", checked.quarantined);
    assert!(sum(&report, "commits") >= 6, "several batches: {report}");

    // Rejected rows carry the original bytes.
    let source = s.source_records();
    for row in &checked.quarantine_rows {
        assert_eq!(&row.raw_value, &source[&row.key], "raw_value of {:?}", row.key);
    }
    // The DLQ holds each rejected record (at least once) with its coordinates in headers.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("group.id", format!("{}-dlq-reader", s.run))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[s.dlq.as_str()]).unwrap();
    let mut letters: HashMap<(String, i32, i64), String> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while letters.len() < checked.quarantined && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let h = m.headers().unwrap();
            let get = |name: &str| {
                h.iter().find(|x| x.key == name).map(|x| String::from_utf8(x.value.unwrap().to_vec()).unwrap()).unwrap()
            };
            let key = (
                get("pixlake.source.topic"),
                get("pixlake.source.partition").parse().unwrap(),
                get("pixlake.source.offset").parse().unwrap(),
            );
            assert_eq!(m.payload().map(<[u8]>::to_vec), source[&key], "DLQ value is the original");
            letters.insert(key, get("pixlake.error.rule"));
        }
    }
    assert_eq!(letters.len(), checked.quarantined, "every quarantined record is in the DLQ");
    for row in &checked.quarantine_rows {
        assert_eq!(letters.get(&row.key), row.error_rule.as_ref(), "same rule in DLQ and quarantine");
    }

    // A second run finds nothing new and writes nothing.
    let again = ingest_until_caught_up(&s, &batch);
    assert_eq!(sum(&again, "rows") + sum(&again, "quarantined"), 0, "{again}");
    assert_eq!(check_complete(&s).total() as u64, n);

    // For scripts/spark-check.sh: leave the tables where Spark will read them.
    if let Some(out) = std::env::var_os("PIXLAKE_TABLES_OUT") {
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(format!("{}/.", s.warehouse.display()))
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// (c) Two instances in the same groups (eager `range` assignment, so every rebalance revokes
/// everything): one is killed with SIGKILL in the middle of a batch (one table's data files
/// written, its Delta commit not made), the other takes its partitions over and finishes: no
/// row twice, none missing.
#[test]
fn a_second_instance_takes_over_from_a_killed_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("ingest-c", 4, dir.path());
    let n = 60_000;
    let extra = [
        ("PIXLAKE__BATCH__MAX_ROWS", "2000"),
        ("PIXLAKE__BATCH__MAX_LATENCY_MS", "500"),
        ("PIXLAKE__KAFKA__CONSUMER__PARTITION_ASSIGNMENT_STRATEGY", "range"),
    ];
    // Two instances on one host: each needs its own instance id (static membership). A is
    // killed in the middle of a batch: frozen at its third table commit (the probe counts both
    // tables' commits, in every pipeline), after that table's data files are written and before
    // its Delta commit (the batch's other table may be committed already).
    let mut a_cmd = s.command(&["ingest"], &[&extra[..], &[("PIXLAKE__INGEST__INSTANCE_ID", "a")]].concat());
    a_cmd.env("PIXLAKE_PROBE", "pause:files-written:3");
    let mut a = Proc::spawn(a_cmd);
    let mut b = Proc::spawn(s.traced(&["ingest"], &[&extra[..], &[("PIXLAKE__INGEST__INSTANCE_ID", "b")]].concat()));
    // The records arrive once both instances hold partitions (B in the three groups), so that A
    // has batches of its own to pause in, whatever B managed before.
    assert!(b.wait_probe("assigned", 3, Duration::from_secs(60)), "B never assigned:\n{}", b.log());
    assert!(a.wait_probe("assigned", 1, Duration::from_secs(60)), "A never assigned:\n{}", a.log());
    s.produce(n, 0.03, 22);
    assert!(a.wait_probe("paused at files-written", 1, Duration::from_secs(120)), "A never paused:\n{}", a.log());
    let assigned_before = b.probes("assigned");
    a.kill9();
    // Records A's partitions receive after its death: only B can commit them, so the takeover
    // is needed however far A got (a fast A used to finish its partitions before the kill).
    let after = 6_000;
    s.produce(after, 0.03, 23);
    // B must end up with everything committed.
    wait_committed(&s, Duration::from_secs(240), &mut [&mut b]);
    b.sigterm();
    let (status, _, log) = b.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    assert!(
        log.lines().filter(|l| l.trim_end() == "pixlake-probe: assigned").count() > assigned_before,
        "B was assigned A's partitions after A died:\n{log}"
    );
    let checked = check_complete(&s);
    assert_eq!(checked.total() as u64, n + after);
}

/// A zombie writer: instance A stops (SIGSTOP, heartbeats included) with its data files written
/// and its Delta commit not yet made; its session expires, B takes A's partitions over and
/// commits them. A is then continued and finishes its commit attempt from its old snapshot:
/// Delta's conflict check on the partitions' app ids refuses it, A drops its batch and rejoins.
/// No row twice, none missing.
#[test]
fn a_writer_that_wakes_up_after_losing_its_partitions_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("ingest-f", 4, dir.path());
    // Produced in three parts, each when the step it feeds begins, so that no step depends on how
    // fast B is: B alone might otherwise read everything before A joins, or before it takes A's
    // partitions over, and A would have nothing to pause at, or B nothing to commit.
    let (first, for_a, for_b) = (20_000, 80_000, 12_000);
    s.produce(first, 0.03, 24);
    let extra = [("PIXLAKE__BATCH__MAX_ROWS", "1000"), ("PIXLAKE__BATCH__MAX_LATENCY_MS", "300")];
    let mut b =
        Proc::spawn(s.traced(&["ingest", "--json"], &[&extra[..], &[("PIXLAKE__INGEST__INSTANCE_ID", "b")]].concat()));
    assert!(b.wait_probe("assigned", 1, Duration::from_secs(60)), "{}", b.log());
    let mut a_cmd = s.command(&["ingest", "--json"], &[&extra[..], &[("PIXLAKE__INGEST__INSTANCE_ID", "a")]].concat());
    a_cmd.env("PIXLAKE_PROBE", "pause:files-written:2");
    let mut a = Proc::spawn(a_cmd);
    assert!(a.wait_probe("assigned", 1, Duration::from_secs(60)), "A was never assigned:\n{}", a.log());
    // Records on A's partitions now: A has batches to write and pause in.
    s.produce(for_a, 0.03, 25);
    assert!(a.wait_probe("paused at files-written", 1, Duration::from_secs(120)), "A never paused:\n{}", a.log());
    // A is stopped; after its session times out (6 s) B is assigned A's partitions in all three
    // pipelines (non-empty assignments; the empty ones are the cooperative protocol's second
    // round) and commits them.
    let taken = b.probes("assigned");
    assert!(
        b.wait_probe("assigned", taken + 3, Duration::from_secs(60)),
        "B never took A's partitions over:\n{}",
        b.log()
    );
    // Twelve batches' worth more (1 000 rows each), for the commits B must make now.
    let commits = b.probes("committed");
    s.produce(for_b, 0.03, 26);
    assert!(
        b.wait_probe("committed", commits + 6, Duration::from_secs(60)),
        "B did not commit after the takeover:\n{}",
        b.log()
    );
    a.signal(libc::SIGCONT);
    assert!(
        a.wait_probe("fenced", 1, Duration::from_secs(60)),
        "A's stale commit was not fenced:\n{}\n===== B =====\n{}",
        a.log(),
        b.log()
    );
    wait_committed(&s, Duration::from_secs(180), &mut [&mut a, &mut b]);
    a.sigterm();
    b.sigterm();
    let (status_a, out_a, log_a) = a.finish(Duration::from_secs(60));
    let (status_b, _, log_b) = b.finish(Duration::from_secs(60));
    assert!(status_a.success() && status_b.success(), "{log_a}\n{log_b}");
    let report: serde_json::Value = serde_json::from_str(&out_a).unwrap();
    assert!(sum(&report, "fenced") >= 1, "{report}");
    assert_eq!(check_complete(&s).total() as u64, first + for_a + for_b);
}

/// (e) SIGTERM mid-run: exit 0 within the grace period, the buffered batch committed (batches
/// are otherwise only committed after 10 minutes here), nothing lost on the next start.
#[test]
fn sigterm_commits_what_is_buffered_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("ingest-e", 3, dir.path());
    let n = 20_000;
    s.produce(n, 0.05, 23);
    let extra = [
        ("PIXLAKE__BATCH__MAX_ROWS", "10000000"),
        ("PIXLAKE__BATCH__MAX_LATENCY_MS", "600000"),
        ("PIXLAKE__INGEST__IDLE_COMMIT_MS", "600000"),
        ("PIXLAKE__INGEST__SHUTDOWN_GRACE_MS", "20000"),
        // No size limit either (the default memory limit makes batches of a few MiB).
        ("PIXLAKE__INGEST__MEMORY_LIMIT_MB", "0"),
    ];
    let mut p = Proc::spawn(s.traced(&["ingest", "--json"], &extra));
    assert!(p.wait_probe("assigned", 3, Duration::from_secs(60)), "{}", p.log());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(check_invariant(&s).total(), 0, "nothing committed before the stop");
    let asked = Instant::now();
    p.sigterm();
    let (status, stdout, log) = p.finish(Duration::from_secs(60));
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(asked.elapsed() < Duration::from_secs(20), "within the grace period: {:?}", asked.elapsed());
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let committed = sum(&report, "rows") + sum(&report, "quarantined");
    assert!(committed > 0, "the buffered batch was committed on the way out: {report}");
    let checked = check_invariant(&s);
    assert_eq!(checked.total() as u64, committed);
    // The next start finishes the job: nothing lost, nothing doubled.
    ingest_until_caught_up(&s, &[]);
    assert_eq!(check_complete(&s).total() as u64, n);
}

/// A second SIGTERM while the shutdown commit cannot finish (its dead letters go to a topic
/// that does not exist, so the DLQ never acknowledges) exits at once with 130 instead of
/// waiting out the grace period; nothing is half-committed and the next run completes.
#[test]
fn a_second_sigterm_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("ingest-twice", 1, dir.path());
    s.produce(600, 0.2, 25);
    let missing_dlq = format!("{}.no-such-dlq", s.run);
    let extra = [
        ("PIXLAKE__DLQ__TOPIC", missing_dlq.as_str()),
        ("PIXLAKE__BATCH__MAX_LATENCY_MS", "600000"),
        ("PIXLAKE__INGEST__IDLE_COMMIT_MS", "600000"),
        ("PIXLAKE__INGEST__SHUTDOWN_GRACE_MS", "60000"),
    ];
    let mut p = Proc::spawn(s.traced(&["ingest"], &extra));
    assert!(p.wait_probe("assigned", 1, Duration::from_secs(60)), "{}", p.log());
    std::thread::sleep(Duration::from_secs(3));
    p.sigterm();
    assert!(p.wait_probe("stop-requested", 1, Duration::from_secs(10)), "{}", p.log());
    std::thread::sleep(Duration::from_secs(2));
    assert!(p.child.try_wait().unwrap().is_none(), "still committing (the DLQ cannot acknowledge):\n{}", p.log());
    let asked = Instant::now();
    p.sigterm();
    let (status, _, log) = p.finish(Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(asked.elapsed() < Duration::from_secs(10), "at once: {:?}", asked.elapsed());
    // It says what it leaves uncommitted: the rows of the pipelines.
    assert!(log.contains("without committing the rows read since the last commit (payments: "), "{log}");
    check_invariant(&s);
    ingest_until_caught_up(&s, &[]);
    assert_eq!(check_complete(&s).total() as u64, 600);
}
