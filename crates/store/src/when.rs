//! Times and durations as users and the spec write them: the one parser and formatter of
//! both, for every front (the range endpoint, `autoscaler export`, the history's timestamps).
//!
//! It knows text, not clocks: "now" is an argument.

use autoscaler_core::Millis;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The spec's time format: `YYYY-MM-DDTHH:MM:SS` in UTC, no zone suffix.
const TS_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

/// A time as the spec writes it: `YYYY-MM-DDTHH:MM:SS` in UTC, no zone suffix.
///
/// Milliseconds are truncated toward the past. Times before year 0 or after year 9999 are
/// clamped to those years' ends; this never panics.
pub fn format_ts(at: Millis) -> String {
    const MIN_SECS: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const MAX_SECS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = at.0.div_euclid(1000).clamp(MIN_SECS, MAX_SECS);
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(TS_FORMAT).ok())
        .unwrap_or_else(|| format!("@{secs}"))
}

/// A duration such as `90s`, `15m`, `24h` or `2days 3h`, in milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    humantime::parse_duration(text.trim())
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

/// A point in time: RFC 3339 (`2026-01-25T10:00:00Z`, `...+02:00`) or the spec's
/// `2026-01-25T10:00:00` (taken as UTC).
pub fn parse_time(text: &str) -> Option<Millis> {
    let text = text.trim();
    let t = OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        PrimitiveDateTime::parse(text, TS_FORMAT)
            .ok()
            .map(PrimitiveDateTime::assume_utc)
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .map(Millis)
}

/// `since` as every front takes it: a duration back from `now` (`24h`), or a time
/// ([`parse_time`]). `None` when it is neither.
pub fn parse_since(text: &str, now: Millis) -> Option<Millis> {
    parse_duration_ms(text)
        .map(|ms| Millis(now.0.saturating_sub(ms)))
        .or_else(|| parse_time(text))
}

/// A step: whole seconds (`30`) or a duration (`2m`), in milliseconds.
pub fn parse_step_ms(text: &str) -> Option<i64> {
    match text.trim().parse::<i64>() {
        Ok(secs) => secs.checked_mul(1000),
        Err(_) => parse_duration_ms(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_table() {
        let now = Millis(1_800_000_000_000);
        let cases: &[(&str, Option<i64>)] = &[
            ("24h", Some(now.0 - 86_400_000)),
            (" 90m ", Some(now.0 - 5_400_000)),
            ("2026-01-25T10:00:00", Some(1_769_335_200_000)),
            ("2026-01-25T10:00:00Z", Some(1_769_335_200_000)),
            ("2026-01-25T12:00:00+02:00", Some(1_769_335_200_000)),
            ("2026-02-30T10:00:00", None),
            ("yesterday", None),
            ("-5m", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_since(text, now).map(|m| m.0), *want, "{text:?}");
        }
    }

    #[test]
    fn step_table() {
        let cases: &[(&str, Option<i64>)] = &[
            ("30", Some(30_000)),
            ("2m", Some(120_000)),
            ("500ms", Some(500)),
            ("-5", Some(-5_000)),
            ("fast", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_step_ms(text), *want, "{text:?}");
        }
    }

    #[test]
    fn a_formatted_time_parses_back() {
        let at = Millis(1_769_335_200_000);
        assert_eq!(parse_time(&format_ts(at)), Some(at));
    }
}
