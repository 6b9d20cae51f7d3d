//! A manual scale as a user asks for it: the limits in the units users write them in (CPU in
//! percent of one core, memory in GiB, tasks) and why. [`ManualScale::new`] is the one place
//! these values are checked and converted, so HTTP, MCP and the CLI (which all send the same
//! request) refuse the same input with the same words; the fronts check only the shape (a
//! number, a string). Whether the limits fit the unit's bounds is the engine's check, against
//! the config and host of that moment ([`crate::Bounds::check`]).

use std::fmt;

use crate::limits::{GIB, Limits, MIB};

/// What `cpu_quota` may be.
pub const CPU_ALLOWED: &str = "an integer percent of one core, e.g. 200 for two cores";
/// What `memory_max` may be.
pub const MEMORY_ALLOWED: &str = "GiB, a number greater than 0";
/// What `tasks_max` may be.
pub const TASKS_ALLOWED: &str = "an integer number of tasks";
/// What `reason` may be.
pub const REASON_ALLOWED: &str = "a string of at most 1000 characters";

/// The longest reason kept, in characters: it goes to the history and every log line.
pub const MAX_REASON_CHARS: usize = 1000;

/// The reason recorded when the user gave none.
pub const DEFAULT_REASON: &str = "manual scale";

/// The largest memory a request may name, in GiB: far above any host, small enough that the
/// conversion to bytes cannot overflow.
pub const MAX_MEMORY_GIB: u32 = 1_000_000;

/// A checked manual scale request: at least one limit, each positive and whole in its unit
/// (memory in whole MiB), and a reason of at most [`MAX_REASON_CHARS`].
#[derive(Debug, Clone, PartialEq)]
pub struct ManualScale {
    limits: Limits,
    reason: String,
}

/// A refused manual scale: the field at fault (none when the request names no limit at all),
/// what was wrong, and what is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleError {
    pub field: Option<&'static str>,
    pub message: String,
    pub allowed: &'static str,
}

impl fmt::Display for ScaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; allowed: {}", self.message, self.allowed)
    }
}

impl std::error::Error for ScaleError {}

impl ManualScale {
    /// Checks a request as the user wrote it. Each limit is optional (unset ones keep their
    /// value) but at least one is needed; numbers arrive as the fronts parsed them (JSON
    /// numbers are `f64`: whole values are exact up to 2^53, far above any bound). Memory
    /// is rounded to whole MiB: systemd rounds to pages anyway, and the bounds check sees
    /// what is set. A blank reason is recorded as [`DEFAULT_REASON`].
    pub fn new(
        cpu_quota: Option<f64>,
        memory_max_gib: Option<f64>,
        tasks_max: Option<f64>,
        reason: Option<&str>,
    ) -> Result<ManualScale, ScaleError> {
        if cpu_quota.is_none() && memory_max_gib.is_none() && tasks_max.is_none() {
            return Err(ScaleError {
                field: None,
                message: "nothing to scale: give at least one of cpu_quota, memory_max, tasks_max"
                    .into(),
                allowed: "cpu_quota (percent), memory_max (GiB), tasks_max",
            });
        }
        let cpu = cpu_quota
            .map(|v| {
                let n = whole("cpu_quota", v, CPU_ALLOWED)?;
                u32::try_from(n).map_err(|_| ScaleError {
                    field: Some("cpu_quota"),
                    message: format!("cpu_quota {} is larger than any CPU quota", shown(v)),
                    allowed: CPU_ALLOWED,
                })
            })
            .transpose()?;
        let tasks = tasks_max
            .map(|v| whole("tasks_max", v, TASKS_ALLOWED))
            .transpose()?;
        let memory = memory_max_gib.map(memory_bytes).transpose()?;
        let reason = reason.unwrap_or_default();
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(ScaleError {
                field: Some("reason"),
                message: format!("reason is longer than {MAX_REASON_CHARS} characters"),
                allowed: REASON_ALLOWED,
            });
        }
        let reason = if reason.trim().is_empty() {
            DEFAULT_REASON
        } else {
            reason
        };
        Ok(ManualScale {
            limits: Limits {
                cpu_quota: cpu,
                memory_max: memory,
                tasks_max: tasks,
            },
            reason: reason.to_string(),
        })
    }

    /// The limits asked for; unset ones keep the unit's current value.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Why, as the history records it.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The reason, owned.
    pub fn into_reason(self) -> String {
        self.reason
    }
}

/// A positive whole number.
fn whole(field: &'static str, v: f64, allowed: &'static str) -> Result<u64, ScaleError> {
    // `u64::MAX as f64` is 2^64, itself too large: the comparison is strict.
    if v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v < u64::MAX as f64 {
        Ok(v as u64)
    } else {
        Err(ScaleError {
            field: Some(field),
            message: format!("{field} {} is not a positive whole number", shown(v)),
            allowed,
        })
    }
}

/// GiB as users write them to bytes, in whole MiB.
fn memory_bytes(gib: f64) -> Result<u64, ScaleError> {
    let refuse = |why: &str| ScaleError {
        field: Some("memory_max"),
        message: format!("memory_max {} {why}", shown(gib)),
        allowed: MEMORY_ALLOWED,
    };
    if !(gib.is_finite() && gib > 0.0 && gib <= f64::from(MAX_MEMORY_GIB)) {
        return Err(refuse("is not a positive size"));
    }
    let mib = ((gib * GIB as f64) / MIB as f64).round();
    if mib < 1.0 {
        return Err(refuse("is less than 1 MiB"));
    }
    Ok(mib as u64 * MIB)
}

/// A number as the user most likely wrote it: whole ones without a fraction, others in the
/// shortest form that reads back the same (`1e300`, not 301 digits).
fn shown(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Input<'a> = (Option<f64>, Option<f64>, Option<f64>, Option<&'a str>);

    /// `Ok((cpu, memory bytes, tasks, reason))` or `Err((field, words in the message))`.
    type Want<'a> =
        Result<(Option<u32>, Option<u64>, Option<u64>, &'a str), (Option<&'a str>, &'a str)>;

    fn check(input: Input<'_>, want: Want<'_>) {
        let (cpu, mem, tasks, reason) = input;
        let got = ManualScale::new(cpu, mem, tasks, reason);
        match (got, want) {
            (Ok(s), Ok((c, m, t, r))) => {
                assert_eq!(
                    s.limits(),
                    Limits {
                        cpu_quota: c,
                        memory_max: m,
                        tasks_max: t
                    },
                    "{input:?}"
                );
                assert_eq!(s.reason(), r, "{input:?}");
            }
            (Err(e), Err((field, words))) => {
                assert_eq!(e.field, field, "{input:?}: {e}");
                assert!(e.message.contains(words), "{input:?}: {e}");
                assert!(!e.allowed.is_empty(), "{input:?}: {e}");
            }
            (got, want) => panic!("{input:?}: got {got:?}, wanted {want:?}"),
        }
    }

    #[test]
    fn values_are_checked_and_converted() {
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        let long = long.as_str();
        // Characters, not bytes: 1000 two-byte characters are allowed.
        let at_most = "é".repeat(MAX_REASON_CHARS);
        let at_most = at_most.as_str();
        let cases: Vec<(Input<'_>, Want<'_>)> = vec![
            // Accepted: each limit alone, all three, memory in whole MiB.
            (
                (Some(200.0), None, None, None),
                Ok((Some(200), None, None, DEFAULT_REASON)),
            ),
            (
                (None, Some(2.0), None, Some("load")),
                Ok((None, Some(2 * GIB), None, "load")),
            ),
            (
                (None, Some(1.5), None, None),
                Ok((None, Some(1536 * MIB), None, DEFAULT_REASON)),
            ),
            (
                (None, Some(0.001), None, None),
                Ok((None, Some(MIB), None, DEFAULT_REASON)),
            ),
            (
                (None, None, Some(750.0), Some("  ")),
                Ok((None, None, Some(750), DEFAULT_REASON)),
            ),
            (
                (Some(600.0), Some(96.0), Some(750.0), Some(at_most)),
                Ok((Some(600), Some(96 * GIB), Some(750), at_most)),
            ),
            (
                (Some(4_294_967_295.0), None, None, None),
                Ok((Some(u32::MAX), None, None, DEFAULT_REASON)),
            ),
            // Refused: nothing to scale (a reason alone is not a scale).
            ((None, None, None, None), Err((None, "nothing to scale"))),
            (
                (None, None, None, Some("why")),
                Err((None, "nothing to scale")),
            ),
            // Zero, negative, fractional, non-finite and huge numbers.
            (
                (Some(0.0), None, None, None),
                Err((
                    Some("cpu_quota"),
                    "cpu_quota 0 is not a positive whole number",
                )),
            ),
            (
                (Some(-100.0), None, None, None),
                Err((Some("cpu_quota"), "-100 is not")),
            ),
            (
                (Some(100.5), None, None, None),
                Err((Some("cpu_quota"), "100.5 is not")),
            ),
            (
                (Some(f64::NAN), None, None, None),
                Err((Some("cpu_quota"), "NaN is not")),
            ),
            (
                (Some(1e300), None, None, None),
                Err((Some("cpu_quota"), "1e300 is not")),
            ),
            (
                (Some(18446744073709551616.0), None, None, None),
                Err((Some("cpu_quota"), "not a positive whole")),
            ),
            (
                (Some(4_294_967_396.0), None, None, None),
                Err((Some("cpu_quota"), "larger than any CPU quota")),
            ),
            (
                (None, Some(0.0), None, None),
                Err((Some("memory_max"), "memory_max 0 is not a positive size")),
            ),
            (
                (None, Some(-8.0), None, None),
                Err((Some("memory_max"), "-8 is not")),
            ),
            (
                (None, Some(f64::INFINITY), None, None),
                Err((Some("memory_max"), "inf is not")),
            ),
            (
                (None, Some(1e300), None, None),
                Err((Some("memory_max"), "1e300 is not")),
            ),
            (
                (None, Some(1e-300), None, None),
                Err((Some("memory_max"), "less than 1 MiB")),
            ),
            (
                (None, None, Some(0.0), None),
                Err((Some("tasks_max"), "tasks_max 0 is not")),
            ),
            (
                (None, None, Some(7.5), None),
                Err((Some("tasks_max"), "7.5 is not")),
            ),
            // The first bad field is named, in the order cpu, tasks, memory, reason.
            (
                (Some(0.0), Some(0.0), None, None),
                Err((Some("cpu_quota"), "cpu_quota")),
            ),
            (
                (None, Some(0.0), Some(0.0), None),
                Err((Some("tasks_max"), "tasks_max")),
            ),
            (
                (Some(100.0), None, None, Some(long)),
                Err((Some("reason"), "longer than 1000")),
            ),
            (
                (Some(0.0), None, None, Some(long)),
                Err((Some("cpu_quota"), "cpu_quota")),
            ),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }
}
