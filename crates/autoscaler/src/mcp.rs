//! The MCP front (placeholder until the MCP issue lands).

use axum::Router;

use crate::api::AppState;
use crate::cli::Remote;

pub fn http_router(
    _state: AppState,
    _shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Router {
    Router::new()
}

pub async fn run_stdio(_remote: Remote) -> anyhow::Result<()> {
    anyhow::bail!("the MCP server is not built yet")
}
