//! The two steps every read-side table operation starts with: open a table that may not exist
//! yet, and open one of its data files for Arrow reading through the table's object store.

use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::file::reader::ChunkReader;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, Path};
use url::Url;

use super::SinkError;

/// The table at `url` at its latest version; `None` when there is no table there yet.
///
/// Whether there is one is asked with a listing of `_delta_log/` first: loading a location that
/// holds no table makes delta-kernel log an ERROR line of its own, which a normal first run
/// (tables created on first use) must not print.
pub async fn open_existing(name: &str, url: Url) -> Result<Option<DeltaTable>, SinkError> {
    let mut table = unloaded(name, url)?;
    let is_table = table.log_store().is_delta_table_location().await.map_err(SinkError::delta(name, "look for"))?;
    if !is_table {
        return Ok(None);
    }
    match table.load().await {
        Ok(()) => Ok(Some(table)),
        Err(e) if super::offsets::is_missing(&e) => Ok(None),
        Err(e) => Err(SinkError::delta(name, "open")(e)),
    }
}

/// The table at `url`, not loaded (no storage access yet).
pub(super) fn unloaded(name: &str, url: Url) -> Result<DeltaTable, SinkError> {
    DeltaTableBuilder::from_url(url).and_then(|b| b.build()).map_err(SinkError::delta(name, "prepare the location of"))
}

/// A reader builder over the data file at `path` (fetched whole from `store`).
pub(super) async fn parquet(
    name: &str,
    store: &ObjectStoreRef,
    path: &Path,
) -> Result<ParquetRecordBatchReaderBuilder<impl ChunkReader + 'static>, SinkError> {
    let err = SinkError::delta(name, "read a data file of");
    let bytes = store
        .get(path)
        .await
        .map_err(|e| err(DeltaTableError::from(e)))?
        .bytes()
        .await
        .map_err(|e| err(DeltaTableError::from(e)))?;
    ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| err(DeltaTableError::from(e)))
}

/// Whether the storage under `root` (the warehouse) answers a listing: the readiness check of
/// the metrics listener. A local root that does not exist yet is created, as the first table
/// commit would.
pub async fn reachable(root: &str) -> Result<(), SinkError> {
    let err = |source| SinkError::Warehouse { root: root.to_owned(), source: Box::new(source) };
    let url = deltalake::ensure_table_uri(root).map_err(err)?;
    let table = DeltaTableBuilder::from_url(url).and_then(|b| b.build()).map_err(err)?;
    let store = table.log_store().object_store(None);
    store.list_with_delimiter(None).await.map_err(|e| err(DeltaTableError::from(e)))?;
    Ok(())
}
