//! `webhook:` — the API Pix webhook receiver (`pixlake webhook`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::raw::{Scalar, read_secret_file};

/// `webhook:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// `IP:port` the PSPs call (default 127.0.0.1:8443: loopback unless configured).
    #[serde(default = "default_listen")]
    listen: String,
    /// `source` of the events published.
    #[serde(default = "default_source")]
    source: String,
    /// The receiving account: the payee of every receipt.
    #[serde(default)]
    receiver: Option<RawReceiver>,
    /// Server certificate and mutual TLS.
    #[serde(default)]
    tls: Option<RawTls>,
    /// Development only: a shared token clients send as `Authorization: Bearer …`.
    #[serde(default)]
    token: Option<Scalar>,
    #[serde(default)]
    token_file: Option<String>,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    #[serde(default = "default_request_timeout_ms")]
    request_timeout_ms: u64,
    #[serde(default = "default_publish_timeout_ms")]
    publish_timeout_ms: u64,
    #[serde(default = "default_max_concurrent_requests")]
    max_concurrent_requests: usize,
    #[serde(default = "default_dedup_path")]
    dedup_path: String,
    #[serde(default = "default_dedup_window_hours")]
    dedup_window_hours: u64,
    #[serde(default = "default_shutdown_grace_ms")]
    shutdown_grace_ms: u64,
}

impl Default for RawWebhook {
    fn default() -> Self {
        RawWebhook {
            listen: default_listen(),
            source: default_source(),
            receiver: None,
            tls: None,
            token: None,
            token_file: None,
            max_body_bytes: default_max_body_bytes(),
            request_timeout_ms: default_request_timeout_ms(),
            publish_timeout_ms: default_publish_timeout_ms(),
            max_concurrent_requests: default_max_concurrent_requests(),
            dedup_path: default_dedup_path(),
            dedup_window_hours: default_dedup_window_hours(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
        }
    }
}

/// `webhook.receiver:` (quote numbers in YAML: `branch: "0001"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    ispb: Scalar,
    #[serde(default)]
    branch: Option<Scalar>,
    #[serde(default)]
    account: Option<Scalar>,
    #[serde(default)]
    account_type: Option<String>,
    document: Scalar,
    #[serde(default)]
    name: Option<String>,
}

/// `webhook.tls:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: String,
    key_file: String,
    #[serde(default)]
    client_ca_file: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
fn default_source() -> String {
    "api-pix-webhook".into()
}
fn default_max_body_bytes() -> usize {
    1 << 20
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_publish_timeout_ms() -> u64 {
    10_000
}
fn default_max_concurrent_requests() -> usize {
    64
}
fn default_dedup_path() -> String {
    "data/webhook-dedup.redb".into()
}
fn default_dedup_window_hours() -> u64 {
    72
}
fn default_shutdown_grace_ms() -> u64 {
    45_000
}

/// The receiving account, as the wire's participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    pub ispb: String,
    pub branch: Option<String>,
    pub account: Option<String>,
    pub account_type: Option<String>,
    pub document: String,
    pub name: Option<String>,
}

/// The webhook settings that passed every check. Its `Debug` hides the token.
#[derive(Clone)]
pub struct WebhookConfig {
    pub listen: SocketAddr,
    pub source: String,
    /// Required to run the webhook (checked when it starts).
    pub receiver: Option<Receiver>,
    pub tls: Option<crate::webhook::tls::TlsFiles>,
    pub token: Option<String>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub publish_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub dedup_path: PathBuf,
    pub dedup_window: Duration,
    pub shutdown_grace: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("listen", &self.listen)
            .field("tls", &self.tls)
            .field("token", &self.token.as_ref().map(|_| super::REDACTED))
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// As `config show` prints it (the token redacted).
    pub fn effective(&self) -> serde_json::Value {
        let ms = |d: Duration| d.as_millis() as u64;
        serde_json::json!({
            "listen": self.listen.to_string(),
            "source": self.source,
            "receiver": self.receiver.as_ref().map(|r| serde_json::json!({
                "ispb": r.ispb, "branch": r.branch, "account": r.account, "account_type": r.account_type,
                "document": r.document, "name": r.name,
            })),
            "tls": self.tls.as_ref().map(|t| serde_json::json!({
                "cert_file": t.cert, "key_file": t.key, "client_ca_file": t.client_ca,
            })),
            "token": self.token.as_ref().map(|_| super::REDACTED),
            "max_body_bytes": self.max_body_bytes,
            "request_timeout_ms": ms(self.request_timeout),
            "publish_timeout_ms": ms(self.publish_timeout),
            "max_concurrent_requests": self.max_concurrent_requests,
            "dedup_path": self.dedup_path,
            "dedup_window_hours": self.dedup_window.as_secs() / 3600,
            "shutdown_grace_ms": ms(self.shutdown_grace),
        })
    }

    /// Whether clients must authenticate (mutual TLS or the token).
    pub fn authenticates(&self) -> bool {
        self.token.is_some() || self.tls.as_ref().is_some_and(|t| t.client_ca.is_some())
    }
}

impl RawWebhook {
    /// Checks every value, appending one line per problem.
    pub fn validate(self, problems: &mut Vec<String>) -> WebhookConfig {
        let listen = match self.listen.trim().parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                problems.push(format!("webhook.listen: `{}` is not IP:port (e.g. 127.0.0.1:8443)", self.listen));
                ([127, 0, 0, 1], 8443).into()
            }
        };
        let source = self.source.trim().to_owned();
        if !(1..=64).contains(&source.chars().count()) {
            problems.push("webhook.source: must be 1 to 64 characters (the events' `source`)".into());
        }
        let token = match (self.token, self.token_file) {
            (Some(_), Some(_)) => {
                problems.push("webhook.token and webhook.token_file are both set; keep one of the two".into());
                None
            }
            (Some(t), None) => Some(t.to_string()),
            (None, Some(path)) => match read_secret_file(&path) {
                Ok(t) => Some(t),
                Err(why) => {
                    problems.push(format!("webhook.token_file: {why}"));
                    None
                }
            },
            (None, None) => None,
        };
        if token.as_ref().is_some_and(|t| t.len() < 16) {
            problems.push("webhook.token: at least 16 characters (e.g. `openssl rand -hex 32`)".into());
        }
        if let Some(r) = &self.receiver {
            let ispb = r.ispb.to_string();
            if !(ispb.len() <= 8
                && !ispb.is_empty()
                && ispb.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()))
            {
                problems
                    .push(format!("webhook.receiver.ispb: `{ispb}` is not an ISPB (8 of [0-9A-Z]; quote it in YAML)"));
            }
            if let Err((rule, why)) = crate::pix::documents::parse_document(&r.document.to_string()) {
                problems.push(format!(
                    "webhook.receiver.document: {} ({why}); every receipt would be quarantined",
                    rule.id()
                ));
            }
        }
        let receiver = self.receiver.map(|r| Receiver {
            ispb: r.ispb.to_string(),
            branch: r.branch.map(|b| b.to_string()),
            account: r.account.map(|a| a.to_string()),
            account_type: r.account_type,
            document: r.document.to_string(),
            name: r.name,
        });
        let in_range = |key: &str, v: u64, lo: u64, hi: u64, unit: &str, problems: &mut Vec<String>| {
            if !(lo..=hi).contains(&v) {
                problems.push(format!("webhook.{key}: {v} is outside {lo} ..= {hi}{unit}"));
            }
        };
        in_range("max_body_bytes", self.max_body_bytes as u64, 1024, 64 << 20, " (1 KiB to 64 MiB)", problems);
        in_range("request_timeout_ms", self.request_timeout_ms, 1000, 600_000, " (1 s to 10 min)", problems);
        in_range("publish_timeout_ms", self.publish_timeout_ms, 1000, 300_000, " (1 s to 5 min)", problems);
        if self.publish_timeout_ms >= self.request_timeout_ms {
            problems.push(format!(
                "webhook.publish_timeout_ms: {} must be shorter than webhook.request_timeout_ms ({}), so a broker \
                 outage is answered 503 before the PSP gives up",
                self.publish_timeout_ms, self.request_timeout_ms
            ));
        }
        in_range("max_concurrent_requests", self.max_concurrent_requests as u64, 1, 100_000, "", problems);
        in_range("dedup_window_hours", self.dedup_window_hours, 1, 24 * 90, " (1 h to 90 days)", problems);
        in_range("shutdown_grace_ms", self.shutdown_grace_ms, 100, 3_600_000, " (0.1 s to 1 h)", problems);
        if self.shutdown_grace_ms <= self.publish_timeout_ms {
            problems.push(format!(
                "webhook.shutdown_grace_ms: {} must be longer than webhook.publish_timeout_ms ({}), so requests in \
                 flight at a stop get Kafka's verdict",
                self.shutdown_grace_ms, self.publish_timeout_ms
            ));
        }
        if self.dedup_path.trim().is_empty() {
            problems.push("webhook.dedup_path: empty; give a file path (one per instance)".into());
        }
        WebhookConfig {
            listen,
            source,
            receiver,
            tls: self.tls.map(|t| crate::webhook::tls::TlsFiles {
                cert: t.cert_file.into(),
                key: t.key_file.into(),
                client_ca: t.client_ca_file.map(Into::into),
            }),
            token,
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            publish_timeout: Duration::from_millis(self.publish_timeout_ms),
            max_concurrent_requests: self.max_concurrent_requests,
            dedup_path: self.dedup_path.trim().into(),
            dedup_window: Duration::from_secs(self.dedup_window_hours * 3600),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
        }
    }
}
