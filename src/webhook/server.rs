//! The HTTP side of the webhook: routes, limits, authentication, and the answer a PSP acts on.
//!
//! | answer | when | the PSP |
//! |---|---|---|
//! | 200 | every event of the body is acknowledged by Kafka (or was by an earlier request) | done |
//! | 400 | the body is not an API Pix webhook (reason in `{"error": …}`); nothing published | fixes it |
//! | 401 | the development token is configured and missing or wrong | fixes it |
//! | 404 / 405 | not `POST /pix` or `POST /pix/…` | fixes it |
//! | 408 | the body did not arrive within `webhook.request_timeout_ms` | retries |
//! | 413 | the body is larger than `webhook.max_body_bytes` | splits it |
//! | 503 + `Retry-After` | Kafka did not acknowledge in time, or `max_concurrent_requests` are busy | retries |
//!
//! The publication of a request runs in a task of its own: a client that hangs up, or a request
//! that times out, does not cancel it half-way — its events are acknowledged or released, and the
//! index records what was acknowledged, so the retry publishes only what is missing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::api_pix::{self, Mapping, Outgoing};
use super::dedup::Index;
use crate::kafka::verdicts::{Publisher, Record};
use crate::produce::sink::Topics;
use crate::telemetry::metrics::WebhookMetrics;

/// How long a request waits for one of `max_concurrent_requests` before it is answered 503.
const QUEUE_WAIT: Duration = Duration::from_secs(1);
/// What a 503 asks the PSP to wait, in seconds.
const RETRY_AFTER_SECS: &str = "5";

/// Everything a request needs.
pub struct State {
    pub mapping: Mapping,
    pub index: Arc<Index>,
    pub publisher: Publisher,
    /// The topic of each category.
    pub topics: Topics,
    pub metrics: WebhookMetrics,
    pub permits: Arc<Semaphore>,
    pub token: Option<String>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// How long a request waits for Kafka's verdict (then 503; the publication goes on).
    pub publish_timeout: Duration,
    /// Publications still running (waited for at shutdown).
    pub publications: TaskTracker,
    /// Whether the last publication failed (readiness, and one log line per outage).
    pub failing: AtomicBool,
    /// When a publication last failed (Unix ms): readiness forgets a failure this old.
    pub last_failure: AtomicU64,
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What a request got published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub published: usize,
    pub duplicates: usize,
}

/// Answers one request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    state.metrics.in_flight.inc();
    let response = respond(&state, req).await;
    state.metrics.in_flight.dec();
    state.metrics.answered(response.status().as_u16());
    response
}

async fn respond(state: &Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/pix" && !path.starts_with("/pix/") {
        return error(StatusCode::NOT_FOUND, "not found; PSPs POST to /pix (or /pix/… for a webhookUrl suffix)");
    }
    if req.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "POST only");
    }
    if let Some(token) = &state.token {
        let given = req.headers().get(hyper::header::AUTHORIZATION).map(HeaderValue::as_bytes).unwrap_or_default();
        let expected = format!("Bearer {token}");
        if !constant_time_eq(given, expected.as_bytes()) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong Authorization: Bearer token");
        }
    }
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return too_large(state.max_body_bytes);
    }
    let body = match tokio::time::timeout(
        state.request_timeout,
        Limited::new(req.into_body(), state.max_body_bytes).collect(),
    )
    .await
    {
        Err(_) => return error(StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time"),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return too_large(state.max_body_bytes);
        }
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, &format!("cannot read the body: {e}")),
        Ok(Ok(b)) => b.to_bytes(),
    };
    let events = match api_pix::map(&body, &state.mapping) {
        Ok(events) => events,
        Err(bad) => {
            tracing::info!(reason = %bad.0, "webhook: body refused (400), nothing published");
            return error(StatusCode::BAD_REQUEST, &bad.to_string());
        }
    };
    // The bodies read, bounded by max_body_bytes × connections; the publications, by this.
    let Ok(Ok(permit)) = tokio::time::timeout(QUEUE_WAIT, state.permits.clone().acquire_owned()).await else {
        return unavailable("busy: webhook.max_concurrent_requests are being handled; retry later");
    };
    // The permit goes with the publication, which outlives a handler that timed out.
    let owner = state.clone();
    let task = state.publications.spawn(async move {
        let _permit = permit;
        publish(owner, events).await
    });
    match tokio::time::timeout(state.publish_timeout, task).await {
        Ok(Ok(Ok(p))) => {
            let body = serde_json::json!({"published": p.published, "duplicates": p.duplicates});
            reply(StatusCode::OK, body.to_string())
        }
        Ok(Ok(Err(why))) => unavailable(&why),
        Ok(Err(join)) => {
            tracing::error!(error = %join, "webhook: a publication task failed; this is a bug, please report it");
            unavailable("internal error; retry")
        }
        Err(_) => {
            // Still being published: what gets through is recorded, and the retry finds it.
            state.last_failure.store(now_ms(), Ordering::Relaxed);
            if !state.failing.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "webhook: Kafka has not acknowledged within webhook.publish_timeout_ms; answering 503 until it does"
                );
            }
            unavailable("Kafka has not acknowledged every event yet; retry")
        }
    }
}

/// Publishes what earlier requests did not, then records it. `Err` is the 503's reason.
async fn publish(state: Arc<State>, events: Vec<Outgoing>) -> Result<Published, String> {
    let ids: Vec<_> = events.iter().map(|e| e.id).collect();
    let claim = match state.index.claim(&ids, state.publish_timeout).await {
        Ok(Some(claim)) => claim,
        Ok(None) => return Err("another request is publishing the same events; retry".into()),
        Err(e) => {
            tracing::error!(error = %crate::telemetry::Chain(&e), "webhook: cannot use the deduplication index");
            return Err("cannot check for duplicates; retry".into());
        }
    };
    let mut skip = claim.duplicates.iter().peekable();
    let todo: Vec<&Outgoing> =
        events.iter().enumerate().filter(|(i, _)| skip.next_if_eq(&i).is_none()).map(|(_, e)| e).collect();
    let started = Instant::now();
    let records = todo
        .iter()
        .map(|e| Record {
            topic: state.topics.get(e.category),
            key: Some(e.key.as_bytes()),
            value: &e.value,
            headers: None,
        })
        .collect();
    let outcome = state.publisher.publish(records).await;
    let mut acked = std::collections::HashSet::with_capacity(todo.len());
    let mut by_category = [0u64; 3];
    for (e, _) in todo.iter().zip(&outcome.acknowledged).filter(|(_, a)| **a) {
        acked.insert(e.id.as_u128());
        by_category[e.category as usize] += 1;
    }
    for (c, n) in crate::pix::Category::ALL.iter().zip(by_category) {
        state.metrics.published.with_label_values(&[c.as_str()]).inc_by(n);
    }
    // What Kafka acknowledged is recorded whatever happened to the rest, so that the retry
    // publishes only the rest; the others are released.
    let recorded = state.index.confirm(claim.owned, |id| acked.contains(&id)).await;
    if let Err(e) = &recorded {
        tracing::error!(error = %crate::telemetry::Chain(e),
            "webhook: events published but not recorded as such; a retry of this request would publish them again");
    }
    if let Some(e) = outcome.first_error {
        if !state.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %crate::telemetry::Chain(&e), "webhook: Kafka did not acknowledge; answering 503 until it does");
        }
        state.last_failure.store(now_ms(), Ordering::Relaxed);
        return Err(format!(
            "Kafka acknowledged {} of {} events ({}); retry",
            acked.len(),
            todo.len(),
            crate::telemetry::Chain(&e)
        ));
    }
    state.metrics.publish_seconds.observe(started.elapsed().as_secs_f64());
    if state.failing.swap(false, Ordering::Relaxed) {
        tracing::info!("webhook: Kafka acknowledges again");
    }
    state.metrics.duplicates.inc_by(claim.duplicates.len() as u64);
    Ok(Published { published: todo.len(), duplicates: claim.duplicates.len() })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body + "\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(status, serde_json::json!({ "error": message }).to_string())
}

fn too_large(max: usize) -> Response<Full<Bytes>> {
    error(StatusCode::PAYLOAD_TOO_LARGE, &format!("the body is larger than webhook.max_body_bytes ({max})"))
}

fn unavailable(message: &str) -> Response<Full<Bytes>> {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"Bearer abc", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer ab", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer abd", b"Bearer abc"));
    }
}
