//! `pixlake webhook`: receives the API Pix webhook as PSPs deliver it and publishes each
//! notification's events to the category topics — the source of `pix_receipts` and of the
//! refunds a bank's API reports.
//!
//! ```text
//! PSP ──mTLS──▶ POST /pix {"pix":[…]} ──api_pix::map──▶ receipts + refunds (derived ids)
//!     ──dedup: skip ids already published──▶ Kafka (idempotent, acks=all) ──all acked──▶ 200
//! ```
//!
//! **The contract with the PSP**: 200 only after Kafka acknowledged every event of the body, so
//! nothing answered 200 is ever lost; anything else is retried by the PSP, and the retry adds no
//! second row for what did get through (event ids derived from the item, and the index of
//! published ids — [`dedup`] states its window, cost and multi-instance behaviour).
//!
//! Modules: [`api_pix`] (pure mapping), [`dedup`] (published ids), [`server`] (HTTP: routes,
//! limits, answers), [`tls`] (server certificate, mutual TLS); the producer is
//! [`crate::kafka::verdicts`].

pub mod api_pix;
pub mod dedup;
pub mod server;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::produce::wire::WireParty;
use crate::telemetry::metrics::{Metrics, MetricsError, WebhookMetrics};

/// How long a client has to send a request's headers, and to finish the TLS handshake.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the webhook cannot run.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "webhook.receiver is not set; give the receiving account (ispb, branch, account, account_type, document, \
         name) in the configuration: it is the payee of every receipt"
    )]
    NoReceiver,
    #[error(
        "refusing to serve {listen} without authentication; set webhook.tls.client_ca_file (mutual TLS, as PSPs \
         call webhooks) or, for development only, webhook.token with webhook.tls — or listen on a loopback address"
    )]
    Unauthenticated { listen: std::net::SocketAddr },
    #[error("cannot start the async runtime; the system is out of threads or memory, check its limits")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {addr} for the webhook; set webhook.listen to a free IP:port")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Dedup(#[from] dedup::DedupError),
    #[error(transparent)]
    Publish(#[from] crate::kafka::verdicts::PublishError),
    #[error(transparent)]
    Topics(#[from] crate::kafka::producer::ProduceError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::server::ListenError),
}

/// What a run did, for the closing line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Client connections accepted.
    pub connections: u64,
    /// Events still unacknowledged when the grace period ended (0 after a clean stop).
    pub unflushed: i32,
}

/// Serves until `stop` is set, then drains: no new connections, in-flight requests finish (up
/// to `webhook.shutdown_grace_ms`), the producer is flushed.
pub fn run(config: &Config, stop: Arc<AtomicBool>) -> Result<Summary, WebhookError> {
    let w = &config.webhook;
    let receiver = w.receiver.as_ref().ok_or(WebhookError::NoReceiver)?;
    if !w.listen.ip().is_loopback() && w.tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
        // A token in clear text on a network is no authentication.
        if w.token.is_none() || w.tls.is_none() {
            return Err(WebhookError::Unauthenticated { listen: w.listen });
        }
    }
    let mapping = api_pix::Mapping {
        source: w.source.clone(),
        receiver: WireParty {
            ispb: serde_json::Value::String(receiver.ispb.clone()),
            branch: receiver.branch.clone(),
            account: receiver.account.clone(),
            account_type: receiver.account_type.clone(),
            document: Some(receiver.document.clone()),
            name: receiver.name.clone(),
        },
        max_event_bytes: config.validation.max_message_bytes,
    };
    let tls = w.tls.as_ref().map(tls::server_config).transpose()?.map(tokio_rustls::TlsAcceptor::from);
    let topics = crate::produce::sink::Topics::from_config(config);
    let publisher = crate::kafka::verdicts::Publisher::new(&config.kafka, config.validation.max_message_bytes)?;
    // A missing topic would hold every request's events forever: say so now.
    publisher.require_topics(
        &[topics.get(crate::pix::Category::Receipt), topics.get(crate::pix::Category::Refund)],
        Duration::from_secs(10),
    )?;
    let index = dedup::Index::open(&w.dedup_path, w.dedup_window)?;
    let metrics = Metrics::new(&config.ingest.instance_id)?;
    let state = Arc::new(server::State {
        mapping,
        index,
        publisher,
        topics,
        metrics: WebhookMetrics::new(&metrics)?,
        permits: Arc::new(Semaphore::new(w.max_concurrent_requests)),
        token: w.token.clone(),
        max_body_bytes: w.max_body_bytes,
        request_timeout: w.request_timeout,
        publish_timeout: w.publish_timeout,
        publications: TaskTracker::new(),
        failing: AtomicBool::new(false),
        last_failure: std::sync::atomic::AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("webhook")
        .enable_all()
        .build()
        .map_err(WebhookError::Runtime)?;
    runtime.block_on(serve(config, state, tls, metrics, stop))
}

async fn serve(
    config: &Config,
    state: Arc<server::State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: Metrics,
    stop: Arc<AtomicBool>,
) -> Result<Summary, WebhookError> {
    let w = &config.webhook;
    let listener =
        TcpListener::bind(w.listen).await.map_err(|source| WebhookError::Listen { addr: w.listen, source })?;
    let local = listener.local_addr().map_err(|source| WebhookError::Listen { addr: w.listen, source })?;
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let telemetry = match config.telemetry.listen {
        Some(addr) => {
            let l = crate::telemetry::server::bind(addr).await?;
            let at = l.local_addr().ok();
            let ready = state.clone();
            let endpoints = Arc::new(crate::telemetry::server::Endpoints {
                metrics,
                readiness: crate::telemetry::server::Readiness::Check(Box::new(move || readiness(&ready))),
            });
            let task = tokio::spawn(crate::telemetry::server::serve(l, endpoints, until_stopped(stopped.clone())));
            Some((task, at))
        }
        None => None,
    };
    tracing::info!(listen = %local, tls = tls.is_some(), mutual_tls = w.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        metrics = ?telemetry.as_ref().and_then(|t| t.1), "webhook: serving POST /pix");
    let mut connections = JoinSet::new();
    let mut accepted_connections = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook: cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                accepted_connections += 1;
                connections.spawn(connection(stream, peer, tls.clone(), state.clone(), stopped.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = tick.tick() => if stop.load(Ordering::Relaxed) { break },
        }
    }
    // Drain: no new connections; open ones finish their request and close.
    drop(listener);
    let _ = stopping.send(true);
    tracing::info!(connections = connections.len(), "webhook: stopping; finishing the requests in flight");
    let drained = tokio::time::timeout(w.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
        state.publications.close();
        state.publications.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("webhook: requests still in flight after webhook.shutdown_grace_ms; their PSPs will retry");
    }
    connections.abort_all();
    // Publications still waiting for Kafka get its verdict within the flush, and record what
    // was acknowledged before the index closes. Those reading records in doubt back are waited
    // for to the end of the read-back (see kafka::verdicts): stopping them would leave written
    // events unrecorded, for the PSPs' retries to publish again.
    let _ = state.publisher.flush(Duration::from_secs(5));
    state.publications.close();
    let in_doubt = state.publisher.in_doubt();
    let wait = if in_doubt > 0 {
        tracing::info!(
            records = in_doubt,
            "webhook: waiting for the read-back of records in doubt (up to {} s)",
            READ_BACK_WAIT.as_secs()
        );
        READ_BACK_WAIT
    } else {
        Duration::from_secs(5)
    };
    if tokio::time::timeout(wait, state.publications.wait()).await.is_err() {
        tracing::warn!("webhook: publications still unfinished at exit; their PSPs will retry");
    }
    let unflushed = state.publisher.flush(Duration::ZERO);
    state.index.close();
    if let Some((task, _)) = telemetry {
        let _ = task.await;
    }
    Ok(Summary { connections: accepted_connections, unflushed })
}

/// One client connection: the TLS handshake (a client without a trusted certificate is refused
/// here), then HTTP/1.1 requests until it closes or the webhook stops.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<server::State>,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    match tls {
        Some(acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => http(TokioIo::new(stream), state, stopped).await,
            Ok(Err(e)) => tracing::info!(%peer, error = %e, "webhook: TLS handshake refused"),
            Err(_) => tracing::info!(%peer, "webhook: TLS handshake not finished in time"),
        },
        None => http(TokioIo::new(stream), state, stopped).await,
    }
}

/// Completes once the webhook is stopping.
async fn until_stopped(mut stopped: tokio::sync::watch::Receiver<bool>) {
    while !*stopped.borrow_and_update() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

async fn http<I>(io: I, state: Arc<server::State>, stopped: tokio::sync::watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(server::handle(state, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(HEADER_TIMEOUT))
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "webhook: connection ended with an error");
            }
        }
        () = until_stopped(stopped) => {
            // Finish the request being served, then close.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// How long a failed publication makes the webhook not ready (with no request since to show
/// that Kafka is back, a load balancer that acted on `/readyz` would never send one).
const NOT_READY_AFTER_FAILURE_MS: u64 = 30_000;

/// How long a stop waits for records in doubt to be read back: the wait before the read-back,
/// two attempts' budget, and a margin.
const READ_BACK_WAIT: Duration = Duration::from_secs(
    crate::kafka::verdicts::READ_BACK_AFTER.as_secs() + 2 * crate::kafka::verdicts::READ_BACK_BUDGET.as_secs() + 10,
);

/// Ready when Kafka takes the events: no fatal producer error (for good: restart), no diagnosed
/// client problem, no recent failed publication.
fn readiness(state: &server::State) -> (bool, serde_json::Value) {
    let problem = state
        .publisher
        .fatal()
        .map(|f| format!("the producer failed for good, restart the webhook: {f}"))
        .or_else(|| state.publisher.problem().map(|p| p.to_string()));
    let recent =
        server::now_ms().saturating_sub(state.last_failure.load(Ordering::Relaxed)) < NOT_READY_AFTER_FAILURE_MS;
    let failing = state.failing.load(Ordering::Relaxed) && recent;
    let ready = problem.is_none() && !failing;
    let mut body = serde_json::json!({ "ready": ready });
    if let Some(p) = problem {
        body["kafka"] = p.into();
    } else if failing {
        body["kafka"] = "the last publication was not acknowledged".into();
    }
    (ready, body)
}
