//! The `autoscaler` daemon and its front ends.
//!
//! # Layout
//!
//! - [`engine`]: the control loop, the one owner of unit state; the [`engine::Probe`] and
//!   [`engine::Actuator`] traits it consumes.
//! - [`adapters`]: those traits over the systemd (D-Bus) and cgroup crates.
//! - [`serve`]: `autoscaler serve`: builds the adapters, the engine and the HTTP server, and
//!   shuts them down on SIGTERM/SIGINT.
//! - [`api`]: the HTTP front (spec endpoints, Prometheus, OpenAPI, dashboard).
//! - [`mcp`]: the MCP front (tools over stdio and streamable HTTP).
//! - [`cli`] and [`client`]: the command line, an HTTP client of the API.
//! - [`simulate`] and [`export`]: replay of traces through the core, CSV export of the store.
//! - [`settings`]: where to listen, which units, which strategy.
//! - [`changes`]: a JSON object of config fields as the core's field values (shape only).
//!
//! Architecture invariant: fronts (api, mcp, cli) hold no logic; each operation is one engine
//! method, so every front gives the same answer and the same error for the same input.

pub mod adapters;
pub mod api;
pub mod changes;
pub mod cli;
pub mod client;
pub mod engine;
pub mod export;
pub mod mcp;
pub mod serve;
pub mod settings;
pub mod simulate;
