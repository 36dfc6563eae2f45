//! The command line: one module per subcommand, each taking its parsed arguments and the
//! loaded configuration and returning an exit code. `main.rs` only dispatches.

pub mod audit;
pub mod config;
pub mod dlq;
pub mod ingest;
pub mod maintain;
pub mod offsets;
pub mod produce;
pub mod progress;
pub mod shiplog;
pub mod signals;
pub mod status;
pub mod validate;
pub mod webhook;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// pixlake: exactly-once archival of Pix events from Apache Kafka into Delta Lake.
#[derive(Debug, Parser)]
#[command(name = "pixlake", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: config/pixlake.yaml; built-in defaults if absent).
    /// Any key can be overridden by an environment variable PIXLAKE__SECTION__KEY.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the configured pipelines: Kafka → validated micro-batches → Delta, exactly once.
    Ingest(ingest::Args),
    /// Check the exactly-once invariant per partition against Kafka; exit 1 on any violation.
    Audit(audit::Args),
    /// The effective configuration: `config show` (secrets redacted).
    Config(config::Args),
    /// Dead letters: `dlq replay` re-validates quarantined records with the current rules.
    Dlq(dlq::Args),
    /// Compaction of small files, checkpoint and vacuum, with safe defaults.
    Maintain(maintain::Args),
    /// Move committed offsets (backfill without duplicates): `offsets reset --to-datetime …`.
    Offsets(offsets::Args),
    /// Per pipeline and partition: offsets committed in Delta, Kafka watermarks, lag, tables.
    Status(status::Args),
    /// Check JSON-lines events offline: one verdict per line and a summary.
    Validate(validate::Args),
    /// Publish realistic synthetic Pix events to Kafka or a JSON-lines file.
    Produce(produce::Args),
    /// Follow core-banking JSON-lines logs (tail -F) and publish each line, mapped, to Kafka.
    ShipLog(shiplog::Args),
    /// Receive the API Pix webhook (POST /pix) and publish its receipts and refunds to Kafka.
    Webhook(webhook::Args),
}

/// How a command ended, for `main` to turn into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything as asked.
    Success,
    /// The command ran but found problems (e.g. invalid lines).
    Findings,
}
