//! `pixlake offsets reset`: move committed offsets with Kafka's vocabulary; a plan by default,
//! applied with `--execute`.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Subcommand};

use super::Outcome;
use crate::config::Config;
use crate::ops::reset::{self, Move, Scope, Target};
use crate::pix::time::parse_rfc3339;

/// Arguments of `pixlake offsets`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub command: OffsetsCommand,
}

/// `pixlake offsets …`
#[derive(Debug, Subcommand)]
pub enum OffsetsCommand {
    /// Move the offsets committed in Delta (rewinds remove the rows they will re-create).
    Reset(ResetArgs),
}

/// Arguments of `pixlake offsets reset`.
#[derive(Debug, ClapArgs)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "shift_by", "to_datetime", "by_duration"])))]
pub struct ResetArgs {
    /// To the earliest retained record.
    #[arg(long)]
    pub to_earliest: bool,
    /// To the end (skips everything not ingested yet).
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset (clamped to the retained range).
    #[arg(long, value_name = "N")]
    pub to_offset: Option<i64>,
    /// By this many records from the committed offset (negative: back).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// To the first record at or after this time (RFC 3339, e.g. 2026-11-20T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub to_datetime: Option<String>,
    /// To the first record at or after now minus this ISO-8601 duration (e.g. P1DT2H).
    #[arg(long, value_name = "DURATION")]
    pub by_duration: Option<String>,
    /// Only this pipeline (repeatable).
    #[arg(long = "pipeline", value_name = "NAME")]
    pub pipelines: Vec<String>,
    /// Only this topic, optionally some partitions: T or T:0,2 (repeatable).
    #[arg(long = "topic", value_name = "T[:P,…]")]
    pub topics: Vec<String>,
    /// Print the plan only (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Apply the plan.
    #[arg(long)]
    pub execute: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `pixlake offsets …`.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    let OffsetsCommand::Reset(a) = args.command;
    let target = if a.to_earliest {
        Target::Earliest
    } else if a.to_latest {
        Target::Latest
    } else if let Some(o) = a.to_offset {
        Target::Offset(o)
    } else if let Some(d) = a.shift_by {
        Target::ShiftBy(d)
    } else if let Some(t) = &a.to_datetime {
        Target::Time(parse_rfc3339(t).map_err(|e| anyhow::anyhow!("--to-datetime {t}: {}", e.message()))? / 1000)
    } else if let Some(d) = &a.by_duration {
        let ms = reset::parse_duration(d).map_err(anyhow::Error::msg)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        Target::Time(now - ms)
    } else {
        bail!("give one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime, --by-duration");
    };
    let mut scope = Scope { pipelines: a.pipelines, topics: Vec::new() };
    for t in &a.topics {
        scope.topics.push(Scope::parse_topic(t).map_err(anyhow::Error::msg)?);
    }
    let bar = super::progress::Bar::stderr();
    let moves = reset::reset(config, &scope, target, a.execute, &bar).context("cannot reset the offsets")?;
    bar.finish();
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&moves)?)?;
    } else {
        write_plan(&mut out, &moves, a.execute)?;
    }
    Ok(Outcome::Success)
}

fn write_plan(out: &mut impl Write, moves: &[Move], executed: bool) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<10} {:<28} {:>9} {:>12} {:>12} {:>14} {:>10}",
        "pipeline", "topic", "partition", "current", "new", "replaced rows", "skipped"
    )?;
    for m in moves {
        writeln!(
            out,
            "{:<10} {:<28} {:>9} {:>12} {:>12} {:>14} {:>10}",
            m.pipeline,
            m.topic,
            m.partition,
            m.current.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            m.new,
            m.replaced_rows,
            m.skipped_records
        )?;
    }
    if executed {
        writeln!(
            out,
            "applied: rows at or past the new offsets removed, offsets moved; the next ingest re-reads from there"
        )
    } else {
        writeln!(
            out,
            "dry run: nothing changed; add --execute to apply (stop pixlake ingest for these pipelines first)"
        )
    }
}
