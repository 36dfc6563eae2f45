//! Amounts in centavos, parsed from decimal text without binary floating point.
//!
//! The wire format sends amounts as strings such as `"1234.50"` (API Pix: `\d{1,10}\.\d{2}`);
//! JSON numbers are accepted too and converted exactly from their text, exponent included, so
//! `1234.5` is 123450 centavos and `1e3` is 100000 — never `1234.4999…`. Stored as `decimal(18,2)`.

/// Largest amount the wire format allows, in centavos (R$ 9 999 999 999,99).
pub const MAX_CENTS: i64 = 999_999_999_999;

/// Why an amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    /// Not a plain decimal (`"1e3"`, `"12,50"`, `"+5"`, `" 5"`…).
    Format,
    /// More than 2 decimal places (`"10.001"`).
    TooPrecise,
    /// Zero or negative.
    NotPositive,
    /// Above 9999999999.99.
    TooLarge,
}

impl AmountError {
    /// A sentence for the operator.
    pub fn message(self) -> &'static str {
        match self {
            AmountError::Format => {
                "not a decimal amount: use digits with an optional . and up to 2 decimals, e.g. \"1234.50\""
            }
            AmountError::TooPrecise => "more than 2 decimal places",
            AmountError::NotPositive => "must be greater than 0.00",
            AmountError::TooLarge => "must not exceed 9999999999.99",
        }
    }
}

/// Parses a decimal string `\d+(\.\d{1,2})?` (at most 2 decimals) to centavos.
pub fn parse_decimal_str(s: &str) -> Result<i64, AmountError> {
    // A byte search, not `split_once` and `contains`: with a `char` pattern each went through a
    // `memchr` call (`CharSearcher` in the decode benchmark's profile), more than the few bytes
    // of an amount need.
    let dot = s.bytes().position(|c| c == b'.');
    let (int, frac) = match dot {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    if int.is_empty() || !int.bytes().all(|c| c.is_ascii_digit()) || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return Err(if s.starts_with('-') && s.len() > 1 { AmountError::NotPositive } else { AmountError::Format });
    }
    if dot.is_some() && frac.is_empty() {
        return Err(AmountError::Format);
    }
    if frac.len() > 2 {
        return Err(AmountError::TooPrecise);
    }
    let int = int.trim_start_matches('0');
    if int.len() > 10 {
        return Err(AmountError::TooLarge);
    }
    let mut cents: i64 = 0;
    for c in int.bytes() {
        cents = cents * 10 + i64::from(c - b'0');
    }
    let mut f = 0i64;
    for (i, c) in frac.bytes().enumerate() {
        f += i64::from(c - b'0') * if i == 0 { 10 } else { 1 };
    }
    check_range(cents * 100 + f)
}

/// Converts a JSON number's text (`-?int(.frac)?([eE][+-]?exp)?`) to centavos exactly. The value
/// must be a whole number of centavos (`10.001` is refused, `1.005e2` is 100.50).
pub fn parse_json_number(text: &str) -> Result<i64, AmountError> {
    let b = text.as_bytes();
    if b.first() == Some(&b'-') {
        // The parser guarantees JSON number syntax; a sign makes it zero or negative.
        return Err(AmountError::NotPositive);
    }
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i64>().map_err(|_| AmountError::Format)?),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // Significant digits and the power of ten they are scaled by, in centavos.
    let digits = int.bytes().chain(frac.bytes());
    let mut scale = exp - frac.len() as i64 + 2;
    let mut sig: Vec<u8> = digits.skip_while(|&c| c == b'0').collect();
    if sig.is_empty() {
        return Err(AmountError::NotPositive);
    }
    while sig.last() == Some(&b'0') {
        sig.pop();
        scale += 1;
    }
    if scale < 0 {
        return Err(AmountError::TooPrecise);
    }
    if sig.len() as i64 + scale > 12 {
        return Err(AmountError::TooLarge);
    }
    let mut cents: i64 = 0;
    for c in sig {
        cents = cents * 10 + i64::from(c - b'0');
    }
    for _ in 0..scale {
        cents *= 10;
    }
    check_range(cents)
}

fn check_range(cents: i64) -> Result<i64, AmountError> {
    if cents <= 0 {
        Err(AmountError::NotPositive)
    } else if cents > MAX_CENTS {
        Err(AmountError::TooLarge)
    } else {
        Ok(cents)
    }
}

/// Formats centavos as the wire's decimal string (`123450` → `"1234.50"`).
pub fn format_cents(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strings() {
        assert_eq!(parse_decimal_str("1234.50"), Ok(123_450));
        assert_eq!(parse_decimal_str("1234.5"), Ok(123_450));
        assert_eq!(parse_decimal_str("10"), Ok(1000));
        assert_eq!(parse_decimal_str("0.01"), Ok(1));
        assert_eq!(parse_decimal_str("0009999999999.99"), Ok(MAX_CENTS));
        assert_eq!(parse_decimal_str("0.00"), Err(AmountError::NotPositive));
        assert_eq!(parse_decimal_str("1e3"), Err(AmountError::Format));
        assert_eq!(parse_decimal_str("10.001"), Err(AmountError::TooPrecise));
        assert_eq!(parse_decimal_str("-5"), Err(AmountError::NotPositive));
        assert_eq!(parse_decimal_str("12345678901.00"), Err(AmountError::TooLarge));
        assert_eq!(parse_decimal_str("10000000000"), Err(AmountError::TooLarge));
        for bad in ["", ".", "5.", ".5", "12,50", "+5", " 5", "5 ", "R$5", "1_000", "NaN"] {
            assert_eq!(parse_decimal_str(bad), Err(AmountError::Format), "{bad:?}");
        }
    }

    #[test]
    fn numbers_without_floating_point() {
        assert_eq!(parse_json_number("1234.5"), Ok(123_450));
        assert_eq!(parse_json_number("1e3"), Ok(100_000));
        assert_eq!(parse_json_number("1.005e2"), Ok(10_050));
        assert_eq!(parse_json_number("0.1"), Ok(10));
        assert_eq!(parse_json_number("12345E-2"), Ok(12_345));
        assert_eq!(parse_json_number("1000.000"), Ok(100_000));
        assert_eq!(parse_json_number("9999999999.99"), Ok(MAX_CENTS));
        assert_eq!(parse_json_number("10.001"), Err(AmountError::TooPrecise));
        assert_eq!(parse_json_number("1e-3"), Err(AmountError::TooPrecise));
        assert_eq!(parse_json_number("0"), Err(AmountError::NotPositive));
        assert_eq!(parse_json_number("0.00"), Err(AmountError::NotPositive));
        assert_eq!(parse_json_number("-5"), Err(AmountError::NotPositive));
        assert_eq!(parse_json_number("-0"), Err(AmountError::NotPositive));
        assert_eq!(parse_json_number("1e10"), Err(AmountError::TooLarge));
        assert_eq!(parse_json_number("1e400"), Err(AmountError::TooLarge));
        assert_eq!(parse_json_number("12345678901.00"), Err(AmountError::TooLarge));
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(c in 1i64..=MAX_CENTS) {
            let s = format_cents(c);
            prop_assert_eq!(parse_decimal_str(&s), Ok(c));
            prop_assert_eq!(parse_json_number(&s), Ok(c));
        }
    }
}
