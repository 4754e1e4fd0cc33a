//! Activity cut-offs (SPEC §4): T − 1 day, T − 7 days and T − 1 calendar month, in UTC.
//!
//! Times are Unix microseconds, the precision of a PostgreSQL `timestamptz`, so a host can pass
//! the database's transaction timestamp through unchanged.

use alloc::format;
use alloc::string::String;
use core::fmt;

/// Microseconds in one day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The cut-offs of one report: a device is active in a window when `last_seen_at > cut-off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// The reference time T, Unix microseconds.
    pub now: i64,
    /// T − 1 day.
    pub last_day: i64,
    /// T − 7 days.
    pub last_week: i64,
    /// T − 1 calendar month, time of day kept, day clamped to the target month's length.
    pub last_month: i64,
}

/// The reference time is outside the years 1 to 9999, which no database clock reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange;

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("reference time is outside the years 1 to 9999")
    }
}

impl core::error::Error for OutOfRange {}

/// Computes the cut-offs for reference time `now` (Unix microseconds, UTC).
///
/// ```
/// use ttn_telemetry_core::{cutoffs, civil_to_unix_micros};
/// // 31 March 2024 12:00 UTC → 29 February 2024 12:00 (leap year).
/// let t = civil_to_unix_micros(2024, 3, 31, 12 * 3_600_000_000);
/// let c = cutoffs(t).unwrap();
/// assert_eq!(c.last_month, civil_to_unix_micros(2024, 2, 29, 12 * 3_600_000_000));
/// ```
pub fn cutoffs(now: i64) -> Result<Cutoffs, OutOfRange> {
    let days = now.div_euclid(MICROS_PER_DAY);
    let time_of_day = now.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    if !(1..=9999).contains(&y) {
        return Err(OutOfRange);
    }
    let (py, pm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    let pd = d.min(days_in_month(py, pm));
    // y ≥ 1, so (py, pm, pd) is in range and every subtraction below stays far from overflow.
    Ok(Cutoffs {
        now,
        last_day: now - MICROS_PER_DAY,
        last_week: now - 7 * MICROS_PER_DAY,
        last_month: days_from_civil(py, pm, pd) * MICROS_PER_DAY + time_of_day,
    })
}

/// Unix microseconds of a UTC calendar date plus `micros_of_day`.
pub fn civil_to_unix_micros(year: i64, month: u32, day: u32, micros_of_day: i64) -> i64 {
    days_from_civil(year, month, day) * MICROS_PER_DAY + micros_of_day
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` for Unix microseconds: RFC 3339 in UTC with a fixed width, so
/// that comparing the text compares the times. Same as [`format_rfc3339`] with 6 digits.
pub fn format_rfc3339_micros(micros: i64) -> String {
    format_rfc3339(micros, 6)
}

/// RFC 3339 in UTC for Unix microseconds, with `digits` (0 to 6, more counts as 6) fraction
/// digits, truncated: `2024-02-29T23:59:58Z` with 0, `2024-02-29T23:59:58.000Z` with 3. The
/// project's one RFC 3339 writer: the audit log and admin API (3 digits), the collector's
/// statistics (0), the counters' SQL timestamps (6).
pub fn format_rfc3339(micros: i64, digits: u32) -> String {
    let (y, m, d) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
    let rest = micros.rem_euclid(MICROS_PER_DAY);
    let secs = rest / 1_000_000;
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
    );
    let digits = digits.min(6);
    if digits > 0 {
        let fraction = rest % 1_000_000 / 10_i64.pow(6 - digits);
        out.push_str(&format!(".{fraction:0width$}", width = digits as usize));
    }
    out.push('Z');
    out
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1–12) of `year`.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Proleptic Gregorian conversions through 400-year eras (146,097 days each), shifting the year
// to start in March so that the leap day is the era's last day.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC calendar date `(year, month, day)` of a day number (days since 1970-01-01),
/// proleptic Gregorian.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    fn month_back(y: i64, m: u32, d: u32, tod: i64) -> (i64, u32, u32, i64) {
        let c = cutoffs(civil_to_unix_micros(y, m, d, tod)).unwrap();
        let days = c.last_month.div_euclid(MICROS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        (y, m, d, c.last_month.rem_euclid(MICROS_PER_DAY))
    }

    #[test]
    fn epoch_roundtrip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
            assert!(d >= 1 && d <= days_in_month(y, m));
        }
    }

    #[test]
    fn month_ends_and_leap_years() {
        let tod = 12 * H + 34 * 60_000_000 + 56_789_012;
        // Clamped to February in leap and common years, including the century rules.
        assert_eq!(month_back(2024, 3, 31, tod), (2024, 2, 29, tod));
        assert_eq!(month_back(2023, 3, 31, tod), (2023, 2, 28, tod));
        assert_eq!(month_back(2000, 3, 30, tod), (2000, 2, 29, tod));
        assert_eq!(month_back(1900, 3, 29, tod), (1900, 2, 28, tod));
        assert_eq!(month_back(2100, 3, 31, tod), (2100, 2, 28, tod));
        // 31 → 30-day month.
        assert_eq!(month_back(2026, 5, 31, tod), (2026, 4, 30, tod));
        assert_eq!(month_back(2026, 7, 31, tod), (2026, 6, 30, tod));
        // No clamping needed.
        assert_eq!(month_back(2026, 8, 31, tod), (2026, 7, 31, tod));
        assert_eq!(month_back(2026, 3, 1, 0), (2026, 2, 1, 0));
        // Year ends.
        assert_eq!(month_back(2027, 1, 1, 0), (2026, 12, 1, 0));
        assert_eq!(month_back(2027, 1, 31, 23 * H), (2026, 12, 31, 23 * H));
        assert_eq!(month_back(2026, 12, 31, tod), (2026, 11, 30, tod));
    }

    #[test]
    fn day_and_week_cross_boundaries() {
        let t = civil_to_unix_micros(2025, 1, 3, 5 * H);
        let c = cutoffs(t).unwrap();
        assert_eq!(c.now, t);
        assert_eq!(c.last_day, civil_to_unix_micros(2025, 1, 2, 5 * H));
        assert_eq!(c.last_week, civil_to_unix_micros(2024, 12, 27, 5 * H));
        let t = civil_to_unix_micros(2024, 3, 1, 0);
        assert_eq!(
            cutoffs(t).unwrap().last_day,
            civil_to_unix_micros(2024, 2, 29, 0)
        );
        // Before the epoch works too.
        let t = civil_to_unix_micros(1969, 3, 31, H);
        assert_eq!(
            cutoffs(t).unwrap().last_month,
            civil_to_unix_micros(1969, 2, 28, H)
        );
    }

    #[test]
    fn rfc3339() {
        let t = civil_to_unix_micros(2024, 2, 29, 23 * H + 59 * 60_000_000 + 58_000_042);
        assert_eq!(format_rfc3339_micros(t), "2024-02-29T23:59:58.000042Z");
        assert_eq!(format_rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(format_rfc3339(t, 0), "2024-02-29T23:59:58Z");
        assert_eq!(format_rfc3339(t + 987_000, 3), "2024-02-29T23:59:58.987Z");
        assert_eq!(format_rfc3339(t + 987_654, 3), "2024-02-29T23:59:58.987Z");
        assert_eq!(format_rfc3339(-1, 3), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(t, 9), format_rfc3339_micros(t));
    }

    #[test]
    fn range() {
        assert_eq!(cutoffs(i64::MAX), Err(OutOfRange));
        assert_eq!(cutoffs(i64::MIN), Err(OutOfRange));
        assert!(cutoffs(civil_to_unix_micros(1, 1, 1, 0)).is_ok());
        assert!(cutoffs(civil_to_unix_micros(9999, 12, 31, 0)).is_ok());
    }
}
