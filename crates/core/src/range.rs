//! The time range a chart reads: which buckets of which width, checked once for every front.
//!
//! A [`Range`] is planned from a start time, an optional step and "now"; parsing the user's
//! text into those numbers is the edge's job (the store's `when` module). The plan aligns the
//! start down to a multiple of the step, so bucket edges stay put from one refresh to the
//! next and a bucket once finished never changes (which is what lets the store cache it).

use std::fmt;

use crate::Millis;

/// The most points a default step gives; one per pixel of a wide chart is plenty.
pub const TARGET_POINTS: i64 = 720;
/// The most points an explicit step may ask for, so an answer stays well under 1 MB.
pub const MAX_POINTS: i64 = 10_000;
/// The longest range one request may cover (the store keeps at most a year).
pub const MAX_RANGE_MS: i64 = 366 * 86_400_000;
/// Steps a default is rounded up to, in seconds, so bucket edges fall on round times.
const NICE_STEPS: [i64; 16] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 86_400,
];
/// How far back a range reaches when the request names no start: one hour.
pub const DEFAULT_WINDOW_MS: i64 = 3_600_000;

/// What `since` accepts, for error messages.
pub const SINCE_ALLOWED: &str =
    "a duration such as 15m, 1h or 24h, or a time such as 2026-01-25T10:00:00Z (UTC)";
/// What `step` accepts, for error messages.
pub const STEP_ALLOWED: &str =
    "a duration of at least 1s such as 5s or 2m, or whole seconds; at most 10000 points per range";

/// The buckets `[since, until)` of `step_ms` a range request reads. Only [`Range::plan`]
/// makes one, so `since` is aligned to the step, the step is at least a second, and the
/// window is in the past and at most [`MAX_RANGE_MS`] long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    since: Millis,
    until: Millis,
    step_ms: i64,
}

/// Why a range was refused: which request field, and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError {
    /// `"since"` or `"step"`.
    pub field: &'static str,
    pub message: String,
}

impl RangeError {
    /// What the refused field accepts.
    pub fn allowed(&self) -> &'static str {
        if self.field == "step" {
            STEP_ALLOWED
        } else {
            SINCE_ALLOWED
        }
    }
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (allowed: {})", self.message, self.allowed())
    }
}

impl std::error::Error for RangeError {}

impl Range {
    /// Plans the range from `since` (default: an hour before `now`) to just after `now`.
    /// `step_ms` `None` picks a round step giving at most [`TARGET_POINTS`] points.
    /// `since_text` and `step_text` are the user's words, quoted back in errors.
    pub fn plan(
        since: Option<Millis>,
        step_ms: Option<i64>,
        now: Millis,
        since_text: &str,
        step_text: &str,
    ) -> Result<Range, RangeError> {
        let bad = |field, message: String| RangeError { field, message };
        let since_ms = since.map_or(now.0.saturating_sub(DEFAULT_WINDOW_MS), |s| s.0);
        let window = now.0.saturating_sub(since_ms);
        if window <= 0 {
            return Err(bad(
                "since",
                format!("since {since_text} is not in the past"),
            ));
        }
        if window > MAX_RANGE_MS {
            return Err(bad(
                "since",
                format!("since {since_text} reaches back more than 366 days"),
            ));
        }
        let step_ms = match step_ms {
            None => {
                let wanted = (window + TARGET_POINTS - 1) / TARGET_POINTS;
                NICE_STEPS
                    .iter()
                    .map(|s| s * 1000)
                    .find(|s| *s >= wanted)
                    .unwrap_or((wanted + 86_399_999) / 86_400_000 * 86_400_000)
            }
            Some(ms) if ms < 1000 => {
                return Err(bad(
                    "step",
                    format!("step {step_text:?} is shorter than 1s"),
                ));
            }
            Some(ms) if window / ms > MAX_POINTS => {
                return Err(bad(
                    "step",
                    format!(
                        "step {step_text:?} would give {} points for this range",
                        window / ms
                    ),
                ));
            }
            Some(ms) => ms,
        };
        Ok(Range {
            since: Millis(since_ms.div_euclid(step_ms) * step_ms),
            until: Millis(now.0.saturating_add(1)),
            step_ms,
        })
    }

    /// The first bucket's start (aligned to the step).
    pub fn since(&self) -> Millis {
        self.since
    }

    /// Just after "now": the range holds every sample up to the moment it was planned.
    pub fn until(&self) -> Millis {
        self.until
    }

    /// The width of a bucket, at least 1000 ms.
    pub fn step_ms(&self) -> i64 {
        self.step_ms
    }

    /// Whether `at` lies in `[since, until)`.
    pub fn contains(&self, at: Millis) -> bool {
        at >= self.since && at < self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `since`, `step`, and `Ok((since, step_ms))` or `Err(field)`.
    type Case = (Option<i64>, Option<i64>, Result<(i64, i64), &'static str>);

    /// `Ok((since, step_ms))` or `Err(field)`.
    fn check(since: Option<i64>, step: Option<i64>, want: Result<(i64, i64), &str>) {
        let now = Millis(1_800_000_000_000);
        let got = Range::plan(since.map(Millis), step, now, "x", "y").map(|r| {
            assert_eq!(r.until(), Millis(now.0 + 1));
            (r.since().0, r.step_ms())
        });
        let got = got.map_err(|e| e.field);
        assert_eq!(got, want, "since={since:?} step={step:?}");
    }

    #[test]
    fn plans() {
        let now = 1_800_000_000_000;
        let cases: &[Case] = &[
            // Defaults: an hour in 5 s steps (720 points).
            (None, None, Ok((now - 3_600_000, 5_000))),
            (Some(now - 900_000), None, Ok((now - 900_000, 2_000))),
            (
                Some(now - 86_400_000),
                None,
                Ok((now - 86_400_000, 120_000)),
            ),
            (
                Some(now - 3_600_000),
                Some(10_000),
                Ok((now - 3_600_000, 10_000)),
            ),
            // Aligned down to the step.
            (Some(now - 61_000), Some(2_000), Ok((now - 62_000, 2_000))),
            // A year and more gets whole-day steps.
            (
                Some(now - 365 * 86_400_000),
                None,
                Ok((now - 365 * 86_400_000 - 28_800_000, 86_400_000)),
            ),
            (Some(now), None, Err("since")),
            (Some(now + 1), None, Err("since")),
            (Some(now - 400 * 86_400_000), None, Err("since")),
            (Some(now - 3_600_000), Some(500), Err("step")),
            (Some(now - 3_600_000), Some(0), Err("step")),
            (Some(now - 3_600_000), Some(-5_000), Err("step")),
            (Some(now - 86_400_000), Some(1_000), Err("step")),
        ];
        for (since, step, want) in cases {
            check(*since, *step, *want);
        }
    }

    #[test]
    fn errors_say_what_is_allowed() {
        let now = Millis(1_800_000_000_000);
        let e = Range::plan(None, Some(10), now, "", "10ms").expect_err("a 10 ms step");
        assert_eq!(e.allowed(), STEP_ALLOWED);
        assert!(e.to_string().contains("10ms"), "{e}");
    }
}
