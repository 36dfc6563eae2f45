//! Memory for a table's next batch: the buffers of a batch already written, taken back once its
//! Parquet file is encoded, rather than fresh allocations for every batch.
//!
//! Why: `finish()` hands the builders' buffers to the arrays and leaves the builders empty, so
//! each batch used to start on fresh memory — about a tenth of a megabyte per column, which the
//! allocator had returned to the system when the previous batch was freed and the kernel then
//! faulted in again, page by page, as the appends stored into it (the benchmark's profile:
//! page faults and stores to fresh buffers are what is left of the Arrow half of the hot path,
//! docs/performance.md). A written batch's arrays are held by nothing else, so their buffers
//! can be the next batch's builders as they are: already mapped, and as large as the batches
//! they carried (so a batch like the last one does not grow them by doubling).
//!
//! Nothing here can change what a batch holds: a spare buffer is emptied before it is used, a
//! column is taken back only if its type is the one asked for and every buffer of it is held by
//! nobody else and starts at its allocation (not a slice past the start); otherwise the builder
//! is allocated afresh, as before. Validity bitmaps are always fresh (small, and most columns
//! have none). How many columns came from the previous batch is counted ([`Reserve::reused`])
//! so that tests can see the reuse happen end to end.
//!
//! Memory is given back after a burst: a buffer is not reused when its capacity exceeds four
//! times what its batch used plus what a fresh builder reserves ([`fits`]). A batch far larger
//! than usual (a backlog of long records, a burst of rejected ones) grows its builders; their
//! buffers carry one more batch, and when that batch comes back using a fraction of them they
//! are freed and the next builders are fresh. So a table's builders hold at most about four
//! times what recent batches needed, never the largest batch ever seen.

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
        // The batch's own reference goes first; then `data` is the only holder left. (A slice
        // is refused by `into_mutable` below: its buffers start past their allocation.)
        drop(array);
        let data_type = data.data_type().clone();
        let shared = data.buffers().to_vec();
        drop(data);
        let buffers = shared.into_iter().map(|b| b.into_mutable().ok()).collect::<Option<Vec<_>>>()?;
        Some(Spare { data_type, buffers })
    }
}

/// Whether `spare` (as its batch left it) is worth reusing rather than `fresh` bytes: not when its
/// capacity is over four times what the batch used plus `fresh` — memory a burst grew, given
/// back once a batch of the usual size has shown it is not needed (see the module's doc).
fn fits(spare: &MutableBuffer, fresh: usize) -> bool {
    spare.capacity() <= spare.len().saturating_mul(4).saturating_add(fresh)
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
    fn next(&mut self, n: usize, holds: impl Fn(&DataType) -> bool) -> Option<Vec<MutableBuffer>> {
        let spare = self.spares.next().flatten()?;
        (spare.buffers.len() == n && holds(&spare.data_type)).then_some(spare.buffers)
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
        holds: impl Fn(&DataType) -> bool,
    ) -> GenericByteBuilder<T> {
        let fresh_bytes = self.rows.saturating_mul(bytes_per_row);
        let fresh_offsets = (self.rows + 1) * size_of::<i32>();
        match self.next(2, holds).map(<[MutableBuffer; 2]>::try_from) {
            Some(Ok([mut offsets, mut values])) if fits(&offsets, fresh_offsets) && fits(&values, fresh_bytes) => {
                self.reused += 1;
                offsets.clear();
                offsets.push(0i32);
                values.clear();
                // SAFETY: the buffers now describe an empty array — one offset, 0, no bytes, no
                // validity bitmap — which is valid for any byte array type; the offsets buffer
                // held `i32` offsets (the column's type was checked), so it is aligned for them.
                unsafe { GenericByteBuilder::new_from_buffer(offsets, values, None) }
            }
            _ => GenericByteBuilder::with_capacity(self.rows, fresh_bytes),
        }
    }

    /// A number column's builder (set its timezone or precision as usual afterwards).
    pub fn primitive<T: ArrowPrimitiveType>(&mut self) -> PrimitiveBuilder<T> {
        let fresh = self.rows * size_of::<T::Native>();
        match self.next(1, PrimitiveArray::<T>::is_compatible).and_then(|b| b.into_iter().next()) {
            Some(mut values) if fits(&values, fresh) => {
                self.reused += 1;
                values.clear();
                PrimitiveBuilder::new_from_buffer(values, None)
            }
            _ => PrimitiveBuilder::with_capacity(self.rows),
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
        let rows_usize = rows as usize;
        let mut text = StringBuilder::with_capacity(rows_usize, rows_usize * 8);
        let mut number = Int64Builder::with_capacity(rows_usize);
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
    fn a_slice_past_the_start_is_not_taken_back_and_one_from_the_start_is_emptied() {
        let whole = batch(100);
        let past = whole.slice(10, 20);
        drop(whole);
        let mut reserve = Reserve::from_batch(10, past);
        let _ = reserve.utf8(4);
        let _ = reserve.primitive::<Int64Type>();
        assert_eq!(reserve.reused(), 0, "the slices hold their buffers alone, but start past them");
        let whole = batch(100);
        // (Most of the batch: a short head would leave its buffers too large to be worth it.)
        let head = whole.slice(0, 60);
        drop(whole);
        let mut reserve = Reserve::from_batch(10, head);
        let mut text = reserve.utf8(4);
        let mut number = reserve.primitive::<Int64Type>();
        assert_eq!(reserve.reused(), 2);
        assert!(text.is_empty() && number.is_empty());
        text.append_value("a");
        number.append_value(1);
        assert_eq!(text.finish().iter().collect::<Vec<_>>(), [Some("a")]);
        assert_eq!(number.finish().values().as_ref(), &[1]);
    }

    /// Buffers a burst grew carry one more batch; once a batch of the usual size comes back in
    /// them they are freed, and the builders after it are fresh.
    #[test]
    fn buffers_far_larger_than_their_batch_needed_are_given_back() {
        let rows = 10;
        let mut reserve = Reserve::from_batch(rows, batch(10_000));
        let (mut text, mut number) = (reserve.utf8(4), reserve.primitive::<Int64Type>());
        assert_eq!(reserve.reused(), 2, "the burst's own buffers are full: reused");
        for i in 0..rows as i64 {
            text.append_value("usual");
            number.append_value(i);
        }
        let schema = batch(0).schema();
        let usual = RecordBatch::try_new(schema, vec![Arc::new(text.finish()), Arc::new(number.finish())]).unwrap();
        let mut reserve = Reserve::from_batch(rows, usual);
        let (text, number) = (reserve.utf8(4), reserve.primitive::<Int64Type>());
        assert_eq!(reserve.reused(), 0, "a usual batch in a burst's buffers: they go");
        assert!(text.values_capacity() < 1_000 && number.capacity() < 1_000, "fresh, sized for {rows} rows");
    }
}
