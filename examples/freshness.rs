//! Freshness for `scripts/bench.sh`: for every row of the given tables in a local warehouse,
//! the time from its Kafka timestamp to the moment the Delta commit that added it became visible
//! (the commit file's modification time — when readers could first see the row).
//!
//!   cargo run --release --example freshness -- WAREHOUSE_DIR TABLE...
//!
//! Prints one JSON line: rows, p50, p99 and max in seconds. Reads the log's JSON commits (the
//! whole history must still be there: run it on a benchmark's fresh warehouse).

use std::fs::File;
use std::path::Path;

use deltalake::arrow::array::{Array, TimestampMicrosecondArray};
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Seconds from Kafka timestamp to visibility of every row of the table at `dir`.
fn table(dir: &Path, out: &mut Vec<f64>) -> anyhow::Result<()> {
    let mut commits: Vec<_> = std::fs::read_dir(dir.join("_delta_log"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.file_stem().is_some_and(|s| s.len() == 20))
        .collect();
    commits.sort();
    for commit in commits {
        let visible = File::open(&commit)?.metadata()?.modified()?.duration_since(std::time::UNIX_EPOCH)?;
        let visible_us = visible.as_micros() as i64;
        for line in std::fs::read_to_string(&commit)?.lines() {
            let action: serde_json::Value = serde_json::from_str(line)?;
            let Some(path) = action.pointer("/add/path").and_then(serde_json::Value::as_str) else { continue };
            let path = urlencoding_decode(path);
            let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(dir.join(&path))?)?;
            let mask = ProjectionMask::columns(builder.parquet_schema(), ["kafka_timestamp"]);
            for batch in builder.with_projection(mask).build()? {
                let batch = batch?;
                let Some(ts) = batch.column(0).as_any().downcast_ref::<TimestampMicrosecondArray>() else { continue };
                out.extend((0..ts.len()).filter(|&i| ts.is_valid(i)).map(|i| (visible_us - ts.value(i)) as f64 / 1e6));
            }
        }
    }
    Ok(())
}

/// Delta's `add.path` is URL-encoded (`event_date=2026-12-01/part-….parquet` stays as it is;
/// other characters come as `%XX`).
fn urlencoding_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = path.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (warehouse, tables) =
        args.split_first().ok_or_else(|| anyhow::anyhow!("usage: freshness WAREHOUSE TABLE..."))?;
    let mut seconds = Vec::new();
    for t in tables {
        table(&Path::new(warehouse).join(t), &mut seconds)?;
    }
    seconds.sort_by(f64::total_cmp);
    let at = |q: f64| seconds.get(((seconds.len() as f64 * q) as usize).min(seconds.len().saturating_sub(1))).copied();
    let show = |v: Option<f64>| v.map_or("null".to_owned(), |v| format!("{v:.3}"));
    println!(
        r#"{{"rows":{},"p50":{},"p99":{},"max":{}}}"#,
        seconds.len(),
        show(at(0.50)),
        show(at(0.99)),
        show(seconds.last().copied())
    );
    Ok(())
}
