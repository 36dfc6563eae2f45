//! The two steps every read-side table operation starts with: open a table that may not exist
//! yet, and stream one of its data files as Arrow batches through the table's object store.

use super::{Location, SinkError};
use crate::pix::columns::{Encodings, encodings};
use deltalake::arrow::array::RecordBatch;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::ArrowReaderOptions;
use deltalake::parquet::arrow::async_reader::{
    AsyncFileReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder,
};
use deltalake::parquet::basic::{Compression, Encoding};
use deltalake::parquet::errors::ParquetError;
use deltalake::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::{DeltaTable, DeltaTableError, Path};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryFutureExt};

/// The table at `at` at its latest version; `None` when there is no table there yet.
///
/// Whether there is one is asked with a listing of `_delta_log/` first: loading a location that
/// holds no table makes delta-kernel log an ERROR line of its own, which a normal first run
/// (tables created on first use) must not print.
pub async fn open_existing(name: &str, at: &Location) -> Result<Option<DeltaTable>, SinkError> {
    let mut table = unloaded(name, at)?;
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

/// The table at `at`, not loaded (no storage access yet).
pub(super) fn unloaded(name: &str, at: &Location) -> Result<DeltaTable, SinkError> {
    at.builder().and_then(|b| b.build()).map_err(SinkError::delta(name, "prepare the location of"))
}

/// How pixlake's data files are encoded: Snappy pages, statistics per column chunk (what Delta's
/// file statistics and readers' row-group pruning use; page-level ones cost CPU on every value
/// for no reader of these tables), and per column what [`Encodings`] says. Ingest writes with it
/// ([`super::DeltaTableWriter::with_encodings`]), and so does every rewrite
/// ([`writer_properties`]), so compaction keeps the layout.
///
/// Dictionary encoding pays off on columns with few distinct values (statuses, ISPBs, types)
/// and is wasted on unique ones (ids, offsets, timestamps, names): there the writer hashes
/// every value into a dictionary that overflows and is then dropped for plain encoding — in a
/// profile of `ingest` that hashing was a tenth of the CPU time. Delta encoding of the 64-bit
/// columns and no compression of random ids (Snappy was 8–9 % of ingest's CPU time) took 3 %
/// off the CPU time and 5 % off the bytes written (three alternating runs of each build over the
/// same 1.5 M events). Readers need `DELTA_BINARY_PACKED`: Spark's vectorized reader has it
/// since 3.3 (`scripts/spark-check.sh` reads with 3.5), Trino, DuckDB, pyarrow and delta-rs too.
///
/// Statistics stay on for every column, text included, although the min/max of the text columns
/// are about a seventh of the encoder's time (`cargo bench --bench decode`, its Parquet stage:
/// 15–18 % faster without them): they become the Delta file statistics (`nullCount`,
/// `minValues`, `maxValues`) that Spark skips files with.
pub fn layout(encodings: &Encodings) -> WriterPropertiesBuilder {
    let mut b = WriterProperties::builder()
        .set_created_by(concat!("pixlake ", env!("CARGO_PKG_VERSION")).to_owned())
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_dictionary_enabled(false);
    for column in &encodings.dictionary {
        b = b.set_column_dictionary_enabled(column_path(column), true);
    }
    for column in &encodings.delta {
        b = b.set_column_encoding(column_path(column), Encoding::DELTA_BINARY_PACKED);
    }
    for column in &encodings.uncompressed {
        b = b.set_column_compression(column_path(column), Compression::UNCOMPRESSED);
    }
    b
}

/// The Parquet path of a column named as in [`Encodings`]: a dotted name is a nested column's
/// (`quality_flags.list.element`), one part per level — `ColumnPath::from` would make it one
/// part, which no column has.
fn column_path(column: &str) -> ColumnPath {
    ColumnPath::new(column.split('.').map(str::to_owned).collect())
}

/// The Parquet settings of every file pixlake rewrites (compaction, rewinds, removals) of a
/// table of `schema`: the [`layout`] ingest writes, and row groups closed at
/// [`ROW_GROUP_BYTES`] — the writer holds the open row group in memory, and by rows alone (a
/// million by default) a group of wide quarantine rows would hold gigabytes.
pub fn writer_properties(schema: &deltalake::arrow::datatypes::Schema) -> WriterProperties {
    layout(&encodings(schema)).set_max_row_group_bytes(Some(ROW_GROUP_BYTES)).build()
}

/// Encoded bytes at which a rewritten file's row group is closed.
pub const ROW_GROUP_BYTES: usize = 16 << 20;

/// Size at which a rewrite closes a data file and starts the next (delta-rs streams each file's
/// parts as it writes; the size changes how many files, not the memory).
pub const REWRITE_FILE_BYTES: u64 = 64 << 20;

/// About how many bytes (uncompressed) one batch of a data file holds: batches of wide rows
/// (`pix_quarantine`'s raw values reach megabytes) get fewer rows.
pub const BATCH_BYTES: usize = 8 << 20;
const MIN_BATCH_ROWS: usize = 1;

/// The rows of one data file, streamed: only the columns asked for are fetched (ranged reads,
/// so a projection that leaves out `raw_value` never downloads it) and at most `batch_rows` rows
/// — fewer when they are wide, about [`BATCH_BYTES`] — are decoded at a time: memory is bounded
/// by one row group's column chunks (fetched before decoding) and the batch, not by the file.
pub(super) struct FileRows {
    name: String,
    stream: ParquetRecordBatchStream<StoreReader>,
}

/// A data file in an object store, read by byte ranges (the footer first, then the column
/// chunks a projection asks for). Its size comes from the Delta log, which saves a request.
struct StoreReader {
    store: ObjectStoreRef,
    path: Path,
    size: u64,
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: std::ops::Range<u64>) -> BoxFuture<'_, Result<bytes::Bytes, ParquetError>> {
        self.store.get_range(&self.path, range).map_err(|e| ParquetError::External(Box::new(e))).boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, Result<Vec<bytes::Bytes>, ParquetError>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(|e| ParquetError::External(Box::new(e))) }
            .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<std::sync::Arc<ParquetMetaData>, ParquetError>> {
        async move {
            let size = self.size;
            let metadata =
                ParquetMetaDataReader::new().with_arrow_reader_options(options).load_and_finish(self, size).await?;
            Ok(std::sync::Arc::new(metadata))
        }
        .boxed()
    }
}

impl FileRows {
    /// Opens the data file at `path` (`size` bytes, from the log) of table `name` in `store`;
    /// `columns` `None` reads them all.
    pub(super) async fn open(
        name: &str,
        store: &ObjectStoreRef,
        path: &Path,
        size: u64,
        columns: Option<&[&str]>,
        batch_rows: usize,
    ) -> Result<Self, SinkError> {
        let err = SinkError::delta(name, "read a data file of");
        let reader = StoreReader { store: store.clone(), path: path.clone(), size };
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| err(DeltaTableError::from(e)))?;
        let wanted = |column: &str| columns.is_none_or(|c| c.contains(&column));
        // Rows of the columns read, on average (uncompressed), from the file's own metadata.
        let (mut bytes, mut rows) = (0i64, 0i64);
        for group in builder.metadata().row_groups() {
            rows += group.num_rows();
            bytes += group
                .columns()
                .iter()
                .filter(|c| wanted(c.column_path().string().as_str()))
                .map(|c| c.uncompressed_size())
                .sum::<i64>();
        }
        let per_row = if rows > 0 { (bytes / rows).max(1) as usize } else { 1 };
        let batch_rows = (BATCH_BYTES / per_row).clamp(MIN_BATCH_ROWS, batch_rows.max(MIN_BATCH_ROWS));
        let builder = match columns {
            Some(columns) => {
                let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
                builder.with_projection(mask)
            }
            None => builder,
        };
        let stream = builder.with_batch_size(batch_rows).build().map_err(|e| err(DeltaTableError::from(e)))?;
        Ok(FileRows { name: name.to_owned(), stream })
    }

    /// The next batch; `None` at the end of the file.
    pub(super) async fn next(&mut self) -> Result<Option<RecordBatch>, SinkError> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(e)) => Err(SinkError::delta(&self.name, "read a data file of")(DeltaTableError::from(e))),
        }
    }
}

/// Whether the storage under `root` (the warehouse) answers a listing: the readiness check of
/// the metrics listener. A local root that does not exist yet is created, as the first table
/// commit would.
pub async fn reachable(warehouse: &crate::config::WarehouseConfig) -> Result<(), SinkError> {
    let root = &warehouse.root;
    let err = |source| SinkError::Warehouse { root: root.clone(), source: Box::new(source) };
    let at = Location::warehouse_root(warehouse)?;
    let table = at.builder().and_then(|b| b.build()).map_err(err)?;
    let store = table.log_store().object_store(None);
    store.list_with_delimiter(None).await.map_err(|e| err(DeltaTableError::from(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pix::{Category, category_schema, quarantine_schema};

    /// Rewrites (compaction, rewinds) lay files out as ingest does, nested columns included.
    #[test]
    fn rewrites_keep_the_layout_ingest_writes() {
        let path = column_path;
        let props = writer_properties(&category_schema(Category::Payment));
        assert_eq!(props.encoding(&path("kafka_offset")), Some(Encoding::DELTA_BINARY_PACKED));
        assert_eq!(props.encoding(&path("event_time")), Some(Encoding::DELTA_BINARY_PACKED));
        assert_eq!(props.compression(&path("event_id")), Compression::UNCOMPRESSED);
        assert_eq!(props.compression(&path("payer_name")), Compression::SNAPPY);
        assert!(props.dictionary_enabled(&path("quality_flags.list.element")));
        assert!(props.dictionary_enabled(&path("status")) && !props.dictionary_enabled(&path("payer_name")));
        assert_eq!(props.max_row_group_bytes(), Some(ROW_GROUP_BYTES));
        let props = writer_properties(&quarantine_schema());
        assert!(props.dictionary_enabled(&path("error_rule")));
        assert_eq!(props.encoding(&path("ingest_time")), Some(Encoding::DELTA_BINARY_PACKED));
    }
}
