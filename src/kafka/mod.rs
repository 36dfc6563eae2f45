//! Kafka client settings. Every client pixlake creates starts from [`client_config`], so the
//! operator's pass-through librdkafka settings (TLS, SASL, timeouts) apply everywhere the same.

pub mod producer;

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// Base settings: brokers, then the operator's properties, then `overrides` that pixlake's
/// correctness depends on (these win).
pub fn client_config(kafka: &KafkaConfig, defaults: &[(&str, &str)], overrides: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    for (k, v) in &kafka.properties {
        c.set(k, v);
    }
    for (k, v) in overrides {
        c.set(*k, *v);
    }
    c
}
