//! The engine's rules, fast and without root: an engine over the testkit's fake systemd, with
//! the daemon's HTTP router in front, on tokio's paused time (hours pass in milliseconds).
//!
//! Covers the rate limit and its 429, the cooldown and streaks across a restart (same SQLite
//! file), a timeout of each probe and actuator call, a failed apply with a rollback that
//! worked and one that did not, a unit that vanishes and comes back, a config change used
//! from the next check, the `oom_kills` regression, the API answering while one unit's read
//! hangs, and a front reading its own writes. The real-systemd end-to-end tests (`e2e_*.rs`,
//! `api.rs`) stay as they are.

use std::path::Path;
use std::time::Duration;

use autoscaler::engine::{Clock, INSPECT_TIMEOUT, SAMPLE_TIMEOUT, Snapshot, UnitSnapshot};
use autoscaler_core::{GIB, Limits, Millis, Mode, UnitName};
use autoscaler_testkit::fakes::{Apply, Call, FakeClock, FakeDaemon, FakeSystemd, HOST, T0};
use serde_json::Value;

/// What every unit starts with: 2 cores, 16 GiB, 500 tasks, well inside the default bounds.
const START: Limits = Limits::new(200, 16, 500);

fn unit(name: &str) -> UnitName {
    UnitName::parse(name).expect("a valid unit name")
}

/// A fake system with these units running at [`START`], idle.
fn system(names: &[&str]) -> (FakeSystemd, Vec<UnitName>) {
    let sys = FakeSystemd::new();
    let units: Vec<UnitName> = names.iter().map(|n| unit(n)).collect();
    for u in &units {
        sys.add(u, START);
    }
    (sys, units)
}

fn start(sys: &FakeSystemd, units: &[UnitName], db: &Path, clock: FakeClock) -> FakeDaemon {
    FakeDaemon::start(sys, units, HOST, db, clock).expect("engine over fakes")
}

/// A new daemon over a new store, with these units running at [`START`], idle, at [`T0`].
/// Keep the directory: it holds the store.
fn fresh(names: &[&str]) -> (tempfile::TempDir, FakeSystemd, Vec<UnitName>, FakeDaemon) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sys, units) = system(names);
    let d = start(
        &sys,
        &units,
        &dir.path().join("a.db"),
        FakeClock::starting_at(T0),
    );
    (dir, sys, units, d)
}

fn first(s: &Snapshot) -> &UnitSnapshot {
    &s.units[0]
}

fn observed(s: &Snapshot) -> bool {
    first(s).observation.is_some()
}

/// The unit was read after `at`.
fn observed_after(s: &Snapshot, at: Millis) -> bool {
    first(s)
        .observation
        .as_ref()
        .is_some_and(|o| o.usage.at > at)
}

/// The unit is available again and was read after `at`.
fn read_again(s: &Snapshot, at: Millis) -> bool {
    first(s).unit_error.is_none() && observed_after(s, at)
}

/// Moves paused time by hand, a second at a time, until `cond` holds: for the tests where a
/// read blocks a thread, which stops tokio's auto-advance.
async fn advance_until(d: &FakeDaemon, what: &str, cond: impl Fn(&Snapshot) -> bool) {
    for _ in 0..600 {
        if cond(&d.engine.snapshot()) {
            return;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        // Lets the blocking pool's threads (real time: a tokio sleep would not end while one
        // is blocked) and the reading tasks finish what they started.
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(1));
            tokio::task::yield_now().await;
        }
    }
    panic!("{what}: not within 600 s; last: {:?}", d.engine.snapshot());
}

fn scale_body(cpu: u32) -> String {
    format!(r#"{{"cpu_quota": {cpu}, "reason": "test"}}"#)
}

/// A manual scale to `cpu` percent: the status and the JSON answer.
async fn scale(d: &FakeDaemon, cpu: u32) -> (u16, Value) {
    d.request(
        "POST",
        "/api/autoscaler/scale",
        Some("application/json"),
        Some(&scale_body(cpu)),
    )
    .await
    .expect("scale request")
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_refuses_a_thirteenth_change_in_a_minute_with_429() {
    let (_dir, sys, units, d) = fresh(&["app.service"]);
    for k in 1..=12 {
        let cpu = 200 + 10 * k;
        d.ok("POST", "/api/autoscaler/scale", Some(&scale_body(cpu)))
            .await
            .expect("a change within the limit");
    }
    let (status, body) = scale(&d, 400).await;
    assert_eq!(status, 429, "{body}");
    let wait = body["retry_after_seconds"]
        .as_u64()
        .expect("retry_after_seconds");
    assert!((1..=60).contains(&wait), "{body}");
    assert_eq!(sys.applies().len(), 12, "a refused change reaches systemd");
    assert_eq!(sys.limits(&units[0]).and_then(|l| l.cpu_quota), Some(320));
    // Once the minute has passed, changes are allowed again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    d.ok("POST", "/api/autoscaler/scale", Some(&scale_body(400)))
        .await
        .expect("allowed again after the wait");
    d.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn the_cooldown_holds_across_a_restart_and_streaks_begin_anew() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.db");
    let (sys, units) = system(&["app.service"]);
    let u = &units[0];
    let clock = FakeClock::starting_at(T0);
    let d = start(&sys, &units, &db, clock.clone());
    // 1.95 of 2 cores: over the 85% threshold at every check.
    sys.set_usage(u, 1.95, 4 * GIB, 50);
    let s = d
        .wait("the first scale-up", |s| first(s).scale_up_count == 1)
        .await
        .expect("scale up");
    let first_at = first(&s).last_scale_time.expect("last scale time");
    // Still over the threshold at the new quota (2.9 of 3 cores).
    sys.set_usage(u, 2.9, 4 * GIB, 50);
    let cooldown_ms = 300_000;
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert_eq!(
        first(&d.engine.snapshot()).scale_up_count,
        1,
        "inside the cooldown"
    );
    d.stop().await.expect("stop");

    let restart_at = clock.wall();
    let d = start(&sys, &units, &db, clock);
    let s = d
        .wait("the first check after the restart", observed)
        .await
        .expect("observation");
    let ev = &first(&s)
        .observation
        .as_ref()
        .expect("observation")
        .evaluation;
    assert_eq!(
        ev.up_streak, 1,
        "streaks are not stored: a restart begins them anew"
    );
    assert_eq!(first(&s).scale_up_count, 1, "counts are stored");
    let s = d
        .wait("the second scale-up", |s| first(s).scale_up_count == 2)
        .await
        .expect("second scale up");
    let second_at = first(&s).last_scale_time.expect("last scale time");
    assert!(
        second_at.0 - first_at.0 >= cooldown_ms,
        "the cooldown after {first_at:?} was cut short: {second_at:?}"
    );
    assert!(
        second_at.0 < restart_at.0 + cooldown_ms,
        "the cooldown ran from the restart ({restart_at:?}), not from the stored action: {second_at:?}"
    );
    d.stop().await.expect("stop");
}

#[tokio::test(start_paused = true)]
async fn a_config_change_takes_effect_at_the_next_check() {
    let (_dir, sys, units, d) = fresh(&["app.service"]);
    // 60% of the quota: under the default 85%.
    sys.set_usage(&units[0], 1.2, 4 * GIB, 50);
    let s = d
        .wait("a first observation", observed)
        .await
        .expect("observed");
    let ev = &first(&s)
        .observation
        .as_ref()
        .expect("observation")
        .evaluation;
    assert!(ev.breached.is_empty(), "{ev:?}");
    d.ok(
        "PUT",
        "/api/autoscaler/config",
        Some(r#"{"scale_up_cpu_percent": 50}"#),
    )
    .await
    .expect("config");
    let changed_at = d.clock.wall();
    let s = d
        .wait("the next check", |s| observed_after(s, changed_at))
        .await
        .expect("next check");
    let o = first(&s).observation.as_ref().expect("observation");
    assert!(!o.evaluation.breached.is_empty(), "{:?}", o.evaluation);
    assert!(
        o.usage.at.0 - changed_at.0 <= 30_000,
        "the next check came {} ms after the change",
        o.usage.at.0 - changed_at.0
    );
    d.stop().await.expect("stop");
}

/// What a failed manual scale must leave behind: the answer, the history row, the mode and
/// the status all tell whether the rollback worked.
#[tokio::test(start_paused = true)]
async fn a_failed_apply_says_whether_its_rollback_worked() {
    // (how the actuator fails, what every report must say)
    let cases = [
        (Apply::Refuse, "rolled back"),
        (Apply::RefuseAndFailRollback, "ROLLBACK FAILED"),
        (Apply::Hang, "whether anything changed is unknown"),
    ];
    for (apply, want) in cases {
        check_failed_apply(apply, want).await;
    }
}

async fn check_failed_apply(apply: Apply, want: &str) {
    let (_dir, sys, units, d) = fresh(&["app.service"]);
    sys.set_apply(&units[0], apply);
    let (status, body) = scale(&d, 300).await;
    let case = format!("{apply:?}");
    assert_eq!(status, 502, "{case}: {body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(want), "{case}: {body}");
    assert_eq!(body["mode"], "disabled", "{case}: {body}");
    let history = d
        .ok("GET", "/api/autoscaler/history?limit=1", None)
        .await
        .expect("history");
    let row = &history[0];
    assert_eq!(row["id"], body["history_id"], "{case}: {history}");
    assert_eq!(row["status"], "failed", "{case}: {row}");
    assert_eq!(row["action"], "manual_scale", "{case}: {row}");
    assert!(
        row["error_message"]
            .as_str()
            .is_some_and(|m| m.contains(want)),
        "{case}: {row}"
    );
    let status = d
        .ok("GET", "/api/autoscaler/status", None)
        .await
        .expect("status");
    assert_eq!(status["mode"], "disabled", "{case}: {status}");
    assert!(
        status["last_failure"]["error_message"]
            .as_str()
            .is_some_and(|m| m.contains(want)),
        "{case}: {status}"
    );
    assert_eq!(d.unit(0).config.mode(), Mode::Disabled, "{case}");
    d.stop().await.expect("stop");
}

/// Each probe call that does not answer is cut off by its own timeout and reported on its
/// unit; the other unit goes on being checked.
#[tokio::test(start_paused = true)]
async fn a_probe_call_that_hangs_times_out_on_its_own_unit() {
    // (which call hangs, what the unit's error says)
    let inspect = format!("did not answer within {} s", INSPECT_TIMEOUT.as_secs());
    let sample = format!("did not finish within {} s", SAMPLE_TIMEOUT.as_secs());
    let cases = [(true, inspect.as_str()), (false, sample.as_str())];
    for (hang_inspect, want) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sys, units) = system(&["stuck.service", "fine.service"]);
        if hang_inspect {
            sys.set_inspect(&units[0], Call::Hang);
        } else {
            sys.set_sample(&units[0], Call::Hang);
        }
        let d = start(
            &sys,
            &units,
            &dir.path().join("a.db"),
            FakeClock::starting_at(T0),
        );
        advance_until(&d, want, |s| {
            s.units[0]
                .unit_error
                .as_deref()
                .is_some_and(|e| e.contains(want))
        })
        .await;
        advance_until(&d, "the other unit observed", |s| {
            s.units[1].observation.is_some()
        })
        .await;
        let (status, body) = d
            .request(
                "GET",
                "/api/autoscaler/units/stuck.service/metrics",
                None,
                None,
            )
            .await
            .expect("metrics");
        assert_eq!(status, 503, "{body}");
        sys.set_sample(&units[0], Call::Answer);
        sys.set_inspect(&units[0], Call::Answer);
        sys.release();
        advance_until(&d, "the unit read again", |s| {
            s.units[0].unit_error.is_none() && s.units[0].observation.is_some()
        })
        .await;
        d.stop().await.expect("stop");
    }
}

#[tokio::test(start_paused = true)]
async fn a_unit_that_vanishes_is_unavailable_until_it_comes_back() {
    let (_dir, sys, units, d) = fresh(&["app.service"]);
    let u = &units[0];
    d.wait("a first observation", observed)
        .await
        .expect("observed");

    sys.vanish(u);
    d.wait("the unit reported gone", |s| first(s).unit_error.is_some())
        .await
        .expect("gone");
    let (status, body) = d
        .request("GET", "/api/autoscaler/metrics", None, None)
        .await
        .expect("metrics");
    assert_eq!(status, 503, "{body}");
    sys.restore(u);
    let back_at = d.clock.wall();
    d.wait("the unit read again", |s| read_again(s, back_at))
        .await
        .expect("back");

    // Gone in the middle of a change: a 503, a failed history row, and no disabled mode
    // (nothing was changed, and nothing needs acknowledging).
    sys.set_apply(u, Apply::Vanish);
    let (status, body) = scale(&d, 300).await;
    assert_eq!(status, 503, "{body}");
    let history = d
        .ok("GET", "/api/autoscaler/history?limit=1", None)
        .await
        .expect("history");
    assert_eq!(history[0]["status"], "failed", "{history}");
    let unit = d.unit(0);
    assert_eq!(unit.config.mode(), Mode::Manual);
    assert!(unit.last_failure.is_none(), "{unit:?}");
    sys.set_apply(u, Apply::Take);
    sys.restore(u);
    d.wait("the unit back after the change", |s| {
        first(s).unit_error.is_none()
    })
    .await
    .expect("back");
    d.stop().await.expect("stop");
}

/// systemd's view of a stopped unit, answered at once from the cache (the fake answers as the
/// daemon's watch does), still comes back to the engine as a reading: the unit says why it
/// is not read, keeps the limits systemd gave, and is read again once it runs.
#[tokio::test(start_paused = true)]
async fn a_stopped_unit_says_so_until_it_runs_again() {
    let (_dir, sys, units, d) = fresh(&["app.service"]);
    let u = &units[0];
    d.wait("a first observation", observed)
        .await
        .expect("observed");
    let samples = sys.samples(u);

    sys.set_active_state(u, "inactive");
    d.wait("the unit reported stopped", |s| {
        first(s)
            .unit_error
            .as_deref()
            .is_some_and(|e| e.contains("unit is inactive; start it to manage it"))
    })
    .await
    .expect("stopped");
    assert_eq!(d.unit(0).limits, Some(START), "systemd's limits are kept");
    assert_eq!(
        sys.samples(u),
        samples,
        "a stopped unit's cgroup is not read"
    );

    sys.set_active_state(u, "active");
    let back_at = d.clock.wall();
    d.wait("the unit read again", |s| read_again(s, back_at))
        .await
        .expect("back");
    d.stop().await.expect("stop");
}

/// Regression: the store sums `oom_kills` over a range, so each sample must carry the kills
/// since the one before, not the cgroup's running total.
#[tokio::test(start_paused = true)]
async fn one_oom_kill_counts_once_in_the_range() {
    let (_dir, sys, units, d) = fresh(&["app.service"]);
    let u = &units[0];
    // Manual: the OOM bump must not change the limits under the test.
    d.ok(
        "POST",
        "/api/autoscaler/mode",
        Some(r#"{"mode": "manual"}"#),
    )
    .await
    .expect("mode");
    d.wait("a first observation", observed)
        .await
        .expect("observed");
    sys.oom_kill(u);
    let samples = sys.samples(u);
    tokio::time::sleep(Duration::from_secs(10 * 30)).await;
    assert!(
        sys.samples(u) >= samples + 8,
        "too few samples after the kill"
    );
    d.wait_for_store();
    let range = d
        .ok("GET", "/api/autoscaler/metrics/history?since=1h", None)
        .await
        .expect("range");
    let total: u64 = range["series"]["oom_kills"]
        .as_array()
        .expect("oom_kills series")
        .iter()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(total, 1, "{}", range["series"]["oom_kills"]);
    d.stop().await.expect("stop");
}

/// The issue's acceptance: with one unit's read stuck, the API still answers the status at
/// once. Real time here (the latency is the point), and the only timed assertion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_status_within_50_ms_while_a_probe_hangs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sys, units) = system(&["stuck.service", "fine.service"]);
    sys.set_sample(&units[0], Call::Hang);
    let d = start(
        &sys,
        &units,
        &dir.path().join("a.db"),
        FakeClock::starting_at(T0),
    );
    // The healthy unit is checked twice (first reading, then its rate) while the other's
    // read hangs.
    d.wait("the healthy unit observed", |s| {
        s.units[1].observation.is_some()
    })
    .await
    .expect("observed");
    assert_eq!(sys.samples(&units[0]), 0, "the stuck read returned");
    for path in [
        "/api/autoscaler/units/stuck.service/status",
        "/api/autoscaler/units/fine.service/status",
        "/api/autoscaler/status",
    ] {
        let started = std::time::Instant::now();
        let body = d.ok("GET", path, None).await.expect("status");
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(50),
            "GET {path} took {took:?} while a probe hangs: {body}"
        );
    }
    sys.release();
    d.stop().await.expect("stop");
}

/// A change's answer comes after it is published: a front that reads right after its own
/// write sees it, every time (CI once saw the old interval in `GET config` after a `PUT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_reads_its_own_writes() {
    let (_dir, _sys, _units, d) = fresh(&["app.service"]);
    for k in 0..300u32 {
        let percent = 60 + k % 30;
        let body = format!(r#"{{"scale_up_cpu_percent": {percent}}}"#);
        d.ok("PUT", "/api/autoscaler/config", Some(&body))
            .await
            .expect("put config");
        let c = d
            .ok("GET", "/api/autoscaler/config", None)
            .await
            .expect("config");
        assert_eq!(c["scale_up_cpu_percent"], percent, "write {k}: {c}");
        let mode = if k % 2 == 0 { "disabled" } else { "enabled" };
        d.ok(
            "POST",
            "/api/autoscaler/mode",
            Some(&format!(r#"{{"mode": "{mode}"}}"#)),
        )
        .await
        .expect("mode");
        let s = d
            .ok("GET", "/api/autoscaler/status", None)
            .await
            .expect("status");
        assert_eq!(s["mode"], mode, "write {k}: {s}");
    }
    d.stop().await.expect("stop");
}

/// `/metrics` is sent a family at a time (issue 14: the whole text at once added about 9 MiB
/// at each scrape at 1000 units): each chunk is one whole family, no family comes twice, the
/// text ends with `# EOF`, and every unit's samples are there with what the fakes report.
#[tokio::test(start_paused = true)]
async fn metrics_are_streamed_a_whole_family_at_a_time() {
    let names: Vec<String> = (0..40).map(|i| format!("app{i}.service")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (_dir, sys, units, d) = fresh(&names);
    sys.set_usage(&units[7], 1.5, 4 * GIB, 50);
    d.wait("every unit read after the usage was set", |s| {
        s.units.iter().all(|u| {
            u.observation
                .as_ref()
                .is_some_and(|o| o.usage.at > T0 && o.usage.tasks > 0)
        })
    })
    .await
    .expect("observed");
    let (status, chunks) = d.get_chunks("/metrics").await.expect("GET /metrics");
    assert_eq!(status, 200);
    let (last, families) = chunks.split_last().expect("a body");
    assert_eq!(last, "# EOF\n");
    let mut seen = std::collections::HashSet::new();
    for chunk in families {
        let mut lines = chunk.lines();
        let help = lines.next().and_then(|l| l.strip_prefix("# HELP "));
        let name = help.and_then(|h| h.split(' ').next()).expect(chunk);
        assert!(seen.insert(name.to_string()), "{name} twice");
        let kind = lines
            .next()
            .and_then(|l| l.strip_prefix(&format!("# TYPE {name} ")));
        let sample_name = match kind {
            Some("gauge") => name.to_string(),
            Some("counter") => format!("{name}_total"),
            other => panic!("{name}: type {other:?}"),
        };
        for l in lines {
            let rest = l.strip_prefix(&sample_name).expect(l);
            assert!(rest.starts_with('{') || rest.starts_with(' '), "{l}");
        }
    }
    let total: usize = chunks.iter().map(String::len).sum();
    let largest = chunks.iter().map(String::len).max().unwrap_or(0);
    assert!(largest * 4 < total, "a chunk of {largest} bytes in {total}");
    let text = chunks.concat();
    for u in &units {
        let available = format!("autoscaler_unit_available{{unit=\"{u}\"}} 1.0\n");
        assert!(text.contains(&available), "{available}");
        let modes = format!("autoscaler_mode{{unit=\"{u}\",mode=");
        assert_eq!(text.matches(&modes).count(), Mode::ALL.len(), "{u}");
    }
    let u7 = &units[7];
    for line in [
        format!("autoscaler_memory_bytes{{unit=\"{u7}\"}} 4294967296.0\n"),
        format!("autoscaler_tasks{{unit=\"{u7}\"}} 50.0\n"),
        format!("autoscaler_limit_cpu_quota_percent{{unit=\"{u7}\"}} 200.0\n"),
        format!("autoscaler_oom_kills_total{{unit=\"{u7}\"}} 0.0\n"),
    ] {
        assert!(text.contains(&line), "{line}");
    }
    d.stop().await.expect("stop");
}
