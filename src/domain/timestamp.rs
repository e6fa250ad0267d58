//! Epoch-millisecond timestamps as sent in `X-TC-Timestamp` or
//! `x-ncp-apigw-timestamp`, and the window they must fall in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a timestamp header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Empty, or something other than ASCII digits.
    #[error("the timestamp must be epoch milliseconds in ASCII digits")]
    NotDigits,
    /// More than fits in a signed 64-bit integer.
    #[error("the timestamp is out of range")]
    OutOfRange,
}

/// A timestamp that is ASCII digits and fits an `i64`. The raw text is what
/// gets signed, so it is kept as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Parses ASCII digits only: no sign, no space, no other Unicode digit.
    pub fn parse(raw: &[u8]) -> Result<Timestamp, TimestampError> {
        if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
            return Err(TimestampError::NotDigits);
        }
        let mut value: i64 = 0;
        for digit in raw {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(digit - b'0')))
                .ok_or(TimestampError::OutOfRange)?;
        }
        Ok(Timestamp(value))
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }
}

/// Where a timestamp lies relative to the acceptance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowError {
    /// Older than `now - tolerance`.
    Stale,
    /// Later than `now + tolerance`.
    Future,
}

/// Accepts `now - tolerance <= ts <= now + tolerance` (bounds inclusive),
/// with saturating arithmetic so no input can overflow.
pub fn check_window(ts: Timestamp, now_ms: i64, tolerance: Duration) -> Result<(), WindowError> {
    let tolerance_ms = i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX);
    if ts.0 < now_ms.saturating_sub(tolerance_ms) {
        Err(WindowError::Stale)
    } else if ts.0 > now_ms.saturating_add(tolerance_ms) {
        Err(WindowError::Future)
    } else {
        Ok(())
    }
}

/// The wall clock in epoch milliseconds (0 if the clock is before 1970).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ascii_digits_that_fit_an_i64_parse() {
        let cases: &[(&str, Result<i64, TimestampError>, &str)] = &[
            ("1700000000000", Ok(1_700_000_000_000), "a normal timestamp"),
            ("0", Ok(0), "zero"),
            ("9223372036854775807", Ok(i64::MAX), "i64::MAX"),
            (
                "9223372036854775808",
                Err(TimestampError::OutOfRange),
                "i64::MAX + 1",
            ),
            (
                "1234567890123456789012345678901234567890",
                Err(TimestampError::OutOfRange),
                "40 digits",
            ),
            ("", Err(TimestampError::NotDigits), "empty"),
            ("-1700000000000", Err(TimestampError::NotDigits), "negative"),
            (
                "+1700000000000",
                Err(TimestampError::NotDigits),
                "plus sign",
            ),
            (
                "1700 000000000",
                Err(TimestampError::NotDigits),
                "inner space",
            ),
            (
                "١٧٠٠٠٠٠٠٠٠٠٠٠",
                Err(TimestampError::NotDigits),
                "Arabic-Indic digits",
            ),
            (
                "１７００",
                Err(TimestampError::NotDigits),
                "full-width digits",
            ),
            ("1.7e12", Err(TimestampError::NotDigits), "float notation"),
        ];
        for (raw, expected, what) in cases {
            assert_eq!(
                Timestamp::parse(raw.as_bytes()).map(Timestamp::millis),
                *expected,
                "{what}"
            );
        }
    }

    #[test]
    fn the_window_bounds_are_inclusive() {
        let now = 1_700_000_000_000;
        let tolerance = Duration::from_secs(300);
        let at = |ms: i64| check_window(Timestamp(ms), now, tolerance);
        assert_eq!(at(now), Ok(()));
        assert_eq!(at(now - 300_000), Ok(()), "lower bound is inside");
        assert_eq!(at(now + 300_000), Ok(()), "upper bound is inside");
        assert_eq!(at(now - 300_001), Err(WindowError::Stale));
        assert_eq!(at(now + 300_001), Err(WindowError::Future));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let tolerance = Duration::from_secs(u64::MAX);
        assert_eq!(check_window(Timestamp(i64::MAX), 0, tolerance), Ok(()));
        assert_eq!(
            check_window(Timestamp(0), i64::MAX, Duration::from_secs(1)),
            Err(WindowError::Stale)
        );
        assert_eq!(
            check_window(Timestamp(i64::MAX), 0, Duration::from_secs(1)),
            Err(WindowError::Future)
        );
    }
}
