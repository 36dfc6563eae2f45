//! `pixlake produce`: realistic synthetic Pix traffic to the configured topics (every record
//! acknowledged by Kafka before success is reported) or to a JSON-lines file.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::telemetry::progress::Progress;

use super::Outcome;
use crate::config::Config;
use crate::pix::Category;
use crate::pix::time::parse_rfc3339;
use crate::produce::sink::{FileSink, KafkaSink, Sink, Topics};
use crate::produce::{Generator, Settings};

/// Arguments of `pixlake produce`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kafka bootstrap servers (default: kafka.brokers from the configuration).
    #[arg(long, value_name = "HOST:PORT,…")]
    pub brokers: Option<String>,
    /// Write JSON lines to FILE instead of Kafka (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Stop after N events (default: run until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// At most R events per second (default: as fast as possible).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Share of records made invalid on purpose, cycling through every hard rule.
    #[arg(long, default_value_t = 0.0, value_name = "0..1")]
    pub invalid_ratio: f64,
    /// Share of records belonging to fraud episodes (night bursts, new devices, mules, MED refunds).
    #[arg(long, default_value_t = 0.005, value_name = "0..1")]
    pub fraud_ratio: f64,
    /// Seed: the same seed and settings give byte-identical output.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulated time of the first event (RFC 3339).
    #[arg(long, default_value = crate::produce::generator::DEFAULT_START, value_name = "TIME")]
    pub start: String,
    /// Simulated volume: how many events one simulated day holds (sets the day/night pacing).
    #[arg(long, default_value_t = 1_000_000.0, value_name = "N")]
    pub events_per_day: f64,
    /// ISPB of the institution whose view is simulated (its customers pay and receive).
    #[arg(long, default_value = "18236120", value_name = "ISPB")]
    pub institution: String,
    /// Also write `end_to_end_id,pattern` for every fraud record to FILE (ground truth; for a
    /// refund, the EndToEndId of the payment it returns, as its Kafka key).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
}

/// Runs the command.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    for (name, v) in [("--invalid-ratio", args.invalid_ratio), ("--fraud-ratio", args.fraud_ratio)] {
        if !(0.0..=1.0).contains(&v) {
            bail!("{name} {v}: give a share between 0 and 1, e.g. 0.05");
        }
    }
    if args.rate.is_some_and(|r| r <= 0.0 || !r.is_finite()) {
        bail!("--rate must be a positive number of events per second");
    }
    if !(args.events_per_day.is_finite() && args.events_per_day >= 1.0) {
        bail!("--events-per-day must be at least 1");
    }
    let start = parse_rfc3339(&args.start).map_err(|e| anyhow::anyhow!("--start {}: {}", args.start, e.message()))?;
    let institution = crate::produce::people::PARTICIPANTS
        .iter()
        .find(|p| p.0 == args.institution)
        .map(|p| p.0)
        .with_context(|| {
            format!(
                "--institution {}: not a participant this generator knows; use e.g. 18236120 (Nu) or 60701190 (Itaú)",
                args.institution
            )
        })?;
    let mut config = config.clone();
    if let Some(b) = &args.brokers {
        config.kafka.brokers = b.clone();
    }
    let topics = Topics::from_config(&config);
    let mut sink: Box<dyn Sink> = match &args.output {
        Some(p) if p.as_os_str() == "-" => Box::new(FileSink::new(std::io::stdout().lock(), topics)),
        Some(p) => {
            Box::new(FileSink::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?, topics))
        }
        None => Box::new(KafkaSink::new(&config, topics)?),
    };
    let mut labels = match &args.labels {
        Some(p) => {
            let mut f =
                std::io::BufWriter::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?);
            writeln!(f, "end_to_end_id,pattern")?;
            Some(f)
        }
        None => None,
    };
    let stop = super::signals::stop_flag();
    let generator = Generator::new(Settings {
        seed: args.seed,
        invalid_ratio: args.invalid_ratio,
        fraud_ratio: args.fraud_ratio,
        start,
        events_per_day: args.events_per_day,
        institution,
        max_message_bytes: config.validation.max_message_bytes,
    });
    let bar = super::progress::Bar::stderr();
    bar.step("publishing", args.count, "events");
    let began = Instant::now();
    let (mut sent, mut invalid, mut fraud) = (0u64, 0u64, 0u64);
    let mut by_category = [0u64; 3];
    for record in generator {
        if args.count.is_some_and(|c| sent >= c) || stop.load(Ordering::Relaxed) {
            break;
        }
        sink.send(&record)?;
        sent += 1;
        if sent.is_multiple_of(1024) {
            bar.advance(1024);
        }
        by_category[record.category as usize] += 1;
        invalid += u64::from(record.invalid.is_some());
        if let Some(pattern) = record.fraud {
            fraud += 1;
            if let Some(l) = labels.as_mut() {
                writeln!(l, "{},{}", record.key, pattern.as_str())?;
            }
        }
        if let Some(rate) = args.rate
            && sent % 64 == 0
            && let Some(wait) = pacing(sent, rate, began.elapsed())
        {
            std::thread::sleep(wait);
        }
    }
    bar.advance(sent % 1024);
    if let Some(mut l) = labels {
        l.flush()?;
    }
    bar.step("waiting for the acknowledgements", None, "");
    let delivery = sink.finish()?;
    bar.finish();
    let secs = began.elapsed().as_secs_f64();
    let target =
        args.output.as_ref().map_or_else(|| format!("Kafka at {}", config.kafka.brokers), |p| p.display().to_string());
    eprintln!(
        "pixlake produce: {sent} events to {target} in {secs:.1} s ({:.0} events/s, {:.1} MB/s): {} payments, {} receipts, {} refunds; {invalid} invalid, {fraud} in fraud episodes; {} acknowledged",
        sent as f64 / secs.max(1e-9),
        delivery.bytes as f64 / 1e6 / secs.max(1e-9),
        by_category[Category::Payment as usize],
        by_category[Category::Receipt as usize],
        by_category[Category::Refund as usize],
        delivery.delivered,
    );
    if delivery.failed > 0 || delivery.delivered < sent {
        bail!(
            "{} of {sent} records were not acknowledged (first error: {}); check the broker and the topics",
            sent - delivery.delivered.min(sent),
            delivery.first_error.unwrap_or_else(|| "none reported".into())
        );
    }
    Ok(Outcome::Success)
}

/// How long to wait so that `sent` events take at least `sent / rate` seconds (an average cap
/// over the run; when behind, no wait).
fn pacing(sent: u64, rate: f64, elapsed: Duration) -> Option<Duration> {
    let due = Duration::from_secs_f64(sent as f64 / rate);
    due.checked_sub(elapsed).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_caps_the_average_rate() {
        // 1 000 events at 500/s are due at 2 s.
        assert_eq!(pacing(1000, 500.0, Duration::from_millis(500)), Some(Duration::from_millis(1500)));
        assert_eq!(pacing(1000, 500.0, Duration::from_secs(2)), None);
        assert_eq!(pacing(1000, 500.0, Duration::from_secs(3)), None, "behind: no wait");
        assert_eq!(pacing(0, 500.0, Duration::ZERO), None);
    }
}
