//! `pixlake offsets reset` on the real broker: a dry run changes nothing; the reset refuses while
//! ingest runs; `--to-datetime` into the middle of ingested data removes the rows past the new
//! offsets in the same commit that moves them, `audit` passes, and re-ingestion recreates those
//! rows exactly once and identical to before.

mod common;

use std::time::Duration;

use common::lake::{Proc, Setup, check_complete, check_invariant};
use pixlake::pix::time::format_rfc3339;

fn reset(s: &Setup, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["offsets", "reset"];
    all.extend_from_slice(args);
    let out = s.command(&all, &[]).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ingest(s: &Setup) {
    let out = s.command(&["ingest", "--until-caught-up"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn reset_to_a_datetime_rewinds_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("reset", 2, dir.path());
    s.produce(1_500, 0.05, 71);
    std::thread::sleep(Duration::from_millis(1500));
    let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    let middle = format_rfc3339(now_us);
    std::thread::sleep(Duration::from_millis(1500));
    s.produce(1_500, 0.05, 72);
    ingest(&s);
    let before = check_complete(&s);

    // Dry run: a plan, nothing changed.
    let (code, plan, err) = reset(&s, &["--to-datetime", &middle, "--json"]);
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let moves = plan.as_array().unwrap();
    assert_eq!(moves.len(), 6, "3 pipelines × 2 partitions");
    let replaced: u64 = moves.iter().map(|m| m["replaced_rows"].as_u64().unwrap()).sum();
    assert_eq!(replaced, 1_500, "the second half is replaced: {plan:#}");
    for m in moves {
        assert!(m["new"].as_i64().unwrap() <= m["current"].as_i64().unwrap());
        assert_eq!(m["skipped_records"], 0);
    }
    assert_eq!(check_invariant(&s).contents, before.contents, "the dry run changed nothing");

    // Refused while an ingest holds a group — here only the last pipeline's: every group is
    // checked before anything moves, so the first two pipelines are not rewound either.
    let mut running = Proc::spawn(s.traced(&["ingest", "--pipeline", "refunds"], &[]));
    assert!(running.wait_probe("assigned", 1, Duration::from_secs(60)), "{}", running.log());
    let (code, _, err) = reset(&s, &["--to-datetime", &middle, "--execute"]);
    assert_eq!(code, 2, "refused: {err}");
    assert!(err.contains("live member") && err.contains("refunds"), "{err}");
    assert_eq!(check_invariant(&s).contents, before.contents, "a refused reset changed nothing");
    // A pipeline that does not exist is named with the known ones, not silently skipped.
    let (code, _, err) = reset(&s, &["--to-earliest", "--pipeline", "paymets"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(r#"no pipeline named "paymets"; the known ones are: payments, receipts, refunds"#), "{err}");
    running.sigterm();
    assert!(running.wait(Duration::from_secs(60)).success());

    // Applied: rows past the new offsets are gone in the same commits that moved the offsets.
    let (code, out, err) = reset(&s, &["--to-datetime", &middle, "--execute"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied"), "{out}");
    let rewound = check_invariant(&s);
    assert_eq!(rewound.total(), 1_500);
    for m in moves {
        let key = (m["topic"].as_str().unwrap().to_owned(), m["partition"].as_i64().unwrap() as i32);
        assert_eq!(rewound.committed[&key], m["new"].as_i64().unwrap());
    }
    let audit = s.command(&["audit"], &[]).output().unwrap();
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));

    // Re-ingestion recreates exactly the removed rows, identical to before.
    ingest(&s);
    let after = check_complete(&s);
    assert_eq!(after.total(), 3_000);
    assert_eq!(after.contents, before.contents, "same rows, same tables, same values");

    // A chosen skip: 300 new records jumped over with --to-latest; audit knows it was chosen.
    s.produce(300, 0.0, 73);
    let (code, out, err) = reset(&s, &["--to-latest", "--execute", "--json"]);
    assert_eq!(code, 0, "{err}");
    let skipped: i64 = serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["skipped_records"].as_i64().unwrap())
        .sum();
    assert_eq!(skipped, 300);
    let audit = s.command(&["audit", "--json"], &[]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert!(audit.status.success(), "{report:#}");
    let gap: u64 = report["partitions"].as_array().unwrap().iter().map(|p| p["chosen_gap"].as_u64().unwrap()).sum();
    assert_eq!(gap, 300, "{report:#}");
}
