//! The HTTP server itself: accepting connections within the daemon's limits, serving each
//! with hyper, and draining them at shutdown.
//!
//! `axum::serve` has no header timeout and no cap on connections: 4,000 half-open
//! connections held 72 MB, and at about 20,000 the listener ran out of file descriptors and
//! refused everyone. So the loop is ours, with hyper's own knobs ([`ServerLimits`]):
//!
//! - At most [`ServerLimits::max_connections`] connections are open at once. A connection
//!   beyond the cap is accepted and the connection that has been idle longest (waiting for
//!   its first request or between requests, not serving one) is closed to make room; when
//!   every connection is busy serving a request, new ones wait in the kernel's listen
//!   backlog until one finishes. So a flood of idle or half-sent connections cannot keep a
//!   normal client out, and the descriptors stay far below the process's limit.
//! - A connection must send a request's headers within [`ServerLimits::header_timeout`]
//!   of opening or of its previous answer (hyper arms this timer whenever it waits for a
//!   request head), so a slowloris client or an idle keep-alive connection is closed then.
//! - A request body must keep arriving: a gap longer than
//!   [`ServerLimits::body_idle_timeout`] fails the read. Bodies are capped where they are
//!   read (64 KiB for the API and for `/mcp`).
//! - Headers are capped at [`ServerLimits::max_header_bytes`] (hyper's read buffer), which
//!   bounds each connection's memory.
//!
//! At shutdown the listener closes first (new connections are refused), every open
//! connection finishes the request it is serving, idle ones close, and whatever is still
//! open after [`ServerLimits::drain_timeout`] is dropped. This module must not know about
//! routes or the engine.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// What one daemon's HTTP server allows. The defaults are the daemon's; tests use the same.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections served at once. The dashboard, a CLI, Prometheus and a few agents need a
    /// handful; 256 leaves room for bursts and stays far below the 1024 descriptors systemd
    /// gives a service by default (the store and D-Bus need some too).
    pub max_connections: usize,
    /// Time to send a request's headers, from connecting or from the previous answer: the
    /// header-read and the idle timeout. Clients send headers in one packet; 10 s is
    /// generous on a slow link and short enough that held connections free up.
    pub header_timeout: Duration,
    /// The longest gap while a request body arrives. Bodies here are under a kilobyte.
    pub body_idle_timeout: Duration,
    /// The largest request head (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
    /// How long shutdown waits for open connections to finish before dropping them.
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(10),
            max_header_bytes: 32 * 1024,
            drain_timeout: Duration::from_secs(15),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServerLimits,
) -> anyhow::Result<()> {
    let slots = Arc::new(Slots::new(limits.max_connections));
    // Dropping the sender tells every connection to finish what it serves and close.
    let (closing_tx, closing_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or memory: say so, let connections close, go on.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            // A finished connection's task is reaped at once: its memory (sized for the
            // whole connection's future) is not held until the next client comes.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let conn = loop {
            // Registered before `notified` is polled, so a slot freed in between is seen.
            let freed = slots.freed.notified();
            if let Some(conn) = slots.admit() {
                break Some(conn);
            }
            tokio::select! {
                () = freed => {}
                () = &mut shutdown => break None,
            }
        };
        let Some(conn) = conn else { break };
        let (app, slots, closing) = (app.clone(), slots.clone(), closing_rx.clone());
        connections.spawn(async move {
            serve_connection(stream, app, &conn, &slots, closing, limits).await;
            slots.release(&conn);
        });
    }
    drop(listener);
    drop(closing_tx);
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open {} s after shutdown began; closing them",
            limits.drain_timeout.as_secs()
        );
        connections.abort_all();
    }
    Ok(())
}

/// The open connections, for the cap and the choice of whom to close.
struct Slots {
    cap: usize,
    open: Mutex<Vec<Arc<Conn>>>,
    started: Instant,
    /// Signalled when a connection ends.
    freed: Notify,
}

/// One open connection: how many requests it is serving, since when it is idle, and the
/// signal that closes it.
struct Conn {
    busy: AtomicUsize,
    /// Milliseconds after [`Slots::started`] at which it last became idle.
    idle_since: AtomicU64,
    evict: Notify,
    /// Told to close to make room; its slot is taken until it has.
    evicted: AtomicBool,
}

impl Slots {
    fn new(cap: usize) -> Slots {
        Slots {
            cap: cap.max(1),
            open: Mutex::new(Vec::with_capacity(cap)),
            started: Instant::now(),
            freed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A slot for a new connection, or `None` while all are taken. When all are taken, the
    /// longest-idle connection is told to close (one at a time); its slot is free only once it
    /// has closed, descriptor and all, so the cap holds for descriptors too, not only for the
    /// list. `None` also when all are busy serving requests: the caller waits for a release.
    fn admit(&self) -> Option<Arc<Conn>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.cap {
            let closing = open.iter().any(|c| c.evicted.load(Ordering::Acquire));
            let oldest = open
                .iter()
                .filter(|c| c.busy.load(Ordering::Acquire) == 0)
                .min_by_key(|c| c.idle_since.load(Ordering::Acquire));
            if let (false, Some(oldest)) = (closing, oldest) {
                oldest.evicted.store(true, Ordering::Release);
                oldest.evict.notify_one();
                tracing::debug!("at {} connections: closing the longest-idle one", self.cap);
            }
            return None;
        }
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now_ms()),
            evict: Notify::new(),
            evicted: AtomicBool::new(false),
        });
        open.push(conn.clone());
        Some(conn)
    }

    fn release(&self, conn: &Arc<Conn>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|c| !Arc::ptr_eq(c, conn));
        drop(open);
        self.freed.notify_one();
    }
}

/// Marks a connection busy while one of its requests is being answered.
struct Busy(Arc<Conn>, Arc<Slots>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.store(self.1.now_ms(), Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    conn: &Arc<Conn>,
    slots: &Arc<Slots>,
    mut closing: watch::Receiver<()>,
    limits: ServerLimits,
) {
    let (me, clock) = (conn.clone(), slots.clone());
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let req = req.map(|b| axum::body::Body::new(TimeoutBody::new(limits.body_idle_timeout, b)));
        me.busy.fetch_add(1, Ordering::AcqRel);
        let (app, busy) = (app.clone(), Busy(me.clone(), clock.clone()));
        async move {
            let _busy = busy;
            app.oneshot(req).await
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes);
    let http = builder.serve_connection(TokioIo::new(stream), service);
    let mut http = std::pin::pin!(http);
    let served = tokio::select! {
        served = http.as_mut() => served,
        _ = closing.changed() => {
            http.as_mut().graceful_shutdown();
            http.await
        }
        // Closed to make room: dropping the connection closes the socket.
        () = conn.evict.notified() => Ok(()),
    };
    if let Err(e) = served {
        tracing::debug!("connection closed: {e}");
    }
}
