//! Where generated records go: a Kafka cluster (each record acknowledged) or a JSON-lines file.
//!
//! A file has no topics, so a record published to a topic other than its `event_type`'s (a
//! `TOPIC_MISMATCH` record) is written as a kcat `-J` style envelope line,
//! `{"topic":…,"key":…,"payload":"<value>"}`, which `pixlake validate` understands; every other
//! line is the message value itself.

use std::io::Write;
use std::time::Duration;

use crate::config::Config;
use crate::kafka::producer::{AckedProducer, Delivery, ProduceError};
use crate::pix::Category;
use crate::pix::rules::HardRule;

use super::Record;

/// Why records could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write the output; check the --output path and that its disk has room")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Kafka(#[from] ProduceError),
}

/// A destination for generated records.
pub trait Sink {
    /// Writes (or queues) one record.
    fn send(&mut self, record: &Record) -> Result<(), SinkError>;
    /// Flushes everything; returns what the destination confirmed.
    fn finish(self: Box<Self>) -> Result<Delivery, SinkError>;
}

/// Topic names per category, from the configuration.
#[derive(Clone, Debug)]
pub struct Topics([String; 3]);

impl Topics {
    /// The configured topic of each category.
    pub fn from_config(config: &Config) -> Self {
        Topics(Category::ALL.map(|c| config.topic_for(c).to_owned()))
    }

    /// The topic of `category`.
    pub fn get(&self, category: Category) -> &str {
        &self.0[category as usize]
    }
}

/// A kcat `-J` style line: where a record was published, and its value as a string.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    topic: &'a str,
    key: &'a str,
    payload: &'a str,
}

/// JSON lines to any writer.
pub struct FileSink<W: Write> {
    out: std::io::BufWriter<W>,
    topics: Topics,
    lines: u64,
    bytes: u64,
}

impl<W: Write> FileSink<W> {
    /// Writes to `out`.
    pub fn new(out: W, topics: Topics) -> Self {
        FileSink { out: std::io::BufWriter::with_capacity(1 << 20, out), topics, lines: 0, bytes: 0 }
    }
}

impl<W: Write> Sink for FileSink<W> {
    fn send(&mut self, r: &Record) -> Result<(), SinkError> {
        if r.invalid == Some(HardRule::TopicMismatch) {
            let line = Envelope {
                topic: self.topics.get(r.category),
                key: &r.key,
                payload: &String::from_utf8_lossy(&r.value),
            };
            serde_json::to_writer(&mut self.out, &line).map_err(std::io::Error::from)?;
        } else {
            self.out.write_all(&r.value)?;
        }
        self.out.write_all(b"\n")?;
        self.lines += 1;
        self.bytes += r.value.len() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Delivery, SinkError> {
        self.out.flush()?;
        Ok(Delivery { delivered: self.lines, failed: 0, bytes: self.bytes, first_error: None })
    }
}

/// Records to their topics, keyed by EndToEndId.
pub struct KafkaSink {
    producer: AckedProducer,
    topics: Topics,
    flush_timeout: Duration,
    sent: u64,
}

impl KafkaSink {
    /// Connects to the configured cluster.
    pub fn new(config: &Config, topics: Topics) -> Result<Self, SinkError> {
        // Room for records just over the validation limit (OVERSIZED_MESSAGE test records).
        let producer = AckedProducer::new(&config.kafka, config.validation.max_message_bytes * 2, 100)?;
        // A missing topic would hold every record until message.timeout.ms: say so now.
        let names = Category::ALL.map(|c| topics.get(c));
        producer.require_topics(&names, Duration::from_secs(10))?;
        Ok(KafkaSink { producer, topics, flush_timeout: Duration::from_secs(300), sent: 0 })
    }

    /// Records acknowledged so far.
    pub fn delivered(&self) -> u64 {
        self.producer.counters().delivered.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, r: &Record) -> Result<(), SinkError> {
        self.producer.send(self.topics.get(r.category), Some(r.key.as_bytes()), Some(&r.value), None)?;
        self.sent += 1;
        // A refused password or certificate stops the run within a second, not after the
        // whole input was queued and the flush timed out.
        if self.sent.is_multiple_of(1024)
            && let Some(problem) = self.producer.problem()
        {
            let pending = self.producer.in_flight();
            return Err(ProduceError::Broker { pending, brokers: self.producer.brokers().to_owned(), problem }.into());
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Delivery, SinkError> {
        Ok(self.producer.finish(self.flush_timeout)?)
    }
}
