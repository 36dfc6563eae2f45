//! `ship_log:` — the core-banking log shipper (`pixlake ship-log PATH…`) and its field mapping.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::shiplog::mapping::{FieldRule, Kind, Mapping, Origin};

/// `ship_log:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShipLog {
    #[serde(default = "default_checkpoint")]
    checkpoint_path: String,
    #[serde(default = "default_source")]
    source: String,
    #[serde(default = "default_time_zone")]
    time_zone: String,
    #[serde(default = "default_batch_lines")]
    batch_lines: usize,
    #[serde(default = "default_poll_interval_ms")]
    poll_interval_ms: u64,
    #[serde(default)]
    mapping: Option<RawMapping>,
    /// `json_lines` (default) or `iso20022`.
    #[serde(default)]
    format: Format,
    #[serde(default)]
    iso20022: Option<RawIso20022>,
}

/// What the followed files hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One JSON object per line, mapped by `ship_log.mapping`.
    #[default]
    #[value(name = "json-lines", alias = "json_lines")]
    JsonLines,
    /// SPI's ISO 20022 messages (pacs.008, pacs.002, pacs.004), one per file or concatenated.
    #[value(name = "iso20022")]
    Iso20022,
}

/// `ship_log.iso20022:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIso20022 {
    participant_ispb: String,
    #[serde(default = "default_iso_source")]
    source: String,
    #[serde(default = "default_join_path")]
    join_path: String,
    #[serde(default = "default_join_window_seconds")]
    join_window_seconds: u64,
}

/// `ship_log.iso20022` that passed every check.
#[derive(Clone, Debug)]
pub struct Iso20022Config {
    /// Our participant and the events' `source`.
    pub reader: crate::shiplog::iso20022::Reader,
    /// The join store (one per shipper).
    pub join_path: PathBuf,
    /// How long an original waits for its status report, and a status for its original.
    pub join_window: Duration,
}

fn default_iso_source() -> String {
    "spi-log".into()
}
fn default_join_path() -> String {
    "data/ship-log.iso20022.redb".into()
}
fn default_join_window_seconds() -> u64 {
    3600
}

impl Default for RawShipLog {
    fn default() -> Self {
        RawShipLog {
            checkpoint_path: default_checkpoint(),
            source: default_source(),
            time_zone: default_time_zone(),
            batch_lines: default_batch_lines(),
            poll_interval_ms: default_poll_interval_ms(),
            mapping: None,
            format: Format::default(),
            iso20022: None,
        }
    }
}

/// `ship_log.mapping:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    event_type: RawRule,
    fields: BTreeMap<String, RawRule>,
}

/// One field's rule: `{from: path}` or `{const: value}`, and how to convert it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    from: Option<String>,
    #[serde(default, rename = "const")]
    constant: Option<serde_json::Value>,
    #[serde(default)]
    map: Option<BTreeMap<String, serde_json::Value>>,
    /// `centavos` or `reais`.
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    time: bool,
    #[serde(default)]
    optional: bool,
}

fn default_checkpoint() -> String {
    "data/ship-log.checkpoint.json".into()
}
fn default_source() -> String {
    "core-banking-log".into()
}
fn default_time_zone() -> String {
    "America/Sao_Paulo".into()
}
fn default_batch_lines() -> usize {
    5000
}
fn default_poll_interval_ms() -> u64 {
    200
}

/// The shipper's settings that passed every check.
#[derive(Clone, Debug)]
pub struct ShipLogConfig {
    pub checkpoint_path: PathBuf,
    /// Lines per batch: published, acknowledged, then checkpointed together (also the most a
    /// restart can repeat).
    pub batch_lines: usize,
    pub poll_interval: Duration,
    /// Required to run the shipper on JSON lines (checked when it starts).
    pub mapping: Option<Mapping>,
    /// The default format (`ship-log --format` overrides it).
    pub format: Format,
    /// Required to run the shipper on ISO 20022 messages (checked when it starts).
    pub iso20022: Option<Iso20022Config>,
}

impl ShipLogConfig {
    /// As `config show` prints it.
    pub fn effective(&self) -> serde_json::Value {
        serde_json::json!({
            "checkpoint_path": self.checkpoint_path,
            "batch_lines": self.batch_lines,
            "poll_interval_ms": self.poll_interval.as_millis() as u64,
            "mapping": self.mapping.as_ref().map(|m| serde_json::json!({
                "source": m.source,
                "time_zone": m.time_zone.name(),
                "fields": m.fields.iter().map(|f| f.target.join(".")).collect::<Vec<_>>(),
            })),
            "format": match self.format { Format::JsonLines => "json_lines", Format::Iso20022 => "iso20022" },
            "iso20022": self.iso20022.as_ref().map(|i| serde_json::json!({
                "participant_ispb": i.reader.participant,
                "source": i.reader.source,
                "join_path": i.join_path,
                "join_window_seconds": i.join_window.as_secs(),
            })),
        })
    }
}

/// The wire fields a mapping may set (the rest of the envelope is pixlake's).
fn settable(target: &str) -> bool {
    target == "event_id" || target == "event_time" || target.strip_prefix("data.").is_some_and(|r| !r.is_empty())
}

fn rule(key: &str, target: &str, raw: RawRule, problems: &mut Vec<String>) -> Option<FieldRule> {
    let origin = match (raw.from, raw.constant) {
        (Some(f), None) if !f.trim().is_empty() => Origin::From(f.trim().split('.').map(str::to_owned).collect()),
        (None, Some(c)) => Origin::Const(c),
        _ => {
            problems.push(format!("{key}: give exactly one of `from: source.field.path` or `const: value`"));
            return None;
        }
    };
    let kind = match (raw.amount.as_deref(), raw.time) {
        (None, false) => Kind::Plain,
        (Some("centavos"), false) => Kind::Centavos,
        (Some("reais"), false) => Kind::Reais,
        (None, true) => Kind::Time,
        (Some(other), false) => {
            problems.push(format!("{key}.amount: `{other}` is not one of centavos, reais"));
            return None;
        }
        (Some(_), true) => {
            problems.push(format!("{key}: a field is an amount or a time, not both"));
            return None;
        }
    };
    Some(FieldRule {
        target: target.split('.').map(str::to_owned).collect(),
        origin,
        map: raw.map,
        kind,
        optional: raw.optional,
    })
}

impl RawShipLog {
    /// Checks every value, appending one line per problem.
    pub fn validate(self, problems: &mut Vec<String>) -> ShipLogConfig {
        let time_zone = self.time_zone.parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
            problems.push(format!(
                "ship_log.time_zone: `{}` is not an IANA zone such as America/Sao_Paulo",
                self.time_zone
            ));
            chrono_tz::America::Sao_Paulo
        });
        if !(1..=100_000).contains(&self.batch_lines) {
            problems.push(format!("ship_log.batch_lines: {} is outside 1 ..= 100000", self.batch_lines));
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            problems.push(format!("ship_log.poll_interval_ms: {} is outside 10 ..= 60000", self.poll_interval_ms));
        }
        let source = self.source.trim().to_owned();
        if !(1..=64).contains(&source.chars().count()) {
            problems.push("ship_log.source: must be 1 to 64 characters (the events' `source`)".into());
        }
        if self.checkpoint_path.trim().is_empty() {
            problems.push("ship_log.checkpoint_path: empty; give a file path (one per shipper)".into());
        }
        let mapping = self.mapping.and_then(|m| {
            let event_type = rule("ship_log.mapping.event_type", "event_type", m.event_type, problems);
            let mut fields = Vec::new();
            for (target, raw) in m.fields {
                let key = format!("ship_log.mapping.fields.{target}");
                if !settable(&target) {
                    problems.push(format!("{key}: not a field a mapping sets; use event_id, event_time or data.…"));
                    continue;
                }
                fields.extend(rule(&key, &target, raw, problems));
            }
            if !fields.iter().any(|f| f.target == ["event_time"]) {
                problems.push("ship_log.mapping.fields.event_time: required (every event has its time)".into());
            }
            Some(Mapping { source: source.clone(), event_type: event_type?, fields, time_zone })
        });
        let iso20022 = self.iso20022.map(|i| {
            let participant = i.participant_ispb.trim().to_owned();
            if !crate::pix::ids::is_ispb(participant.as_bytes()) || participant == crate::pix::ids::BCB_ISPB {
                problems.push(format!(
                    "ship_log.iso20022.participant_ispb: `{participant}` is not a participant's ISPB (8 characters [0-9A-Z], not the Banco Central's 00038166); give your PSP's, e.g. \"60701190\""
                ));
            }
            let source = i.source.trim().to_owned();
            if !(1..=64).contains(&source.chars().count()) {
                problems.push("ship_log.iso20022.source: must be 1 to 64 characters (the events' `source`)".into());
            }
            if i.join_path.trim().is_empty() {
                problems.push("ship_log.iso20022.join_path: empty; give a file path (one per shipper)".into());
            }
            if !(1..=7 * 24 * 3600).contains(&i.join_window_seconds) {
                problems.push(format!(
                    "ship_log.iso20022.join_window_seconds: {} is outside 1 ..= 604800 (a week)",
                    i.join_window_seconds
                ));
            }
            Iso20022Config {
                reader: crate::shiplog::iso20022::Reader { participant, source },
                join_path: i.join_path.trim().into(),
                join_window: Duration::from_secs(i.join_window_seconds),
            }
        });
        ShipLogConfig {
            checkpoint_path: self.checkpoint_path.trim().into(),
            batch_lines: self.batch_lines,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            mapping,
            format: self.format,
            iso20022,
        }
    }
}
