//! [`UserService`]: the daemon run the way it is shipped, as the user unit
//! `contrib/systemd/user/autoscaler.service` of a [`Sandbox`]'s manager, with its config file
//! in the sandbox's `~/.config/autoscaler/` and its API on a free loopback port.
//!
//! The unit file is the shipped one; only the paths of the installed files are rewritten to
//! where they are in the test (the build's binary, or a package extracted to a throwaway root).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::{Http, Sandbox};

/// The daemon's unit name in the sandbox.
pub const UNIT: &str = "autoscaler.service";

pub struct UserService {
    pub http: Http,
    pub port: u16,
    /// `~/.config/autoscaler/autoscaler.toml` of the sandbox: the unit's `--config`.
    pub config: PathBuf,
    db: PathBuf,
}

impl UserService {
    /// Writes the unit (with `rewrites` applied: `("/usr/bin/autoscaler", "/path/to/bin")`),
    /// drop-ins (`[Service]` lines, e.g. a short `WatchdogSec=`), and a config file listening
    /// on a free port with `more_config` after it. Does not start the unit.
    pub fn install(
        sb: &Sandbox,
        unit_text: &str,
        rewrites: &[(&str, &str)],
        drop_in: &str,
        more_config: &str,
    ) -> anyhow::Result<UserService> {
        let mut text = unit_text.to_string();
        for (from, to) in rewrites {
            text = text.replace(from, to);
        }
        if !drop_in.is_empty() {
            let dir = sb.unit_dir().join(format!("{UNIT}.d"));
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            fs::write(dir.join("test.conf"), format!("[Service]\n{drop_in}\n"))
                .context("writing the unit's test drop-in")?;
        }
        let port = free_port()?;
        let svc = UserService {
            http: Http {
                base: format!("http://127.0.0.1:{port}"),
                token: None,
            },
            port,
            config: sb.home().join(".config/autoscaler/autoscaler.toml"),
            db: sb.home().join("autoscaler.db"),
        };
        svc.write_config(more_config)?;
        sb.write_unit(UNIT, &text)?;
        Ok(svc)
    }

    /// Rewrites the config file: the port and store stay, `more` follows them.
    pub fn write_config(&self, more: &str) -> anyhow::Result<()> {
        if let Some(dir) = self.config.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = format!(
            "listen = \"127.0.0.1:{}\"\ndb = {:?}\n{more}",
            self.port,
            self.db.display().to_string()
        );
        fs::write(&self.config, text).with_context(|| format!("writing {}", self.config.display()))
    }

    pub fn db(&self) -> &Path {
        &self.db
    }
}

/// A loopback port nobody listens on right now (the OS picks it; it is released at once).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
