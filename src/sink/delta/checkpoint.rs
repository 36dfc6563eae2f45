//! Checkpoints written by the writer, beside its commits: every `delta.checkpointInterval`
//! versions (100 unless the table says otherwise), as Spark and delta-rs do.
//!
//! A checkpoint is what keeps every reader's log replay short — Spark's, `status`'s, and the
//! offset lookups of an assignment, which otherwise read every commit since the last one. It is
//! written by the Delta kernel from the log alone (no writer state), on a blocking thread, while
//! the writer goes on committing: a checkpoint of version `v` describes `v` whatever lands after
//! it, and a crash halfway leaves no checkpoint (the object store's put is atomic), only the
//! next one to wait for. One at a time: when the previous one is still being written the due
//! one is skipped and the next interval writes one. Its failure is logged, never the commit's.

use std::num::NonZero;
use std::sync::Arc;

use deltalake::BlindDeltaTable;
use deltalake::logstore::LogStore;
use tokio::task::JoinHandle;
use url::Url;

/// The checkpoints of one writer.
pub(super) struct Checkpoints {
    table: String,
    interval: u64,
    running: Option<JoinHandle<()>>,
}

/// Files the kernel reads at once (log commits, checkpoint parts) for pixlake's own log reads.
const READ_AHEAD: NonZero<usize> = NonZero::new(8).unwrap();
/// Rows per batch of those reads.
const READ_BATCH_ROWS: NonZero<usize> = NonZero::new(1024).unwrap();

/// A Delta kernel engine over `log_store`'s storage whose log reads hold at most
/// [`READ_AHEAD`] files of [`READ_BATCH_ROWS`] rows at once. delta-rs's engine uses the kernel's
/// defaults — 1 000 files read ahead in batches of 1 000 rows, memory "roughly proportional to
/// buffer_size × batch_size" by the kernel's own account: measured with `cargo bench --bench
/// commit`, a checkpoint over 1 000 commit files took the process from 43 MiB to 3 994 MiB.
/// Must be called within a tokio runtime (its tasks run there, or on a thread of their own when
/// that runtime has one thread).
pub(super) fn engine(log_store: &dyn LogStore) -> Arc<dyn delta_kernel::Engine> {
    use delta_kernel_default_engine::DefaultEngineBuilder;
    use delta_kernel_default_engine::executor::tokio::{TokioBackgroundExecutor, TokioMultiThreadExecutor};
    let builder = DefaultEngineBuilder::new(log_store.root_object_store(None))
        .with_buffer_size(READ_AHEAD)
        .with_batch_size(READ_BATCH_ROWS);
    let handle = tokio::runtime::Handle::current();
    match handle.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => {
            // The kernel blocks on its tasks; a single-threaded runtime cannot run them meanwhile.
            Arc::new(builder.with_task_executor(Arc::new(TokioBackgroundExecutor::new())).build())
        }
        _ => Arc::new(builder.with_task_executor(Arc::new(TokioMultiThreadExecutor::new(handle))).build()),
    }
}

fn interval(table: &BlindDeltaTable) -> u64 {
    table.table_properties().checkpoint_interval.map_or(100, |n| n.get())
}

/// The table's root as the kernel wants it: a directory URL (with a trailing slash, or
/// `Url::join` would replace the last segment).
pub(super) fn table_root(log_store: &dyn LogStore) -> Url {
    let mut root = log_store.config().location().clone();
    if !root.path().ends_with('/') {
        root.set_path(&format!("{}/", root.path()));
    }
    root
}

impl Checkpoints {
    pub(super) fn new(name: &str, table: &BlindDeltaTable) -> Self {
        Checkpoints { table: name.to_owned(), interval: interval(table), running: None }
    }

    /// Takes the interval of `table` as it is now (after a refresh), keeping track of the
    /// checkpoint being written.
    pub(super) fn reconfigure(&mut self, table: &BlindDeltaTable) {
        self.interval = interval(table);
    }

    /// Starts the checkpoint of `version` if one is due at it and none is being written.
    pub(super) fn after(&mut self, version: u64, log_store: &Arc<dyn LogStore>) {
        if version == 0 || !version.is_multiple_of(self.interval) {
            return;
        }
        if self.running.as_ref().is_some_and(|r| !r.is_finished()) {
            tracing::debug!(table = %self.table, version, "the previous checkpoint is still being written; skipping this one");
            return;
        }
        let (table, log_store) = (self.table.clone(), log_store.clone());
        self.running = Some(tokio::task::spawn_blocking(move || {
            let engine = engine(log_store.as_ref());
            let written = delta_kernel::Snapshot::builder_for(table_root(log_store.as_ref()))
                .at_version(version)
                .build(engine.as_ref())
                .and_then(|s| s.checkpoint(engine.as_ref(), None));
            match written {
                Ok(_) => tracing::debug!(%table, version, "checkpoint written"),
                Err(e) => tracing::warn!(%table, version, error = %e,
                    "writing a checkpoint failed; readers replay more of the log until the next one (or `pixlake maintain`) writes one"),
            }
        }));
    }

    /// Waits for the checkpoint being written, if any (tests, and a clean shutdown).
    pub(super) async fn settle(&mut self) {
        if let Some(running) = self.running.take()
            && let Err(e) = running.await
        {
            tracing::warn!(table = %self.table, error = %e, "writing a checkpoint failed; the next one is written at the next interval");
        }
    }
}
