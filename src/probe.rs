//! Named points on the commit path where the crash tests stop the process to kill it with
//! SIGKILL at exactly that moment (`PIXLAKE_PROBE`, read once at start; unset in production,
//! where [`Probe::hit`] is one branch on a `None`).
//!
//! * `PIXLAKE_PROBE=markers` prints `pixlake-probe: POINT` on stderr at every point;
//! * `PIXLAKE_PROBE=pause:POINT:N` also stops the whole process (SIGSTOP to itself, every
//!   thread frozen, Kafka heartbeats included) the N-th time POINT is reached, after printing
//!   `pixlake-probe: paused at POINT`; a test then kills it there (SIGKILL) or lets it go on
//!   (SIGCONT), e.g. to play a zombie whose session expired.
//!
//! Points, in commit order: `encoded` (rows handed to the Parquet writer, upload next),
//! `files-written` (data files in storage, the Delta log commit next), `table-committed` (the
//! category table committed, `pix_quarantine` next), `committed` (both committed, the Kafka
//! group commit next). Points of the process's life, which tests wait for instead of reading
//! log wording: `assigned` (partitions newly assigned, their offsets read from Delta),
//! `revoked`, `fenced` (a commit refused because another writer committed for a partition),
//! `stop-requested` (the first SIGINT/SIGTERM), `maintenance-done` (a scheduled maintenance
//! run), `replay-inserted` (`dlq replay`: rows appended, quarantine removal next).
//! `ship-log`: `ship-log-acked` (Kafka acknowledged a batch, its checkpoint next) and
//! `ship-log-checkpointed`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The variable that configures probes.
pub const ENV: &str = "PIXLAKE_PROBE";

#[derive(Debug)]
struct Settings {
    pause: Option<(String, u32)>,
    hits: AtomicU32,
}

/// A cheap, cloneable handle to the process's probe settings.
#[derive(Debug, Clone, Default)]
pub struct Probe(Option<Arc<Settings>>);

impl Probe {
    /// Probes as `PIXLAKE_PROBE` asks (none when unset or unreadable).
    pub fn from_env() -> Self {
        match std::env::var(ENV) {
            Ok(v) => Self::parse(&v),
            Err(_) => Probe(None),
        }
    }

    /// Parses `markers` or `pause:POINT:N`.
    pub fn parse(spec: &str) -> Self {
        let pause = spec.strip_prefix("pause:").and_then(|rest| {
            let (point, n) = rest.rsplit_once(':').unwrap_or((rest, "1"));
            Some((point.to_owned(), n.parse().ok()?))
        });
        if pause.is_none() && spec != "markers" {
            return Probe(None);
        }
        Probe(Some(Arc::new(Settings { pause, hits: AtomicU32::new(0) })))
    }

    /// Marks `point`; stops the process here if asked to (and carries on once continued).
    pub fn hit(&self, point: &str) {
        let Some(s) = &self.0 else { return };
        eprintln!("pixlake-probe: {point}");
        if let Some((p, n)) = &s.pause
            && p == point
            && s.hits.fetch_add(1, Ordering::SeqCst) + 1 == *n
        {
            eprintln!("pixlake-probe: paused at {point}");
            // SAFETY: raise(3) with a standard signal; no memory is involved.
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
            eprintln!("pixlake-probe: resumed at {point}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_two_forms_and_ignores_the_rest() {
        assert!(Probe::parse("").0.is_none());
        assert!(Probe::parse("pause:x:notanumber").0.is_none());
        let m = Probe::parse("markers");
        assert!(m.0.as_ref().unwrap().pause.is_none());
        let p = Probe::parse("pause:files-written:3");
        assert_eq!(p.0.as_ref().unwrap().pause, Some(("files-written".to_owned(), 3)));
        assert_eq!(Probe::parse("pause:committed").0.unwrap().pause, Some(("committed".to_owned(), 1)));
        // Below the N-th hit the probe does not pause.
        p.hit("files-written");
        p.hit("files-written");
        p.hit("other");
    }
}
