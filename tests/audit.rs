//! `pixlake audit` on the real broker: passes after a clean ingest, then catches a planted
//! duplicate row and a planted gap (offsets committed past records that are in no table).

mod common;

use std::collections::HashMap;

use common::lake::{PIPELINES, Setup, check_complete};
use pixlake::offsets::{AppIds, Table};
use pixlake::pix::time::parse_rfc3339;
use pixlake::pix::{Category, CategoryBatchBuilder, Decoder, KafkaMeta, category_schema, quarantine_schema};
use pixlake::sink::delta::DeltaTableWriter;

const PAYMENT: &[u8] = include_bytes!("data/payment.json");

fn audit(s: &Setup) -> (i32, serde_json::Value) {
    let out = s.command(&["audit", "--json"], &[]).output().unwrap();
    let code = out.status.code().unwrap();
    assert!(code == 0 || code == 1, "{}", String::from_utf8_lossy(&out.stderr));
    (code, serde_json::from_slice(&out.stdout).unwrap())
}

fn writer(s: &Setup, table: &str, category: Option<Category>) -> DeltaTableWriter {
    let url = deltalake::ensure_table_uri(s.warehouse.join(table).to_str().unwrap()).unwrap();
    let (schema, partition) = match category {
        Some(c) => (category_schema(c), "event_date"),
        None => (quarantine_schema(), "ingest_date"),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(DeltaTableWriter::open_or_create(
        table,
        &pixlake::sink::delta::Location::from_url(url),
        schema,
        partition,
    ))
    .unwrap()
}

fn commit(w: &mut DeltaTableWriter, batches: Vec<deltalake::arrow::array::RecordBatch>, offsets: Vec<(String, i64)>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(w.commit(batches, offsets, HashMap::new())).unwrap();
}

#[test]
fn audit_passes_then_finds_a_planted_duplicate_and_a_planted_gap() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("audit", 2, dir.path());
    s.produce(3_000, 0.05, 61);
    let out = s.command(&["ingest", "--until-caught-up"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check_complete(&s);
    let (code, report) = audit(&s);
    assert_eq!((code, report["violations"].as_u64()), (0, Some(0)), "{report:#}");
    let checked: u64 = report["partitions"].as_array().unwrap().iter().map(|p| p["checked"].as_u64().unwrap()).sum();
    assert_eq!(checked, 3_000);

    // A duplicate: payments partition 0, offset 0 written once more (its txn untouched).
    let now = parse_rfc3339("2026-11-25T12:00:00Z").unwrap();
    let ev = Decoder::default().decode(Some(PAYMENT), Some(Category::Payment), now).unwrap();
    let mut b = CategoryBatchBuilder::new(Category::Payment, 1);
    b.append(&ev, &KafkaMeta { topic: &s.topics[0], partition: 0, offset: 0, timestamp: Some(now) }, now).unwrap();
    commit(&mut writer(&s, "pix_payments", Some(Category::Payment)), vec![b.finish().unwrap()], vec![]);
    let (code, report) = audit(&s);
    assert_eq!(code, 1);
    let bad: Vec<_> = report["partitions"].as_array().unwrap().iter().filter(|p| p["duplicates"] != 0).collect();
    assert_eq!(bad.len(), 1, "{report:#}");
    assert_eq!((bad[0]["topic"].as_str(), bad[0]["partition"].as_i64()), (Some(s.topics[0].as_str()), Some(0)));
    assert_eq!(bad[0]["first_duplicate"], 0);

    // A gap: more receipts arrive, and both tables' offsets of receipts partition 1 are moved
    // past them without their rows.
    s.produce(400, 0.0, 62);
    let high = s.high_watermarks()[&(s.topics[1].clone(), 1)];
    let before = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["topic"] == s.topics[1].as_str() && p["partition"] == 1)
        .unwrap()["committed"]
        .as_i64()
        .unwrap();
    assert!(high > before, "new receipts on partition 1");
    commit(
        &mut writer(&s, "pix_receipts", Some(Category::Receipt)),
        vec![],
        vec![(AppIds::new(PIPELINES[1], &s.topics[1]).of(Table::Category, 1), high)],
    );
    commit(
        &mut writer(&s, "pix_quarantine", None),
        vec![],
        vec![(AppIds::new(PIPELINES[1], &s.topics[1]).of(Table::Quarantine, 1), high)],
    );
    let (code, report) = audit(&s);
    assert_eq!(code, 1);
    let gap = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["topic"] == s.topics[1].as_str() && p["partition"] == 1)
        .unwrap();
    assert_eq!(gap["missing"].as_i64(), Some(high - before), "{gap:#}");
    assert_eq!(gap["first_missing"].as_i64(), Some(before));
    assert_eq!(report["violations"].as_i64(), Some(1 + high - before));

    let human = s.command(&["audit"], &[]).output().unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("audit FAILED") && text.contains("first missing at offset"), "{text}");
}
