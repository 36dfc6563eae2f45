//! The Kafka consumer of one pipeline and its rebalance callback.
//!
//! Partitions start where **Delta** says, not where the consumer group says: on every
//! assignment the callback reads the tables' `txn` offsets and puts them into the assignment
//! list itself (`assign` / `incremental_assign` with explicit offsets), so there is no window in
//! which the consumer fetches from the group's offset and no racing `seek` (which librdkafka
//! refuses right after an assignment). On revocation the callback commits the batch before the
//! partitions go, so the next owner starts right after it.
//!
//! Both eager (`range`, `roundrobin`) and cooperative (`cooperative-sticky`, the default here)
//! assignment strategies are served: the callback asks librdkafka which protocol is in use.
//!
//! `max.poll.interval.ms` (default 300 s) bounds the time between two polls; a flush (DLQ
//! acknowledgements + two Delta commits, seconds at most) stays far below it. Retries during a
//! long storage or broker outage can exceed it: librdkafka then leaves the group and the
//! partitions go to another member. That costs a rebalance, not correctness: whichever commit
//! comes second for a partition is refused by Delta's conflict check (the engine's fence), so
//! the interval is a liveness setting here, never a safety one.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::engine::Engine;
use crate::config::{Config, Pipeline};

/// The consumer's context: the pipeline's engine, shared with the poll loop.
pub struct EngineContext {
    engine: Arc<Mutex<Engine>>,
    topic: String,
}

impl EngineContext {
    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect()
    }
}

impl ClientContext for EngineContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", topic = %self.topic, %error, "{reason}");
    }

    /// Served inside `poll` (the loop does not hold the engine then), every
    /// `statistics.interval.ms`.
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.engine().observe(&statistics, super::engine::now_micros());
    }
}

impl ConsumerContext for EngineContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let partitions = self.partitions(tpl);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut engine = self.engine();
                match engine.assign(consumer, &partitions) {
                    Ok(starts) => {
                        for (p, start) in starts {
                            let offset = start.map_or(Offset::Beginning, Offset::Offset);
                            if let Err(e) = tpl.set_partition_offset(&self.topic, p, offset) {
                                tracing::error!(topic = %self.topic, partition = p, error = %e, "cannot set the start offset");
                            }
                        }
                        let result = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                        if let Err(e) = result {
                            tracing::error!(topic = %self.topic, error = %e, "assignment refused by librdkafka; restarting the consumer");
                            engine.abandon(format!("assign failed: {e}"));
                        }
                    }
                    Err(e) => {
                        // Without offsets no partition may start: leave the group and rejoin.
                        tracing::error!(topic = %self.topic, error = %e, "cannot start the assigned partitions");
                        engine.abandon(format!("offsets unreadable: {e}"));
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                self.engine().revoke(consumer, &partitions, lost);
                let result = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = result {
                    tracing::warn!(topic = %self.topic, error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(topic = %self.topic, error = ?other, "rebalance error; dropping the assignment");
                let _ = consumer.unassign();
            }
        }
    }
}

/// Creates the consumer of `pipeline` (not yet subscribed). pixlake's correctness depends on
/// the overrides: no automatic offset commits or stores (Delta holds the offsets), end-of-
/// partition events (for `--until-caught-up` and idle partitions).
pub fn create(
    config: &Config,
    pipeline: &Pipeline,
    engine: Arc<Mutex<Engine>>,
) -> Result<BaseConsumer<EngineContext>, KafkaError> {
    let client_id = format!("pixlake-{}", pipeline.name);
    let c = crate::kafka::client_config(
        &config.kafka,
        crate::kafka::Role::Consumer,
        &[
            ("client.id", client_id.as_str()),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "45000"),
            ("max.poll.interval.ms", "300000"),
            ("fetch.max.bytes", "52428800"),
            ("queued.max.messages.kbytes", "131072"),
            // Watermarks and broker states for the metrics (lag, connectivity); 0 turns them off.
            ("statistics.interval.ms", "2000"),
        ],
        &[
            ("group.id", pipeline.group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
        ],
    );
    c.create_with_context(EngineContext { engine, topic: pipeline.topic.clone() })
}
