//! A database another process holds locked for 30 s, over the testkit's fakes in real time
//! (issue 11): the daemon goes on checking and answering, says it is degraded in `/healthz`,
//! `/status` and `/metrics`, refuses changes it could not journal, keeps every sample queued,
//! and once the lock goes, stores them all and says it is healthy again. The full disk, on the
//! real daemon in a mount namespace of its own, is in `e2e_store.rs`.

use std::time::{Duration, Instant};

use autoscaler_core::{GIB, Limits, Millis, UnitName};
use autoscaler_testkit::fakes::{FakeClock, FakeDaemon, FakeSystemd, HOST, T0};

const LOCKED_FOR: Duration = Duration::from_secs(30);

fn unit() -> UnitName {
    UnitName::parse("app.service").expect("a valid unit name")
}

async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: not within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_degrades_health_loses_nothing_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.db");
    let sys = FakeSystemd::new();
    sys.add(&unit(), Limits::new(200, 16, 500));
    sys.set_usage(&unit(), 0.5, 4 * GIB, 50);
    let d = FakeDaemon::start(&sys, &[unit()], HOST, &db, FakeClock::starting_at(T0))
        .expect("engine over fakes");
    d.ok(
        "PUT",
        "/api/autoscaler/config",
        Some(r#"{"check_interval_seconds": 1}"#),
    )
    .await
    .expect("a 1 s interval");
    let config_before = d
        .ok("GET", "/api/autoscaler/config", None)
        .await
        .expect("config");

    let locker = rusqlite::Connection::open(&db).expect("second connection");
    locker
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO autoscaler_learned VALUES ('x', 'y', 0);")
        .expect("hold the write lock");
    let locked_at = Instant::now();
    let checks_before = d.engine.snapshot().loop_stats.checks;

    until("health to say degraded", async || {
        let (code, body) = d
            .request("GET", "/healthz", None, None)
            .await
            .expect("healthz");
        code == 503 && body.to_string().contains("degraded")
    })
    .await;
    let status = d
        .ok("GET", "/api/autoscaler/status", None)
        .await
        .expect("status");
    assert_eq!(status["store"]["state"], "degraded", "{status}");
    assert!(
        status["store"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("locked")),
        "{status}"
    );
    let (code, text) = d
        .request("GET", "/metrics", None, None)
        .await
        .expect("metrics");
    assert_eq!(code, 200);
    assert!(
        text.to_string().contains("autoscaler_store_degraded 1"),
        "{text}"
    );

    // Changes are refused while they cannot be journalled, and change nothing.
    let (code, answer) = d
        .request(
            "POST",
            "/api/autoscaler/scale",
            Some("application/json"),
            Some(r#"{"cpu_quota": 300, "reason": "while locked"}"#),
        )
        .await
        .expect("scale");
    assert_eq!(code, 503, "{answer}");
    let (code, answer) = d
        .request(
            "PUT",
            "/api/autoscaler/config",
            Some("application/json"),
            Some(r#"{"scale_up_cpu_percent": 80}"#),
        )
        .await
        .expect("put config");
    assert_eq!(code, 503, "{answer}");
    assert!(
        sys.applies().is_empty(),
        "systemd was asked: {:?}",
        sys.applies()
    );
    let config = d
        .ok("GET", "/api/autoscaler/config", None)
        .await
        .expect("config");
    assert_eq!(config, config_before);

    // The loop goes on meanwhile: checks keep coming, a second at a time.
    let left = LOCKED_FOR.saturating_sub(locked_at.elapsed());
    tokio::time::sleep(left).await;
    let checks_locked = d.engine.snapshot().loop_stats.checks - checks_before;
    assert!(
        checks_locked >= 15,
        "only {checks_locked} checks in {LOCKED_FOR:?} of a locked database"
    );
    locker.execute_batch("ROLLBACK").expect("release the lock");

    until("health to recover", async || {
        let (code, _) = d
            .request("GET", "/healthz", None, None)
            .await
            .expect("healthz");
        code == 200 && d.engine.store_state().queued == 0
    })
    .await;
    let s = d.engine.store_state();
    assert_eq!((s.dropped_samples, s.lost_writes), (0, 0), "{s:?}");
    // Every sample taken while the database was locked is stored now.
    let stored = d
        .engine
        .store()
        .metrics_since(&unit(), Millis(0), Millis(i64::MAX))
        .expect("metrics");
    let checks = d.engine.snapshot().loop_stats.checks;
    assert!(
        stored.len() as u64 + 2 >= checks,
        "{} samples stored for {checks} checks",
        stored.len()
    );
    let status = d
        .ok("GET", "/api/autoscaler/status", None)
        .await
        .expect("status");
    assert_eq!(status["store"]["state"], "ok", "{status}");
    d.stop().await.expect("stop");
}
