//! The `pixlake` binary: parse arguments, set up logging, load the configuration, dispatch to
//! the subcommand, turn the result into an exit code (0 success, 1 findings, 2 error).

use std::process::ExitCode;

/// mimalloc: the generator and the batch builders allocate in many threads; glibc's malloc
/// showed as ~25 % of `produce` profiles, mimalloc halves that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use pixlake::cli::{Cli, Command, Outcome};
use pixlake::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result =
        Config::load(cli.config.as_deref()).map_err(anyhow::Error::from).and_then(|config| match cli.command {
            Command::Ingest(args) => pixlake::cli::ingest::run(&config, args),
            Command::Audit(args) => pixlake::cli::audit::run(&config, args),
            Command::Dlq(args) => pixlake::cli::dlq::run(&config, args),
            Command::Maintain(args) => pixlake::cli::maintain::run(&config, args),
            Command::Offsets(args) => pixlake::cli::offsets::run(&config, args),
            Command::Status(args) => pixlake::cli::status::run(&config, args),
            Command::Validate(args) => pixlake::cli::validate::run(&config, args),
            Command::Produce(args) => pixlake::cli::produce::run(&config, args),
        });
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(err) => {
            eprintln!("pixlake: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// pixlake at info; the libraries' per-commit chatter (snapshot building, binary columns
/// without statistics) only when it is a problem.
const DEFAULT_LOG: &str = "info,rdkafka=warn,librdkafka=warn,buoyant_kernel=warn,deltalake_core::writer::stats=error,deltalake_core::kernel::transaction=error";

/// Human-readable logs on stderr; `PIXLAKE_LOG` (or `RUST_LOG`) sets the filter.
fn init_logging() {
    let filter =
        std::env::var("PIXLAKE_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| DEFAULT_LOG.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
