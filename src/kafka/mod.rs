//! Kafka client settings. Every client pixlake creates starts from [`client_config`], so the
//! operator's pass-through librdkafka settings (TLS, SASL, timeouts) apply everywhere the same.

pub mod producer;

use rdkafka::ClientConfig;

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
