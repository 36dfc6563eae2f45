//! Hot-path benchmark: parse + validate + normalize + append to Arrow builders, one core.
//!
//! `cargo bench --bench decode` — generates the `pixlake produce` mix (5 % invalid, 0.5 %
//! fraud), then times, over the same records in the same run:
//!   1. baseline: `serde_json` scanning each value without building anything (`IgnoredAny`);
//!   2. the naive approach: `serde_json::Value` trees;
//!   3. pixlake's `Decoder::decode` (parse + validate + normalize);
//!   4. decode + append to the category/quarantine builders + `finish()` every 8 192 rows;
//!   5. Parquet encoding of those batches, one in-memory file per batch, with the layout ingest
//!      writes (`writer_properties`): what the committer's I/O threads spend per event.
//!
//! Prints events/s and the ratio of each to the baseline. Timing only: no assertions.
//! `PIXLAKE_BENCH_PROFILE=decode|full|parquet` repeats one stage for `perf record`.

use std::hint::black_box;
use std::time::Instant;

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::arrow::ArrowWriter;
use pixlake::pix::time::parse_rfc3339;
use pixlake::pix::{Category, CategoryBatchBuilder, Decoder, KafkaMeta, QuarantineBatchBuilder};
use pixlake::produce::{Generator, Settings};
use pixlake::sink::delta::writer_properties;

/// The allocator the `pixlake` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: usize = 300_000;
const ROUNDS: usize = 7;

fn time<F: Fn() -> usize>(f: F) -> (f64, usize) {
    let t = Instant::now();
    let out = f();
    (t.elapsed().as_secs_f64(), out)
}

fn main() {
    let records: Vec<_> = Generator::new(Settings { seed: 1, invalid_ratio: 0.05, ..Settings::default() })
        .filter(|r| r.value.len() < 64 * 1024) // keep the rare 1 MiB records out of a throughput figure
        .take(N)
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
    let decode =
        || records.iter().filter(|r| decoder.decode(Some(black_box(&r.value)), Some(r.category), now).is_ok()).count();
    let build = |keep: &mut dyn FnMut(RecordBatch) -> usize| {
        let mut builders = Category::ALL.map(|c| CategoryBatchBuilder::new(c, 8192));
        let mut quarantine = QuarantineBatchBuilder::new();
        let mut rows = 0;
        for (offset, r) in records.iter().enumerate() {
            let meta = KafkaMeta {
                topic: r.category.default_topic(),
                partition: 0,
                offset: offset as i64,
                timestamp: Some(now),
            };
            match decoder.decode(Some(&r.value), Some(r.category), now) {
                Ok(ev) => {
                    let b = &mut builders[r.category as usize];
                    let _ = b.append(&ev, &meta, now);
                    if b.len() == 8192 {
                        rows += b.finish().map(&mut *keep).unwrap_or(0);
                    }
                }
                Err(rej) => quarantine.append(&meta, Some(r.key.as_bytes()), Some(&r.value), &rej, "bench", now),
            }
        }
        for b in &mut builders {
            rows += b.finish().map(&mut *keep).unwrap_or(0);
        }
        rows + quarantine.finish().map(&mut *keep).unwrap_or(0)
    };
    let full = || build(&mut |batch| batch.num_rows());
    let mut batches = Vec::new();
    build(&mut |batch| {
        batches.push(batch);
        0
    });
    batches.retain(|b| b.num_rows() > 0);
    let parquet = || {
        let mut bytes = 0;
        for batch in &batches {
            let props = writer_properties(&batch.schema());
            let mut file = Vec::with_capacity(1 << 20);
            let Ok(mut writer) = ArrowWriter::try_new(&mut file, batch.schema(), Some(props)) else { continue };
            if writer.write(batch).is_ok() && writer.close().is_ok() {
                bytes += file.len();
            }
        }
        bytes
    };
    // One stage repeated, for `perf record`: `PIXLAKE_BENCH_PROFILE=decode` (or `full`).
    if let Some(stage) = profile {
        for _ in 0..20 {
            black_box(match stage.as_str() {
                "full" => full(),
                "parquet" => parquet(),
                _ => decode(),
            });
        }
        return;
    }
    // Rounds interleave the stages, so a noisy stretch of a shared machine hits all of them
    // alike; each stage keeps its best round.
    let mut t = [f64::MAX; 5];
    let (mut valid, mut rows, mut parquet_bytes) = (0, 0, 0);
    for _ in 0..ROUNDS {
        t[0] = t[0].min(time(base).0);
        t[1] = t[1].min(time(value).0);
        let (d, v) = time(decode);
        t[2] = t[2].min(d);
        valid = v;
        let (f, r) = time(full);
        t[3] = t[3].min(f);
        rows = r;
        let (p, b) = time(parquet);
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
    println!("Parquet: {} files, {:.1} MB", batches.len(), parquet_bytes as f64 / 1e6);
}
