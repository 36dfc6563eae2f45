//! The SPEC §5 invariant, checked row by row on what `pixlake ingest` wrote, and a handle on a
//! running `pixlake` process (stderr collected, SIGKILL / SIGTERM on demand).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::{Int32Type, Int64Type};
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pixlake::offsets::{AppIds, PartitionOffsets};
use pixlake::sink::delta::{Loaded, read_offsets};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// (topic, partition, offset)
pub type Key = (String, i32, i64);

/// Where a row is and what identifies its content: (table, event_id or error rule, raw value).
pub type Content = (String, Option<String>, Option<Vec<u8>>);

/// One test's pipelines: names, topics, tables, where the warehouse is.
#[derive(Clone, Debug)]
pub struct Setup {
    pub run: String,
    pub topics: [String; 3],
    pub dlq: String,
    /// A local warehouse's directory (unused when [`Setup::storage`] is set).
    pub warehouse: PathBuf,
    /// `warehouse.root` as pixlake is given it: the directory, or an `s3://` URL.
    pub root: String,
    /// The `warehouse.*` settings of an S3 warehouse, as `PIXLAKE__WAREHOUSE__…` variables
    /// (empty for a local one).
    pub storage: Vec<(String, String)>,
    pub partitions: i32,
}

/// The S3-compatible store `scripts/s3.sh` runs (moto on 127.0.0.1), its bucket, and the
/// settings pixlake and the tests reach it with.
pub mod s3 {
    /// The store's URL (`PIXLAKE_S3_PORT`, default 9100).
    pub fn endpoint() -> String {
        format!("http://127.0.0.1:{}", std::env::var("PIXLAKE_S3_PORT").unwrap_or_else(|_| "9100".into()))
    }

    /// The bucket `scripts/s3.sh start` creates.
    pub const BUCKET: &str = "pixlake";

    /// pixlake's `warehouse.*` settings for it.
    pub fn settings() -> Vec<(String, String)> {
        [
            ("ENDPOINT", endpoint()),
            ("REGION", "us-east-1".into()),
            ("PATH_STYLE", "true".into()),
            ("ACCESS_KEY_ID", "pixlake".into()),
            ("SECRET_ACCESS_KEY", "pixlake-secret".into()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("PIXLAKE__WAREHOUSE__{k}"), v))
        .collect()
    }

    /// The same as delta-rs storage options (for the tests' own reads).
    pub fn options() -> std::collections::HashMap<String, String> {
        [
            ("aws_endpoint", endpoint()),
            ("aws_region", "us-east-1".into()),
            ("aws_virtual_hosted_style_request", "false".into()),
            ("aws_allow_http", "true".into()),
            ("aws_access_key_id", "pixlake".into()),
            ("aws_secret_access_key", "pixlake-secret".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Fails the test with the fix when the store does not answer.
    pub fn require() {
        let addr = endpoint().trim_start_matches("http://").to_owned();
        if std::net::TcpStream::connect(&addr).is_err() {
            panic!("no S3-compatible store at {addr}: start one with `scripts/s3.sh start` (or run scripts/test.sh)");
        }
    }
}

pub const PIPELINES: [&str; 3] = ["payments", "receipts", "refunds"];
pub const TABLES: [&str; 3] = ["pix_payments", "pix_receipts", "pix_refunds"];

impl Setup {
    /// Fresh topics (`partitions` each) and a fresh warehouse under `dir`.
    pub fn new(prefix: &str, partitions: i32, dir: &Path) -> Setup {
        let run = super::unique(prefix);
        let topics = [format!("{run}.payments"), format!("{run}.receipts"), format!("{run}.refunds")];
        let dlq = format!("{run}.dlq");
        let names: Vec<&str> = topics.iter().map(String::as_str).chain([dlq.as_str()]).collect();
        super::create_topics(&names, partitions);
        let warehouse = dir.join("warehouse");
        let root = warehouse.display().to_string();
        Setup { run, topics, dlq, warehouse, root, storage: Vec::new(), partitions }
    }

    /// Fresh topics and a fresh warehouse under `s3://pixlake/{run}` on the local S3 store.
    pub fn on_s3(prefix: &str, partitions: i32, dir: &Path) -> Setup {
        s3::require();
        let mut s = Setup::new(prefix, partitions, dir);
        s.root = format!("s3://{}/{}", s3::BUCKET, s.run);
        s.storage = s3::settings();
        s
    }

    /// Where `table` is, and the storage options to open it with.
    pub fn table_location(&self, table: &str) -> (url::Url, std::collections::HashMap<String, String>) {
        if self.storage.is_empty() {
            (deltalake::ensure_table_uri(self.warehouse.join(table).to_str().unwrap()).unwrap(), Default::default())
        } else {
            (url::Url::parse(&format!("{}/{table}", self.root)).unwrap(), s3::options())
        }
    }

    /// Environment for a `pixlake` process of this setup (groups unique to the run).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = super::pipeline_env(&self.topics, &self.dlq);
        for (i, p) in PIPELINES.iter().enumerate() {
            env.push((format!("PIXLAKE__PIPELINES__{i}__GROUP"), format!("{}-{p}", self.run)));
        }
        env.push(("PIXLAKE__WAREHOUSE__ROOT".into(), self.root.clone()));
        env.extend(self.storage.iter().cloned());
        env.push(("PIXLAKE__KAFKA__CONSUMER__SESSION_TIMEOUT_MS".into(), "6000".into()));
        env.push(("PIXLAKE__KAFKA__CONSUMER__HEARTBEAT_INTERVAL_MS".into(), "1000".into()));
        // Tests run several instances at once: each metrics listener on a port of its own.
        env.push(("PIXLAKE__TELEMETRY__LISTEN".into(), "127.0.0.1:0".into()));
        env.push((
            "PIXLAKE_LOG".into(),
            "info,rdkafka=warn,librdkafka=warn,buoyant_kernel=warn,deltalake_core::writer::stats=error".into(),
        ));
        env
    }

    /// `pixlake ARGS` with this setup's environment and `extra` variables.
    pub fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pixlake"));
        c.args(args).envs(self.env()).envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        c.env_remove("PIXLAKE_PROBE");
        c
    }

    /// [`Setup::command`] with the probe markers on: the process prints `pixlake-probe: POINT`
    /// at each point of `pixlake::probe` (assigned, committed, fenced…), which tests wait for
    /// instead of reading log wording.
    pub fn traced(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut c = self.command(args, extra);
        c.env("PIXLAKE_PROBE", "markers");
        c
    }

    /// Produces `count` generated records (`invalid` ratio) to the setup's topics.
    pub fn produce(&self, count: u64, invalid: f64, seed: u64) {
        let out = self
            .command(
                &[
                    "produce",
                    "--count",
                    &count.to_string(),
                    "--invalid-ratio",
                    &invalid.to_string(),
                    "--seed",
                    &seed.to_string(),
                    "--events-per-day",
                    "2000000",
                ],
                &[],
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "produce failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// High watermark of every source partition.
    pub fn high_watermarks(&self) -> BTreeMap<(String, i32), i64> {
        let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", super::brokers()).create().unwrap();
        let mut out = BTreeMap::new();
        for t in &self.topics {
            for p in 0..self.partitions {
                let (_, high) = consumer.fetch_watermarks(t, p, Duration::from_secs(30)).unwrap();
                out.insert((t.clone(), p), high);
            }
        }
        out
    }

    /// Every record of the source topics: (topic, partition, offset) → value.
    pub fn source_records(&self) -> HashMap<Key, Option<Vec<u8>>> {
        let highs = self.high_watermarks();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", super::brokers())
            .set("group.id", format!("{}-reader", self.run))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for (t, p) in highs.keys() {
            tpl.add_partition_offset(t, *p, Offset::Beginning).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let total: i64 = highs.values().sum();
        let mut out = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while (out.len() as i64) < total {
            assert!(Instant::now() < deadline, "read {} of {total} source records", out.len());
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
                out.insert((m.topic().to_owned(), m.partition(), m.offset()), m.payload().map(<[u8]>::to_vec));
            }
        }
        out
    }
}

/// One row's coordinates, and its raw value for quarantine rows.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: Key,
    pub raw_value: Option<Vec<u8>>,
    pub error_rule: Option<String>,
    /// `event_id` of category rows.
    pub event_id: Option<String>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// `table` at its latest version (`None`: not created yet), local or on S3.
pub fn open(s: &Setup, table: &str) -> Option<deltalake::DeltaTable> {
    deltalake::aws::register_handlers(None);
    let (url, options) = s.table_location(table);
    let mut t = deltalake::DeltaTableBuilder::from_url(url).unwrap().with_storage_options(options).build().unwrap();
    // No table yet is `None`; any other failure (the store not answering) must not pass for it.
    match runtime().block_on(t.load()) {
        Ok(()) => Some(t),
        Err(deltalake::DeltaTableError::NotATable(_) | deltalake::DeltaTableError::InvalidTableLocation(_)) => None,
        Err(e) => panic!("cannot read {table}: {e}"),
    }
}

/// The rows of `table` as loaded (reading rows and offsets from one loaded version keeps the
/// check consistent while pixlake is committing).
pub fn table_rows(table: Option<&deltalake::DeltaTable>, quarantine: bool) -> Vec<Row> {
    let Some(t) = table else { return Vec::new() };
    let mut out = Vec::new();
    // Each data file whole, through the table's own object store (local disk or S3 alike).
    let store = t.object_store();
    let paths: Vec<deltalake::Path> = t.snapshot().unwrap().log_data().iter().map(|f| f.object_store_path()).collect();
    for path in paths {
        let bytes = runtime().block_on(async {
            use deltalake::logstore::object_store::ObjectStoreExt;
            store.get(&path).await.unwrap().bytes().await.unwrap()
        });
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let mut cols = vec!["kafka_topic", "kafka_partition", "kafka_offset"];
        if quarantine {
            cols.extend(["raw_value", "error_rule"]);
        } else {
            cols.push("event_id");
        }
        let mask = ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
        for batch in builder.with_projection(mask).build().unwrap() {
            let b = batch.unwrap();
            let topic = b.column_by_name("kafka_topic").unwrap().as_string::<i32>().clone();
            let part = b.column_by_name("kafka_partition").unwrap().as_primitive::<Int32Type>().clone();
            let off = b.column_by_name("kafka_offset").unwrap().as_primitive::<Int64Type>().clone();
            let raw = b.column_by_name("raw_value").map(|c| c.as_binary::<i32>().clone());
            let rule = b.column_by_name("error_rule").map(|c| c.as_string::<i32>().clone());
            let event_id = b.column_by_name("event_id").map(|c| c.as_string::<i32>().clone());
            for i in 0..b.num_rows() {
                out.push(Row {
                    key: (topic.value(i).to_owned(), part.value(i), off.value(i)),
                    raw_value: raw.as_ref().and_then(|r| (!r.is_null(i)).then(|| r.value(i).to_vec())),
                    error_rule: rule.as_ref().map(|r| r.value(i).to_owned()),
                    event_id: event_id.as_ref().map(|r| r.value(i).to_owned()),
                });
            }
        }
    }
    out
}

/// The committed offsets of one pipeline's partitions, with pixlake's own reader.
pub fn offsets(
    pipeline: &str,
    topic: &str,
    partitions: &[i32],
    category: (&str, Option<&deltalake::DeltaTable>),
    quarantine: Option<&deltalake::DeltaTable>,
) -> PartitionOffsets {
    let category = Loaded { name: category.0, table: category.1 };
    let quarantine = Loaded { name: "pix_quarantine", table: quarantine };
    runtime().block_on(read_offsets(AppIds::new(pipeline, topic), partitions, category, quarantine)).unwrap()
}

/// What [`check_invariant`] found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Per source partition: the offset below which both tables are complete.
    pub committed: BTreeMap<(String, i32), i64>,
    /// Rows in the category tables / in quarantine.
    pub rows: usize,
    pub quarantined: usize,
    pub quarantine_rows: Vec<Row>,
    /// Every row of the four tables: key → (table, event_id or raw value + rule).
    pub contents: HashMap<Key, Content>,
}

impl Checked {
    pub fn total(&self) -> usize {
        self.rows + self.quarantined
    }
}

/// SPEC §5, row by row: for every source partition, every offset below the committed offset is
/// in exactly one of {category table, pix_quarantine}; no (topic, partition, offset) appears
/// twice; no table holds a row at or past its own committed offset. Panics with the first
/// violation.
pub fn check_invariant(s: &Setup) -> Checked {
    let mut seen: HashMap<Key, &'static str> = HashMap::new();
    let mut checked = Checked::default();
    let parts: Vec<i32> = (0..s.partitions).collect();
    let quarantine_table = open(s, "pix_quarantine");
    let quarantine = table_rows(quarantine_table.as_ref(), true);
    for (i, table) in TABLES.iter().enumerate() {
        let topic = &s.topics[i];
        let category_table = open(s, table);
        let committed =
            offsets(PIPELINES[i], topic, &parts, (table, category_table.as_ref()), quarantine_table.as_ref());
        let table_rows = table_rows(category_table.as_ref(), false);
        checked.rows += table_rows.len();
        for r in &table_rows {
            checked.contents.insert(r.key.clone(), (table.to_string(), r.event_id.clone(), None));
        }
        let mine = quarantine.iter().filter(|r| &r.key.0 == topic);
        for (r, name, quarantined) in
            table_rows.iter().map(|r| (r, *table, false)).chain(mine.map(|r| (r, "pix_quarantine", true)))
        {
            let (t, p, o) = &r.key;
            assert_eq!(t, topic, "row of another topic in {name}");
            let of = committed[p];
            let limit = if quarantined { of.quarantine } else { of.category };
            assert!(
                limit.is_some_and(|l| *o < l),
                "{name} has a row at {t}:{p}:{o}, at or past its committed offset {limit:?}"
            );
            if let Some(other) = seen.insert(r.key.clone(), name) {
                panic!("{t}:{p}:{o} is in {other} and in {name}: a duplicate");
            }
        }
        for (&p, of) in &committed {
            let committed = of.resume().unwrap_or(0);
            for o in 0..committed {
                assert!(
                    seen.contains_key(&(topic.clone(), p, o)),
                    "{topic}:{p}:{o} is below the committed offset {committed} but in no table: lost"
                );
            }
            checked.committed.insert((topic.clone(), p), committed);
        }
    }
    checked.quarantined = quarantine.len();
    for r in &quarantine {
        checked.contents.insert(r.key.clone(), ("pix_quarantine".into(), r.error_rule.clone(), r.raw_value.clone()));
    }
    checked.quarantine_rows = quarantine;
    checked
}

/// Asserts the run is complete: the invariant holds and every partition is committed up to its
/// high watermark.
pub fn check_complete(s: &Setup) -> Checked {
    let checked = check_invariant(s);
    let highs = s.high_watermarks();
    assert_eq!(checked.committed, highs, "committed offsets vs high watermarks");
    assert_eq!(checked.total() as i64, highs.values().sum::<i64>(), "one row per record");
    checked
}

/// Waits until every source partition of `s` is committed up to the high watermark it has
/// now, checking the invariant at each look. Panics, with the logs of `procs`, after `timeout`
/// or as soon as one of them exits.
pub fn wait_committed(s: &Setup, timeout: Duration, procs: &mut [&mut Proc]) -> Checked {
    wait_topics_committed(s, &s.topics, timeout, procs)
}

/// [`wait_committed`] for the partitions of `topics` only.
pub fn wait_topics_committed(s: &Setup, topics: &[String], timeout: Duration, procs: &mut [&mut Proc]) -> Checked {
    let mut highs = s.high_watermarks();
    highs.retain(|(t, _), _| topics.contains(t));
    let deadline = Instant::now() + timeout;
    loop {
        let checked = check_invariant(s);
        let mut committed = checked.committed.clone();
        committed.retain(|(t, _), _| topics.contains(t));
        if committed == highs {
            return checked;
        }
        let exited = procs.iter_mut().any(|p| p.child.try_wait().unwrap().is_some());
        let logs = || procs.iter().map(|p| p.log()).collect::<Vec<_>>().join("\n===== next process =====\n");
        assert!(!exited, "a pixlake process exited before the tables caught up:\n{}", logs());
        assert!(Instant::now() < deadline, "not caught up within {timeout:?}: {committed:?}\n{}", logs());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A running `pixlake` process whose stderr is collected line by line.
pub struct Proc {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        Proc { child, lines }
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn count(&self, needle: &str) -> usize {
        self.lines.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// How many times the process passed probe point `point` (see [`Setup::traced`]).
    pub fn probes(&self, point: &str) -> usize {
        let marker = format!("pixlake-probe: {point}");
        self.lines.lock().unwrap().iter().filter(|l| l.trim_end() == marker).count()
    }

    /// Waits until the process passed probe point `point` `n` times in all (false on timeout or
    /// exit).
    pub fn wait_probe(&mut self, point: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.probes(point) >= n {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                std::thread::sleep(Duration::from_millis(200));
                return self.probes(point) >= n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits until a stderr line contains `needle` (false on timeout or exit).
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count(needle) > 0 {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                std::thread::sleep(Duration::from_millis(200));
                return self.count(needle) > 0;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&self) {
        // SAFETY: kill(2) on our own child's pid; no memory is shared.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM to pixlake");
    }

    /// Sends `signal` (e.g. `libc::SIGCONT`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is shared.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "signal {signal} to pixlake");
    }

    /// Waits for the exit (panics after `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("pixlake did not exit within {timeout:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the exit and returns stdout.
    pub fn finish(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let status = self.wait(timeout);
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut s, &mut out);
        }
        (status, out, self.log())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
