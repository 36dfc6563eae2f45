//! Observability, end to end: a real Prometheus (Debian's `prometheus`) scrapes `pixlake ingest`
//! and its HTTP API must agree with the Delta tables (rows per table, rejections per rule), show
//! lag 0 once caught up and freshness samples for every row; every Grafana panel query and every
//! alert rule runs against that real data; the run's JSON logs hold no CPF, CNPJ or e-mail from
//! the generated records. The monitoring files also pass `promtool check` and `promtool test`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http;
use common::lake::{Proc, Setup, check_complete, check_invariant};
use pixlake::telemetry::Metrics;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool").args(args).current_dir(monitoring()).output().unwrap_or_else(|e| {
        panic!("promtool not found ({e}); install Prometheus with scripts/setup.sh (Debian package `prometheus`)")
    });
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn monitoring_files_pass_promtool() {
    promtool(&["check", "config", "prometheus.yml"]);
    let rules = promtool(&["check", "rules", "alerts.yml"]);
    assert!(rules.contains(&format!("SUCCESS: {} rules found", alert_count())), "{rules}");
    let tested = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// How many alerts `alerts.yml` defines.
fn alert_count() -> usize {
    let text = std::fs::read_to_string(monitoring().join("alerts.yml")).unwrap();
    text.lines().filter(|l| l.trim_start().starts_with("- alert:")).count()
}

/// Every family pixlake exports (with one pipeline and partition instantiated).
fn exported() -> BTreeSet<String> {
    let m = Metrics::new("test").unwrap();
    let _webhook = pixlake::telemetry::metrics::WebhookMetrics::new(&m).unwrap();
    let _ship_log = pixlake::telemetry::metrics::ShipLogMetrics::new(&m).unwrap();
    let p = m.pipeline("payments", "pix.payments", "pix_payments");
    let _ = p.partition(0);
    p.rejected("INVALID_CPF", 1);
    p.flagged("RESCUED_DATA", 1);
    m.family_names().into_iter().collect()
}

/// Metric names used in a PromQL text (histogram series suffixes folded into their family).
fn referenced(text: &str) -> BTreeSet<String> {
    let names = regex::Regex::new(r"\b(?:pixlake|process)_[a-z_]+\b").unwrap();
    names
        .find_iter(text)
        .map(|m| {
            let n = m.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|b| b.ends_with("_seconds")))
                .unwrap_or(n)
                .to_owned()
        })
        .collect()
}

fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(monitoring().join("grafana/pixlake.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "panel ids are unique");
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    exprs
}

#[test]
fn dashboard_and_alerts_use_only_exported_metrics() {
    let names = exported();
    for required in [
        "pixlake_records_consumed_total",
        "pixlake_consumed_bytes_total",
        "pixlake_rows_written_total",
        "pixlake_rejections_total",
        "pixlake_quality_flags_total",
        "pixlake_dlq_publish_failures_total",
        "pixlake_batches_committed_total",
        "pixlake_commit_duration_seconds",
        "pixlake_batch_stage_seconds",
        "pixlake_parquet_files_written_total",
        "pixlake_parquet_written_bytes_total",
        "pixlake_delta_table_version",
        "pixlake_delta_committed_offset",
        "pixlake_kafka_high_watermark",
        "pixlake_consumer_lag_records",
        "pixlake_consumer_lag_seconds",
        "pixlake_freshness_seconds",
        "pixlake_rebalances_total",
        "pixlake_retries_total",
        "pixlake_kafka_brokers_up",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(names.contains(required), "{required} is not exported: {names:?}");
    }
    let queries = dashboard_queries();
    assert!(queries.len() >= 25, "{} panel queries", queries.len());
    let alerts = std::fs::read_to_string(monitoring().join("alerts.yml")).unwrap();
    for text in queries.iter().chain([&alerts]) {
        for name in referenced(text) {
            assert!(names.contains(&name), "{name} (in `{text}`) is not a metric pixlake exports");
        }
    }
}

/// One series of a query result: its labels and value.
type Series = (BTreeMap<String, String>, f64);

/// A Prometheus server on a free port, scraping `target` every second with pixlake's alert
/// rules loaded; killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: pixlake\n    static_configs:\n      - targets: ['{target}']\n",
                monitoring().join("alerts.yml").display()
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", http::free_port());
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus ({e}); install it with scripts/setup.sh"));
        let p = Prometheus { child, addr };
        wait_until("Prometheus ready", Duration::from_secs(60), || match http::get(&p.addr, "/-/ready") {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        });
        p
    }

    /// An instant query: each series' labels and value.
    fn query(&self, q: &str) -> Result<Vec<Series>, String> {
        let (status, body) =
            http::get(&self.addr, &format!("/api/v1/query?query={}", http::encode(q))).map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("{q}: {status} {body}"));
        }
        Ok(v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = serde_json::from_value(r["metric"].clone()).unwrap();
                (labels, r["value"][1].as_str().unwrap().parse().unwrap_or(f64::NAN))
            })
            .collect())
    }

    /// `q`'s series keyed by the value of `label`.
    fn by(&self, q: &str, label: &str) -> Result<BTreeMap<String, u64>, String> {
        Ok(self.query(q)?.into_iter().map(|(l, v)| (l.get(label).cloned().unwrap_or_default(), v as u64)).collect())
    }

    /// The single value of `q`.
    fn scalar(&self, q: &str) -> Result<f64, String> {
        match self.query(q)?.as_slice() {
            [(_, v)] => Ok(*v),
            other => Err(format!("{q}: expected one series, got {other:?}")),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: not reached within {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn equal<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("{what}: Prometheus has {got:?}, expected {want:?}")) }
}

/// The CPFs, CNPJs and e-mail addresses in the generated records (as sent and digits only).
fn personal_data(values: impl Iterator<Item = Vec<u8>>) -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::String(s) => {
                let digits: String = s.chars().filter(char::is_ascii_digit).collect();
                let document = s.chars().all(|c| c.is_ascii_alphanumeric() || ".-/".contains(c));
                if s.contains('@') && s.contains('.') {
                    out.insert(s.clone());
                } else if document && (digits.len() == 11 || digits.len() == 14) && digits.len() + 4 >= s.len() {
                    out.insert(s.clone());
                    out.insert(digits);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for v in values {
        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&v) {
            walk(&json, &mut out);
        }
    }
    out
}

#[test]
fn prometheus_scrapes_ingest_and_agrees_with_the_tables() {
    common::require_broker();
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("observe", 3, dir.path());
    s.produce(6_000, 0.05, 71);
    let total: i64 = s.high_watermarks().values().sum();
    let addr = format!("127.0.0.1:{}", http::free_port());
    let ingest = Proc::spawn(s.command(
        &["ingest"],
        &[
            ("PIXLAKE__TELEMETRY__LISTEN", addr.as_str()),
            ("PIXLAKE__TELEMETRY__LOG_FORMAT", "json"),
            ("PIXLAKE__BATCH__MAX_ROWS", "1000"),
            ("PIXLAKE__BATCH__MAX_LATENCY_MS", "1000"),
            ("PIXLAKE__INGEST__IDLE_COMMIT_MS", "1000"),
            // pixlake's own debug lines too: more places personal data could leak from.
            (
                "PIXLAKE_LOG",
                "info,pixlake=debug,rdkafka=warn,librdkafka=warn,buoyant_kernel=warn,deltalake_core::writer::stats=error",
            ),
        ],
    ));

    // The listener is bound before the first table is opened.
    wait_until("/healthz answers", Duration::from_secs(60), || match http::get(&addr, "/healthz") {
        Ok((200, body)) if body == "ok\n" => Ok(()),
        other => Err(format!("{other:?}")),
    });
    assert_eq!(http::get(&addr, "/nowhere").unwrap().0, 404);
    wait_until("/readyz answers 200", Duration::from_secs(60), || {
        let (status, body) = http::get(&addr, "/readyz").map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        if status == 200 && v["ready"] == true && v["warehouse"] == "ok" { Ok(()) } else { Err(body) }
    });

    let prometheus = Prometheus::start(dir.path(), &addr);
    wait_until("every record in the tables", Duration::from_secs(180), || {
        equal("rows", check_invariant(&s).total() as i64, total)
    });
    let checked = check_complete(&s);
    let mut rows_by_table: BTreeMap<String, u64> = BTreeMap::new();
    let mut rejected_by_rule: BTreeMap<String, u64> = BTreeMap::new();
    for (table, id, _) in checked.contents.values() {
        *rows_by_table.entry(table.clone()).or_default() += 1;
        if table == "pix_quarantine" {
            *rejected_by_rule.entry(id.clone().unwrap()).or_default() += 1;
        }
    }
    assert!(rejected_by_rule.len() >= 5, "{rejected_by_rule:?}");

    let p = &prometheus;
    wait_until("Prometheus agrees with the tables", Duration::from_secs(90), || {
        equal("up", p.scalar(r#"up{job="pixlake"}"#)?, 1.0)?;
        let rows = p.by("sum by (table) (pixlake_rows_written_total)", "table")?;
        equal("rows written per table", rows, rows_by_table.clone())?;
        let rejected = p.by("sum by (rule) (pixlake_rejections_total)", "rule")?;
        equal("rejections per rule", rejected, rejected_by_rule.clone())?;
        equal("records consumed", p.scalar("sum(pixlake_records_consumed_total)")? as i64, total)?;
        equal("high watermarks", p.scalar("sum(pixlake_kafka_high_watermark)")? as i64, total)?;
        equal("partitions with a lag series", p.scalar("count(pixlake_consumer_lag_records)")?, 9.0)?;
        equal("lag when caught up", p.scalar("max(pixlake_consumer_lag_records)")?, 0.0)?;
        equal("lag seconds when caught up", p.scalar("max(pixlake_consumer_lag_seconds)")?, 0.0)?;
        equal("committed offsets", p.scalar("sum(pixlake_delta_committed_offset)")? as i64, total)?;
        equal("freshness samples", p.scalar("sum(pixlake_freshness_seconds_count)")? as i64, total)?;
        equal("batch stages seen", p.scalar("count(sum by (stage) (pixlake_batch_stage_seconds_count) > 0)")?, 7.0)?;
        equal("assigned partitions", p.scalar("min(pixlake_assigned_partitions)")?, 3.0)?;
        equal("brokers connected", p.scalar("min(pixlake_kafka_brokers_up)")? >= 1.0, true)?;
        equal("resident memory", p.scalar("process_resident_memory_bytes")? > 0.0, true)?;
        equal("Parquet files", p.scalar("sum(pixlake_parquet_files_written_total)")? >= 3.0, true)
    });

    // Every dashboard panel query runs on this data and finds series (rates need a few scrapes).
    wait_until("a few scrapes", Duration::from_secs(30), || {
        equal("scrapes in the last minute >= 5", p.scalar(r#"count_over_time(up{job="pixlake"}[1m])"#)? >= 5.0, true)
    });
    // The sources' panels need a `pixlake webhook` / `ship-log` (tests/webhook.rs checks the
    // webhook's metrics; their names are checked against the registry above).
    for expr in
        dashboard_queries().into_iter().filter(|e| !e.contains("pixlake_webhook_") && !e.contains("pixlake_shiplog_"))
    {
        let q = expr.replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$pipeline", ".*");
        let q = q.replace("$job", ".*");
        let series = prometheus.query(&q).unwrap_or_else(|e| panic!("dashboard query fails: {e}"));
        assert!(!series.is_empty(), "dashboard query finds nothing: {q}");
    }
    // Every alert rule evaluates without error against the real series.
    wait_until("alert rules evaluated", Duration::from_secs(30), || {
        let (_, body) = http::get(&prometheus.addr, "/api/v1/rules").map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let rules: Vec<&serde_json::Value> =
            v["data"]["groups"].as_array().into_iter().flatten().flat_map(|g| g["rules"].as_array().unwrap()).collect();
        equal("rules loaded", rules.len(), alert_count())?;
        let unhealthy: Vec<_> = rules.iter().filter(|r| r["health"] != "ok").collect();
        if unhealthy.is_empty() { Ok(()) } else { Err(format!("{unhealthy:?}")) }
    });

    ingest.sigterm();
    let (status, _, log) = ingest.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");

    // JSON lines, one committed-batch line per batch with what an operator searches for.
    let mut batches = 0;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
        if v["message"] == "committed batch" {
            batches += 1;
            for field in ["pipeline", "rows", "rejected", "offsets", "partitions", "ms"] {
                assert!(!v[field].is_null(), "{field} missing: {line}");
            }
        }
    }
    assert!(batches >= 6, "{batches} committed-batch lines");

    // No personal data in clear.
    let pii = personal_data(s.source_records().into_values().flatten());
    assert!(pii.len() > 1_000, "only {} documents and e-mails found in the generated records", pii.len());
    let leaked: Vec<&String> = pii.iter().filter(|x| log.contains(x.as_str())).collect();
    assert!(leaked.is_empty(), "personal data in the logs: {:?}", &leaked[..leaked.len().min(5)]);
    let email = regex::Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z]{2,}").unwrap();
    assert!(!email.is_match(&log), "an e-mail address in the logs: {:?}", email.find(&log));
}
