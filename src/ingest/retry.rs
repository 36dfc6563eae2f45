//! Retrying what the outside world makes fail (a broker outage, a full disk, an unreachable
//! object store): exponential backoff with jitter, forever while the engine runs, bounded by the
//! shutdown grace period once a stop was asked for — unless the failure is one retrying does not
//! cure ([`crate::fault`]), which stops the pipeline after a few attempts. Nothing buffered is
//! dropped while retrying.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use prometheus::IntCounter;

use crate::fault::{Classify, PERMANENT_ATTEMPTS, Permanent};
use crate::telemetry::{Chain, PermanentFailures, PipelineMetrics};

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

    /// The earliest of the grace period's end and `others` (`None`: no limit), read anew at each
    /// call — for [`retry`]'s deadline.
    pub fn earliest(&self, others: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
        others.into_iter().chain([self.deadline()]).flatten().min()
    }
}

/// Retry counters by cause (`pixlake_retries_total{cause}`), also read for the run's report,
/// and the pipeline's permanent failures (`pixlake_permanent_failures_total{cause}`, `/readyz`).
#[derive(Clone)]
pub struct Retries {
    /// Dead letters not acknowledged.
    pub dlq: IntCounter,
    /// Delta commits and table opens that failed.
    pub delta: IntCounter,
    /// Offset and watermark reads that failed.
    pub offsets: IntCounter,
    /// Failures retrying does not cure.
    pub permanent: PermanentFailures,
    /// Attempts in a row such a failure gets before retrying stops.
    pub permanent_attempts: u32,
}

impl std::fmt::Debug for Retries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retries").field("dlq", &self.dlq.get()).field("delta", &self.delta.get()).finish()
    }
}

impl Retries {
    /// The pipeline's retry counters; a permanent failure gets `permanent_attempts` in a row.
    pub fn of(metrics: &PipelineMetrics, permanent_attempts: u32) -> Self {
        Retries {
            dlq: metrics.retries_dlq.clone(),
            delta: metrics.retries_delta.clone(),
            offsets: metrics.retries_offsets.clone(),
            permanent: metrics.permanent.clone(),
            permanent_attempts: permanent_attempts.max(1),
        }
    }

    /// Where a retry of `cause` reports.
    pub fn of_cause<'a>(&'a self, cause: &'a IntCounter) -> Tally<'a> {
        Tally { retried: cause, permanent: Some(&self.permanent), permanent_attempts: self.permanent_attempts }
    }
}

/// Where one retry loop reports: the counter of retried attempts of its cause and, in a
/// pipeline, its permanent failures.
#[derive(Clone, Copy)]
pub struct Tally<'a> {
    pub retried: &'a IntCounter,
    pub permanent: Option<&'a PermanentFailures>,
    /// Attempts in a row a permanent failure gets.
    pub permanent_attempts: u32,
}

impl<'a> From<&'a IntCounter> for Tally<'a> {
    fn from(retried: &'a IntCounter) -> Self {
        Tally { retried, permanent: None, permanent_attempts: PERMANENT_ATTEMPTS }
    }
}

/// Why retrying stopped: the time allowed ran out (a stop request's grace period, `--timeout`,
/// a rebalance's budget), or the failure is one retrying does not cure (after its attempts in
/// a row). The last failure is the source.
#[derive(Debug, thiserror::Error)]
#[error("gave up {what} after {attempts} attempt(s) ({})", match permanent {
    Some(_) => "retrying does not cure this failure",
    None => "the time allowed ran out",
})]
pub struct GaveUp {
    pub what: &'static str,
    pub attempts: u32,
    /// Set when retrying stopped because the failure is permanent (not because time ran out).
    pub permanent: Option<Permanent>,
    #[source]
    pub last: Box<dyn std::error::Error + Send + Sync + 'static>,
}

/// Runs `op` until it succeeds, sleeping with exponential backoff (100 ms doubling to 30 s,
/// jittered) between failures and logging each one with `what` and the operator hint `hint`.
///
/// Stops early when the next attempt would start after `deadline()` — asked again while
/// sleeping, so a deadline moved earlier meanwhile (a rebalance's cut-off, a shutdown, the
/// other table's fence) ends the wait within [`SLICE`] — or when the failure is
/// [`Permanent`] for the `tally.permanent_attempts`-th time in a row: a permanent cause is
/// counted in `pixlake_permanent_failures_total` and shown in `/readyz` from its first
/// occurrence (until an attempt of the same `what` succeeds, or a loop of it runs out of time),
/// and logged as an error, not as a warning to wait out.
pub fn retry<'a, T, E: std::error::Error + Classify + Send + Sync + 'static>(
    what: &'static str,
    hint: &str,
    tally: impl Into<Tally<'a>>,
    deadline: impl Fn() -> Option<Instant>,
    mut op: impl FnMut() -> Result<T, E>,
) -> Result<T, GaveUp> {
    let tally = tally.into();
    let mut delays = ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build();
    let (mut attempts, mut permanent_in_a_row) = (0, 0);
    loop {
        attempts += 1;
        let err = match op() {
            Ok(v) => {
                if attempts > 1 {
                    tracing::info!(what, attempts, "succeeded after retrying");
                }
                // What failed for good before works now (in this loop or an earlier one of the
                // same `what`): /readyz must not keep saying otherwise.
                if let Some(p) = tally.permanent {
                    p.cleared(what);
                }
                return Ok(v);
            }
            Err(e) => e,
        };
        let permanent = err.permanent();
        let chain = Chain(&err).to_string();
        permanent_in_a_row = if permanent.is_some() { permanent_in_a_row + 1 } else { 0 };
        if let (Some(cause), Some(p)) = (permanent, tally.permanent) {
            p.failed(what, cause, format!("{what}: {chain}"));
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(30));
        if permanent_in_a_row >= tally.permanent_attempts {
            return Err(GaveUp { what, attempts, permanent, last: Box::new(err) });
        }
        // The next attempt's time, fixed now: the same test before and during the sleep, so a
        // deadline that does not move never cuts a wait it allowed.
        let until = Instant::now() + delay;
        if deadline().is_some_and(|d| until > d) {
            return Err(out_of_time(what, attempts, tally, err));
        }
        tally.retried.inc();
        let retry_in_ms = delay.as_millis() as u64;
        match permanent {
            // Said once when it starts (with the cause, which the operator needs before the
            // pipeline stops); the error that stops it says it again.
            Some(cause) if permanent_in_a_row == 1 => tracing::error!(
                what,
                cause = cause.kind(),
                error = %chain,
                "{what} failed for a reason retrying does not cure ({}); trying {} more time(s), then stopping",
                cause.kind(),
                tally.permanent_attempts - 1
            ),
            Some(_) => tracing::debug!(what, attempts, retry_in_ms, error = %chain, "retrying a permanent failure"),
            None => tracing::warn!(what, attempts, retry_in_ms, error = %chain, "{hint}"),
        }
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(SLICE));
            if deadline().is_some_and(|d| until > d) {
                return Err(out_of_time(what, attempts, tally, err));
            }
        }
    }
}

/// Retrying `what` ran out of time (a shutdown, a rebalance's cut-off, the other table's stop):
/// its work is dropped or handed on, and whoever takes it up reports its failures again, so a
/// permanent failure it showed in `/readyz` is taken down — left up, nothing might clear it (an
/// idle pipeline commits nothing).
fn out_of_time<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
    attempts: u32,
    tally: Tally<'_>,
    err: E,
) -> GaveUp {
    if let Some(p) = tally.permanent {
        p.cleared(what);
    }
    GaveUp { what, attempts, permanent: None, last: Box::new(err) }
}

/// How long a backoff sleep goes without asking the deadline again.
const SLICE: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Failure(&'static str, Option<Permanent>);

    impl Classify for Failure {
        fn permanent(&self) -> Option<Permanent> {
            self.1
        }
    }

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
                    Err(Failure("down", None))
                } else {
                    Ok(7)
                }
            },
        );
        assert_eq!(out.unwrap(), 7);
        assert_eq!(counter.get(), 2);
    }

    #[test]
    fn stops_at_the_deadline_with_the_last_error_as_source() {
        let counter = IntCounter::new("c", "c").unwrap();
        let past = Instant::now();
        let out: Result<(), _> = retry("thing", "hint", &counter, || Some(past), || Err(Failure("disk full", None)));
        let e = out.unwrap_err();
        assert_eq!((e.attempts, e.permanent), (1, None));
        assert_eq!(Chain(&e).to_string(), "gave up thing after 1 attempt(s) (the time allowed ran out): disk full");
    }

    #[test]
    fn a_deadline_moved_earlier_during_the_backoff_ends_it_before_the_next_attempt() {
        let counter = IntCounter::new("c", "c").unwrap();
        // None when asked before the sleep; passed when asked during it (what the other
        // table's fence or a rebalance's cut-off does).
        let asked = std::cell::Cell::new(0);
        let deadline = || {
            asked.set(asked.get() + 1);
            (asked.get() > 1).then(Instant::now)
        };
        let mut calls = 0;
        let out: Result<(), _> = retry("thing", "hint", &counter, deadline, || {
            calls += 1;
            Err(Failure("down", None))
        });
        assert_eq!((out.unwrap_err().attempts, calls), (1, 1), "no attempt after the deadline moved");
    }

    #[test]
    fn a_permanent_failure_stops_after_a_few_attempts_and_is_reported() {
        let metrics =
            crate::telemetry::Metrics::new("test").unwrap().pipeline("payments", "pix.payments", "pix_payments");
        // Three attempts (the default's backoff would take half a minute here).
        let retries = Retries::of(&metrics, 3);
        let mut calls = 0;
        let out: Result<(), _> = retry(
            "committing",
            "hint",
            retries.of_cause(&retries.delta),
            || None,
            || {
                calls += 1;
                Err(Failure("access denied", Some(Permanent::AccessDenied)))
            },
        );
        let e = out.unwrap_err();
        assert_eq!((calls, e.permanent), (3, Some(Permanent::AccessDenied)));
        assert!(e.to_string().contains("retrying does not cure"), "{e}");
        assert_eq!(metrics.permanent.count(Permanent::AccessDenied), 3);
        assert_eq!(metrics.permanent.failing().as_deref(), Some("committing: access denied"));
        // A transient failure in between starts the count again; success clears /readyz, even
        // when the failure just before it was transient.
        for seq in [
            vec![Some(Permanent::TableChanged), None, Some(Permanent::TableChanged)],
            vec![Some(Permanent::TableChanged), None],
        ] {
            let mut seq = seq.into_iter();
            let out = retry(
                "committing",
                "hint",
                retries.of_cause(&retries.delta),
                || None,
                || match seq.next() {
                    Some(p) => Err(Failure("conflict", p)),
                    None => Ok(()),
                },
            );
            assert!(out.is_ok());
            assert_eq!(metrics.permanent.failing(), None);
        }
        // Time running out on a permanent failure says time ran out.
        let past = Instant::now();
        let out: Result<(), _> = retry(
            "committing",
            "hint",
            retries.of_cause(&retries.delta),
            || Some(past),
            || Err(Failure("access denied", Some(Permanent::AccessDenied))),
        );
        assert_eq!(out.unwrap_err().permanent, None);
        // …and takes down the failure it showed: its work is dropped (a rebalance's cut-off), and
        // on an idle pipeline nothing else would clear it.
        assert_eq!(metrics.permanent.failing(), None);
    }

    /// The two tables of a batch retry side by side: one table's success does not hide the
    /// other's permanent failure from /readyz; that table's own success does.
    #[test]
    fn a_success_clears_only_the_failure_of_what_succeeded() {
        let metrics =
            crate::telemetry::Metrics::new("test").unwrap().pipeline("payments", "pix.payments", "pix_payments");
        let retries = Retries::of(&metrics, 1);
        let attempt = |what, result: Result<(), Failure>| {
            let mut result = Some(result);
            let _ = retry(what, "hint", retries.of_cause(&retries.delta), || None, || result.take().unwrap_or(Ok(())));
        };
        attempt("committing to Delta (quarantine)", Err(Failure("access denied", Some(Permanent::AccessDenied))));
        attempt("committing to Delta", Ok(()));
        assert_eq!(metrics.permanent.failing().as_deref(), Some("committing to Delta (quarantine): access denied"));
        attempt("committing to Delta", Err(Failure("changed", Some(Permanent::TableChanged))));
        assert_eq!(metrics.permanent.failing().as_deref(), Some("committing to Delta: changed"), "the latest first");
        attempt("committing to Delta", Ok(()));
        assert_eq!(metrics.permanent.failing().as_deref(), Some("committing to Delta (quarantine): access denied"));
        attempt("committing to Delta (quarantine)", Ok(()));
        assert_eq!(metrics.permanent.failing(), None);
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
