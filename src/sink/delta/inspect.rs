//! Read-only views of a table for operator commands: version, last commit, rows and files of
//! one loaded version (its offsets come from `read_offsets` over the same table value).

use deltalake::DeltaTable;
use futures::{StreamExt, TryStreamExt};

use super::SinkError;

/// One table as of the version loaded.
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
}

/// Describes `table` (named `name`) at the version loaded; `Ok(None)` when it has no version.
pub async fn inspect(name: &str, table: &DeltaTable) -> Result<Option<TableInfo>, SinkError> {
    let err = SinkError::delta(name, "describe");
    let Some(version) = table.version() else { return Ok(None) };
    let snapshot = table.snapshot().map_err(err)?;
    let (mut rows, mut files) = (0u64, 0u64);
    for file in snapshot.log_data().iter() {
        files += 1;
        rows += file.num_records().unwrap_or(0) as u64;
    }
    let last_commit_ms = match table.history(Some(1)).next().await {
        Some(Ok(info)) => info.timestamp,
        _ => None,
    };
    Ok(Some(TableInfo { version, last_commit_ms, rows, files }))
}

/// Offset ranges `[from, to)` per (topic, partition) that `offsets reset` skipped on purpose,
/// read from the `pixlake.reset` metadata of the commits still in the table's log.
pub async fn chosen_gaps(name: &str, table: &DeltaTable) -> Result<Vec<(String, i32, i64, i64)>, SinkError> {
    let err = SinkError::delta(name, "read the history of");
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
