//! `pixlake ingest`: run the pipelines until SIGINT/SIGTERM (or, with `--until-caught-up`, until
//! everything present at start is committed), then print what was written.

use std::io::Write;

use anyhow::Context;
use clap::Args as ClapArgs;

use super::Outcome;
use crate::config::Config;
use crate::ingest::{self, Options, Report, Stopped};

/// Arguments of `pixlake ingest`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Exit 0 once every assigned partition is committed up to the high watermark seen when it
    /// was assigned (a backfill or a batch-style run).
    #[arg(long)]
    pub until_caught_up: bool,
    /// Run only this pipeline (repeatable); default: every configured pipeline.
    #[arg(long = "pipeline", value_name = "NAME")]
    pub pipelines: Vec<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs ingestion and prints the summary.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    let options =
        Options { until_caught_up: args.until_caught_up, pipelines: args.pipelines, stop: super::signals::stop_flag() };
    tracing::info!(config = %config.origin, warehouse = %config.warehouse.root, brokers = %config.kafka.brokers, "ingest starting");
    let report = ingest::run(config, options).context("ingest stopped")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", to_json(&report))?;
    } else {
        write_summary(&mut out, &report)?;
    }
    Ok(Outcome::Success)
}

fn to_json(report: &Report) -> serde_json::Value {
    let pipelines: Vec<_> = report
        .pipelines
        .iter()
        .map(|p| {
            let c = &p.totals.counts;
            serde_json::json!({
                "pipeline": p.name,
                "table": p.table,
                "stopped": match p.stopped { Stopped::Requested => "requested", Stopped::CaughtUp => "caught_up" },
                "records": c.records,
                "bytes": c.bytes,
                "rows": c.rows,
                "quarantined": c.quarantined(),
                "rejected_by_rule": c.rejected,
                "durable_skipped": c.durable_skipped,
                "redelivered": c.redelivered,
                "dlq_failures": c.dlq_failures,
                "commits": p.totals.commits,
                "fenced": p.totals.fenced,
                "rebalances": p.totals.rebalances,
                "restarts": p.totals.restarts,
                "retries": {"dlq": p.retries[0], "delta": p.retries[1], "offsets": p.retries[2]},
            })
        })
        .collect();
    serde_json::json!({ "elapsed_s": report.elapsed.as_secs_f64(), "pipelines": pipelines })
}

fn write_summary(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let secs = report.elapsed.as_secs_f64().max(1e-3);
    let records: u64 = report.pipelines.iter().map(|p| p.totals.counts.records).sum();
    writeln!(out, "ingested {records} records in {secs:.1} s ({:.0} records/s)", records as f64 / secs)?;
    writeln!(
        out,
        "{:<12} {:<16} {:>10} {:>10} {:>12} {:>8}",
        "pipeline", "table", "records", "rows", "quarantined", "commits"
    )?;
    for p in &report.pipelines {
        let c = &p.totals.counts;
        writeln!(
            out,
            "{:<12} {:<16} {:>10} {:>10} {:>12} {:>8}",
            p.name,
            p.table,
            c.records,
            c.rows,
            c.quarantined(),
            p.totals.commits
        )?;
    }
    let mut by_rule = std::collections::BTreeMap::<&str, u64>::new();
    for p in &report.pipelines {
        for (rule, n) in &p.totals.counts.rejected {
            *by_rule.entry(rule).or_default() += n;
        }
    }
    if !by_rule.is_empty() {
        writeln!(out, "rejected by rule (rows in pix_quarantine):")?;
        for (rule, n) in by_rule {
            writeln!(out, "  {rule:<32} {n:>8}")?;
        }
    }
    Ok(())
}
