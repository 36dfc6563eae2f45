//! Dead letters on the real broker: original key and value byte for byte, the reason and the
//! source coordinates in the SPEC headers (Kafka Connect's too).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pixlake::config::Config;
use pixlake::deadletter::{DeadLetter, DeadLetterQueue, KafkaDeadLetterQueue};
use pixlake::pix::{Decoder, KafkaMeta};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;

#[test]
fn dead_letters_keep_the_original_bytes_and_say_why() {
    let dlq = common::unique("dlq");
    common::create_topics(&[&dlq], 1);
    let env =
        [("PIXLAKE__KAFKA__BROKERS".to_owned(), common::brokers()), ("PIXLAKE__DLQ__TOPIC".to_owned(), dlq.clone())];
    let config = Config::from_yaml("", "test", env).unwrap();
    let mut queue = KafkaDeadLetterQueue::new(&config, Duration::from_secs(30)).unwrap();

    let values: [&[u8]; 3] = [b"{\"a\":\"\xe7\xe3o\"}", b"[1,2]", b"{\"event_type\":\"chargeback\"}"];
    let decoder = Decoder::default();
    for (i, value) in values.iter().enumerate() {
        let rejection = decoder.decode(Some(value), None, 0).unwrap_err();
        let letter = DeadLetter {
            source: KafkaMeta {
                topic: "pix.payments",
                partition: 2,
                offset: 100 + i as i64,
                timestamp: Some(1_764_000_000_000_000),
            },
            key: if i == 1 { None } else { Some(b"E18236120202611201304s0326120V4K") },
            value: Some(value),
            rejection: &rejection,
            pipeline: "payments",
        };
        queue.publish(&letter).unwrap();
    }
    assert_eq!(queue.flush().unwrap(), 0, "every dead letter acknowledged");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("group.id", common::unique("dlq-check"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&dlq]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < values.len() && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            got.push(m.unwrap().detach());
        }
    }
    assert_eq!(got.len(), values.len());
    let expected_rules = ["MALFORMED_JSON", "MALFORMED_JSON", "UNKNOWN_EVENT_TYPE"];
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.payload().unwrap(), values[i], "value untouched");
        let h: HashMap<String, String> = m
            .headers()
            .unwrap()
            .iter()
            .map(|h| (h.key.to_owned(), String::from_utf8(h.value.unwrap().to_vec()).unwrap()))
            .collect();
        assert_eq!(h["pixlake.error.rule"], expected_rules[i]);
        assert_eq!(h["pixlake.source.topic"], "pix.payments");
        assert_eq!(h["pixlake.source.partition"], "2");
        assert_eq!(h["pixlake.source.offset"], (100 + i).to_string());
        assert_eq!(h["pixlake.source.timestamp"], "1764000000000");
        assert_eq!(h["pixlake.pipeline"], "payments");
        assert_eq!(h["__connect.errors.offset"], (100 + i).to_string());
        assert!(h["__connect.errors.exception.message"].starts_with(expected_rules[i]));
        assert!(h.contains_key("pixlake.error.field") && h.contains_key("pixlake.error.message"));
    }
    assert_eq!(got[0].key(), Some(&b"E18236120202611201304s0326120V4K"[..]));
    assert_eq!(got[1].key(), None, "a null key stays null");
}
