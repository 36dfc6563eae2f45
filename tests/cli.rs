//! The `validate` and `produce --output` commands end to end, through the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use pixlake::pix::HardRule;

fn pixlake() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pixlake"));
    // Built-in defaults, whatever the working directory holds.
    c.arg("--config").arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/pixlake.yaml"));
    c.env_remove("PIXLAKE_LOG");
    c
}

fn produce(path: &std::path::Path, count: u64, invalid: f64, seed: u64) {
    let out = pixlake()
        .args(["produce", "--output"])
        .arg(path)
        .args(["--count", &count.to_string(), "--invalid-ratio", &invalid.to_string(), "--seed", &seed.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn generated_invalid_records_cover_every_hard_rule_at_the_asked_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    produce(&a, 100_000, 0.05, 1);
    produce(&b, 100_000, 0.05, 1);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "same seed, different bytes");

    let out = pixlake().args(["validate", "--json"]).arg(&a).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "some lines are invalid: exit 1");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut by_rule: BTreeMap<String, u64> = BTreeMap::new();
    let mut lines = 0u64;
    for (i, line) in stdout.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        lines += 1;
        assert_eq!(v["line"], i as u64 + 1, "one object per input line, in order");
        let ok = v["ok"].as_bool().unwrap();
        assert_eq!(ok, v["rule"].is_null());
        assert!(v["flags"].is_array());
        if !ok {
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
            *by_rule.entry(v["rule"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    assert_eq!(lines, 100_000);
    let rejected: u64 = by_rule.values().sum();
    let pct = rejected as f64 * 100.0 / lines as f64;
    assert!((pct - 5.0).abs() <= 0.5, "{pct:.2} % rejected");
    let seen: BTreeSet<&str> = by_rule.keys().map(String::as_str).collect();
    // Every rule ingest applies (the others are the ISO 20022 shipper's).
    for rule in HardRule::ALL.iter().filter(|r| !r.source_only()) {
        assert!(seen.contains(rule.id()), "{} never rejected: {by_rule:?}", rule.id());
    }
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("100000 lines:"), "summary on stderr with --json: {summary}");
}

#[test]
fn human_output_exit_codes_and_topics() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.jsonl");
    produce(&clean, 2000, 0.0, 3);
    let out = pixlake().arg("validate").arg(&clean).output().unwrap();
    assert!(out.status.success(), "all valid: exit 0");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("line 1: ok"));
    assert!(text.contains("2000 lines: 2000 valid, 0 rejected"));

    // Published to the payments topic, every receipt and refund is a TOPIC_MISMATCH.
    let out = pixlake().args(["validate", "--json", "--topic", "pix.payments"]).arg(&clean).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if !v["ok"].as_bool().unwrap() {
            assert_eq!(v["rule"], "TOPIC_MISMATCH");
        }
    }
    let out = pixlake().args(["validate", "--topic", "nowhere"]).arg(&clean).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pix.payments"), "names the known topics");
}

#[test]
fn stdin_and_kcat_envelopes() {
    let payment = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/payment.json")).unwrap();
    let payment = payment.trim();
    let envelope =
        serde_json::json!({"topic": "pix.refunds", "partition": 0, "offset": 7, "key": "k", "payload": payment});
    let input = format!("{payment}\n{envelope}\n{{\"oops\"\n");
    let mut child = pixlake()
        .args(["validate", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let v: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0]["ok"], true);
    assert_eq!(v[1]["rule"], "TOPIC_MISMATCH", "the envelope's topic is the refunds topic");
    assert_eq!(v[2]["rule"], "MALFORMED_JSON");
}

#[test]
fn a_bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, "kafka:\n  brokers: ''\nvalidation:\n  max_message_bytes: 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pixlake"))
        .arg("--config")
        .arg(&cfg)
        .args(["validate", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kafka.brokers") && err.contains("validation.max_message_bytes"), "{err}");
    let out = pixlake()
        .env("PIXLAKE__VALIDATION__MAX_MESSAGE_BYTES", "lots")
        .args(["validate", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("validation.max_message_bytes"));
}

#[test]
fn labels_name_the_fraud_records() {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, labels) = (dir.path().join("f.jsonl"), dir.path().join("labels.csv"));
    let out = pixlake()
        .args(["produce", "--count", "5000", "--fraud-ratio", "0.2", "--seed", "4", "--output"])
        .arg(&out_path)
        .arg("--labels")
        .arg(&labels)
        .output()
        .unwrap();
    assert!(out.status.success());
    let labels = std::fs::read_to_string(&labels).unwrap();
    let mut lines = labels.lines();
    assert_eq!(lines.next(), Some("end_to_end_id,pattern"));
    let rows: Vec<(&str, &str)> = lines.map(|l| l.split_once(',').unwrap()).collect();
    assert!(rows.len() > 200, "{}", rows.len());
    let events = std::fs::read_to_string(&out_path).unwrap();
    for (e2e, pattern) in &rows {
        assert!(["night_burst", "new_device", "mule", "med_refund"].contains(pattern));
        assert!(events.contains(e2e), "{e2e} labelled but not produced");
    }
}

#[test]
fn sigterm_stops_an_endless_run_with_complete_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("endless.jsonl");
    let mut child = pixlake().args(["produce", "--rate", "2000", "--output"]).arg(&path).spawn().unwrap();
    // Wait until it has written something, then ask it to stop.
    for _ in 0..100 {
        if std::fs::metadata(&path).map(|m| m.len() > 0).unwrap_or(false) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let code = child.wait().unwrap();
    assert!(code.success(), "exit 0 after SIGTERM: {code:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'), "the last line is complete");
    let out = pixlake().arg("validate").arg(&path).output().unwrap();
    assert!(out.status.success(), "every line written is a whole, valid event");
}

#[test]
fn config_show_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key-password");
    std::fs::write(&key, "from-a-file-42\n").unwrap();
    let out = pixlake()
        .args(["config", "show", "--json"])
        .env("PIXLAKE__KAFKA__PROPERTIES__SASL_PASSWORD", "hunter2-hunter2")
        .env("PIXLAKE__KAFKA__PROPERTIES__SASL_USERNAME", "pixlake")
        .env("PIXLAKE__KAFKA__PRODUCER__SSL_KEY_PASSWORD_FILE", &key)
        .env("PIXLAKE__INGEST__INSTANCE_ID", "node-3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("hunter2") && !text.contains("from-a-file"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["kafka"]["properties"]["sasl.password"], "[REDACTED]");
    assert_eq!(json["kafka"]["producer"]["ssl.key.password"], "[REDACTED]");
    assert_eq!(json["kafka"]["properties"]["sasl.username"], "pixlake");
    assert_eq!(json["ingest"]["instance_id"], "node-3");
    assert_eq!(json["pipelines"][2]["group"], "pixlake-refunds");
    // The YAML form says the same.
    let yaml =
        pixlake().args(["config", "show"]).env("PIXLAKE__KAFKA__PROPERTIES__SASL_PASSWORD", "hunter2-hunter2").output();
    let yaml = String::from_utf8(yaml.unwrap().stdout).unwrap();
    assert!(yaml.contains("sasl.password:") && yaml.contains("[REDACTED]") && !yaml.contains("hunter2"), "{yaml}");
}

/// A library error that quotes a setting's value (librdkafka refusing a property this build does
/// not support) does not print a secret either: the final error line is masked like the log.
#[test]
fn an_error_quoting_a_secret_setting_does_not_show_it() {
    let secret = "top-secret-oidc-3141";
    let out = pixlake()
        .args(["status"])
        .env("PIXLAKE__KAFKA__PROPERTIES__SASL_OAUTHBEARER_CLIENT_SECRET", secret)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sasl.oauthbearer.client.secret"), "the setting is named: {stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
}

/// A typo in a pipeline, topic or rule name is an error naming the known ones, for every command
/// that selects — never a command that selects nothing and passes.
#[test]
fn unknown_names_are_refused_with_the_known_ones() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["audit", "--pipeline", "paymets"],
            r#"no pipeline named "paymets"; the known ones are: payments, receipts, refunds"#,
        ),
        (&["status", "--pipeline", "paymets"], r#"no pipeline named "paymets""#),
        (&["maintain", "--pipeline", "paymets"], r#"no pipeline named "paymets""#),
        (&["ingest", "--pipeline", "paymets", "--until-caught-up"], r#"no pipeline named "paymets""#),
        (
            &["dlq", "replay", "--rule", "INVALID_CFP"],
            r#"no hard rule named "INVALID_CFP"; the known ones are: OVERSIZED_MESSAGE, MALFORMED_JSON"#,
        ),
        (
            &["dlq", "replay", "--topic", "pix.payment"],
            r#"no topic named "pix.payment"; the known ones are: pix.payments"#,
        ),
    ];
    for (args, want) in cases {
        let out = pixlake().args(args).env("PIXLAKE__TELEMETRY__LISTEN", "").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

/// Errors that have a cause (an unreachable broker, a warehouse that cannot be written, a TLS
/// file that does not exist) say each cause exactly once, on the one `pixlake: …` line, and
/// name what to fix (ripgrep's convention: a message says its own layer and the fix, the causes
/// follow it once each).
#[test]
fn an_error_says_each_cause_once_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let under_a_file = file.join("warehouse").display().to_string();
    // (arguments, environment, the root cause, the fix)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case<'_>; 3] = [
        (&["status"], &[("PIXLAKE__KAFKA__BROKERS", "127.0.0.1:1")], "BrokerTransportFailure", "kafka.brokers"),
        (
            &["ingest", "--until-caught-up", "--pipeline", "payments"],
            &[
                ("PIXLAKE__KAFKA__BROKERS", "127.0.0.1:1"),
                ("PIXLAKE__WAREHOUSE__ROOT", &under_a_file),
                ("PIXLAKE__INGEST__PERMANENT_FAILURE_ATTEMPTS", "3"),
            ],
            "Could not create local directory",
            "point warehouse.root at a directory",
        ),
        (
            &["status"],
            &[
                ("PIXLAKE__KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SSL"),
                ("PIXLAKE__KAFKA__PROPERTIES__SSL_CA_LOCATION", "/nonexistent/ca.pem"),
            ],
            "ssl.ca.location failed",
            "check kafka.properties",
        ),
    ];
    for (args, env, cause, fix) in cases {
        let out =
            pixlake().args(args).env("PIXLAKE__TELEMETRY__LISTEN", "").envs(env.iter().copied()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let last: Vec<&str> = stderr.lines().filter(|l| l.starts_with("pixlake: ")).collect();
        assert_eq!(last.len(), 1, "{args:?}: one error line:\n{stderr}");
        let line = last[0];
        assert_eq!(line.matches(cause).count(), 1, "{args:?}: the cause once: {line}");
        assert!(line.contains(fix), "{args:?}: names the fix ({fix}): {line}");
        // No part of the chain is repeated, whoever wrote it.
        let parts: Vec<&str> = line.split(": ").filter(|p| p.len() > 12).collect();
        for p in &parts {
            assert_eq!(parts.iter().filter(|q| q == &p).count(), 1, "{args:?}: {p:?} twice in: {line}");
        }
        // The error is said once as the command's last word; a log line may have announced it
        // once before (a retry that gives up after a few attempts), never more.
        assert!(stderr.matches(cause).count() <= 2, "{args:?}: said at most twice in all:\n{stderr}");
        // One line: no part of a library's message spills onto lines of its own.
        assert!(stderr.lines().all(|l| !l.starts_with("Error: ")), "{stderr}");
    }
}

/// Runs `command` (a shell line) under a pseudo-terminal with `script`, as an operator at a
/// terminal would; returns what the terminal showed.
fn at_a_terminal(command: &str) -> String {
    let out = Command::new("script").args(["-qec", command, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Long commands show progress (counts, a rate) on stderr when it is a terminal, and nothing
/// extra when it is not; `--json` on stdout stays one parseable document either way.
#[test]
fn long_commands_show_progress_only_at_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_pixlake");
    let file = dir.path().join("events.jsonl");
    let shown = at_a_terminal(&format!("{bin} produce --count 50000 --output {}", file.display()));
    assert!(shown.contains("publishing") && shown.contains("50,000/50,000 events") && shown.contains("/s"), "{shown}");

    let out = pixlake().args(["produce", "--count", "50000", "--output"]).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "only the summary when stderr is not a terminal: {stderr:?}");
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}'), "{stderr:?}");

    // maintain --json at a terminal, stdout to a file: progress on the terminal, JSON in the file.
    let warehouse = dir.path().join("warehouse");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = deltalake::ensure_table_uri(warehouse.join("pix_quarantine").to_str().unwrap()).unwrap();
        let mut q = pixlake::sink::delta::DeltaTableWriter::open_or_create(
            "pix_quarantine",
            &pixlake::sink::delta::Location::from_url(url),
            pixlake::pix::quarantine_schema(),
            pixlake::pix::batch::INGEST_DATE,
        )
        .await
        .unwrap();
        let rejection = pixlake::pix::Rejection::new(HardRule::MalformedJson, "", "not JSON");
        for offset in 0..3 {
            let mut b = pixlake::pix::QuarantineBatchBuilder::new();
            let meta = pixlake::pix::KafkaMeta { topic: "pix.payments", partition: 0, offset, timestamp: None };
            b.append(&meta, None, Some(b"{"), &rejection, "payments", 1_764_000_000_000_000);
            q.commit(vec![b.finish().unwrap()], vec![], Default::default()).await.unwrap();
        }
    });
    let json = dir.path().join("maintain.json");
    let shown = at_a_terminal(&format!(
        "PIXLAKE__WAREHOUSE__ROOT={} {bin} maintain --json --no-vacuum > {}",
        warehouse.display(),
        json.display()
    ));
    assert!(shown.contains("compacting pix_quarantine") && shown.contains("3/3 files"), "{shown}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        report.as_array().unwrap().iter().any(|t| t["table"] == "pix_quarantine" && t["compacted_files"] == 3),
        "{report}"
    );
}
