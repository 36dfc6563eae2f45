//! The headers of a dead letter (SPEC §4), built from the rejection and where the record came
//! from.

use rdkafka::message::{Header, OwnedHeaders};

use crate::pix::{KafkaMeta, Rejection};

/// One rejected record, as published to the DLQ.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// Where it was read.
    pub source: KafkaMeta<'a>,
    /// Its key, untouched.
    pub key: Option<&'a [u8]>,
    /// Its value, untouched.
    pub value: Option<&'a [u8]>,
    /// Why it was rejected.
    pub rejection: &'a Rejection,
    /// The pipeline that read it.
    pub pipeline: &'a str,
}

/// Header names, in the order they are written.
pub const RULE: &str = "pixlake.error.rule";
pub const FIELD: &str = "pixlake.error.field";
pub const MESSAGE: &str = "pixlake.error.message";
pub const SOURCE_TOPIC: &str = "pixlake.source.topic";
pub const SOURCE_PARTITION: &str = "pixlake.source.partition";
pub const SOURCE_OFFSET: &str = "pixlake.source.offset";
pub const SOURCE_TIMESTAMP: &str = "pixlake.source.timestamp";
pub const PIPELINE: &str = "pixlake.pipeline";
pub const CONNECT_TOPIC: &str = "__connect.errors.topic";
pub const CONNECT_PARTITION: &str = "__connect.errors.partition";
pub const CONNECT_OFFSET: &str = "__connect.errors.offset";
pub const CONNECT_MESSAGE: &str = "__connect.errors.exception.message";

impl DeadLetter<'_> {
    /// The `(name, value)` headers: rule, field, message, source coordinates (numbers as decimal
    /// text; the timestamp as epoch milliseconds, Kafka's unit), pipeline, and the Kafka Connect
    /// equivalents.
    pub fn header_pairs(&self) -> Vec<(&'static str, String)> {
        let r = self.rejection;
        let m = &self.source;
        let message = format!("{}: {}", r.rule.id(), r.message);
        let mut h = vec![
            (RULE, r.rule.id().to_owned()),
            (FIELD, r.field.to_owned()),
            (MESSAGE, r.message.clone()),
            (SOURCE_TOPIC, m.topic.to_owned()),
            (SOURCE_PARTITION, m.partition.to_string()),
            (SOURCE_OFFSET, m.offset.to_string()),
        ];
        if let Some(t) = m.timestamp {
            h.push((SOURCE_TIMESTAMP, (t.div_euclid(1000)).to_string()));
        }
        h.extend([
            (PIPELINE, self.pipeline.to_owned()),
            (CONNECT_TOPIC, m.topic.to_owned()),
            (CONNECT_PARTITION, m.partition.to_string()),
            (CONNECT_OFFSET, m.offset.to_string()),
            (CONNECT_MESSAGE, message),
        ]);
        h
    }

    /// The headers as librdkafka takes them.
    pub fn headers(&self) -> OwnedHeaders {
        let pairs = self.header_pairs();
        let mut out = OwnedHeaders::new_with_capacity(pairs.len());
        for (key, value) in &pairs {
            out = out.insert(Header { key, value: Some(value.as_bytes()) });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pix::HardRule;

    #[test]
    fn every_spec_header_is_present() {
        let rejection = Rejection::new(HardRule::InvalidCpf, "data.payer.document", "CPF check digits do not match");
        let letter = DeadLetter {
            source: KafkaMeta {
                topic: "pix.payments",
                partition: 4,
                offset: 1234,
                timestamp: Some(1_764_000_000_123_456),
            },
            key: Some(b"E1"),
            value: Some(b"{}"),
            rejection: &rejection,
            pipeline: "payments",
        };
        let h: std::collections::HashMap<_, _> = letter.header_pairs().into_iter().collect();
        assert_eq!(h[RULE], "INVALID_CPF");
        assert_eq!(h[FIELD], "data.payer.document");
        assert_eq!(h[MESSAGE], "CPF check digits do not match");
        assert_eq!(h[SOURCE_TOPIC], "pix.payments");
        assert_eq!(h[SOURCE_PARTITION], "4");
        assert_eq!(h[SOURCE_OFFSET], "1234");
        assert_eq!(h[SOURCE_TIMESTAMP], "1764000000123");
        assert_eq!(h[PIPELINE], "payments");
        assert_eq!(h[CONNECT_TOPIC], "pix.payments");
        assert_eq!(h[CONNECT_PARTITION], "4");
        assert_eq!(h[CONNECT_OFFSET], "1234");
        assert_eq!(h[CONNECT_MESSAGE], "INVALID_CPF: CPF check digits do not match");
        assert_eq!(h.len(), 12);
    }
}
