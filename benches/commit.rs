//! Soak benchmark of the Delta commit path: many small commits to one table, as a long-running
//! `ingest` with small batches makes them.
//!
//! `cargo bench --bench commit [-- COMMITS [ROWS]]` (defaults: 10 000 commits of 200 rows) —
//! commits generator payments, each with the `txn` actions of 6 partitions, to a fresh table in
//! a temporary directory through [`DeltaTableWriter`] (what the committer thread uses), and
//! prints, per stretch of versions: commit time (mean, p99, max), the process's resident
//! memory, and the table's file count. Flat columns are the claim: a writer's per-commit cost
//! and memory must not grow with the table's history. Timing only: no assertions.

use std::collections::HashMap;
use std::time::Instant;

use pixlake::pix::batch::EVENT_DATE;
use pixlake::pix::time::parse_rfc3339;
use pixlake::pix::{Category, CategoryBatchBuilder, Decoder, KafkaMeta, category_schema};
use pixlake::produce::{Generator, Settings};
use pixlake::sink::delta::{CommitOutcome, DeltaTableWriter, Location};

/// The allocator the `pixlake` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 6;
const STRETCH: usize = 500;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let commits = args.first().copied().unwrap_or(10_000);
    let rows = args.get(1).copied().unwrap_or(200);

    // A few batches of real rows, reused round-robin (building rows is not what is measured).
    let now = parse_rfc3339("2026-11-25T00:00:00Z").map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let decoder = Decoder::default();
    let mut builder = CategoryBatchBuilder::new(Category::Payment, rows);
    let mut batches = Vec::new();
    let generator = Generator::new(Settings { seed: 7, invalid_ratio: 0.0, ..Settings::default() });
    for (offset, r) in generator.filter(|r| r.category == Category::Payment).take(rows * 8).enumerate() {
        let meta = KafkaMeta { topic: "pix.payments", partition: 0, offset: offset as i64, timestamp: Some(now) };
        if let Ok(ev) = decoder.decode(Some(&r.value), Some(r.category), now) {
            let _ = builder.append(&ev, &meta, now);
        }
        if builder.len() == rows {
            batches.push(builder.finish()?);
        }
    }

    anyhow::ensure!(!batches.is_empty(), "the generator gave no payment of {rows} rows to commit");
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let location =
        Location::from_url(url::Url::from_directory_path(dir.path()).map_err(|()| anyhow::anyhow!("bad path"))?);
    let mut writer = runtime.block_on(DeltaTableWriter::open_or_create(
        "pix_payments",
        &location,
        category_schema(Category::Payment),
        EVENT_DATE,
    ))?;
    println!(
        "{commits} commits of {rows} rows, {PARTITIONS} partitions' txn actions each; table in {}",
        dir.path().display()
    );
    println!("RSS before the first commit: {:.0} MiB", rss_mib());
    println!("{:>8} {:>10} {:>10} {:>10} {:>9} {:>8}", "version", "mean ms", "p99 ms", "max ms", "RSS MiB", "files");
    let started = Instant::now();
    let mut times = Vec::with_capacity(STRETCH);
    let mut files = 0u64;
    for i in 0..commits {
        let batch = batches[i % batches.len()].clone();
        let offsets = (0..PARTITIONS).map(|p| (format!("pixlake:soak:pix.payments:{p}"), i as i64 + 1)).collect();
        let t = Instant::now();
        let outcome = runtime.block_on(writer.commit(vec![batch], offsets, HashMap::new()))?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        match outcome {
            CommitOutcome::Committed { version, files: f, .. } => {
                files += f;
                if times.len() == STRETCH || i + 1 == commits {
                    times.sort_by(f64::total_cmp);
                    let mean = times.iter().sum::<f64>() / times.len() as f64;
                    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
                    let max = times[times.len() - 1];
                    println!("{version:>8} {mean:>10.1} {p99:>10.1} {max:>10.1} {:>9.0} {files:>8}", rss_mib());
                    times.clear();
                }
            }
            CommitOutcome::Fenced => anyhow::bail!("fenced at commit {i}: nothing else writes this table"),
        }
    }
    runtime.block_on(writer.settle());
    let secs = started.elapsed().as_secs_f64();
    println!("{commits} commits in {secs:.1} s: {:.1} ms per commit", secs * 1e3 / commits as f64);
    Ok(())
}
