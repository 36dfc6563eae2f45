//! Pix identifiers: event UUIDs, EndToEndIds and return ids, txids, ISPBs.
//!
//! Sources: EndToEndId layout from the Open Finance Brasil payments API and BCB API Pix 2.9.0
//! (alphanumeric ISPB slot); txid classes from API Pix and the Open Finance initiation rules.

use super::swar::{self, HI, bytes_in};
use super::time::{Micros, parse_compact_minute};

/// A UUID in canonical lowercase hyphenated form, kept inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Uuid36([u8; 36]);

impl Uuid36 {
    /// Parses 8-4-4-4-12 hexadecimal digits in any case; returns the lowercase form and whether
    /// lowercasing changed anything.
    pub fn parse(s: &str) -> Option<(Self, bool)> {
        let mut out: [u8; 36] = s.as_bytes().try_into().ok()?;
        if [out[8], out[13], out[18], out[23]] != [b'-'; 4] {
            return None;
        }
        // The 32 digits eight bytes at a time (a per-byte `match` was ~3 % of decoding): the
        // hyphens read as '0' and the last word padded with '0's.
        let mut digits = [b'0'; 40];
        digits[..36].copy_from_slice(&out);
        for i in [8, 13, 18, 23] {
            digits[i] = b'0';
        }
        let (mut fits, mut upper) = (true, 0);
        for word in digits.as_chunks::<8>().0 {
            let w = swar::word(word);
            let capital = bytes_in(w, b'A', b'F');
            fits &= w & HI == 0 && (bytes_in(w, b'0', b'9') | bytes_in(w, b'a', b'f') | capital) == HI;
            upper |= capital;
        }
        if !fits {
            return None;
        }
        if upper != 0 {
            out.make_ascii_lowercase();
        }
        Some((Uuid36(out), upper != 0))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        debug_assert!(self.0.is_ascii());
        // SAFETY: only ASCII hex digits and hyphens are ever stored (`parse` checks every byte
        // before it keeps them, `from_random` writes them), and ASCII is UTF-8. Checking it again
        // here, as `str::from_utf8` would, ran for every id of every row appended.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// Builds a random (version 4) UUID from 128 random bits.
    pub fn from_random(bits: u128) -> Self {
        let mut bytes = bits.to_be_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 36];
        let mut j = 0;
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out[j] = b'-';
                j += 1;
            }
            out[j] = HEX[usize::from(byte >> 4)];
            out[j + 1] = HEX[usize::from(byte & 0xf)];
            j += 2;
        }
        Uuid36(out)
    }
}

impl std::fmt::Debug for Uuid36 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `b` is an ISPB: 8 characters of `[0-9A-Z]` (alphanumeric since API Pix 2.9.0).
pub fn is_ispb(b: &[u8]) -> bool {
    b.len() == 8 && b.iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
}

/// The Banco Central's own ISPB (the SPI); it is never a payer or payee.
pub const BCB_ISPB: &str = "00038166";

/// What an EndToEndId or return id tells once checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionIdInfo {
    /// The UTC minute embedded in the id.
    pub minute: Micros,
}

/// Checks a 32-character transaction id with the given leading letter (`E` for EndToEndIds,
/// `D` for return ids): letter + ISPB + `yyyyMMddHHmm` (a real UTC date and time) + 11
/// alphanumerics. On failure, says which part is wrong.
pub fn check_transaction_id(s: &str, letter: u8) -> Result<TransactionIdInfo, &'static str> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return Err("must be exactly 32 characters");
    }
    if b[0] != letter {
        return Err(if letter == b'E' { "must start with E" } else { "must start with D" });
    }
    if !is_ispb(&b[1..9]) {
        return Err("characters 2–9 must be the ISPB ([0-9A-Z]{8})");
    }
    if !b[9..21].iter().all(u8::is_ascii_digit) {
        return Err("characters 10–21 must be the UTC date and time yyyyMMddHHmm");
    }
    let minute = parse_compact_minute(&b[9..21]).ok_or("its date and time yyyyMMddHHmm does not exist")?;
    if !b[21..32].iter().all(u8::is_ascii_alphanumeric) {
        return Err("the last 11 characters must be letters or digits");
    }
    Ok(TransactionIdInfo { minute })
}

/// Whether `s` is 1–`max` ASCII letters and digits (txid, refund request id).
pub fn is_alnum_id(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pix::time::parse_rfc3339;

    #[test]
    fn uuids() {
        let (u, changed) = Uuid36::parse("3F2504E0-4F89-11D3-9A0C-0305E82C3301").unwrap();
        assert_eq!(u.as_str(), "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
        assert!(changed);
        assert!(!Uuid36::parse("3f2504e0-4f89-11d3-9a0c-0305e82c3301").unwrap().1);
        assert!(Uuid36::parse("3f2504e04f8911d39a0c0305e82c3301").is_none());
        assert!(Uuid36::parse("3f2504e0-4f89-11d3-9a0c-0305e82c330g").is_none());
        assert!(Uuid36::parse("3f2504e0-4f89-11d3-9a0c_0305e82c3301").is_none());
        let r = Uuid36::from_random(u128::MAX);
        assert_eq!(r.as_str(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert!(Uuid36::parse(r.as_str()).is_some());
    }

    /// The per-byte definition the word-at-a-time parser must agree with.
    fn reference_uuid(s: &str) -> Option<(String, bool)> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return None;
        }
        let mut changed = false;
        let mut out = String::new();
        for (i, &c) in b.iter().enumerate() {
            out.push(match (i, c) {
                (8 | 13 | 18 | 23, b'-') => '-',
                (8 | 13 | 18 | 23, _) => return None,
                (_, b'0'..=b'9' | b'a'..=b'f') => c as char,
                (_, b'A'..=b'F') => {
                    changed = true;
                    c.to_ascii_lowercase() as char
                }
                _ => return None,
            });
        }
        Some((out, changed))
    }

    /// A well-formed UUID in any case.
    const UUID_TEXT: &str = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";

    /// [`Uuid36::parse`] in the reference's terms.
    fn parsed(s: &str) -> Option<(String, bool)> {
        Uuid36::parse(s).map(|(u, changed)| (u.as_str().to_string(), changed))
    }

    proptest::proptest! {
        #[test]
        fn uuid_parse_matches_its_definition(
            s in proptest::prop_oneof!["[0-9a-fA-Fgé_-]{34,38}", UUID_TEXT],
        ) {
            proptest::prop_assert_eq!(parsed(&s), reference_uuid(&s));
        }

        /// One character of a well-formed UUID replaced by a neighbour of the accepted ranges.
        #[test]
        fn uuid_parse_refuses_what_its_definition_refuses(
            s in UUID_TEXT,
            at in 0usize..36,
            c in proptest::sample::select(vec!['/', ':', '@', 'G', '`', 'g', '-', '0', 'a', 'F', '\u{7f}', '\u{80}', 'é', ' ']),
        ) {
            let s: String = s.chars().enumerate().map(|(i, x)| if i == at { c } else { x }).collect();
            proptest::prop_assert_eq!(parsed(&s), reference_uuid(&s));
        }

        /// Two adjacent characters replaced by one two-byte character: still 36 bytes, so the
        /// word check itself has to refuse the bytes at or above 0x80.
        #[test]
        fn uuid_parse_refuses_non_ascii_of_the_right_length(
            s in UUID_TEXT,
            at in 0usize..35,
            c in proptest::sample::select(vec!['\u{80}', 'é', 'ÿ', '\u{7ff}', '°', 'ñ']),
        ) {
            let mut s = s;
            s.replace_range(at..at + 2, c.encode_utf8(&mut [0; 4]));
            proptest::prop_assert_eq!(s.len(), 36);
            proptest::prop_assert_eq!(parsed(&s), None);
            proptest::prop_assert_eq!(reference_uuid(&s), None);
        }
    }

    #[test]
    fn end_to_end_ids() {
        // Examples from the Open Finance Brasil specification.
        let info = check_transaction_id("E18236120202104191813s0326120V4K", b'E').unwrap();
        assert_eq!(info.minute, parse_rfc3339("2021-04-19T18:13:00Z").unwrap());
        assert!(check_transaction_id("E9040088820210128000800123873170", b'E').is_ok());
        // Alphanumeric ISPB (API Pix 2.9.0).
        assert!(check_transaction_id("E1A2B3C4D202104191813s0326120V4K", b'E').is_ok());
        // Lowercase in the ISPB slot is not an ISPB.
        assert!(check_transaction_id("E1a2b3c4d202104191813s0326120V4K", b'E').is_err());
        // February 30th and hour 24 do not exist; the regex alone would accept the first.
        assert_eq!(
            check_transaction_id("E18236120202302301813s0326120V4K", b'E'),
            Err("its date and time yyyyMMddHHmm does not exist")
        );
        assert!(check_transaction_id("E18236120202104192413s0326120V4K", b'E').is_err());
        assert!(check_transaction_id("E18236120202104191860s0326120V4K", b'E').is_err());
        assert!(check_transaction_id("E18236120202104191813s0326120V4", b'E').is_err());
        assert!(check_transaction_id("E18236120202104191813s0326120V4-", b'E').is_err());
        assert!(check_transaction_id("D18236120202104191813s0326120V4K", b'E').is_err());
    }

    #[test]
    fn return_ids() {
        assert!(check_transaction_id("D18236120202104191813s0326120V4K", b'D').is_ok());
        assert!(check_transaction_id("E18236120202104191813s0326120V4K", b'D').is_err());
        assert!(check_transaction_id("D18236120202113191813s0326120V4K", b'D').is_err());
    }

    #[test]
    fn txid_classes() {
        assert!(is_alnum_id("a", 35));
        assert!(is_alnum_id(&"x".repeat(25), 35));
        assert!(is_alnum_id(&"x".repeat(35), 35));
        assert!(!is_alnum_id(&"x".repeat(36), 35));
        assert!(!is_alnum_id("", 35));
        assert!(!is_alnum_id("***", 35));
        assert!(!is_alnum_id("abc-123", 35));
    }

    #[test]
    fn ispbs() {
        assert!(is_ispb(b"00000000"));
        assert!(is_ispb(b"1A2B3C4D"));
        assert!(!is_ispb(b"0000000"));
        assert!(!is_ispb(b"1a2b3c4d"));
    }
}
