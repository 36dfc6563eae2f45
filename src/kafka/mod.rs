//! Kafka client settings. Every client pixlake creates starts from [`client_config`], so the
//! operator's pass-through librdkafka settings (TLS, SASL, timeouts) apply everywhere the same.

pub mod producer;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

use crate::config::KafkaConfig;

/// Which kind of client a configuration is for: each gets `kafka.properties` plus its own map
/// (`kafka.consumer` / `kafka.producer`), so consumer-only settings never reach a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Consumer,
    Producer,
}

/// Base settings: brokers, pixlake's `defaults`, the operator's properties (shared, then the
/// role's), then `overrides` that pixlake's correctness depends on (these win).
pub fn client_config(
    kafka: &KafkaConfig,
    role: Role,
    defaults: &[(&str, &str)],
    overrides: &[(&str, &str)],
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    let own = match role {
        Role::Consumer => &kafka.consumer,
        Role::Producer => &kafka.producer,
    };
    for (k, v) in kafka.properties.iter().chain(own) {
        c.set(k, v);
    }
    for (k, v) in overrides {
        c.set(*k, *v);
    }
    c
}

/// A client that only reads metadata, watermarks, timestamps and group descriptions for
/// `command` (`client.id` and `group.id` `pixlake-{command}`): it never subscribes, so it never
/// joins a group, and never commits. `extra` settings are forced after the configuration's.
pub fn reader(kafka: &KafkaConfig, command: &str, extra: &[(&str, &str)]) -> Result<BaseConsumer, KafkaError> {
    let id = format!("pixlake-{command}");
    let mut forced = vec![("group.id", id.as_str()), ("enable.auto.commit", "false")];
    forced.extend_from_slice(extra);
    client_config(kafka, Role::Consumer, &[("client.id", id.as_str())], &forced).create()
}

/// The partition ids of `topic`; `None` when the broker does not know it or it has none.
pub fn partitions(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> Result<Option<Vec<i32>>, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let found = metadata.topics().first().filter(|t| t.error().is_none() && !t.partitions().is_empty());
    Ok(found.map(|t| t.partitions().iter().map(|p| p.id()).collect()))
}
