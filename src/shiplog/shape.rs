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

impl From<iso20022::Outgoing> for Out {
    fn from(e: iso20022::Outgoing) -> Out {
        Out::event(e.category, Some(e.key), e.value)
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
    /// Message types skipped, each said once.
    said: std::collections::BTreeSet<String>,
}

/// How far ahead of the wall clock a message's creation time is still believed.
const FUTURE_TOLERANCE: Duration = Duration::from_secs(300);

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
        let Iso { reader, store, batch, window, said } = self;
        if lines.is_empty() {
            // The join's clock is the archive's: nothing expires while nothing is read.
            return Ok(Vec::new());
        }
        // A message time this far ahead of the wall clock is not believed (it would expire
        // every join at once).
        let believable = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(u64::MAX, |d| d.as_secs() + FUTURE_TOLERANCE.as_secs());
        // A batch left uncommitted (none should be) is abandoned: redb allows one writer.
        drop(batch.take());
        let b = batch.insert(store.begin()?);
        let mut outs = Vec::new();
        for l in lines {
            if let Some(out) = oversized(l, max) {
                outs.push(out);
                continue;
            }
            let read = match reader.read(&l.bytes) {
                Ok(read) => read,
                Err(why) => {
                    outs.push(Out::dead(&l.bytes, max, Dead::of(l, why.rule, why.path, why.message)));
                    continue;
                }
            };
            if let Some(t) = read.created.filter(|t| *t <= believable) {
                b.observe(t);
            }
            // What is stored expires a window of message time after it was read (not after
            // it was created): files read out of order do not expire each other's joins.
            let at = b.watermark();
            match read.message {
                iso20022::Message::Originals(originals) => {
                    for o in &originals {
                        outs.extend(iso20022::first_event(o).map(Out::from));
                        for w in b.original(o, at)? {
                            outs.extend(iso20022::join(o, &w.status).map(Out::from));
                        }
                    }
                }
                iso20022::Message::Statuses(statuses) => {
                    for status in statuses {
                        match b.lookup(&status.original_id)? {
                            Some(o) => outs.extend(iso20022::join(&o, &status).map(Out::from)),
                            None => b.wait(&join::Waiting {
                                at,
                                status,
                                raw: l.bytes.clone(),
                                file: l.path.clone(),
                                line: l.number,
                                offset: l.offset,
                            })?,
                        }
                    }
                }
                iso20022::Message::Other(name) => {
                    *skipped += 1;
                    if said.insert(name.clone()) {
                        tracing::info!(kind = %name, path = %l.path.display(),
                            "ship-log: skipping ISO 20022 messages of this type (not a pacs.008, pacs.002 or pacs.004); counted in pixlake_shiplog_messages_skipped_total");
                    }
                }
            }
        }
        // After the batch's messages: a status and its original in one batch always meet.
        for w in b.expire()? {
            let message = format!(
                "no pacs.008 / pacs.004 with id {} was read within {} s (by message time) of this {} status report \
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
            outs.push(Out::dead(&w.raw, max, why));
        }
        Ok(outs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT: &str = include_str!("../../tests/fixtures/iso20022/valid/01-pacs008-sent.xml");
    const SETTLED: &str = include_str!("../../tests/fixtures/iso20022/valid/02-pacs002-sent-settled.xml");
    const UNMATCHED: &str = include_str!("../../tests/fixtures/iso20022/broken/unmatched-status.xml");

    fn line(n: u64, xml: &str) -> follow::Line {
        follow::Line {
            id: follow::FileId { dev: 1, ino: n },
            path: format!("spi-{n}.xml").into(),
            number: 1,
            offset: 0,
            bytes: xml.as_bytes().to_vec(),
        }
    }

    /// A payment like 01, `hours` later (its own EndToEndId).
    fn later(hours: u32) -> String {
        SENT.replace("E6070119020261201143012ab34CD56e", &format!("E607011902026120114{hours:02}12ab34CD56e"))
            .replace("2026-12-01T14:30:05", &format!("2026-12-01T{:02}:30:05", 14 + hours))
    }

    fn shape(iso: &mut Iso, lines: &[follow::Line]) -> Vec<Out> {
        let outs = iso.shape(lines, 1 << 20, &mut 0).unwrap();
        iso.batch.take().unwrap().commit().unwrap();
        outs
    }

    fn status_of(o: &Out) -> String {
        let v: serde_json::Value = serde_json::from_slice(&o.value).unwrap();
        v["data"]["status"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn joins_outlive_files_read_out_of_order_and_unmatched_statuses_expire_by_message_time() {
        let dir = tempfile::tempdir().unwrap();
        let window = Duration::from_secs(5);
        let mut iso = Iso {
            reader: iso20022::Reader { participant: "60701190".into(), source: "spi-log".into() },
            store: join::JoinStore::open(&dir.path().join("join.redb"), window).unwrap(),
            batch: None,
            window,
            said: Default::default(),
        };
        // A newer file first: the clock jumps hours ahead of the next ones.
        assert_eq!(shape(&mut iso, &[line(1, &later(4))]).len(), 1);
        // The payment and its settlement, in two batches, hours "before" the clock.
        assert_eq!(shape(&mut iso, &[line(2, SENT)]).iter().map(status_of).collect::<Vec<_>>(), ["ACSP"]);
        assert_eq!(shape(&mut iso, &[line(3, SETTLED)]).iter().map(status_of).collect::<Vec<_>>(), ["ACSC"]);
        // A status with no payment waits while the clock stands still…
        assert!(shape(&mut iso, &[line(4, UNMATCHED)]).is_empty());
        assert!(iso.shape(&[], 1 << 20, &mut 0).unwrap().is_empty(), "no message read, no time passes");
        // …and goes to the DLQ once later messages move it past the window.
        let outs = shape(&mut iso, &[line(5, &later(5))]);
        let dead: Vec<&Dead> = outs.iter().filter_map(|o| o.dead.as_ref()).collect();
        assert_eq!(dead.len(), 1, "{outs:?}");
        assert_eq!((dead[0].rule, dead[0].file.to_str()), (HardRule::UnmatchedStatusReport, Some("spi-4.xml")));
        assert_eq!(outs.iter().find(|o| o.dead.is_some()).unwrap().value, UNMATCHED.as_bytes());
    }
}
