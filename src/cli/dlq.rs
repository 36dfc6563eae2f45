//! `pixlake dlq replay`: move quarantined records that pass the current rules to their tables.

use std::io::Write;

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};

use super::Outcome;
use crate::config::Config;
use crate::ops::replay::{self, Filter};
use crate::pix::time::parse_rfc3339;
use crate::probe::Probe;

/// Arguments of `pixlake dlq`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// `pixlake dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Re-validate quarantined records with the current rules; move those that pass.
    Replay(ReplayArgs),
}

/// Arguments of `pixlake dlq replay`.
#[derive(Debug, ClapArgs)]
pub struct ReplayArgs {
    /// Only records rejected for this rule id (repeatable).
    #[arg(long = "rule", value_name = "RULE_ID")]
    pub rules: Vec<String>,
    /// Only records of this source topic (repeatable).
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Only records whose Kafka timestamp is at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only records whose Kafka timestamp is before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn time(flag: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    v.as_ref().map(|t| parse_rfc3339(t).map_err(|e| anyhow::anyhow!("{flag} {t}: {}", e.message()))).transpose()
}

/// Runs `pixlake dlq …`.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    let DlqCommand::Replay(a) = args.command;
    let filter = Filter {
        rules: a.rules,
        topics: a.topics,
        since: time("--since", &a.since)?,
        until: time("--until", &a.until)?,
    };
    let bar = super::progress::Bar::stderr();
    let report = replay::replay(config, &filter, &Probe::from_env(), &bar).context("cannot replay the dead letters")?;
    bar.finish();
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(Outcome::Success);
    }
    for (pipeline, r) in &report {
        let moved: u64 = r.moved.values().sum();
        writeln!(
            out,
            "{pipeline}: moved {moved} to the table, {} still rejected, {} deferred, {} completed from an earlier run",
            r.still_rejected.values().sum::<u64>(),
            r.deferred,
            r.completed_from_earlier_run
        )?;
        for (rule, n) in &r.moved {
            writeln!(out, "  moved  {rule:<32} {n:>8}")?;
        }
        for (rule, n) in &r.still_rejected {
            writeln!(out, "  still  {rule:<32} {n:>8}")?;
        }
    }
    Ok(Outcome::Success)
}
