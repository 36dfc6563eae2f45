//! `pixlake ship-log` against the real broker: a writer appends core-banking log lines (each
//! with a line id carried into the event id) and rotates the file by rename and by
//! copy-truncate, while the shipper is killed with `kill -9` at random moments and right after
//! Kafka acknowledged a batch but before its checkpoint; restarted each time. Then
//! `ingest --until-caught-up`: every line is in the tables (or, for the lines that cannot be
//! mapped, in the DLQ topic with the rule and file/line headers), none missing, duplicates
//! only from the batches in flight at a kill — counted and reported.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::lake::{Proc, Setup, open, table_rows};
use rand::{RngExt, SeedableRng};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};

const MAPPING: &str = r#"
ship_log:
  batch_lines: 500
  poll_interval_ms: 50
  mapping:
    event_type: { from: tipo, map: { PIX_ENVIADO: payment } }
    fields:
      event_id: { from: id }
      event_time: { from: quando, time: true }
      data.end_to_end_id: { from: e2e }
      data.amount: { from: valor_centavos, amount: centavos }
      data.currency: { const: BRL }
      data.initiation_type: { const: MANU }
      data.status: { from: situacao, map: { OK: ACSC, PEND: ACSP } }
      data.payer.ispb: { from: origem.ispb }
      data.payer.document: { from: origem.doc }
      data.payee.ispb: { from: destino.ispb }
      data.payee.document: { from: destino.doc }
      data.txid: { from: txid, optional: true }
"#;

/// Line `n`: every 97th cannot be mapped (not JSON), the others are payments.
fn line(n: u64) -> String {
    if n.is_multiple_of(97) {
        return format!("not json L{n}");
    }
    format!(
        r#"{{"id":"00000000-0000-4000-8000-{n:012}","tipo":"PIX_ENVIADO","quando":"2026-12-01 09:00:30","e2e":"E18236120202612011200{n:011}","valor_centavos":{},"situacao":"OK","origem":{{"ispb":"18236120","doc":"52998224725"}},"destino":{{"ispb":"60701190","doc":"11222333000181"}}}}"#,
        100 + n
    )
}

fn line_of(event_id: &str) -> u64 {
    event_id.rsplit('-').next().unwrap().parse().unwrap()
}

/// Whether the checkpoint covers every byte of `file` (the shipper read and Kafka acknowledged it).
fn checkpointed(checkpoint: &Path, file: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(file) else { return false };
    let Ok(text) = std::fs::read(checkpoint) else { return false };
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    v["files"].as_array().unwrap().iter().any(|f| {
        f["id"]["ino"] == meta.ino() && f["id"]["dev"] == meta.dev() && f["offset"].as_u64() == Some(meta.len())
    })
}

/// The writer: `total` lines into `dir/core.jsonl`, rotated every `every` lines, alternately by
/// rename (to `core.jsonl.N`, which the pattern does not match; the application goes on
/// writing a few lines to it, as one does until it reopens its log) and by copy-truncate (the
/// copy outside the pattern; it waits for the shipper to have everything first, as
/// copy-truncate needs).
fn write(dir: PathBuf, checkpoint: PathBuf, total: u64, every: u64, written: Arc<AtomicU64>, done: Arc<AtomicBool>) {
    let log = dir.join("core.jsonl");
    let mut rotations = 0;
    let mut n = 0;
    while n < total {
        n += 1;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        writeln!(f, "{}", line(n)).unwrap();
        written.store(n, Ordering::Relaxed);
        if n.is_multiple_of(every) {
            rotations += 1;
            if rotations % 2 == 1 {
                let rotated = dir.join(format!("core.jsonl.{rotations}"));
                std::fs::rename(&log, &rotated).unwrap();
                // Late lines into the renamed file, a moment after the rename.
                std::thread::sleep(Duration::from_millis(100));
                let mut late = std::fs::OpenOptions::new().append(true).open(&rotated).unwrap();
                for _ in 0..5 {
                    n += 1;
                    writeln!(late, "{}", line(n)).unwrap();
                    written.store(n, Ordering::Relaxed);
                }
            } else {
                let deadline = Instant::now() + Duration::from_secs(120);
                while !checkpointed(&checkpoint, &log) {
                    assert!(Instant::now() < deadline, "the shipper never caught up before a copy-truncate");
                    std::thread::sleep(Duration::from_millis(20));
                }
                std::fs::copy(&log, dir.join(format!("archive-{rotations}.old"))).unwrap();
                std::fs::File::create(&log).unwrap();
            }
        }
        if n.is_multiple_of(50) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    done.store(true, Ordering::Relaxed);
}

/// Every message of `topic`: (value, headers).
fn read_topic(topic: &str) -> Vec<(Vec<u8>, BTreeMap<String, String>)> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("group.id", common::unique("ship-log-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let parts = meta.topics()[0].partitions().len();
    consumer.subscribe(&[topic]).unwrap();
    let mut eof = BTreeSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while eof.len() < parts {
        assert!(Instant::now() < deadline, "reading {topic}");
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                use rdkafka::message::Headers;
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((m.payload().unwrap_or_default().to_vec(), headers));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_line_is_shipped_through_kills_and_rotations() {
    common::require_broker();
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("shiplog", 3, dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let config = dir.path().join("pixlake.yaml");
    std::fs::write(&config, MAPPING).unwrap();
    let checkpoint = dir.path().join("ship-log.json");
    // The live file only: renamed files are followed by identity, not by name.
    let pattern = format!("{}/core.jsonl", logs.display());
    let env = [("PIXLAKE__SHIP_LOG__CHECKPOINT_PATH", checkpoint.to_str().unwrap())];
    let shipper = |probe: &str| {
        let mut c = s.command(&["--config", config.to_str().unwrap(), "ship-log", &pattern], &env);
        c.env("PIXLAKE_PROBE", probe);
        Proc::spawn(c)
    };

    let total: u64 = 30_000;
    let (written, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let writer = {
        let (logs, checkpoint, written, done) = (logs.clone(), checkpoint.clone(), written.clone(), done.clone());
        std::thread::spawn(move || write(logs, checkpoint, total, 2_500, written, done))
    };
    let seed =
        std::env::var("PIXLAKE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random::<u64>);
    eprintln!("PIXLAKE_CRASH_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut kills = 0;
    while !done.load(Ordering::Relaxed) && kills < 10 {
        // Alternately: a random moment, and frozen after Kafka acknowledged a batch but before
        // its checkpoint (the moment that makes a restart repeat the most).
        let mut p = if kills % 2 == 0 {
            let p = shipper("markers");
            std::thread::sleep(Duration::from_millis(rng.random_range(300..2500)));
            p
        } else {
            let mut p = shipper(&format!("pause:ship-log-acked:{}", rng.random_range(1..4)));
            let reached = p.wait_probe("paused at ship-log-acked", 1, Duration::from_secs(60));
            // Once the writer is done, fewer batches than the chosen N may be left to
            // acknowledge (seen once: the writer finished just as this shipper started).
            assert!(reached || done.load(Ordering::Relaxed), "never paused while lines were written:\n{}", p.log());
            p
        };
        p.kill9();
        kills += 1;
        eprintln!("kill {kills} with {} lines written", written.load(Ordering::Relaxed));
    }
    // The last shipper runs until everything written is checkpointed.
    let last = shipper("markers");
    writer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !checkpointed(&checkpoint, &logs.join("core.jsonl")) {
        assert!(Instant::now() < deadline, "the shipper did not catch up:\n{}", last.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Renamed files are read until they have not grown for 5 s.
    std::thread::sleep(Duration::from_secs(7));
    last.sigterm();
    let (status, _, log) = last.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");

    let out = s.command(&["ingest", "--until-caught-up"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = table_rows(open(&s, "pix_payments").as_ref(), false);
    let mut per_line: BTreeMap<u64, u32> = BTreeMap::new();
    for r in &rows {
        *per_line.entry(line_of(r.event_id.as_deref().unwrap())).or_default() += 1;
    }
    let expected: BTreeSet<u64> = (1..=total).filter(|n| !n.is_multiple_of(97)).collect();
    let missing: Vec<_> = expected.iter().filter(|n| !per_line.contains_key(n)).take(10).collect();
    assert!(missing.is_empty(), "lines missing from pix_payments: {missing:?}…");
    assert!(table_rows(open(&s, "pix_quarantine").as_ref(), true).is_empty(), "every mapped line is a valid payment");
    let duplicates: u32 = per_line.values().map(|c| c - 1).sum();
    eprintln!("{} lines, {kills} kills: {duplicates} lines published twice (batches in flight at a kill)", total);
    assert!(u64::from(duplicates) <= kills * 500, "duplicates only from the batch in flight at each kill");

    // The lines that cannot be mapped: in the DLQ, with the rule and where they came from.
    let dead = read_topic(&s.dlq);
    let ids: BTreeSet<u64> = dead
        .iter()
        .map(|(v, h)| {
            assert_eq!(h["pixlake.error.rule"], "MALFORMED_JSON");
            assert!(h["pixlake.source.file"].contains("core"), "{h:?}");
            assert!(h["pixlake.source.line"].parse::<u64>().unwrap() >= 1);
            String::from_utf8_lossy(v).trim_start_matches("not json L").parse().unwrap()
        })
        .collect();
    assert_eq!(ids, (1..=total).filter(|n| n.is_multiple_of(97)).collect::<BTreeSet<_>>());
}

/// The ISO 20022 fixtures (`tests/fixtures/iso20022`), as a gateway archives them.
fn fixtures(kind: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/iso20022").join(kind);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn iso_id(name: &str) -> String {
    let ns = uuid::Uuid::from_u128(0x5c1e_7a0b_3f2d_4e8a_9b61_d2c4_0f8e_a713);
    uuid::Uuid::new_v5(&ns, name.as_bytes()).to_string()
}

/// SPI messages — some concatenated in one file, the others one per file, broken ones among
/// them — shipped with `--format iso20022` through a `kill -9` after Kafka acknowledged a batch
/// and before its joins and checkpoint were saved, where the restarted shipper needs a join the
/// killed one stored: every event exactly as the fixtures say (repeats only from the batch in
/// flight), the receipt and settlements joined from their pacs.002, every broken message and
/// the status report that never found its payment in the DLQ with its rule and element path.
#[test]
fn iso20022_messages_become_events_and_broken_ones_dead_letters() {
    common::require_broker();
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("shiplog-iso", 3, dir.path());
    let spi = dir.path().join("spi");
    std::fs::create_dir_all(&spi).unwrap();
    let config = dir.path().join("pixlake.yaml");
    std::fs::write(
        &config,
        "ship_log:\n  format: iso20022\n  batch_lines: 1\n  poll_interval_ms: 50\n  iso20022:\n    participant_ispb: \"60701190\"\n    join_window_seconds: 5\n",
    )
    .unwrap();
    let (checkpoint, join) = (dir.path().join("ship-log.json"), dir.path().join("join.redb"));
    let env = [
        ("PIXLAKE__SHIP_LOG__CHECKPOINT_PATH", checkpoint.to_str().unwrap()),
        ("PIXLAKE__SHIP_LOG__ISO20022__JOIN_PATH", join.to_str().unwrap()),
    ];
    let pattern = format!("{}/*.xml", spi.display());
    let shipper = |probe: &str| {
        let mut c = s.command(&["--config", config.to_str().unwrap(), "ship-log", &pattern], &env);
        c.env("PIXLAKE_PROBE", probe);
        Proc::spawn(c)
    };
    // Oldest first, as the shipper reads them: the first five messages in one file, the rest
    // one per file, the broken ones, then a later payment (it moves the join's clock, by
    // message time, past the window of the status report that never finds its payment).
    let valid = fixtures("valid");
    let later = valid[0]
        .1
        .replace("E6070119020261201143012ab34CD56e", "E6070119020261201192077Lt8Rq9Wx0")
        .replace("2026-12-01T14:30:05", "2026-12-01T19:20:05");
    let concatenated: String = valid[..5].iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("\n");
    std::fs::write(spi.join("000-archive.xml"), concatenated).unwrap();
    let mut written = vec![spi.join("000-archive.xml")];
    let last_file = [("later.xml".to_owned(), later)];
    for (name, m) in valid[5..].iter().chain(&fixtures("broken")).chain(&last_file) {
        std::thread::sleep(Duration::from_millis(20));
        let path = spi.join(format!("{:03}-{name}", written.len()));
        std::fs::write(&path, m).unwrap();
        written.push(path);
    }

    // One message per batch. Frozen after Kafka acknowledged the fifth batch with events —
    // message 07, the settlement of the Pix received in 05 (read by this process, its join
    // stored and checkpointed) — before 07's changes and checkpoint were saved: the restarted
    // shipper reads 07 again and must find 05 in the store the killed one left.
    let mut p = shipper("pause:ship-log-acked:5");
    assert!(p.wait_probe("paused at ship-log-acked", 1, Duration::from_secs(60)), "{}", p.log());
    p.kill9();
    let killed = p.log();
    let last = shipper("markers");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !written.iter().all(|f| checkpointed(&checkpoint, f)) {
        assert!(Instant::now() < deadline, "the shipper did not read every file:\n{}", last.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The status report without a payment goes to the DLQ once the 5 s window passed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let dead_files =
        || read_topic(&s.dlq).into_iter().map(|(_, h)| h["pixlake.source.file"].clone()).collect::<BTreeSet<_>>();
    while dead_files().len() < 6 {
        assert!(Instant::now() < deadline, "the unmatched status report never reached the DLQ:\n{}", last.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    last.sigterm();
    let (status, _, log) = last.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");

    let out = s.command(&["ingest", "--until-caught-up"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ids = |table: &str| -> BTreeMap<String, u32> {
        let mut m = BTreeMap::new();
        for r in table_rows(open(&s, table).as_ref(), false) {
            *m.entry(r.event_id.unwrap()).or_default() += 1;
        }
        m
    };
    let (sent, manual, received) =
        ("E6070119020261201143012ab34CD56e", "E6070119020261201150099xy88ZZ77q", "E1823612020261201160355Kp0Lm1Nq2");
    let (returned, return_in) = ("D6070119020261201170042Rt5Yu6Io7", "D1823612020261201180007Ab1Cd2Ef3");
    let expected = [
        (
            "pix_payments",
            vec![
                format!("payment:{sent}:ACSP"),
                format!("payment:{sent}:ACSC"),
                format!("payment:{manual}:ACSP"),
                format!("payment:{manual}:RJCT"),
                "payment:E6070119020261201192077Lt8Rq9Wx0:ACSP".to_owned(),
            ],
        ),
        ("pix_receipts", vec![format!("receipt:{received}")]),
        (
            "pix_refunds",
            vec![
                format!("refund:{returned}:EM_PROCESSAMENTO"),
                format!("refund:{returned}:DEVOLVIDO"),
                format!("refund:{return_in}:EM_PROCESSAMENTO"),
            ],
        ),
    ];
    let mut repeated = 0;
    for (table, names) in expected {
        let got = ids(table);
        let want: BTreeSet<String> = names.iter().map(|n| iso_id(&format!("iso20022:{n}"))).collect();
        assert_eq!(
            got.keys().cloned().collect::<BTreeSet<_>>(),
            want,
            "{table}: {names:?}\nkilled shipper:\n{killed}\nlast shipper:\n{log}\nDLQ: {:?}",
            read_topic(&s.dlq).iter().map(|(_, h)| h.clone()).collect::<Vec<_>>()
        );
        repeated += got.values().map(|c| c - 1).sum::<u32>();
    }
    eprintln!("{repeated} events published twice (the batch in flight at the kill)");
    assert!(repeated <= 1, "repeats only from the batch acknowledged before the kill (one message)");
    assert!(table_rows(open(&s, "pix_quarantine").as_ref(), true).is_empty(), "every event passes ingest's rules");

    let mut dead: Vec<(String, String, String)> = read_topic(&s.dlq)
        .into_iter()
        .map(|(_, h)| {
            let file = h["pixlake.source.file"].rsplit('/').next().unwrap().to_owned();
            (file, h["pixlake.error.rule"].clone(), h["pixlake.error.field"].clone())
        })
        .collect();
    dead.sort();
    dead.dedup();
    let cd = "Envelope/Document/FIToFICstmrCdtTrf/CdtTrfTxInf";
    assert_eq!(
        dead,
        [
            ("007-missing-debtor-agent.xml".into(), "MISSING_FIELD".into(), format!("{cd}/DbtrAgt")),
            ("008-missing-end-to-end-id.xml".into(), "MISSING_FIELD".into(), format!("{cd}/PmtId/EndToEndId")),
            ("009-not-spi.xml".into(), "MALFORMED_XML".into(), "html".into()),
            ("010-not-well-formed.xml".into(), "MALFORMED_XML".into(), format!("{cd}/Cdtr/Nm")),
            (
                "011-unknown-status.xml".into(),
                "INVALID_ENUM".into(),
                "Envelope/Document/FIToFIPmtStsRpt/TxInfAndSts/TxSts".into()
            ),
            ("012-unmatched-status.xml".into(), "UNMATCHED_STATUS_REPORT".into(), "OrgnlEndToEndId".into()),
        ]
    );
}
