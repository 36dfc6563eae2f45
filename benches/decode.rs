//! Hot-path benchmark: parse + validate + normalize + append to Arrow builders, one core.
//!
//! `cargo bench --bench decode` — generates the `pixlake produce` mix (5 % invalid, 0.5 %
//! fraud), then times, over the same records in the same run:
//!   1. baseline: `serde_json` scanning each value without building anything (`IgnoredAny`);
//!   2. the naive approach: `serde_json::Value` trees;
//!   3. pixlake's `Decoder::decode` (parse + validate + normalize);
//!   4. decode + append to the category/quarantine builders of the record's pipeline, both
//!      sealed (`finish()`) every 8 192 category rows as a pipeline seals a batch, each finished
//!      batch handed back for its buffers one batch later as ingest's committer does once it is
//!      written; the builders live from one round to the next, as a pipeline's do;
//!   5. Parquet encoding of those batches (built, untimed, before each round), one in-memory file
//!      per batch, with ingest's column layout: what each pipeline's committer thread spends per
//!      event on the encoder alone (Delta statistics and the upload come on top).
//!
//! Prints events/s and the ratio of each to the baseline. Timing only: the one assertion is that
//! every record became a row.
//! `PIXLAKE_BENCH_PROFILE=decode|full|parquet` repeats one stage 20 times for `perf record`
//! (or valgrind: `scripts/bench-instructions.sh` counts instructions per event that way, inside
//! the stage's function), and `PIXLAKE_BENCH_EVENTS` changes the number of events (default
//! 300 000).

use std::hint::black_box;
use std::time::Instant;

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::file::properties::WriterProperties;
use pixlake::pix::columns::encodings;
use pixlake::pix::time::{Micros, parse_rfc3339};
use pixlake::pix::{Category, CategoryBatchBuilder, Decoder, KafkaMeta, QuarantineBatchBuilder};
use pixlake::produce::{Generator, Record, Settings};
use pixlake::sink::delta::layout;

/// The allocator the `pixlake` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: usize = 300_000;
const ROUNDS: usize = 7;
/// Repetitions of the stage `PIXLAKE_BENCH_PROFILE` names.
const PROFILE_REPEATS: usize = 20;

fn time<F: FnMut() -> usize>(mut f: F) -> (f64, usize) {
    let t = Instant::now();
    let out = f();
    (t.elapsed().as_secs_f64(), out)
}

// The measured stages are functions of their own, never inlined, so that
// `scripts/bench-instructions.sh` can count exactly inside them (drops of the decoded events and
// finished batches included).

/// Stage 3: decodes every record; returns how many were valid.
#[inline(never)]
fn decode_all(records: &[Record], decoder: &Decoder, now: Micros) -> usize {
    records.iter().filter(|r| decoder.decode(Some(black_box(&r.value)), Some(r.category), now).is_ok()).count()
}

/// One pipeline's tables, as ingest keeps them for as long as it runs: the category builder and
/// the quarantine builder, and the last batch of each handed back once "written".
struct Tables {
    category: CategoryBatchBuilder,
    quarantine: QuarantineBatchBuilder,
    /// Batch N − 1 of each table, whose buffers carry batch N + 1.
    back: [Option<RecordBatch>; 2],
}

impl Tables {
    fn all() -> [Tables; 3] {
        Category::ALL.map(|c| Tables {
            category: CategoryBatchBuilder::new(c, 8192),
            quarantine: QuarantineBatchBuilder::new(),
            back: Default::default(),
        })
    }

    /// Seals both tables as ingest seals a batch: each builder is first given the buffers of
    /// the batch before the last, and what `keep` gives back carries the batch after next.
    fn seal(&mut self, keep: &mut dyn FnMut(RecordBatch) -> Option<RecordBatch>) -> usize {
        let [category, quarantine] = &mut self.back;
        if let Some(spent) = category.take() {
            self.category.recycle(spent);
        }
        if let Some(spent) = quarantine.take() {
            self.quarantine.recycle(spent);
        }
        let rows = self.category.finish().expect("a batch");
        let rejected = self.quarantine.finish().expect("a batch");
        let n = rows.num_rows() + rejected.num_rows();
        *category = keep(rows);
        *quarantine = keep(rejected);
        n
    }
}

/// Stage 4: decodes every record into its pipeline's category and quarantine builders, sealing
/// both every 8 192 category rows (about ingest's batch at its default settings) and at the end,
/// handing each finished batch to `keep`; returns the rows finished. What `keep` gives back is
/// recycled as ingest's committer hands a written batch back. `tables` lives across rounds as a
/// pipeline's builders live across batches, so a round measures the steady state rather than a
/// pipeline's first two batches, which are built on fresh memory.
#[inline(never)]
fn build_batches(
    records: &[Record],
    decoder: &Decoder,
    now: Micros,
    tables: &mut [Tables; 3],
    keep: &mut dyn FnMut(RecordBatch) -> Option<RecordBatch>,
) -> usize {
    let mut rows = 0;
    for (offset, r) in records.iter().enumerate() {
        let meta =
            KafkaMeta { topic: r.category.default_topic(), partition: 0, offset: offset as i64, timestamp: Some(now) };
        let t = &mut tables[r.category as usize];
        match decoder.decode(Some(&r.value), Some(r.category), now) {
            Ok(ev) => {
                let _ = t.category.append(&ev, &meta, now);
                if t.category.len() == 8192 {
                    rows += t.seal(keep);
                }
            }
            Err(rej) => t.quarantine.append(&meta, Some(r.key.as_bytes()), Some(&r.value), &rej, "bench", now),
        }
    }
    for t in tables.iter_mut() {
        rows += t.seal(keep);
    }
    rows
}

/// Stage 5: one in-memory Parquet file per batch; returns the bytes written.
#[inline(never)]
fn encode_parquet(batches: &[(RecordBatch, WriterProperties)]) -> usize {
    let mut bytes = 0;
    for (batch, properties) in batches {
        let mut file = Vec::with_capacity(1 << 20);
        let mut writer =
            ArrowWriter::try_new(&mut file, batch.schema(), Some(properties.clone())).expect("a Parquet writer");
        writer.write(batch).expect("a batch encoded");
        writer.close().expect("a file closed");
        bytes += file.len();
    }
    bytes
}

fn main() {
    let events = match std::env::var("PIXLAKE_BENCH_EVENTS") {
        Ok(n) => n.parse().expect("PIXLAKE_BENCH_EVENTS: a number of events"),
        Err(_) => N,
    };
    let records: Vec<_> = Generator::new(Settings { seed: 1, invalid_ratio: 0.05, ..Settings::default() })
        .filter(|r| r.value.len() < 64 * 1024) // keep the rare 1 MiB records out of a throughput figure
        .take(events)
        .collect();
    let bytes: usize = records.iter().map(|r| r.value.len()).sum();
    let now = parse_rfc3339("2026-11-25T00:00:00Z").unwrap();
    let decoder = Decoder::default();
    let profile = std::env::var("PIXLAKE_BENCH_PROFILE").ok();

    let base = || {
        records.iter().filter(|r| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&r.value)).is_ok()).count()
    };
    let value =
        || records.iter().filter(|r| serde_json::from_slice::<serde_json::Value>(black_box(&r.value)).is_ok()).count();
    let decode = || decode_all(&records, &decoder, now);
    // Every batch is handed back once "written", as ingest's committer does; the builders live
    // from one round to the next, as a pipeline's do from one batch to the next.
    let mut tables = Tables::all();
    let mut full = || build_batches(&records, &decoder, now, &mut tables, &mut Some);
    // The Parquet stage's input, with the writer settings each table's writer holds (ingest
    // builds them once per table); built before each timing, untimed, and dropped after it so
    // that the other stages run without it in memory.
    let batches = || {
        let mut batches = Vec::new();
        build_batches(&records, &decoder, now, &mut Tables::all(), &mut |batch| {
            if batch.num_rows() > 0 {
                let properties = layout(&encodings(&batch.schema())).build();
                batches.push((batch, properties));
            }
            None
        });
        batches
    };
    // One stage repeated, for `perf record`: `PIXLAKE_BENCH_PROFILE=decode` (or `full`, `parquet`).
    if let Some(stage) = profile {
        let input = if stage == "parquet" { batches() } else { Vec::new() };
        for _ in 0..PROFILE_REPEATS {
            black_box(match stage.as_str() {
                "full" => full(),
                "parquet" => encode_parquet(&input),
                _ => decode(),
            });
        }
        // What `scripts/bench-instructions.sh` divides its counts by.
        println!("profile {stage}: {} events, {PROFILE_REPEATS} repetitions", records.len());
        return;
    }
    // Rounds interleave the stages, so a noisy stretch of a shared machine hits all of them
    // alike; each stage keeps its best round.
    let mut t = [f64::MAX; 5];
    let (mut valid, mut rows, mut parquet_bytes, mut files) = (0, 0, 0, 0);
    for _ in 0..ROUNDS {
        t[0] = t[0].min(time(base).0);
        t[1] = t[1].min(time(value).0);
        let (d, v) = time(decode);
        t[2] = t[2].min(d);
        valid = v;
        let (f, r) = time(&mut full);
        t[3] = t[3].min(f);
        rows = r;
        let input = batches();
        files = input.len();
        let (p, b) = time(|| encode_parquet(&input));
        drop(input);
        t[4] = t[4].min(p);
        parquet_bytes = b;
    }
    let [t_base, t_value, t_decode, t_full, t_parquet] = t;
    assert_eq!(rows, records.len());

    let n = records.len() as f64;
    println!(
        "{} events ({:.0} bytes on average), {} valid; best of {ROUNDS} rounds, one thread",
        records.len(),
        bytes as f64 / n,
        valid
    );
    println!("{:<48} {:>12} {:>9} {:>8}", "stage", "events/s", "MB/s", "× base");
    for (name, t) in [
        ("baseline: serde_json scan (IgnoredAny)", t_base),
        ("naive: serde_json::Value tree", t_value),
        ("pixlake decode (parse+validate+normalize)", t_decode),
        ("pixlake decode + Arrow builders + finish", t_full),
        ("Parquet encoding of those batches (own stage)", t_parquet),
    ] {
        println!("{name:<48} {:>12.0} {:>9.1} {:>8.2}", n / t, bytes as f64 / t / 1e6, t_base / t);
    }
    println!("Parquet: {files} files, {:.1} MB", parquet_bytes as f64 / 1e6);
}
