//! `pixlake maintain`: compaction, checkpoints and vacuum with safe defaults.

use std::io::Write;

use anyhow::Context;
use clap::Args as ClapArgs;

use super::Outcome;
use crate::config::Config;
use crate::ops::maintain;
use crate::sink::delta::Upkeep;

/// Arguments of `pixlake maintain`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Only this pipeline's table (repeatable); `pix_quarantine` is always included.
    #[arg(long = "pipeline", value_name = "NAME")]
    pub pipelines: Vec<String>,
    /// Skip compaction of small files.
    #[arg(long)]
    pub no_compact: bool,
    /// Skip the checkpoint.
    #[arg(long)]
    pub no_checkpoint: bool,
    /// Skip vacuum.
    #[arg(long)]
    pub no_vacuum: bool,
    /// Compaction target file size in MiB (files under half of it are merged).
    #[arg(long, default_value_t = 128, value_name = "MIB")]
    pub target_file_mb: u64,
    /// Vacuum deletes files unreferenced for longer than this (hours; default 7 days, the
    /// Delta default).
    #[arg(long, default_value_t = 168, value_name = "HOURS")]
    pub retention_hours: u64,
    /// Allow a retention shorter than the table's (unsafe while ingest runs).
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs maintenance and prints what it did.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    let upkeep = Upkeep {
        compact_target: (!args.no_compact).then_some(args.target_file_mb.max(1) << 20),
        checkpoint: !args.no_checkpoint,
        vacuum_retention_hours: (!args.no_vacuum).then_some(args.retention_hours),
        force: args.force,
    };
    let bar = super::progress::Bar::stderr();
    let report = maintain::run(config, &args.pipelines, upkeep, &bar).with_context(|| {
        if args.force {
            "maintenance failed".to_owned()
        } else {
            "maintenance failed (a retention below the table's is refused: pass --force only while ingest is stopped)"
                .to_owned()
        }
    })?;
    bar.finish();
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(Outcome::Success);
    }
    for m in &report {
        match m.version {
            None => writeln!(out, "{}: no table yet", m.table)?,
            Some(v) => writeln!(
                out,
                "{}: version {v}; {} → {} files ({} compacted); checkpoint at {}, {} expired log files removed; {} files vacuumed",
                m.table,
                m.files_before,
                m.files_after,
                m.compacted_files,
                m.checkpoint_version.map_or_else(|| "-".to_owned(), |c| c.to_string()),
                m.log_files_removed,
                m.vacuumed_files
            )?,
        }
    }
    Ok(Outcome::Success)
}
