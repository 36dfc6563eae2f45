//! The `pixlake` binary: parse arguments, load the configuration, set up logging, dispatch to
//! the subcommand, turn the result into an exit code (0 success, 1 findings, 2 error).

use std::process::ExitCode;

/// mimalloc: the generator and the batch builders allocate in many threads; glibc's malloc
/// showed as ~25 % of `produce` profiles, mimalloc halves that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use pixlake::cli::{Cli, Command, Outcome};
use pixlake::config::{Config, LogFormat};

/// Transparent huge pages off for this process. mimalloc asks the kernel for them
/// (`MADV_HUGEPAGE`), and every batch's fresh Arrow and Parquet buffers then fault in and zero
/// whole 2 MiB pages: `pixlake ingest` over 1.5 M events peaked at 0.89–1.05 GiB with them and
/// 0.79–0.87 GiB without (0.49–0.50 against 0.32–0.35 GiB with `ingest.memory_limit_mb: 512`),
/// at the same throughput (`scripts/bench.sh`). What `ingest.memory_limit_mb` bounds is then
/// close to what the process holds. A kernel without the call (it exists since Linux 3.15)
/// refuses it; nothing else changes.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a flag of this process.
    // prctl is variadic: the arguments are passed as the unsigned longs the kernel reads.
    unsafe {
        let (on, off): (libc::c_ulong, libc::c_ulong) = (1, 0);
        libc::prctl(libc::PR_SET_THP_DISABLE, on, off, off, off);
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref());
    // Logging follows the configuration; a configuration that does not load is reported below.
    let format = config.as_ref().map_or(LogFormat::Human, |c| c.telemetry.log_format);
    // The configuration's secrets are masked in every log line, whoever writes it.
    let secrets = config.as_ref().map(Config::secrets).unwrap_or_default();
    pixlake::telemetry::logging::init(format, secrets.clone());
    let result = config.map_err(anyhow::Error::from).and_then(|config| match cli.command {
        Command::Ingest(args) => pixlake::cli::ingest::run(&config, args),
        Command::Audit(args) => pixlake::cli::audit::run(&config, args),
        Command::Config(args) => pixlake::cli::config::run(&config, args),
        Command::Dlq(args) => pixlake::cli::dlq::run(&config, args),
        Command::Maintain(args) => pixlake::cli::maintain::run(&config, args),
        Command::Offsets(args) => pixlake::cli::offsets::run(&config, args),
        Command::Status(args) => pixlake::cli::status::run(&config, args),
        Command::Validate(args) => pixlake::cli::validate::run(&config, args),
        Command::Produce(args) => pixlake::cli::produce::run(&config, args),
        Command::Webhook(args) => pixlake::cli::webhook::run(&config, args),
        Command::ShipLog(args) => pixlake::cli::shiplog::run(&config, args),
    });
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(err) => {
            // The last line is masked like the log: a library error may quote a setting's value.
            let masker = pixlake::telemetry::mask::Masker::with_secrets(secrets);
            let err: &(dyn std::error::Error + 'static) = err.as_ref();
            let line = masker.mask(&format!("pixlake: {}", pixlake::telemetry::Chain(err))).into_owned();
            match format {
                // A log collector reading JSON lines gets the last word as one of them — written
                // here, not through the log filter, which could hide it.
                LogFormat::Json => {
                    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                    let event =
                        serde_json::json!({"timestamp": at, "level": "ERROR", "target": "pixlake", "message": line});
                    eprintln!("{event}");
                }
                LogFormat::Human => eprintln!("{line}"),
            }
            ExitCode::from(2)
        }
    }
}
