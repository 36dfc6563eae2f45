//! Several `pixlake ingest` instances in the same consumer groups, writing one warehouse on
//! S3-compatible storage: Kafka spreads the partitions, Delta's conditional commits and the txn
//! app ids keep every record exactly once while instances come and go (SIGTERM, `kill -9`, a
//! new one, a restarted one) and `maintain` compacts beside them. `status` names the instance
//! holding each partition.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::lake::{Proc, Setup, check_complete, check_invariant, wait_committed};

/// Which instance `status --json` says holds each partition (`None`: nobody now).
fn owners(s: &Setup) -> Vec<Option<String>> {
    let out = s.command(&["status", "--json"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["partitions"].as_array().unwrap().iter())
        .map(|x| x["owner"]["instance"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until every partition of every pipeline is held by one of `instances`.
fn wait_owned_by(s: &Setup, instances: &[&str], procs: &mut [&mut Proc]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = owners(s);
        if now.iter().all(|o| o.as_deref().is_some_and(|o| instances.contains(&o))) {
            let seen: BTreeSet<&str> = now.iter().flatten().map(String::as_str).collect();
            eprintln!("partitions held by {seen:?}");
            return;
        }
        let exited = procs.iter_mut().any(|p| p.child.try_wait().unwrap().is_some());
        assert!(!exited && Instant::now() < deadline, "owners {now:?}, expected among {instances:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn instances_come_and_go_on_s3_and_every_record_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::on_s3("scale-out", 6, dir.path());
    s.produce(24_000, 0.02, 61);
    let start = |id: &str| {
        let extra = [
            ("PIXLAKE__BATCH__MAX_ROWS", "2000"),
            ("PIXLAKE__BATCH__MAX_LATENCY_MS", "500"),
            ("PIXLAKE__INGEST__INSTANCE_ID", id),
        ];
        Proc::spawn(s.traced(&["ingest", "--json"], &extra))
    };
    let (mut a, mut b, mut c) = (start("a"), start("b"), start("c"));
    wait_owned_by(&s, &["a", "b", "c"], &mut [&mut a, &mut b, &mut c]);

    // Maintenance beside the three writers, all along the churn below.
    let maintenance = {
        let cmd = |s: &Setup| s.command(&["maintain", "--json", "--target-file-mb", "16", "--no-vacuum"], &[]);
        let s = s.clone();
        std::thread::spawn(move || {
            let (mut runs, mut compacted, mut failed) = (0, 0, Vec::new());
            for _ in 0..4 {
                let out = cmd(&s).output().unwrap();
                runs += 1;
                if out.status.success() {
                    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                    compacted +=
                        v.as_array().unwrap().iter().map(|t| t["compacted_files"].as_u64().unwrap()).sum::<u64>();
                } else {
                    failed.push(String::from_utf8_lossy(&out.stderr).into_owned());
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            (runs, compacted, failed)
        })
    };

    // Churn: one instance leaves cleanly, a new one joins, one is killed and comes back under
    // its own instance id (a static member takes its place at once), records keep arriving.
    s.produce(12_000, 0.02, 62);
    b.sigterm();
    let (status, stdout, log) = b.finish(Duration::from_secs(60));
    assert!(status.success(), "b stops cleanly:\n{log}");
    let b_report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(b_report["pipelines"].as_array().unwrap().iter().all(|p| p["stopped"] == "requested"), "{b_report}");
    let mut d = start("d");
    check_invariant(&s);
    // c is killed as it starts a table commit, which the records arriving now give it (it would
    // otherwise likely be idle, its share of the first records long committed).
    let encoded = c.probes("encoded");
    s.produce(12_000, 0.02, 63);
    assert!(c.wait_probe("encoded", encoded + 1, Duration::from_secs(60)), "c had nothing to commit:\n{}", c.log());
    c.kill9();
    let mut c = start("c");
    wait_committed(&s, Duration::from_secs(300), &mut [&mut a, &mut c, &mut d]);
    wait_owned_by(&s, &["a", "c", "d"], &mut [&mut a, &mut c, &mut d]);

    let (runs, compacted, failed) = maintenance.join().unwrap();
    eprintln!("maintain beside the writers: {runs} runs, {compacted} files compacted, {} failed", failed.len());
    assert!(failed.is_empty(), "maintenance failed beside the writers: {failed:?}");

    let mut fenced = 0;
    for p in [a, c, d] {
        p.sigterm();
        let (status, stdout, log) = p.finish(Duration::from_secs(60));
        assert!(status.success(), "no pipeline stopped on a failed commit:\n{log}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        fenced += v["pipelines"].as_array().unwrap().iter().map(|p| p["fenced"].as_u64().unwrap_or(0)).sum::<u64>();
    }
    eprintln!("commits fenced across the churn: {fenced}");
    assert_eq!(check_complete(&s).total(), 48_000);
    let audit = s.command(&["audit", "--json"], &[]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert!(audit.status.success() && v["violations"] == 0, "{v}");
}
