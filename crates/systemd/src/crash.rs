//! Crash points for the fault-injection tests: a debug build started with
//! `AUTOSCALER_CRASH_AT=<name>` dies at the point of that name, as abruptly as `kill -9`
//! (no destructor, no flush), so a test can check what a restarted daemon finds there.
//! Release builds compile every point to nothing.
//!
//! The names are the steps of a change, in order: `journalled` (the engine wrote the journal
//! entry), `live-set` (systemd took the new properties), `restart-backup`, `restart-file`,
//! `restart-reload` and `restart-restarted` (the restart strategy's steps), and `applied`
//! (the change is done and not yet in the history).

/// Dies here if this debug build was started to crash at `name`.
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    {
        static WANTED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let wanted = WANTED.get_or_init(|| std::env::var("AUTOSCALER_CRASH_AT").ok());
        if wanted.as_deref() == Some(name) {
            eprintln!("autoscaler: crashing at {name}, as AUTOSCALER_CRASH_AT asks");
            std::process::abort();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
