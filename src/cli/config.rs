//! `pixlake config show`: the effective configuration — the file, the `PIXLAKE__…` environment
//! and the defaults, validated — with every secret redacted, as YAML (or JSON).

use std::io::Write;

use clap::{Args as ClapArgs, Subcommand};

use super::Outcome;
use crate::config::Config;
use crate::ingest::memory;

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

/// What `config show` prints: [`Config::effective`], with `ingest.memory_limit_mb` as ingest
/// applies it to all the pipelines (the default is raised for more than six; see
/// `ingest::memory`). A configured limit too small for them is shown as configured: ingest
/// refuses it, or runs fewer pipelines with `--pipeline`.
fn shown(config: &Config) -> serde_json::Value {
    let mut effective = config.effective();
    if let Ok(Some((limit, _))) =
        memory::effective(config.ingest.memory_limit, config.pipelines.len(), config.batch.max_bytes)
    {
        effective["ingest"]["memory_limit_mb"] = (limit >> 20).into();
    }
    effective
}

/// Prints the configuration.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    let ConfigCommand::Show(show) = args.command;
    let effective = shown(config);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pipelines(n: usize) -> String {
        let list: Vec<String> =
            (0..n).map(|i| format!("{{name: p{i}, event_type: payment, topic: t{i}, table: t{i}}}")).collect();
        format!("pipelines: [{}]", list.join(", "))
    }

    #[test]
    fn the_memory_limit_shown_is_the_one_in_effect() {
        let show =
            |yaml: &str| shown(&Config::from_yaml(yaml, "test", []).unwrap())["ingest"]["memory_limit_mb"].clone();
        assert_eq!(show(""), 512);
        assert_eq!(show("ingest: {memory_limit_mb: 0}"), 0);
        // Eight pipelines raise the default to 128 + 8 × 56 MiB; a configured limit is as set.
        assert_eq!(show(&pipelines(8)), 576);
        assert_eq!(show(&format!("{}\ningest: {{memory_limit_mb: 2048}}", pipelines(8))), 2048);
        assert_eq!(show(&format!("{}\ningest: {{memory_limit_mb: 512}}", pipelines(8))), 512);
    }
}
