//! The ISO 20022 join: a pacs.002 reports on a pacs.008 / pacs.004 read earlier, and the event it
//! produces is built from that original. Originals are kept in an embedded store (redb) for
//! `ship_log.iso20022.join_window_seconds`; a status whose original has not been read yet (files
//! read out of order) waits in it too, and is joined when the original comes.
//!
//! **Consistency with the checkpoint.** Each batch works in one write transaction that is
//! committed only after Kafka acknowledged the batch, and before the checkpoint moves past it.
//! A crash before the commit leaves the store as it was at the checkpoint: the batch is read
//! again and does the same. A crash between the commit and the checkpoint re-reads a batch whose
//! changes are already stored: an original is stored again (same key, first time kept), a status
//! finds its original and produces the same event (same derived id: the at-least-once repeat
//! ship-log allows for the last batch), and a waiting status joined and removed in that batch
//! is not produced again — it was acknowledged before the commit.
//!
//! **Expiry** runs on the archive's clock: the latest message time read (`GrpHdr/CreDtTm`, kept
//! in the store; a time more than 5 minutes ahead of the wall clock is not believed). Every
//! batch, after its messages were read, removes originals read more than the window ago by that
//! clock (an entry's time is the clock when it was read, so files read out of order do not
//! expire each other's entries) and sends statuses that waited longer to the DLQ as
//! `UNMATCHED_STATUS_REPORT` (their message bytes were kept). SPI answers a pacs.008 within seconds, so the window only has to cover how
//! far apart in the archive two messages can be; a shipper stopped for longer than the window
//! (or a backlog read days later) forgets nothing, since the clock only moves as messages are
//! read. A waiting status is dead-lettered only once later messages move the clock past it. Cost: one entry of about 1 KB per
//! transaction read within the window (at 100 Pix/s and the default hour, ~360 000 entries, ~400 MB
//! on disk), one fsync per batch.
//!
//! Several shippers each keep their own store; a status and its original must be read by the
//! same shipper (point each at the whole archive of one gateway, not at a share of its files).

use std::path::{Path, PathBuf};
use std::time::Duration;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::iso20022::{Original, Status};

/// Transaction id → the [`Stored`] original.
const ORIGINALS: TableDefinition<&str, &[u8]> = TableDefinition::new("originals");
/// (original id, status) → a [`Waiting`] status.
const WAITING: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("waiting");
/// (stored at, 0 original / 1 waiting status, id, status) → (): what expires when.
const EXPIRY: TableDefinition<(u64, u8, &str, &str), ()> = TableDefinition::new("expiry");
/// `watermark` → the latest message time read (Unix seconds).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const WATERMARK: &str = "watermark";

/// At most this many entries expire per batch (the rest at the next ones).
const EXPIRE_BATCH: usize = 10_000;

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "cannot open the ISO 20022 join store {path}; check ship_log.iso20022.join_path (a file on a local disk, one \
         per shipper, not shared)"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("the ISO 20022 join store failed; the batch is not checkpointed and is read again at the next start")]
    Storage(#[from] redb::Error),
    #[error(
        "an entry of the ISO 20022 join store cannot be read; stop the shipper and delete the store \
         (ship_log.iso20022.join_path) to start it afresh — status reports of payments read before then will go to \
         the DLQ as UNMATCHED_STATUS_REPORT"
    )]
    Corrupt(#[from] serde_json::Error),
}

fn storage(e: impl Into<redb::Error>) -> JoinError {
    JoinError::Storage(e.into())
}

/// An original as stored.
#[derive(Serialize, Deserialize)]
struct Stored {
    at: u64,
    original: Original,
}

/// A status waiting for its original, with where it was read (for the DLQ if it never comes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub at: u64,
    pub status: Status,
    /// The pacs.002's bytes.
    pub raw: Vec<u8>,
    pub file: PathBuf,
    pub line: u64,
    pub offset: u64,
}

/// The store.
pub struct JoinStore {
    db: redb::Database,
    window: Duration,
}

/// One batch's changes, committed with [`Batch::commit`] once Kafka acknowledged the batch
/// (dropped: nothing happened).
pub struct Batch {
    txn: redb::WriteTransaction,
    /// The latest message time read so far (Unix seconds): the store's clock.
    watermark: u64,
    window: Duration,
}

impl JoinStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, window: Duration) -> Result<JoinStore, JoinError> {
        let open = |source: redb::Error| JoinError::Open { path: path.to_owned(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open(redb::StorageError::from(e).into()))?;
        }
        let db = redb::Database::create(path).map_err(|e| open(e.into()))?;
        let txn = db.begin_write().map_err(|e| open(e.into()))?;
        txn.open_table(ORIGINALS).map_err(|e| open(e.into()))?;
        txn.open_table(WAITING).map_err(|e| open(e.into()))?;
        txn.open_table(EXPIRY).map_err(|e| open(e.into()))?;
        txn.open_table(META).map_err(|e| open(e.into()))?;
        txn.commit().map_err(|e| open(e.into()))?;
        Ok(JoinStore { db, window })
    }

    /// Starts a batch.
    pub fn begin(&self) -> Result<Batch, JoinError> {
        let txn = self.db.begin_write().map_err(storage)?;
        let watermark =
            txn.open_table(META).map_err(storage)?.get(WATERMARK).map_err(storage)?.map_or(0, |v| v.value());
        Ok(Batch { txn, watermark, window: self.window })
    }
}

impl Batch {
    /// The store's clock: the latest message time read.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// A message of time `at` (Unix seconds) was read: the clock moves forward to it.
    pub fn observe(&mut self, at: u64) {
        self.watermark = self.watermark.max(at);
    }

    /// Keeps `original`, read in a message of time `at` (a second read keeps the first), and
    /// returns the statuses that were waiting for it, removed from the store.
    pub fn original(&mut self, original: &Original, at: u64) -> Result<Vec<Waiting>, JoinError> {
        let mut originals = self.txn.open_table(ORIGINALS).map_err(storage)?;
        let mut expiry = self.txn.open_table(EXPIRY).map_err(storage)?;
        let id = original.id.as_str();
        let known = originals.get(id).map_err(storage)?.is_some();
        if !known {
            let stored = serde_json::to_vec(&Stored { at, original: original.clone() })?;
            originals.insert(id, stored.as_slice()).map_err(storage)?;
            expiry.insert((at, 0u8, id, ""), ()).map_err(storage)?;
        }
        let mut waiting = self.txn.open_table(WAITING).map_err(storage)?;
        let found: Vec<(String, Waiting)> = waiting
            .range((id, "")..)
            .map_err(storage)?
            .map(|r| r.map_err(storage))
            .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.value().0 == id))
            .map(|r| {
                let (k, v) = r?;
                Ok((k.value().1.to_owned(), serde_json::from_slice(v.value())?))
            })
            .collect::<Result<_, JoinError>>()?;
        for (status, w) in &found {
            waiting.remove((id, status.as_str())).map_err(storage)?;
            expiry.remove((w.at, 1u8, id, status.as_str())).map_err(storage)?;
        }
        Ok(found.into_iter().map(|(_, w)| w).collect())
    }

    /// The original a status names, if it was read within the window.
    pub fn lookup(&self, id: &str) -> Result<Option<Original>, JoinError> {
        let originals = self.txn.open_table(ORIGINALS).map_err(storage)?;
        let found = originals.get(id).map_err(storage)?;
        found.map(|v| Ok(serde_json::from_slice::<Stored>(v.value())?.original)).transpose()
    }

    /// Keeps a status (read in a message of time `w.at`) whose original has not been read (yet).
    pub fn wait(&mut self, w: &Waiting) -> Result<(), JoinError> {
        let mut waiting = self.txn.open_table(WAITING).map_err(storage)?;
        let mut expiry = self.txn.open_table(EXPIRY).map_err(storage)?;
        let key = (w.status.original_id.as_str(), w.status.status.as_str());
        if waiting.get(key).map_err(storage)?.is_none() {
            waiting.insert(key, serde_json::to_vec(w)?.as_slice()).map_err(storage)?;
            expiry.insert((w.at, 1u8, key.0, key.1), ()).map_err(storage)?;
        }
        Ok(())
    }

    /// Removes what is older than the window by the store's clock (message time, not the wall
    /// clock: a shipper stopped for a day forgets nothing meanwhile): originals are forgotten,
    /// waiting statuses are returned (for the DLQ). Call after the batch's messages were read.
    pub fn expire(&mut self) -> Result<Vec<Waiting>, JoinError> {
        self.txn.open_table(META).map_err(storage)?.insert(WATERMARK, self.watermark).map_err(storage)?;
        let cutoff = self.watermark.saturating_sub(self.window.as_secs());
        let mut expiry = self.txn.open_table(EXPIRY).map_err(storage)?;
        let old: Vec<(u64, u8, String, String)> = expiry
            .range(..(cutoff, 0u8, "", ""))
            .map_err(storage)?
            .take(EXPIRE_BATCH)
            .map(|r| {
                r.map(|(k, _)| {
                    let (at, kind, id, status) = k.value();
                    (at, kind, id.to_owned(), status.to_owned())
                })
            })
            .collect::<Result<_, _>>()
            .map_err(storage)?;
        let mut originals = self.txn.open_table(ORIGINALS).map_err(storage)?;
        let mut waiting = self.txn.open_table(WAITING).map_err(storage)?;
        let mut unmatched = Vec::new();
        for (at, kind, id, status) in &old {
            expiry.remove((*at, *kind, id.as_str(), status.as_str())).map_err(storage)?;
            if *kind == 0 {
                originals.remove(id.as_str()).map_err(storage)?;
            } else if let Some(v) = waiting.remove((id.as_str(), status.as_str())).map_err(storage)? {
                unmatched.push(serde_json::from_slice(v.value())?);
            }
        }
        Ok(unmatched)
    }

    /// Makes the batch's changes durable (fsync).
    pub fn commit(self) -> Result<(), JoinError> {
        self.txn.commit().map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shiplog::iso20022::Role;

    fn original(id: &str) -> Original {
        Original { role: Role::Payment, id: id.into(), key: id.into(), event: serde_json::json!({"data": {}}) }
    }

    fn waiting(id: &str, status: &str, at: u64) -> Waiting {
        Waiting {
            at,
            status: Status { original_id: id.into(), status: status.into(), reason: None, time: "t".into() },
            raw: b"<Document/>".to_vec(),
            file: "spi.xml".into(),
            line: 7,
            offset: 70,
        }
    }

    #[test]
    fn statuses_wait_for_their_original_and_what_is_not_committed_did_not_happen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("join.redb");
        let store = JoinStore::open(&path, Duration::from_secs(600)).unwrap();
        let mut b = store.begin().unwrap();
        b.observe(1000);
        b.wait(&waiting("E1", "ACSC", 1000)).unwrap();
        b.wait(&waiting("E1", "ACSC", 1000)).unwrap();
        b.wait(&waiting("E10", "RJCT", 1000)).unwrap();
        assert!(b.expire().unwrap().is_empty());
        assert_eq!(b.lookup("E1").unwrap(), None);
        b.commit().unwrap();
        // A batch dropped without commit leaves nothing behind.
        let mut dropped = store.begin().unwrap();
        assert_eq!(dropped.original(&original("E1"), 1001).unwrap().len(), 1);
        drop(dropped);
        drop(store);
        let store = JoinStore::open(&path, Duration::from_secs(600)).unwrap();
        let mut b = store.begin().unwrap();
        assert_eq!(b.watermark(), 1000, "the clock was committed");
        let joined = b.original(&original("E1"), 1002).unwrap();
        assert_eq!(joined.len(), 1, "E10's status is not E1's");
        assert_eq!((joined[0].status.status.as_str(), joined[0].at), ("ACSC", 1000));
        assert_eq!(b.lookup("E1").unwrap(), Some(original("E1")));
        assert!(b.original(&original("E1"), 1002).unwrap().is_empty(), "joined once");
        b.commit().unwrap();
        // Any wall-clock time later, nothing expires until messages move the clock on.
        let mut b = store.begin().unwrap();
        assert!(b.expire().unwrap().is_empty());
        drop(b);
        // After the window: the waiting status comes back for the DLQ, the original is gone.
        let mut late = store.begin().unwrap();
        late.observe(1000 + 601);
        let unmatched = late.expire().unwrap();
        assert_eq!(unmatched.len(), 1);
        assert_eq!(unmatched[0].status.original_id, "E10");
        assert_eq!((unmatched[0].line, unmatched[0].offset), (7, 70));
        assert!(late.lookup("E1").unwrap().is_some(), "stored at 1002: not expired yet");
        late.commit().unwrap();
        let mut later = store.begin().unwrap();
        later.observe(999);
        assert_eq!(later.watermark(), 1601, "the clock never goes back");
        later.observe(1002 + 601);
        assert!(later.expire().unwrap().is_empty());
        assert_eq!(later.lookup("E1").unwrap(), None);
    }
}
