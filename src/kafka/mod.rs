//! Kafka client settings. Every client pixlake creates starts from [`client_config`], so the
//! operator's pass-through librdkafka settings (TLS, SASL, timeouts) apply everywhere the same.

pub mod diagnosis;
pub mod producer;
pub mod readback;
pub mod verdicts;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

use crate::config::KafkaConfig;
use diagnosis::DiagnosingContext;

/// A client that reads metadata, watermarks and records without joining a group, and keeps the
/// diagnosis of what went wrong (see [`diagnosis`]).
pub type Reader = BaseConsumer<DiagnosingContext>;

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
    // Brokers close connections idle for connections.max.idle.ms (10 min), which librdkafka
    // logs as failures by default: a quiet DLQ producer would print one every ten minutes. A
    // broker that is really gone still shows (refused connects, error events).
    c.set("log.connection.close", "false");
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
pub fn reader(kafka: &KafkaConfig, command: &str, extra: &[(&str, &str)]) -> Result<Reader, KafkaError> {
    let id = format!("pixlake-{command}");
    let mut forced = vec![("group.id", id.as_str()), ("enable.auto.commit", "false")];
    forced.extend_from_slice(extra);
    client_config(kafka, Role::Consumer, &[("client.id", id.as_str())], &forced)
        .create_with_context(DiagnosingContext::default())
}

/// Kafka errors are outages to a retry loop: the causes retrying does not cure are found by the
/// client's diagnosis instead (refused credentials and certificates), see [`crate::fault`].
impl crate::fault::Classify for KafkaError {
    fn permanent(&self) -> Option<crate::fault::Permanent> {
        None
    }
}

/// The partition ids of `topic`; `None` when the broker does not know it or it has none.
///
/// This is the first request most commands make, so it asks in one-second steps and gives up
/// as soon as the client's diagnosis names a cause retrying will not cure (a refused password,
/// an untrusted certificate) rather than after `timeout`: the caller then reports that cause.
pub fn partitions(consumer: &Reader, topic: &str, timeout: Duration) -> Result<Option<Vec<i32>>, KafkaError> {
    let until = std::time::Instant::now() + timeout;
    loop {
        let step = until.saturating_duration_since(std::time::Instant::now()).min(Duration::from_secs(1));
        match consumer.fetch_metadata(Some(topic), step) {
            Ok(metadata) => {
                consumer.context().diagnosis.clear();
                let found = metadata.topics().first().filter(|t| t.error().is_none() && !t.partitions().is_empty());
                return Ok(found.map(|t| t.partitions().iter().map(|p| p.id()).collect()));
            }
            Err(e) => {
                // librdkafka queues its logs and error events for the client's poll: serve them,
                // so the diagnosis sees why the connections fail.
                if let Some(Err(event)) = consumer.poll(Duration::from_millis(100)) {
                    consumer.context().diagnosis.note(diagnosis::code_of(&event), &event.to_string());
                }
                if consumer.context().diagnosis.get().is_some() || std::time::Instant::now() >= until {
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The librdkafka pixlake is built with can speak to the Kafka a bank runs: TLS, SASL
    /// (PLAIN, SCRAM, GSSAPI/Kerberos through Cyrus SASL, OAUTHBEARER) and every codec.
    #[test]
    fn librdkafka_is_built_with_tls_sasl_and_every_codec() {
        let native = ClientConfig::new().create_native_config().unwrap();
        let features = native.get("builtin.features").unwrap();
        for wanted in [
            "ssl",
            "sasl",
            "sasl_plain",
            "sasl_scram",
            "sasl_gssapi",
            "sasl_oauthbearer",
            "gzip",
            "snappy",
            "lz4",
            "zstd",
        ] {
            assert!(features.split(',').any(|f| f == wanted), "{wanted} missing from {features}");
        }
    }
}
