//! `pixlake status`: offsets in Delta vs Kafka, lag, tables; a table for people, `--json` for
//! tools.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args as ClapArgs;

use super::Outcome;
use crate::config::Config;
use crate::ops::status::{self, Status, TableStatus};
use crate::pix::time::format_rfc3339;

/// Arguments of `pixlake status`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Only this pipeline (repeatable); default: all.
    #[arg(long = "pipeline", value_name = "NAME")]
    pub pipelines: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Reads and prints the status.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let report = status::read(config, &args.pipelines, now_ms).context("cannot read the status")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write_table(&mut out, &report)?;
    }
    Ok(Outcome::Success)
}

fn describe(t: &TableStatus) -> String {
    match t.version {
        None => format!("{}: not created yet", t.table),
        Some(v) => format!(
            "{}: version {v}, last commit {}, {} rows in {} files",
            t.table,
            t.last_commit_ms.map_or_else(|| "unknown".to_owned(), |ms| format_rfc3339(ms * 1000)),
            t.rows,
            t.files
        ),
    }
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn write_table(out: &mut impl Write, s: &Status) -> std::io::Result<()> {
    for p in &s.pipelines {
        writeln!(
            out,
            "pipeline {} ({} → {}, group {} {}), lag {} records",
            p.pipeline,
            p.topic,
            p.table.table,
            p.group,
            p.group_state.as_deref().unwrap_or("not described"),
            p.lag_records
        )?;
        writeln!(out, "  {}", describe(&p.table))?;
        writeln!(
            out,
            "  {:>9} {:>12} {:>12} {:>12} {:>12} {:>12} {:>10} {:>9}  owner",
            "partition", "committed", "table", "quarantine", "low", "high", "lag", "lag_s"
        )?;
        for x in &p.partitions {
            writeln!(
                out,
                "  {:>9} {:>12} {:>12} {:>12} {:>12} {:>12} {:>10} {:>9}  {}",
                x.partition,
                opt(x.committed),
                opt(x.table_offset),
                opt(x.quarantine_offset),
                x.low,
                x.high,
                x.lag_records,
                x.lag_seconds.map_or_else(|| "?".to_owned(), |s| format!("{s:.1}")),
                x.owner.as_ref().map_or_else(|| "-".to_owned(), |o| format!("{} ({})", o.instance, o.host))
            )?;
        }
    }
    writeln!(out, "{}", describe(&s.quarantine))
}
