//! `pixlake status --json` against known offsets: before any ingest (no tables, lag = every
//! record), after `ingest --until-caught-up` (committed = high watermark, lag 0, row counts equal
//! to the tables'), and after more records arrive (lag = exactly those records, with an age).

mod common;

use common::lake::{Setup, check_complete};

fn status(s: &Setup) -> serde_json::Value {
    let out = s.command(&["status", "--json"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn lag(st: &serde_json::Value) -> i64 {
    st["pipelines"].as_array().unwrap().iter().map(|p| p["lag_records"].as_i64().unwrap()).sum()
}

#[test]
fn status_reports_offsets_lag_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("status", 3, dir.path());
    s.produce(3_000, 0.05, 51);

    let before = status(&s);
    assert_eq!(lag(&before), 3_000, "{before:#}");
    assert!(before["quarantine"]["version"].is_null());
    for p in before["pipelines"].as_array().unwrap() {
        assert!(p["table"]["version"].is_null());
        for x in p["partitions"].as_array().unwrap() {
            assert!(x["committed"].is_null());
            if x["lag_records"].as_i64().unwrap() > 0 {
                assert!(x["lag_seconds"].as_f64().is_some(), "age of the oldest record: {x}");
            }
        }
    }

    let out = s.command(&["ingest", "--until-caught-up"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let checked = check_complete(&s);
    let after = status(&s);
    assert_eq!(lag(&after), 0, "{after:#}");
    let mut rows = 0;
    for p in after["pipelines"].as_array().unwrap() {
        rows += p["table"]["rows"].as_u64().unwrap();
        assert!(p["table"]["version"].as_u64().unwrap() >= 1);
        assert!(p["table"]["last_commit_ms"].as_i64().is_some());
        for x in p["partitions"].as_array().unwrap() {
            let topic = p["topic"].as_str().unwrap().to_owned();
            let n = x["partition"].as_i64().unwrap() as i32;
            assert_eq!(x["committed"].as_i64(), Some(checked.committed[&(topic, n)]), "{x}");
            assert_eq!(x["committed"], x["high"]);
            assert_eq!(x["lag_seconds"].as_f64(), Some(0.0));
        }
    }
    assert_eq!(rows as usize, checked.rows);
    assert_eq!(after["quarantine"]["rows"].as_u64().unwrap() as usize, checked.quarantined);

    s.produce(500, 0.0, 52);
    let behind = status(&s);
    assert_eq!(lag(&behind), 500, "{behind:#}");

    let human = s.command(&["status"], &[]).output().unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("pipeline payments (") && text.contains("lag_s"), "{text}");
    assert!(text.contains("pix_quarantine: version"), "{text}");
}
