//! Helpers shared by the integration tests that talk to the real Kafka broker started by
//! `scripts/kafka.sh start` (or the one `PIXLAKE_TEST_BROKERS` names).

#![allow(dead_code)]

pub mod http;
pub mod lake;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The broker under test.
pub fn brokers() -> String {
    std::env::var("PIXLAKE_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A name unique to this test run (topics, groups, tables).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Fails the test with the fix when no broker answers.
pub fn require_broker() {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().expect("consumer config");
    if let Err(e) = consumer.fetch_metadata(None, Duration::from_secs(15)) {
        panic!(
            "no Kafka broker at {}: {e}. Start one with `scripts/kafka.sh start` (or run scripts/test.sh), \
             or point PIXLAKE_TEST_BROKERS at one.",
            brokers()
        );
    }
}

/// Creates topics with `partitions` partitions each and waits until they are usable.
pub fn create_topics(names: &[&str], partitions: i32) {
    require_broker();
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().expect("admin client");
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)).set("max.message.bytes", "4194304"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let results = rt
        .block_on(admin.create_topics(&topics, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))))
        .expect("create topics");
    for r in results {
        if let Err((topic, code)) = r {
            assert_eq!(code, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists, "creating {topic}");
        }
    }
    // Wait until metadata shows every partition with a leader.
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    for _ in 0..60 {
        let ready = names.iter().all(|n| {
            consumer
                .fetch_metadata(Some(n), Duration::from_secs(5))
                .map(|m| {
                    m.topics()
                        .first()
                        .is_some_and(|t| t.error().is_none() && t.partitions().len() == partitions as usize)
                })
                .unwrap_or(false)
        });
        if ready {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("topics {names:?} not ready after 30 s");
}

/// Environment overrides pointing the three pipelines and the DLQ at the given topics.
pub fn pipeline_env(topics: &[String; 3], dlq: &str) -> Vec<(String, String)> {
    let mut env =
        vec![("PIXLAKE__KAFKA__BROKERS".to_owned(), brokers()), ("PIXLAKE__DLQ__TOPIC".to_owned(), dlq.to_owned())];
    for (i, t) in topics.iter().enumerate() {
        env.push((format!("PIXLAKE__PIPELINES__{i}__TOPIC"), t.clone()));
    }
    env
}

/// `scripts/kafka.sh ACTION` (start, stop): the tests that stop the shared broker.
pub fn kafka_sh(action: &str) {
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh");
    let out = std::process::Command::new("bash").arg(script).arg(action).output().unwrap();
    assert!(out.status.success(), "kafka.sh {action}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Starts the broker again even if the test fails half-way, for the tests that follow.
pub struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        kafka_sh("start");
    }
}
