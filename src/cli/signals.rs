//! SIGINT/SIGTERM as a flag the long-running commands check; a second one exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::ingest::Uncommitted;

/// A flag set on the first SIGINT or SIGTERM (watched from a small thread of its own, so the
/// commands need no async runtime of their own for it). A second signal exits the process at
/// once with code 130 (128 + SIGINT, as shells report an interrupted command): an operator who
/// presses Ctrl-C twice does not wait out the shutdown grace period. Exactly once holds either
/// way — what was read and not committed is read again from the offsets in Delta.
pub fn stop_flag() -> Arc<AtomicBool> {
    stop_flag_telling(Uncommitted::default())
}

/// [`stop_flag`], whose second signal says what `uncommitted` describes.
pub fn stop_flag_telling(uncommitted: Uncommitted) -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
            let mut int = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
                Ok(s) => s,
                Err(_) => return,
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tracing::info!(
                "stop requested: committing what is buffered, then exiting (a second Ctrl-C or SIGTERM exits at once)"
            );
            crate::probe::Probe::from_env().hit("stop-requested");
            f.store(true, Ordering::Relaxed);
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            let what = uncommitted.describe().unwrap_or_else(|| "what was read since the last commit".to_owned());
            tracing::warn!(
                "second stop request: exiting now without committing {what}; it is read again from the offsets in \
                 Delta on the next start (nothing committed is lost)"
            );
            // _exit, not exit: no atexit handlers (OpenSSL's cleanup) under librdkafka's
            // threads, which are still running. The log line is written by then (stderr is
            // unbuffered); nothing else needs flushing: what was not committed is dropped.
            // SAFETY: _exit(2) ends the process; it touches no memory of this one.
            unsafe { libc::_exit(130) }
        });
    });
    flag
}
