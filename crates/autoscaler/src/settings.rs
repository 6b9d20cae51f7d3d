//! Daemon settings: where to listen, where the store is, which units, how to apply limits.
//!
//! They come from embedded defaults, then an optional TOML file, then flags and environment
//! (highest). Thresholds, factors, bounds, reserves and the interval are NOT here: they live
//! in the store's config row (the spec's columns), changed through the API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use autoscaler_core::UnitName;
use serde::Deserialize;

/// The unit managed when none is named: AutoCoder's.
pub const DEFAULT_UNIT: &str = "autocoder-ui.service";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8888";

/// How limits are applied and which manager a unit belongs to: the systemd crate's own
/// enums, read from the config file through their `FromStr`.
pub use autoscaler_systemd::{Bus, Strategy};

/// Reads an optional setting through its `FromStr`, so the file takes the same words as the
/// flags and the error lists them.
fn parsed<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    Option::<String>::deserialize(d)?
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// Where AutoCoder's workload signals come from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalSettings {
    pub agent_script: Option<String>,
    pub registry_db: Option<PathBuf>,
    pub project_dirs: Vec<PathBuf>,
    pub api_quota_file: Option<PathBuf>,
}

/// A `[[unit]]` table: a unit with its manager and the AutoCoder projects it runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUnit {
    pub name: String,
    #[serde(default, deserialize_with = "parsed")]
    pub bus: Option<Bus>,
    #[serde(default)]
    pub projects: Vec<PathBuf>,
}

/// One managed unit.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitSettings {
    pub name: UnitName,
    pub bus: Bus,
    /// AutoCoder projects this unit runs; `None`: the default unit takes the registry's and
    /// `[signals] project_dirs`, other units none.
    pub projects: Option<Vec<PathBuf>>,
}

/// The TOML file's shape; every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSettings {
    pub listen: Option<String>,
    pub db: Option<PathBuf>,
    /// Unit names, each optionally prefixed with its manager: `system:nginx.service`.
    pub units: Vec<String>,
    /// Units with their manager and projects (`[[unit]]` tables).
    pub unit: Vec<FileUnit>,
    #[serde(deserialize_with = "parsed")]
    pub bus: Option<Bus>,
    #[serde(deserialize_with = "parsed")]
    pub strategy: Option<Strategy>,
    pub token: Option<String>,
    pub cors_origins: Vec<String>,
    pub signals: SignalSettings,
}

/// Settings in force.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub units: Vec<UnitSettings>,
    pub strategy: Strategy,
    pub token: Option<String>,
    pub cors_origins: Vec<String>,
    pub signals: SignalSettings,
}

/// Values from flags and environment; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub db: Option<PathBuf>,
    pub units: Vec<String>,
    pub bus: Option<Bus>,
    pub strategy: Option<Strategy>,
    pub token: Option<String>,
}

pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

impl Settings {
    pub fn resolve(o: Overrides) -> anyhow::Result<Settings> {
        let file = match &o.config {
            Some(p) => read_file(p)?,
            None => FileSettings::default(),
        };
        let listen_text = o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("--listen {listen_text:?} is not ADDRESS:PORT (e.g. {DEFAULT_LISTEN})")
        })?;
        let bus = o.bus.or(file.bus).unwrap_or(Bus::User);
        let mut specs: Vec<(String, Option<Bus>, Option<Vec<PathBuf>>)> = if !o.units.is_empty() {
            o.units.into_iter().map(|u| (u, None, None)).collect()
        } else {
            let simple = file.units.into_iter().map(|u| (u, None, None));
            simple
                .chain(
                    file.unit
                        .into_iter()
                        .map(|u| (u.name, u.bus, Some(u.projects))),
                )
                .collect()
        };
        if specs.is_empty() {
            specs.push((DEFAULT_UNIT.to_string(), None, None));
        }
        let mut units: Vec<UnitSettings> = Vec::new();
        for (text, explicit_bus, projects) in specs {
            let (prefix_bus, name) = match text.split_once(':') {
                Some(("user", n)) => (Some(Bus::User), n),
                Some(("system", n)) => (Some(Bus::System), n),
                _ => (None, text.as_str()),
            };
            let name = UnitName::parse(name).map_err(|e| anyhow::anyhow!("--unit: {e}"))?;
            if units.iter().any(|u| u.name == name) {
                bail!("--unit {name} is given twice");
            }
            let projects = projects.filter(|p| !p.is_empty());
            units.push(UnitSettings {
                name,
                bus: explicit_bus.or(prefix_bus).unwrap_or(bus),
                projects,
            });
        }
        let token = o.token.or(file.token).filter(|t| !t.is_empty());
        if !listen.ip().is_loopback() && token.is_none() {
            bail!(
                "refusing to listen on {listen} without a token: anyone who can reach it could change limits. \
                 Set AUTOSCALER_TOKEN (or --token, or `token` in the config file), or listen on 127.0.0.1"
            );
        }
        Ok(Settings {
            listen,
            db: o
                .db
                .or(file.db)
                .unwrap_or_else(|| home().join(".autocoder/autoscaler.db")),
            units,
            strategy: o.strategy.or(file.strategy).unwrap_or(Strategy::Live),
            token,
            cors_origins: file.cors_origins,
            signals: file.signals,
        })
    }
}

fn read_file(p: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading the config file {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("the config file {} is not valid", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(o: Overrides, toml_text: Option<&str>, want: Result<(&str, &[&str], Strategy), &str>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = o;
        if let Some(t) = toml_text {
            let p = dir.path().join("c.toml");
            std::fs::write(&p, t).expect("write");
            o.config = Some(p);
        }
        match (Settings::resolve(o), want) {
            (Ok(s), Ok((listen, units, strategy))) => {
                assert_eq!(s.listen.to_string(), listen);
                assert_eq!(
                    s.units.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
                    units
                );
                assert_eq!(s.strategy, strategy);
            }
            (Err(e), Err(text)) => assert!(format!("{e:#}").contains(text), "{e:#} lacks {text}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn resolve_table() {
        let d = Overrides::default();
        check(
            d.clone(),
            None,
            Ok(("127.0.0.1:8888", &["autocoder-ui.service"], Strategy::Live)),
        );
        check(
            Overrides {
                listen: Some("0.0.0.0:9000".into()),
                ..d.clone()
            },
            None,
            Err("without a token"),
        );
        check(
            Overrides {
                listen: Some("0.0.0.0:9000".into()),
                token: Some("t".into()),
                ..d.clone()
            },
            None,
            Ok(("0.0.0.0:9000", &["autocoder-ui.service"], Strategy::Live)),
        );
        check(
            Overrides {
                units: vec!["../x.service".into()],
                ..d.clone()
            },
            None,
            Err("not a valid systemd unit name"),
        );
        check(
            Overrides {
                units: vec!["a.service".into(), "a.service".into()],
                ..d.clone()
            },
            None,
            Err("twice"),
        );
        check(
            d.clone(),
            Some("units = [\"a.service\", \"b.service\"]\nstrategy = \"dry-run\"\n"),
            Ok((
                "127.0.0.1:8888",
                &["a.service", "b.service"],
                Strategy::DryRun,
            )),
        );
        check(
            Overrides {
                strategy: Some(Strategy::Restart),
                ..d.clone()
            },
            Some("strategy = \"dry-run\"\n"),
            Ok((
                "127.0.0.1:8888",
                &["autocoder-ui.service"],
                Strategy::Restart,
            )),
        );
        check(d.clone(), Some("bogus = 1\n"), Err("not valid"));
    }

    #[test]
    fn units_with_managers_and_projects() {
        let toml_text = "bus = \"system\"\nunits = [\"user:ui.service\", \"db.service\"]\n\n[[unit]]\nname = \"worker.service\"\nbus = \"user\"\nprojects = [\"/srv/app\"]\n";
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml_text).expect("write");
        let s = Settings::resolve(Overrides {
            config: Some(p),
            ..Overrides::default()
        })
        .expect("valid");
        let got: Vec<_> = s
            .units
            .iter()
            .map(|u| (u.name.as_str(), u.bus, u.projects.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ui.service", Bus::User, None),
                ("db.service", Bus::System, None),
                (
                    "worker.service",
                    Bus::User,
                    Some(vec![PathBuf::from("/srv/app")])
                ),
            ]
        );
        let s = Settings::resolve(Overrides {
            units: vec!["system:a.service".into()],
            ..Overrides::default()
        })
        .expect("valid");
        assert_eq!(s.units[0].bus, Bus::System);
        assert!(
            Settings::resolve(Overrides {
                units: vec!["system:../a.service".into()],
                ..Overrides::default()
            })
            .is_err()
        );
        check(
            Overrides {
                listen: Some("localhost".into()),
                ..Overrides::default()
            },
            None,
            Err("not ADDRESS:PORT"),
        );
    }
}
