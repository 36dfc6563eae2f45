//! Telling the processor where the builders write next, one row ahead.
//!
//! Why: a row of a category table is appended to some forty columns, each with a values buffer
//! and, for text, an offsets buffer: eighty-odd write streams, every one moving forward through
//! memory that is not in the cache — the buffers of the batch before last (`reserve`), last
//! touched by the committer's Parquet encoder on the other core, or fresh memory. Each store to a
//! line not in the cache waits for the line to be read first, and the hardware prefetchers
//! follow a few dozen streams at most, so they lose these. The benchmark measured the cost: the
//! same code ran about 10 % faster when each batch was dropped as soon as it was built and the
//! next one reused its memory straight from the cache (docs/performance.md). Asking for the line
//! a little past each buffer's end into the cache (`prefetcht0`), before the row is appended,
//! brings that back. (A prefetch for writing, `prefetchw`, needs the `prfchw` target feature,
//! which x86-64's baseline lacks; with it the line would arrive owned rather than shared, a
//! refinement not measured.)
//!
//! A hint only: a prefetch never faults, whatever the address, and changes no value; the
//! builders' contents are what they would be without it. On other architectures it is nothing.

use arrow::array::{ArrowPrimitiveType, GenericByteBuilder, PrimitiveBuilder};
use arrow::datatypes::ByteArrayType;

/// How far past a buffer's end to ask for: four cache lines, a few rows of the widest columns
/// (a UUID is 36 bytes), far enough for the line to arrive before the appends reach it.
const DISTANCE: usize = 256;

/// Prefetches the line `DISTANCE` bytes past the end of `written` into every cache level.
#[inline(always)]
fn line_after<T>(written: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        // Pointer arithmetic that may leave the allocation is done with `wrapping_add`, which is
        // defined for any result; the pointer is never dereferenced.
        let at = written.as_ptr().wrapping_add(written.len()).cast::<i8>().wrapping_add(DISTANCE);
        // SAFETY: `_mm_prefetch` needs the `sse` target feature, part of x86-64's baseline. It is a
        // hint that reads nothing into the program and never faults, whatever the address (Intel
        // SDM, PREFETCHh), so any pointer will do.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = written;
}

/// A builder whose next writes can be announced.
pub trait Ahead {
    /// Prefetches the memory the next few appends will store into.
    fn ahead(&self);
}

impl<T: ByteArrayType> Ahead for GenericByteBuilder<T> {
    #[inline(always)]
    fn ahead(&self) {
        line_after(self.values_slice());
        line_after(self.offsets_slice());
    }
}

impl<T: ArrowPrimitiveType> Ahead for PrimitiveBuilder<T> {
    #[inline(always)]
    fn ahead(&self) {
        line_after(self.values_slice());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef, Int64Builder, StringBuilder};
    use std::sync::Arc;

    /// Text and numbers appended to builders with no allocation yet (their buffers' pointers
    /// dangle until the first append), with or without announcing each row's writes first.
    fn build(announce: bool) -> (ArrayRef, ArrayRef) {
        let (mut text, mut numbers) = (StringBuilder::with_capacity(0, 0), Int64Builder::with_capacity(0));
        for i in 0..10_000i64 {
            if announce {
                text.ahead();
                numbers.ahead();
            }
            if i % 7 == 0 {
                text.append_null();
            } else {
                text.append_value("x".repeat((i % 50) as usize));
            }
            numbers.append_value(i * 3);
        }
        (Arc::new(text.finish()), Arc::new(numbers.finish()))
    }

    /// A smoke test: a prefetch changes no value by construction, so this only shows that
    /// announcing writes on empty, growing and reallocated buffers runs (never faults) and that
    /// the builders come out as they would without it.
    #[test]
    fn announcing_writes_runs_on_any_buffer_and_changes_nothing_built() {
        let (text, numbers) = build(true);
        assert_eq!((text.len(), numbers.len()), (10_000, 10_000));
        assert_eq!(text.null_count(), 10_000 / 7 + 1);
        let (plain_text, plain_numbers) = build(false);
        assert_eq!(&text, &plain_text);
        assert_eq!(&numbers, &plain_numbers);
    }
}
