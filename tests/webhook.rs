//! `pixlake webhook` against the real broker, called by a real HTTP client (reqwest) over mutual
//! TLS with certificates made here by `openssl`: valid, invalid and retried bodies, 1 000
//! requests in parallel sharing events, a retry after a 200 the client pretends it never saw,
//! a broker stopped mid-request — then `ingest --until-caught-up`, and every accepted item is
//! exactly one row. Stops and starts the broker of `scripts/kafka.sh` (the only test in this
//! file, so nothing else runs meanwhile).

mod common;

use common::{RestartOnDrop, kafka_sh};

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::lake::{Proc, Setup, open, table_rows};

/// Makes a CA, a server certificate for 127.0.0.1 and a client certificate under `dir/{name}`.
fn pki(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(&d).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // P-256 keys: a thousand handshakes stay cheap in a debug build.
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} CA"),
    ]);
    std::fs::write(d.join("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        .unwrap();
    std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{who}.key"),
            "-out",
            &format!("{who}.csr"),
            "-subj",
            &format!("/CN={name} {who}"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{who}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{who}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{who}.ext"),
        ]);
    }
    d
}

/// A valid webhook item: a receipt `E…{n}`, with refunds `D…{n}{j}` for each status given.
fn item(n: u64, refunds: &[&str]) -> serde_json::Value {
    let devolucoes: Vec<_> = refunds
        .iter()
        .enumerate()
        .map(|(j, status)| {
            serde_json::json!({
                "id": format!("dev{n}x{j}"), "rtrId": format!("D60701190202612011205{:09}{j:02}", n), "valor": "1.00",
                "natureza": "ORIGINAL", "status": status,
                // A settled refund has its settlement time (INCONSISTENT_REFUND otherwise).
                "horario": if *status == "DEVOLVIDO" {
                    serde_json::json!({"solicitacao": "2026-12-01T12:05:00Z", "liquidacao": "2026-12-01T12:05:02Z"})
                } else {
                    serde_json::json!({"solicitacao": "2026-12-01T12:05:00Z"})
                },
            })
        })
        .collect();
    serde_json::json!({
        "endToEndId": format!("E18236120202612011200{n:011}"), "txid": format!("tx{n}"), "valor": "12.34",
        "chave": "7d9f0335-8dcc-4054-9bf9-0dbd61d36906", "horario": "2026-12-01T12:00:30.500Z",
        "infoPagador": "pedido", "pagador": {"cpf": "52998224725", "nome": "Fulano de Tal"},
        "devolucoes": devolucoes,
    })
}

fn body(items: &[serde_json::Value]) -> String {
    serde_json::json!({ "pix": items }).to_string()
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    fn new(port: u16, ca: &Path, identity: Option<&Path>) -> Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(ca.join("ca.pem")).unwrap()).unwrap();
        let mut b = reqwest::Client::builder().tls_certs_only([ca]).timeout(Duration::from_secs(60));
        if let Some(dir) = identity {
            let mut pem = std::fs::read(dir.join("client.pem")).unwrap();
            pem.extend(std::fs::read(dir.join("client.key")).unwrap());
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        Client { http: b.build().unwrap(), url: format!("https://127.0.0.1:{port}/pix/webhook-suffix") }
    }

    async fn post(&self, body: &str) -> reqwest::Result<(u16, serde_json::Value, Option<String>)> {
        let r =
            self.http.post(&self.url).header("content-type", "application/json").body(body.to_owned()).send().await?;
        let status = r.status().as_u16();
        let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let json = serde_json::from_slice(&r.bytes().await?).unwrap_or(serde_json::Value::Null);
        Ok((status, json, retry))
    }

    /// Posts until answered 200, as a PSP does; returns the 200's body and the attempts.
    async fn deliver(&self, body: &str) -> (serde_json::Value, u32) {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.post(body).await {
                Ok((200, json, _)) => return (json, attempts),
                Ok((503, _, retry)) => assert_eq!(retry.as_deref(), Some("5")),
                Ok((status, json, _)) => panic!("answered {status}: {json}"),
                Err(_) => {} // connection refused or reset: retry
            }
            assert!(Instant::now() < deadline, "not delivered after {attempts} attempts");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn metric(addr: &str, series: &str) -> f64 {
    let (_, text) = common::http::get(addr, "/metrics").unwrap();
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

#[test]
fn every_accepted_item_is_exactly_one_row_whatever_the_psp_retries() {
    common::require_broker();
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("webhook", 3, dir.path());
    let trusted = pki(dir.path(), "trusted");
    let stranger = pki(dir.path(), "stranger");
    let port = common::http::free_port();
    let metrics = format!("127.0.0.1:{}", common::http::free_port());
    let file = |n: &str| trusted.join(n).display().to_string();
    let dedup = dir.path().join("dedup/webhook.redb").display().to_string();
    let listen = format!("127.0.0.1:{port}");
    let env = [
        ("PIXLAKE__WEBHOOK__LISTEN", listen.as_str()),
        ("PIXLAKE__WEBHOOK__TLS__CERT_FILE", &file("server.pem")),
        ("PIXLAKE__WEBHOOK__TLS__KEY_FILE", &file("server.key")),
        ("PIXLAKE__WEBHOOK__TLS__CLIENT_CA_FILE", &file("ca.pem")),
        ("PIXLAKE__WEBHOOK__RECEIVER__ISPB", "60701190"),
        ("PIXLAKE__WEBHOOK__RECEIVER__BRANCH", "1234"),
        ("PIXLAKE__WEBHOOK__RECEIVER__ACCOUNT", "123456"),
        ("PIXLAKE__WEBHOOK__RECEIVER__ACCOUNT_TYPE", "CACC"),
        ("PIXLAKE__WEBHOOK__RECEIVER__DOCUMENT", "11222333000181"),
        ("PIXLAKE__WEBHOOK__RECEIVER__NAME", "Loja Exemplo"),
        ("PIXLAKE__WEBHOOK__DEDUP_PATH", &dedup),
        ("PIXLAKE__WEBHOOK__PUBLISH_TIMEOUT_MS", "4000"),
        ("PIXLAKE__WEBHOOK__REQUEST_TIMEOUT_MS", "20000"),
        ("PIXLAKE__TELEMETRY__LISTEN", metrics.as_str()),
    ];
    let mut webhook = Proc::spawn(s.command(&["webhook"], &env));
    assert!(webhook.wait_for("webhook: serving", Duration::from_secs(60)), "{}", webhook.log());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = Client::new(port, &trusted, Some(&trusted));
    let mut receipts = BTreeSet::new();
    let mut refunds = 0;

    // A valid body; then the same body again (a PSP's retry): nothing new.
    let first = body(&[item(1, &[]), item(2, &["EM_PROCESSAMENTO", "DEVOLVIDO"]), item(3, &[])]);
    receipts.extend([1, 2, 3]);
    refunds += 2;
    let (status, json, _) = rt.block_on(client.post(&first)).unwrap();
    assert_eq!((status, json["published"].as_u64(), json["duplicates"].as_u64()), (200, Some(5), Some(0)), "{json}");
    let (status, json, _) = rt.block_on(client.post(&first)).unwrap();
    assert_eq!((status, json["published"].as_u64(), json["duplicates"].as_u64()), (200, Some(0), Some(5)), "{json}");

    // Bodies that are not webhooks: 400 with the reason, nothing published.
    let mut without = item(900, &[]);
    without.as_object_mut().unwrap().remove("valor");
    let no_amount = body(&[without]);
    for (bad, reason) in [
        ("{not json", "key must be a string"),
        (no_amount.as_str(), "missing field `valor`"),
        (r#"{"pix":[{"endToEndId":7}]}"#, "pix[0].endToEndId"),
    ] {
        let (status, json, _) = rt.block_on(client.post(bad)).unwrap();
        assert_eq!(status, 400, "{json}");
        assert!(json["error"].as_str().unwrap().contains(reason), "{json}");
    }

    // 1 000 requests at once, each with an item of its own and one of 50 shared with others.
    let bodies: Vec<String> = (0..1000u64).map(|k| body(&[item(1000 + k, &[]), item(100 + k % 50, &[])])).collect();
    receipts.extend((1000..2000).chain(100..150));
    let outcomes = rt.block_on(async {
        let tasks: Vec<_> = bodies.iter().map(|b| client.deliver(b)).collect();
        futures::future::join_all(tasks).await
    });
    let published: u64 = outcomes.iter().map(|(j, _)| j["published"].as_u64().unwrap()).sum();
    assert_eq!(published, 1050, "each item published once across the parallel requests");
    // A retry after a 200 the client never saw: nothing new.
    let (json, _) = rt.block_on(client.deliver(&bodies[7]));
    assert_eq!(json["published"], 0, "{json}");

    // Clients without a certificate from the trusted CA are refused at the TLS handshake.
    for untrusted in [Client::new(port, &trusted, None), Client::new(port, &trusted, Some(&stranger))] {
        let err = rt.block_on(untrusted.post(&first)).expect_err("an untrusted client got an HTTP answer");
        assert!(err.is_connect() || err.is_request(), "{err:?}");
    }

    // The broker stops while requests stream in (receipts and refunds, two topics: some events
    // of a request acknowledged, others not): 503s with Retry-After, `/readyz` not ready; the
    // PSP retries until the broker is back, and each event goes to Kafka once.
    // The stream runs from before the stop until after the restart: no timing to get right.
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let outage = body(&[item(3000, &[]), item(3001, &["DEVOLVIDO"])]);
    receipts.extend([3000, 3001]);
    refunds += 1;
    let streaming = rt.spawn({
        let client = Client::new(port, &trusted, Some(&trusted));
        let (next, done) = (next.clone(), done.clone());
        async move {
            let workers = (0..8).map(|_| async {
                while !done.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    client.deliver(&body(&[item(5000 + k, &["DEVOLVIDO"])])).await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
            futures::future::join_all(workers).await;
        }
    });
    {
        let _restart = RestartOnDrop;
        std::thread::sleep(Duration::from_millis(300));
        kafka_sh("stop");
        let (status, json, retry) = rt.block_on(client.post(&outage)).unwrap();
        assert_eq!((status, retry.as_deref()), (503, Some("5")), "{json}");
        let (_, ready) = common::http::get(&metrics, "/readyz").unwrap();
        assert!(ready.contains(r#""ready":false"#), "{ready}");
    }
    // The publication answered 503 went on: once the broker is back, what it delivered is
    // found by the retry (duplicates), the rest published by it.
    let (json, attempts) = rt.block_on(client.deliver(&outage));
    let counted = json["published"].as_u64().unwrap() + json["duplicates"].as_u64().unwrap();
    assert_eq!(counted, 3, "{json} after {attempts} attempts");
    done.store(true, Ordering::Relaxed);
    rt.block_on(streaming).unwrap();
    // Every body taken from the counter was delivered (200) before its worker stopped.
    let streamed = next.load(Ordering::Relaxed);
    receipts.extend(5000..5000 + streamed);
    refunds += streamed as usize;

    assert!(metric(&metrics, r#"pixlake_webhook_requests_total{status="400"}"#) >= 3.0);
    assert!(metric(&metrics, r#"pixlake_webhook_requests_total{status="503"}"#) >= 1.0);
    assert!(metric(&metrics, "pixlake_webhook_duplicate_events_total") >= 957.0);
    assert_eq!(
        metric(&metrics, r#"pixlake_webhook_events_published_total{event_type="receipt"}"#),
        receipts.len() as f64
    );

    // SIGTERM drains and exits 0.
    webhook.sigterm();
    let (status, _, outage_log) = webhook.finish(Duration::from_secs(60));
    assert!(status.success(), "{outage_log}");

    // Development mode: plain HTTP on loopback with a shared token; routes and limits.
    let token_port = common::http::free_port();
    let token_listen = format!("127.0.0.1:{token_port}");
    let token_dedup = dir.path().join("dedup/token.redb").display().to_string();
    let mut dev_env: BTreeMap<&str, &str> = env.iter().copied().filter(|(k, _)| !k.contains("__TLS__")).collect();
    dev_env.insert("PIXLAKE__WEBHOOK__LISTEN", &token_listen);
    dev_env.insert("PIXLAKE__WEBHOOK__DEDUP_PATH", &token_dedup);
    dev_env.insert("PIXLAKE__WEBHOOK__TOKEN", "development-token-0123");
    dev_env.insert("PIXLAKE__WEBHOOK__MAX_BODY_BYTES", "4096");
    dev_env.insert("PIXLAKE__TELEMETRY__LISTEN", "");
    let dev_env: Vec<(&str, &str)> = dev_env.into_iter().collect();
    let mut dev = Proc::spawn(s.command(&["webhook"], &dev_env));
    assert!(dev.wait_for("webhook: serving", Duration::from_secs(60)), "{}", dev.log());
    let http = reqwest::Client::new();
    let url = format!("http://{token_listen}/pix");
    let one = body(&[item(4000, &[])]);
    receipts.insert(4000);
    let answers = rt.block_on(async {
        let post = |url: String, token: Option<&'static str>, body: String| {
            let mut r = http.post(url).body(body);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            async move { r.send().await.unwrap().status().as_u16() }
        };
        [
            post(url.clone(), None, one.clone()).await,
            post(url.clone(), Some("wrong-token-0123456789"), one.clone()).await,
            post(url.clone(), Some("development-token-0123"), one.clone()).await,
            post(format!("http://{token_listen}/other"), Some("development-token-0123"), one.clone()).await,
            post(url.clone(), Some("development-token-0123"), "x".repeat(5000)).await,
            http.get(url.clone()).bearer_auth("development-token-0123").send().await.unwrap().status().as_u16(),
        ]
    });
    assert_eq!(answers, [401, 401, 200, 404, 413, 405]);
    // SIGTERM while a request is in flight (half its body sent): the request is finished and
    // answered 200, its event published, then the process exits 0.
    let slow = body(&[item(4001, &[])]);
    receipts.insert(4001);
    let mut conn = std::net::TcpStream::connect(&token_listen).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (first_half, second_half) = slow.split_at(slow.len() / 2);
    write!(
        conn,
        "POST /pix HTTP/1.1\r\nHost: {token_listen}\r\nAuthorization: Bearer development-token-0123\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first_half}",
        slow.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    dev.sigterm();
    std::thread::sleep(Duration::from_millis(500));
    conn.write_all(second_half.as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut conn, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""published":1"#), "{answer}");
    let (status, _, log) = dev.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");

    // Everything into the tables: each accepted item exactly one row.
    let out = s.command(&["ingest", "--until-caught-up"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = table_rows(open(&s, "pix_receipts").as_ref(), false);
    let ids: BTreeSet<_> = rows.iter().map(|r| r.event_id.clone().unwrap()).collect();
    assert_eq!(rows.len(), receipts.len(), "one row per accepted receipt");
    assert_eq!(ids.len(), rows.len(), "no event twice");
    let expected: BTreeSet<String> = receipts
        .iter()
        .map(|n| pixlake::webhook::api_pix::receipt_id(&format!("E18236120202612011200{n:011}")).to_string())
        .collect();
    assert_eq!(ids, expected);
    let rejected: Vec<_> = table_rows(open(&s, "pix_quarantine").as_ref(), true)
        .into_iter()
        .map(|r| (r.error_rule.unwrap(), String::from_utf8_lossy(&r.raw_value.unwrap()).into_owned()))
        .collect();
    assert!(rejected.is_empty(), "nothing rejected: {rejected:?}");
    // A refund written twice (the same event id) says which one, before the count does.
    // Its Kafka positions tell who wrote it twice: one offset twice is the ingest, two offsets
    // the webhook's publication (the webhook's log says what Kafka answered meanwhile).
    let refund_rows = table_rows(open(&s, "pix_refunds").as_ref(), false);
    let mut positions: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in &refund_rows {
        positions.entry(r.event_id.clone().unwrap()).or_default().push(r.key.clone());
    }
    positions.retain(|_, at| at.len() > 1);
    let outage_log: Vec<_> = outage_log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    assert!(positions.is_empty(), "refunds written twice, at {positions:?}; the webhook logged {outage_log:#?}");
    assert_eq!(refund_rows.len(), refunds);
}
