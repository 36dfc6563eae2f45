//! The Delta sink on the local filesystem: tables created with the SPEC schema, commits that
//! carry the offsets with the rows, offsets read back after a reopen, and the zombie fence.

use std::collections::HashMap;

use deltalake::DeltaTable;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pixlake::offsets::{AppIds, Table};
use pixlake::pix::time::parse_rfc3339;
use pixlake::pix::{Category, CategoryBatchBuilder, Decoder, KafkaMeta, category_schema, quarantine_schema};
use pixlake::sink::delta::{CommitOutcome, DeltaTableWriter, SinkError, written_offsets};
use url::Url;

const PAYMENT: &[u8] = include_bytes!("data/payment.json");

fn batch(offsets: std::ops::Range<i64>) -> deltalake::arrow::record_batch::RecordBatch {
    let now = parse_rfc3339("2026-11-22T00:00:00Z").unwrap();
    let ev = Decoder::default().decode(Some(PAYMENT), Some(Category::Payment), now).unwrap();
    let mut b = CategoryBatchBuilder::new(Category::Payment, 16);
    for offset in offsets {
        let meta = KafkaMeta { topic: "pix.payments", partition: 0, offset, timestamp: Some(now) };
        b.append(&ev, &meta, now).unwrap();
    }
    b.finish().unwrap()
}

fn url(dir: &std::path::Path, name: &str) -> Url {
    deltalake::ensure_table_uri(dir.join(name).to_str().unwrap()).unwrap()
}

fn at(dir: &std::path::Path, name: &str) -> pixlake::sink::delta::Location {
    pixlake::sink::delta::Location::from_url(url(dir, name))
}

async fn payments(dir: &std::path::Path) -> DeltaTableWriter {
    open_payments(dir).await.unwrap()
}

/// Opens (creating on first use) `pix_payments` under `dir`, or says why it cannot.
async fn open_payments(dir: &std::path::Path) -> Result<DeltaTableWriter, SinkError> {
    DeltaTableWriter::open_or_create(
        "pix_payments",
        &at(dir, "pix_payments"),
        category_schema(Category::Payment),
        "event_date",
    )
    .await
}

/// Rows in the table's current files, read with the plain Parquet reader.
async fn rows(dir: &std::path::Path) -> usize {
    let table = deltalake::open_table(url(dir, "pix_payments")).await.unwrap();
    let mut n = 0;
    for uri in table.get_file_uris().unwrap() {
        let path = Url::parse(&uri).map(|u| u.to_file_path().unwrap()).unwrap_or_else(|_| uri.clone().into());
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap().build().unwrap();
        n += reader.map(|b| b.unwrap().num_rows()).sum::<usize>();
    }
    n
}

fn app_id(pipeline: &str, topic: &str, partition: i32) -> String {
    AppIds::new(pipeline, topic).of(Table::Category, partition)
}

/// The category offsets of payments partitions 0 and 1 as `w` sees its table.
async fn committed(w: &DeltaTableWriter) -> Vec<Option<i64>> {
    let writers = [(Table::Category, Some(w)), (Table::Quarantine, None)];
    let o = written_offsets(AppIds::new("payments", "pix.payments"), &[0, 1], writers).await.unwrap();
    vec![o[&0].category, o[&1].category]
}

/// Writers racing to create one table (three pipelines share `pix_quarantine`): one creation
/// commits version 0, the others open it — no second creation at version 1 — and every writer
/// commits on top.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_racing_to_create_a_table_all_commit_on_one_creation() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let writers = futures::future::join_all((0..4).map(|_| {
            let location = at(dir.path(), "pix_payments");
            tokio::spawn(async move {
                DeltaTableWriter::open_or_create(
                    "pix_payments",
                    &location,
                    category_schema(Category::Payment),
                    "event_date",
                )
                .await
                .unwrap()
            })
        }))
        .await;
        let log = dir.path().join("pix_payments/_delta_log");
        let mut versions: Vec<String> = std::fs::read_dir(&log)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        versions.sort();
        assert_eq!(versions, ["00000000000000000000.json"], "round {round}: one creation");
        for (i, w) in writers.into_iter().enumerate() {
            let mut w = w.unwrap();
            let offsets = vec![(app_id(&format!("p{i}"), "pix.payments", 0), 10)];
            let outcome = w.commit(vec![batch(0..10)], offsets, HashMap::new()).await.unwrap();
            assert!(matches!(outcome, CommitOutcome::Committed { .. }), "round {round}, writer {i}: {outcome:?}");
        }
    }
}

#[tokio::test]
async fn offsets_commit_with_the_rows_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = payments(dir.path()).await;
    let ids = [app_id("payments", "pix.payments", 0), app_id("payments", "pix.payments", 1)];
    assert_eq!(committed(&w).await, vec![None, None]);
    let v0 = w.version().unwrap();

    let out = w.commit(vec![batch(0..10)], vec![(ids[0].clone(), 10)], HashMap::new()).await.unwrap();
    let CommitOutcome::Committed { version, files, bytes, .. } = out else { panic!("fenced: {out:?}") };
    assert_eq!(version, v0 + 1);
    // The commit reports the Parquet files it added (the metrics count them).
    assert!(files >= 1 && bytes > 0, "{files} files, {bytes} bytes");
    let out =
        w.commit(vec![batch(10..15)], vec![(ids[0].clone(), 15), (ids[1].clone(), 3)], HashMap::new()).await.unwrap();
    assert!(matches!(out, CommitOutcome::Committed { version, .. } if version == v0 + 2), "{out:?}");
    assert_eq!(committed(&w).await, vec![Some(15), Some(3)]);

    // A new process sees the same offsets and the same rows.
    let reopened = payments(dir.path()).await;
    assert_eq!(committed(&reopened).await, vec![Some(15), Some(3)]);
    assert_eq!(rows(dir.path()).await, 15);
    // Partitioned by the São Paulo date of event_time.
    let table: DeltaTable = deltalake::open_table(url(dir.path(), "pix_payments")).await.unwrap();
    let parts = table.snapshot().unwrap().metadata().partition_columns().to_vec();
    assert_eq!(parts, vec!["event_date".to_owned()]);
}

#[tokio::test]
async fn a_zombie_writer_is_fenced_by_the_txn_conflict_check() {
    let dir = tempfile::tempdir().unwrap();
    let p0 = app_id("payments", "pix.payments", 0);
    let p1 = app_id("payments", "pix.payments", 1);
    // Both read the table before either commits: the second is the zombie.
    let mut owner = payments(dir.path()).await;
    let mut zombie = payments(dir.path()).await;
    assert!(matches!(
        owner.commit(vec![batch(0..4)], vec![(p0.clone(), 4)], HashMap::new()).await.unwrap(),
        CommitOutcome::Committed { .. }
    ));
    assert_eq!(
        zombie.commit(vec![batch(0..4)], vec![(p0.clone(), 4)], HashMap::new()).await.unwrap(),
        CommitOutcome::Fenced
    );
    // Appends for a partition nobody else committed do not conflict.
    assert!(matches!(
        zombie.commit(vec![batch(0..2)], vec![(p1.clone(), 2)], HashMap::new()).await.unwrap(),
        CommitOutcome::Committed { .. }
    ));
    assert_eq!(rows(dir.path()).await, 6, "the fenced rows never became visible");
    assert_eq!(committed(&payments(dir.path()).await).await, vec![Some(4), Some(2)]);
}

#[tokio::test]
async fn an_existing_table_with_another_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    payments(dir.path()).await;
    let other = DeltaTableWriter::open_or_create(
        "pix_payments",
        &at(dir.path(), "pix_payments"),
        quarantine_schema(),
        "ingest_date",
    )
    .await;
    assert!(matches!(other, Err(SinkError::SchemaMismatch { .. })));
}

/// Writes the three category tables and `pix_quarantine` from generated traffic (5 % invalid)
/// and checks the row counts add up. With `PIXLAKE_TABLES_OUT=DIR` the tables are left in DIR
/// (for a look with `PIXLAKE_WAREHOUSE=DIR scripts/sql.sh`).
#[tokio::test]
async fn generated_traffic_lands_in_four_tables() {
    use pixlake::pix::QuarantineBatchBuilder;
    use pixlake::produce::{Generator, Settings};
    let keep = std::env::var_os("PIXLAKE_TABLES_OUT").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.clone().unwrap_or_else(|| tmp.path().to_owned());
    let now = parse_rfc3339("2026-11-25T12:00:00Z").unwrap();
    let records: Vec<_> = Generator::new(Settings {
        seed: 3,
        invalid_ratio: 0.05,
        fraud_ratio: 0.01,
        events_per_day: 100_000.0,
        ..Settings::default()
    })
    .filter(|r| r.value.len() < 64 * 1024)
    .take(5000)
    .collect();
    let decoder = Decoder::default();
    let mut builders = Category::ALL.map(|c| CategoryBatchBuilder::new(c, 1024));
    let mut quarantine = QuarantineBatchBuilder::new();
    for (offset, r) in records.iter().enumerate() {
        let meta =
            KafkaMeta { topic: r.category.default_topic(), partition: 0, offset: offset as i64, timestamp: Some(now) };
        match decoder.decode(Some(&r.value), Some(r.category), now) {
            Ok(ev) => builders[r.category as usize].append(&ev, &meta, now).unwrap(),
            Err(rej) => {
                quarantine.append(&meta, Some(r.key.as_bytes()), Some(&r.value), &rej, r.category.as_str(), now)
            }
        }
    }
    let mut total = 0;
    for (c, b) in Category::ALL.into_iter().zip(builders.iter_mut()) {
        let n = b.len();
        total += n;
        let mut w = DeltaTableWriter::open_or_create(
            c.default_table(),
            &at(&dir, c.default_table()),
            category_schema(c),
            "event_date",
        )
        .await
        .unwrap();
        let out = w
            .commit(
                vec![b.finish().unwrap()],
                vec![(app_id(c.as_str(), c.default_topic(), 0), n as i64)],
                HashMap::new(),
            )
            .await
            .unwrap();
        assert!(matches!(out, CommitOutcome::Committed { .. }));
    }
    let q = quarantine.len();
    let mut w = DeltaTableWriter::open_or_create(
        "pix_quarantine",
        &at(&dir, "pix_quarantine"),
        quarantine_schema(),
        "ingest_date",
    )
    .await
    .unwrap();
    w.commit(vec![quarantine.finish().unwrap()], vec![], HashMap::new()).await.unwrap();
    assert_eq!(total + q, records.len());
    assert!(q > 150 && q < 400, "about 5 % quarantined: {q}");
}

/// A commit's cost does not grow with the table's history: ingest's commits never list the log
/// to delete expired entries (delta-rs does after every commit by default); `maintain` deletes
/// them, after its checkpoint.
#[tokio::test]
async fn expired_log_files_are_removed_by_maintain_not_by_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = payments(dir.path()).await;
    for i in 0..4 {
        let offsets = vec![(app_id("payments", "pix.payments", 0), (i + 1) * 10)];
        w.commit(vec![batch(i * 10..(i + 1) * 10)], offsets, HashMap::new()).await.unwrap();
    }
    let log = dir.path().join("pix_payments").join("_delta_log");
    let json = |v: u64| log.join(format!("{v:020}.json"));
    // A checkpoint at version 2, and versions 0 to 2 older than the 30-day log retention.
    let at = pixlake::sink::delta::Location::from_url(url(dir.path(), "pix_payments"));
    let mut t = at.builder().unwrap().build().unwrap();
    t.load_version(2).await.unwrap();
    deltalake::checkpoints::create_checkpoint(&t, None).await.unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    for v in 0..=2 {
        std::fs::File::options().write(true).open(json(v)).unwrap().set_modified(old).unwrap();
    }
    // Another commit: the expired files stay.
    w.commit(vec![batch(40..50)], vec![(app_id("payments", "pix.payments", 0), 50)], HashMap::new()).await.unwrap();
    assert!(json(0).exists() && json(1).exists(), "a commit cleaned the log up");
    // maintain (checkpoint only) removes what the checkpoint at 2 covers and is expired.
    let upkeep = pixlake::sink::delta::Upkeep {
        compact_target: None,
        checkpoint: true,
        vacuum_retention_hours: None,
        force: false,
    };
    let done = pixlake::sink::delta::maintain("pix_payments", &at, upkeep, &pixlake::telemetry::progress::Silent)
        .await
        .unwrap();
    assert!(done.log_files_removed >= 2, "{done:?}");
    assert!(!json(0).exists() && !json(1).exists());
    assert_eq!(rows(dir.path()).await, 50, "no row lost with the old log files");
}

/// Following a table (`--until-caught-up` watching other writers): each read sees the commits
/// made since the last one, for partitions asked for from the start and for ones asked for
/// later, without replaying the log for every partition every time.
#[tokio::test]
async fn latest_offsets_follow_the_commits_of_another_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = payments(dir.path()).await;
    let ids = AppIds::new("payments", "pix.payments");
    let id = |p| ids.of(Table::Category, p);
    w.commit(vec![batch(0..10)], vec![(id(0), 10)], HashMap::new()).await.unwrap();
    let mut latest = pixlake::sink::delta::LatestOffsets::new(
        ("pix_payments", at(dir.path(), "pix_payments")),
        ("pix_quarantine", at(dir.path(), "pix_quarantine")),
    );
    let read = |o: &pixlake::offsets::PartitionOffsets, p: i32| o[&p].category;
    let o = latest.read(ids, &[0]).await.unwrap();
    assert_eq!(read(&o, 0), Some(10));
    w.commit(vec![batch(10..20)], vec![(id(0), 20), (id(1), 5)], HashMap::new()).await.unwrap();
    w.commit(vec![], vec![(id(0), 20), (id(1), -1)], HashMap::new()).await.unwrap();
    let o = latest.read(ids, &[0, 1]).await.unwrap();
    assert_eq!((read(&o, 0), read(&o, 1)), (Some(20), None), "p1 declared -1 last: no offset");
    w.commit(vec![], vec![(id(1), 7)], HashMap::new()).await.unwrap();
    let o = latest.read(ids, &[0, 1]).await.unwrap();
    assert_eq!((read(&o, 0), read(&o, 1)), (Some(20), Some(7)));
    assert_eq!(o[&0].quarantine, None, "no quarantine table yet");

    // The table deleted and created again (another table id, a shorter log): read afresh,
    // nothing of the old one kept.
    drop(w);
    std::fs::remove_dir_all(dir.path().join("pix_payments")).unwrap();
    let mut w = payments(dir.path()).await;
    w.commit(vec![batch(0..3)], vec![(id(0), 3)], HashMap::new()).await.unwrap();
    w.commit(vec![], vec![(id(0), 3)], HashMap::new()).await.unwrap();
    w.commit(vec![], vec![(id(0), 3)], HashMap::new()).await.unwrap();
    let o = latest.read(ids, &[0, 1]).await.unwrap();
    assert_eq!((read(&o, 0), read(&o, 1)), (Some(3), None), "the new table's offsets only");
}

/// A line of version 0's log (the table's creation) holding `action`.
fn creation_line(dir: &std::path::Path, action: &str) -> String {
    let log = std::fs::read_to_string(dir.join("pix_payments/_delta_log/00000000000000000000.json")).unwrap();
    log.lines().find(|l| l.starts_with(&format!("{{\"{action}\""))).unwrap().to_owned()
}

/// Puts `lines` as the log's version `version`, as another writer would.
fn other_commit(dir: &std::path::Path, version: u64, lines: &[&str]) {
    let path = dir.join(format!("pix_payments/_delta_log/{version:020}.json"));
    std::fs::write(path, lines.join("\n")).unwrap();
}

/// The writer appends without the table's file list (`sink::delta::append`): commits other
/// writers made since its version are judged one by one. Appends and compaction are stepped
/// over; a metadata change is a permanent error (nothing is retried onto a changed table).
#[tokio::test]
async fn commits_of_other_writers_are_stepped_over_unless_they_change_the_table() {
    use pixlake::fault::{Classify, Permanent};
    let dir = tempfile::tempdir().unwrap();
    let mut w = payments(dir.path()).await;
    let p0 = app_id("payments", "pix.payments", 0);
    let commit_info = r#"{"commitInfo":{"timestamp":1,"operation":"OPTIMIZE"}}"#;
    let other_txn = r#"{"txn":{"appId":"pixlake:receipts:pix.receipts:0","version":5}}"#;
    other_commit(dir.path(), 1, &[commit_info, other_txn]);
    other_commit(dir.path(), 2, &[commit_info]);
    let out = w.commit(vec![batch(0..4)], vec![(p0.clone(), 4)], HashMap::new()).await.unwrap();
    assert!(matches!(out, CommitOutcome::Committed { version: 3, files: 1, .. }), "{out:?}");
    assert_eq!(committed(&w).await, vec![Some(4), None]);

    // A commit that fences, behind a harmless one: every version in between is judged.
    let mut behind = payments(dir.path()).await;
    other_commit(dir.path(), 4, &[commit_info]);
    let out = w.commit(vec![batch(4..6)], vec![(p0.clone(), 6)], HashMap::new()).await.unwrap();
    assert!(matches!(out, CommitOutcome::Committed { version: 5, .. }), "{out:?}");
    let out = behind.commit(vec![batch(0..2)], vec![(p0.clone(), 2)], HashMap::new()).await.unwrap();
    assert_eq!(out, CommitOutcome::Fenced, "version 5 carries p0, after the harmless version 4");

    let metadata = creation_line(dir.path(), "metaData");
    other_commit(dir.path(), 6, &[commit_info, &metadata]);
    let err = w.commit(vec![batch(6..8)], vec![(p0.clone(), 8)], HashMap::new()).await.unwrap_err();
    assert_eq!(err.permanent(), Some(Permanent::TableChanged), "{err}");
    assert_eq!(rows(dir.path()).await, 6, "nothing of the refused commits is visible");

    // A version that is not a Delta commit at all cannot be judged: retrying would read it
    // again for ever, so it is a permanent failure too (the pipeline stops and says so).
    let dir = tempfile::tempdir().unwrap();
    let mut w = payments(dir.path()).await;
    other_commit(dir.path(), 1, &["{not json"]);
    let err = w.commit(vec![batch(0..2)], vec![(p0.clone(), 2)], HashMap::new()).await.unwrap_err();
    assert_eq!(err.permanent(), Some(Permanent::TableChanged), "{err}");
    let chain = pixlake::telemetry::Chain(&err).to_string();
    assert!(chain.contains("version 1") && chain.contains("not a Delta commit"), "{chain}");
}

/// A table whose protocol asks writers for a feature pixlake does not honour (row tracking
/// here) is refused at open, with the feature named — appending regardless would corrupt it for
/// its other writers.
#[tokio::test]
async fn a_table_with_a_writer_feature_pixlake_does_not_honour_is_refused() {
    use pixlake::fault::{Classify, Permanent};
    let dir = tempfile::tempdir().unwrap();
    payments(dir.path()).await;
    let protocol = r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":7,"writerFeatures":["appendOnly","rowTracking","domainMetadata"]}}"#;
    other_commit(dir.path(), 1, &[r#"{"commitInfo":{"timestamp":1,"operation":"SET TBLPROPERTIES"}}"#, protocol]);
    let refused = open_payments(dir.path()).await;
    let Err(err) = refused else { panic!("a rowTracking table was opened for writing") };
    // The same protocol with only features an append honours opens (and commits).
    let allowed = r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["appendOnly","deletionVectors","domainMetadata"]}}"#;
    other_commit(dir.path(), 2, &[r#"{"commitInfo":{"timestamp":1,"operation":"SET TBLPROPERTIES"}}"#, allowed]);
    let mut w = payments(dir.path()).await;
    let out = w.commit(vec![batch(0..1)], vec![(app_id("payments", "pix.payments", 0), 1)], HashMap::new()).await;
    assert!(matches!(out, Ok(CommitOutcome::Committed { version: 3, .. })), "{out:?}");
    assert_eq!(err.permanent(), Some(Permanent::UnsupportedTable), "{err}");
    assert!(format!("{err:?}").contains("rowTracking"), "{err:?}");
}

/// Checkpoints every `delta.checkpointInterval` (100) versions, written beside the commits:
/// a long-running writer's log stays cheap to replay, and what the checkpoint says agrees with
/// the commits (offsets and rows read through it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_checkpoints_every_hundred_versions() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = payments(dir.path()).await;
    let p0 = app_id("payments", "pix.payments", 0);
    for i in 0..210 {
        w.commit(vec![batch(i..i + 1)], vec![(p0.clone(), i + 1)], HashMap::new()).await.unwrap();
        if i == 100 {
            // One checkpoint at a time: a busy machine must not make the one at 200 skipped.
            w.settle().await;
        }
    }
    w.settle().await;
    let log = dir.path().join("pix_payments/_delta_log");
    for v in [100, 200] {
        let checkpoint = log.join(format!("{v:020}.checkpoint.parquet"));
        assert!(checkpoint.exists(), "no checkpoint at version {v}");
    }
    let last: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log.join("_last_checkpoint")).unwrap()).unwrap();
    assert_eq!(last["version"], 200);
    // Versions 1 to 200 gone from the log's JSON: readers and the offset lookup rely on the
    // checkpoint alone for them.
    for v in 1..=200u64 {
        std::fs::remove_file(log.join(format!("{v:020}.json"))).unwrap();
    }
    assert_eq!(committed(&payments(dir.path()).await).await, vec![Some(210), None]);
    assert_eq!(rows(dir.path()).await, 210);
}

/// The `add` actions of one committed version, from its log entry.
fn adds_of(dir: &std::path::Path, table: &str, version: u64) -> Vec<serde_json::Value> {
    let path = dir.join(table).join("_delta_log").join(format!("{version:020}.json"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap().get("add").cloned())
        .collect()
}

/// A batch of one date goes to its partition without delta-rs's split (no copy of the rows);
/// its file must carry what delta-rs's own writer gives the same rows: partition values and
/// statistics (which readers use to skip files). A batch of two dates takes delta-rs's split:
/// one file per date.
#[tokio::test]
async fn data_files_of_one_date_match_delta_rs_and_two_dates_make_two_files() {
    use deltalake::writer::{DeltaWriter as _, RecordBatchWriter};
    let dir = tempfile::tempdir().unwrap();
    let rows = batch(0..50);
    let mut w = payments(dir.path()).await;
    let out = w.commit(vec![rows.clone()], vec![(app_id("payments", "pix.payments", 0), 50)], HashMap::new()).await;
    assert!(matches!(out, Ok(CommitOutcome::Committed { version: 1, files: 1, .. })), "{out:?}");
    let ours = adds_of(dir.path(), "pix_payments", 1);
    assert_eq!(ours.len(), 1);
    assert!(ours[0]["path"].as_str().unwrap().starts_with("event_date=2026-11-20/"), "{}", ours[0]["path"]);

    let table = deltalake::open_table(url(dir.path(), "pix_payments")).await.unwrap();
    let mut theirs = RecordBatchWriter::for_table(&table).unwrap();
    theirs.write(rows).await.unwrap();
    let theirs = theirs.flush().await.unwrap();
    assert_eq!(theirs.len(), 1);
    let theirs = serde_json::to_value(&theirs[0]).unwrap();
    assert_eq!(ours[0]["partitionValues"], theirs["partitionValues"]);
    let stats =
        |a: &serde_json::Value| serde_json::from_str::<serde_json::Value>(a["stats"].as_str().unwrap()).unwrap();
    assert_eq!(stats(&ours[0]), stats(&theirs));
    assert_eq!(stats(&ours[0])["numRecords"], 50);

    // Two dates: the same payment a day later.
    let now = parse_rfc3339("2026-11-22T00:00:00Z").unwrap();
    let later =
        String::from_utf8(PAYMENT.to_vec()).unwrap().replace("2026-11-20T13:05:00.123Z", "2026-11-21T13:05:00.123Z");
    let ev = Decoder::default().decode(Some(later.as_bytes()), Some(Category::Payment), now).unwrap();
    let mut b = CategoryBatchBuilder::new(Category::Payment, 16);
    for offset in 50..60 {
        let meta = KafkaMeta { topic: "pix.payments", partition: 0, offset, timestamp: Some(now) };
        b.append(&ev, &meta, now).unwrap();
        let ev = Decoder::default().decode(Some(PAYMENT), Some(Category::Payment), now).unwrap();
        b.append(&ev, &KafkaMeta { offset: offset + 100, ..meta }, now).unwrap();
    }
    let out = w.commit(vec![b.finish().unwrap()], vec![], HashMap::new()).await;
    assert!(matches!(out, Ok(CommitOutcome::Committed { version: 2, files: 2, .. })), "{out:?}");
    let mut dates: Vec<String> = adds_of(dir.path(), "pix_payments", 2)
        .iter()
        .map(|a| a["partitionValues"]["event_date"].as_str().unwrap().to_owned())
        .collect();
    dates.sort();
    assert_eq!(dates, ["2026-11-20", "2026-11-21"]);
}

/// A log version that is not a Delta commit, met when the table is **opened**: refused as a
/// permanent failure with the same advice as when an append meets it (retrying would read the
/// same file for ever).
#[tokio::test]
async fn a_log_version_that_is_not_json_is_refused_at_open() {
    use pixlake::fault::{Classify, Permanent};
    let dir = tempfile::tempdir().unwrap();
    let mut w = payments(dir.path()).await;
    let p0 = app_id("payments", "pix.payments", 0);
    w.commit(vec![batch(0..2)], vec![(p0, 2)], HashMap::new()).await.unwrap();
    other_commit(dir.path(), 2, &["{not json"]);
    let refused = open_payments(dir.path()).await;
    let Err(err) = refused else { panic!("a table with a version that is not JSON was opened") };
    let chain = pixlake::telemetry::Chain(&err).to_string();
    assert_eq!(err.permanent(), Some(Permanent::TableChanged), "{chain}");
    assert!(chain.contains("_delta_log is not JSON") && chain.contains("restore the file"), "{chain}");
}

/// The data files are laid out as `pix::columns::encodings` says — offsets and timestamps
/// delta-encoded, random ids uncompressed, enumerations in a dictionary — and read back as
/// written, through the plain Parquet reader and through delta-rs (Spark reads them in
/// `scripts/spark-check.sh`).
#[tokio::test]
async fn data_files_take_the_column_layout_and_read_back_as_written() {
    use deltalake::arrow::array::{Array, Int64Array, TimestampMicrosecondArray};
    use deltalake::parquet::basic::{Compression, Encoding};
    use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let schema = category_schema(Category::Payment);
    let mut w = payments(dir.path()).await.with_encodings(&pixlake::pix::columns::encodings(&schema));
    let written = batch(0..300);
    let out = w.commit(vec![written.clone()], vec![(app_id("payments", "pix.payments", 0), 300)], HashMap::new()).await;
    assert!(matches!(out, Ok(CommitOutcome::Committed { version: 1, files: 1, .. })), "{out:?}");
    let add = &adds_of(dir.path(), "pix_payments", 1)[0];
    let file = dir.path().join("pix_payments").join(add["path"].as_str().unwrap());
    let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    let group = reader.metadata().row_group(0);
    let column = |name: &str| {
        let i = (0..group.num_columns()).find(|&i| group.column(i).column_path().string() == name).unwrap();
        group.column(i).clone()
    };
    for name in ["kafka_offset", "event_time", "ingest_time", "amount"] {
        assert!(column(name).encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED), "{name}");
    }
    assert_eq!(column("event_id").compression(), Compression::UNCOMPRESSED);
    assert!(matches!(column("payer_name").compression(), Compression::SNAPPY));
    assert!(column("status").encodings().any(|e| e == Encoding::RLE_DICTIONARY));
    assert!(
        column("quality_flags.list.element").encodings().any(|e| e == Encoding::RLE_DICTIONARY),
        "a nested column's dotted path reaches it"
    );
    assert!(column("kafka_offset").compressed_size() < 300 * 8 / 4, "delta-encoded offsets are small");

    let read: Vec<_> = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    let read = deltalake::arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
    assert_eq!(read.num_rows(), 300);
    // The file holds the columns but the partition's (event_date lives in the path).
    for field in read.schema().fields() {
        let original = written.column_by_name(field.name()).unwrap();
        assert_eq!(read.column_by_name(field.name()).unwrap().to_data(), original.to_data(), "{}", field.name());
    }
    let offsets = read.column_by_name("kafka_offset").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(offsets.values().to_vec(), (0..300).collect::<Vec<i64>>());
    let times = read.column_by_name("event_time").unwrap();
    assert!(times.as_any().downcast_ref::<TimestampMicrosecondArray>().is_some_and(|t| t.null_count() == 0));
    assert_eq!(rows(dir.path()).await, 300);
}
