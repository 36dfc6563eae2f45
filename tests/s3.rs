//! The warehouse on S3-compatible storage (the local store of `scripts/s3.sh`, moto on
//! 127.0.0.1): first the proof that the store refuses to overwrite a key on a conditional put —
//! Delta commits on S3 are exactly that, and a store that silently overwrites would let two
//! writers both "win" a version — then every command against an `s3://` warehouse.

mod common;

use std::time::Duration;

use common::lake::{Proc, Setup, check_complete, check_invariant, s3, wait_committed};
use deltalake::ObjectStoreError;
use deltalake::logstore::object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

#[test]
fn the_store_refuses_a_second_conditional_put_of_a_key() {
    s3::require();
    let run = common::unique("conditional-put");
    // The object store delta-rs commits through, configured from pixlake's own settings.
    let mut env = s3::settings();
    env.push(("PIXLAKE__WAREHOUSE__ROOT".into(), format!("s3://{}/{run}", s3::BUCKET)));
    let config = pixlake::config::Config::from_yaml("", "test", env).unwrap();
    let at = pixlake::sink::delta::Location::in_warehouse(&config.warehouse, "probe").unwrap();
    let table = at.builder().unwrap().build().unwrap();
    let store = table.log_store().object_store(None);
    let key = deltalake::Path::from("_delta_log/00000000000000000000.json");
    let create = || PutOptions { mode: PutMode::Create, ..Default::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        store.put_opts(&key, PutPayload::from_static(b"first writer"), create()).await.unwrap();
        let second = store.put_opts(&key, PutPayload::from_static(b"second writer"), create()).await;
        assert!(
            matches!(second, Err(ObjectStoreError::AlreadyExists { .. } | ObjectStoreError::Precondition { .. })),
            "a second create of the same key must be refused, got {second:?}"
        );
        let kept = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(&kept[..], b"first writer", "the first writer's version is kept");
    });
}

/// produce → ingest (kill -9 once on the way) → every operator command on an `s3://`
/// warehouse; the invariant is checked row by row on what is in the bucket.
#[test]
fn every_command_works_on_an_s3_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::on_s3("s3-commands", 2, dir.path());
    s.produce(4_000, 0.05, 51);
    let extra = [("PIXLAKE__BATCH__MAX_ROWS", "500"), ("PIXLAKE__BATCH__MAX_LATENCY_MS", "500")];

    // A daemon killed after its first commits, then a batch run that finishes the job.
    let mut p = Proc::spawn(s.traced(&["ingest"], &extra));
    assert!(p.wait_probe("committed", 3, Duration::from_secs(120)), "{}", p.log());
    p.kill9();
    check_invariant(&s);
    let run = |args: &[&str]| {
        let out = s.command(args, &[]).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{args:?}: {stderr}");
        stdout.into_owned()
    };
    run(&["ingest", "--until-caught-up"]);
    let before = check_complete(&s);
    assert_eq!(before.total(), 4_000);

    let status: serde_json::Value = serde_json::from_str(&run(&["status", "--json"])).unwrap();
    for p in status["pipelines"].as_array().unwrap() {
        assert_eq!(p["lag_records"], 0, "{p}");
        assert!(p["table"]["version"].as_u64().unwrap() > 0, "{p}");
    }
    let audit: serde_json::Value = serde_json::from_str(&run(&["audit", "--json"])).unwrap();
    assert_eq!(audit["violations"], 0, "{audit}");
    assert_eq!(audit["partitions"].as_array().unwrap().len(), 6, "{audit}");

    // Maintenance: compaction, checkpoint, vacuum (a retention below the table's: --force,
    // nothing runs beside it).
    let maintained: serde_json::Value =
        serde_json::from_str(&run(&["maintain", "--json", "--retention-hours", "0", "--force"])).unwrap();
    assert!(maintained.as_array().unwrap().iter().any(|t| t["compacted_files"].as_u64().unwrap() > 0), "{maintained}");
    assert_eq!(check_complete(&s).contents, before.contents, "maintenance changed no row");

    // A rewind of the payments by 100 records per partition, then ingest recreates them.
    run(&["offsets", "reset", "--shift-by", "-100", "--pipeline", "payments", "--execute"]);
    let rewound = check_invariant(&s);
    assert_eq!(rewound.total(), 4_000 - 200, "the rows past the new offsets are gone");
    run(&["ingest", "--until-caught-up"]);
    assert_eq!(check_complete(&s).contents, before.contents, "re-ingestion recreated the same rows");

    // dlq replay after relaxing the size limit moves the oversized records out of quarantine.
    let out = s
        .command(
            &["dlq", "replay", "--json", "--rule", "OVERSIZED_MESSAGE"],
            &[("PIXLAKE__VALIDATION__MAX_MESSAGE_BYTES", "4194304")],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = check_complete(&s);
    assert_eq!(after.total(), 4_000);
    let oversized =
        before.quarantine_rows.iter().filter(|r| r.error_rule.as_deref() == Some("OVERSIZED_MESSAGE")).count();
    assert_eq!(after.quarantined, before.quarantined - oversized, "{}", String::from_utf8_lossy(&out.stdout));
    let audit: serde_json::Value = serde_json::from_str(&run(&["audit", "--json"])).unwrap();
    assert_eq!(audit["violations"], 0, "{audit}");

    // For scripts/spark-check.sh: where Spark reads these tables (S3A) and how many rows.
    if let Some(out) = std::env::var_os("PIXLAKE_S3_TABLES_OUT") {
        let root = s.root.replacen("s3://", "s3a://", 1);
        std::fs::write(out, format!("{root} {}\n", after.total())).unwrap();
    }
}

/// `/readyz` lists the S3 warehouse, and a daemon on it ingests what arrives.
#[test]
fn a_daemon_on_s3_is_ready_and_keeps_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::on_s3("s3-daemon", 2, dir.path());
    s.produce(1_000, 0.05, 52);
    let addr = format!("127.0.0.1:{}", common::http::free_port());
    let mut p = Proc::spawn(s.traced(&["ingest"], &[("PIXLAKE__TELEMETRY__LISTEN", addr.as_str())]));
    wait_committed(&s, Duration::from_secs(120), &mut [&mut p]);
    let (code, body) = common::http::get(&addr, "/readyz").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""warehouse":"ok""#), "{body}");
    s.produce(1_000, 0.05, 53);
    wait_committed(&s, Duration::from_secs(120), &mut [&mut p]);
    p.sigterm();
    assert!(p.wait(Duration::from_secs(60)).success(), "{}", p.log());
    assert_eq!(check_complete(&s).total(), 2_000);
}
