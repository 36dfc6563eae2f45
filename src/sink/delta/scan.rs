//! Reading back which Kafka records a table holds: the (topic, partition, offset) of every row
//! in the version loaded (its offsets come from `read_offsets` over the same table value, so the
//! two agree). Reads only the three coordinate columns, through the table's own object store
//! (local disk or S3 alike).

use std::collections::HashMap;

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{Int32Type, Int64Type};
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::{DeltaTable, DeltaTableError, Path};
use url::Url;

use super::SinkError;

/// The source coordinates found in one table version.
#[derive(Debug, Default, Clone)]
pub struct TableRows {
    /// The version read (`None`: no table yet).
    pub version: Option<u64>,
    /// Offsets per (topic, partition), in file order (unsorted, duplicates kept).
    pub offsets: HashMap<(String, i32), Vec<i64>>,
}

impl TableRows {
    /// The offsets of `topic`/`partition`'s rows (empty when it has none).
    pub fn of(&self, topic: &str, partition: i32) -> &[i64] {
        self.offsets.get(&(topic.to_owned(), partition)).map_or(&[], Vec::as_slice)
    }
}

/// Every row's Kafka coordinates in `table` (named `name`) as loaded; `None`: no table yet.
pub async fn scan(name: &str, table: Option<&DeltaTable>) -> Result<TableRows, SinkError> {
    let err = SinkError::delta(name, "scan");
    let Some(table) = table else { return Ok(TableRows::default()) };
    let snapshot = table.snapshot().map_err(err)?;
    let store = table.object_store();
    let mut offsets: HashMap<(String, i32), Vec<i64>> = HashMap::new();
    let paths: Vec<String> = snapshot.log_data().iter().map(|f| f.path().into_owned()).collect();
    for path in paths {
        let parquet = |e: deltalake::parquet::errors::ParquetError| err(DeltaTableError::from(e));
        let builder = super::files::parquet(name, &store, &Path::from(path.as_str())).await?;
        let mask =
            ProjectionMask::columns(builder.parquet_schema(), ["kafka_topic", "kafka_partition", "kafka_offset"]);
        for batch in builder.with_projection(mask).build().map_err(parquet)? {
            let b = batch.map_err(|e| err(DeltaTableError::from(e)))?;
            let (Some(t), Some(p), Some(o)) = (
                b.column_by_name("kafka_topic"),
                b.column_by_name("kafka_partition"),
                b.column_by_name("kafka_offset"),
            ) else {
                return Err(err(DeltaTableError::Generic(format!("{path}: no kafka_topic/partition/offset columns"))));
            };
            let (t, p, o) = (t.as_string::<i32>(), p.as_primitive::<Int32Type>(), o.as_primitive::<Int64Type>());
            for i in 0..b.num_rows() {
                if t.is_valid(i) {
                    offsets.entry((t.value(i).to_owned(), p.value(i))).or_default().push(o.value(i));
                }
            }
        }
    }
    Ok(TableRows { version: table.version(), offsets })
}

/// Reads `columns` of every row of `url`'s latest version (no table: no batches), through the
/// table's object store. Meant for small tables such as `pix_quarantine`.
pub async fn read_rows(name: &str, url: Url, columns: &[&str]) -> Result<Vec<RecordBatch>, SinkError> {
    let err = SinkError::delta(name, "read");
    let Some(table) = super::files::open_existing(name, url).await? else { return Ok(Vec::new()) };
    let snapshot = table.snapshot().map_err(err)?;
    let store = table.object_store();
    let mut out = Vec::new();
    let paths: Vec<String> = snapshot.log_data().iter().map(|f| f.path().into_owned()).collect();
    for path in paths {
        let parquet = |e: deltalake::parquet::errors::ParquetError| err(DeltaTableError::from(e));
        let builder = super::files::parquet(name, &store, &Path::from(path.as_str())).await?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        for batch in builder.with_projection(mask).build().map_err(parquet)? {
            let b = batch.map_err(|e| err(DeltaTableError::from(e)))?;
            // Columns in the order asked for.
            let cols: Option<Vec<_>> = columns.iter().map(|c| b.column_by_name(c).cloned()).collect();
            let fields: Vec<_> = columns.iter().filter_map(|c| b.schema().field_with_name(c).ok().cloned()).collect();
            if let Some(cols) = cols {
                let schema = std::sync::Arc::new(deltalake::arrow::datatypes::Schema::new(fields));
                out.push(RecordBatch::try_new(schema, cols).map_err(|e| err(DeltaTableError::from(e)))?);
            }
        }
    }
    Ok(out)
}
