//! The journal of changes over the testkit's fakes, on paused time, without root: a change
//! the previous daemon began and never finished is settled at the next start from what
//! systemd reports; a database that cannot take the journal entry refuses the change and
//! changes nothing; the rate limit goes on across a restart. The kill -9 at each real step,
//! on the sandboxed systemd, is in `crash.rs`.

use std::path::Path;
use std::time::Duration;

use autoscaler_core::{Action, Limits, Millis, Mode, Status, TriggerType, UnitName};
use autoscaler_store::{NewHistory, Store};
use autoscaler_testkit::fakes::{FakeClock, FakeDaemon, FakeSystemd, HOST, T0};

const START: Limits = Limits::new(200, 16, 500);
const RAISED: Limits = Limits::new(350, 16, 500);

fn unit() -> UnitName {
    UnitName::parse("app.service").expect("a valid unit name")
}

fn start(sys: &FakeSystemd, db: &Path, at: Millis) -> FakeDaemon {
    FakeDaemon::start(sys, &[unit()], HOST, db, FakeClock::starting_at(at))
        .expect("engine over fakes")
}

/// Journals a scale-up from [`START`] to [`RAISED`] as a daemon does just before it asks
/// systemd, and stops there, as a daemon killed at that moment would.
fn journal_a_change(db: &Path) -> i64 {
    let store = Store::open(db, &unit()).expect("store");
    let id = store.reserve_history_id();
    let planned = NewHistory {
        unit: unit(),
        at: T0,
        action: Action::ScaleUp,
        trigger_type: TriggerType::Threshold,
        reason: "Thresholds breached: CPU=93.0%".into(),
        old: START,
        new: RAISED,
        status: Status::Success,
        error_message: None,
    };
    store.begin_change(id, &planned, true).expect("journal");
    id
}

/// Waits (in paused time) until the engine has settled the journal, as it does before its
/// first check.
async fn settled(d: &FakeDaemon) {
    for _ in 0..100 {
        if d.engine
            .store()
            .unfinished_changes()
            .expect("journal")
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the journal was not settled within 10 s");
}

async fn history(d: &FakeDaemon) -> serde_json::Value {
    d.ok("GET", "/api/autoscaler/history?limit=10", None)
        .await
        .expect("history")
}

/// The kill came after systemd took the change: the next start finds the new limits, records
/// the change as the success it was, under its journalled id, and the cooldown counts it.
#[tokio::test(start_paused = true)]
async fn a_change_systemd_took_is_recorded_at_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.db");
    let id = journal_a_change(&db);
    let sys = FakeSystemd::new();
    sys.add(&unit(), RAISED);
    let d = start(&sys, &db, Millis(T0.0 + 5_000));
    settled(&d).await;
    let rows = history(&d).await;
    let row = &rows[0];
    assert_eq!(row["id"], id, "{rows}");
    assert_eq!(row["status"], "success", "{rows}");
    assert_eq!(row["new_limits"]["cpu_quota"], 350, "{rows}");
    assert!(
        row["reason"]
            .as_str()
            .is_some_and(|r| r.contains("recorded by the next start")),
        "{rows}"
    );
    let status = d
        .ok("GET", "/api/autoscaler/status", None)
        .await
        .expect("status");
    assert!(
        status["last_scale_time"].is_string(),
        "the recovered change starts the cooldown: {status}"
    );
    assert!(sys.applies().is_empty(), "nothing was applied again");
    d.stop().await.expect("stop");
}

/// The kill came before systemd took it: the old limits are in force, and the history says
/// the change was not applied; the unit stays enabled (nothing failed in systemd).
#[tokio::test(start_paused = true)]
async fn a_change_systemd_never_took_is_recorded_as_not_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.db");
    let id = journal_a_change(&db);
    let sys = FakeSystemd::new();
    sys.add(&unit(), START);
    let d = start(&sys, &db, Millis(T0.0 + 5_000));
    settled(&d).await;
    let rows = history(&d).await;
    let row = &rows[0];
    assert_eq!(
        (row["id"].clone(), row["status"].clone()),
        (id.into(), "failed".into())
    );
    assert!(
        row["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("not applied: systemd kept the old limits")),
        "{rows}"
    );
    let snap = d.engine.snapshot();
    assert_eq!(snap.units[0].config.mode(), Mode::Enabled);
    d.stop().await.expect("stop");
}

/// A database another process holds locked cannot take the journal entry: the manual scale
/// is refused with 503 and says why, systemd is not asked, and nothing is journalled. Once
/// the lock goes, the same request works.
#[tokio::test(start_paused = true)]
async fn a_locked_database_refuses_the_change_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.db");
    let sys = FakeSystemd::new();
    sys.add(&unit(), START);
    let d = start(&sys, &db, T0);
    let locker = rusqlite::Connection::open(&db).expect("second connection");
    locker
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO autoscaler_learned VALUES ('x', 'y', 0);")
        .expect("hold the write lock");
    let body = r#"{"cpu_quota": 300, "reason": "test"}"#;
    let (status, answer) = d
        .request(
            "POST",
            "/api/autoscaler/scale",
            Some("application/json"),
            Some(body),
        )
        .await
        .expect("scale request");
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("nothing was changed")),
        "{answer}"
    );
    assert!(
        sys.applies().is_empty(),
        "systemd was asked: {:?}",
        sys.applies()
    );
    assert_eq!(sys.limits(&unit()), Some(START));

    locker.execute_batch("ROLLBACK").expect("release the lock");
    // The refused entry's removal may still be on its way; let it land.
    settled(&d).await;
    d.ok("POST", "/api/autoscaler/scale", Some(body))
        .await
        .expect("allowed once the lock is gone");
    assert_eq!(sys.limits(&unit()).and_then(|l| l.cpu_quota), Some(300));
    let rows = history(&d).await;
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    d.stop().await.expect("stop");
}

/// Twelve changes, a restart within the same minute, and the thirteenth is still refused.
#[tokio::test(start_paused = true)]
async fn the_rate_limit_goes_on_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.db");
    let sys = FakeSystemd::new();
    sys.add(&unit(), START);
    let d = start(&sys, &db, T0);
    for k in 1..=12 {
        let body = format!(r#"{{"cpu_quota": {}, "reason": "test"}}"#, 200 + 10 * k);
        d.ok("POST", "/api/autoscaler/scale", Some(&body))
            .await
            .expect("a change within the limit");
    }
    d.stop().await.expect("stop");
    let d = start(&sys, &db, Millis(T0.0 + 10_000));
    let (status, answer) = d
        .request(
            "POST",
            "/api/autoscaler/scale",
            Some("application/json"),
            Some(r#"{"cpu_quota": 400, "reason": "test"}"#),
        )
        .await
        .expect("scale request");
    assert_eq!(status, 429, "{answer}");
    assert_eq!(sys.applies().len(), 12);
    d.stop().await.expect("stop");
}
