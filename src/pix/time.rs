//! Instants: RFC 3339 parsing to UTC microseconds, civil dates, and local time in
//! America/Sao_Paulo (the `event_date` partition and the night-time limit).
//!
//! Parsing is by hand because it is on the hot path (every event has one or more timestamps) and
//! must reject what chrono would accept loosely; the time-zone rules come from `chrono-tz` (the
//! IANA database), so a future change to Brazilian daylight saving time is a dependency update —
//! and a revision of the fixed-offset fast path in [`sao_paulo_offset`], which a test of this
//! module then asks for.

use chrono::{Offset, TimeZone};
use chrono_tz::America::Sao_Paulo;

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

/// Microseconds in a minute / an hour / a day.
pub const MINUTE: Micros = 60_000_000;
pub const HOUR: Micros = 60 * MINUTE;
pub const DAY: Micros = 24 * HOUR;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number (inverse of [`days_from_civil`]).
pub const fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Whether `year` is a Gregorian leap year.
pub const fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1–12) of `year`.
pub const fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// A calendar date and time of day, checked to exist (Feb 30 and hour 24 do not).
pub fn civil_to_micros(y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<Micros> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(i64::from(y), mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    Some(((days * 24 + i64::from(h)) * 60 + i64::from(mi)) * MINUTE + i64::from(s) * 1_000_000)
}

/// Parses `yyyyMMddHHmm` (the timestamp inside EndToEndIds and return ids) as a UTC minute.
pub fn parse_compact_minute(b: &[u8]) -> Option<Micros> {
    if b.len() != 12 {
        return None;
    }
    civil_to_micros(digits(&b[0..4])?, digits(&b[4..6])?, digits(&b[6..8])?, digits(&b[8..10])?, digits(&b[10..12])?, 0)
}

/// Why a timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampError {
    /// Not the RFC 3339 shape `yyyy-mm-ddThh:mm:ss[.fff][Z|±hh:mm]`.
    Format,
    /// No `Z` or numeric offset: a local time is ambiguous.
    MissingOffset,
    /// The shape is right but the date or time does not exist (Feb 30, hour 24…).
    Impossible,
}

impl TimestampError {
    /// A sentence for the operator.
    pub fn message(self) -> &'static str {
        match self {
            TimestampError::Format => "not an RFC 3339 timestamp (expected yyyy-mm-ddThh:mm:ss[.fff]Z or ±hh:mm)",
            TimestampError::MissingOffset => "RFC 3339 timestamp without offset: add Z or ±hh:mm (e.g. -03:00)",
            TimestampError::Impossible => {
                "date or time does not exist (day, month, hour, minute or offset out of range)"
            }
        }
    }
}

/// Parses an RFC 3339 timestamp to UTC microseconds. Fractions beyond microseconds are
/// truncated; `T`, `t` or a space separate date and time; a leap second (`:60`) is refused.
pub fn parse_rfc3339(s: &str) -> Result<Micros, TimestampError> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(TimestampError::Format);
    }
    let num = |r: std::ops::Range<usize>| digits(&b[r]).ok_or(TimestampError::Format);
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut frac: i64 = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                frac = frac * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return Err(TimestampError::Format);
        }
        for _ in n..6 {
            frac *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i) {
        None => return Err(TimestampError::MissingOffset),
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let oh = digits(&b[i + 1..i + 3]).ok_or(TimestampError::Format)?;
            let om = digits(&b[i + 4..i + 6]).ok_or(TimestampError::Format)?;
            if oh > 23 || om > 59 {
                return Err(TimestampError::Impossible);
            }
            let v = i64::from(oh * 3600 + om * 60);
            if sign == b'-' { -v } else { v }
        }
        _ => return Err(TimestampError::Format),
    };
    let local = civil_to_micros(y, mo, d, h, mi, sec).ok_or(TimestampError::Impossible)?;
    Ok(local + frac - offset_secs * 1_000_000)
}

/// Formats UTC microseconds as `yyyy-mm-ddThh:mm:ss.ffffffZ` (micros omitted when zero).
pub fn format_rfc3339(t: Micros) -> String {
    let days = t.div_euclid(DAY);
    let rem = t.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    let micros = rem % 1_000_000;
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if micros == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}Z")
    }
}

/// The end of Brazil's last daylight saving time, 2019-02-17T02:00:00Z: from then on the IANA
/// database has no transition for America/Sao_Paulo, which stays at UTC−3.
pub const SAO_PAULO_FIXED_SINCE: Micros = (days_from_civil(2019, 2, 17) * DAY) + 2 * HOUR;

/// The offset of America/Sao_Paulo from UTC at `t`, in microseconds (−3 h since 2019).
///
/// Every event has its `event_date` (and local hour) computed from this, so events after
/// [`SAO_PAULO_FIXED_SINCE`] take the fixed offset without the `chrono-tz` lookup (a binary
/// search over the zone's transitions: 2.6 % of the instructions `Decoder::decode` executed
/// under callgrind). A test walks the database from there to 2100: if a `chrono-tz` update
/// changes the zone's offset after 2019 (daylight saving time back, or another standard
/// offset), it fails, and this fast path must follow — the constant moved to the new last
/// transition and the offset changed, or the fast path removed.
#[inline]
pub fn sao_paulo_offset(t: Micros) -> Micros {
    if t >= SAO_PAULO_FIXED_SINCE {
        return -3 * HOUR;
    }
    zone_offset(t)
}

/// The offset of America/Sao_Paulo at `t` as the time-zone database says.
fn zone_offset(t: Micros) -> Micros {
    let secs = t.div_euclid(1_000_000);
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(utc) => {
            i64::from(Sao_Paulo.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc()) * 1_000_000
        }
        None => -3 * HOUR,
    }
}

/// Local wall-clock time in America/Sao_Paulo: (days since epoch of the local date, hour 0–23).
pub fn sao_paulo_date_hour(t: Micros) -> (i32, u32) {
    let local = t + sao_paulo_offset(t);
    let day = local.div_euclid(DAY);
    let hour = (local.rem_euclid(DAY) / HOUR) as u32;
    (day as i32, hour)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_fixed_offset_is_the_databases() {
        // The last transition is where the constant says…
        assert_eq!(zone_offset(SAO_PAULO_FIXED_SINCE - 1), -2 * HOUR, "daylight saving time until then");
        assert_eq!(zone_offset(SAO_PAULO_FIXED_SINCE), -3 * HOUR);
        assert_eq!(sao_paulo_offset(SAO_PAULO_FIXED_SINCE - 1), -2 * HOUR, "before it, the database decides");
        // …and no other follows, every six hours (and the odd second) to 2100.
        let end = days_from_civil(2100, 1, 1) * DAY;
        let mut t = SAO_PAULO_FIXED_SINCE;
        while t < end {
            assert_eq!(zone_offset(t), -3 * HOUR, "a transition at {}", format_rfc3339(t));
            assert_eq!(zone_offset(t + 1_000_001), -3 * HOUR, "a transition at {}", format_rfc3339(t));
            t += 6 * HOUR;
        }
    }

    #[test]
    fn rfc3339_offsets_become_utc() {
        let z = parse_rfc3339("2026-11-20T13:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-20T10:00:00-03:00").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-11-20t13:00:00z").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-11-20 13:00:00+00:00").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-11-20T13:00:00.123456789Z").unwrap(), z + 123_456);
        assert_eq!(parse_rfc3339("2026-11-20T13:00:00.5Z").unwrap(), z + 500_000);
        assert_eq!(format_rfc3339(z), "2026-11-20T13:00:00Z");
    }

    #[test]
    fn rfc3339_refusals() {
        use TimestampError::*;
        assert_eq!(parse_rfc3339("2026-11-20T10:00:00"), Err(MissingOffset));
        assert_eq!(parse_rfc3339("2026-02-30T10:00:00Z"), Err(Impossible));
        assert_eq!(parse_rfc3339("2026-11-20T24:00:00Z"), Err(Impossible));
        assert_eq!(parse_rfc3339("2026-11-20T23:59:60Z"), Err(Impossible));
        assert_eq!(parse_rfc3339("2026-11-20T10:00:00+25:00"), Err(Impossible));
        assert_eq!(parse_rfc3339("2026-11-20"), Err(Format));
        assert_eq!(parse_rfc3339("20/11/2026 10:00"), Err(Format));
        assert_eq!(parse_rfc3339("2026-11-20T10:00:00.Z"), Err(Format));
        assert_eq!(parse_rfc3339("2026-11-20T10:00:00Zjunk"), Err(Format));
        assert_eq!(parse_rfc3339("2026-11-20T10:00:00-0300"), Err(Format));
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_ok());
        assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), Err(Impossible));
    }

    #[test]
    fn compact_minutes() {
        assert_eq!(parse_compact_minute(b"202104191813"), Some(parse_rfc3339("2021-04-19T18:13:00Z").unwrap()));
        assert_eq!(parse_compact_minute(b"202302310000"), None);
        assert_eq!(parse_compact_minute(b"202302282400"), None);
        assert_eq!(parse_compact_minute(b"2023022823x0"), None);
    }

    #[test]
    fn sao_paulo_dates() {
        // 02:30 UTC on Nov 20 is 23:30 on Nov 19 in São Paulo (UTC−3, no DST since 2019).
        let t = parse_rfc3339("2026-11-20T02:30:00Z").unwrap();
        let (day, hour) = sao_paulo_date_hour(t);
        assert_eq!(civil_from_days(i64::from(day)), (2026, 11, 19));
        assert_eq!(hour, 23);
        // January 2018 was daylight saving time (UTC−2).
        let t = parse_rfc3339("2018-01-10T02:30:00Z").unwrap();
        assert_eq!(sao_paulo_date_hour(t), (days_from_civil(2018, 1, 10) as i32, 0));
    }

    proptest! {
        #[test]
        fn civil_round_trip(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn format_parse_round_trip(t in 0i64..4_102_444_800_000_000) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(t)).unwrap(), t);
        }
    }
}
