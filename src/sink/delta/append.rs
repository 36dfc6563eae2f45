//! The log side of an append: putting one commit file at the next free version, and judging
//! the commits other writers put in between — without holding the table's file list.
//!
//! # Why not delta-rs's `CommitBuilder`
//!
//! delta-rs builds every commit on an *eager* snapshot: the whole list of the table's live files,
//! re-materialised after each commit (and once more by `update_incremental`). Its cost grows with
//! the table: measured with `cargo bench --bench commit`, a commit took 40 ms at 500 files and
//! 92 ms at 2 000, and the process grew from 400 to 900 MiB. A writer that only appends needs
//! none of that list: an append reads no file, so no other writer's adds or removes can conflict
//! with it. What it must still see is exactly what the Delta protocol's conflict rules give an
//! append (and what delta-rs's checker did for ours):
//!
//! * a concurrent commit with a `txn` for one of our app ids: another writer committed offsets
//!   for one of our partitions — **we are fenced** (a zombie after a rebalance);
//! * a concurrent `metaData` or `protocol` action: the table changed under us (schema,
//!   partitioning, features) — a permanent error, nothing to retry;
//! * anything else (other pipelines' appends to `pix_quarantine`, compaction's adds and
//!   removes, checkpoints' commit infos): harmless — try the next version.
//!
//! The commit file is put with "create only if absent" (a conditional put on S3, a hard link on a
//! local disk), so of two writers aiming at one version exactly one lands; the loser judges the
//! winner and moves on or stops. Every version between the writer's base and the one it lands at
//! is judged, so nothing that would fence it is skipped — the same guarantee the fence argument
//! in [`super`] relies on.

use std::collections::HashSet;

use deltalake::kernel::transaction::{CommitConflictError, TransactionError};
use deltalake::logstore::{CommitOrBytes, LogStore};
use deltalake::{DeltaTableError, Path};

/// Where an append ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Appended {
    /// The commit file is the table's version `n`.
    At(u64),
    /// A commit of another writer carries a `txn` for one of our app ids.
    Fenced,
}

/// What another writer's commit means for an append declaring `ours`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Winner {
    Harmless,
    /// It carries a `txn` for one of our app ids.
    Fences,
    /// It changes the table's metadata (schema, partitioning, properties).
    MetadataChanged,
    /// It changes the table's protocol (features).
    ProtocolChanged,
}

/// Judges one commit file (newline-delimited JSON actions). A line that does not parse is an
/// error: a log pixlake cannot read is not one it may write past.
pub(super) fn judge(commit: &[u8], ours: &HashSet<String>) -> Result<Winner, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Line {
        txn: Option<Txn>,
        #[serde(rename = "metaData")]
        metadata: Option<serde::de::IgnoredAny>,
        protocol: Option<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Txn {
        app_id: String,
    }
    let mut winner = Winner::Harmless;
    for line in commit.split(|&b| b == b'\n').filter(|l| l.iter().any(|b| !b.is_ascii_whitespace())) {
        let line: Line = serde_json::from_slice(line)?;
        if line.txn.is_some_and(|t| ours.contains(&t.app_id)) {
            return Ok(Winner::Fences);
        }
        if line.protocol.is_some() {
            winner = Winner::ProtocolChanged;
        } else if line.metadata.is_some() && winner == Winner::Harmless {
            winner = Winner::MetadataChanged;
        }
    }
    Ok(winner)
}

/// The commit `bytes` in the form `log_store` commits: the bytes themselves for stores that put
/// conditionally (local disks, S3 with `If-None-Match`), else a temporary file it renames (what
/// delta-rs does for the stores that need it).
pub(super) async fn entry(log_store: &dyn LogStore, bytes: bytes::Bytes) -> Result<CommitOrBytes, DeltaTableError> {
    if ["DefaultLogStore", "LakeFSLogStore"].contains(&log_store.name().as_str()) {
        return Ok(CommitOrBytes::LogBytes(bytes));
    }
    use deltalake::logstore::object_store::ObjectStoreExt;
    let path = Path::from_iter(["_delta_log", &format!("_commit_{}.json.tmp", uuid::Uuid::new_v4())]);
    log_store.object_store(None).put(&path, bytes.into()).await?;
    Ok(CommitOrBytes::TmpCommit(path))
}

/// Puts `entry` at the first free version after `*base`, judging every version taken
/// meanwhile; `*base` moves past each one judged harmless (what a commit on top of them would do
/// anyway), so a writer that fell behind catches up once, not at every attempt. An entry not
/// committed (fenced, or an error) is aborted: a temporary file is removed.
pub(super) async fn append(
    log_store: &dyn LogStore,
    base: &mut u64,
    entry: CommitOrBytes,
    ours: &HashSet<String>,
) -> Result<Appended, DeltaTableError> {
    let operation = uuid::Uuid::new_v4();
    let result = step_over(log_store, base, &entry, ours, operation).await;
    if !matches!(result, Ok(Appended::At(_))) {
        // Best effort: a temporary commit file left behind is never read (vacuum removes it).
        let _ = log_store.abort_commit_entry(*base + 1, entry, operation).await;
    }
    result
}

async fn step_over(
    log_store: &dyn LogStore,
    base: &mut u64,
    entry: &CommitOrBytes,
    ours: &HashSet<String>,
    operation: uuid::Uuid,
) -> Result<Appended, DeltaTableError> {
    // Each turn either lands or moves the base past at least one version, so it ends unless
    // other writers commit forever faster than this one can list and put.
    loop {
        let version = *base + 1;
        match log_store.write_commit_entry(version, entry.clone(), operation).await {
            Ok(()) => return Ok(Appended::At(version)),
            Err(TransactionError::VersionAlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        // Taken: judge everything up to the latest version (one listing, one GET per version)
        // before the next put, so a busy table costs one failed put per turn, not per version.
        let latest = log_store.get_latest_version(version).await?.max(version);
        for v in version..=latest {
            let Some(winner) = log_store.read_commit_entry(v).await? else {
                return Err(DeltaTableError::Generic(format!(
                    "version {v} of the log is listed but cannot be read; retrying (a store that keeps failing \
                     this way needs checking)"
                )));
            };
            let conflict = match judge(&winner, ours) {
                Ok(Winner::Harmless) => {
                    *base = v;
                    continue;
                }
                Ok(Winner::Fences) => return Ok(Appended::Fenced),
                Ok(Winner::MetadataChanged) => CommitConflictError::MetadataChanged,
                Ok(Winner::ProtocolChanged) => {
                    CommitConflictError::ProtocolChanged(format!("version {v} changed the table's protocol"))
                }
                Err(e) => {
                    let line = format!("commit file of version {v}");
                    return Err(DeltaTableError::InvalidJsonLog { json_err: e, line, version: v });
                }
            };
            return Err(TransactionError::CommitConflict(conflict).into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> HashSet<String> {
        ["pixlake:payments:pix.payments:0".to_owned()].into()
    }

    #[test]
    fn a_txn_for_one_of_our_app_ids_fences() {
        let commit = br#"{"commitInfo":{"timestamp":1,"operation":"WRITE"}}
{"add":{"path":"a.parquet","size":1,"partitionValues":{},"modificationTime":1,"dataChange":true}}
{"txn":{"appId":"pixlake:payments:pix.payments:0","version":12}}
"#;
        assert_eq!(judge(commit, &ours()).unwrap(), Winner::Fences);
    }

    #[test]
    fn other_appends_and_compaction_are_harmless() {
        let commit = br#"{"commitInfo":{"timestamp":1,"operation":"OPTIMIZE"}}
{"remove":{"path":"a.parquet","dataChange":false,"deletionTimestamp":1}}
{"add":{"path":"b.parquet","size":1,"partitionValues":{},"modificationTime":1,"dataChange":false}}
{"txn":{"appId":"pixlake:receipts:pix.receipts:0","version":3}}
"#;
        assert_eq!(judge(commit, &ours()).unwrap(), Winner::Harmless);
        assert_eq!(judge(b"", &ours()).unwrap(), Winner::Harmless);
    }

    #[test]
    fn metadata_and_protocol_changes_are_conflicts() {
        let meta = br#"{"metaData":{"id":"x","format":{"provider":"parquet","options":{}},"schemaString":"{}","partitionColumns":[],"configuration":{}}}"#;
        assert_eq!(judge(meta, &ours()).unwrap(), Winner::MetadataChanged);
        let both = br#"{"metaData":{"id":"x"}}
{"protocol":{"minReaderVersion":3,"minWriterVersion":7}}"#;
        assert_eq!(judge(both, &ours()).unwrap(), Winner::ProtocolChanged);
    }

    #[test]
    fn a_log_line_that_does_not_parse_is_an_error() {
        assert!(judge(br#"{"txn":{"appId":"#, &ours()).is_err());
    }
}
