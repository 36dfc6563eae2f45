//! `pixlake dlq replay` after a rule is relaxed (a larger `validation.max_message_bytes` makes
//! the OVERSIZED_MESSAGE records valid): interrupted once between its two commits (SIGKILL),
//! run again, run a third time; the records end up in their category tables exactly once, out
//! of quarantine, and `audit` passes. And a replay over a quarantine much larger than the memory
//! it uses: it streams.

mod common;

use std::time::Duration;

use common::lake::{Proc, Setup, check_complete};
use pixlake::offsets::{AppIds, Table};
use pixlake::pix::batch::{EVENT_DATE, INGEST_DATE, QUARANTINE_TABLE};
use pixlake::pix::{Category, HardRule, KafkaMeta, QuarantineBatchBuilder, Rejection};
use pixlake::sink::delta::DeltaTableWriter;

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
    assert!(p.wait_probe("paused at replay-inserted", 1, Duration::from_secs(120)), "{}", p.log());
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

/// Runs `cmd` and returns its exit status and peak resident memory (bytes), from wait4(2).
fn run_measured(cmd: &mut std::process::Command) -> (std::process::ExitStatus, String, u64) {
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    // Both pipes drained at once: a child filling one while we wait on the other would block.
    let (mut out_pipe, mut err_pipe) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut out_pipe, &mut text).unwrap();
        text
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut err_pipe, &mut text).unwrap();
        text
    });
    std::mem::forget(child); // reaped by wait4 below
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child; status and usage are valid for writes.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let status = std::process::ExitStatus::from_raw(status);
    assert!(status.success(), "{stderr}");
    (status, stdout, usage.ru_maxrss as u64 * 1024)
}

/// A quarantine of 400 records of 1 MiB each (valid payments padded with random JSON
/// whitespace, which compresses little; quarantined as OVERSIZED_MESSAGE), half of them from
/// another topic, written straight to the tables: `dlq replay --topic` with a relaxed limit
/// moves every one of its topic's records — and rewrites the quarantine's files without them,
/// keeping the other half — while its resident memory stays under a limit below the 400 MiB
/// of raw values (800 MiB with their text copies) it reads.
#[test]
fn replay_streams_a_quarantine_larger_than_its_memory() {
    const ROWS: i64 = 400;
    // A replay's own working set is a row group's column chunks being read, a read batch, a
    // chunk of rows and the rewrite's open row group (about 110 MiB here, with 20-row files of
    // 40 MiB); the rest is the process (runtime, Delta snapshot, a debug build: about 100 MiB).
    // 214 MiB measured; it loaded every raw value before (≥ 400 MiB).
    const LIMIT: u64 = 320 << 20;
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("replay-big", 1, dir.path());

    let sample = dir.path().join("sample.jsonl");
    let out = s
        .command(&["produce", "--output", sample.to_str().unwrap(), "--count", "50", "--seed", "3"], &[])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let payment = std::fs::read_to_string(&sample)
        .unwrap()
        .lines()
        .find(|l| l.contains(r#""event_type":"payment""#))
        .unwrap()
        .to_owned();
    // The same event, 1 MiB long: whitespace between its first two fields, drawn at random from
    // the four JSON whitespace bytes (xorshift; 2 bits per byte do not compress away).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let whitespace: String = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            [' ', '\t', '\n', '\r'][(x & 3) as usize]
        })
        .collect();
    let (head, tail) = payment.split_at(payment.find(',').unwrap() + 1);
    let padded = format!("{head}{whitespace}{tail}");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = |t: &str| {
        pixlake::sink::delta::Location::from_url(
            deltalake::ensure_table_uri(s.warehouse.join(t).to_str().unwrap()).unwrap(),
        )
    };
    let (topic, other) = (s.topics[0].as_str(), s.topics[1].as_str());
    let rejection = Rejection::new(HardRule::OversizedMessage, "", "larger than validation.max_message_bytes");
    rt.block_on(async {
        let mut quarantine = DeltaTableWriter::open_or_create(
            QUARANTINE_TABLE,
            &url(QUARANTINE_TABLE),
            pixlake::pix::quarantine_schema(),
            INGEST_DATE,
        )
        .await
        .unwrap();
        for first in (0..ROWS).step_by(20) {
            let mut b = QuarantineBatchBuilder::new();
            for offset in first..first + 20 {
                // Every file mixes the two topics: removing one topic's rows rewrites it.
                let (t, o) = if offset % 2 == 0 { (topic, offset / 2) } else { (other, offset / 2) };
                let meta = KafkaMeta { topic: t, partition: 0, offset: o, timestamp: Some(1_764_000_000_000_000) };
                b.append(&meta, None, Some(padded.as_bytes()), &rejection, "payments", 1_764_000_000_000_000);
            }
            quarantine.commit(vec![b.finish().unwrap()], vec![], Default::default()).await.unwrap();
        }
        // The category table's committed offset is past them: ingest will not read them again.
        let mut payments = DeltaTableWriter::open_or_create(
            "pix_payments",
            &url("pix_payments"),
            pixlake::pix::category_schema(Category::Payment),
            EVENT_DATE,
        )
        .await
        .unwrap();
        let ids = AppIds::new("payments", topic);
        payments.commit(vec![], vec![(ids.of(Table::Category, 0), ROWS)], Default::default()).await.unwrap();
    });

    let mut cmd = s.command(&["dlq", "replay", "--json", "--topic", topic], &[RELAXED]);
    let (_, stdout, peak) = run_measured(&mut cmd);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["payments"]["moved"]["OVERSIZED_MESSAGE"], ROWS / 2, "{report:#}");
    eprintln!("dlq replay over {ROWS} MiB of raw values: peak RSS {} MiB", peak >> 20);
    assert!(peak < LIMIT, "peak RSS {} MiB for {ROWS} MiB of raw values", peak >> 20);
    // The other topic's records stay in quarantine, rewritten; the replayed ones are gone.
    let left = rt.block_on(async {
        let q = pixlake::sink::delta::open_existing(QUARANTINE_TABLE, &url(QUARANTINE_TABLE)).await.unwrap();
        pixlake::sink::delta::scan(QUARANTINE_TABLE, q.as_ref(), &pixlake::telemetry::progress::Silent).await.unwrap()
    });
    assert_eq!(left.of(other, 0).len() as i64, ROWS / 2);
    assert!(left.of(topic, 0).is_empty());
}
