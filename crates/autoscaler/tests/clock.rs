//! A wall clock that jumps, over the testkit's fakes on paused time (issue 11): the rules
//! (cooldown, streaks, rate limit, CPU rates) go by the monotonic clock, stored times follow
//! the wall clock, and retention does not age samples by a jump.

use std::time::Duration;

use autoscaler::engine::{Clock, Snapshot, UnitSnapshot};
use autoscaler_core::{GIB, Limits, Millis, UnitName};
use autoscaler_testkit::fakes::{FakeClock, FakeDaemon, FakeSystemd, HOST, T0};

const DAY: Duration = Duration::from_secs(86_400);

fn unit() -> UnitName {
    UnitName::parse("app.service").expect("a valid unit name")
}

fn first(s: &Snapshot) -> &UnitSnapshot {
    &s.units[0]
}

fn start() -> (tempfile::TempDir, FakeSystemd, FakeDaemon) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys = FakeSystemd::new();
    sys.add(&unit(), Limits::new(200, 16, 500));
    let d = FakeDaemon::start(
        &sys,
        &[unit()],
        HOST,
        &dir.path().join("a.db"),
        FakeClock::starting_at(T0),
    )
    .expect("engine over fakes");
    (dir, sys, d)
}

/// A jump back of a day in the middle of a cooldown: the next scale-up comes when the
/// cooldown has really passed, not a day later; its history row carries the wall clock's
/// (earlier) time; the jump is counted.
#[tokio::test(start_paused = true)]
async fn a_jump_back_does_not_freeze_scaling() {
    let (_dir, sys, d) = start();
    sys.set_usage(&unit(), 1.95, 4 * GIB, 50);
    d.wait("the first scale-up", |s| first(s).scale_up_count == 1)
        .await
        .expect("scale up");
    sys.set_usage(&unit(), 2.9, 4 * GIB, 50);
    let before = d.clock.wall();
    d.clock.jump(DAY, true);
    let started = tokio::time::Instant::now();
    d.wait("the second scale-up", |s| first(s).scale_up_count == 2)
        .await
        .expect("a second scale-up after the cooldown");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(400),
        "the 300 s cooldown took {waited:?} after the jump"
    );
    let rows = d
        .ok("GET", "/api/autoscaler/history?limit=2", None)
        .await
        .expect("history");
    let stamp = |id: i64| {
        rows.as_array()
            .and_then(|r| r.iter().find(|r| r["id"] == id))
            .and_then(|r| r["timestamp"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    // The second change is stamped a day before the first: stored times are wall-clock.
    assert!(!stamp(2).is_empty() && stamp(2) < stamp(1), "{rows}");
    assert!(d.engine.snapshot().loop_stats.clock_jumps >= 1);
    assert!(d.clock.wall().0 < before.0);
    d.stop().await.expect("stop");
}

/// A jump ahead of two days with a 24 h retention: the samples stored before the jump stay
/// (they are minutes old, whatever the wall clock says), and those after it carry the new
/// wall-clock time.
#[tokio::test(start_paused = true)]
async fn a_jump_ahead_does_not_prune_the_stored_metrics() {
    let (_dir, sys, d) = start();
    sys.set_usage(&unit(), 0.5, 4 * GIB, 50);
    tokio::time::sleep(Duration::from_secs(300)).await;
    let store = d.engine.store().clone();
    let all = || {
        store
            .metrics_since(&unit(), Millis(0), Millis(i64::MAX))
            .expect("metrics")
    };
    d.wait_for_store();
    let before = all().len();
    assert!(before > 5, "{before} samples in 5 minutes");
    d.clock.jump(2 * DAY, false);
    // Retention runs about once a minute: give it several chances.
    tokio::time::sleep(Duration::from_secs(300)).await;
    d.wait_for_store();
    let rows = all();
    let jumped = T0.0 + 2 * 86_400_000;
    let old = rows.iter().filter(|r| r.at.0 < jumped).count();
    let new = rows.iter().filter(|r| r.at.0 >= jumped).count();
    assert_eq!(old, before, "samples from before the jump were pruned");
    assert!(new > 5, "{new} samples stamped after the jump");
    d.stop().await.expect("stop");
}
