//! `pixlake maintain` beside a running `ingest` of 500 000 events (`PIXLAKE_MAINTAIN_EVENTS`
//! changes it): compactions and checkpoints while commits land, then `audit` passes and the
//! tables are complete; vacuum refuses a retention below the table's without `--force`, and
//! with it removes the replaced files without touching the data.

mod common;

use std::time::{Duration, Instant};

use common::lake::{Proc, Setup, check_complete, check_invariant, wait_committed};

fn maintain(s: &Setup, args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["maintain", "--json"];
    all.extend_from_slice(args);
    let out = s.command(&all, &[]).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn sum(report: &serde_json::Value, field: &str) -> u64 {
    report.as_array().map_or(0, |a| a.iter().map(|t| t[field].as_u64().unwrap_or(0)).sum())
}

#[test]
fn maintenance_beside_ingest_keeps_the_invariant() {
    let n: u64 = std::env::var("PIXLAKE_MAINTAIN_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("maintain", 3, dir.path());
    s.produce(n, 0.02, 91);
    let extra = [("PIXLAKE__BATCH__MAX_ROWS", "5000"), ("PIXLAKE__BATCH__MAX_LATENCY_MS", "500")];
    // Each table commit a fifth of a second longer (about fifty batches each for payments and
    // receipts), so that several maintenance runs end while ingest still commits, however fast
    // it is.
    let mut cmd = s.command(&["ingest"], &extra);
    cmd.env("PIXLAKE_PROBE", "slow:encoded:200");
    let mut ingest = Proc::spawn(cmd);
    assert!(ingest.wait_probe("committed", 1, Duration::from_secs(120)), "{}", ingest.log());

    let highs = s.high_watermarks();
    let deadline = Instant::now() + Duration::from_secs(900);
    // Files compacted by runs that ended while ingest was still behind: beside its commits.
    let (mut runs, mut compacted, mut failures) = (0, 0, Vec::new());
    loop {
        let (code, report, err) = maintain(&s, &["--target-file-mb", "64"]);
        runs += 1;
        let this_run = if code == 0 {
            sum(&report, "compacted_files")
        } else {
            failures.push(err);
            0
        };
        if check_invariant(&s).committed == highs {
            break;
        }
        compacted += this_run;
        assert!(ingest.child.try_wait().unwrap().is_none(), "ingest exited:\n{}", ingest.log());
        assert!(Instant::now() < deadline, "ingest did not catch up:\n{}", ingest.log());
    }
    ingest.sigterm();
    let fenced = ingest.probes("fenced");
    let (status, _, log) = ingest.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    eprintln!(
        "{runs} maintenance runs, {compacted} files compacted beside ingest's commits, {} failed",
        failures.len()
    );
    assert!(compacted > 0, "compaction happened while ingest committed");
    assert!(failures.len() * 2 <= runs, "most runs succeed beside ingest: {failures:?}");
    assert_eq!(fenced, 0, "maintenance never fences ingest");

    let audit = s.command(&["audit"], &[]).output().unwrap();
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
    assert_eq!(check_complete(&s).total() as u64, n);

    // Vacuum: refused below the table's retention, done with --force, data intact.
    let (code, _, err) = maintain(&s, &["--no-compact", "--no-checkpoint", "--retention-hours", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--force"), "{err}");
    let (code, report, err) = maintain(&s, &["--retention-hours", "0", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(sum(&report, "vacuumed_files") > 0, "{report:#}");
    assert_eq!(check_complete(&s).total() as u64, n);
}

/// `ingest.maintenance_interval_ms`: maintenance runs inside ingest and the invariant holds.
#[test]
fn scheduled_maintenance_runs_inside_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("maintain-sched", 2, dir.path());
    let n = 60_000;
    s.produce(n, 0.02, 92);
    let extra = [
        ("PIXLAKE__BATCH__MAX_ROWS", "1000"),
        ("PIXLAKE__BATCH__MAX_LATENCY_MS", "200"),
        ("PIXLAKE__INGEST__MAINTENANCE_INTERVAL_MS", "1000"),
    ];
    // Commits 0.3 s longer each (about 28 batches each for payments and receipts, their two
    // tables committed side by side: eight seconds or more), so that a scheduled run ends while
    // ingest still commits, however fast it is.
    let mut cmd = s.command(&["ingest"], &extra);
    cmd.env("PIXLAKE_PROBE", "slow:encoded:300");
    let mut p = Proc::spawn(cmd);
    // A run that ends after a commit, and before the last one.
    assert!(p.wait_probe("committed", 1, Duration::from_secs(120)), "{}", p.log());
    let runs = p.probes("maintenance-done");
    assert!(p.wait_probe("maintenance-done", runs + 1, Duration::from_secs(180)), "{}", p.log());
    let during = check_invariant(&s).total();
    assert!(during < n as usize, "ingest had committed everything before maintenance ran beside it");
    wait_committed(&s, Duration::from_secs(300), &mut [&mut p]);
    p.sigterm();
    let (status, _, log) = p.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    assert_eq!(check_complete(&s).total(), n as usize);
    let audit = s.command(&["audit"], &[]).output().unwrap();
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
}
