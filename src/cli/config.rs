//! `pixlake config show`: the effective configuration — the file, the `PIXLAKE__…` environment
//! and the defaults, validated — with every secret redacted, as YAML (or JSON).

use std::io::Write;

use clap::{Args as ClapArgs, Subcommand};

use super::Outcome;
use crate::config::Config;

/// Arguments of `pixlake config`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// `pixlake config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (file + environment + defaults), secrets redacted.
    Show(ShowArgs),
}

/// Arguments of `pixlake config show`.
#[derive(Debug, ClapArgs)]
pub struct ShowArgs {
    /// JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
}

/// Prints the configuration.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    let ConfigCommand::Show(show) = args.command;
    let effective = config.effective();
    let text = if show.json {
        serde_json::to_string_pretty(&effective)?
    } else {
        serde_saphyr::to_string(&effective)
            .map_err(|e| anyhow::anyhow!("cannot write the configuration as YAML: {e}"))?
    };
    // Where it came from goes to stderr: stdout is exactly the YAML or JSON document.
    eprintln!("pixlake config show: {} + PIXLAKE__ environment + defaults; secrets redacted", config.origin);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", text.trim_end())?;
    Ok(Outcome::Success)
}
