//! The configuration file as written: serde structs with defaults, `deny_unknown_fields`, and
//! the checks that turn them into a [`Config`](super::Config).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{
    Config, DlqConfig, IngestConfig, KafkaConfig, LogFormat, MemoryLimit, Pipeline, TelemetryConfig, ValidationConfig,
    WarehouseConfig,
};
use crate::batch::FlushPolicy;
use crate::pix::Category;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Kafka connection.
    #[serde(default)]
    pub kafka: RawKafka,
    /// Source topics and their tables; default: the three SPEC pipelines.
    #[serde(default = "default_pipelines")]
    pub pipelines: Vec<RawPipeline>,
    /// Dead letters.
    #[serde(default)]
    pub dlq: RawDlq,
    /// Validation.
    #[serde(default)]
    pub validation: RawValidation,
    /// Where the Delta tables live.
    #[serde(default)]
    pub warehouse: RawWarehouse,
    /// Micro-batch limits.
    #[serde(default)]
    pub batch: RawBatch,
    /// Engine behaviour: shutdown grace, idle commits.
    #[serde(default)]
    pub ingest: RawIngest,
    /// Metrics listener and log format.
    #[serde(default)]
    pub telemetry: RawTelemetry,
    /// The API Pix webhook receiver.
    #[serde(default)]
    pub webhook: super::webhook::RawWebhook,
    /// The core-banking log shipper.
    #[serde(default)]
    pub ship_log: super::shiplog::RawShipLog,
}

/// `telemetry:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// `IP:port` of the HTTP listener serving /metrics, /healthz and /readyz during `ingest`
    /// (port 0: any free port, logged); empty: no listener.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `human` (development) or `json` (one JSON object per line, for log collectors).
    #[serde(default = "default_log_format")]
    pub log_format: String,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry { listen: default_listen(), log_format: default_log_format() }
    }
}

fn default_listen() -> String {
    "127.0.0.1:9898".into()
}

fn default_log_format() -> String {
    "human".into()
}

/// `ingest:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    /// Longest a SIGTERM/SIGINT shutdown may take to flush and commit, in milliseconds.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Longest a table's offsets may trail what was read while it receives no rows, in milliseconds.
    #[serde(default = "default_idle_commit_ms")]
    pub idle_commit_ms: u64,
    /// Run `maintain` (compaction, checkpoint, vacuum with the default retention) every this
    /// many milliseconds inside ingest; 0: never.
    #[serde(default)]
    pub maintenance_interval_ms: u64,
    /// This instance's name in its consumer groups, logs and metrics; default: the host name.
    #[serde(default)]
    pub instance_id: Option<Scalar>,
    /// Static group membership (`group.instance.id` = `{instance_id}-{pipeline}`).
    #[serde(default = "default_true")]
    pub static_membership: bool,
    /// Attempts a storage failure retrying does not cure (access denied, a changed table) gets
    /// before the pipeline stops.
    #[serde(default = "default_permanent_failure_attempts")]
    pub permanent_failure_attempts: u32,
    /// What ingest may hold in memory, in MiB: batches, the batch being committed, librdkafka's
    /// prefetch (see `ingest::memory`); 0: no limit (the batch and Kafka settings as configured);
    /// unset: [`DEFAULT_MEMORY_LIMIT_MB`], or what the pipelines need if that is more.
    #[serde(default)]
    pub memory_limit_mb: Option<u64>,
    /// Threads of the async runtime that serves the pipelines' storage I/O (uploads, log
    /// commits, checkpoints) and the metrics listener.
    #[serde(default = "default_worker_threads")]
    pub worker_threads: usize,
}

fn default_worker_threads() -> usize {
    2
}

fn default_permanent_failure_attempts() -> u32 {
    crate::fault::PERMANENT_ATTEMPTS
}

/// `ingest.memory_limit_mb` when not set: the process, three pipelines' batches and prefetch
/// (`scripts/bench.sh` measures the rate and the peak with it).
pub const DEFAULT_MEMORY_LIMIT_MB: u64 = 512;

impl Default for RawIngest {
    fn default() -> Self {
        RawIngest {
            shutdown_grace_ms: default_shutdown_grace_ms(),
            idle_commit_ms: default_idle_commit_ms(),
            maintenance_interval_ms: 0,
            instance_id: None,
            static_membership: true,
            permanent_failure_attempts: default_permanent_failure_attempts(),
            memory_limit_mb: None,
            worker_threads: default_worker_threads(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// The host name, as the default `ingest.instance_id` (`None` if the system has none).
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `buf.len()` bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..len]).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// librdkafka settings whose own name ends in `.file`: passed through, never read by pixlake.
const LIBRDKAFKA_FILE_KEYS: [&str; 3] = [
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.file",
    "sasl.oauthbearer.assertion.jwt.template.file",
];

/// The value in the file at `path` (a secret mounted as a file), without the line break that
/// usually ends it.
pub(super) fn read_secret_file(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path.trim()).map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Kafka accepts `group.instance.id` values of `[a-zA-Z0-9._-]`; the pipeline name and a dash
/// are appended to the instance id, so it is kept well under Kafka's 249 characters.
fn is_instance_id(s: &str) -> bool {
    (1..=200).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn default_shutdown_grace_ms() -> u64 {
    30_000
}

fn default_idle_commit_ms() -> u64 {
    10_000
}

/// `warehouse:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarehouse {
    /// Directory or URL under which each table is a sub-directory (`./warehouse`,
    /// `/data/lake`, `s3://bucket/pix`).
    #[serde(default = "default_warehouse")]
    pub root: String,
    /// S3-compatible storage (an `s3://` root): the service's URL (unset: AWS).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Its region.
    #[serde(default)]
    pub region: Option<String>,
    /// Bucket in the path (`http://host/bucket/key`, MinIO, Ceph, moto) rather than the host name.
    #[serde(default)]
    pub path_style: Option<bool>,
    /// Credentials (unset: the standard `AWS_*` environment variables, or the instance's role).
    #[serde(default)]
    pub access_key_id: Option<Scalar>,
    #[serde(default)]
    pub secret_access_key: Option<Scalar>,
    #[serde(default)]
    pub secret_access_key_file: Option<String>,
    #[serde(default)]
    pub session_token: Option<Scalar>,
    #[serde(default)]
    pub session_token_file: Option<String>,
    /// More object-store settings, passed as they are (`aws_server_side_encryption`, …); a
    /// key ending in `_file` reads its value from that file.
    #[serde(default)]
    pub options: BTreeMap<String, Scalar>,
}

impl Default for RawWarehouse {
    fn default() -> Self {
        RawWarehouse {
            root: default_warehouse(),
            endpoint: None,
            region: None,
            path_style: None,
            access_key_id: None,
            secret_access_key: None,
            secret_access_key_file: None,
            session_token: None,
            session_token_file: None,
            options: BTreeMap::new(),
        }
    }
}

/// Whether `key` is a setting delta-rs's S3 store understands (object_store's keys, in any of
/// their spellings, and delta-rs's own).
fn known_storage_option(key: &str) -> bool {
    use std::str::FromStr;
    deltalake::logstore::object_store::aws::AmazonS3ConfigKey::from_str(&key.to_ascii_lowercase()).is_ok()
        || deltalake::aws::constants::S3_OPTS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

impl RawWarehouse {
    /// The object-store settings of the warehouse (empty for a local one), `problems` noted.
    fn storage_options(self, remote: bool, problems: &mut Vec<String>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut secret = |key: &str,
                          direct: Option<Scalar>,
                          file: Option<String>,
                          out: &mut BTreeMap<String, String>| match (direct, file) {
            (Some(_), Some(_)) => {
                problems.push(format!("warehouse.{key} and warehouse.{key}_file are both set; keep one of the two"))
            }
            (Some(v), None) => {
                out.insert(format!("aws_{key}"), v.to_string());
            }
            (None, Some(path)) => match read_secret_file(&path) {
                Ok(v) => {
                    out.insert(format!("aws_{key}"), v);
                }
                Err(why) => problems.push(format!("warehouse.{key}_file: {why}")),
            },
            (None, None) => {}
        };
        secret("secret_access_key", self.secret_access_key, self.secret_access_key_file, &mut out);
        secret("session_token", self.session_token, self.session_token_file, &mut out);
        if let Some(id) = self.access_key_id {
            out.insert("aws_access_key_id".into(), id.to_string());
        }
        if let Some(endpoint) = self.endpoint.map(|e| e.trim().trim_end_matches('/').to_owned()) {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                problems.push(format!("warehouse.endpoint: `{endpoint}` is not an http:// or https:// URL"));
            }
            // A plain-HTTP endpoint (a store on the local network or loopback) must be allowed.
            if endpoint.starts_with("http://") {
                out.insert("aws_allow_http".into(), "true".into());
            }
            out.insert("aws_endpoint".into(), endpoint);
        }
        if let Some(region) = self.region {
            out.insert("aws_region".into(), region);
        }
        if let Some(path_style) = self.path_style {
            out.insert("aws_virtual_hosted_style_request".into(), (!path_style).to_string());
        }
        let mut from_files = Vec::new();
        let dedicated = out.clone();
        for (k, v) in self.options {
            // object_store's own `…_file` settings (a web identity token file…) are paths it
            // reads itself; any other `KEY_file` is a secret pixlake reads from that file.
            let own = known_storage_option(&k);
            // A setting given twice — as a dedicated warehouse key and in options — is a mistake
            // whichever was meant.
            let target = k.strip_suffix("_file").filter(|_| !own).unwrap_or(&k);
            if dedicated
                .keys()
                .any(|d| d.eq_ignore_ascii_case(target) || d["aws_".len()..].eq_ignore_ascii_case(target))
            {
                problems.push(format!("warehouse.options.{k}: set by a dedicated warehouse setting already; keep one"));
                continue;
            }
            match k.strip_suffix("_file").filter(|_| !own) {
                Some(target) => match read_secret_file(&v.to_string()) {
                    Ok(value) => from_files.push((k.clone(), target.to_owned(), value)),
                    Err(why) => problems.push(format!("warehouse.options.{k}: {why}")),
                },
                None if !own => problems.push(format!(
                    "warehouse.options.{k}: not an object-store setting (aws_region, aws_sse_kms_key_id, …); a typo here \
                     would be ignored silently"
                )),
                None => {
                    out.insert(k, v.to_string());
                }
            }
        }
        for (k, target, value) in from_files {
            if out.insert(target.clone(), value).is_some() {
                problems.push(format!("warehouse.options.{k}: {target} is set too; keep one of the two"));
            }
        }
        if !remote && !out.is_empty() {
            problems.push(
                "warehouse: endpoint, region, path_style, credentials and options apply to an s3:// root; \
                 warehouse.root is a local path"
                    .into(),
            );
        }
        out
    }
}

/// `batch:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    /// Most rows in one Delta commit.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Most bytes of message values buffered per pipeline.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Longest a record waits before its batch is committed, in milliseconds.
    #[serde(default = "default_max_latency_ms")]
    pub max_latency_ms: u64,
}

impl Default for RawBatch {
    fn default() -> Self {
        RawBatch {
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_latency_ms: default_max_latency_ms(),
        }
    }
}

fn default_warehouse() -> String {
    "./warehouse".into()
}

fn default_max_rows() -> usize {
    100_000
}

fn default_max_bytes() -> usize {
    64 << 20
}

/// 2 s: a payment is in the table about 2 s after it was published (freshness p99 within
/// `max_latency_ms` + 1 s, `scripts/bench.sh`). Commits cost milliseconds whatever the table's
/// history (`sink::delta::append`), so the extra commits of a short latency cost little.
fn default_max_latency_ms() -> u64 {
    2_000
}

/// `kafka:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    /// Comma-separated `host:port` list (`bootstrap.servers`).
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// librdkafka settings passed through (e.g. `security.protocol: SASL_SSL`). In environment
    /// variables write dots as underscores: `PIXLAKE__KAFKA__PROPERTIES__SASL_MECHANISMS`.
    #[serde(default)]
    pub properties: BTreeMap<String, Scalar>,
    /// librdkafka settings for the consumers only (`session.timeout.ms`, `group.instance.id`…).
    #[serde(default)]
    pub consumer: BTreeMap<String, Scalar>,
    /// librdkafka settings for the producers only (`linger.ms`, `compression.type`…).
    #[serde(default)]
    pub producer: BTreeMap<String, Scalar>,
}

/// A librdkafka setting's value as written: YAML (and environment overrides) may give
/// `session.timeout.ms: 6000` or `enable.ssl.certificate.verification: false`; librdkafka
/// takes them all as text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Text(s) => f.write_str(s),
            Scalar::Integer(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl Default for RawKafka {
    fn default() -> Self {
        RawKafka {
            brokers: default_brokers(),
            properties: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

/// One entry of `pipelines:`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// Unique short name.
    pub name: String,
    /// `payment`, `receipt` or `refund`.
    pub event_type: String,
    /// Source topic.
    pub topic: String,
    /// Delta table; default from the category (`pix_payments`, …).
    #[serde(default)]
    pub table: Option<String>,
    /// Kafka consumer group; default `pixlake-{name}`.
    #[serde(default)]
    pub group: Option<String>,
}

/// `dlq:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDlq {
    /// Dead-letter topic.
    #[serde(default = "default_dlq_topic")]
    pub topic: String,
}

impl Default for RawDlq {
    fn default() -> Self {
        RawDlq { topic: default_dlq_topic() }
    }
}

/// `validation:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawValidation {
    /// Largest message value accepted, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

impl Default for RawValidation {
    fn default() -> Self {
        RawValidation { max_message_bytes: default_max_message_bytes() }
    }
}

fn default_brokers() -> String {
    "127.0.0.1:9092".into()
}

fn default_dlq_topic() -> String {
    "pix.dlq".into()
}

fn default_max_message_bytes() -> usize {
    crate::pix::event::DEFAULT_MAX_MESSAGE_BYTES
}

pub(super) fn default_pipelines() -> Vec<RawPipeline> {
    [("payments", Category::Payment), ("receipts", Category::Receipt), ("refunds", Category::Refund)]
        .into_iter()
        .map(|(name, c)| RawPipeline {
            name: name.into(),
            event_type: c.as_str().into(),
            topic: c.default_topic().into(),
            table: None,
            group: None,
        })
        .collect()
}

/// Kafka topic names: 1–249 of `[a-zA-Z0-9._-]`.
fn is_topic_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 249
        && s != "."
        && s != ".."
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

/// Table and pipeline names: `[a-z0-9_]`, starting with a letter (safe in paths and SQL).
fn is_identifier(s: &str) -> bool {
    s.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

impl RawConfig {
    /// Checks every value, appending one line per problem to `problems`.
    pub fn validate(self, origin: &str, problems: &mut Vec<String>) -> Config {
        let brokers = self.kafka.brokers.trim().to_owned();
        if brokers.is_empty() {
            problems.push("kafka.brokers: empty; give host:port[,host:port…], e.g. 127.0.0.1:9092".into());
        }
        // librdkafka names use dots only; environment variables cannot, so map `_` back. A key
        // ending in `_file` (`.file` once mapped) names a file holding the value of the key
        // without it — `sasl.password_file: /run/secrets/kafka` — so secrets mount as files.
        let mut settings = |section: &str, map: BTreeMap<String, Scalar>| {
            let mut out = BTreeMap::new();
            let mut from_files = Vec::new();
            for (k, v) in map {
                let key = k.replace('_', ".");
                if key == "bootstrap.servers" {
                    problems.push(format!("kafka.{section}.{k}: set kafka.brokers instead"));
                }
                // Only the `_file` spelling (the environment's `__…_FILE` too); librdkafka's own
                // `*.file` settings (OAUTHBEARER assertions) are file paths it reads itself.
                let reference = k.ends_with("_file") && !LIBRDKAFKA_FILE_KEYS.contains(&key.as_str());
                match key.strip_suffix(".file").filter(|_| reference) {
                    Some(target) => match read_secret_file(&v.to_string()) {
                        Ok(value) => from_files.push((k, target.to_owned(), value)),
                        Err(why) => problems.push(format!("kafka.{section}.{k}: {why}")),
                    },
                    None => {
                        out.insert(key, v.to_string());
                    }
                }
            }
            for (k, target, value) in from_files {
                if out.contains_key(&target) {
                    problems.push(format!("kafka.{section}.{k}: {target} is set directly too; keep one of the two"));
                }
                out.insert(target, value);
            }
            out
        };
        let properties = settings("properties", self.kafka.properties);
        let consumer = settings("consumer", self.kafka.consumer);
        let producer = settings("producer", self.kafka.producer);
        if self.pipelines.is_empty() {
            problems.push("pipelines: empty; configure at least one topic → table pipeline".into());
        }
        let (mut names, mut topics, mut tables) = (HashSet::new(), HashSet::new(), HashSet::new());
        let mut pipelines = Vec::new();
        for (i, p) in self.pipelines.into_iter().enumerate() {
            let category = Category::from_event_type(&p.event_type);
            if category.is_none() {
                problems.push(format!(
                    "pipelines[{i}].event_type: `{}` is not a category; use payment, receipt or refund",
                    p.event_type
                ));
            }
            if !is_identifier(&p.name) {
                problems.push(format!("pipelines[{i}].name: `{}` must be [a-z0-9_] starting with a letter", p.name));
            } else if !names.insert(p.name.clone()) {
                problems.push(format!(
                    "pipelines[{i}].name: `{}` is used by another pipeline; names must be unique",
                    p.name
                ));
            }
            if !is_topic_name(&p.topic) {
                problems.push(format!(
                    "pipelines[{i}].topic: `{}` is not a Kafka topic name ([a-zA-Z0-9._-], ≤ 249)",
                    p.topic
                ));
            } else if !topics.insert(p.topic.clone()) {
                problems.push(format!(
                    "pipelines[{i}].topic: `{}` is read by another pipeline; one pipeline per topic",
                    p.topic
                ));
            }
            let table = p.table.clone().or_else(|| category.map(|c| c.default_table().to_owned())).unwrap_or_default();
            if !is_identifier(&table) {
                problems.push(format!("pipelines[{i}].table: `{table}` must be [a-z0-9_] starting with a letter"));
            } else if !tables.insert(table.clone()) {
                problems.push(format!(
                    "pipelines[{i}].table: `{table}` is written by another pipeline; one table per pipeline"
                ));
            }
            let group = p.group.clone().unwrap_or_else(|| format!("pixlake-{}", p.name));
            if group.trim().is_empty() || group.len() > 249 {
                problems.push(format!("pipelines[{i}].group: `{group}` must be 1 to 249 characters"));
            }
            if let Some(category) = category {
                pipelines.push(Pipeline { name: p.name, category, topic: p.topic, table, group });
            }
        }
        if !is_topic_name(&self.dlq.topic) {
            problems.push(format!("dlq.topic: `{}` is not a Kafka topic name", self.dlq.topic));
        } else if topics.contains(&self.dlq.topic) {
            problems.push(format!(
                "dlq.topic: `{}` is also a source topic; dead letters need their own topic",
                self.dlq.topic
            ));
        }
        let max = self.validation.max_message_bytes;
        if !(1024..=(64 << 20)).contains(&max) {
            problems
                .push(format!("validation.max_message_bytes: {max} is outside 1024 ..= 67108864 (1 KiB to 64 MiB)"));
        }
        let warehouse = self.warehouse.root.trim().trim_end_matches('/').to_owned();
        let given = self.warehouse.root.trim();
        let remote = given.starts_with("s3://") || given.starts_with("s3a://");
        if remote && given.split_once("://").is_none_or(|(_, rest)| rest.split('/').next().is_none_or(str::is_empty)) {
            problems.push(format!("warehouse.root: `{warehouse}` names no bucket; write s3://bucket/prefix"));
        }
        if warehouse.is_empty() {
            problems.push("warehouse.root: empty; give a directory (./warehouse) or a URL (s3://bucket/path)".into());
        } else if let Some((scheme, _)) = warehouse.split_once("://")
            && !matches!(scheme, "file" | "s3" | "s3a" | "memory")
        {
            problems.push(format!(
                "warehouse.root: scheme `{scheme}://` is not supported; use a path, file://, s3:// or memory://"
            ));
        }
        let warehouse_storage = self.warehouse.storage_options(remote, problems);
        let b = &self.batch;
        if !(1..=10_000_000).contains(&b.max_rows) {
            problems.push(format!("batch.max_rows: {} is outside 1 ..= 10000000", b.max_rows));
        }
        // At most 1 GiB: an Arrow text or binary column holds at most 2 GiB (`i32` offsets), and a
        // batch's columns can hold more than its record bytes (`raw_value` and `raw_text` of
        // rejected records are both copies, the rescued fields get their paths): beyond that,
        // Arrow's builders panic on an append, and every restart would meet the same batch.
        if !((1 << 10)..=(1 << 30)).contains(&b.max_bytes) {
            problems.push(format!(
                "batch.max_bytes: {} is outside 1024 ..= 1073741824 (1 KiB to 1 GiB: a batch's text columns must stay within Arrow's 2 GiB)",
                b.max_bytes
            ));
        }
        if !(10..=600_000).contains(&b.max_latency_ms) {
            problems
                .push(format!("batch.max_latency_ms: {} is outside 10 ..= 600000 (10 ms to 10 min)", b.max_latency_ms));
        }
        let g = &self.ingest;
        if !(100..=3_600_000).contains(&g.shutdown_grace_ms) {
            problems.push(format!(
                "ingest.shutdown_grace_ms: {} is outside 100 ..= 3600000 (0.1 s to 1 h)",
                g.shutdown_grace_ms
            ));
        }
        if !(100..=3_600_000).contains(&g.idle_commit_ms) {
            problems
                .push(format!("ingest.idle_commit_ms: {} is outside 100 ..= 3600000 (0.1 s to 1 h)", g.idle_commit_ms));
        }
        if let Some(limit) = g.memory_limit_mb
            && limit != 0
            && !(128..=1_048_576).contains(&limit)
        {
            problems.push(format!(
                "ingest.memory_limit_mb: {limit} is outside 128 ..= 1048576 (128 MiB to 1 TiB), or 0 for no limit"
            ));
        }
        if !(1..=64).contains(&g.worker_threads) {
            problems.push(format!("ingest.worker_threads: {} is outside 1 ..= 64", g.worker_threads));
        }
        if !(1..=100).contains(&g.permanent_failure_attempts) {
            problems.push(format!(
                "ingest.permanent_failure_attempts: {} is outside 1 ..= 100",
                g.permanent_failure_attempts
            ));
        }
        if g.maintenance_interval_ms != 0 && !(1_000..=86_400_000).contains(&g.maintenance_interval_ms) {
            problems.push(format!(
                "ingest.maintenance_interval_ms: {} is outside 1000 ..= 86400000 (1 s to 1 day), or 0 for never",
                g.maintenance_interval_ms
            ));
        }
        for (section, map) in [("properties", &properties), ("consumer", &consumer)] {
            if map.contains_key("group.instance.id") {
                problems.push(format!(
                    "kafka.{section}.group.instance.id: set ingest.instance_id instead (PIXLAKE__INGEST__INSTANCE_ID); \
                     pixlake derives group.instance.id = {{instance_id}}-{{pipeline}} for each pipeline's group, and \
                     ingest.static_membership: false turns static membership off"
                ));
            }
        }
        let given = g.instance_id.as_ref().map(|id| id.to_string().trim().to_owned());
        let instance_id = match given.as_deref() {
            Some(id) if is_instance_id(id) => id.to_owned(),
            Some(id) => {
                problems.push(format!(
                    "ingest.instance_id: `{id}` must be 1 to 200 of [a-zA-Z0-9._-] (Kafka's rule for group.instance.id), e.g. the pod name"
                ));
                String::new()
            }
            None => match host_name() {
                Some(h) if is_instance_id(&h) => h,
                Some(h) => {
                    problems.push(format!(
                        "ingest.instance_id: the host name `{h}` is not usable as an instance id ([a-zA-Z0-9._-]); set ingest.instance_id (PIXLAKE__INGEST__INSTANCE_ID)"
                    ));
                    String::new()
                }
                None => {
                    problems.push(
                        "ingest.instance_id: this host has no name; set ingest.instance_id (PIXLAKE__INGEST__INSTANCE_ID)"
                            .to_owned(),
                    );
                    String::new()
                }
            },
        };
        let t = &self.telemetry;
        let listen = t.listen.trim();
        let listen = if listen.is_empty() {
            None
        } else if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
            Some(addr)
        } else {
            problems.push(format!(
                "telemetry.listen: `{listen}` is not IP:port (e.g. 127.0.0.1:9898, 0.0.0.0:9898, [::]:9898); empty for no listener"
            ));
            None
        };
        let log_format = match t.log_format.trim() {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                problems.push(format!("telemetry.log_format: `{other}` is not one of human, json"));
                LogFormat::Human
            }
        };
        let webhook = self.webhook.validate(problems);
        let ship_log = self.ship_log.validate(problems);
        Config {
            webhook,
            ship_log,
            telemetry: TelemetryConfig { listen, log_format },
            ingest: IngestConfig {
                maintenance_interval: (g.maintenance_interval_ms > 0)
                    .then(|| std::time::Duration::from_millis(g.maintenance_interval_ms)),
                shutdown_grace: std::time::Duration::from_millis(g.shutdown_grace_ms),
                idle_commit: std::time::Duration::from_millis(g.idle_commit_ms),
                instance_id,
                instance_id_is_host: given.is_none(),
                static_membership: g.static_membership,
                permanent_failure_attempts: g.permanent_failure_attempts,
                memory_limit: match g.memory_limit_mb {
                    None => MemoryLimit::Default(DEFAULT_MEMORY_LIMIT_MB << 20),
                    Some(0) => MemoryLimit::Off,
                    Some(limit) => MemoryLimit::Set(limit << 20),
                },
                worker_threads: g.worker_threads,
            },
            warehouse: WarehouseConfig { root: warehouse, storage: warehouse_storage },
            batch: FlushPolicy {
                max_rows: b.max_rows,
                max_bytes: b.max_bytes,
                max_latency: std::time::Duration::from_millis(b.max_latency_ms),
            },
            kafka: KafkaConfig { brokers, properties, consumer, producer },
            pipelines,
            dlq: DlqConfig { topic: self.dlq.topic },
            validation: ValidationConfig { max_message_bytes: max },
            origin: origin.to_owned(),
        }
    }
}
