//! SIGINT/SIGTERM as a flag the long-running commands check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag set on the first SIGINT or SIGTERM (watched from a small thread of its own, so the
/// commands need no async runtime of their own for it).
pub fn stop_flag() -> Arc<AtomicBool> {
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
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("stop requested: committing what is buffered, then exiting");
            f.store(true, Ordering::Relaxed);
        });
    });
    flag
}
