//! Load for `scripts/bench-webhook.sh`: `CLIENTS` concurrent clients POST `REQUESTS` API Pix
//! webhook bodies of `ITEMS` distinct items each to `URL`, each retried on 503 as a PSP would,
//! and print one JSON line with the rate of events acknowledged.
//!
//!   cargo run --release --example webhook_load -- URL [CLIENTS] [ITEMS] [REQUESTS]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn body(run: u64, request: usize, items: usize) -> String {
    let items: Vec<String> = (0..items)
        .map(|i| {
            let n = run * 1_000_000_000 + (request * items + i) as u64;
            format!(
                r#"{{"endToEndId":"E18236120202612011200{:011}","txid":"tx{n}","valor":"12.34","chave":"7d9f0335-8dcc-4054-9bf9-0dbd61d36906","horario":"2026-12-01T12:00:30.500Z","infoPagador":"pedido","pagador":{{"cpf":"52998224725","nome":"Fulano de Tal"}}}}"#,
                n % 100_000_000_000
            )
        })
        .collect();
    format!(r#"{{"pix":[{}]}}"#, items.join(","))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().expect("usage: webhook_load URL [CLIENTS] [ITEMS] [REQUESTS]");
    let arg = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (clients, items, requests) = (arg(2, 64), arg(3, 100), arg(4, 1000));
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 90;
    let bodies: Arc<Vec<String>> = Arc::new((0..requests).map(|r| body(run, r, items)).collect());
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let published = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, bodies, next) = (http.clone(), url.clone(), bodies.clone(), next.clone());
            let (retries, published) = (retries.clone(), published.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = bodies.get(i) else { return };
                    loop {
                        match http.post(&url).body(b.clone()).send().await {
                            Ok(r) if r.status() == 200 => {
                                let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                                published.fetch_add(v["published"].as_u64().unwrap(), Ordering::Relaxed);
                                break;
                            }
                            Ok(r) if r.status() == 503 => {}
                            Ok(r) => panic!("answered {}", r.status()),
                            Err(_) => {}
                        }
                        retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let events = published.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "requests": requests, "clients": clients, "items_per_request": items, "events": events,
            "seconds": secs, "events_per_s": events as f64 / secs, "retries": retries.load(Ordering::Relaxed),
        })
    );
}
