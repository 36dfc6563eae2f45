//! `pixlake produce` against the real broker: every record acknowledged, on the topic of its
//! category (or deliberately not), keyed by EndToEndId, identical to the file output of the same
//! seed.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};

#[test]
fn produced_records_are_acknowledged_and_match_the_file_output() {
    let run = common::unique("produce");
    let topics = [format!("{run}.payments"), format!("{run}.receipts"), format!("{run}.refunds")];
    let dlq = format!("{run}.dlq");
    let names: Vec<&str> = topics.iter().map(String::as_str).chain([dlq.as_str()]).collect();
    common::create_topics(&names, 3);
    let env = common::pipeline_env(&topics, &dlq);
    let count = 3000;
    let args = ["produce", "--count", "3000", "--invalid-ratio", "0.05", "--fraud-ratio", "0.05", "--seed", "11"];

    let out = Command::new(env!("CARGO_BIN_EXE_pixlake")).args(args).envs(env.clone()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{count} acknowledged")), "{stderr}");

    // What the same seed writes to a file: the same values (envelope lines carry their payload).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("same-seed.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_pixlake"))
        .args(args)
        .arg("--output")
        .arg(&file)
        .envs(env.clone())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut expected: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    for line in std::fs::read(&file).unwrap().split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let value = match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(v) if v.get("payload").is_some() => v["payload"].as_str().unwrap().as_bytes().to_vec(),
            _ => line.to_vec(),
        };
        *expected.entry(value).or_default() += 1;
    }
    // How many of them `validate` rejects (TOPIC_MISMATCH included, from the envelope lines).
    let out =
        Command::new(env!("CARGO_BIN_EXE_pixlake")).args(["validate", "--json"]).arg(&file).envs(env).output().unwrap();
    let rejected_in_file = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("\"ok\":false")).count();
    assert!(rejected_in_file > 100, "{rejected_in_file}");

    let decoder = pixlake::pix::Decoder::default();
    let category_of = |topic: &str| {
        let i = topics.iter().position(|t| t == topic).unwrap();
        pixlake::pix::Category::ALL[i]
    };
    let mut rejected_in_kafka = 0;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("group.id", common::unique("produce-check"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "8388608")
        .create()
        .unwrap();
    let subscribed: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&subscribed).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut got = 0;
    while got < count && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m.expect("consume");
        got += 1;
        let value = m.payload().unwrap_or_default().to_vec();
        let key = std::str::from_utf8(m.key().unwrap_or_default()).unwrap().to_owned();
        let n = expected
            .get_mut(&value)
            .unwrap_or_else(|| panic!("unexpected record on {}: {}", m.topic(), String::from_utf8_lossy(&value)));
        *n -= 1;
        if *n == 0 {
            expected.remove(&value);
        }
        // Judged by the topic it landed on, exactly as ingest will judge it.
        if decoder.decode(Some(&value), Some(category_of(m.topic())), i64::MAX / 2).is_err() {
            rejected_in_kafka += 1;
        }
        // Valid payments and receipts are keyed by their EndToEndId, refunds by the original's.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&value) {
            let e2e = v["data"]["end_to_end_id"].as_str().or(v["data"]["original_end_to_end_id"].as_str());
            if let Some(e2e) = e2e.filter(|e| e.len() == 32) {
                assert_eq!(key, e2e);
            }
        }
    }
    assert_eq!(got, count, "records consumed");
    assert!(expected.is_empty(), "records in the file but not in Kafka: {}", expected.len());
    assert_eq!(rejected_in_kafka, rejected_in_file, "the same records are invalid in Kafka and in the file");
}

/// A topic that does not exist is named at once, with the fix, instead of every record waiting
/// out `message.timeout.ms` (5 minutes) to fail.
#[test]
fn a_missing_topic_is_named_at_once() {
    common::require_broker();
    let run = common::unique("no-topic");
    let topics = [format!("{run}.payments"), format!("{run}.receipts"), format!("{run}.refunds")];
    common::create_topics(&[topics[0].as_str(), topics[2].as_str()], 1);
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_pixlake"))
        .args(["produce", "--count", "100"])
        .envs(common::pipeline_env(&topics, "unused"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("topic {} does not exist", topics[1])), "{stderr}");
    assert!(stderr.contains("pipelines[].topic"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

/// What the sources' publisher does with records librdkafka reports *possibly persisted*
/// (`pixlake::kafka::readback`), against the real broker: a record is found only in its own
/// partition, at or after its lower bound, with its key and value both equal.
#[test]
fn records_in_doubt_are_found_by_reading_their_partition_back() {
    use pixlake::kafka::readback::{self, Wanted};
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let topic = common::unique("readback");
    common::create_topics(&[&topic], 2);
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", common::brokers()).create().unwrap();
    // Partition 0: a, b, c at offsets 0, 1, 2; partition 1: x at 0, then h with a header.
    for (partition, key, value) in [(0, "a", "event a"), (0, "b", "event b"), (0, "c", "event c"), (1, "x", "event x")]
    {
        producer.send(BaseRecord::to(&topic).partition(partition).key(key).payload(value)).unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
    }
    let header = |line: &str| OwnedHeaders::new().insert(Header { key: "pixlake.source.line", value: Some(line) });
    producer.send(BaseRecord::to(&topic).partition(1).key("h").payload("event h").headers(header("7"))).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let wanted = |partition: i32, from: Option<i64>, key: &str, value: &str| Wanted {
        topic: topic.clone(),
        partition,
        from,
        key: Some(key.as_bytes().to_vec()),
        value: value.as_bytes().to_vec(),
        headers: None,
    };
    let kafka = pixlake::config::KafkaConfig {
        brokers: common::brokers(),
        properties: BTreeMap::new(),
        consumer: BTreeMap::new(),
        producer: BTreeMap::new(),
    };
    let reader = readback::reader(&kafka).unwrap();
    let with = |line: &str| Wanted { headers: Some(header(line)), ..wanted(1, Some(0), "h", "event h") };
    let mut asked = [
        wanted(0, Some(0), "a", "event a"),
        wanted(0, None, "c", "event c"),
        wanted(0, Some(1), "a", "event a"), // below its lower bound: not this send
        wanted(0, Some(0), "b", "event c"), // the value of another record
        wanted(0, Some(0), "d", "event d"), // never written
        wanted(1, Some(0), "x", "event x"),
        wanted(1, Some(0), "a", "event a"), // in another partition
        wanted(1, Some(2), "y", "event y"), // its bound is the partition's end: nothing to read
        with("7"),
        with("8"),                          // the same key and value with another header: another record
        wanted(1, Some(0), "h", "event h"), // without its header
    ];
    let mut found = [false; 11];
    readback::find(&reader, &mut asked, &mut found, Duration::from_secs(60)).unwrap();
    assert_eq!(found, [true, true, false, false, false, true, false, false, true, false, false]);
    // A partition that cannot be read is reported after the others are read.
    let mut with_missing = vec![wanted(7, Some(0), "a", "event a"), wanted(1, Some(0), "x", "event x")];
    let mut found_there = [false; 2];
    let err = readback::find(&reader, &mut with_missing, &mut found_there, Duration::from_secs(60)).unwrap_err();
    assert!(err.to_string().contains("[7]"), "{err}");
    assert_eq!(found_there, [false, true]);
    // Those not found are known absent up to each partition's end: a next call starts there.
    let from: Vec<_> = asked.iter().zip(found).filter(|(_, f)| !f).map(|(w, _)| (w.partition, w.from)).collect();
    assert_eq!(
        from,
        [(0, Some(3)), (0, Some(3)), (0, Some(3)), (1, Some(2)), (1, Some(2)), (1, Some(2)), (1, Some(2))]
    );
}
