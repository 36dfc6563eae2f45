//! Retrying what the outside world makes fail (a broker outage, a full disk, an unreachable
//! object store): exponential backoff with jitter, forever while the engine runs, bounded by the
//! shutdown grace period once a stop was asked for. Nothing buffered is dropped while retrying.

use std::fmt::Display;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use prometheus::IntCounter;

use crate::telemetry::PipelineMetrics;

/// The stop request (SIGTERM/SIGINT) and the grace period it starts.
#[derive(Debug, Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    grace: Duration,
    began: Arc<OnceLock<Instant>>,
}

impl Shutdown {
    /// Watches `flag`; once set, work must end within `grace`.
    pub fn new(flag: Arc<AtomicBool>, grace: Duration) -> Self {
        Shutdown { flag, grace, began: Arc::new(OnceLock::new()) }
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// When the grace period ends (`None` while running normally).
    pub fn deadline(&self) -> Option<Instant> {
        self.requested().then(|| *self.began.get_or_init(Instant::now) + self.grace)
    }
}

/// Retry counters by cause (`pixlake_retries_total{cause}`), also read for the run's report.
#[derive(Debug, Clone)]
pub struct Retries {
    /// Dead letters not acknowledged.
    pub dlq: IntCounter,
    /// Delta commits and table opens that failed.
    pub delta: IntCounter,
    /// Offset and watermark reads that failed.
    pub offsets: IntCounter,
}

impl Retries {
    /// The pipeline's retry counters.
    pub fn of(metrics: &PipelineMetrics) -> Self {
        Retries {
            dlq: metrics.retries_dlq.clone(),
            delta: metrics.retries_delta.clone(),
            offsets: metrics.retries_offsets.clone(),
        }
    }
}

/// Why retrying stopped.
#[derive(Debug, thiserror::Error)]
#[error("gave up {what} after {attempts} attempt(s): {last}")]
pub struct GaveUp {
    pub what: &'static str,
    pub attempts: u32,
    pub last: String,
}

/// Runs `op` until it succeeds, sleeping with exponential backoff (100 ms doubling to 30 s,
/// jittered) between failures and logging each one with `what` and the operator hint `hint`.
/// Stops early only when the next attempt would start after `deadline()`.
pub fn retry<T, E: Display>(
    what: &'static str,
    hint: &str,
    counter: &IntCounter,
    deadline: impl Fn() -> Option<Instant>,
    mut op: impl FnMut() -> Result<T, E>,
) -> Result<T, GaveUp> {
    let mut delays = ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let err = match op() {
            Ok(v) => {
                if attempts > 1 {
                    tracing::info!(what, attempts, "succeeded after retrying");
                }
                return Ok(v);
            }
            Err(e) => e,
        };
        let delay = delays.next().unwrap_or(Duration::from_secs(30));
        if deadline().is_some_and(|d| Instant::now() + delay > d) {
            return Err(GaveUp { what, attempts, last: err.to_string() });
        }
        counter.inc();
        tracing::warn!(what, attempts, retry_in_ms = delay.as_millis() as u64, error = %err, "{hint}");
        std::thread::sleep(delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_until_success_and_counts() {
        let counter = IntCounter::new("c", "c").unwrap();
        let mut left = 2;
        let out = retry(
            "thing",
            "hint",
            &counter,
            || None,
            || {
                if left > 0 {
                    left -= 1;
                    Err("down")
                } else {
                    Ok(7)
                }
            },
        );
        assert_eq!(out.unwrap(), 7);
        assert_eq!(counter.get(), 2);
    }

    #[test]
    fn stops_at_the_deadline_with_the_last_error() {
        let counter = IntCounter::new("c", "c").unwrap();
        let past = Instant::now();
        let out: Result<(), _> = retry("thing", "hint", &counter, || Some(past), || Err("disk full"));
        let e = out.unwrap_err();
        assert_eq!((e.attempts, e.last.as_str()), (1, "disk full"));
    }

    #[test]
    fn shutdown_deadline_starts_when_asked() {
        let flag = Arc::new(AtomicBool::new(false));
        let s = Shutdown::new(flag.clone(), Duration::from_secs(5));
        assert_eq!(s.deadline(), None);
        flag.store(true, Ordering::Relaxed);
        let d = s.deadline().unwrap();
        assert_eq!(s.deadline(), Some(d), "fixed once started");
        assert!(d > Instant::now() + Duration::from_secs(4));
    }
}
