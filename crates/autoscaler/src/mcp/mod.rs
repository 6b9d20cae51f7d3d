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
//! - [`http_router`]: `/mcp` for `autoscaler serve`, guarded as a whole by the daemon's token
//!   when one is set; rmcp refuses non-loopback `Host` headers (DNS rebinding).

mod backend;
mod tools;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
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
use serde_json::json;

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
    let running = server
        .serve(rmcp::transport::stdio_pipes())
        .await
        .context("starting the MCP session on stdin/stdout (is the client speaking MCP?)")?;
    running
        .waiting()
        .await
        .context("the MCP session task panicked")?;
    Ok(())
}

/// `/mcp` for the daemon: streamable HTTP calling the API in-process. Sessions end when
/// `shutdown` resolves, so open event streams do not hold the HTTP server's drain.
pub fn http_router(state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> Router {
    let token = state.settings.token.clone();
    let backend = Backend::Local {
        router: api::router(state),
        token: token.clone(),
    };
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
    let router = Router::new().nest_service("/mcp", service);
    match token {
        Some(t) => router.layer(middleware::from_fn_with_state(
            Arc::<str>::from(t),
            require_token,
        )),
        None => router,
    }
}

/// With a token configured, every `/mcp` request must carry it: reading tools go through
/// here as well as changing ones, and one session serves both.
async fn require_token(State(token): State<Arc<str>>, req: Request, next: Next) -> Response {
    if crate::api::bearer_matches(req.headers(), &token) {
        return next.run(req).await;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({
            "error": "/mcp needs the header `Authorization: Bearer <token>` with the daemon's token"
        })),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"autoscaler\""),
    );
    response
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
