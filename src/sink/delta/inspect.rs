//! Read-only views of a table for operator commands: version, last commit, rows, files and the
//! committed offsets of given app ids, all from one snapshot.

use futures::{StreamExt, TryStreamExt};
use url::Url;

use super::SinkError;

/// One table as of its latest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Latest version.
    pub version: u64,
    /// When the latest commit was made (epoch milliseconds), if recorded.
    pub last_commit_ms: Option<i64>,
    /// Rows in the current files (from the files' statistics).
    pub rows: u64,
    /// Data files in the current version.
    pub files: u64,
    /// Committed offset (txn version) per app id asked for, in order.
    pub offsets: Vec<Option<i64>>,
}

/// Reads `url`'s latest version; `Ok(None)` when there is no table there yet.
pub async fn inspect(name: &str, url: Url, app_ids: &[String]) -> Result<Option<TableInfo>, SinkError> {
    let err = |source| SinkError::Delta { table: name.to_owned(), source };
    let Some(table) = super::files::open_existing(name, url).await? else { return Ok(None) };
    let Some(version) = table.version() else { return Ok(None) };
    let snapshot = table.snapshot().map_err(err)?;
    let (mut rows, mut files) = (0u64, 0u64);
    for file in snapshot.log_data().iter() {
        files += 1;
        rows += file.num_records().unwrap_or(0) as u64;
    }
    let mut offsets = Vec::with_capacity(app_ids.len());
    for id in app_ids {
        offsets.push(super::offset(snapshot.transaction_version(table.log_store().as_ref(), id).await.map_err(err)?));
    }
    let last_commit_ms = match table.history(Some(1)).next().await {
        Some(Ok(info)) => info.timestamp,
        _ => None,
    };
    Ok(Some(TableInfo { version, last_commit_ms, rows, files, offsets }))
}

/// Offset ranges `[from, to)` per (topic, partition) that `offsets reset` skipped on purpose,
/// read from the `pixlake.reset` metadata of the commits still in the table's log.
pub async fn chosen_gaps(name: &str, url: Url) -> Result<Vec<(String, i32, i64, i64)>, SinkError> {
    let err = |source| SinkError::Delta { table: name.to_owned(), source };
    let Some(table) = super::files::open_existing(name, url).await? else { return Ok(Vec::new()) };
    let infos: Vec<_> = table.history(None).try_collect().await.map_err(err)?;
    let mut gaps = Vec::new();
    for info in infos {
        let Some(serde_json::Value::Array(moves)) = info.info.get("pixlake.reset") else { continue };
        for m in moves {
            let (Some(t), Some(p), Some(from), Some(to)) =
                (m["topic"].as_str(), m["partition"].as_i64(), m["from"].as_i64(), m["to"].as_i64())
            else {
                continue;
            };
            if to > from {
                gaps.push((t.to_owned(), p as i32, from, to));
            }
        }
    }
    Ok(gaps)
}
