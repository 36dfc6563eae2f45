//! Byte tests eight at a time in a `u64` ("SIMD within a register"), for the scanner and the
//! identifier checks of the hot path.

/// 0x01 in every byte.
pub const LO: u64 = 0x0101_0101_0101_0101;
/// 0x80 in every byte: the mark a test leaves on a byte.
pub const HI: u64 = 0x8080_8080_8080_8080;

/// The eight bytes as a little-endian word (byte `i` of the slice is byte `i` of the word).
#[inline]
pub fn word(bytes: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*bytes)
}

/// Marks (0x80) the bytes of `w` below `n` (`n` ≤ 0x80). Only the lowest mark is exact: a
/// borrow can mark a byte above a marked one. Enough to find the first such byte.
#[inline]
pub fn bytes_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(LO * u64::from(n)) & !w & HI
}

/// Marks the bytes of `w` equal to `c`; as [`bytes_below`], only the lowest mark is exact.
#[inline]
pub fn bytes_equal(w: u64, c: u8) -> u64 {
    bytes_below(w ^ (LO * u64::from(c)), 1)
}

/// Marks the bytes of `w` that lie in `lo..=hi`, every mark exact, for words whose bytes are all
/// below 0x80 (`w & HI == 0`): adding `0x80 - lo` or `0x7f - hi` to such a byte cannot carry
/// into the next one.
#[inline]
pub fn bytes_in(w: u64, lo: u8, hi: u8) -> u64 {
    let at_least_lo = w.wrapping_add(LO * u64::from(0x80 - lo));
    let above_hi = w.wrapping_add(LO * u64::from(0x7f - hi));
    at_least_lo & !above_hi & HI
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value in every position of a word, against the plain comparisons.
    #[test]
    fn marks_match_the_byte_comparisons() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut bytes = [b'm'; 8];
                bytes[at] = b;
                let w = word(&bytes);
                let mark = 0x80u64 << (8 * at);
                let lowest = |m: u64| m & m.wrapping_neg();
                assert_eq!(lowest(bytes_below(w, 0x20)) == mark, b < 0x20, "{b:#x} at {at}");
                assert_eq!(lowest(bytes_equal(w, b'"')) == mark, b == b'"', "{b:#x} at {at}");
                if b < 0x80 {
                    assert_eq!(bytes_in(w, b'0', b'9') == mark, b.is_ascii_digit(), "{b:#x} at {at}");
                    assert_eq!(bytes_in(w, b'A', b'F') & mark != 0, (b'A'..=b'F').contains(&b), "{b:#x} at {at}");
                }
            }
        }
    }
}
