//! AutoCoder's workload signals: running agents, pending features, API quota.
//!
//! This module owns reading the signals DESIGN.md defines ("Units of the AutoCoder
//! signals") from their sources: the unit's processes' command lines under `/proc`, each
//! project's `features.db`, AutoCoder's `registry.db`, and an optional quota file. It must
//! not decide anything from them, and it never writes: every database is opened read-only.
//!
//! [`signals_of`] never fails. A source that cannot be read is logged once (at `warn`;
//! repeats at `debug`, since this runs every check) and its value is 0, or `None` for the API
//! quota, which the API shows as `null` rather than a made-up number.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use autoscaler_core::{Millis, Signals};
use rusqlite::{Connection, OpenFlags};

/// Where the signals come from. Every path is a parameter so tests can use temp dirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalSources {
    /// Normally `/proc`.
    pub proc_root: PathBuf,
    /// An agent process runs this script: an argument equal to it or ending in `/` + it.
    pub agent_script: String,
    /// `--agent-type` values counted as `agent_count`.
    pub coding_types: Vec<String>,
    /// `--agent-type` values counted as `testing_agent_count`.
    pub testing_types: Vec<String>,
    /// AutoCoder's project registry, normally `~/.autocoder/registry.db`.
    pub registry_db: Option<PathBuf>,
    /// Projects configured by hand, in addition to the registry's.
    pub project_dirs: Vec<PathBuf>,
    /// A file with the remaining API quota: an integer, or a JSON object with `remaining`.
    pub api_quota_file: Option<PathBuf>,
}

impl SignalSources {
    /// DESIGN.md's defaults; `home` is the user's home directory, if known.
    pub fn autocoder_defaults(home: Option<&Path>) -> SignalSources {
        SignalSources {
            proc_root: PathBuf::from("/proc"),
            agent_script: "autonomous_agent_demo.py".to_string(),
            coding_types: vec!["coding".to_string(), "initializer".to_string()],
            testing_types: vec!["testing".to_string()],
            registry_db: home.map(|h| h.join(".autocoder/registry.db")),
            project_dirs: Vec::new(),
            api_quota_file: None,
        }
    }
}

/// Which count an agent process adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentKind {
    Coding,
    Testing,
}

/// One running AutoCoder agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentProc {
    pub pid: u32,
    pub kind: AgentKind,
    /// `--feature-id`, when the agent works on one feature (for per-feature cost).
    pub feature_id: Option<String>,
}

/// All signals, given the unit's agent processes (from [`agent_processes`]), so a caller
/// that also wants the agents' feature ids reads `/proc` once.
pub fn signals_of(src: &SignalSources, agents: &[AgentProc]) -> Signals {
    let count =
        |kind| u32::try_from(agents.iter().filter(|a| a.kind == kind).count()).unwrap_or(u32::MAX);
    Signals {
        agents: count(AgentKind::Coding),
        testing_agents: count(AgentKind::Testing),
        features_pending: features_pending(src),
        api_quota_remaining: api_quota_remaining(src),
    }
}

/// The agent processes among `pids`, every command line read now (the daemon keeps them a
/// while: [`AgentCache`]). Processes that exit while we look are skipped.
pub fn agent_processes(src: &SignalSources, pids: &[u32]) -> Vec<AgentProc> {
    AgentCache::default().agents(src, pids, Millis(0))
}

/// How long a process's command line, once read, is taken as still true.
///
/// A command line changes at `exec`: a process seen between its `fork` and its `exec` shows
/// its parent's. Read again after this long, such a process is counted as the agent it became
/// within a few seconds; at a 1 s interval, the unit's processes are read once every few
/// checks, not at every one (five system calls per process: `openat`, `statx`, two `read`s
/// and a `close`; docs/BENCHMARKS.md).
pub const CMDLINE_KEPT_MS: i64 = 5_000;

/// What a command line says a process is: a counted agent's kind and feature, or `None`.
type Seen = Option<(AgentKind, Option<String>)>;

/// A unit's agent processes, from command lines remembered for [`CMDLINE_KEPT_MS`] by pid.
#[derive(Debug, Default)]
pub struct AgentCache {
    /// What each pid's command line said, and when it was read.
    known: HashMap<u32, (Seen, Millis)>,
    /// What the last [`AgentCache::agents`] found.
    last: Vec<AgentProc>,
}

impl AgentCache {
    /// The agent processes among `pids` (sorted, no repeats) at time `at`. Processes that
    /// exit while we look are skipped; pids no longer in the unit are forgotten.
    pub fn agents(&mut self, src: &SignalSources, pids: &[u32], at: Millis) -> Vec<AgentProc> {
        self.known.retain(|pid, (_, read)| {
            pids.binary_search(pid).is_ok() && at.0.saturating_sub(read.0) < CMDLINE_KEPT_MS
        });
        self.last = pids
            .iter()
            .filter_map(|&pid| {
                let (seen, _) = match self.known.entry(pid) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert((agent_of(src, pid)?, at)),
                };
                let (kind, feature_id) = seen.clone()?;
                Some(AgentProc {
                    pid,
                    kind,
                    feature_id,
                })
            })
            .collect();
        self.last.clone()
    }

    /// What the last [`AgentCache::agents`] found, with no command line read: for a unit none
    /// of whose processes ran since (a quiet reading, see `CgroupFiles::read`), so none can
    /// have `exec`ed into an agent or out of being one.
    pub fn unchanged(&self) -> Vec<AgentProc> {
        self.last.clone()
    }
}

/// What process `pid`'s command line says it is: `None` when it has exited (or cannot be
/// read), `Some(None)` when it is not a counted agent.
fn agent_of(src: &SignalSources, pid: u32) -> Option<Seen> {
    let path = src.proc_root.join(pid.to_string()).join("cmdline");
    let cmdline = std::fs::read(&path).ok()?;
    Some(parse_agent_cmdline(src, &cmdline))
}

/// An agent's kind and feature from its NUL-separated command line; `None` when it is not
/// an agent of a counted type (the orchestrator runs the same script without a type).
pub fn parse_agent_cmdline(
    src: &SignalSources,
    cmdline: &[u8],
) -> Option<(AgentKind, Option<String>)> {
    if src.agent_script.is_empty() {
        return None;
    }
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let suffix = format!("/{}", src.agent_script);
    let script = args
        .iter()
        .position(|a| *a == src.agent_script || a.ends_with(&suffix))?;
    // Options before the script belong to the interpreter.
    let rest = &args[script + 1..];
    let option = |name: &str| -> Option<String> {
        let eq = format!("{name}=");
        rest.iter()
            .enumerate()
            .find_map(|(i, a)| match a.strip_prefix(&eq) {
                Some(v) => Some(v.to_string()),
                None if a == name => rest.get(i + 1).cloned(),
                None => None,
            })
    };
    let agent_type = option("--agent-type")?;
    let kind = if src.coding_types.contains(&agent_type) {
        AgentKind::Coding
    } else if src.testing_types.contains(&agent_type) {
        AgentKind::Testing
    } else {
        return None;
    };
    Some((kind, option("--feature-id")))
}

/// Features with `passes = 0`, summed over the configured and the registered projects.
///
/// `None` when no project is known, or one of the sources could not be read: the sum would
/// then be a guess, and "0 pending" means "all done" to the scale-down rule. A registry file
/// that does not exist is not an error (no AutoCoder on this host); a project without a
/// `features.db` counts 0.
pub fn features_pending(src: &SignalSources) -> Option<u32> {
    let mut projects: Vec<PathBuf> = src.project_dirs.clone();
    if let Some(db) = src.registry_db.as_ref().filter(|db| db.exists()) {
        match registry_projects(db) {
            Ok(found) => {
                projects.extend(found.into_iter().filter(|p| !src.project_dirs.contains(p)))
            }
            Err(e) => {
                warn_once("AutoCoder project registry", &e);
                return None;
            }
        }
    }
    if projects.is_empty() {
        return None;
    }
    let mut sum = 0u32;
    for dir in &projects {
        match pending_in_project(dir) {
            Ok(n) => sum = sum.saturating_add(n),
            Err(e) => {
                warn_once(
                    &format!("pending features of project {}", dir.display()),
                    &e,
                );
                return None;
            }
        }
    }
    Some(sum)
}

/// Project directories listed in AutoCoder's registry.
///
/// Assumption (the registry's schema is AutoCoder's, not ours): some table has a column
/// named `path` holding project directories. AutoCoder's `registry.py` has
/// `projects(name, path, created_at, default_concurrency)`; a table named `projects` is
/// preferred when several have a `path` column.
pub fn registry_projects(db: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let conn = open_read_only(db)?;
    let table: Option<String> = conn
        .query_row(
            "SELECT m.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p \
             WHERE m.type = 'table' AND p.name = 'path' \
             ORDER BY m.name = 'projects' DESC, m.name LIMIT 1",
            [],
            |row| row.get(0),
        )
        .map(Some)
        .or_else(|e| {
            if e == rusqlite::Error::QueryReturnedNoRows {
                Ok(None)
            } else {
                Err(e)
            }
        })
        .with_context(|| format!("reading the schema of {}", db.display()))?;
    let table = table.with_context(|| {
        format!(
            "{} has no table with a `path` column; expected AutoCoder's projects(name, path, ...)",
            db.display()
        )
    })?;
    let sql = format!("SELECT path FROM \"{}\"", table.replace('"', "\"\""));
    let mut stmt = conn
        .prepare(&sql)
        .with_context(|| format!("reading projects from {}", db.display()))?;
    let rows = stmt
        .query_map([], |row| {
            Ok(row.get_ref(0)?.as_str().ok().map(str::to_owned))
        })
        .with_context(|| format!("reading projects from {}", db.display()))?;
    let mut paths = Vec::new();
    for row in rows {
        if let Some(p) = row.with_context(|| format!("reading projects from {}", db.display()))?
            && !p.trim().is_empty()
        {
            paths.push(PathBuf::from(p));
        }
    }
    Ok(paths)
}

/// Where AutoCoder keeps a project's features, newest layout first (its
/// `autoforge_paths.py`: `.autoforge/`, then `.autocoder/`, then the project root).
pub fn features_db_of(project: &Path) -> Option<PathBuf> {
    [
        ".autoforge/features.db",
        ".autocoder/features.db",
        "features.db",
    ]
    .into_iter()
    .map(|f| project.join(f))
    .find(|p| p.is_file())
}

/// Pending features of one project; 0 when it has no features database yet.
pub fn pending_in_project(project: &Path) -> anyhow::Result<u32> {
    let Some(db) = features_db_of(project) else {
        tracing::debug!(
            "{} has no features.db yet; 0 pending features",
            project.display()
        );
        return Ok(0);
    };
    let conn = open_read_only(&db)?;
    // A database without the table yet is a project being set up: nothing pending, like a
    // project without features.db. Any other failure is reported.
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'features')",
            [],
            |row| row.get(0),
        )
        .with_context(|| format!("reading the schema of {}", db.display()))?;
    if !has_table {
        return Ok(0);
    }
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM features WHERE passes = 0",
            [],
            |row| row.get(0),
        )
        .with_context(|| format!("counting features with passes = 0 in {}", db.display()))?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn open_read_only(db: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} read-only", db.display()))?;
    // AutoCoder writes these databases while agents run; wait briefly rather than fail.
    conn.busy_timeout(Duration::from_millis(500))
        .with_context(|| format!("setting a busy timeout on {}", db.display()))?;
    Ok(conn)
}

/// The remaining API quota from the configured file; `None` when none is configured or it
/// cannot be read or understood.
pub fn api_quota_remaining(src: &SignalSources) -> Option<u64> {
    let path = src.api_quota_file.as_ref()?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            warn_once(
                "API quota file",
                &anyhow::Error::new(e).context(format!("reading {}", path.display())),
            );
            return None;
        }
    };
    let quota = parse_api_quota(&text);
    if quota.is_none() {
        warn_once(
            "API quota file",
            &anyhow::anyhow!(
                "{} holds neither an integer nor a JSON object with an integer \"remaining\"",
                path.display()
            ),
        );
    }
    quota
}

/// An integer (whitespace allowed), or a JSON object whose own key `remaining` (not one in a
/// nested object) has a non-negative integer value. Anything else (null, a float, a string,
/// text that is not JSON) is unknown.
pub fn parse_api_quota(text: &str) -> Option<u64> {
    match serde_json::from_str::<serde_json::Value>(text).ok()? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::Object(m) => m.get("remaining")?.as_u64(),
        _ => None,
    }
}

/// Problems already reported at `warn`. A process-wide log filter, not state anyone reads:
/// the loop calls us every few seconds and one broken source must not flood the log.
static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn warn_once(what: &str, err: &anyhow::Error) {
    let msg = format!("{what}: {err:#}");
    let first = WARNED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(msg.clone());
    if first {
        tracing::warn!("{msg}; its value counts as 0/unknown (reported once)");
    } else {
        tracing::debug!("{msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_table() {
        let src = SignalSources::autocoder_defaults(None);
        let coding = |f: Option<&str>| Some((AgentKind::Coding, f.map(str::to_string)));
        let testing = |f: Option<&str>| Some((AgentKind::Testing, f.map(str::to_string)));
        type Parsed = Option<(AgentKind, Option<String>)>;
        let cases: &[(&str, Parsed)] = &[
            (
                "python3\0/srv/ac/autonomous_agent_demo.py\0--project-dir\0/p\0--agent-type\0coding\0--feature-id\x0042\0",
                coding(Some("42")),
            ),
            (
                "python\0autonomous_agent_demo.py\0--agent-type=initializer\0",
                coding(None),
            ),
            (
                "/venv/bin/python\0-u\0./autonomous_agent_demo.py\0--feature-id=7\0--agent-type=testing\0",
                testing(Some("7")),
            ),
            // The orchestrator: same script, no agent type.
            (
                "python3\0autonomous_agent_demo.py\0--project-dir\0/p\0--parallel\0",
                None,
            ),
            (
                "python3\0autonomous_agent_demo.py\0--agent-type\0reviewer\0",
                None,
            ),
            // A different script whose name merely ends the same way.
            (
                "python3\0my_autonomous_agent_demo.py\0--agent-type\0coding\0",
                None,
            ),
            // The type given to the interpreter, not the script.
            (
                "python3\0--agent-type\0coding\0autonomous_agent_demo.py\0",
                None,
            ),
            ("python3\0autonomous_agent_demo.py\0--agent-type\0", None),
            ("", None),
            ("\u{fffd}\0\u{1}", None),
        ];
        for (cmdline, want) in cases {
            assert_eq!(
                parse_agent_cmdline(&src, cmdline.as_bytes()),
                *want,
                "{cmdline:?}"
            );
        }
    }

    #[test]
    fn api_quota_table() {
        for (text, want) in [
            ("1000000\n", Some(1_000_000)),
            ("  42  ", Some(42)),
            ("{\"remaining\": 1500, \"limit\": 2000}", Some(1500)),
            ("{\n  \"limit\": 2000,\n  \"remaining\" : 0\n}\n", Some(0)),
            ("{\"note\": \"remaining\", \"remaining\": 9}", Some(9)),
            // Only the object's own key: a nested object's `remaining` is another quota.
            ("{\"daily\": {\"remaining\": 5}, \"remaining\": 9}", Some(9)),
            ("{\"daily\": {\"remaining\": 5}}", None),
            (
                "{\"daily\": [{\"remaining\": 5}], \"remaining\": 7}",
                Some(7),
            ),
            ("{\"remaining\": 3", None),
            ("{\"remaining\": null}", None),
            ("{\"remaining\": 1.5}", None),
            ("{\"remaining\": -3}", None),
            ("{\"remaining\": \"12\"}", None),
            ("{\"limit\": 2000}", None),
            ("-1", None),
            ("", None),
            ("lots", None),
        ] {
            assert_eq!(parse_api_quota(text), want, "{text:?}");
        }
    }
}
