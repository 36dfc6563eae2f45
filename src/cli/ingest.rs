//! `pixlake ingest`: run the pipelines until SIGINT/SIGTERM (or, with `--until-caught-up`, until
//! everything present at start is committed), then print what was written.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Args as ClapArgs;

use super::Outcome;
use crate::config::Config;
use crate::ingest::{self, CaughtUpBy, Options, PipelineReport, Report, Stopped};

/// Arguments of `pixlake ingest`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Exit 0 once every partition of the pipelines' topics is committed up to the high
    /// watermark seen at start — by this instance or another (a backfill or a batch-style
    /// run). Partitions another member holds are waited for, and named in the log.
    #[arg(long)]
    pub until_caught_up: bool,
    /// With --until-caught-up: give up after this long (ISO-8601 duration such as PT20M, or
    /// seconds: 1200, 20s), committing what was read, and exit 2 naming the partitions short of
    /// the end.
    #[arg(long, value_name = "D", requires = "until_caught_up", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Run only this pipeline (repeatable); default: every configured pipeline.
    #[arg(long = "pipeline", value_name = "NAME")]
    pub pipelines: Vec<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs ingestion and prints the summary.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    // A batch run beside a daemon on the same host must not take the daemon's place in its
    // groups: with the host name as instance id, a batch run is `{host}-batch`.
    let mut config = config.clone();
    if args.until_caught_up && config.ingest.instance_id_is_host {
        config.ingest.instance_id.push_str("-batch");
    }
    let config = &config;
    let uncommitted = super::signals::Uncommitted::default();
    let options = Options {
        until_caught_up: args.until_caught_up,
        timeout: args.timeout,
        pipelines: args.pipelines,
        stop: super::signals::stop_flag_telling(uncommitted.clone()),
        uncommitted,
    };
    tracing::info!(config = %config.origin, instance_id = %config.ingest.instance_id, warehouse = %config.warehouse.root,
        brokers = %config.kafka.brokers, "ingest starting");
    let report = ingest::run(config, options).context("ingest stopped")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", to_json(&report))?;
    } else {
        write_summary(&mut out, &report)?;
    }
    let short: Vec<String> = report
        .pipelines
        .iter()
        .filter_map(|p| match &p.stopped {
            Stopped::TimedOut(trailing) => {
                Some(format!("pipeline {} ({}): {}", p.name, p.topic, short_of_the_end(trailing)))
            }
            _ => None,
        })
        .collect();
    if !short.is_empty() {
        let secs = args.timeout.unwrap_or_default().as_secs_f64();
        anyhow::bail!(
            "--until-caught-up gave up after --timeout {secs} s, not every partition committed up to the end seen at \
             start: {}. What this process read is committed; run it again, or raise --timeout",
            short.join("; ")
        );
    }
    Ok(Outcome::Success)
}

/// `0 (committed 5 of 9), 2 (…) held by another member; 1 (…) still being read here`.
fn short_of_the_end(trailing: &[ingest::Trailing]) -> String {
    let list = |owned: bool| {
        trailing.iter().filter(|t| t.owned == owned).map(ToString::to_string).collect::<Vec<_>>().join(", ")
    };
    let (theirs, mine) = (list(false), list(true));
    let mut parts = Vec::new();
    if !theirs.is_empty() {
        parts.push(format!("partitions {theirs} held by another member (see the log for who)"));
    }
    if !mine.is_empty() {
        parts.push(format!("partitions {mine} this process was still reading"));
    }
    parts.join("; ")
}

/// `--timeout`: an ISO-8601 duration (`PT20M`), or seconds (`1200`, `20s`).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let seconds = s.strip_suffix('s').unwrap_or(s);
    let secs = match seconds.parse::<f64>() {
        Ok(secs) => secs,
        Err(_) => {
            crate::ops::reset::parse_duration(s).map_err(|e| format!("{e}, or a number of seconds like 20s"))? as f64
                / 1000.0
        }
    };
    // A year is more than any batch run needs, and keeps `start + timeout` representable.
    if !(secs > 0.0 && secs <= 366.0 * 86_400.0) {
        return Err(format!("`{s}`: the timeout must be more than 0 seconds and at most a year"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

/// The partitions of an `--until-caught-up` run by who committed them up to the end.
fn by_whom(p: &PipelineReport) -> [(CaughtUpBy, Vec<i32>); 3] {
    [CaughtUpBy::ThisProcess, CaughtUpBy::Another, CaughtUpBy::Already]
        .map(|who| (who, p.caught_up.iter().filter(|(_, w)| **w == who).map(|(p, _)| *p).collect()))
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
                "stopped": match p.stopped {
                    Stopped::Requested => "requested",
                    Stopped::CaughtUp => "caught_up",
                    Stopped::TimedOut(_) => "timed_out",
                },
                "caught_up": serde_json::Value::Object(
                    by_whom(p).into_iter().map(|(who, parts)| (who.as_str().to_owned(), serde_json::json!(parts))).collect(),
                ),
                "trailing": match &p.stopped {
                    Stopped::TimedOut(t) => t.iter().map(|t| serde_json::json!({
                        "partition": t.partition,
                        "committed": t.committed.resume(),
                        "table_offset": t.committed.category,
                        "quarantine_offset": t.committed.quarantine,
                        "target": t.high,
                        "owned": t.owned,
                    })).collect::<Vec<_>>(),
                    _ => Vec::new(),
                },
                "records": c.records,
                "bytes": c.bytes,
                "rows": c.rows,
                "quarantined": c.quarantined(),
                "rejected_by_rule": c.rejected,
                "durable_skipped": c.durable_skipped,
                "redelivered": c.redelivered,
                "dlq_failures": c.dlq_failures,
                "commits": p.totals.commits,
                "commit_seconds": p.totals.commit_time.as_secs_f64(),
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
    for p in report.pipelines.iter().filter(|p| !p.caught_up.is_empty() || matches!(p.stopped, Stopped::TimedOut(_))) {
        let parts = |v: &[i32]| {
            if v.is_empty() { "none".to_owned() } else { v.iter().map(i32::to_string).collect::<Vec<_>>().join(",") }
        };
        let [(_, mine), (_, others), (_, already)] = by_whom(p);
        writeln!(
            out,
            "{}: partitions committed up to the end by this process: {}; by another: {}; already at start: {}",
            p.name,
            parts(&mine),
            parts(&others),
            parts(&already)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_iso_durations_or_seconds() {
        assert_eq!(parse_timeout("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_timeout("1200"), Ok(Duration::from_secs(1200)));
        assert_eq!(parse_timeout("PT20M"), Ok(Duration::from_secs(1200)));
        assert_eq!(parse_timeout("PT1.5S"), Ok(Duration::from_millis(1500)));
        for bad in ["0", "-3", "soon", "PT", "20m", "0s", "1e20", "NaN", "P9999W"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
