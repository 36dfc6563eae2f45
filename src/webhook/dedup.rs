//! Which events this webhook already published: the deduplication that keeps a PSP's retry from
//! becoming a second row.
//!
//! PSPs retry every notification that did not get a 200 — a lost response included — so the
//! same item can arrive many times. Event ids are derived from the item ([`super::api_pix`]);
//! this index remembers, durably, the ids Kafka acknowledged, for `webhook.dedup_window`
//! (default 72 h, longer than PSPs keep retrying), and a request publishes only the ids it does
//! not hold.
//!
//! - **Order**: an id is written here only after Kafka acknowledged its event. A crash between
//!   the acknowledgement and this write can let one retry publish the event again (at least
//!   once, never lost); every other retry finds it.
//! - **Concurrent duplicates**: while a request publishes an id, the id is *claimed* in memory;
//!   another request carrying it waits for that outcome instead of publishing it too (then finds
//!   it here, or claims it if the first attempt failed).
//! - **Durability**: [redb](https://www.redb.org) (an embedded, crash-safe B-tree); one writer
//!   thread commits the ids of every request that finished meanwhile in one fsync'd transaction
//!   (group commit), so 64 concurrent clients cost one fsync per round, not 64.
//! - **Cost**: about 100 bytes of disk per event in the window (the id, its publish time, and the
//!   expiry index); 1 M receipts a day for 72 h is ~300 MB. Expired ids are removed hourly
//!   through the expiry index, without scanning the rest.
//! - **Several instances**: each has its own index (redb is single-process; a second process on
//!   the same file is refused). A retry that reaches another instance than the first attempt is
//!   not recognized there and publishes the event again, with the same `event_id`: route a PSP's
//!   connections to one instance (load-balancer affinity by client certificate or source
//!   address), or remove such duplicates by `event_id` downstream.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

/// Published ids → when (Unix seconds).
const IDS: TableDefinition<u128, u64> = TableDefinition::new("published");
/// (when, id) → (): the expiry order.
const EXPIRY: TableDefinition<(u64, u128), ()> = TableDefinition::new("expiry");
/// How often expired ids are removed.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// At most this many expired ids are removed per transaction.
const PURGE_BATCH: usize = 100_000;

/// Why the index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    #[error(
        "cannot open the webhook's deduplication index {path}; check webhook.dedup_path (its directory must be \
         writable, and each running instance needs a file of its own)"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("cannot read or write the webhook's deduplication index; check the disk holding webhook.dedup_path")]
    Storage(#[from] redb::Error),
    #[error("the deduplication index's writer stopped; restart the webhook")]
    Stopped,
    #[error(
        "cannot record published ids in the deduplication index ({message}); check the disk holding webhook.dedup_path"
    )]
    Write { message: String },
}

/// The outcome of [`Index::claim`].
pub struct Claim {
    /// Positions (in the ids given) already published: not to publish again.
    pub duplicates: Vec<usize>,
    /// The ids this caller now owns and must publish.
    pub owned: Owned,
}

/// Ids claimed by one request. Dropping it releases the ids it did not confirm (so a retry can
/// publish them) and wakes the requests waiting for them.
pub struct Owned {
    index: Arc<Index>,
    ids: Vec<u128>,
    /// Waiters hold receivers; dropping this sender wakes them.
    _done: watch::Sender<()>,
}

impl Owned {
    /// How many ids are owned.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is owned.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let mut claims = self.index.claims.lock().unwrap_or_else(PoisonError::into_inner);
        for id in &self.ids {
            claims.remove(id);
        }
    }
}

/// Ids to record, and where to say how it went (the error as text: one write serves many).
type Pending = (Vec<u128>, oneshot::Sender<Result<(), String>>);

/// The index of published ids, with the in-memory claims of ids being published.
pub struct Index {
    db: Arc<redb::Database>,
    claims: Mutex<HashMap<u128, watch::Receiver<()>>>,
    /// The group-commit thread's queue (`None` once closed) and the thread.
    writer: Mutex<Option<std::sync::mpsc::Sender<Pending>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Index {
    /// Opens (or creates) the index at `path`, keeping ids for `window`.
    pub fn open(path: &Path, window: Duration) -> Result<Arc<Index>, DedupError> {
        let open = |source: redb::Error| DedupError::Open { path: path.to_owned(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open(redb::StorageError::from(e).into()))?;
        }
        let db = Arc::new(redb::Database::create(path).map_err(|e| open(e.into()))?);
        // Both tables exist from the start, so readers never meet a missing one.
        let txn = db.begin_write().map_err(|e| open(e.into()))?;
        txn.open_table(IDS).map_err(|e| open(e.into()))?;
        txn.open_table(EXPIRY).map_err(|e| open(e.into()))?;
        txn.commit().map_err(|e| open(e.into()))?;
        let (writer, rx) = std::sync::mpsc::channel::<Pending>();
        let wdb = db.clone();
        let thread = std::thread::Builder::new()
            .name("webhook-dedup".into())
            .spawn(move || write_loop(&wdb, &rx, window))
            .map_err(|e| open(redb::StorageError::from(e).into()))?;
        Ok(Arc::new(Index {
            db,
            claims: Mutex::new(HashMap::new()),
            writer: Mutex::new(Some(writer)),
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Claims `ids` for publishing: those already published are reported as duplicates; if
    /// another request is publishing any of them, nothing is held while waiting for it (at most
    /// `wait`; then `None`, for the caller to answer "retry later") and the claim starts over —
    /// all or nothing, so two requests sharing items never wait for each other in a circle.
    pub async fn claim(self: &Arc<Self>, ids: &[Uuid], wait: Duration) -> Result<Option<Claim>, DedupError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let (done, _) = watch::channel(());
            let mut owned = Owned { index: self.clone(), ids: Vec::with_capacity(ids.len()), _done: done };
            let mut duplicates = Vec::new();
            let mut mine = Vec::with_capacity(ids.len());
            let waits: Vec<watch::Receiver<()>> = {
                let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
                let waits: Vec<_> = ids.iter().filter_map(|id| claims.get(&id.as_u128()).cloned()).collect();
                if waits.is_empty() {
                    for (i, id) in ids.iter().enumerate() {
                        let id = id.as_u128();
                        if owned.ids.contains(&id) {
                            // The same event twice in one request: publish it once.
                            duplicates.push(i);
                        } else {
                            claims.insert(id, owned._done.subscribe());
                            // Owned from here on: dropping `owned` (an error below) releases it.
                            owned.ids.push(id);
                            mine.push((i, id));
                        }
                    }
                }
                waits
            };
            if !waits.is_empty() {
                for mut rx in waits {
                    // Ends when the owner drops its claim (confirmed or released): its sender goes.
                    if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                        return Ok(None);
                    }
                }
                continue;
            }
            // Published before (and confirmed) or not: an id leaves the claims only after its
            // confirmation is durable, so this read sees it.
            let published = self.published(mine.iter().map(|&(_, id)| id))?;
            let done: Vec<u128> = mine.iter().zip(&published).filter(|(_, p)| **p).map(|(&(_, id), _)| id).collect();
            if !done.is_empty() {
                let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
                for id in &done {
                    claims.remove(id);
                }
                owned.ids.retain(|id| !done.contains(id));
            }
            duplicates.extend(mine.iter().zip(&published).filter(|(_, p)| **p).map(|(&(i, _), _)| i));
            duplicates.sort_unstable();
            return Ok(Some(Claim { duplicates, owned }));
        }
    }

    /// Records the owned ids for which `acknowledged` holds as published (durably, in the next
    /// group commit), then releases every owned id — the others can be published by a retry.
    /// Call only with the ids whose events Kafka acknowledged.
    pub async fn confirm(&self, owned: Owned, acknowledged: impl Fn(u128) -> bool) -> Result<(), DedupError> {
        let ids: Vec<u128> = owned.ids.iter().copied().filter(|id| acknowledged(*id)).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        let sent = self.writer.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|w| w.send((ids, tx)));
        if !matches!(sent, Some(Ok(()))) {
            return Err(DedupError::Stopped);
        }
        let result = rx.await.map_err(|_| DedupError::Stopped)?;
        // Dropping `owned` now releases the claims: later readers find the ids durable.
        drop(owned);
        result.map_err(|message| DedupError::Write { message })
    }

    /// Stops the writer thread after it committed what it was given (at shutdown).
    pub fn close(&self) {
        drop(self.writer.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = thread.join();
        }
    }

    /// Whether each id is recorded as published.
    fn published(&self, ids: impl Iterator<Item = u128>) -> Result<Vec<bool>, DedupError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let table = txn.open_table(IDS).map_err(redb::Error::from)?;
        ids.map(|id| Ok(table.get(id).map_err(redb::Error::from)?.is_some())).collect()
    }

    /// How many ids are recorded (for tests and the closing log line).
    pub fn len(&self) -> Result<u64, DedupError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let table = txn.open_table(IDS).map_err(redb::Error::from)?;
        Ok(table.len().map_err(redb::Error::from)?)
    }

    /// Whether no id is recorded.
    pub fn is_empty(&self) -> Result<bool, DedupError> {
        Ok(self.len()? == 0)
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The writer thread: group commits, and the hourly purge. Ends when every sender is gone.
fn write_loop(db: &redb::Database, rx: &std::sync::mpsc::Receiver<Pending>, window: Duration) {
    let mut last_purge: Option<std::time::Instant> = None;
    loop {
        if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            match purge(db, now_secs().saturating_sub(window.as_secs())) {
                Ok(n) if n > 0 => {
                    tracing::info!(removed = n, "webhook: expired ids removed from the deduplication index")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %crate::telemetry::Chain(&e), "webhook: cannot remove expired ids"),
            }
            last_purge = Some(std::time::Instant::now());
        }
        let first = match rx.recv_timeout(PURGE_EVERY) {
            Ok(p) => p,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while let Ok(p) = rx.try_recv() {
            batch.push(p);
        }
        let result = record(db, batch.iter().flat_map(|(ids, _)| ids.iter().copied()), now_secs());
        let result = result.map_err(|e| crate::telemetry::Chain(&e).to_string());
        for (_, reply) in batch {
            let _ = reply.send(result.clone());
        }
    }
}

fn record(db: &redb::Database, ids: impl Iterator<Item = u128>, at: u64) -> Result<(), DedupError> {
    let txn = db.begin_write().map_err(redb::Error::from)?;
    {
        let mut published = txn.open_table(IDS).map_err(redb::Error::from)?;
        let mut expiry = txn.open_table(EXPIRY).map_err(redb::Error::from)?;
        for id in ids {
            if let Some(old) = published.insert(id, at).map_err(redb::Error::from)? {
                expiry.remove((old.value(), id)).map_err(redb::Error::from)?;
            }
            expiry.insert((at, id), ()).map_err(redb::Error::from)?;
        }
    }
    txn.commit().map_err(redb::Error::from)?;
    Ok(())
}

/// Removes ids published before `cutoff` (Unix seconds); returns how many.
fn purge(db: &redb::Database, cutoff: u64) -> Result<u64, DedupError> {
    let mut removed = 0;
    loop {
        let txn = db.begin_write().map_err(redb::Error::from)?;
        let n = {
            let mut published = txn.open_table(IDS).map_err(redb::Error::from)?;
            let mut expiry = txn.open_table(EXPIRY).map_err(redb::Error::from)?;
            let old: Vec<(u64, u128)> = expiry
                .range(..(cutoff, 0u128))
                .map_err(redb::Error::from)?
                .take(PURGE_BATCH)
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(redb::Error::from)?;
            for key in &old {
                expiry.remove(*key).map_err(redb::Error::from)?;
                published.remove(key.1).map_err(redb::Error::from)?;
            }
            old.len()
        };
        txn.commit().map_err(redb::Error::from)?;
        removed += n as u64;
        if n < PURGE_BATCH {
            return Ok(removed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    #[tokio::test]
    async fn confirmed_ids_are_duplicates_even_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dedup.redb");
        {
            let index = Index::open(&path, Duration::from_secs(3600)).unwrap();
            let claim = index.claim(&ids(3), Duration::from_secs(1)).await.unwrap().unwrap();
            assert!(claim.duplicates.is_empty());
            assert_eq!(claim.owned.len(), 3);
            index.confirm(claim.owned, |_| true).await.unwrap();
            let again = index.claim(&ids(4), Duration::from_secs(1)).await.unwrap().unwrap();
            assert_eq!(again.duplicates, vec![0, 1, 2]);
            assert_eq!(again.owned.len(), 1);
            // A second process on the same file is refused, naming the setting.
            assert!(matches!(Index::open(&path, Duration::from_secs(1)), Err(DedupError::Open { .. })));
            index.close();
        }
        // (the writer thread holds the database until closed)
        let index = Index::open(&path, Duration::from_secs(3600)).unwrap();
        assert_eq!(index.len().unwrap(), 3);
        let claim = index.claim(&ids(3), Duration::from_secs(1)).await.unwrap().unwrap();
        assert_eq!(claim.duplicates, vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn a_released_claim_can_be_published_again_and_an_id_twice_in_a_request_once() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("d.redb"), Duration::from_secs(3600)).unwrap();
        let claim = index.claim(&ids(2), Duration::from_secs(1)).await.unwrap().unwrap();
        drop(claim); // Kafka failed: nothing confirmed.
        let twice = [Uuid::from_u128(1), Uuid::from_u128(1), Uuid::from_u128(2)];
        let claim = index.claim(&twice, Duration::from_secs(1)).await.unwrap().unwrap();
        assert_eq!(claim.duplicates, vec![1]);
        assert_eq!(claim.owned.len(), 2);
    }

    #[tokio::test]
    async fn only_acknowledged_ids_are_recorded_and_requests_sharing_ids_do_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("d.redb"), Duration::from_secs(3600)).unwrap();
        let claim = index.claim(&ids(3), Duration::from_secs(1)).await.unwrap().unwrap();
        // Kafka acknowledged 1 and 3, not 2: the retry publishes 2 only.
        index.confirm(claim.owned, |id| id != 2).await.unwrap();
        let retry = index.claim(&ids(3), Duration::from_secs(1)).await.unwrap().unwrap();
        assert_eq!(retry.duplicates, vec![0, 2]);
        assert_eq!(retry.owned.len(), 1);
        drop(retry);
        // A holds 10; B wants 11 and 10, C wants 10 and 11: whoever waits holds nothing.
        let a = index.claim(&[Uuid::from_u128(10)], Duration::from_secs(1)).await.unwrap().unwrap();
        let (i, j) = (index.clone(), index.clone());
        let mut b =
            tokio::spawn(
                async move { i.claim(&[Uuid::from_u128(11), Uuid::from_u128(10)], Duration::from_secs(10)).await },
            );
        let mut c =
            tokio::spawn(
                async move { j.claim(&[Uuid::from_u128(10), Uuid::from_u128(11)], Duration::from_secs(10)).await },
            );
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(a); // released: one of B and C gets both, the other waits holding nothing
        let (first, other) = tokio::select! { r = &mut b => (r, c), r = &mut c => (r, b) };
        assert_eq!(first.unwrap().unwrap().unwrap().owned.len(), 2);
        let second = other.await.unwrap().unwrap().unwrap();
        assert_eq!(second.owned.len(), 2);
    }

    #[tokio::test]
    async fn a_request_waits_for_the_one_publishing_the_same_id() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("d.redb"), Duration::from_secs(3600)).unwrap();
        let first = index.claim(&ids(2), Duration::from_secs(1)).await.unwrap().unwrap();
        // While the first holds them, a second gives up after its wait.
        assert!(index.claim(&ids(2), Duration::from_millis(50)).await.unwrap().is_none());
        let i = index.clone();
        let second = tokio::spawn(async move { i.claim(&ids(3), Duration::from_secs(10)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        index.confirm(first.owned, |_| true).await.unwrap();
        let second = second.await.unwrap().unwrap().unwrap();
        assert_eq!(second.duplicates, vec![0, 1]);
        assert_eq!(second.owned.len(), 1);
    }

    #[test]
    fn expired_ids_are_purged_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("d.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(IDS).unwrap();
        txn.open_table(EXPIRY).unwrap();
        txn.commit().unwrap();
        record(&db, [1u128, 2].into_iter(), 100).unwrap();
        record(&db, [3u128].into_iter(), 200).unwrap();
        // Re-recorded later: its old expiry entry goes.
        record(&db, [2u128].into_iter(), 300).unwrap();
        assert_eq!(purge(&db, 250).unwrap(), 2);
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(IDS).unwrap();
        assert!(t.get(1u128).unwrap().is_none() && t.get(3u128).unwrap().is_none());
        assert_eq!(t.get(2u128).unwrap().unwrap().value(), 300);
        assert_eq!(txn.open_table(EXPIRY).unwrap().len().unwrap(), 1);
    }
}
