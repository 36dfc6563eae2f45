//! What a batch of records publishes: each line mapped by `ship_log.mapping`, or each ISO 20022
//! message read and joined with the originals its status reports name ([`super::join`]); what
//! cannot be, to the DLQ with its rule and where it was read.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};

use super::{ShipLogError, follow, iso20022, join, mapping};
use crate::config::Config;
use crate::config::shiplog::Format;
use crate::pix::{Category, HardRule};

/// Why a record goes to the DLQ topic, and where it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dead {
    pub rule: crate::pix::HardRule,
    /// The wire field (JSON lines) or the element path (ISO 20022) at fault.
    pub field: String,
    pub message: String,
    pub file: std::path::PathBuf,
    pub line: u64,
    pub offset: u64,
}

impl Dead {
    fn of(line: &follow::Line, rule: crate::pix::HardRule, field: String, message: String) -> Dead {
        Dead { rule, field, message, file: line.path.clone(), line: line.number, offset: line.offset }
    }
}

/// DLQ headers of a record that could not be mapped (SPEC §4's error headers; the source is a
/// file, so `pixlake.source.file` / `.line` / `.offset` instead of topic, partition, offset).
pub fn dead_letter_headers(why: &Dead) -> OwnedHeaders {
    let pairs = [
        (crate::deadletter::headers::RULE, why.rule.id().to_owned()),
        (crate::deadletter::headers::FIELD, why.field.clone()),
        (crate::deadletter::headers::MESSAGE, why.message.clone()),
        ("pixlake.source.file", why.file.display().to_string()),
        ("pixlake.source.line", why.line.to_string()),
        ("pixlake.source.offset", why.offset.to_string()),
        (crate::deadletter::headers::PIPELINE, "ship-log".to_owned()),
    ];
    pairs.iter().fold(OwnedHeaders::new_with_capacity(pairs.len()), |h, (key, value)| {
        h.insert(Header { key, value: Some(value.as_bytes()) })
    })
}

/// One record to publish: an event to its category's topic, or a refused record to the DLQ.
#[derive(Debug)]
pub struct Out {
    /// `None`: the DLQ topic.
    pub category: Option<Category>,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub dead: Option<Dead>,
}

impl Out {
    fn event(category: Category, key: Option<String>, value: Vec<u8>) -> Out {
        Out { category: Some(category), key, value, dead: None }
    }

    /// `bytes` to the DLQ, cut to `max` (a larger record would be refused by Kafka).
    fn dead(bytes: &[u8], max: usize, why: Dead) -> Out {
        Out { category: None, key: None, value: bytes[..bytes.len().min(max)].to_vec(), dead: Some(why) }
    }
}

/// Turns the records of a batch into what is published: by the JSON-lines mapping, or as
/// ISO 20022 messages joined with the originals they report on.
pub enum Shaper {
    Json(mapping::Mapping),
    Iso(Box<Iso>),
}

/// ISO 20022 messages, joined with the originals their status reports name.
pub struct Iso {
    reader: iso20022::Reader,
    store: join::JoinStore,
    /// The batch in hand: committed once Kafka acknowledged it.
    batch: Option<join::Batch>,
    window: Duration,
    /// When waiting statuses were last looked at without a record to read.
    swept: std::time::Instant,
    /// Message types skipped, each said once.
    said: std::collections::BTreeSet<String>,
}

/// How often an idle ISO 20022 shipper looks for statuses that waited too long.
const IDLE_SWEEP: Duration = Duration::from_secs(60);

impl Shaper {
    /// The shaper of `format`, from `ship_log`.
    pub fn new(config: &Config, format: Format) -> Result<Shaper, ShipLogError> {
        let s = &config.ship_log;
        Ok(match format {
            Format::JsonLines => Shaper::Json(s.mapping.clone().ok_or(ShipLogError::NoMapping)?),
            Format::Iso20022 => {
                let iso = s.iso20022.as_ref().ok_or(ShipLogError::NoIso20022)?;
                Shaper::Iso(Box::new(Iso {
                    reader: iso.reader.clone(),
                    store: join::JoinStore::open(&iso.join_path, iso.join_window)?,
                    batch: None,
                    window: iso.join_window,
                    swept: std::time::Instant::now(),
                    said: Default::default(),
                }))
            }
        })
    }

    /// The records `lines` publish; `skipped` counts messages that are no Pix event.
    pub fn shape(&mut self, lines: &[follow::Line], max: usize, skipped: &mut u64) -> Result<Vec<Out>, ShipLogError> {
        match self {
            Shaper::Json(mapping) => Ok(lines
                .iter()
                .map(|l| {
                    oversized(l, max).unwrap_or_else(|| match mapping.map(&l.bytes) {
                        Ok(m) => Out::event(m.category, m.key, m.value),
                        Err(why) => Out::dead(&l.bytes, max, Dead::of(l, why.rule, why.field, why.message)),
                    })
                })
                .collect()),
            Shaper::Iso(iso) => iso.shape(lines, max, skipped),
        }
    }

    /// The batch was acknowledged: its joins become durable (before the checkpoint moves).
    pub fn commit(&mut self) -> Result<(), ShipLogError> {
        if let Shaper::Iso(iso) = self
            && let Some(b) = iso.batch.take()
        {
            b.commit()?;
        }
        Ok(())
    }
}

/// A record larger than `max`, to the DLQ cut to that size.
fn oversized(l: &follow::Line, max: usize) -> Option<Out> {
    (l.bytes.len() > max).then(|| {
        let message = format!(
            "the record is {} bytes, more than validation.max_message_bytes ({max}); cut to that size here",
            l.bytes.len()
        );
        Out::dead(&l.bytes, max, Dead::of(l, HardRule::OversizedMessage, String::new(), message))
    })
}

impl Iso {
    fn shape(&mut self, lines: &[follow::Line], max: usize, skipped: &mut u64) -> Result<Vec<Out>, ShipLogError> {
        let Iso { reader, store, batch, window, swept, said } = self;
        if lines.is_empty() && swept.elapsed() < IDLE_SWEEP.min(*window) {
            return Ok(Vec::new());
        }
        *swept = std::time::Instant::now();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        // A batch left uncommitted (none should be) is abandoned: redb allows one writer.
        drop(batch.take());
        let b = batch.insert(store.begin(now)?);
        let mut outs: Vec<Out> = b
            .expire()?
            .into_iter()
            .map(|w| {
                let message = format!(
                    "no pacs.008 / pacs.004 with id {} was read within {} s of this {} status report \
                     (ship_log.iso20022.join_window_seconds)",
                    w.status.original_id,
                    window.as_secs(),
                    w.status.status
                );
                let why = Dead {
                    rule: HardRule::UnmatchedStatusReport,
                    field: "OrgnlEndToEndId".into(),
                    message,
                    file: w.file,
                    line: w.line,
                    offset: w.offset,
                };
                Out::dead(&w.raw, max, why)
            })
            .collect();
        for l in lines {
            if let Some(out) = oversized(l, max) {
                outs.push(out);
                continue;
            }
            match reader.read(&l.bytes) {
                Err(why) => outs.push(Out::dead(&l.bytes, max, Dead::of(l, why.rule, why.path, why.message))),
                Ok(iso20022::Message::Originals(originals)) => {
                    for o in &originals {
                        outs.extend(iso20022::first_event(o).map(|e| Out::event(e.category, Some(e.key), e.value)));
                        for w in b.original(o)? {
                            outs.extend(
                                iso20022::join(o, &w.status).map(|e| Out::event(e.category, Some(e.key), e.value)),
                            );
                        }
                    }
                }
                Ok(iso20022::Message::Statuses(statuses)) => {
                    for status in statuses {
                        match b.lookup(&status.original_id)? {
                            Some(o) => outs.extend(
                                iso20022::join(&o, &status).map(|e| Out::event(e.category, Some(e.key), e.value)),
                            ),
                            None => b.wait(&join::Waiting {
                                at: 0,
                                status,
                                raw: l.bytes.clone(),
                                file: l.path.clone(),
                                line: l.number,
                                offset: l.offset,
                            })?,
                        }
                    }
                }
                Ok(iso20022::Message::Other(name)) => {
                    *skipped += 1;
                    if said.insert(name.clone()) {
                        tracing::info!(kind = %name, path = %l.path.display(),
                            "ship-log: skipping ISO 20022 messages of this type (not a pacs.008, pacs.002 or pacs.004); counted in pixlake_shiplog_messages_skipped_total");
                    }
                }
            }
        }
        Ok(outs)
    }
}
