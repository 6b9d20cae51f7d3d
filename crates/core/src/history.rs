//! The closed vocabularies of a history row: what was done ([`Action`]), what set it off
//! ([`TriggerType`]) and how it ended ([`Status`]).
//!
//! They travel as enums from the controller through the engine to the store; only the store
//! (and the fronts, when they render) turn them into the spec's strings, and the store parses
//! them back when it reads. Nothing here knows SQL or JSON.

use std::fmt;

/// What a history row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    ScaleUp,
    ScaleDown,
    /// Limits set by hand through a front end.
    ManualScale,
}

/// What made the engine act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TriggerType {
    /// Usage over its percent-of-limit threshold (or, scaling down, under it).
    Threshold,
    /// CPU throttling or PSI pressure.
    Pressure,
    /// More agents are starting than the limits can hold.
    Queue,
    /// A forecast crossing the threshold.
    Predictive,
    /// The kernel OOM-killed a process of the unit.
    Oom,
    /// Someone asked for it.
    Manual,
    /// The `adaptive` policy's learned recommendation moved (not a hit: see its reason).
    Adaptive,
}

/// How a change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Success,
    Failed,
}

/// Spells a closed enum as the spec's strings, both ways.
macro_rules! spelled {
    ($ty:ident { $($variant:ident => $text:literal,)* }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant,)*];

            /// The spec's spelling, as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)*
                }
            }

            /// The value spelled `s`, or `None` for a spelling this version does not know.
            pub fn parse(s: &str) -> Option<$ty> {
                match s {
                    $($text => Some($ty::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled!(Action {
    ScaleUp => "scale_up",
    ScaleDown => "scale_down",
    ManualScale => "manual_scale",
});

spelled!(TriggerType {
    Threshold => "threshold",
    Pressure => "pressure",
    Queue => "queue",
    Predictive => "predictive",
    Oom => "oom",
    Manual => "manual",
    Adaptive => "adaptive",
});

spelled!(Status {
    Success => "success",
    Failed => "failed",
});

#[cfg(test)]
mod tests {
    use super::{Action, Status, TriggerType};

    /// Every spelling parses back to its value, and nothing else parses.
    #[test]
    fn spellings_round_trip() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            as_str: fn(T) -> &'static str,
            parse: fn(&str) -> Option<T>,
        ) {
            for &v in all {
                assert_eq!(parse(as_str(v)), Some(v), "{v:?}");
            }
            assert_eq!(parse("Scale_Up"), None);
            assert_eq!(parse(""), None);
        }
        check(Action::ALL, Action::as_str, Action::parse);
        check(TriggerType::ALL, TriggerType::as_str, TriggerType::parse);
        check(Status::ALL, Status::as_str, Status::parse);
    }
}
