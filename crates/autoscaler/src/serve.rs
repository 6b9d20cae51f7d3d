//! `autoscaler serve`: build the adapters, the engine and the HTTP server; stop them cleanly.
//!
//! Shutdown is explicit: SIGTERM or SIGINT flips one watch channel, the HTTP server stops
//! accepting and drains (requests in flight are answered, for at most the drain timeout),
//! then the engine finishes the event it is handling and returns, and the store is closed
//! when the last handle drops. Under systemd, [`crate::service`] adds READY,
//! the watchdog and reload on SIGHUP.

use anyhow::Context;
use autoscaler_store::Store;
use tokio::sync::watch;

use std::sync::Arc;

use crate::adapters::{Managers, SystemActuator, SystemProbe};
use crate::api::{self, ApiSettings, AppState};
use crate::cli::ServeArgs;
use crate::engine::{self, EngineSetup, UnitSetup};
use crate::settings::{Overrides, Settings};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::service::init_logging();
    let overrides = Overrides {
        config: args.config.clone(),
        listen: args.listen.clone(),
        db: args.db.clone(),
        units: args.units.clone(),
        bus: args.bus(),
        strategy: args.strategy,
        token: args.token.clone(),
    };
    let settings = Settings::resolve(overrides.clone())?;
    let host = autoscaler_cgroup::read_host(std::path::Path::new("/proc"))
        .context("reading the host's cores and memory")?;
    let default_unit = settings.units[0].name.clone();
    let store = Store::open(&settings.db, &default_unit)
        .with_context(|| format!("opening the store {}", settings.db.display()))?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {} (is another autoscaler running? pass --listen)",
                settings.listen
            )
        })?;
    let local = listener.local_addr()?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let managers = Arc::new(Managers::new(&settings.units));
    // Each unit keeps its cgroup files and notifications open: about 20 descriptors a unit.
    let open_files = autoscaler_cgroup::fds::raise_open_files_limit();
    let descriptors = autoscaler_cgroup::Descriptors::for_limit(open_files);
    tracing::info!(
        open_files,
        kept = descriptors.total(),
        "open-files limit {open_files}: up to {} descriptors for cgroup files and notifications",
        descriptors.total()
    );
    let probe = SystemProbe::new(
        managers.clone(),
        &settings.units,
        &settings.signals,
        descriptors,
    )?;
    let actuator = SystemActuator::new(managers, settings.strategy);
    let setup = EngineSetup {
        units: settings
            .units
            .iter()
            .map(|u| UnitSetup {
                name: u.name.clone(),
                manager: u.bus.as_str(),
            })
            .collect(),
        host,
        store,
        clock: Arc::new(engine::SystemClock),
    };
    // The engine stops only after the HTTP server has drained: a request in flight at
    // SIGTERM still gets the engine's answer, not a 500.
    let (engine_stop_tx, engine_stop_rx) = watch::channel(false);
    let (handle, engine_task) = engine::start(setup, probe, actuator, stopped(engine_stop_rx))?;
    crate::service::apply_file_config(&handle, &settings.config).await?;
    let state = AppState {
        engine: handle.clone(),
        settings: ApiSettings {
            token: settings.token.clone(),
            cors_origins: settings.cors_origins.clone(),
        },
    };
    let app = api::guard(
        api::router(state.clone()).merge(crate::mcp::http_router(state, stopped(stop_rx.clone()))),
        settings.token.clone(),
    );

    let signals = crate::service::signals(handle.clone(), overrides, settings.clone());
    tokio::spawn(async move {
        signals.await;
        crate::service::stopping();
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    crate::service::watchdog(handle.rounds(), stopped(stop_rx.clone()));
    tracing::info!(
        listen = %local,
        db = %settings.db.display(),
        units = ?settings.units.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        strategy = ?settings.strategy,
        "autoscaler serving on http://{local}"
    );
    // The line tests and scripts wait for; the port is real even with --listen 127.0.0.1:0.
    eprintln!("autoscaler: listening on http://{local}");
    crate::service::ready(&format!("serving on http://{local}"));
    api::serve(
        listener,
        app,
        stopped(stop_rx),
        api::ServerLimits::default(),
    )
    .await?;
    let _ = engine_stop_tx.send(true);
    engine_task.await.context("the engine task panicked")?;
    Ok(())
}
