//! `pixlake dlq replay` after a rule is relaxed (a larger `validation.max_message_bytes` makes
//! the OVERSIZED_MESSAGE records valid): interrupted once between its two commits (SIGKILL),
//! run again, run a third time; the records end up in their category tables exactly once, out
//! of quarantine, and `audit` passes.

mod common;

use std::time::Duration;

use common::lake::{Proc, Setup, check_complete};

const RELAXED: (&str, &str) = ("PIXLAKE__VALIDATION__MAX_MESSAGE_BYTES", "4194304");

fn replay(s: &Setup) -> serde_json::Value {
    let out = s.command(&["dlq", "replay", "--rule", "OVERSIZED_MESSAGE", "--json"], &[RELAXED]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn total(report: &serde_json::Value, field: &str) -> u64 {
    report
        .as_object()
        .unwrap()
        .values()
        .map(|r| match &r[field] {
            serde_json::Value::Object(m) => m.values().map(|v| v.as_u64().unwrap()).sum(),
            v => v.as_u64().unwrap(),
        })
        .sum()
}

#[test]
fn replay_after_relaxing_a_rule_moves_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("replay", 2, dir.path());
    s.produce(6_000, 0.3, 81);
    let out = s.command(&["ingest", "--until-caught-up"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = check_complete(&s);
    let oversized: Vec<_> =
        before.quarantine_rows.iter().filter(|r| r.error_rule.as_deref() == Some("OVERSIZED_MESSAGE")).collect();
    assert!(oversized.len() >= 5, "{} oversized records", oversized.len());

    // Interrupted: killed after the rows were added to their tables, before quarantine lost them.
    let mut cmd = s.command(&["dlq", "replay", "--rule", "OVERSIZED_MESSAGE"], &[RELAXED]);
    cmd.env("PIXLAKE_PROBE", "pause:replay-inserted:1");
    let mut p = Proc::spawn(cmd);
    assert!(p.wait_for("paused at replay-inserted", Duration::from_secs(120)), "{}", p.log());
    p.kill9();

    let first = replay(&s);
    let second = replay(&s);
    assert_eq!(
        total(&first, "moved") + total(&first, "completed_from_earlier_run"),
        oversized.len() as u64,
        "{first:#}"
    );
    assert!(total(&first, "completed_from_earlier_run") > 0, "the interrupted run is completed: {first:#}");
    assert_eq!(total(&second, "moved") + total(&second, "completed_from_earlier_run"), 0, "{second:#}");

    let after = check_complete(&s);
    assert_eq!(after.total(), before.total());
    assert_eq!(after.quarantined, before.quarantined - oversized.len());
    for r in &oversized {
        let (table, _, _) = &after.contents[&r.key];
        assert_ne!(table, "pix_quarantine", "{:?} moved", r.key);
    }
    let audit = s.command(&["audit"], &[]).output().unwrap();
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
}
