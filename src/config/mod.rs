//! Configuration: `config/pixlake.yaml` (or `--config PATH`), overridden by environment
//! variables `PIXLAKE__SECTION__KEY`, checked once into a [`Config`] that the rest of pixlake
//! can trust. Every problem is reported at once, each naming its key and what is allowed.
//!
//! ```text
//! YAML text ──parse──▶ JSON tree ──env overrides──▶ RawConfig (serde, deny_unknown_fields)
//!           ──validate──▶ Config
//! ```

mod env;
mod raw;
pub mod shiplog;
mod webhook;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::batch::FlushPolicy;
use crate::pix::Category;
pub use raw::RawConfig;
pub use shiplog::ShipLogConfig;
pub use webhook::{Receiver, WebhookConfig};

/// Default location of the configuration file, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/pixlake.yaml";

/// A configuration that passed every check.
#[derive(Clone, Debug)]
pub struct Config {
    /// Kafka connection settings.
    pub kafka: KafkaConfig,
    /// One pipeline per source topic.
    pub pipelines: Vec<Pipeline>,
    /// Dead letters.
    pub dlq: DlqConfig,
    /// Validation settings.
    pub validation: ValidationConfig,
    /// Where the tables live.
    pub warehouse: WarehouseConfig,
    /// Micro-batch limits.
    pub batch: FlushPolicy,
    /// Engine behaviour.
    pub ingest: IngestConfig,
    /// Metrics listener and log format.
    pub telemetry: TelemetryConfig,
    /// The API Pix webhook receiver (`pixlake webhook`).
    pub webhook: WebhookConfig,
    /// The core-banking log shipper (`pixlake ship-log`).
    pub ship_log: ShipLogConfig,
    /// Where the configuration came from, for messages.
    pub origin: String,
}

/// Kafka connection settings shared by every client. Its `Debug` hides secret values.
#[derive(Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// librdkafka settings passed through as given (security settings included), keys with dots.
    pub properties: BTreeMap<String, String>,
    /// Settings for consumers only (`kafka.consumer`), applied after `properties`.
    pub consumer: BTreeMap<String, String>,
    /// Settings for producers only (`kafka.producer`), applied after `properties`.
    pub producer: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("properties", &redacted(&self.properties))
            .field("consumer", &redacted(&self.consumer))
            .field("producer", &redacted(&self.producer))
            .finish()
    }
}

/// What a secret's value is shown as.
pub const REDACTED: &str = "[REDACTED]";

/// Whether the librdkafka setting `key` holds a secret: librdkafka's sensitive properties
/// (passwords, private keys and their passphrases, client secrets, the OAUTHBEARER config that
/// may embed a token), and anything named like one.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "passphrase"].iter().any(|w| key.contains(w))
        || key.ends_with("key.pem")
        || key == "sasl.oauthbearer.config"
        || key.ends_with("token")
        || key.contains("customer_key")
        || key == "sasl.jaas.config"
}

/// `map` with secret values replaced by [`REDACTED`].
fn redacted(map: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    map.iter().map(|(k, v)| (k.as_str(), if is_secret(k) { REDACTED } else { v.as_str() })).collect()
}

/// One source topic, its category and its table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipeline {
    /// Short name, unique (used in metrics, the quarantine `pipeline` column, app ids).
    pub name: String,
    /// The category of events this topic carries.
    pub category: Category,
    /// Source topic.
    pub topic: String,
    /// Delta table name under the warehouse root.
    pub table: String,
    /// Kafka consumer group (`group.id`).
    pub group: String,
}

/// `ingest.memory_limit_mb`: what ingest may hold in memory, in bytes (see `ingest::memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// `0`: no limit; `batch.max_bytes` and librdkafka's prefetch apply as configured.
    Off,
    /// Configured: refused when too small for the pipelines run.
    Set(u64),
    /// Not configured: this much, raised to what the pipelines need when they need more.
    Default(u64),
}

impl MemoryLimit {
    /// The limit in bytes, before any raise; `None` when off.
    pub fn bytes(self) -> Option<u64> {
        match self {
            MemoryLimit::Off => None,
            MemoryLimit::Set(b) | MemoryLimit::Default(b) => Some(b),
        }
    }

    /// Whether the limit is the default (not configured), which may be raised to what the
    /// pipelines need.
    pub fn is_default(self) -> bool {
        matches!(self, MemoryLimit::Default(_))
    }
}

/// Engine behaviour.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Longest a SIGTERM/SIGINT shutdown may take to flush and commit.
    pub shutdown_grace: std::time::Duration,
    /// Longest a table's offsets may trail what was read while it receives no rows (bounds what
    /// a restart re-reads; see `ingest` docs).
    pub idle_commit: std::time::Duration,
    /// Run table maintenance this often inside ingest (`None`: never).
    pub maintenance_interval: Option<std::time::Duration>,
    /// This instance's name in its consumer groups, logs, metrics and commits (default: the
    /// host name): unique per running process, stable across its restarts.
    pub instance_id: String,
    /// Whether `instance_id` is the host name because none was set.
    pub instance_id_is_host: bool,
    /// Static group membership: each pipeline's consumer joins with `group.instance.id` =
    /// [`IngestConfig::group_instance_id`], so a restarted instance gets its partitions back at
    /// once (see `ingest::consumer`).
    pub static_membership: bool,
    /// Attempts a failure retrying does not cure gets before the pipeline stops (see
    /// [`crate::fault`]).
    pub permanent_failure_attempts: u32,
    /// What ingest may hold in memory (`ingest.memory_limit_mb`; see `ingest::memory`).
    pub memory_limit: MemoryLimit,
    /// Threads of ingest's async runtime (`ingest.worker_threads`).
    pub worker_threads: usize,
}

impl IngestConfig {
    /// The `group.instance.id` of `pipeline`'s consumer.
    pub fn group_instance_id(&self, pipeline: &str) -> String {
        format!("{}-{pipeline}", self.instance_id)
    }
}

/// Metrics listener and log format.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// Where `ingest` serves /metrics, /healthz and /readyz (`None`: nowhere).
    pub listen: Option<std::net::SocketAddr>,
    /// How log lines are written.
    pub log_format: LogFormat,
}

/// How log lines are written (both masked, see `telemetry::mask`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines, colours on a terminal (development).
    Human,
    /// One JSON object per line (production, log collectors).
    Json,
}

/// Dead-letter settings.
#[derive(Clone, Debug)]
pub struct DlqConfig {
    /// Topic receiving rejected records with the error headers.
    pub topic: String,
}

/// Where the Delta tables live. Its `Debug` hides secret values.
#[derive(Clone)]
pub struct WarehouseConfig {
    /// Directory or URL; each table is `{root}/{table}`.
    pub root: String,
    /// Object-store settings for a remote root, as delta-rs takes them (`aws_endpoint`,
    /// `aws_region`, credentials…); empty for a local one. Unset keys fall back to the standard
    /// `AWS_*` environment variables (delta-rs reads them).
    pub storage: BTreeMap<String, String>,
}

impl std::fmt::Debug for WarehouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarehouseConfig").field("root", &self.root).field("storage", &redacted(&self.storage)).finish()
    }
}

impl WarehouseConfig {
    /// The location of `table` (a path or URL string, as `deltalake::ensure_table_uri` takes).
    pub fn table_location(&self, table: &str) -> String {
        format!("{}/{table}", self.root)
    }
}

/// Validation settings.
#[derive(Clone, Debug)]
pub struct ValidationConfig {
    /// Largest message value accepted (`OVERSIZED_MESSAGE` above).
    pub max_message_bytes: usize,
}

/// A name (pipeline, topic, rule) given on the command line that the configuration does not
/// have, with the ones it has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no {what} named {name:?}; the known ones are: {}", known.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
    pub known: Vec<String>,
}

/// Why a configuration could not be used; lists every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {path}; pass --config PATH or create it")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("{origin} is not valid YAML: {message}")]
    Yaml { origin: String, message: String },
    /// Keys or values are wrong.
    #[error("{origin} has {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Invalid { origin: String, problems: Vec<String> },
}

impl Config {
    /// Loads `path` (a missing default path means built-in defaults) and applies the process
    /// environment's `PIXLAKE__…` overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.to_owned(), source })?,
                p.display().to_string(),
            ),
            None => match std::fs::read_to_string(DEFAULT_PATH) {
                Ok(t) => (t, DEFAULT_PATH.to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), "built-in defaults".to_owned()),
                Err(source) => {
                    return Err(ConfigError::Read { path: DEFAULT_PATH.into(), source });
                }
            },
        };
        Self::from_yaml(&text, &origin, std::env::vars())
    }

    /// Builds a configuration from YAML text and `(name, value)` environment pairs.
    pub fn from_yaml(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            // Without the snippet of the lines around the error: they may hold a secret, and
            // the log mask does not know the secrets before the file is read.
            let mut options = serde_saphyr::Options::default();
            options.with_snippet = false;
            serde_saphyr::from_str_with_options(text, options)
                .map_err(|e| ConfigError::Yaml { origin: origin.to_owned(), message: e.to_string() })?
        };
        if tree.is_null() {
            tree = serde_json::Value::Object(Default::default());
        }
        // Materialize the default pipelines so that `PIXLAKE__PIPELINES__N__…` can override them.
        if let serde_json::Value::Object(map) = &mut tree
            && !map.contains_key("pipelines")
        {
            map.insert("pipelines".into(), serde_json::to_value(raw::default_pipelines()).unwrap_or_default());
        }
        let mut problems = env::apply_overrides(&mut tree, env);
        let raw: RawConfig = match serde_path_to_error::deserialize(tree) {
            Ok(raw) => raw,
            Err(e) => {
                let path = e.path().to_string();
                problems.push(format!("{path}: {}", e.into_inner()));
                return Err(ConfigError::Invalid { origin: origin.to_owned(), problems });
            }
        };
        let config = raw.validate(origin, &mut problems);
        if problems.is_empty() { Ok(config) } else { Err(ConfigError::Invalid { origin: origin.to_owned(), problems }) }
    }

    /// The secret values of the configuration (passwords, private keys…), for the log mask:
    /// whatever writes a line, these never reach it in clear. Values shorter than 4 characters
    /// are left out (masking them would garble every line; such a secret protects nothing).
    pub fn secrets(&self) -> Vec<String> {
        let k = &self.kafka;
        k.properties
            .iter()
            .chain(&k.consumer)
            .chain(&k.producer)
            .chain(&self.warehouse.storage)
            .filter(|(key, value)| is_secret(key) && value.chars().count() >= 4)
            .map(|(_, value)| value.clone())
            .chain(self.webhook.token.clone())
            .collect()
    }

    /// The effective configuration — file, environment and defaults — as `pixlake config
    /// show` prints it, secrets redacted.
    pub fn effective(&self) -> serde_json::Value {
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        serde_json::json!({
            "kafka": {
                "brokers": self.kafka.brokers,
                "properties": redacted(&self.kafka.properties),
                "consumer": redacted(&self.kafka.consumer),
                "producer": redacted(&self.kafka.producer),
            },
            "pipelines": self.pipelines.iter().map(|p| serde_json::json!({
                "name": p.name,
                "event_type": p.category.as_str(),
                "topic": p.topic,
                "table": p.table,
                "group": p.group,
            })).collect::<Vec<_>>(),
            "dlq": { "topic": self.dlq.topic },
            "validation": { "max_message_bytes": self.validation.max_message_bytes },
            "warehouse": { "root": self.warehouse.root, "storage": redacted(&self.warehouse.storage) },
            "batch": {
                "max_rows": self.batch.max_rows,
                "max_bytes": self.batch.max_bytes,
                "max_latency_ms": ms(self.batch.max_latency),
            },
            "ingest": {
                "shutdown_grace_ms": ms(self.ingest.shutdown_grace),
                "idle_commit_ms": ms(self.ingest.idle_commit),
                "maintenance_interval_ms": self.ingest.maintenance_interval.map_or(0, ms),
                "instance_id": self.ingest.instance_id,
                "static_membership": self.ingest.static_membership,
                "permanent_failure_attempts": self.ingest.permanent_failure_attempts,
                "memory_limit_mb": self.ingest.memory_limit.bytes().map_or(0, |l| l >> 20),
                "worker_threads": self.ingest.worker_threads,
            },
            "telemetry": {
                "listen": self.telemetry.listen.map_or_else(String::new, |a| a.to_string()),
                "log_format": match self.telemetry.log_format { LogFormat::Human => "human", LogFormat::Json => "json" },
            },
            "webhook": self.webhook.effective(),
            "ship_log": self.ship_log.effective(),
        })
    }

    /// The pipelines named in `names` (every one when empty), in configuration order — the one
    /// way every command selects pipelines. A name no pipeline has is an error listing the
    /// configured ones: a typo must not select nothing and succeed.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Pipeline>, UnknownName> {
        if let Some(unknown) = names.iter().find(|n| !self.pipelines.iter().any(|p| &p.name == *n)) {
            return Err(UnknownName {
                what: "pipeline",
                name: unknown.clone(),
                known: self.pipelines.iter().map(|p| p.name.clone()).collect(),
            });
        }
        Ok(self.pipelines.iter().filter(|p| names.is_empty() || names.contains(&p.name)).collect())
    }

    /// Checks `topics` against the pipelines' topics (see [`Config::select`]).
    pub fn check_topics(&self, topics: &[String]) -> Result<(), UnknownName> {
        match topics.iter().find(|t| !self.pipelines.iter().any(|p| &p.topic == *t)) {
            Some(unknown) => Err(UnknownName {
                what: "topic",
                name: unknown.clone(),
                known: self.pipelines.iter().map(|p| p.topic.clone()).collect(),
            }),
            None => Ok(()),
        }
    }

    /// The pipeline of `category` (the first one, if several read the same category).
    pub fn pipeline_for(&self, category: Category) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.category == category)
    }

    /// The topic events of `category` are published to.
    pub fn topic_for(&self, category: Category) -> &str {
        self.pipeline_for(category).map(|p| p.topic.as_str()).unwrap_or(category.default_topic())
    }

    /// The category of a topic, if a pipeline reads it.
    pub fn category_of_topic(&self, topic: &str) -> Option<Category> {
        self.pipelines.iter().find(|p| p.topic == topic).map(|p| p.category)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_yaml(yaml, "test.yaml", env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(c.pipelines.len(), 3);
        assert_eq!(c.topic_for(Category::Refund), "pix.refunds");
        assert_eq!(c.pipeline_for(Category::Payment).unwrap().table, "pix_payments");
        assert_eq!(c.dlq.topic, "pix.dlq");
        assert_eq!(c.validation.max_message_bytes, 1 << 20);
        assert_eq!(c.warehouse.table_location("pix_payments"), "./warehouse/pix_payments");
        assert_eq!(c.batch.max_rows, 100_000);
        assert_eq!(c.batch.max_latency, std::time::Duration::from_secs(2));
        assert_eq!(c.telemetry.listen, Some("127.0.0.1:9898".parse().unwrap()));
        assert_eq!(c.telemetry.log_format, LogFormat::Human);
        assert_eq!(c.ingest.idle_commit, std::time::Duration::from_secs(10));
        assert_eq!(Some(c.ingest.instance_id.clone()), raw::host_name(), "the host name by default");
        assert!(c.ingest.static_membership);
    }

    #[test]
    fn the_instance_id_is_checked_and_names_the_group_members() {
        let c =
            load("ingest:\n  instance_id: pixlake-0\n", &[("PIXLAKE__INGEST__STATIC_MEMBERSHIP", "false")]).unwrap();
        assert_eq!(c.ingest.group_instance_id("payments"), "pixlake-0-payments");
        assert!(!c.ingest.static_membership);
        let c = load("", &[("PIXLAKE__INGEST__INSTANCE_ID", "node-7.dc1")]).unwrap();
        assert_eq!(c.ingest.instance_id, "node-7.dc1");
        assert!(!c.ingest.instance_id_is_host);
        assert!(load("", &[]).unwrap().ingest.instance_id_is_host);
        // group.instance.id is derived per pipeline; setting it by hand would give every
        // pipeline the same one and hide it from pixlake's messages.
        let err = load("kafka:\n  consumer:\n    group.instance.id: x\n", &[]).unwrap_err().to_string();
        assert!(err.contains("kafka.consumer.group.instance.id") && err.contains("ingest.instance_id"), "{err}");
        let err = load("", &[("PIXLAKE__KAFKA__PROPERTIES__GROUP_INSTANCE_ID", "x")]).unwrap_err().to_string();
        assert!(err.contains("kafka.properties.group.instance.id"), "{err}");
        let c = load("", &[("PIXLAKE__INGEST__INSTANCE_ID", "42")]).unwrap();
        assert_eq!(c.ingest.instance_id, "42", "a number is a name too");
        for bad in ["a b", "pix:lake", "", "é"] {
            let err = load("", &[("PIXLAKE__INGEST__INSTANCE_ID", bad)]).unwrap_err().to_string();
            assert!(err.contains("ingest.instance_id"), "{bad}: {err}");
        }
    }

    #[test]
    fn telemetry_is_checked() {
        let c = load("telemetry:\n  listen: ''\n", &[("PIXLAKE__TELEMETRY__LOG_FORMAT", "json")]).unwrap();
        assert_eq!((c.telemetry.listen, c.telemetry.log_format), (None, LogFormat::Json));
        let err = load("telemetry:\n  listen: localhost\n  log_format: xml\n", &[]).unwrap_err().to_string();
        assert!(err.contains("telemetry.listen: `localhost` is not IP:port"), "{err}");
        assert!(err.contains("telemetry.log_format: `xml`"), "{err}");
    }

    #[test]
    fn the_shipped_configurations_load() {
        let base = load(include_str!("../../config/pixlake.yaml"), &[]).unwrap();
        assert_eq!(base.pipelines.len(), 3);
        assert_eq!(base.ingest.memory_limit, MemoryLimit::Default(512 << 20));
        let prod = load(include_str!("../../config/pixlake.prod.example.yaml"), &[]).unwrap();
        assert_eq!(prod.kafka.properties.get("security.protocol").map(String::as_str), Some("SASL_SSL"));
        assert_eq!(prod.topic_for(Category::Payment), "bank.pix.payments.v1");
    }

    #[test]
    fn warehouse_and_batch_are_checked() {
        let c = load("warehouse:\n  root: s3://lake/pix/\nbatch:\n  max_latency_ms: 250\n", &[]).unwrap();
        assert_eq!(c.warehouse.table_location("pix_refunds"), "s3://lake/pix/pix_refunds");
        assert_eq!(c.batch.max_latency, std::time::Duration::from_millis(250));
        let err = load("warehouse:\n  root: ftp://x\nbatch:\n  max_rows: 0\n  max_latency_ms: 1\n", &[])
            .unwrap_err()
            .to_string();
        for key in ["warehouse.root", "batch.max_rows", "batch.max_latency_ms"] {
            assert!(err.contains(key), "{key}: {err}");
        }
        // Batches within what an Arrow column can hold (2 GiB of text), with room to spare.
        assert!(load("batch:\n  max_bytes: 1073741824\n", &[]).is_ok());
        let err = load("batch:\n  max_bytes: 1073741825\n", &[]).unwrap_err().to_string();
        assert!(err.contains("batch.max_bytes") && err.contains("2 GiB"), "{err}");
    }

    #[test]
    fn env_overrides_any_key() {
        let c = load(
            "kafka:\n  brokers: a:1\n  properties:\n    fetch.wait.max.ms: 50\n    enable.ssl.certificate.verification: false\n",
            &[
                ("PIXLAKE__KAFKA__PROPERTIES__SESSION_TIMEOUT_MS", "6000"),
                ("PIXLAKE__KAFKA__CONSUMER__FETCH_WAIT_MAX_MS", "20"),
                ("PIXLAKE__KAFKA__PRODUCER__LINGER_MS", "5"),
                ("PIXLAKE__KAFKA__BROKERS", "b:2,c:3"),
                ("PIXLAKE__VALIDATION__MAX_MESSAGE_BYTES", "2048"),
                ("PIXLAKE__KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL"),
                ("PIXLAKE__PIPELINES__1__TOPIC", "bank.receipts"),
                ("OTHER", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(c.kafka.brokers, "b:2,c:3");
        assert_eq!(c.validation.max_message_bytes, 2048);
        assert_eq!(c.kafka.properties.get("security.protocol").map(String::as_str), Some("SASL_SSL"));
        // Numbers and booleans, from YAML or the environment, reach librdkafka as text.
        assert_eq!(c.kafka.properties.get("session.timeout.ms").map(String::as_str), Some("6000"));
        assert_eq!(c.kafka.properties.get("fetch.wait.max.ms").map(String::as_str), Some("50"));
        assert_eq!(c.kafka.properties.get("enable.ssl.certificate.verification").map(String::as_str), Some("false"));
        // Role-specific settings stay with their role.
        assert_eq!(c.kafka.consumer.get("fetch.wait.max.ms").map(String::as_str), Some("20"));
        assert_eq!(c.kafka.producer.get("linger.ms").map(String::as_str), Some("5"));
        assert!(!c.kafka.producer.contains_key("fetch.wait.max.ms"));
        assert_eq!(c.topic_for(Category::Receipt), "bank.receipts");
    }

    #[test]
    fn an_s3_warehouse_takes_its_endpoint_and_credentials_from_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3-secret");
        std::fs::write(&file, "s3cr3t-key-from-a-file\n").unwrap();
        let yaml = "warehouse:\n  root: s3://lake/pix/\n  endpoint: http://127.0.0.1:9100\n  region: sa-east-1\n  \
                    path_style: true\n  access_key_id: pixlake\n  options:\n    aws_server_side_encryption: AES256\n";
        let c = load(yaml, &[("PIXLAKE__WAREHOUSE__SECRET_ACCESS_KEY_FILE", file.to_str().unwrap())]).unwrap();
        assert_eq!(c.warehouse.root, "s3://lake/pix");
        let get = |k: &str| c.warehouse.storage.get(k).map(String::as_str);
        assert_eq!(get("aws_endpoint"), Some("http://127.0.0.1:9100"));
        assert_eq!(get("aws_allow_http"), Some("true"), "a plain-HTTP endpoint is allowed");
        assert_eq!(get("aws_region"), Some("sa-east-1"));
        assert_eq!(get("aws_virtual_hosted_style_request"), Some("false"));
        assert_eq!(get("aws_access_key_id"), Some("pixlake"));
        assert_eq!(get("aws_secret_access_key"), Some("s3cr3t-key-from-a-file"));
        assert_eq!(get("aws_server_side_encryption"), Some("AES256"));
        // The secret is masked everywhere pixlake could show it.
        assert!(c.secrets().contains(&"s3cr3t-key-from-a-file".to_owned()));
        assert!(!format!("{:?}", c.warehouse).contains("s3cr3t"));
        assert!(!c.effective().to_string().contains("s3cr3t"));
        assert!(c.effective().to_string().contains("sa-east-1"));

        // S3 settings on a local root, a root without a bucket, both spellings of a secret.
        let err = load("warehouse:\n  root: ./warehouse\n  endpoint: http://127.0.0.1:9100\n", &[]).unwrap_err();
        assert!(err.to_string().contains("apply to an s3:// root"), "{err}");
        let err = load("warehouse:\n  root: s3://\n", &[]).unwrap_err();
        assert!(err.to_string().contains("names no bucket"), "{err}");
        let err = load(
            "warehouse:\n  root: s3://b/p\n  secret_access_key: x\n",
            &[("PIXLAKE__WAREHOUSE__SECRET_ACCESS_KEY_FILE", file.to_str().unwrap())],
        )
        .unwrap_err();
        assert!(err.to_string().contains("keep one of the two"), "{err}");

        // object_store's own `_file` settings pass through as paths; unknown options and a
        // setting given twice are refused; tokens are secrets.
        let c =
            load("warehouse:\n  root: s3://b/p\n  options:\n    aws_web_identity_token_file: /var/run/token\n", &[])
                .unwrap();
        assert_eq!(c.warehouse.storage.get("aws_web_identity_token_file").map(String::as_str), Some("/var/run/token"));
        let err = load("warehouse:\n  root: s3://b/p\n  options:\n    aws_sse_kms_keyid: k\n", &[]).unwrap_err();
        assert!(err.to_string().contains("not an object-store setting"), "{err}");
        let err =
            load("warehouse:\n  root: s3://b/p\n  region: sa-east-1\n  options:\n    aws_region: us-east-1\n", &[])
                .unwrap_err();
        assert!(err.to_string().contains("set by a dedicated warehouse setting"), "{err}");
        let c = load("warehouse:\n  root: s3://b/p\n  session_token: tok-12345\n", &[]).unwrap();
        assert!(c.secrets().contains(&"tok-12345".to_owned()) && !c.effective().to_string().contains("tok-12345"));
        assert!(is_secret("aws_token") && is_secret("aws_sse_customer_key_base64"));
        assert!(!is_secret("sasl.oauthbearer.token.endpoint.url"));
    }

    #[test]
    fn secrets_come_from_files_and_are_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kafka-password");
        std::fs::write(&file, "s3cr3t-from-a-file\n").unwrap();
        let env = [
            ("PIXLAKE__KAFKA__PROPERTIES__SASL_PASSWORD_FILE", file.to_str().unwrap()),
            ("PIXLAKE__KAFKA__PRODUCER__SSL_KEY_PASSWORD", "key-pass-123"),
            ("PIXLAKE__KAFKA__PROPERTIES__SASL_USERNAME", "pixlake"),
        ];
        let c = load("", &env).unwrap();
        assert_eq!(c.kafka.properties.get("sasl.password").map(String::as_str), Some("s3cr3t-from-a-file"));
        let mut secrets = c.secrets();
        secrets.sort();
        assert_eq!(secrets, vec!["key-pass-123".to_owned(), "s3cr3t-from-a-file".to_owned()]);
        let shown = c.effective().to_string() + &format!("{c:?}");
        assert!(!shown.contains("s3cr3t") && !shown.contains("key-pass-123"), "{shown}");
        assert!(shown.contains(REDACTED) && shown.contains("pixlake"), "{shown}");
        // A missing file, or the same secret set twice, names the key.
        let err =
            load("", &[("PIXLAKE__KAFKA__PROPERTIES__SASL_PASSWORD_FILE", "/nowhere/pw")]).unwrap_err().to_string();
        assert!(err.contains("kafka.properties.sasl_password_file: cannot read /nowhere/pw"), "{err}");
        let twice = [
            ("PIXLAKE__KAFKA__PROPERTIES__SASL_PASSWORD_FILE", file.to_str().unwrap()),
            ("PIXLAKE__KAFKA__PROPERTIES__SASL_PASSWORD", "x"),
        ];
        let err = load("", &twice).unwrap_err().to_string();
        assert!(err.contains("sasl.password is set directly too"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
        // librdkafka's own `*.file` settings are paths it reads itself.
        let own =
            load("kafka:\n  properties:\n    sasl.oauthbearer.assertion.private.key.file: /k.pem\n", &[]).unwrap();
        assert_eq!(
            own.kafka.properties.get("sasl.oauthbearer.assertion.private.key.file").map(String::as_str),
            Some("/k.pem")
        );
        for key in [
            "sasl.oauthbearer.assertion.private.key.pem",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "ssl.truststore.password",
        ] {
            assert!(is_secret(key), "{key}");
        }
        assert!(!is_secret("sasl.oauthbearer.token.endpoint.url") && !is_secret("ssl.key.location"));
        // A YAML error does not quote the lines around it.
        let err = load("kafka:\n  properties:\n    sasl.password: hunter2-yaml\n  brokers: [\n", &[])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2-yaml"), "{err}");
    }

    #[test]
    fn commands_select_pipelines_and_topics_by_known_names_only() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.select(&[]).unwrap().len(), 3);
        let names = |v: Vec<&Pipeline>| v.into_iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(c.select(&["refunds".into(), "payments".into()]).unwrap()), vec!["payments", "refunds"]);
        let err = c.select(&["paymets".into()]).unwrap_err().to_string();
        assert_eq!(err, r#"no pipeline named "paymets"; the known ones are: payments, receipts, refunds"#);
        assert!(c.check_topics(&["pix.refunds".into()]).is_ok());
        assert!(c.check_topics(&["pix.refund".into()]).unwrap_err().to_string().contains("pix.payments, pix.receipts"));
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = load(
            "pipelines:\n  - {name: a, event_type: payment, topic: t}\n  - {name: a, event_type: chargeback, topic: t}\nvalidation:\n  max_message_bytes: 10\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("pipelines[1].event_type"), "{err}");
        assert!(err.contains("pipelines[1].name"), "{err}");
        assert!(err.contains("pipelines[1].topic"), "{err}");
        assert!(err.contains("validation.max_message_bytes"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_with_the_allowed_ones() {
        let err = load("kafka:\n  bootstrap: x\n", &[]).unwrap_err().to_string();
        assert!(err.contains("kafka"), "{err}");
        assert!(err.contains("unknown field `bootstrap`"), "{err}");
        assert!(err.contains("brokers"), "{err}");
    }

    #[test]
    fn the_iso20022_shipper_needs_a_participant_and_checks_its_window() {
        let c = load("ship_log:\n  format: iso20022\n  iso20022:\n    participant_ispb: '60701190'\n", &[]).unwrap();
        assert_eq!(c.ship_log.format, shiplog::Format::Iso20022);
        let iso = c.ship_log.iso20022.unwrap();
        assert_eq!((iso.reader.participant.as_str(), iso.reader.source.as_str()), ("60701190", "spi-log"));
        assert_eq!(iso.join_window, std::time::Duration::from_secs(3600));
        let err = load(
            "ship_log:\n  iso20022:\n    participant_ispb: '00038166'\n    join_window_seconds: 0\n",
            &[("PIXLAKE__SHIP_LOG__FORMAT", "xml")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ship_log.format"), "{err}");
        let err = load("ship_log:\n  iso20022:\n    participant_ispb: '00038166'\n    join_window_seconds: 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ship_log.iso20022.participant_ispb"), "{err}");
        assert!(err.contains("ship_log.iso20022.join_window_seconds"), "{err}");
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let err = load("", &[("PIXLAKE__VALIDATION__MAX_MESSAGE_BYTES", "lots")]).unwrap_err().to_string();
        assert!(err.contains("validation.max_message_bytes"), "{err}");
    }
}
