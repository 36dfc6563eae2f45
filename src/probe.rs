//! Named points on the commit path where the crash tests stop the process to kill it with
//! SIGKILL at exactly that moment (`PIXLAKE_PROBE`, read once at start; unset in production,
//! where [`Probe::hit`] is one branch on a `None`).
//!
//! * `PIXLAKE_PROBE=markers` prints `pixlake-probe: POINT` on stderr at every point;
//! * `PIXLAKE_PROBE=pause:POINT:N` also stops the whole process (SIGSTOP to itself, every
//!   thread frozen, Kafka heartbeats included) the N-th time POINT is reached, after printing
//!   `pixlake-probe: paused at POINT`; a test then kills it there (SIGKILL) or lets it go on
//!   (SIGCONT), e.g. to play a zombie whose session expired;
//! * `PIXLAKE_PROBE=slow:POINT:MS` sleeps MS milliseconds at every hit of POINT (a slow
//!   warehouse: `slow:encoded:500` makes each table commit half a second longer);
//! * several, comma-separated: `slow:encoded:500,pause:paused:2`.
//!
//! Points, in commit order: `encoded` (a table commit starts: its rows are encoded and uploaded next),
//! `files-written` (data files in storage, the Delta log commit next), `table-committed` (the
//! category table committed; `pix_quarantine`, committed at the same time, may or may not be),
//! `quarantine-committed` (the other way round), `committed` (both committed, the Kafka
//! group commit next). Around them, on the poll thread: `sealed` (a batch handed to the
//! committer; the loop reads on) and `paused` (partitions paused because a batch is due while
//! the previous one is still being committed). Points of the process's life, which tests wait for instead of reading
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
    slow: Option<(String, std::time::Duration)>,
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

    /// Parses `markers`, `pause:POINT:N`, `slow:POINT:MS`, or a comma-separated list of them;
    /// anything unreadable turns probes off.
    pub fn parse(spec: &str) -> Self {
        let (mut pause, mut slow) = (None, None);
        for part in spec.split(',') {
            if let Some(rest) = part.strip_prefix("pause:") {
                let (point, n) = rest.rsplit_once(':').unwrap_or((rest, "1"));
                let Ok(n) = n.parse() else { return Probe(None) };
                pause = Some((point.to_owned(), n));
            } else if let Some(rest) = part.strip_prefix("slow:") {
                let Some((point, ms)) = rest.rsplit_once(':') else { return Probe(None) };
                let Ok(ms) = ms.parse() else { return Probe(None) };
                slow = Some((point.to_owned(), std::time::Duration::from_millis(ms)));
            } else if part != "markers" {
                return Probe(None);
            }
        }
        Probe(Some(Arc::new(Settings { pause, slow, hits: AtomicU32::new(0) })))
    }

    /// Marks `point`; stops the process here if asked to (and carries on once continued).
    pub fn hit(&self, point: &str) {
        let Some(s) = &self.0 else { return };
        eprintln!("pixlake-probe: {point}");
        if let Some((p, delay)) = &s.slow
            && p == point
        {
            std::thread::sleep(*delay);
        }
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
    fn parses_each_form_and_lists_and_ignores_the_rest() {
        assert!(Probe::parse("").0.is_none());
        assert!(Probe::parse("pause:x:notanumber").0.is_none());
        let m = Probe::parse("markers");
        assert!(m.0.as_ref().unwrap().pause.is_none());
        let p = Probe::parse("pause:files-written:3");
        assert_eq!(p.0.as_ref().unwrap().pause, Some(("files-written".to_owned(), 3)));
        assert_eq!(Probe::parse("pause:committed").0.unwrap().pause, Some(("committed".to_owned(), 1)));
        let both = Probe::parse("slow:encoded:250,pause:paused:2");
        let s = both.0.as_ref().unwrap();
        assert_eq!(s.slow, Some(("encoded".to_owned(), std::time::Duration::from_millis(250))));
        assert_eq!(s.pause, Some(("paused".to_owned(), 2)));
        assert!(Probe::parse("slow:encoded").0.is_none() && Probe::parse("slow:encoded:x").0.is_none());
        // Below the N-th hit the probe does not pause.
        p.hit("files-written");
        p.hit("files-written");
        p.hit("other");
    }
}
