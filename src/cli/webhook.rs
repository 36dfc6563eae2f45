//! `pixlake webhook`: serve the API Pix webhook until SIGINT/SIGTERM, then drain.

use anyhow::Context;
use clap::Args as ClapArgs;

use super::Outcome;
use crate::config::Config;

/// Arguments of `pixlake webhook` (everything else is in `webhook:` of the configuration).
#[derive(Debug, ClapArgs)]
pub struct Args {}

/// Runs the webhook receiver.
pub fn run(config: &Config, _args: Args) -> anyhow::Result<Outcome> {
    let stop = super::signals::stop_flag();
    let summary = crate::webhook::run(config, stop).context("the webhook stopped")?;
    if summary.unflushed > 0 {
        anyhow::bail!(
            "{} event(s) were still unacknowledged by Kafka at exit; their requests were not answered 200, so the \
             PSPs retry them",
            summary.unflushed
        );
    }
    tracing::info!(connections = summary.connections, "webhook: stopped; every answered request is in Kafka");
    Ok(Outcome::Success)
}
