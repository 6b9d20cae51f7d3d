//! End-to-end test of issue 12, part 5: `adaptive` against `balanced` on the real sandboxed
//! systemd. Two identical units run the same stepped load (idle, up, hold, down to idle) side
//! by side, one under each policy; the daemon is restarted in the middle.
//!
//! What a run of a few minutes can show: `adaptive` sizes from 5-minute windows and cuts only
//! with an hour of history, so it cannot learn a unit within a test. What it learned is kept in
//! the daemon's store and read back at start; the test therefore writes there what the core
//! itself learns from eight hours of the same load (the core's `Learned`, fed with past
//! times, as a daemon watching the unit would have left it), and checks that the daemon acts
//! on it: from generous limits it gives back room at once, is not throttled or killed by
//! the load, and keeps what it learned across a restart (`/prediction`'s `adaptive` section).
//!
//! Asserted, because it holds on a noisy 2-core machine: fewer core-seconds and GiB-seconds
//! granted than `balanced`, no OOM kill, throttled periods no more than `balanced`'s plus a
//! small allowance (a starved busy loop can touch any quota), and the learned history not
//! lost by the restart. Everything else is printed.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use autoscaler_core::{Bounds, Config, FieldValue, GIB, Host, Learned, Limits, MIB, Millis, Usage};
use autoscaler_core::{Policy, UnitName};
use autoscaler_store::Store;
use autoscaler_testkit::{Sandbox, World, unit_path as api};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_autoscaler");
const UNITS: [&str; 2] = ["load-balanced.service", "load-adaptive.service"];
/// The load's working set, held all along.
const HOLD_MIB: u64 = 200;
/// The busy level of the "up" phase as a daemon checking every second reads it: one busy
/// loop, plus the shell polling its control file and perl holding the working set, 1.00 to
/// 1.02 cores in runs here. The learned history takes the top of that, so adaptive sizes the
/// quota at 110% (the peak x1.05, on a 5% grain) whatever a run reads, and the busy phase's
/// 30 s means stay well under 97% of it (a near-quota raise). Learned at 1.0, the quota was
/// 105% or 110% by run, and at 105% a run's 30 s mean (101.5%) came within 0.4 points of a
/// raise (101.85%).
const BUSY_CORES: f64 = 1.03;
/// Generous starting limits, as a unit put under management would have.
const START: &str = "CPUQuota=200%\nMemoryMax=4G\n";

/// The stepped load: hold `HOLD_MIB` MiB, and one busy loop while the file `up` exists in
/// `dir` (the test creates and removes it, so both units step at the same instant).
fn load_script(dir: &Path) -> String {
    format!(
        "perl -e '$x = \"x\" x ({HOLD_MIB} * 1048576); sleep 1 while 1' &\n\
         while true; do\n\
           if [ -e {up} ]; then yes >/dev/null & p=$!; while [ -e {up} ]; do sleep 0.1; done; kill $p; fi\n\
           sleep 0.1\n\
         done\n",
        up = dir.join("up").display()
    )
}

/// The config both units run: a 1 s check, the testkit's bounds for a small host, 2 cores at
/// most, and the policy.
fn config(policy: &str) -> Value {
    let mut c = json!({"check_interval_seconds": 1, "max_cpu_quota": 200, "policy": policy});
    let bounds: Value = serde_json::from_str(autoscaler_testkit::SMALL_HOST_BOUNDS)
        .expect("the testkit's bounds are JSON");
    if let (Some(c), Value::Object(b)) = (c.as_object_mut(), bounds) {
        c.extend(b);
    }
    c
}

/// Puts both units' config, each under its policy, in `mode`.
fn configure(w: &World, mode: &str) -> anyhow::Result<()> {
    for (unit, policy) in UNITS.iter().zip(["balanced", "adaptive"]) {
        let mut c = config(policy);
        c["mode"] = json!(mode);
        w.put_unit_config(unit, &c)?;
    }
    Ok(())
}

/// What the core learns from `hours` of the stepped load before `now`: one check a minute,
/// 20 minutes busy and 20 idle, the working set steady, under the starting limits. Learned
/// without acting (as under a mode other than `enabled`), so nothing is left in flight.
fn learned_before(now: Millis, hours: i64) -> anyhow::Result<String> {
    let cfg = Config::default()
        .with_policy(Policy::Adaptive)
        .apply(&[
            ("system_cpu_cores".into(), FieldValue::Number(0.0)),
            ("min_cpu_quota".into(), FieldValue::Number(20.0)),
            ("max_cpu_quota".into(), FieldValue::Number(200.0)),
            ("min_memory_max".into(), FieldValue::Number(1.0)),
        ])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let host = Host {
        cores: 2,
        memory_bytes: 24 * GIB,
        max_tasks: 4_194_304,
    };
    let bounds = Bounds::new(&cfg, &host).map_err(|e| anyhow::anyhow!("{e}"))?;
    let limits = Limits {
        cpu_quota: Some(200),
        memory_max: Some(4 * GIB),
        tasks_max: None,
    };
    let mut l = Learned::default();
    for minute in (1..=hours * 60).rev() {
        let at = Millis(now.0 - minute * 60_000);
        let cores = if (minute / 20) % 2 == 0 {
            BUSY_CORES
        } else {
            0.02
        };
        let usage = Usage::from_demand(at, cores, (HOLD_MIB * MIB + 30 * MIB) as f64)?;
        l.learn(&bounds, &limits, &usage, at);
    }
    Ok(l.encode())
}

/// What one unit was granted and suffered over the run.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    core_secs: f64,
    gib_secs: f64,
    throttled_at_start: u64,
    throttled: u64,
}

fn nr_throttled(sb: &Sandbox, unit: &str) -> anyhow::Result<u64> {
    sb.cgroup_counter("cpu", unit, "cpu.stat", "nr_throttled")
}

/// Samples both units' limits every 250 ms for `secs`, adding what they were granted.
fn run_phase(sb: &Sandbox, tallies: &mut [Tally; 2], secs: u64) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut last = Instant::now();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250));
        let dt = last.elapsed().as_secs_f64();
        last = Instant::now();
        for (t, unit) in tallies.iter_mut().zip(UNITS) {
            let cpu = sb.cpu_quota(unit)?.map_or(200.0, f64::from) / 100.0;
            let mem = sb.memory_max(unit)?.map_or(24.0, |m| m as f64 / GIB as f64);
            t.core_secs += cpu * dt;
            t.gib_secs += mem * dt;
        }
    }
    Ok(())
}

/// The `adaptive` section of a unit's `/prediction`, once the daemon has checked it.
fn adaptive_section(w: &World, unit: &str) -> anyhow::Result<Value> {
    let http = w.http();
    w.wait(20, "the adaptive section of /prediction", || {
        let p = http.get_ok(&api(unit, "/prediction"))?;
        Ok(p["adaptive"]["cpu_quota"]
            .is_object()
            .then(|| p["adaptive"].clone()))
    })
}

fn hours(section: &Value, key: &str) -> f64 {
    section[key]["history_hours"].as_f64().unwrap_or(0.0)
}

#[test]
fn adaptive_grants_less_than_balanced_and_keeps_what_it_learned() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    let dir = tempfile::tempdir().context("the load's control dir")?;
    for unit in UNITS {
        let script = sb.home().join(format!("{unit}.sh"));
        fs::write(&script, load_script(dir.path()))?;
        sb.write_unit(
            unit,
            &format!(
                "[Unit]\nDescription=autoscaler test: {unit}\n\n[Service]\nExecStart=/bin/sh {}\n{START}",
                script.display()
            ),
        )?;
        sb.start_unit(unit)?;
    }
    let mut w = World::start(BIN, sb, &UNITS, &[])?;
    // Both units' config first (kept in the store), in manual mode so nothing moves yet.
    configure(&w, "manual")?;
    // What a daemon that watched the adaptive unit for eight hours would have stored.
    w.daemon.stop()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let unit = UnitName::parse(UNITS[1])?;
    Store::open(&w.daemon.db, &unit)?.save_learned(
        &unit,
        &learned_before(Millis(now), 8)?,
        Millis(now),
    )?;
    w.daemon.restart()?;
    configure(&w, "enabled")?;
    let at_start = adaptive_section(&w, UNITS[1])?;
    ensure!(
        hours(&at_start, "cpu_quota") >= 7.9,
        "the daemon did not load the learned state: {at_start}"
    );
    let mut tallies = [Tally::default(); 2];
    for (t, unit) in tallies.iter_mut().zip(UNITS) {
        t.throttled_at_start = nr_throttled(&w.sandbox, unit)?;
    }
    let up = dir.path().join("up");
    run_phase(&w.sandbox, &mut tallies, 15)?; // idle
    fs::write(&up, "")?;
    run_phase(&w.sandbox, &mut tallies, 25)?; // up, hold
    let before = adaptive_section(&w, UNITS[1])?;
    w.daemon.restart()?;
    let after = adaptive_section(&w, UNITS[1])?;
    run_phase(&w.sandbox, &mut tallies, 25)?; // hold, across the restart
    fs::remove_file(&up)?;
    run_phase(&w.sandbox, &mut tallies, 25)?; // down, idle

    for (t, unit) in tallies.iter_mut().zip(UNITS) {
        t.throttled = nr_throttled(&w.sandbox, unit)? - t.throttled_at_start;
    }
    let [b, a] = tallies;
    let ooms = [
        w.sandbox.oom_kills(UNITS[0])?,
        w.sandbox.oom_kills(UNITS[1])?,
    ];
    println!("policy     core-s   GiB-s   throttled periods  OOM kills  final limits");
    for ((t, unit), oom) in tallies.iter().zip(UNITS).zip(ooms) {
        println!(
            "{unit:<22} {:>7.1} {:>7.1} {:>8} {:>8}  CPUQuota {:?}% MemoryMax {:?}",
            t.core_secs,
            t.gib_secs,
            t.throttled,
            oom,
            w.sandbox.cpu_quota(unit)?,
            w.sandbox.memory_max(unit)?
        );
    }
    println!("adaptive before the restart: {before}");
    println!("adaptive after the restart:  {after}");
    let history = w.http().get_ok(&api(UNITS[1], "/history?limit=20"))?;
    println!("adaptive history: {history}");

    // At a 1 s check a busy loop's rate reads 0.6 to 1.5 cores; adaptive takes CPU as its
    // 30 s mean (`CPU_RATE_SECS`), so that noise is not taken for demand (before, adaptive
    // granted 132-156 core-s here against balanced's 112-114).
    ensure!(
        a.core_secs < b.core_secs,
        "adaptive granted more CPU: {a:?} vs {b:?}"
    );
    ensure!(
        a.gib_secs < b.gib_secs,
        "adaptive granted more memory: {a:?} vs {b:?}"
    );
    ensure!(ooms == [0, 0], "OOM kills: {ooms:?}");
    // A busy loop starved by other work on the machine can be throttled by any quota for a
    // period or two; a policy that cut too deep is throttled in most periods of the load.
    ensure!(
        a.throttled <= b.throttled + 50,
        "adaptive was throttled more: {} vs {} periods",
        a.throttled,
        b.throttled
    );
    for key in ["cpu_quota", "memory_gb"] {
        ensure!(
            hours(&after, key) >= hours(&before, key),
            "the restart lost what adaptive learned ({key}): {before} -> {after}"
        );
        ensure!(
            after[key]["model"] == before[key]["model"],
            "the restart changed the model ({key}): {before} -> {after}"
        );
    }
    Ok(())
}
