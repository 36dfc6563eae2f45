//! What every operator command starts from: where a table is, a Kafka client that only reads
//! metadata, watermarks and timestamps (it never subscribes, so it never joins a group), and the
//! partitions of a pipeline's topic.

use std::time::Duration;

use deltalake::DeltaTable;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use tokio::runtime::Runtime;

use crate::config::{Config, Pipeline};
use crate::kafka::Reader;
use crate::offsets::{AppIds, PartitionOffsets};
use crate::pix::batch::QUARANTINE_TABLE;
use crate::sink::delta::{Loaded, Location, SinkError, open_existing, read_offsets};

/// What any operator command can fail on before its own logic: the broker, a topic, the runtime.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("Kafka at {brokers} did not answer; check that the broker is running and that kafka.brokers names it")]
    Kafka {
        brokers: String,
        #[source]
        source: KafkaError,
    },
    #[error("Kafka at {brokers} cannot be used")]
    Broker {
        brokers: String,
        #[source]
        problem: crate::kafka::diagnosis::Diagnosed,
    },
    #[error("topic {0} does not exist on the broker; create it, or fix pipelines[].topic")]
    NoTopic(String),
    #[error("cannot create a Kafka client; check kafka.properties")]
    Client {
        #[source]
        source: KafkaError,
    },
    #[error("cannot start the async runtime; check the process limits (threads, memory)")]
    Runtime(#[source] std::io::Error),
}

/// The single-threaded runtime a command runs its table operations on.
pub fn runtime() -> Result<tokio::runtime::Runtime, SourceError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(SourceError::Runtime)
}

/// Turns a Kafka error of `client` into the error to report: the cause its diagnosis found (a
/// refused password, an untrusted certificate…) when there is one, else the error naming the
/// configured brokers.
pub fn kafka<'a>(config: &'a Config, client: &'a Reader) -> impl Fn(KafkaError) -> SourceError + Copy + 'a {
    move |source| match client.context().diagnosis.get() {
        Some(problem) => SourceError::Broker { brokers: config.kafka.brokers.clone(), problem },
        None => SourceError::Kafka { brokers: config.kafka.brokers.clone(), source },
    }
}

/// How long a metadata, watermark or timestamp request to the broker may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The location of `table` under the warehouse root.
pub fn location(config: &Config, table: &str) -> Result<Location, Box<SinkError>> {
    Location::in_warehouse(&config.warehouse, table).map_err(Box::new)
}

/// `table` at its latest version (`None`: not created yet).
pub fn open(rt: &Runtime, config: &Config, table: &str) -> Result<Option<DeltaTable>, Box<SinkError>> {
    rt.block_on(open_existing(table, &location(config, table)?)).map_err(Box::new)
}

/// The committed offsets of `partitions` of `pipeline`, from its category table and
/// `pix_quarantine` as opened by the caller (so they agree with whatever else it reads there).
pub fn offsets(
    rt: &Runtime,
    pipeline: &Pipeline,
    partitions: &[i32],
    category: Option<&DeltaTable>,
    quarantine: Option<&DeltaTable>,
) -> Result<PartitionOffsets, Box<SinkError>> {
    let ids = AppIds::new(&pipeline.name, &pipeline.topic);
    let category = Loaded { name: &pipeline.table, table: category };
    let quarantine = Loaded { name: QUARANTINE_TABLE, table: quarantine };
    rt.block_on(read_offsets(ids, partitions, category, quarantine)).map_err(Box::new)
}

/// A reading client for `command` ([`crate::kafka::reader`]).
pub fn reader(config: &Config, command: &str, extra: &[(&str, &str)]) -> Result<Reader, SourceError> {
    crate::kafka::reader(&config.kafka, command, extra).map_err(|source| SourceError::Client { source })
}

/// The partition ids of `topic`; `None` when the broker does not know it or it has none.
pub fn partitions(consumer: &Reader, topic: &str) -> Result<Option<Vec<i32>>, KafkaError> {
    crate::kafka::partitions(consumer, topic, TIMEOUT)
}
