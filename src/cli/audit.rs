//! `pixlake audit`: the invariant per partition, against the records Kafka still holds; exit 1
//! on any violation.

use std::io::Write;

use anyhow::Context;
use clap::Args as ClapArgs;

use super::Outcome;
use crate::config::Config;
use crate::ops::audit;

/// Arguments of `pixlake audit`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Only this pipeline (repeatable); default: all.
    #[arg(long = "pipeline", value_name = "NAME")]
    pub pipelines: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the audit and prints it; `Findings` (exit 1) on any violation.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    let bar = super::progress::Bar::stderr();
    let report = audit::run(config, &args.pipelines, &bar).context("cannot audit")?;
    bar.finish();
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        writeln!(
            out,
            "{:<10} {:>9} {:>12} {:>10} {:>10} {:>8} {:>10} {:>8}",
            "pipeline", "partition", "committed", "checked", "rows", "missing", "duplicates", "beyond"
        )?;
        for p in &report.partitions {
            let f = &p.findings;
            writeln!(
                out,
                "{:<10} {:>9} {:>12} {:>10} {:>10} {:>8} {:>10} {:>8}",
                p.pipeline,
                p.partition,
                opt(p.committed),
                p.checked,
                f.rows,
                f.missing,
                f.duplicates,
                f.beyond
            )?;
            for (what, at) in
                [("missing", f.first_missing), ("duplicate", f.first_duplicate), ("beyond its offset", f.first_beyond)]
            {
                if let Some(o) = at {
                    writeln!(out, "  VIOLATION {}:{}: first {what} at offset {o}", p.topic, p.partition)?;
                }
            }
        }
        if report.violations == 0 {
            writeln!(out, "audit passed: every committed record exactly once, {} partitions", report.partitions.len())?;
        } else {
            writeln!(out, "audit FAILED: {} violation(s)", report.violations)?;
        }
    }
    Ok(if report.violations == 0 { Outcome::Success } else { Outcome::Findings })
}
