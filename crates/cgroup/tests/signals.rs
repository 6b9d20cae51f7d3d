//! AutoCoder signals from a fake `/proc` of command lines and real SQLite databases made
//! in the test.

use std::path::PathBuf;

use autoscaler_cgroup::signals::{AgentKind, AgentProc, features_pending};
use autoscaler_cgroup::{
    AgentCache, CMDLINE_KEPT_MS, SignalSources, Signals, agent_processes, signals_of,
};
use autoscaler_core::Millis;
use rusqlite::Connection;

/// A temp dir with a fake /proc, four projects and a registry.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let w = World { dir };
        let agent = "/opt/autocoder/autonomous_agent_demo.py";
        for (pid, argv) in [
            (
                100,
                vec![
                    "python3",
                    agent,
                    "--project-dir",
                    "/p/a",
                    "--agent-type",
                    "coding",
                    "--feature-id",
                    "12",
                ],
            ),
            (
                101,
                vec!["python3", agent, "--agent-type=testing", "--feature-id=12"],
            ),
            (
                102,
                vec![
                    "python3",
                    agent,
                    "--project-dir",
                    "/p/a",
                    "--concurrency",
                    "3",
                ],
            ),
            (
                103,
                vec![
                    "/venv/bin/python",
                    "-u",
                    agent,
                    "--agent-type",
                    "initializer",
                ],
            ),
            (104, vec!["node", "server.js", "--agent-type", "coding"]),
            (105, vec!["python3", agent, "--agent-type", "coding"]),
        ] {
            let mut cmdline = argv.join("\0").into_bytes();
            cmdline.push(0);
            w.write(&format!("proc/{pid}/cmdline"), &cmdline);
        }
        // 3 of 5 pending, old layout (features.db at the project root).
        w.features("a/features.db", &[0, 0, 0, 1, 1]);
        // 2 pending, new layout under .autoforge/.
        w.features("b/.autoforge/features.db", &[0, 1, 0]);
        // c has no features.db yet; d's database has no features table.
        std::fs::create_dir_all(w.path("c")).expect("creating project c");
        w.sql("d/features.db", "CREATE TABLE other(x);");
        let (a, b, c, d) = (w.path("a"), w.path("b"), w.path("c"), w.path("d"));
        w.sql(
            "home/.autocoder/registry.db",
            &format!(
                "CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT);
                 CREATE TABLE projects(name TEXT PRIMARY KEY, path TEXT NOT NULL, created_at TEXT, default_concurrency INTEGER);
                 INSERT INTO projects VALUES ('a', '{}', '2026-01-01', 3), ('b', '{}', '2026-01-01', 3),
                                             ('c', '{}', '2026-01-01', 3), ('d', '{}', '2026-01-01', 3);",
                a.display(),
                b.display(),
                c.display(),
                d.display()
            ),
        );
        w.sql(
            "odd-registry.db",
            "CREATE TABLE things(name TEXT, location TEXT);",
        );
        w.write(
            "quota.json",
            b"{\"limit\": 2000000, \"remaining\": 1000000}\n",
        );
        w.write("quota-garbage", b"plenty\n");
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, content: &[u8]) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("a file in a directory"))
            .expect("creating dirs");
        std::fs::write(path, content).expect("writing a fixture file");
    }

    fn sql(&self, rel: &str, sql: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("a file in a directory"))
            .expect("creating dirs");
        let conn = Connection::open(&path).expect("creating a SQLite file");
        conn.execute_batch(sql).expect("filling a SQLite file");
    }

    fn features(&self, rel: &str, passes: &[i64]) {
        let rows: Vec<String> = passes
            .iter()
            .enumerate()
            .map(|(i, p)| format!("({i}, 'f{i}', {p})"))
            .collect();
        self.sql(rel, &format!("CREATE TABLE features(id INTEGER PRIMARY KEY, name TEXT, passes BOOLEAN); INSERT INTO features VALUES {};", rows.join(",")));
    }

    fn sources(
        &self,
        registry: Option<&str>,
        projects: &[&str],
        quota: Option<&str>,
    ) -> SignalSources {
        SignalSources {
            proc_root: self.path("proc"),
            registry_db: registry.map(|r| self.path(r)),
            project_dirs: projects.iter().map(|p| self.path(p)).collect(),
            api_quota_file: quota.map(|q| self.path(q)),
            ..SignalSources::autocoder_defaults(Some(&self.path("home")))
        }
    }
}

fn check(name: &str, src: &SignalSources, pids: &[u32], want: Signals) {
    assert_eq!(signals_of(src, &agent_processes(src, pids)), want, "{name}");
}

fn signals(
    agents: u32,
    testing_agents: u32,
    features_pending: Option<u32>,
    api_quota_remaining: Option<u64>,
) -> Signals {
    Signals {
        agents,
        testing_agents,
        features_pending,
        api_quota_remaining,
    }
}

#[test]
fn signals_table() {
    let w = World::new();
    let all = [100, 101, 102, 103, 104, 105, 999];
    let registry = Some("home/.autocoder/registry.db");
    // 105 is an agent but not in the unit's cgroup; 999 has exited.
    let in_unit = [100, 101, 102, 103, 104, 999];

    check(
        "registry + config overlap counted once",
        &w.sources(registry, &["a"], Some("quota.json")),
        &in_unit,
        signals(2, 1, Some(5), Some(1_000_000)),
    );
    check(
        "config only",
        &w.sources(None, &["b", "c"], None),
        &in_unit,
        signals(2, 1, Some(2), None),
    );
    check(
        "no processes, no projects",
        &w.sources(None, &[], None),
        &[],
        signals(0, 0, None, None),
    );
    check(
        "every process",
        &w.sources(None, &[], None),
        &all,
        signals(3, 1, None, None),
    );
    check(
        "registry missing: config still counts",
        &w.sources(Some("nope/registry.db"), &["a"], None),
        &[],
        signals(0, 0, Some(3), None),
    );
    check(
        "registry without a path column",
        &w.sources(Some("odd-registry.db"), &["a", "b"], None),
        &[],
        signals(0, 0, None, None),
    );
    check(
        "unparseable quota is unknown",
        &w.sources(None, &[], Some("quota-garbage")),
        &[],
        signals(0, 0, None, None),
    );
    check(
        "missing quota file is unknown",
        &w.sources(None, &[], Some("no-quota")),
        &[],
        signals(0, 0, None, None),
    );
    assert_eq!(features_pending(&w.sources(registry, &[], None)), Some(5));
}

#[test]
fn agent_processes_carry_feature_ids() {
    let w = World::new();
    let got = agent_processes(&w.sources(None, &[], None), &[100, 101, 102, 103]);
    let agent = |pid, kind, feature: Option<&str>| AgentProc {
        pid,
        kind,
        feature_id: feature.map(str::to_string),
    };
    assert_eq!(
        got,
        vec![
            agent(100, AgentKind::Coding, Some("12")),
            agent(101, AgentKind::Testing, Some("12")),
            agent(103, AgentKind::Coding, None),
        ]
    );
    // Configured types: count reviewers as testing, nothing as coding.
    let src = SignalSources {
        coding_types: vec![],
        testing_types: vec!["testing".into(), "initializer".into()],
        ..w.sources(None, &[], None)
    };
    let kinds: Vec<(u32, AgentKind)> = agent_processes(&src, &[100, 101, 103])
        .iter()
        .map(|a| (a.pid, a.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![(101, AgentKind::Testing), (103, AgentKind::Testing)]
    );
}

/// The cache reads a process's command line once per `CMDLINE_KEPT_MS`: a process that
/// became an agent (an `exec` after our first look) is counted once that time has passed, a
/// pid that left the unit is forgotten, and one that could not be read is tried again.
#[test]
fn agent_cache_rereads_command_lines_after_a_while() {
    let w = World::new();
    let src = w.sources(None, &[], None);
    let mut cache = AgentCache::default();
    let pids = |a: &[AgentProc]| a.iter().map(|a| a.pid).collect::<Vec<_>>();
    let t0 = Millis(1_000_000);
    // 106 does not exist yet: not an agent, and not remembered as "not an agent".
    assert_eq!(pids(&cache.agents(&src, &[100, 102, 106], t0)), [100]);
    // 102 execs into a coding agent and 106 appears as one.
    let agent = b"python3\0/opt/autocoder/autonomous_agent_demo.py\0--agent-type\0coding\0";
    w.write("proc/102/cmdline", agent);
    w.write("proc/106/cmdline", agent);
    let soon = Millis(t0.0 + CMDLINE_KEPT_MS - 1);
    assert_eq!(
        pids(&cache.agents(&src, &[100, 102, 106], soon)),
        [100, 106],
        "102's command line is the one read at t0 until CMDLINE_KEPT_MS has passed"
    );
    let later = Millis(t0.0 + CMDLINE_KEPT_MS);
    assert_eq!(
        pids(&cache.agents(&src, &[100, 102, 106], later)),
        [100, 102, 106]
    );
    // 100 leaves the unit, and its pid comes back as another program: read afresh.
    assert_eq!(pids(&cache.agents(&src, &[102, 106], later)), [102, 106]);
    w.write("proc/100/cmdline", b"sleep\0infinity\0");
    assert_eq!(
        pids(&cache.agents(&src, &[100, 102, 106], later)),
        [102, 106]
    );
    // A quiet unit: the last call's agents again, with no command line read, however old.
    w.write("proc/102/cmdline", b"sleep\0infinity\0");
    assert_eq!(pids(&cache.unchanged()), [102, 106]);
    assert_eq!(cache.unchanged(), cache.agents(&src, &[102, 106], later));
}
