//! A commit's data files: the rows encoded as Parquet under the table's partition directories,
//! with the `add` actions (statistics included) that the commit will carry.
//!
//! Written with delta-rs's own file writer, as its `RecordBatchWriter` does, minus one step:
//! that writer splits every batch by partition value, which sorts the rows by key and copies
//! every column with `take` even when all rows share one value — the usual case here (a batch
//! of a few seconds holds one `event_date`; `ingest_date` of `pix_quarantine` is the day the
//! batch was read). A batch whose partition column holds a single value goes to its partition
//! as it is; any other batch, or one whose schema is not the table's exactly, takes delta-rs's
//! general path. Both paths produce the same files: same writer, properties and statistics.

use std::sync::Arc;

use delta_kernel::engine::arrow_conversion::TryIntoArrow;
use delta_kernel::expressions::Scalar;
use delta_kernel::table_properties::DataSkippingNumIndexedCols;
use deltalake::arrow::array::{Array, Date32Array, RecordBatch};
use deltalake::arrow::datatypes::Schema as ArrowSchema;
use deltalake::datafile::writer::{DeltaWriter as FileWriter, WriterConfig};
use deltalake::kernel::Add;
use deltalake::kernel::scalars::ScalarExt;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::table::config::DEFAULT_NUM_INDEX_COLS;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{BlindDeltaTable, DeltaTableError};
use indexmap::IndexMap;

/// Writes `batches` as data files of `table` and returns their `add` actions (nothing is
/// committed).
pub async fn write(
    table: &BlindDeltaTable,
    properties: &WriterProperties,
    batches: Vec<RecordBatch>,
) -> Result<Vec<Add>, DeltaTableError> {
    let metadata = table.metadata();
    let schema: ArrowSchema = (&metadata.parse_schema()?).try_into_arrow()?;
    let schema = Arc::new(schema);
    let partition_by = metadata.partition_columns().to_vec();
    if batches.iter().any(|b| b.schema() != schema) {
        // Not the table's schema to the letter (field metadata, nullability): delta-rs
        // conforms it first.
        let mut writer = RecordBatchWriter::for_blind_appends(table)?.with_writer_properties(properties.clone());
        for batch in batches {
            writer.write(batch).await?;
        }
        return writer.flush().await;
    }
    // The statistics settings: the count as the kernel parses it (`-1`, every column, included;
    // `RecordBatchWriter` reads that as the default), the stats columns split as it does.
    let indexed = table
        .table_properties()
        .data_skipping_num_indexed_cols
        .unwrap_or(DataSkippingNumIndexedCols::NumColumns(DEFAULT_NUM_INDEX_COLS));
    let stats_columns = metadata
        .configuration()
        .get("delta.dataSkippingStatsColumns")
        .map(|v| v.split(',').map(str::to_owned).collect());
    let config =
        WriterConfig::new(schema, partition_by.clone(), Some(properties.clone()), None, None, indexed, stats_columns);
    let mut writer = FileWriter::new(table.object_store(), config);
    for batch in batches {
        let written = match single_partition(&batch, &partition_by) {
            Some(values) => writer.write_partition(batch, &values).await,
            None => writer.write(&batch).await,
        };
        if let Err(e) = written {
            // Uploads under way (multipart on an object store) are cancelled, not left behind.
            if let Err(abort) = writer.abort().await {
                tracing::debug!(error = %abort, "could not abort the data files' uploads after a failed write");
            }
            return Err(e);
        }
    }
    writer.close().await
}

/// The partition values of `batch` when every row has the same ones, for date partition
/// columns without nulls (what pixlake's tables have); `None` otherwise (delta-rs splits it).
fn single_partition(batch: &RecordBatch, partition_by: &[String]) -> Option<IndexMap<String, Scalar>> {
    if batch.num_rows() == 0 {
        return None;
    }
    let mut values = IndexMap::with_capacity(partition_by.len());
    for name in partition_by {
        let column = batch.column_by_name(name)?;
        let dates = column.as_any().downcast_ref::<Date32Array>()?;
        if dates.null_count() > 0 {
            return None;
        }
        let raw = dates.values();
        let first = raw[0];
        if raw.iter().any(|&d| d != first) {
            return None;
        }
        values.insert(name.clone(), Scalar::from_array(column.as_ref(), 0)?);
    }
    Some(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Int64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field};

    fn batch(dates: &[Option<i32>]) -> RecordBatch {
        let schema = Arc::new(ArrowSchema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("note", DataType::Utf8, true),
            Field::new("event_date", DataType::Date32, true),
        ]));
        let n = dates.len() as i64;
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("n{i}")))),
                Arc::new(Date32Array::from(dates.to_vec())),
            ],
        )
        .unwrap()
    }

    /// The fast path needs the batch's schema to equal the table's to the letter: pixlake's
    /// schemas come back unchanged from the Delta schema they create the tables with.
    #[test]
    fn pixlake_schemas_survive_the_round_trip_through_delta() {
        use delta_kernel::engine::arrow_conversion::TryIntoKernel;
        use deltalake::kernel::StructType;
        let schemas = crate::pix::Category::ALL
            .map(crate::pix::category_schema)
            .into_iter()
            .chain([crate::pix::quarantine_schema()]);
        for schema in schemas {
            let delta: StructType = schema.as_ref().try_into_kernel().unwrap();
            let back: ArrowSchema = (&delta).try_into_arrow().unwrap();
            assert_eq!(Arc::new(back), schema);
        }
        // And the batches carry those schemas.
        for c in crate::pix::Category::ALL {
            let rows = crate::pix::CategoryBatchBuilder::new(c, 0).finish().unwrap();
            assert_eq!(rows.schema(), crate::pix::category_schema(c));
        }
        let rows = crate::pix::QuarantineBatchBuilder::new().finish().unwrap();
        assert_eq!(rows.schema(), crate::pix::quarantine_schema());
    }

    #[test]
    fn one_date_is_one_partition() {
        let by = ["event_date".to_owned()];
        let values = single_partition(&batch(&[Some(20_000); 5]), &by).unwrap();
        assert_eq!(values.len(), 1);
        assert_eq!(values["event_date"], Scalar::Date(20_000));
    }

    #[test]
    fn mixed_dates_nulls_or_no_rows_take_the_general_path() {
        let by = ["event_date".to_owned()];
        assert!(single_partition(&batch(&[Some(20_000), Some(20_001)]), &by).is_none());
        assert!(single_partition(&batch(&[Some(20_000), None]), &by).is_none());
        assert!(single_partition(&batch(&[]), &by).is_none());
        // Not a date column, or not there: the general path too.
        assert!(single_partition(&batch(&[Some(1)]), &["note".to_owned()]).is_none());
        assert!(single_partition(&batch(&[Some(1)]), &["missing".to_owned()]).is_none());
    }
}
