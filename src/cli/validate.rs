//! `pixlake validate FILE`: checks JSON-lines events offline with exactly the rules `ingest`
//! applies, printing one verdict per line and a summary by rule id.
//!
//! A line is either a message value, or a kcat `-J` envelope (`{"topic":…,"payload":…}`) whose
//! topic says which category the payload was published to — so
//! `kcat -C -J -e -t pix.payments | pixlake validate -` checks what is really on a topic.
//! `--topic` gives the category of bare lines; without it, each line's `event_type` decides.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;

use super::Outcome;
use crate::config::Config;
use crate::pix::json::{self, RawObject};
use crate::pix::rules::{Flags, HardRule, Rejection, SoftRule};
use crate::pix::time::{Micros, parse_rfc3339};
use crate::pix::{Category, Decoder};

/// Arguments of `pixlake validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON-lines file to check; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The topic (or category: payment, receipt, refund) the lines were published to; checked
    /// against each line's event_type (TOPIC_MISMATCH). Default: take it from event_type.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// One JSON object per input line on stdout ({line, ok, rule, field, message, flags});
    /// the summary goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Processing time for FUTURE_EVENT_TIME (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

/// The verdict on one line, as `--json` prints it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LineVerdict {
    /// 1-based line number.
    pub line: u64,
    /// Whether the line is a valid event.
    pub ok: bool,
    /// The hard rule that rejected it.
    pub rule: Option<&'static str>,
    /// The field at fault.
    pub field: Option<&'static str>,
    /// Why.
    pub message: Option<String>,
    /// Soft rules applied.
    pub flags: Vec<&'static str>,
}

/// Counts over a whole input.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub valid: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    pub flags: BTreeMap<&'static str, u64>,
}

impl Summary {
    /// Rejected lines.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let rejected = self.rejected_total();
        let pct = if self.lines == 0 { 0.0 } else { rejected as f64 * 100.0 / self.lines as f64 };
        writeln!(out, "{} lines: {} valid, {} rejected ({pct:.2} %)", self.lines, self.valid, rejected)?;
        if !self.rejected.is_empty() {
            writeln!(out, "rejected by rule:")?;
            for (rule, n) in &self.rejected {
                writeln!(out, "  {rule:<28} {n:>9}")?;
            }
        }
        if !self.flags.is_empty() {
            writeln!(out, "soft flags (valid lines):")?;
            for (rule, n) in &self.flags {
                writeln!(out, "  {rule:<28} {n:>9}")?;
            }
        }
        Ok(())
    }
}

/// Runs the command.
pub fn run(config: &Config, args: Args) -> anyhow::Result<Outcome> {
    let expected = match &args.topic {
        None => None,
        Some(t) => Some(config.category_of_topic(t).or_else(|| Category::from_event_type(t)).with_context(|| {
            let known: Vec<&str> = config.pipelines.iter().map(|p| p.topic.as_str()).collect();
            format!(
                "--topic {t}: no pipeline reads this topic; use one of {} or a category (payment, receipt, refund)",
                known.join(", ")
            )
        })?),
    };
    let now = match &args.now {
        Some(t) => parse_rfc3339(t).map_err(|e| anyhow::anyhow!("--now {t}: {}", e.message()))?,
        None => chrono::Utc::now().timestamp_micros(),
    };
    let input: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?)
    };
    let decoder = Decoder::new(config.validation.max_message_bytes);
    let stdout = io::stdout().lock();
    let mut out = io::BufWriter::new(stdout);
    let summary = check_lines(BufReader::with_capacity(1 << 20, input), &decoder, config, expected, now, |v| {
        if args.json {
            serde_json::to_writer(&mut out, &v)?;
            writeln!(out)
        } else {
            write_human(&mut out, &v)
        }
    })?;
    out.flush()?;
    if args.json {
        summary.write(&mut io::stderr().lock())?;
    } else {
        summary.write(&mut out)?;
        out.flush()?;
    }
    Ok(if summary.rejected_total() == 0 { Outcome::Success } else { Outcome::Findings })
}

fn write_human(out: &mut dyn Write, v: &LineVerdict) -> io::Result<()> {
    match v.rule {
        None if v.flags.is_empty() => writeln!(out, "line {}: ok", v.line),
        None => writeln!(out, "line {}: ok [{}]", v.line, v.flags.join(", ")),
        Some(rule) => {
            let field = v.field.filter(|f| !f.is_empty()).map(|f| format!(" at {f}")).unwrap_or_default();
            writeln!(out, "line {}: REJECTED {rule}{field}: {}", v.line, v.message.as_deref().unwrap_or(""))
        }
    }
}

/// Validates every line of `input`, calling `emit` with each verdict in input order.
pub fn check_lines(
    mut input: impl BufRead,
    decoder: &Decoder,
    config: &Config,
    expected: Option<Category>,
    now: Micros,
    mut emit: impl FnMut(LineVerdict) -> io::Result<()>,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf).context("cannot read the input")?;
        if n == 0 {
            break;
        }
        summary.lines += 1;
        let mut line: &[u8] = &buf;
        if let Some(l) = line.strip_suffix(b"\n") {
            line = l;
        }
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        let verdict = check_line(line, decoder, config, expected, now);
        let v = match verdict {
            Ok(flags) => {
                summary.valid += 1;
                let flags: Vec<&'static str> = flags.iter().map(SoftRule::id).collect();
                for f in &flags {
                    *summary.flags.entry(f).or_default() += 1;
                }
                LineVerdict { line: summary.lines, ok: true, rule: None, field: None, message: None, flags }
            }
            Err(r) => {
                *summary.rejected.entry(r.rule.id()).or_default() += 1;
                LineVerdict {
                    line: summary.lines,
                    ok: false,
                    rule: Some(r.rule.id()),
                    field: Some(r.field).filter(|f| !f.is_empty()),
                    message: Some(r.message),
                    flags: Vec::new(),
                }
            }
        };
        emit(v).context("cannot write the verdicts")?;
    }
    if summary.lines == 0 {
        bail!("the input is empty: nothing to validate");
    }
    Ok(summary)
}

crate::pix::fields::object_spec!(ENVELOPE = "" {
    TOPIC = "topic", PAYLOAD = "payload", KEY = "key", PARTITION = "partition", OFFSET = "offset",
});

fn check_line(
    line: &[u8],
    decoder: &Decoder,
    config: &Config,
    expected: Option<Category>,
    now: Micros,
) -> Result<Flags, Rejection> {
    match decoder.decode(Some(line), expected, now) {
        Ok(ev) => Ok(ev.flags),
        // No event_type: perhaps a kcat `-J` envelope around the real value.
        Err(r) if r.rule == HardRule::MissingField && r.field == "event_type" => match envelope(line) {
            Some((topic, payload)) => {
                let category = config.category_of_topic(&topic).or(expected);
                decoder.decode(payload.as_deref().map(str::as_bytes), category, now).map(|ev| ev.flags)
            }
            None => Err(r),
        },
        Err(r) => Err(r),
    }
}

/// The topic and payload of a kcat `-J` line (`{"topic":…,"partition":…,"payload":…}`).
fn envelope(line: &[u8]) -> Option<(String, Option<String>)> {
    let env = RawObject::parse_message(line, &ENVELOPE, None).ok()?;
    let topic = env.get(ENVELOPE::TOPIC).and_then(json::as_str)?.into_owned();
    let payload = env.get(ENVELOPE::PAYLOAD)?;
    Some((topic, json::as_str(payload).map(|p| p.into_owned())))
}
