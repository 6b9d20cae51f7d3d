//! The CLI end to end: `autoscaler status|metrics|history|mode|policy|scale|config get|config
//! set` against a real daemon (with a token) managing a unit in a systemd sandbox.
//!
//! Checks readable tables by default, JSON with `--json`, `--url` and the token from flags and
//! from the environment, and a non-zero exit with a one-line reason on every error.

use std::process::{Command, Stdio};

use autoscaler_testkit::World;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_autoscaler");
const UNIT: &str = "autocoder-ui.service";
/// Bounds that let manual limits through on a 2-core host: no CPU reserve, low minimums.
const ROOMY: &str = autoscaler_testkit::SMALL_HOST_BOUNDS;

const TOKEN: &str = "cli-t0ken";

/// How the command reaches the daemon.
#[derive(Clone, Copy)]
enum Via {
    /// `--url URL` (and `--token T` when `token`).
    Flags { token: bool },
    /// `AUTOSCALER_URL` (and `AUTOSCALER_TOKEN` when `token`).
    Env { token: bool },
    /// `--url` at a port nothing listens on.
    Nowhere,
}

/// What the command must print.
enum Want {
    /// Exit 0; stdout holds each string (a table: no JSON braces).
    Table(&'static [&'static str]),
    /// Exit 0; stdout is JSON and the check holds.
    Json(fn(&Value) -> bool),
    /// Exit non-zero; stderr is one line holding the string; stdout empty.
    Fails(&'static str),
}

fn check(w: &World, via: Via, args: &[&str], want: Want) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("AUTOSCALER_URL")
        .env_remove("AUTOSCALER_TOKEN")
        .stdin(Stdio::null());
    match via {
        Via::Flags { token } => {
            cmd.args(["--url", w.url()]);
            if token {
                cmd.args(["--token", TOKEN]);
            }
        }
        Via::Env { token } => {
            cmd.env("AUTOSCALER_URL", w.url());
            if token {
                cmd.env("AUTOSCALER_TOKEN", TOKEN);
            }
        }
        // Port 1 (tcpmux) is privileged and unused here: connection refused at once.
        Via::Nowhere => {
            cmd.args(["--url", "http://127.0.0.1:1"]);
        }
    }
    let out = cmd.output().expect("running the CLI");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!("autoscaler {}", args.join(" "));
    match want {
        Want::Table(parts) => {
            assert!(out.status.success(), "{what}: {}\n{stderr}", out.status);
            assert!(
                !stdout.trim_start().starts_with('{') && !stdout.trim_start().starts_with('['),
                "{what} printed JSON, not a table:\n{stdout}"
            );
            for p in parts {
                assert!(stdout.contains(p), "{what}: no {p:?} in\n{stdout}");
            }
        }
        Want::Json(ok) => {
            assert!(out.status.success(), "{what}: {}\n{stderr}", out.status);
            let v: Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}):\n{stdout}"));
            assert!(ok(&v), "{what}: unexpected JSON {v}");
        }
        Want::Fails(reason) => {
            assert!(!out.status.success(), "{what} succeeded:\n{stdout}");
            assert_eq!(stdout, "", "{what} printed on stdout");
            assert_eq!(
                stderr.trim().lines().count(),
                1,
                "{what}: not one line:\n{stderr}"
            );
            assert!(stderr.contains(reason), "{what}: no {reason:?} in {stderr}");
        }
    }
}

#[test]
fn cli_against_a_real_daemon() {
    let w = World::with_busy_unit(BIN, UNIT, &["--token", TOKEN]).expect("sandbox and daemon");
    w.put_config(ROOMY).expect("roomy config");
    let flags = Via::Flags { token: true };
    let env = Via::Env { token: true };
    let no_token = Via::Flags { token: false };
    let table: &[(Via, &[&str], Want)] = &[
        // Reads need the token too (the daemon has one), by flag or by env.
        (no_token, &["status"], Want::Fails("Authorization: Bearer")),
        (
            Via::Env { token: false },
            &["history"],
            Want::Fails("Authorization: Bearer"),
        ),
        (
            flags,
            &["status"],
            Want::Table(&["mode", "enabled", "policy", "balanced", UNIT, "CPU "]),
        ),
        (
            env,
            &["status", "--json"],
            Want::Json(|v| v["mode"] == "enabled" && v["unit"] == UNIT),
        ),
        (
            flags,
            &["metrics"],
            Want::Table(&["cpu_percent", "memory_gb", "process_count"]),
        ),
        (
            flags,
            &["metrics", "--json"],
            Want::Json(|v| v["cpu_percent"].is_number()),
        ),
        (
            flags,
            &["config", "get"],
            Want::Table(&["scale_up_cpu_percent", "85", "check_interval_seconds"]),
        ),
        (
            flags,
            &["config", "get", "--json"],
            Want::Json(|v| v["scale_up_cpu_percent"] == 85),
        ),
        (
            flags,
            &["history"],
            Want::Table(&["no scaling actions yet"]),
        ),
        (
            flags,
            &["history", "--json"],
            Want::Json(|v| v.as_array().is_some_and(Vec::is_empty)),
        ),
        // Changes need the token, from the flag or the environment.
        (
            no_token,
            &["mode", "disabled"],
            Want::Fails("Authorization: Bearer"),
        ),
        (
            Via::Env { token: false },
            &["policy", "aggressive"],
            Want::Fails("Authorization: Bearer"),
        ),
        (
            flags,
            &["mode", "disabled"],
            Want::Table(&["mode", "disabled"]),
        ),
        (
            env,
            &["mode", "manual", "--json"],
            Want::Json(|v| v["mode"] == "manual"),
        ),
        (
            flags,
            &["policy", "aggressive"],
            Want::Table(&["policy", "aggressive"]),
        ),
        (
            env,
            &["policy", "balanced", "--json"],
            Want::Json(|v| v["policy"] == "balanced"),
        ),
        (
            flags,
            &[
                "config",
                "set",
                "scale_up_cpu_percent=75",
                "scale_cooldown_seconds=120",
            ],
            Want::Table(&["scale_up_cpu_percent", "75", "120"]),
        ),
        (
            env,
            &["config", "set", "scale_up_factor=1.8", "--json"],
            Want::Json(|v| v["scale_up_factor"] == 1.8),
        ),
        (
            flags,
            &[
                "scale",
                "--cpu-quota",
                "150",
                "--memory-max",
                "2",
                "--tasks-max",
                "600",
                "--reason",
                "cli test",
            ],
            Want::Table(&["manual_scale", "success", "cli test"]),
        ),
        (
            env,
            &["scale", "--tasks-max", "700", "--json"],
            Want::Json(|v| v["status"] == "success" && v["new_limits"]["tasks_max"] == 700),
        ),
        (
            flags,
            &["history", "--limit", "5"],
            Want::Table(&["ID", "ACTION", "manual_scale", "cli test", "150%/2G/600"]),
        ),
        (
            flags,
            &["history", "--limit", "1", "--json"],
            Want::Json(|v| v.as_array().is_some_and(|a| a.len() == 1)),
        ),
        (
            flags,
            &["status", "--unit", UNIT],
            Want::Table(&["manual", UNIT]),
        ),
        // Errors: the daemon's reason, one line, non-zero exit.
        (
            flags,
            &["mode", "turbo"],
            Want::Fails("unknown mode \"turbo\""),
        ),
        (flags, &["policy", "yolo"], Want::Fails("unknown policy")),
        (
            flags,
            &["config", "set", "scale_up_cpu_percent=150"],
            Want::Fails("scale_up_cpu_percent"),
        ),
        (
            flags,
            &["config", "set", "nonsense"],
            Want::Fails("FIELD=VALUE"),
        ),
        (
            flags,
            &["scale", "--cpu-quota", "5000"],
            Want::Fails("outside the allowed range"),
        ),
        (flags, &["scale"], Want::Fails("nothing to scale")),
        (flags, &["history", "--limit", "0"], Want::Fails("1..=1000")),
        (
            flags,
            &["status", "--unit", "nope.service"],
            Want::Fails("not managed"),
        ),
        (
            flags,
            &["status", "--unit", "bad name"],
            Want::Fails("unit"),
        ),
        (
            Via::Nowhere,
            &["status"],
            Want::Fails("cannot reach the autoscaler daemon"),
        ),
        (
            Via::Nowhere,
            &["mode", "enabled"],
            Want::Fails("cannot reach the autoscaler daemon"),
        ),
    ];
    for (via, args, want) in table {
        let want = match want {
            Want::Table(p) => Want::Table(p),
            Want::Json(f) => Want::Json(*f),
            Want::Fails(s) => Want::Fails(s),
        };
        check(&w, *via, args, want);
    }
    // The scale really reached systemd.
    assert_eq!(w.sandbox.show(UNIT, "TasksMax").expect("show"), "700");
    assert_eq!(
        w.sandbox.show(UNIT, "MemoryMax").expect("show"),
        "2147483648"
    );
}
