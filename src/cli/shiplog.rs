//! `pixlake ship-log PATH…`: follow core-banking JSON-lines logs and publish them to Kafka.

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
}

/// Runs the shipper until SIGINT/SIGTERM.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    let stop = super::signals::stop_flag();
    let s = crate::shiplog::run(config, &args.paths, stop).context("ship-log stopped")?;
    tracing::info!(
        lines = s.lines,
        published = s.published,
        dead_lettered = s.dead_lettered,
        batches = s.batches,
        retried = s.retried,
        "ship-log: stopped; the checkpoint holds every acknowledged line"
    );
    Ok(Outcome::Success)
}
