//! Memory for a table's next batch: the buffers of a batch already written, taken back once its
//! Parquet file is encoded, rather than fresh allocations for every batch.
//!
//! Why: `finish()` hands the builders' buffers to the arrays and leaves the builders empty, so
//! each batch used to start on fresh memory — about a tenth of a megabyte per column, which the
//! allocator had returned to the system when the previous batch was freed and the kernel then
//! faulted in again, page by page, as the appends stored into it (the benchmark's profile:
//! page faults and stores to fresh buffers are what is left of the Arrow half of the hot path,
//! README "Performance"). A written batch's arrays are held by nothing else, so their buffers
//! can be the next batch's builders as they are: same capacity (what the batch needed, so no
//! growth by doubling either), already mapped.
//!
//! Nothing here can change what a batch holds: a spare buffer is emptied before it is used, a
//! column is taken back only if its type is the one asked for and every buffer of it is held by
//! nobody else (otherwise the builder is allocated afresh, as before). How many columns came
//! from the previous batch is counted ([`Reserve::reused`]) so that tests can see the reuse
//! happen end to end.

use arrow::array::{Array, ArrayRef, ArrowPrimitiveType, BinaryBuilder, PrimitiveArray, PrimitiveBuilder, RecordBatch};
use arrow::array::{GenericByteBuilder, StringBuilder};
use arrow::buffer::MutableBuffer;
use arrow::datatypes::{ByteArrayType, DataType};

/// One column's buffers (a text column's offsets then its bytes; a number column's values) with
/// the type they held. Validity bitmaps are not kept: they are small and most columns have none.
struct Spare {
    data_type: DataType,
    buffers: Vec<MutableBuffer>,
}

impl Spare {
    /// The buffers of `array` if nothing else holds them.
    fn of(array: ArrayRef) -> Option<Spare> {
        let data = array.to_data();
        // The batch's own reference goes first; then `data` is the only holder left.
        drop(array);
        if data.offset() != 0 {
            return None;
        }
        let data_type = data.data_type().clone();
        let shared = data.buffers().to_vec();
        drop(data);
        let buffers = shared.into_iter().map(|b| b.into_mutable().ok()).collect::<Option<Vec<_>>>()?;
        Some(Spare { data_type, buffers })
    }
}

/// Where the builders of one batch get their memory, column by column in schema order: the
/// previous batch's buffers where they can be taken, fresh allocations sized for `rows` rows
/// otherwise.
pub struct Reserve {
    rows: usize,
    spares: std::vec::IntoIter<Option<Spare>>,
    reused: usize,
}

impl Reserve {
    /// Fresh allocations for `rows` rows.
    pub fn fresh(rows: usize) -> Self {
        Reserve { rows, spares: Vec::new().into_iter(), reused: 0 }
    }

    /// The buffers of `batch` (a finished batch of the same schema, written and no longer
    /// needed), fresh allocations for `rows` rows where one cannot be taken.
    pub fn from_batch(rows: usize, batch: RecordBatch) -> Self {
        let (_, columns, _) = batch.into_parts();
        let spares: Vec<Option<Spare>> = columns.into_iter().map(Spare::of).collect();
        Reserve { rows, spares: spares.into_iter(), reused: 0 }
    }

    /// Columns built so far on the previous batch's buffers.
    pub fn reused(&self) -> usize {
        self.reused
    }

    /// The next column's buffers if it held `data_type`-compatible values in `n` buffers.
    fn next(&mut self, n: usize, fits: impl Fn(&DataType) -> bool) -> Option<Vec<MutableBuffer>> {
        let spare = self.spares.next().flatten()?;
        (spare.buffers.len() == n && fits(&spare.data_type)).then(|| {
            self.reused += 1;
            spare.buffers
        })
    }

    /// A text column's builder, fresh ones sized for `bytes_per_row` bytes a row.
    pub fn utf8(&mut self, bytes_per_row: usize) -> StringBuilder {
        self.bytes(bytes_per_row, |t| *t == DataType::Utf8)
    }

    /// A binary column's builder, fresh ones sized for `bytes_per_row` bytes a row.
    pub fn binary(&mut self, bytes_per_row: usize) -> BinaryBuilder {
        self.bytes(bytes_per_row, |t| *t == DataType::Binary)
    }

    fn bytes<T: ByteArrayType<Offset = i32>>(
        &mut self,
        bytes_per_row: usize,
        fits: impl Fn(&DataType) -> bool,
    ) -> GenericByteBuilder<T> {
        match self.next(2, fits).map(<[MutableBuffer; 2]>::try_from) {
            Some(Ok([mut offsets, mut values])) => {
                offsets.clear();
                offsets.push(0i32);
                values.clear();
                // SAFETY: the buffers now describe an empty array — one offset, 0, no bytes, no
                // validity bitmap — which is valid for any byte array type; the offsets buffer
                // held `i32` offsets (the column's type was checked), so it is aligned for them.
                unsafe { GenericByteBuilder::new_from_buffer(offsets, values, None) }
            }
            _ => GenericByteBuilder::with_capacity(self.rows, self.rows.saturating_mul(bytes_per_row)),
        }
    }

    /// A number column's builder (set its timezone or precision as usual afterwards).
    pub fn primitive<T: ArrowPrimitiveType>(&mut self) -> PrimitiveBuilder<T> {
        match self.next(1, PrimitiveArray::<T>::is_compatible).and_then(|b| b.into_iter().next()) {
            Some(mut values) => {
                values.clear();
                PrimitiveBuilder::new_from_buffer(values, None)
            }
            None => PrimitiveBuilder::with_capacity(self.rows),
        }
    }

    /// Passes over a column whose builder is made otherwise (lists: their spare buffers are
    /// dropped).
    pub fn skip(&mut self) {
        self.spares.next();
    }

    /// Rows fresh builders are sized for.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayBuilder, AsArray, Int64Builder};
    use arrow::datatypes::{Field, Int32Type, Int64Type, Schema};

    use super::*;

    fn batch(rows: i64) -> RecordBatch {
        let mut text = StringBuilder::new();
        let mut number = Int64Builder::new();
        for i in 0..rows {
            text.append_value(format!("row {i}"));
            number.append_option((i % 3 != 0).then_some(i));
        }
        let schema = Schema::new(vec![Field::new("t", DataType::Utf8, false), Field::new("n", DataType::Int64, true)]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(text.finish()), Arc::new(number.finish())]).unwrap()
    }

    #[test]
    fn a_written_batch_s_buffers_become_the_next_builders_and_start_empty() {
        let old = batch(1000);
        let text_at = old.column(0).to_data().buffers()[1].as_ptr();
        let numbers_at = old.column(1).to_data().buffers()[0].as_ptr();
        let mut reserve = Reserve::from_batch(10, old);
        let mut text = reserve.utf8(4);
        let mut number = reserve.primitive::<Int64Type>();
        assert_eq!(reserve.reused(), 2);
        assert!(text.is_empty() && number.is_empty(), "reused builders start with no rows");
        text.append_value("new");
        text.append_null();
        number.append_value(7);
        let (text, number) = (text.finish(), number.finish());
        assert_eq!(text.to_data().buffers()[1].as_ptr(), text_at, "the same bytes buffer, not a copy");
        assert_eq!(number.to_data().buffers()[0].as_ptr(), numbers_at);
        assert_eq!(text.len(), 2);
        assert_eq!(text.value(0), "new");
        assert!(text.is_null(1));
        assert_eq!(number.values().as_ref(), &[7]);
        assert_eq!(number.null_count(), 0, "the old batch's nulls are not carried over");
    }

    #[test]
    fn a_column_held_elsewhere_or_of_another_type_is_allocated_afresh() {
        let old = batch(100);
        let kept = old.column(0).clone();
        let mut reserve = Reserve::from_batch(10, old);
        // Text still held by `kept`; numbers asked for as another type.
        let text = reserve.utf8(4);
        let number = reserve.primitive::<Int32Type>();
        assert_eq!(reserve.reused(), 0);
        assert!(text.is_empty() && number.is_empty());
        assert_eq!(kept.as_string::<i32>().value(99), "row 99", "the held column is untouched");
        // Past the batch's columns: fresh builders.
        let mut more = reserve.utf8(4);
        more.append_value("x");
        assert_eq!(more.finish().value(0), "x");
        assert_eq!(reserve.reused(), 0);
    }

    #[test]
    fn a_sliced_batch_is_not_taken_back() {
        let mut reserve = Reserve::from_batch(10, batch(100).slice(10, 20));
        let _ = reserve.utf8(4);
        let _ = reserve.primitive::<Int64Type>();
        assert_eq!(reserve.reused(), 0);
    }
}
