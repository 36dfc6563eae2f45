//! `--until-caught-up` needs to know what *other* writers committed: at start, the target of
//! every partition (its watermarks) and what Delta already has; then, every [`WATCH_EVERY`],
//! the latest offsets of every partition, read from the tables by a task on the runtime (never
//! on the poll thread, never through the writers — see `sink::delta::LatestOffsets`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::catchup::CatchUp;
use super::retry::{GaveUp, Retries, Shutdown, retry};
use crate::config::{Config, Pipeline};
use crate::offsets::{AppIds, PartitionOffsets};
use crate::pix::batch::QUARANTINE_TABLE;
use crate::sink::delta::{LatestOffsets, SinkError};
use crate::telemetry::PipelineMetrics;

/// How often the offsets of partitions other members write are read again.
pub const WATCH_EVERY: Duration = Duration::from_secs(3);

/// Consecutive failed reads before the watcher warns (then every as many more).
const WARN_AFTER: u32 = 10;

/// How long a metadata or watermark request may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the targets could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("topic {0} does not exist on the broker (or has no partitions); create it, or fix pipelines[].topic")]
    NoTopic(String),
    #[error("cannot create a Kafka client; check kafka.brokers and kafka.properties")]
    Client(#[source] rdkafka::error::KafkaError),
    #[error(transparent)]
    GaveUp(#[from] GaveUp),
    #[error(transparent)]
    Table(#[from] Box<SinkError>),
    /// A batch run cannot get anywhere while the broker refuses it: it stops with the cause.
    #[error("Kafka at {brokers} cannot be used")]
    Broker {
        brokers: String,
        #[source]
        problem: crate::kafka::diagnosis::Diagnosed,
    },
}

/// Reads the targets of every partition of `pipeline`'s topic and the offsets Delta has now,
/// then starts the watcher. Retries while the broker or the storage does not answer, until a
/// stop (then within its grace period) or `limit` (`--timeout`).
pub fn start(
    config: &Config,
    pipeline: &Pipeline,
    runtime: &Handle,
    shutdown: &Shutdown,
    limit: Option<Instant>,
    retries: &Retries,
    metrics: &PipelineMetrics,
) -> Result<(CatchUp, watch::Receiver<PartitionOffsets>), StartError> {
    let deadline = || [shutdown.deadline(), limit].into_iter().flatten().min();
    let hint = "Kafka did not answer (the error says why); check kafka.brokers and kafka.properties";
    // Creating a client fails only on a bad setting: no retry.
    let client =
        crate::kafka::reader(&config.kafka, &format!("{}-catch-up", pipeline.name), &[]).map_err(StartError::Client)?;
    // An outage is retried; a refused password or certificate stops the batch run at once, with
    // the cause (and /readyz says so meanwhile).
    let refused = || client.context().diagnosis.get();
    let brokers = || config.kafka.brokers.clone();
    let attempt = || match crate::kafka::partitions(&client, &pipeline.topic, KAFKA_TIMEOUT) {
        Ok(p) => Ok(Ok(p)),
        Err(e) => match refused() {
            Some(problem) => Ok(Err(problem)),
            None => Err(e),
        },
    };
    let partitions =
        match retry("reading the topic's partitions", hint, retries.of_cause(&retries.offsets), deadline, attempt)? {
            Ok(p) => p.ok_or_else(|| StartError::NoTopic(pipeline.topic.clone()))?,
            Err(problem) => {
                metrics.set_kafka_problem(Some(&problem));
                return Err(StartError::Broker { brokers: brokers(), problem });
            }
        };
    let mut targets = BTreeMap::new();
    for &p in &partitions {
        let w =
            retry("reading the partition's watermarks", hint, retries.of_cause(&retries.offsets), deadline, || {
                client.fetch_watermarks(&pipeline.topic, p, KAFKA_TIMEOUT)
            })?;
        targets.insert(p, w);
    }
    let location = |t: &str| crate::sink::delta::Location::in_warehouse(&config.warehouse, t).map_err(Box::new);
    let mut latest = LatestOffsets::new(
        (&pipeline.table, location(&pipeline.table)?),
        (QUARANTINE_TABLE, location(QUARANTINE_TABLE)?),
    );
    let ids = AppIds::new(&pipeline.name, &pipeline.topic);
    let now = retry(
        "reading offsets from Delta",
        "the table's log could not be read",
        retries.of_cause(&retries.offsets),
        deadline,
        || runtime.block_on(latest.read(ids, &partitions)),
    )?;
    let catch_up = CatchUp::new(targets, &now);
    let (tx, rx) = watch::channel(now);
    let (name, topic) = (pipeline.name.clone(), pipeline.topic.clone());
    runtime.spawn(async move {
        let mut failures = 0u32;
        loop {
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(WATCH_EVERY) => {}
            }
            match latest.read(AppIds::new(&name, &topic), &partitions).await {
                Ok(offsets) => {
                    if failures >= WARN_AFTER {
                        tracing::info!(pipeline = %name, "reading other members' offsets from Delta works again");
                    }
                    failures = 0;
                    if tx.send(offsets).is_err() {
                        return;
                    }
                }
                // The next round tries again; the partitions this process owns do not depend
                // on it, but --until-caught-up cannot see the others' progress meanwhile.
                Err(e) => {
                    failures += 1;
                    if failures.is_multiple_of(WARN_AFTER) {
                        tracing::warn!(pipeline = %name, error = %crate::telemetry::Chain(&e), failures,
                            "cannot read the latest offsets from Delta, so --until-caught-up does not see what other \
                             members commit; check the warehouse storage; retrying");
                    } else {
                        tracing::debug!(pipeline = %name, error = %crate::telemetry::Chain(&e), "cannot read the latest offsets from Delta");
                    }
                }
            }
        }
    });
    Ok((catch_up, rx))
}
