//! The MCP front: the spec's nine tools for agents, over stdio (`autoscaler mcp`, talking to a
//! running daemon) and over streamable HTTP at `/mcp` (inside the daemon).
//!
//! Every tool call is one request to the HTTP API ([`backend`]), made over the network or
//! in-process, so a tool answers what the endpoint answers and fails with the endpoint's
//! message. This module must not validate values, call the engine directly, or word errors
//! of its own where the API has words: it only maps tools to requests ([`tools`]) and
//! answers to MCP results. In stdio mode stdout belongs to the protocol: logs go to stderr.
//!
//! - [`run_stdio`]: `autoscaler mcp --url URL [--token T] [--unit U]`.
//! - [`http_router`]: `/mcp` for `autoscaler serve`. The daemon puts it behind the same
//!   guard as the API ([`crate::api::guard`]: strict `Host`, the token when one is set); rmcp
//!   refuses non-loopback `Host` headers as well (DNS rebinding).

mod backend;
pub mod jsonrpc;
mod tools;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

pub use backend::{ApiRequest, Backend, ToolError};

use crate::api::{self, AppState};
use crate::cli::Remote;
use crate::client::Client;

/// What an agent reads once, at `initialize`.
const INSTRUCTIONS: &str = "autoscaler watches systemd services' cgroups and raises or lowers \
their CPUQuota, MemoryMax and TasksMax. Units everywhere: cpu_quota is percent of one core \
(200 = two cores), memory_max is GiB, tasks_max is a number of tasks (processes and threads). \
Start with autoscaler_get_status: it shows the mode, the current limits and the bounds any new \
limit must lie in. Modes: enabled (automatic), disabled (metrics only), manual (only \
autoscaler_manual_scale changes limits; calling it switches to manual). Every tool acts on the \
daemon's default unit unless given `unit`. Errors are the HTTP API's own messages: they name \
the field and what is allowed, and a refused call changes nothing.";

/// The MCP server: tool definitions and a way to reach the API.
#[derive(Clone)]
pub struct McpServer {
    backend: Backend,
    default_unit: Option<String>,
}

impl McpServer {
    pub fn new(backend: Backend, default_unit: Option<String>) -> McpServer {
        McpServer {
            backend,
            default_unit,
        }
    }

    /// Runs one tool: its result, or a tool error carrying the API's message.
    pub async fn call(&self, name: &str, args: rmcp::model::JsonObject) -> CallToolResult {
        let answer = match tools::request(name, args, self.default_unit.as_deref()) {
            Ok(req) => {
                tracing::debug!(tool = name, method = %req.method, path = %req.path, "tool call");
                self.backend.send(req).await
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok(value) => {
                // The text is the API's JSON as served; the structured copy is an object.
                let mut result =
                    CallToolResult::success(vec![ContentBlock::text(value.to_string())]);
                result.structured_content = Some(tools::structured(name, value));
                result
            }
            Err(e) => {
                tracing::debug!(tool = name, error = %e.message, detail = %e.detail, "tool failed");
                // Text only: clients check structured content against the tool's output
                // schema even on errors (the Inspector does), and the message says it all.
                CallToolResult::error(vec![ContentBlock::text(e.message)])
            }
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let mut implementation = Implementation::new("autoscaler", env!("CARGO_PKG_VERSION"));
        implementation.title = Some("autoscaler: vertical autoscaler for systemd services".into());
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(implementation)
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::all()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // An unknown tool is a protocol error (-32602), as the MCP spec asks; everything
        // else, including bad arguments, is a tool result the agent can read.
        if !tools::exists(&request.name) {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {:?}; tools/list shows the autoscaler_* tools",
                    request.name
                ),
                None,
            ));
        }
        let args = request.arguments.unwrap_or_default();
        Ok(self.call(&request.name, args).await.into())
    }
}

/// `autoscaler mcp`: serves the tools on stdin/stdout until the client closes stdin.
///
/// It starts even when the daemon is down: each tool then says it cannot reach the daemon and
/// how to start it, which an agent can act on, unlike a server that failed to start.
pub async fn run_stdio(remote: Remote) -> anyhow::Result<()> {
    init_stderr_logging();
    let client = Client::new(&remote.url, remote.token.clone());
    let server = McpServer::new(Backend::Remote(client), remote.unit.clone());
    tracing::info!(url = %remote.url, "MCP server on stdio for the daemon at {}", remote.url);
    // rmcp talks to one end of a pipe; `checked_stdio` moves lines between the other end and
    // stdin/stdout, answering what rmcp would drop or misname (see [`jsonrpc`]).
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let pump = tokio::spawn(checked_stdio(ours));
    let running = server
        .serve(tokio::io::split(theirs))
        .await
        .context("starting the MCP session on stdin/stdout (is the client speaking MCP?)")?;
    running
        .waiting()
        .await
        .context("the MCP session task panicked")?;
    pump.abort();
    Ok(())
}

/// Copies stdin to `server` line by line, except the lines [`jsonrpc::precheck`] answers
/// itself, and the server's lines and those answers to stdout, one whole line at a time.
async fn checked_stdio(server: tokio::io::DuplexStream) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (from_server, mut to_server) = tokio::io::split(server);
    let (answers, mut answered) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let reader = tokio::spawn(async move {
        let mut stdin = BufReader::new(tokio::io::stdin());
        let mut line = Vec::new();
        loop {
            line.clear();
            match stdin.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let sent = match jsonrpc::precheck(&line) {
                None => to_server.write_all(&line).await.is_ok(),
                Some(error) => answers.send(error.to_string().into_bytes()).await.is_ok(),
            };
            if !sent {
                break;
            }
        }
        // End of input: rmcp sees its stdin close and ends the session.
        let _ = to_server.shutdown().await;
    });
    let mut stdout = tokio::io::stdout();
    let mut from_server = BufReader::new(from_server);
    let mut line = Vec::new();
    loop {
        line.clear();
        tokio::select! {
            read = from_server.read_until(b'\n', &mut line) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            Some(mut answer) = answered.recv() => {
                answer.push(b'\n');
                line = answer;
            }
        }
        if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
            break;
        }
    }
    reader.abort();
}

/// `/mcp` for the daemon: streamable HTTP calling the API in-process. Sessions end when
/// `shutdown` resolves, so open event streams do not hold the HTTP server's drain.
pub fn http_router(state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> Router {
    let backend = Backend::Local(api::router(state));
    // The default allows only loopback Host headers: a web page cannot reach /mcp through
    // DNS rebinding. Keep it.
    let config = StreamableHttpServerConfig::default();
    let cancel = config.cancellation_token.clone();
    tokio::spawn(async move {
        shutdown.await;
        cancel.cancel();
    });
    let server = McpServer::new(backend, None);
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn(checked_post))
}

/// The largest `/mcp` request body: tool calls are a few hundred bytes.
pub const MAX_MCP_BODY: usize = 64 * 1024;

/// `/mcp` POSTs through [`jsonrpc::precheck`]: not JSON is a 400 with a -32700 error, bad
/// params of a request a JSON -32602 error with its id (200, as the streamable HTTP transport
/// answers a request), a body over [`MAX_MCP_BODY`] a 413. The rest reaches rmcp unchanged.
async fn checked_post(req: Request, next: Next) -> Response {
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match api::body::read(body, MAX_MCP_BODY).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match jsonrpc::precheck(&bytes) {
        None => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Some(error) => {
            let status = if error["id"].is_null() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (status, axum::Json(error)).into_response()
        }
    }
}

fn init_stderr_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUTOSCALER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,autoscaler=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
