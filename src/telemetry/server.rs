//! The HTTP listener of `pixlake ingest`: `/metrics` (Prometheus text format), `/healthz` (the
//! process answers) and `/readyz` (every pipeline has partitions assigned and the warehouse
//! answers a listing). Runs on the ingest runtime; the shutdown future ends it.
//!
//! Readiness is what a load balancer or Kubernetes should act on: an instance with no
//! partitions (more instances than partitions, or stuck joining the group) or whose storage is
//! unreachable is not doing its job, although it is alive.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::metrics::{Metrics, PipelineMetrics};

/// How long `/readyz` waits for the warehouse to answer.
const WAREHOUSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {addr} for metrics; set telemetry.listen to a free IP:port (port 0: any), or empty to turn the listener off"
)]
pub struct ListenError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// What the endpoints report on.
pub struct Endpoints {
    /// Rendered at each `/metrics` request.
    pub metrics: Metrics,
    /// What `/readyz` checks.
    pub readiness: Readiness,
}

/// What makes a process ready.
pub enum Readiness {
    /// `ingest`: every pipeline has partitions and no unsolved problem, and the warehouse answers.
    Pipelines {
        /// Per pipeline: its assigned partitions and why it waits for some.
        pipelines: Vec<PipelineMetrics>,
        /// The warehouse, whose root `/readyz` lists.
        warehouse: crate::config::WarehouseConfig,
    },
    /// Another long-running command (`webhook`): its own check, answering (ready, why as JSON).
    Check(Box<dyn Fn() -> (bool, serde_json::Value) + Send + Sync>),
}

/// Binds the listener (before the pipelines start, so a port conflict stops pixlake at once).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr).await.map_err(|source| ListenError { addr, source })
}

/// Serves `endpoints` on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, endpoints: Arc<Endpoints>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: keep serving once it passes.
                tracing::warn!(error = %e, "metrics listener: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(respond(&req, &endpoints).await) }
            });
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %e, "metrics listener: connection ended with an error");
            }
        });
    }
}

async fn respond(req: &Request<Incoming>, endpoints: &Endpoints) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", endpoints.metrics.render()),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => {
            let (ready, body) = readiness(endpoints).await;
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            reply(status, "application/json", body.to_string() + "\n")
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found; try /metrics, /healthz or /readyz\n".into()),
    }
}

/// Whether the process is ready, and why (as JSON).
async fn readiness(endpoints: &Endpoints) -> (bool, serde_json::Value) {
    let (pipelines, warehouse) = match &endpoints.readiness {
        Readiness::Pipelines { pipelines, warehouse } => (pipelines, warehouse),
        Readiness::Check(check) => return check(),
    };
    let warehouse = match tokio::time::timeout(WAREHOUSE_TIMEOUT, crate::sink::delta::reachable(warehouse)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(super::Chain(&e).to_string()),
        Err(_) => Err(format!("no answer within {} s", WAREHOUSE_TIMEOUT.as_secs())),
    };
    let states: serde_json::Map<String, serde_json::Value> = pipelines
        .iter()
        .map(|p| {
            let mut state = serde_json::json!({ "assigned_partitions": p.assigned.get() });
            if let Some(why) = p.waiting().filter(|_| p.assigned.get() == 0) {
                state["waiting"] = serde_json::Value::from(why);
            }
            if let Some(problem) = p.kafka_problem() {
                state["kafka"] = serde_json::Value::from(problem);
            }
            if let Some(failure) = p.permanent.failing() {
                state["failing"] = serde_json::Value::from(failure);
            }
            (p.name().to_owned(), state)
        })
        .collect();
    // A pipeline whose clients cannot authenticate, or cannot read a batch, or whose storage
    // refuses it for good, is not doing its job.
    let assigned = pipelines
        .iter()
        .all(|p| p.assigned.get() > 0 && p.kafka_problem().is_none() && p.permanent.failing().is_none());
    let body = serde_json::json!({
        "ready": assigned && warehouse.is_ok(),
        "pipelines": states,
        "warehouse": match &warehouse { Ok(()) => "ok".to_owned(), Err(e) => e.clone() },
    });
    (assigned && warehouse.is_ok(), body)
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(warehouse: &str, assigned: usize) -> Endpoints {
        let metrics = Metrics::new("test").unwrap();
        let p = metrics.pipeline("payments", "pix.payments", "pix_payments");
        p.set_waiting(Some("joining: group g has no member yet".into()));
        p.set_assigned(assigned);
        let warehouse = crate::config::WarehouseConfig { root: warehouse.into(), storage: Default::default() };
        Endpoints { metrics, readiness: Readiness::Pipelines { pipelines: vec![p], warehouse } }
    }

    fn pipelines(e: &Endpoints) -> &[PipelineMetrics] {
        match &e.readiness {
            Readiness::Pipelines { pipelines, .. } => pipelines,
            Readiness::Check(_) => unreachable!(),
        }
    }

    #[tokio::test]
    async fn ready_only_with_partitions_and_a_reachable_warehouse() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("warehouse").display().to_string();

        let (ready, body) = readiness(&endpoints(&root, 0)).await;
        assert!(!ready, "{body}");
        assert_eq!(body["pipelines"]["payments"]["assigned_partitions"], 0);
        assert_eq!(body["pipelines"]["payments"]["waiting"], "joining: group g has no member yet");
        assert_eq!(body["warehouse"], "ok");

        let (ready, body) = readiness(&endpoints(&root, 3)).await;
        assert!(ready, "{body}");
        assert!(body["pipelines"]["payments"].get("waiting").is_none(), "{body}");

        // Partitions, but its consumer cannot authenticate any more: not ready, and why.
        let e = endpoints(&root, 3);
        let problem = crate::kafka::diagnosis::Diagnosed {
            problem: crate::kafka::diagnosis::Problem::Authentication,
            detail: "SASL authentication error".into(),
        };
        pipelines(&e)[0].set_kafka_problem(Some(&problem));
        let (ready, body) = readiness(&e).await;
        assert!(!ready, "{body}");
        assert!(body["pipelines"]["payments"]["kafka"].as_str().unwrap().contains("sasl.password"), "{body}");
        assert!(e.metrics.render().contains(r#"pixlake_kafka_problem{kind="authentication",pipeline="payments"} 1"#));
        pipelines(&e)[0].set_kafka_problem(None);
        // Its storage refuses it for good: not ready, and why.
        pipelines(&e)[0].permanent.failed(
            "committing to Delta",
            crate::fault::Permanent::TableChanged,
            "committing to Delta: metadata changed".into(),
        );
        let (ready, body) = readiness(&e).await;
        assert!(!ready, "{body}");
        assert_eq!(body["pipelines"]["payments"]["failing"], "committing to Delta: metadata changed");
        pipelines(&e)[0].permanent.cleared("committing to Delta");
        assert!(readiness(&e).await.0);

        // A warehouse under a regular file cannot be listed (nor created).
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let (ready, body) = readiness(&endpoints(&file.join("warehouse").display().to_string(), 3)).await;
        assert!(!ready, "{body}");
        assert_ne!(body["warehouse"], "ok");
    }
}
