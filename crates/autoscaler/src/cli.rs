//! The command line: `serve`, `mcp`, the API client commands, `simulate` and `export`.
//!
//! Client commands are one API call each; the table printing is the only thing they add.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::client::{Client, DEFAULT_URL};
use crate::settings::{Bus, Strategy};

#[derive(Parser, Debug)]
#[command(
    name = "autoscaler",
    version,
    about = "A vertical autoscaler for systemd services"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: watch the units, scale them, serve the API, MCP and the dashboard.
    Serve(ServeArgs),
    /// Run an MCP server over stdio that talks to a running daemon.
    Mcp(#[command(flatten)] Remote),
    /// Show the autoscaler's state and limits.
    Status(#[command(flatten)] Remote),
    /// Show current resource usage from the unit's cgroup.
    Metrics(#[command(flatten)] Remote),
    /// Show the scaling history, newest first.
    History {
        #[command(flatten)]
        remote: Remote,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Set the mode.
    Mode {
        #[command(flatten)]
        remote: Remote,
        #[arg(help = autoscaler_core::Mode::summary())]
        mode: String,
    },
    /// Set the policy (a bundle of thresholds, checks, cooldown and factor).
    Policy {
        #[command(flatten)]
        remote: Remote,
        #[arg(help = autoscaler_core::Policy::summary())]
        policy: String,
    },
    /// Set limits by hand (switches to manual mode).
    Scale {
        #[command(flatten)]
        remote: Remote,
        /// CPUQuota in percent of one core (200 = two cores).
        #[arg(long)]
        cpu_quota: Option<u64>,
        /// MemoryMax in GiB.
        #[arg(long)]
        memory_max: Option<f64>,
        #[arg(long)]
        tasks_max: Option<u64>,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Read or change the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Show forecasts and the recommended limits.
    Predict(#[command(flatten)] Remote),
    /// Replay usage traces through the decision code and score the policies.
    Simulate(crate::simulate::SimulateArgs),
    /// Export stored data.
    Export {
        #[command(subcommand)]
        what: ExportWhat,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    Get(#[command(flatten)] Remote),
    /// `config set scale_up_cpu_percent=75 scale_cooldown_seconds=120`
    Set {
        #[command(flatten)]
        remote: Remote,
        #[arg(required = true, value_name = "FIELD=VALUE")]
        pairs: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExportWhat {
    /// Stored metrics as CSV (the format `simulate --trace` reads).
    Metrics {
        #[arg(long, env = "AUTOSCALER_DB")]
        db: Option<PathBuf>,
        #[arg(long, default_value = crate::settings::DEFAULT_UNIT)]
        unit: String,
        /// How far back: a duration ("24h", "90m") or a time ("2026-01-25T10:00:00").
        #[arg(long, default_value = "24h")]
        since: String,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// TOML file with listen, db, units, bus, strategy, token, cors_origins, [signals].
    #[arg(long, env = "AUTOSCALER_CONFIG")]
    pub config: Option<PathBuf>,
    /// SQLite file [default: ~/.autocoder/autoscaler.db]
    #[arg(long, env = "AUTOSCALER_DB")]
    pub db: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8888]
    #[arg(long, env = "AUTOSCALER_LISTEN")]
    pub listen: Option<String>,
    /// Unit to manage; repeat for several; the first is the default [default: autocoder-ui.service]
    #[arg(long = "unit")]
    pub units: Vec<String>,
    /// Manage units of the user manager [default].
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// Manage units of the system manager.
    #[arg(long)]
    pub system: bool,
    /// How limits are applied: live (set the running unit's properties, no restart), restart
    /// (the spec's way: rewrite the unit file, reload, restart) or dry-run (record only)
    /// [default: live]
    #[arg(long, value_parser = strategy_parser())]
    pub strategy: Option<Strategy>,
    /// Token required on POST/PUT; needed when listening beyond loopback.
    #[arg(long, env = "AUTOSCALER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

fn strategy_parser() -> impl clap::builder::TypedValueParser<Value = Strategy> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Strategy::NAMES).try_map(|s| s.parse::<Strategy>())
}

impl ServeArgs {
    pub fn bus(&self) -> Option<Bus> {
        match (self.user, self.system) {
            (_, true) => Some(Bus::System),
            (true, _) => Some(Bus::User),
            _ => None,
        }
    }
}

/// How a client command reaches the daemon.
#[derive(Args, Debug, Clone)]
pub struct Remote {
    #[arg(long, env = "AUTOSCALER_URL", default_value = DEFAULT_URL)]
    pub url: String,
    #[arg(long, env = "AUTOSCALER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A unit other than the daemon's default.
    #[arg(long)]
    pub unit: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Remote {
    fn client(&self) -> Client {
        Client::new(&self.url, self.token.clone())
    }
    fn path(&self, endpoint: &str) -> String {
        Client::path(self.unit.as_deref(), endpoint)
    }
}

/// Runs one client command and prints its answer.
pub async fn run_client(cmd: Command) -> anyhow::Result<()> {
    let (remote, value, render): (Remote, Value, fn(&Value) -> String) = match cmd {
        Command::Status(r) => (
            r.clone(),
            r.client().get(&r.path("status")).await?,
            render_status,
        ),
        Command::Metrics(r) => (
            r.clone(),
            r.client().get(&r.path("metrics")).await?,
            render_object,
        ),
        Command::History { remote: r, limit } => {
            let v = r
                .client()
                .get(&format!("{}?limit={limit}", r.path("history")))
                .await?;
            (r, v, render_history)
        }
        Command::Mode { remote: r, mode } => {
            let v = r
                .client()
                .post(&r.path("mode"), &json!({ "mode": mode }))
                .await?;
            (r, v, render_status)
        }
        Command::Policy { remote: r, policy } => {
            let v = r
                .client()
                .post(&r.path("policy"), &json!({ "policy": policy }))
                .await?;
            (r, v, render_status)
        }
        Command::Scale {
            remote: r,
            cpu_quota,
            memory_max,
            tasks_max,
            reason,
        } => {
            let body = json!({ "cpu_quota": cpu_quota, "memory_max": memory_max, "tasks_max": tasks_max, "reason": reason });
            let v = r.client().post(&r.path("scale"), &body).await?;
            (r, v, render_object)
        }
        Command::Config {
            action: ConfigAction::Get(r),
        } => (
            r.clone(),
            r.client().get(&r.path("config")).await?,
            render_object,
        ),
        Command::Config {
            action: ConfigAction::Set { remote: r, pairs },
        } => {
            let mut body = serde_json::Map::new();
            for p in &pairs {
                let Some((k, v)) = p.split_once('=') else {
                    anyhow::bail!("{p:?} is not FIELD=VALUE (e.g. scale_up_cpu_percent=75)");
                };
                body.insert(k.trim().to_string(), parse_value(v.trim()));
            }
            let v = r
                .client()
                .put(&r.path("config"), &Value::Object(body))
                .await?;
            (r, v, render_object)
        }
        Command::Predict(r) => (
            r.clone(),
            r.client().get(&r.path("prediction")).await?,
            render_prediction,
        ),
        other => anyhow::bail!("{other:?} is not a client command"),
    };
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&value));
    }
    Ok(())
}

fn parse_value(v: &str) -> Value {
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => v
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| v.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(v.to_string())),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) if m.contains_key("cpu_quota") => format!(
            "CPU {}%  Memory {}GB  Tasks {}",
            scalar(&m["cpu_quota"]),
            scalar(&m["memory_max"]),
            scalar(&m["tasks_max"])
        ),
        other => other.to_string(),
    }
}

fn render_object(v: &Value) -> String {
    let Some(m) = v.as_object() else {
        return format!("{}\n", scalar(v));
    };
    let width = m.keys().map(String::len).max().unwrap_or(0);
    m.iter()
        .map(|(k, v)| format!("{k:<width$}  {}\n", scalar(v)))
        .collect()
}

fn render_status(v: &Value) -> String {
    let mut out = render_object(v);
    if let Some(f) = v.get("last_failure").filter(|f| !f.is_null()) {
        out.push_str(&format!(
            "\nLAST FAILURE at {}: {}\n",
            scalar(&f["timestamp"]),
            scalar(&f["error_message"])
        ));
    }
    out
}

fn render_history(v: &Value) -> String {
    let Some(rows) = v.as_array() else {
        return render_object(v);
    };
    if rows.is_empty() {
        return "no scaling actions yet\n".into();
    }
    let mut out = format!(
        "{:>5}  {:<19}  {:<12}  {:<9}  {:<7}  {:<40}  {}\n",
        "ID", "TIME", "ACTION", "TRIGGER", "STATUS", "OLD -> NEW", "REASON"
    );
    for r in rows {
        let change = format!("{} -> {}", short(&r["old_limits"]), short(&r["new_limits"]));
        let mut reason = scalar(&r["reason"]);
        if let Some(e) = r["error_message"].as_str() {
            reason.push_str(&format!(" [error: {e}]"));
        }
        out.push_str(&format!(
            "{:>5}  {:<19}  {:<12}  {:<9}  {:<7}  {:<40}  {}\n",
            scalar(&r["id"]),
            scalar(&r["timestamp"]),
            scalar(&r["action"]),
            scalar(&r["trigger_type"]),
            scalar(&r["status"]),
            change,
            reason
        ));
    }
    out
}

fn render_prediction(v: &Value) -> String {
    let mut out = format!(
        "unit {}  window {} min  samples {} (need {})  predictive {}\n",
        scalar(&v["unit"]),
        scalar(&v["window_minutes"]),
        scalar(&v["samples"]),
        scalar(&v["samples_needed"]),
        scalar(&v["predictive"])
    );
    out.push_str(&format!(
        "\n{:<17} {:>9} {:>9} {:>9}  {:<10}  {:<22} {:<22} {:<22}\n",
        "SERIES", "NOW", "MA5", "MA15", "TREND", "+5 MIN [95%]", "+15 MIN [95%]", "+30 MIN [95%]"
    ));
    for (name, s) in v["series"].as_object().into_iter().flatten() {
        let horizon = |i: usize| {
            let p = &s["forecast"][i];
            if p.is_null() {
                "-".to_string()
            } else {
                format!(
                    "{} [{}..{}]",
                    scalar(&p["value"]),
                    scalar(&p["lower"]),
                    scalar(&p["upper"])
                )
            }
        };
        out.push_str(&format!(
            "{:<17} {:>9} {:>9} {:>9}  {:<10}  {:<22} {:<22} {:<22}\n",
            name,
            scalar(&s["current"]),
            scalar(&s["ma5"]),
            scalar(&s["ma15"]),
            scalar(&s["trend"]),
            horizon(0),
            horizon(1),
            horizon(2)
        ));
        if let Some(e) = s["error"].as_str() {
            out.push_str(&format!("{:<17} no forecast: {e}\n", ""));
        }
    }
    out.push_str(&format!(
        "\nrecommended: {}\n",
        scalar(&v["recommendation"]["limits"])
    ));
    for r in v["recommendation"]["reasons"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("  - {}\n", scalar(r)));
    }
    if let Some(features) = v["heaviest_features"].as_array().filter(|f| !f.is_empty()) {
        out.push_str("\nheaviest features (mean cores / GiB):\n");
        for f in features {
            out.push_str(&format!(
                "  {:<20} {} / {} over {} samples\n",
                scalar(&f["feature_id"]),
                scalar(&f["cpu_cores_mean"]),
                scalar(&f["memory_gb_mean"]),
                scalar(&f["samples"])
            ));
        }
    }
    out
}

fn short(l: &Value) -> String {
    format!(
        "{}%/{}G/{}",
        scalar(&l["cpu_quota"]),
        scalar(&l["memory_max"]),
        scalar(&l["tasks_max"])
    )
}
