//! Kafka as banks run it, against the local broker's secure listeners (`scripts/kafka.sh`:
//! SASL_SSL with SCRAM-SHA-512, mutual TLS): ingest over each with the invariant checked; a
//! refused password, an untrusted broker certificate, a missing and an expired client
//! certificate each fail within seconds naming the setting (exit 2, or `/readyz` and a metric
//! inside ingest); every compression codec, from `pixlake produce` and from `kcat -z`; and no
//! secret in a debug-level run's output, in `/metrics` or in `config show`.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http;
use common::lake::{Proc, Setup, check_complete};

/// The `PIXLAKE__…` settings of a client of the broker's `sasl` or `mtls` listener, as
/// `scripts/kafka.sh client-env` prints them.
fn secure(listener: &str) -> BTreeMap<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh");
    let out = Command::new(script).args(["client-env", listener]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// The directory holding the test CA, certificates and the SCRAM password.
fn tls_dir() -> std::path::PathBuf {
    let ca = secure("mtls")["PIXLAKE__KAFKA__PROPERTIES__SSL_CA_LOCATION"].clone();
    std::path::Path::new(&ca).parent().unwrap().to_owned()
}

fn pairs(env: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn skip() -> bool {
    let other = std::env::var_os("PIXLAKE_TEST_BROKERS").is_some();
    if other {
        eprintln!("skipped: PIXLAKE_TEST_BROKERS points at a broker without scripts/kafka.sh's secure listeners");
    }
    other
}

/// Produces over `listener`, ingests over it until caught up, checks every record once.
fn ingest_over(listener: &str, prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new(prefix, 3, dir.path());
    let env = secure(listener);
    let n = 3_000;
    let out = s
        .command(&["produce", "--count", &n.to_string(), "--invalid-ratio", "0.05", "--seed", "91"], &pairs(&env))
        .output()
        .unwrap();
    assert!(out.status.success(), "produce over {listener}: {}", String::from_utf8_lossy(&out.stderr));
    let out = s.command(&["ingest", "--until-caught-up", "--json"], &pairs(&env)).output().unwrap();
    assert!(out.status.success(), "ingest over {listener}: {}", String::from_utf8_lossy(&out.stderr));
    let checked = check_complete(&s);
    assert_eq!(checked.total() as u64, n);
    assert!(checked.quarantined > 50, "rejected records (and their DLQ letters) went over {listener} too");
}

#[test]
fn ingest_over_sasl_ssl_with_scram() {
    if !skip() {
        ingest_over("sasl", "sec-sasl");
    }
}

#[test]
fn ingest_over_mutual_tls() {
    if !skip() {
        ingest_over("mtls", "sec-mtls");
    }
}

/// `pixlake status` with `changes` on top of the `listener` settings: exit 2 within seconds,
/// the message naming `setting`.
fn refused(listener: &str, changes: &[(&str, &str)], setting: &str) {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("sec-refused", 1, dir.path());
    let mut env = secure(listener);
    for (k, v) in changes {
        if v.is_empty() {
            env.remove(*k);
        } else {
            env.insert(k.to_string(), v.to_string());
        }
    }
    for args in [&["status"][..], &["produce", "--count", "20"][..]] {
        let started = Instant::now();
        let out = s.command(args, &pairs(&env)).output().unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rfind(|l| l.starts_with("pixlake: ")).unwrap_or_default();
        assert_eq!(out.status.code(), Some(2), "{args:?} over {listener} with {changes:?}: {stderr}");
        assert!(last.contains(setting), "{args:?}: the message names {setting}: {last}");
        assert!(!last.contains("did not answer"), "{args:?}: not blamed on the broker: {last}");
        assert!(took < Duration::from_secs(10), "{args:?}: failed within seconds, not after a timeout: {took:?}");
    }
}

#[test]
fn a_refused_password_is_named_within_seconds() {
    if !skip() {
        let changes = [
            ("PIXLAKE__KAFKA__PROPERTIES__SASL_PASSWORD_FILE", ""),
            ("PIXLAKE__KAFKA__PROPERTIES__SASL_PASSWORD", "not-the-password"),
        ];
        refused("sasl", &changes, "sasl.password");
    }
}

#[test]
fn an_untrusted_broker_certificate_is_named_within_seconds() {
    if !skip() {
        let other = tls_dir().join("other-ca.pem").display().to_string();
        refused("mtls", &[("PIXLAKE__KAFKA__PROPERTIES__SSL_CA_LOCATION", &other)], "ssl.ca.location");
        refused("sasl", &[("PIXLAKE__KAFKA__PROPERTIES__SSL_CA_LOCATION", &other)], "ssl.ca.location");
    }
}

#[test]
fn a_missing_or_expired_client_certificate_is_named_within_seconds() {
    if !skip() {
        let none = [
            ("PIXLAKE__KAFKA__PROPERTIES__SSL_CERTIFICATE_LOCATION", ""),
            ("PIXLAKE__KAFKA__PROPERTIES__SSL_KEY_LOCATION", ""),
        ];
        refused("mtls", &none, "ssl.certificate.location");
        let tls = tls_dir();
        let (cert, key) = (tls.join("expired-client.pem"), tls.join("expired-client.key"));
        let expired = [
            ("PIXLAKE__KAFKA__PROPERTIES__SSL_CERTIFICATE_LOCATION", cert.to_str().unwrap()),
            ("PIXLAKE__KAFKA__PROPERTIES__SSL_KEY_LOCATION", key.to_str().unwrap()),
        ];
        refused("mtls", &expired, "validity dates");
    }
}

/// Inside a running ingest a refused password is a metric and a `/readyz` failure naming the
/// setting, not a silent retry loop; a debug-level run's whole output, `/metrics` and `config
/// show` never hold the secrets (the right password comes from a file, the wrong one from the
/// environment).
#[test]
fn ingest_reports_a_refused_password_and_never_shows_a_secret() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("sec-ingest", 1, dir.path());
    let env = secure("sasl");
    let password = std::fs::read_to_string(&env["PIXLAKE__KAFKA__PROPERTIES__SASL_PASSWORD_FILE"]).unwrap();
    let password = password.trim();
    let debug = [("PIXLAKE_LOG", "debug"), ("PIXLAKE__KAFKA__PROPERTIES__DEBUG", "security,broker,conf")];

    // The right password, from the file: ingest works, with every line at debug level.
    s.produce(300, 0.05, 92);
    let out = s.command(&["ingest", "--until-caught-up"], &[&pairs(&env)[..], &debug[..]].concat()).output().unwrap();
    let all = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{all}");
    assert!(all.lines().count() > 100, "a debug-level run says a lot: {} lines", all.lines().count());
    assert!(!all.contains(password), "the SCRAM password is in the output");
    let shown = s.command(&["config", "show"], &pairs(&env)).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("sasl.password: '[REDACTED]'") || shown.contains("sasl.password: \"[REDACTED]\""),
        "{shown}"
    );
    assert!(!shown.contains(password), "{shown}");

    // A wrong password, from the environment.
    let wrong = "wrong-but-secret-9f3e";
    let mut bad = env.clone();
    bad.remove("PIXLAKE__KAFKA__PROPERTIES__SASL_PASSWORD_FILE");
    bad.insert("PIXLAKE__KAFKA__PROPERTIES__SASL_PASSWORD".into(), wrong.into());
    let port = http::free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let listen = ("PIXLAKE__TELEMETRY__LISTEN", addr.as_str());
    let mut p = Proc::spawn(s.command(&["ingest"], &[&pairs(&bad)[..], &debug[..], &[listen]].concat()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        let got = http::get(&addr, "/readyz");
        if let Ok((status, body)) = &got
            && body.contains("sasl.password")
        {
            break (*status, body.clone());
        }
        assert!(Instant::now() < deadline, "/readyz never named the problem: {got:?}\n{}", p.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 503, "{body}");
    // Each pipeline's consumer finds it out on its own; one is enough here.
    let metrics = loop {
        let (_, metrics) = http::get(&addr, "/metrics").unwrap();
        if metrics.lines().any(|l| l.starts_with(r#"pixlake_kafka_problem{kind="authentication""#) && l.ends_with(" 1"))
        {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no pixlake_kafka_problem: {metrics}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(p.wait_for("Kafka cannot be used: the broker refused the SASL credentials", Duration::from_secs(10)));
    p.sigterm();
    let (status, stdout, log) = p.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    for text in [&log, &stdout, &metrics, &body] {
        assert!(!text.contains(wrong) && !text.contains(password), "a secret is shown");
    }
}

/// Batches compressed with gzip, snappy, lz4 and zstd — by `pixlake produce` (a
/// `kafka.producer` setting) and by `kcat -z` — are all ingested.
#[test]
fn every_compression_codec_is_ingested() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("codecs", 2, dir.path());
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    let mut total = 0;
    for (i, codec) in codecs.iter().enumerate() {
        let out = s
            .command(
                &["produce", "--count", "400", "--seed", &(100 + i).to_string()],
                &[("PIXLAKE__KAFKA__PRODUCER__COMPRESSION_TYPE", codec)],
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "produce with {codec}: {}", String::from_utf8_lossy(&out.stderr));
        total += 400;
    }
    // kcat publishes payments from a file, one batch per codec.
    let file = dir.path().join("events.jsonl");
    let out =
        s.command(&["produce", "--count", "300", "--seed", "7", "--output", file.to_str().unwrap()], &[]).output();
    assert!(out.unwrap().status.success());
    let lines = std::fs::read_to_string(&file).unwrap();
    for codec in codecs {
        let mut kcat = Command::new("kcat")
            .args(["-b", &common::brokers(), "-P", "-t", &s.topics[0], "-z", codec])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("kcat (apt-get install kcat; scripts/setup.sh installs it)");
        std::io::Write::write_all(kcat.stdin.as_mut().unwrap(), lines.as_bytes()).unwrap();
        assert!(kcat.wait().unwrap().success(), "kcat -z {codec}");
        total += lines.lines().count();
    }
    let out = s.command(&["ingest", "--until-caught-up"], &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("cannot be decompressed") && !stderr.contains("Decompression"), "{stderr}");
    assert_eq!(check_complete(&s).total(), total, "every record of every codec, once");
}
