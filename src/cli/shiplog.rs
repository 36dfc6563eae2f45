//! `pixlake ship-log PATH…`: follow core-banking JSON-lines logs (or SPI's ISO 20022 messages)
//! and publish them to Kafka.

use anyhow::Context;
use clap::Args as ClapArgs;

use super::Outcome;
use crate::config::Config;

/// Arguments of `pixlake ship-log` (the mapping and the rest are in `ship_log:`).
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Files or patterns to follow (`*` and `?` in names; quote them so the shell does not
    /// expand them once): new files matching a pattern are picked up as they appear.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,
    /// What the files hold: JSON lines mapped by `ship_log.mapping`, or SPI's ISO 20022
    /// messages (pacs.008/002/004) read for `ship_log.iso20022.participant_ispb`. Default:
    /// `ship_log.format`.
    #[arg(long, value_enum)]
    pub format: Option<crate::config::shiplog::Format>,
}

/// Runs the shipper until SIGINT/SIGTERM.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    let stop = super::signals::stop_flag();
    let format = args.format.unwrap_or(config.ship_log.format);
    let s = crate::shiplog::run(config, &args.paths, format, stop).context("ship-log stopped")?;
    tracing::info!(
        records = s.lines,
        published = s.published,
        dead_lettered = s.dead_lettered,
        skipped = s.skipped,
        batches = s.batches,
        retried = s.retried,
        "ship-log: stopped; the checkpoint holds every acknowledged line"
    );
    Ok(Outcome::Success)
}
