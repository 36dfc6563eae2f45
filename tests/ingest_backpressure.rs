//! Backpressure against the real broker, with a deliberately slow warehouse
//! (`PIXLAKE_PROBE=slow:encoded:MS` adds MS to every table commit):
//!
//! (a) while the committer is the bottleneck, reading pauses and the resident size stays under
//!     `ingest.memory_limit_mb` as the lag grows; afterwards a normal run catches up, exact;
//! (b) `kill -9` while the partitions are paused, and while a sealed batch is with the
//!     committer (the poll loop reading the next one): the invariant holds row by row after
//!     every kill, and the tables end complete;
//! (c) a second instance joins while the first one's partitions are paused: the rebalance is
//!     served during the pause and every record lands once.

mod common;

use std::time::{Duration, Instant};

use common::lake::{Proc, Setup, check_complete, check_invariant};

/// The process's resident size in bytes (`VmRSS`), `None` once it is gone.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn a_slow_warehouse_pauses_reading_and_memory_stays_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("backpressure-a", 3, dir.path());
    // About 210 MB of record values (about three times that once decoded and encoded): reading
    // everything ahead of a slow warehouse would exceed the limit.
    let n = 300_000u64;
    s.produce(n, 0.02, 41);
    let limit_mb = 512u64;
    let limit = limit_mb.to_string();
    let mut cmd = s.command(&["ingest"], &[("PIXLAKE__INGEST__MEMORY_LIMIT_MB", limit.as_str())]);
    cmd.env("PIXLAKE_PROBE", "slow:encoded:3000");
    let p = Proc::spawn(cmd);
    let pid = p.child.id();
    let (mut peak, until) = (0u64, Instant::now() + Duration::from_secs(25));
    while Instant::now() < until {
        match rss(pid) {
            Some(r) => peak = peak.max(r),
            None => panic!("ingest exited:\n{}", p.log()),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(p.probes("paused") >= 1, "the slow warehouse never paused reading:\n{}", p.log());
    let lagging = check_invariant(&s).total() as u64;
    assert!(lagging < n, "the lag grew while the warehouse was slow ({lagging} of {n} durable)");
    p.sigterm();
    let (status, _, log) = p.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    eprintln!("peak resident size {} MiB with ingest.memory_limit_mb = {limit_mb}", peak >> 20);
    assert!(peak <= limit_mb << 20, "peak resident size {} MiB is over the limit of {limit_mb} MiB", peak >> 20);
    // The warehouse is fast again: everything lands, once.
    let out = s.command(&["ingest", "--until-caught-up"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(check_complete(&s).total() as u64, n);
}

#[test]
fn kill_9_while_paused_and_while_a_batch_is_sealed_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("backpressure-b", 3, dir.path());
    let n = 60_000u64;
    s.produce(n, 0.03, 42);
    let extra = [("PIXLAKE__BATCH__MAX_ROWS", "2000"), ("PIXLAKE__BATCH__MAX_LATENCY_MS", "500")];
    let moments = [
        // Commits slower than the loop waits before pausing: frozen with the partitions paused.
        ("slow:encoded:2500,pause:paused:4", "paused"),
        ("slow:encoded:2500,pause:paused:9", "paused"),
        // A batch just handed to the committer, the next one being read.
        ("pause:sealed:2", "sealed"),
        ("pause:sealed:5", "sealed"),
        ("slow:encoded:2500,pause:sealed:3", "sealed"),
    ];
    for (i, (probe, point)) in moments.iter().enumerate() {
        let mut cmd = s.command(&["ingest"], &extra);
        cmd.env("PIXLAKE_PROBE", probe);
        let mut p = Proc::spawn(cmd);
        assert!(
            p.wait_probe(&format!("paused at {point}"), 1, Duration::from_secs(90)),
            "{probe}: never reached:\n{}",
            p.log()
        );
        assert!(p.child.try_wait().unwrap().is_none(), "ingest exited before the kill:\n{}", p.log());
        p.kill9();
        let checked = check_invariant(&s);
        eprintln!("kill {} frozen at {point} ({probe}): {} rows durable, invariant holds", i + 1, checked.total());
    }
    let out = s.command(&["ingest", "--until-caught-up"], &extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(check_complete(&s).total() as u64, n);
}

#[test]
fn a_rebalance_while_paused_keeps_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("backpressure-c", 4, dir.path());
    let n = 40_000u64;
    s.produce(n, 0.03, 43);
    let extra = [("PIXLAKE__BATCH__MAX_ROWS", "2000"), ("PIXLAKE__BATCH__MAX_LATENCY_MS", "500")];
    let mut a_cmd = s.command(&["ingest"], &[&extra[..], &[("PIXLAKE__INGEST__INSTANCE_ID", "a")]].concat());
    a_cmd.env("PIXLAKE_PROBE", "slow:encoded:2500");
    let mut a = Proc::spawn(a_cmd);
    assert!(a.wait_probe("paused", 1, Duration::from_secs(90)), "A never paused:\n{}", a.log());
    // A second instance joins while A's partitions are paused: A gives some away (committing
    // what it holds for them first), B reads them, A resumes what it keeps.
    let mut b = Proc::spawn(s.traced(&["ingest"], &[&extra[..], &[("PIXLAKE__INGEST__INSTANCE_ID", "b")]].concat()));
    assert!(a.wait_probe("revoked", 1, Duration::from_secs(90)), "A gave nothing away:\n{}", a.log());
    common::lake::wait_committed(&s, Duration::from_secs(300), &mut [&mut a, &mut b]);
    a.sigterm();
    b.sigterm();
    let (status_a, _, log_a) = a.finish(Duration::from_secs(60));
    let (status_b, _, log_b) = b.finish(Duration::from_secs(60));
    assert!(status_a.success() && status_b.success(), "{log_a}\n===== B =====\n{log_b}");
    assert!(log_b.contains("pixlake-probe: assigned"), "B took partitions:\n{log_b}");
    assert_eq!(check_complete(&s).total() as u64, n);
}
