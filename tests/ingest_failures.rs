//! Failures retrying does not cure: a running ingest whose table was changed by another writer
//! stops after a few attempts with exit code 2 and the reason, says so in `/readyz` and
//! `pixlake_permanent_failures_total` meanwhile, and commits nothing past what is durable.

mod common;

use std::time::{Duration, Instant};

use common::http::{free_port, get};
use common::lake::{Proc, Setup, check_invariant, wait_committed};

/// Another tool commits a new schema (one more column) to `table`, the way Spark's
/// `ALTER TABLE … ADD COLUMNS` would: the next version of the log holds a `metaData` action.
fn change_schema(s: &Setup, table: &str) {
    let log = s.warehouse.join(table).join("_delta_log");
    let mut versions: Vec<u64> = std::fs::read_dir(&log)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".json")?.parse().ok())
        .collect();
    versions.sort();
    let first = std::fs::read_to_string(log.join(format!("{:020}.json", versions[0]))).unwrap();
    let mut metadata: serde_json::Value = first
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find_map(|a| a.get("metaData").cloned())
        .unwrap();
    let mut schema: serde_json::Value = serde_json::from_str(metadata["schemaString"].as_str().unwrap()).unwrap();
    schema["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "added_by_someone_else", "type": "string", "nullable": true, "metadata": {}}));
    metadata["schemaString"] = serde_json::Value::from(schema.to_string());
    let next = versions.last().unwrap() + 1;
    let commit = serde_json::json!({"metaData": metadata}).to_string() + "\n";
    std::fs::write(log.join(format!("{next:020}.json")), commit).unwrap();
}

#[test]
fn a_table_changed_by_another_writer_stops_the_pipeline_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("changed", 2, dir.path());
    s.produce(400, 0.0, 11);
    let addr = format!("127.0.0.1:{}", free_port());
    let mut p = Proc::spawn(s.command(
        &["ingest"],
        &[
            ("PIXLAKE__TELEMETRY__LISTEN", addr.as_str()),
            ("PIXLAKE__BATCH__MAX_LATENCY_MS", "1000"),
            ("PIXLAKE__INGEST__PERMANENT_FAILURE_ATTEMPTS", "4"),
        ],
    ));
    wait_committed(&s, Duration::from_secs(120), &mut [&mut p]);
    let before = check_invariant(&s);

    change_schema(&s, "pix_payments");
    s.produce(400, 0.0, 12);

    // While it tries, /readyz names the failure and the metric counts it by cause.
    let (mut readyz, mut counted) = (None, 0u64);
    let deadline = Instant::now() + Duration::from_secs(90);
    while p.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "still running:\n{}", p.log());
        if let Ok((503, body)) = get(&addr, "/readyz") {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if let Some(f) = v["pipelines"]["payments"]["failing"].as_str() {
                readyz.get_or_insert(f.to_owned());
            }
        }
        if let Ok((200, metrics)) = get(&addr, "/metrics") {
            let series = r#"pixlake_permanent_failures_total{cause="table_changed",pipeline="payments"} "#;
            if let Some(n) = metrics.lines().find_map(|l| l.strip_prefix(series)?.parse().ok()) {
                counted = counted.max(n);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _, log) = p.finish(Duration::from_secs(5));
    assert_eq!(status.code(), Some(2), "{log}");
    let last = log.lines().rfind(|l| l.starts_with("pixlake: ")).unwrap_or_default();
    assert!(last.contains("gave up committing to Delta after 4 attempt(s) (retrying does not cure"), "{last}");
    assert!(last.contains("another writer changed the table's schema"), "the reason and the fix: {last}");
    assert!(last.contains("Metadata changed"), "delta-rs's own words: {last}");
    let readyz = readyz.unwrap_or_else(|| panic!("/readyz never named the failure:\n{log}"));
    assert!(readyz.contains("committing to Delta") && readyz.contains("another writer changed"), "{readyz}");
    assert!(counted >= 1, "pixlake_permanent_failures_total{{cause=\"table_changed\"}} never counted one");

    // Nothing was committed past what is durable: the payments offsets did not move.
    let after = check_invariant(&s);
    for (k, v) in &before.committed {
        if k.0 == s.topics[0] {
            assert_eq!(after.committed.get(k), Some(v), "{k:?} moved");
        }
    }
}
