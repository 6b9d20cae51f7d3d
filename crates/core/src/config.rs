//! The configuration row: the spec's `autoscaler_config` columns and our additions.
//!
//! Every field is declared once in [`config_fields!`] with its default and allowed range, so
//! the struct, its defaults, the field table the fronts validate against, and the error
//! messages cannot drift apart. A change is applied whole or not at all: [`Config::apply`]
//! returns a new, fully validated config or the first error, and the old one stays in force.

use std::fmt;

/// What the autoscaler does with its decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Decide and apply automatically.
    #[default]
    Enabled,
    /// Collect metrics only.
    Disabled,
    /// Collect metrics; limits change only through manual requests.
    Manual,
}

impl Mode {
    pub const NAMES: &'static str = "\"enabled\", \"disabled\", \"manual\"";
    pub const ALL: [Mode; 3] = [Mode::Enabled, Mode::Disabled, Mode::Manual];

    /// What the mode does, in one phrase: the words every front shows (MCP, CLI, docs).
    pub fn description(self) -> &'static str {
        match self {
            Mode::Enabled => "scales automatically",
            Mode::Disabled => "only collects metrics and never changes limits",
            Mode::Manual => "keeps the limits where they are until a manual scale changes them",
        }
    }

    /// Every mode with its description: `"enabled" scales automatically; ...`.
    pub fn summary() -> String {
        Mode::ALL
            .iter()
            .map(|m| format!("\"{}\" {}", m.as_str(), m.description()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enabled => "enabled",
            Mode::Disabled => "disabled",
            Mode::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Result<Mode, ConfigError> {
        match s {
            "enabled" => Ok(Mode::Enabled),
            "disabled" => Ok(Mode::Disabled),
            "manual" => Ok(Mode::Manual),
            other => Err(ConfigError::new(
                "mode",
                format!("unknown mode {other:?}"),
                Mode::NAMES.to_string(),
            )),
        }
    }
}

/// A named bundle of thresholds, streak length, cooldown and factor, or `adaptive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    Conservative,
    #[default]
    Balanced,
    Aggressive,
    /// Not a threshold bundle: the learned recommender of [`crate::adaptive`]. The threshold
    /// fields stay as they were and are not used while it runs.
    Adaptive,
}

impl Policy {
    pub const NAMES: &'static str = "\"conservative\", \"balanced\", \"aggressive\", \"adaptive\"";
    /// The spec's three bundles (not `adaptive`, which is ours).
    pub const ALL: [Policy; 3] = [Policy::Conservative, Policy::Balanced, Policy::Aggressive];
    /// Every policy a user can choose: the spec's three, then `adaptive`.
    pub const CHOICES: [Policy; 4] = [
        Policy::Conservative,
        Policy::Balanced,
        Policy::Aggressive,
        Policy::Adaptive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Conservative => "conservative",
            Policy::Balanced => "balanced",
            Policy::Aggressive => "aggressive",
            Policy::Adaptive => "adaptive",
        }
    }

    pub fn parse(s: &str) -> Result<Policy, ConfigError> {
        match s {
            "conservative" => Ok(Policy::Conservative),
            "balanced" => Ok(Policy::Balanced),
            "aggressive" => Ok(Policy::Aggressive),
            "adaptive" => Ok(Policy::Adaptive),
            other => Err(ConfigError::new(
                "policy",
                format!("unknown policy {other:?}"),
                Policy::NAMES.to_string(),
            )),
        }
    }

    /// The spec's parameter bundle ("Configuration Examples"): scale-up CPU and memory
    /// percent, consecutive checks, cooldown seconds, growth factor; `None` for `adaptive`.
    fn bundle(self) -> Option<(u32, u32, u32, u32, f64)> {
        match self {
            Policy::Conservative => Some((90, 85, 5, 600, 1.3)),
            Policy::Balanced => Some((85, 80, 3, 300, 1.5)),
            Policy::Aggressive => Some((75, 70, 2, 120, 2.0)),
            Policy::Adaptive => None,
        }
    }

    /// What the policy sets, from the bundle itself, so no front's words can drift from it:
    /// `scale up at 85% CPU / 80% memory after 3 checks, 5 min cooldown, x1.5 (the default)`.
    pub fn description(self) -> String {
        let Some((cpu, mem, checks, cooldown, factor)) = self.bundle() else {
            return "no thresholds: learned per-unit limits near the recent peak (peak of a \
                    moving window x a margin, the model chosen per unit by running cost); a \
                    hit limit grows x1.5 at once; gives back unused room"
                .to_string();
        };
        let default = if self == Policy::default() {
            " (the default)"
        } else {
            ""
        };
        format!(
            "scale up at {cpu}% CPU / {mem}% memory after {checks} checks, {} min cooldown, \
             x{factor:.1}{default}",
            cooldown / 60
        )
    }

    /// Every policy with its description: `"conservative" (scale up at ...), ...`.
    pub fn summary() -> String {
        Policy::CHOICES
            .iter()
            .map(|p| format!("\"{}\" ({})", p.as_str(), p.description()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn apply_to(self, c: &mut Config) {
        c.policy = self;
        let Some((cpu, mem, checks, cooldown, factor)) = self.bundle() else {
            return;
        };
        c.scale_up_cpu_percent = cpu;
        c.scale_up_memory_percent = mem;
        c.consecutive_scale_up_checks = checks;
        c.scale_cooldown_seconds = cooldown;
        c.scale_up_factor = factor;
    }
}

/// A rejected configuration value: which field, what was wrong, what is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
    pub allowed: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>, allowed: String) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
            allowed,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; allowed: {}",
            self.field, self.message, self.allowed
        )
    }
}

impl std::error::Error for ConfigError {}

/// A value for one field, as a front end received it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// One numeric field of [`Config`]: name, range, and how to read and write it.
pub struct Field {
    pub name: &'static str,
    pub min: f64,
    pub max: f64,
    pub integer: bool,
    pub doc: &'static str,
    pub get: fn(&Config) -> f64,
    set: fn(&mut Config, f64),
}

impl Field {
    /// The allowed range in words, e.g. "an integer in 1..=100".
    pub fn allowed(&self) -> String {
        if self.integer {
            format!("an integer in {}..={}", self.min, self.max)
        } else {
            format!("a number in {}..={}", self.min, self.max)
        }
    }
}

trait Kind {
    const INTEGER: bool;
    fn from_f64(v: f64) -> Self;
}
impl Kind for u32 {
    const INTEGER: bool = true;
    fn from_f64(v: f64) -> Self {
        v as u32
    }
}
impl Kind for f64 {
    const INTEGER: bool = false;
    fn from_f64(v: f64) -> Self {
        v
    }
}

macro_rules! config_fields {
    ($( $(#[doc = $doc:literal])+ $name:ident : $ty:ty = $default:expr, $min:literal ..= $max:literal; )*) => {
        /// The whole configuration of one managed unit (the spec's config row, id = 1).
        ///
        /// Outside this crate fields are read through methods of the same name and set only
        /// through [`Config::default`], [`Config::apply`] (what every front and the store
        /// use: it validates the whole), [`Config::with_mode`], [`Config::with_check_interval`]
        /// (each keeps a valid config valid) and [`Config::with_policy`], which does not
        /// check relations: a bundle's scale-up percent can fall to or below a scale-down
        /// percent set before. The engine validates every config it stores.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            pub(crate) mode: Mode,
            pub(crate) policy: Policy,
            /// Scale up before a breach when the forecast's upper bound crosses the threshold.
            pub(crate) predictive: bool,
            $( $(#[doc = $doc])+ pub(crate) $name: $ty, )*
        }

        impl Config {
            pub fn mode(&self) -> Mode {
                self.mode
            }
            pub fn policy(&self) -> Policy {
                self.policy
            }
            /// Scale up before a breach when the forecast's upper bound crosses the threshold.
            pub fn predictive(&self) -> bool {
                self.predictive
            }
            $( $(#[doc = $doc])+ pub fn $name(&self) -> $ty { self.$name } )*
        }

        impl Default for Config {
            fn default() -> Config {
                Config {
                    mode: Mode::Enabled,
                    policy: Policy::Balanced,
                    predictive: false,
                    $( $name: $default, )*
                }
            }
        }

        /// Every numeric field, in the spec's column order, then ours.
        pub static FIELDS: &[Field] = &[
            $( Field {
                name: stringify!($name),
                min: $min as f64,
                max: $max as f64,
                integer: <$ty as Kind>::INTEGER,
                doc: concat!($($doc),+),
                get: |c: &Config| c.$name as f64,
                set: |c: &mut Config, v: f64| c.$name = <$ty as Kind>::from_f64(v),
            }, )*
        ];
    };
}

config_fields! {
    /// Scale up when CPU use exceeds this percent of the current quota.
    scale_up_cpu_percent: u32 = 85, 1..=100;
    /// Scale up when memory use exceeds this percent of the current MemoryMax.
    scale_up_memory_percent: u32 = 80, 1..=100;
    /// Scale up when tasks exceed this percent of the current TasksMax.
    scale_up_tasks_percent: u32 = 85, 1..=100;
    /// Scale down only while CPU use is under this percent of the quota.
    scale_down_cpu_percent: u32 = 40, 0..=99;
    /// Scale down only while memory use is under this percent of MemoryMax.
    scale_down_memory_percent: u32 = 50, 0..=99;
    /// Scale down only while tasks are under this percent of TasksMax.
    scale_down_tasks_percent: u32 = 30, 0..=99;
    /// Seconds between two checks.
    check_interval_seconds: u32 = 30, 1..=3600;
    /// Seconds after an action during which no automatic action is taken.
    scale_cooldown_seconds: u32 = 300, 0..=86400;
    /// Consecutive breaching checks before scaling up.
    consecutive_scale_up_checks: u32 = 3, 1..=1000;
    /// Consecutive idle checks before scaling down.
    consecutive_scale_down_checks: u32 = 10, 1..=10000;
    /// Factor a breached limit grows by.
    scale_up_factor: f64 = 1.5, 1.01..=10;
    /// Factor a limit shrinks by.
    scale_down_factor: f64 = 0.6, 0.1..=0.99;
    /// Hard minimum CPUQuota, percent of one core.
    min_cpu_quota: u32 = 100, 1..=100000;
    /// Hard maximum CPUQuota, percent of one core.
    max_cpu_quota: u32 = 800, 1..=100000;
    /// Hard minimum MemoryMax, GiB.
    min_memory_max: u32 = 8, 1..=65536;
    /// Hard maximum MemoryMax, GiB.
    max_memory_max: u32 = 192, 1..=65536;
    /// Hard minimum TasksMax.
    min_tasks_max: u32 = 100, 1..=4194304;
    /// Hard maximum TasksMax.
    max_tasks_max: u32 = 1500, 1..=4194304;
    /// CPU cores never given to the unit.
    system_cpu_cores: u32 = 1, 0..=4096;
    /// GiB of RAM never given to the unit.
    system_memory_gb: u32 = 8, 0..=65536;
    /// Tasks never given to the unit.
    system_processes: u32 = 50, 0..=4194304;
    /// Smallest CPUQuota change, percent (the spec's 50% CPU).
    min_step_cpu_quota: u32 = 50, 0..=100000;
    /// Smallest MemoryMax change, GiB (the spec's 8 GB).
    min_step_memory_gb: u32 = 8, 0..=65536;
    /// Smallest TasksMax change (the spec's 50 tasks).
    min_step_tasks: u32 = 50, 0..=4194304;
    /// Also scale CPU up when more than this percent of CFS periods were throttled (0: off).
    scale_up_throttled_percent: u32 = 20, 0..=100;
    /// Also scale CPU up when cpu.pressure "some" avg10 exceeds this (0: off).
    scale_up_cpu_pressure_percent: u32 = 0, 0..=100;
    /// Also scale memory up when memory.pressure "some" avg10 exceeds this (0: off).
    scale_up_memory_pressure_percent: u32 = 10, 0..=100;
    /// Factor MemoryMax grows by at once after an OOM kill (at least +256 MiB).
    oom_bump_factor: f64 = 1.2, 1.0..=10;
    /// Hours of metrics kept in the store.
    metrics_retention_hours: u32 = 24, 1..=8760;
    /// Minutes of history the forecast regression uses (4x the longest horizon; see
    /// docs/DECISIONS.md, "Forecast calibration").
    forecast_window_minutes: u32 = 120, 1..=1440;
    /// No scale-up while the API quota is known and below this (agents would stall anyway).
    api_quota_floor: u32 = 0, 0..=2000000000;
}

impl Config {
    /// The field with this name, if there is one.
    pub fn field(name: &str) -> Option<&'static Field> {
        FIELDS.iter().find(|f| f.name == name)
    }

    /// A copy in another mode (every mode is valid with every config).
    pub fn with_mode(&self, mode: Mode) -> Config {
        Config {
            mode,
            ..self.clone()
        }
    }

    /// A copy that checks every `secs` seconds, rounded and kept within the field's range
    /// (1..=3600): what the simulator runs at its trace's step.
    pub fn with_check_interval(&self, secs: f64) -> Config {
        let secs = if secs.is_finite() { secs.round() } else { 1.0 };
        Config {
            check_interval_seconds: secs.clamp(1.0, 3600.0) as u32,
            ..self.clone()
        }
    }

    /// A copy with a policy's bundle applied.
    pub fn with_policy(&self, p: Policy) -> Config {
        let mut c = self.clone();
        p.apply_to(&mut c);
        c
    }

    /// Applies changes as one: a new validated config, or the first error and nothing changed.
    ///
    /// A `policy` among the changes is applied first, so explicit fields in the same request
    /// override its bundle.
    pub fn apply(&self, changes: &[(String, FieldValue)]) -> Result<Config, ConfigError> {
        let mut c = self.clone();
        for (name, value) in changes.iter().filter(|(n, _)| n == "policy") {
            let FieldValue::Text(s) = value else {
                return Err(type_error(name, Policy::NAMES));
            };
            Policy::parse(s)?.apply_to(&mut c);
        }
        for (name, value) in changes {
            match (name.as_str(), value) {
                ("policy", _) => {}
                ("mode", FieldValue::Text(s)) => c.mode = Mode::parse(s)?,
                ("mode", _) => return Err(type_error(name, Mode::NAMES)),
                ("predictive", FieldValue::Bool(b)) => c.predictive = *b,
                ("predictive", _) => return Err(type_error(name, "true or false")),
                _ => {
                    let Some(field) = Config::field(name) else {
                        return Err(ConfigError::new(
                            name.clone(),
                            "unknown field",
                            format!("one of mode, policy, predictive, {}", field_names()),
                        ));
                    };
                    let FieldValue::Number(v) = value else {
                        return Err(type_error(name, &field.allowed()));
                    };
                    check_value(field, *v)?;
                    (field.set)(&mut c, *v);
                }
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks every field's range and the relations between fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for f in FIELDS {
            check_value(f, (f.get)(self))?;
        }
        let pairs = [
            (
                "scale_down_cpu_percent",
                self.scale_down_cpu_percent,
                "scale_up_cpu_percent",
                self.scale_up_cpu_percent,
            ),
            (
                "scale_down_memory_percent",
                self.scale_down_memory_percent,
                "scale_up_memory_percent",
                self.scale_up_memory_percent,
            ),
            (
                "scale_down_tasks_percent",
                self.scale_down_tasks_percent,
                "scale_up_tasks_percent",
                self.scale_up_tasks_percent,
            ),
        ];
        for (low, lv, high, hv) in pairs {
            if lv >= hv {
                return Err(ConfigError::new(
                    low,
                    format!("{lv} is not below {high} ({hv}); the autoscaler would flap"),
                    format!("an integer in 0..={}", hv.saturating_sub(1)),
                ));
            }
        }
        let ranges = [
            (
                "min_cpu_quota",
                self.min_cpu_quota,
                "max_cpu_quota",
                self.max_cpu_quota,
            ),
            (
                "min_memory_max",
                self.min_memory_max,
                "max_memory_max",
                self.max_memory_max,
            ),
            (
                "min_tasks_max",
                self.min_tasks_max,
                "max_tasks_max",
                self.max_tasks_max,
            ),
        ];
        for (low, lv, high, hv) in ranges {
            if lv > hv {
                return Err(ConfigError::new(
                    low,
                    format!("{lv} is above {high} ({hv})"),
                    format!("an integer in 1..={hv}"),
                ));
            }
        }
        Ok(())
    }
}

fn check_value(f: &Field, v: f64) -> Result<(), ConfigError> {
    if !v.is_finite() {
        return Err(ConfigError::new(f.name, "not a finite number", f.allowed()));
    }
    if f.integer && v.fract() != 0.0 {
        return Err(ConfigError::new(
            f.name,
            format!("{v} is not a whole number"),
            f.allowed(),
        ));
    }
    if v < f.min || v > f.max {
        return Err(ConfigError::new(
            f.name,
            format!("{v} is out of range"),
            f.allowed(),
        ));
    }
    Ok(())
}

fn type_error(field: &str, allowed: &str) -> ConfigError {
    ConfigError::new(field, "wrong type", allowed.to_string())
}

fn field_names() -> String {
    FIELDS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str, v: f64) -> (String, FieldValue) {
        (name.to_string(), FieldValue::Number(v))
    }

    fn check(changes: &[(String, FieldValue)], expect: Result<&[(&str, f64)], &str>) {
        let base = Config::default();
        match (base.apply(changes), expect) {
            (Ok(c), Ok(fields)) => {
                for (name, want) in fields {
                    let got = (Config::field(name).expect("known field").get)(&c);
                    assert_eq!(got, *want, "{name} after {changes:?}");
                }
            }
            (Err(e), Err(field)) => assert_eq!(e.field, field, "{e}"),
            (got, want) => panic!("{changes:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn apply_table() {
        let text = |k: &str, v: &str| (k.to_string(), FieldValue::Text(v.to_string()));
        check(
            &[
                n("scale_up_cpu_percent", 75.0),
                n("consecutive_scale_up_checks", 2.0),
                n("scale_cooldown_seconds", 120.0),
            ],
            Ok(&[
                ("scale_up_cpu_percent", 75.0),
                ("consecutive_scale_up_checks", 2.0),
                ("scale_cooldown_seconds", 120.0),
            ]),
        );
        check(
            &[text("policy", "aggressive")],
            Ok(&[
                ("scale_up_cpu_percent", 75.0),
                ("scale_up_factor", 2.0),
                ("scale_cooldown_seconds", 120.0),
            ]),
        );
        check(
            &[text("policy", "conservative"), n("scale_up_factor", 1.1)],
            Ok(&[
                ("scale_up_cpu_percent", 90.0),
                ("scale_up_factor", 1.1),
                ("consecutive_scale_up_checks", 5.0),
            ]),
        );
        check(
            &[n("scale_up_cpu_percent", 150.0)],
            Err("scale_up_cpu_percent"),
        );
        check(
            &[n("scale_up_cpu_percent", 0.0)],
            Err("scale_up_cpu_percent"),
        );
        check(
            &[n("scale_up_cpu_percent", 85.5)],
            Err("scale_up_cpu_percent"),
        );
        check(&[n("scale_up_factor", f64::NAN)], Err("scale_up_factor"));
        check(
            &[n("scale_up_factor", f64::INFINITY)],
            Err("scale_up_factor"),
        );
        check(
            &[n("scale_cooldown_seconds", -1.0)],
            Err("scale_cooldown_seconds"),
        );
        check(
            &[n("check_interval_seconds", 1e300)],
            Err("check_interval_seconds"),
        );
        check(&[n("no_such_field", 1.0)], Err("no_such_field"));
        check(
            &[text("scale_up_cpu_percent", "85")],
            Err("scale_up_cpu_percent"),
        );
        check(&[text("policy", "yolo")], Err("policy"));
        check(&[text("mode", "on")], Err("mode"));
        check(
            &[n("scale_down_cpu_percent", 85.0)],
            Err("scale_down_cpu_percent"),
        );
        check(
            &[n("scale_up_memory_percent", 50.0)],
            Err("scale_down_memory_percent"),
        );
        check(&[n("min_cpu_quota", 900.0)], Err("min_cpu_quota"));
        check(&[n("max_tasks_max", 50.0)], Err("min_tasks_max"));
    }

    /// The names every front lists come from one place and parse back; the words describe
    /// the bundle as it is.
    #[test]
    fn names_and_descriptions_match_the_variants() {
        let listed = |names: &str| -> Vec<String> {
            names
                .split(',')
                .map(|n| n.trim().trim_matches('"').to_string())
                .collect()
        };
        let modes: Vec<String> = Mode::ALL.iter().map(|m| m.as_str().to_string()).collect();
        assert_eq!(listed(Mode::NAMES), modes);
        let policies: Vec<String> = Policy::CHOICES
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        assert_eq!(listed(Policy::NAMES), policies);
        assert_eq!(Policy::parse("adaptive"), Ok(Policy::Adaptive));
        assert!(Policy::summary().contains("\"adaptive\" (no thresholds"));
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.as_str()), Ok(m));
            assert!(Mode::summary().contains(m.description()));
        }
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.as_str()), Ok(p));
            let c = Config::default().with_policy(p);
            let d = p.description();
            assert!(
                d.contains(&format!("{}% CPU", c.scale_up_cpu_percent)),
                "{d}"
            );
            assert!(
                d.contains(&format!("after {} checks", c.consecutive_scale_up_checks)),
                "{d}"
            );
        }
        assert_eq!(
            Policy::Balanced.description(),
            "scale up at 85% CPU / 80% memory after 3 checks, 5 min cooldown, x1.5 (the default)"
        );
    }

    #[test]
    fn defaults_are_the_spec_defaults_and_valid() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            (
                c.scale_up_cpu_percent,
                c.scale_up_memory_percent,
                c.scale_up_tasks_percent
            ),
            (85, 80, 85)
        );
        assert_eq!(
            (
                c.scale_down_cpu_percent,
                c.scale_down_memory_percent,
                c.scale_down_tasks_percent
            ),
            (40, 50, 30)
        );
        assert_eq!(
            (c.check_interval_seconds, c.scale_cooldown_seconds),
            (30, 300)
        );
        assert_eq!(
            (
                c.consecutive_scale_up_checks,
                c.consecutive_scale_down_checks
            ),
            (3, 10)
        );
        assert_eq!((c.scale_up_factor, c.scale_down_factor), (1.5, 0.6));
        assert_eq!(
            (
                c.min_cpu_quota,
                c.max_cpu_quota,
                c.min_memory_max,
                c.max_memory_max
            ),
            (100, 800, 8, 192)
        );
        assert_eq!((c.min_tasks_max, c.max_tasks_max), (100, 1500));
        assert_eq!(
            (c.system_cpu_cores, c.system_memory_gb, c.system_processes),
            (1, 8, 50)
        );
        assert_eq!(c, c.with_policy(Policy::Balanced));
    }

    #[test]
    fn a_rejected_change_leaves_nothing_half_applied() {
        let base = Config::default();
        let err = base.apply(&[n("scale_up_cpu_percent", 70.0), n("scale_up_factor", 0.5)]);
        assert!(err.is_err());
        assert_eq!(base, Config::default());
    }
}
