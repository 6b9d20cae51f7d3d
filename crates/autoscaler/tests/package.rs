//! The Debian package (issue 15): `scripts/package` builds it with cargo-deb from this build's
//! binary; its contents and control data are checked; it is extracted into a throwaway root
//! (`dpkg -x`) and its own user unit, pointed at that root, runs on a sandboxed user manager:
//! systemd sees it ready, the daemon answers and changes a unit's limits.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use autoscaler_testkit::service::UNIT;
use autoscaler_testkit::{Sandbox, UserService, busy_unit, repo, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_autoscaler");

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("running {shown}"))?;
    ensure!(
        out.status.success(),
        "{shown} failed with {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds the package from this test's binary into `out`; returns the .deb's path.
fn build_package(out: &Path) -> anyhow::Result<std::path::PathBuf> {
    // cargo holds its build lock while tests run, so the package is made from the binary this
    // test was built with, placed where cargo-deb looks for a release build.
    let target = out.join("target");
    std::fs::create_dir_all(target.join("release"))?;
    std::fs::copy(BIN, target.join("release/autoscaler"))?;
    run(Command::new(repo().join("scripts/package"))
        .args(["--no-build", "--fast", "-o"])
        .arg(out)
        .env("CARGO_TARGET_DIR", &target))?;
    let deb = std::fs::read_dir(out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("scripts/package made no .deb")?;
    Ok(deb)
}

#[test]
fn the_package_installs_a_user_unit_that_runs_and_manages_a_unit() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let deb = build_package(work.path())?;

    // Contents: every installed file, with its mode.
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb))?;
    let files = [
        ("./usr/bin/autoscaler", "-rwxr-xr-x"),
        ("./lib/systemd/system/autoscaler.service", "-rw-r--r--"),
        ("./usr/lib/systemd/user/autoscaler.service", "-rw-r--r--"),
        ("./etc/autoscaler/autoscaler.toml", "-rw-r--r--"),
        ("./usr/share/autoscaler/autoscaler.toml", "-rw-r--r--"),
        ("./usr/share/man/man1/autoscaler.1.gz", "-rw-r--r--"),
        ("./usr/share/man/man1/autoscaler-serve.1.gz", "-rw-r--r--"),
        (
            "./usr/share/bash-completion/completions/autoscaler",
            "-rw-r--r--",
        ),
        (
            "./usr/share/zsh/vendor-completions/_autoscaler",
            "-rw-r--r--",
        ),
        (
            "./usr/share/fish/vendor_completions.d/autoscaler.fish",
            "-rw-r--r--",
        ),
        ("./usr/share/autoscaler/prometheus/alerts.yml", "-rw-r--r--"),
        (
            "./usr/share/autoscaler/grafana/autoscaler-fleet.json",
            "-rw-r--r--",
        ),
    ];
    for (path, mode) in files {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .with_context(|| format!("{path} is not in the package:\n{listing}"))?;
        assert!(line.starts_with(mode), "{line}");
    }
    let field = |name: &str| -> anyhow::Result<String> {
        Ok(run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name))?
            .trim()
            .to_string())
    };
    assert_eq!(field("Package")?, "autoscaler");
    assert!(
        field("Depends")?.contains("systemd"),
        "{}",
        field("Depends")?
    );
    let control = work.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control))?;
    let conffiles = std::fs::read_to_string(control.join("conffiles"))?;
    assert_eq!(conffiles.trim(), "/etc/autoscaler/autoscaler.toml");

    // Installed into a throwaway root.
    let root = work.path().join("root");
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
    let installed = root.join("usr/bin/autoscaler");
    let version = run(Command::new(&installed).arg("--version"))?;
    assert!(version.starts_with("autoscaler "), "{version}");
    let man = run(Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(root.join("usr/share/man/man1/autoscaler-serve.1.gz")))?;
    assert!(man.contains("--listen"), "{man}");

    // Its user unit, with the package's paths moved under the root, on a sandboxed manager.
    // The config: a free port, the unit to manage, bounds a 2-core test host can satisfy.
    let sb = Sandbox::start()?;
    sb.write_unit("busy.service", &busy_unit(1))?;
    sb.start_unit("busy.service")?;
    let unit_text = std::fs::read_to_string(root.join("usr/lib/systemd/user/autoscaler.service"))?;
    let root_usr = format!("{}/usr/", root.display());
    let svc = UserService::install(
        &sb,
        &unit_text,
        &[("/usr/", root_usr.as_str())],
        "",
        "units = [\"busy.service\"]\n[config]\nmode = \"manual\"\nsystem_cpu_cores = 0\n\
         min_cpu_quota = 20\nmin_memory_max = 1\nmin_step_memory_gb = 1\nmin_tasks_max = 50\n",
    )?;
    // The unit made from the package only: no path of this build in it.
    let written = std::fs::read_to_string(sb.unit_dir().join(UNIT))?;
    assert!(!written.contains("target/debug"), "{written}");
    // A new user's first start: no config file yet. The unit creates it from the packaged
    // example (every line a comment, so the daemon runs on its defaults); only the port and
    // the store come from the environment here, so the test's port is used.
    let config_text = std::fs::read_to_string(&svc.config)?;
    std::fs::remove_file(&svc.config)?;
    let first = sb.unit_dir().join(format!("{UNIT}.d/first-start.conf"));
    std::fs::create_dir_all(first.parent().context("drop-in dir")?)?;
    std::fs::write(
        &first,
        format!(
            "[Service]\nEnvironment=AUTOSCALER_LISTEN=127.0.0.1:{} \"AUTOSCALER_DB={}\"\n",
            svc.port,
            svc.db().display()
        ),
    )?;
    sb.systemctl(&["daemon-reload"])?;
    sb.start_unit(UNIT).with_context(|| sb.log_tail())?;
    assert_eq!(svc.http.get("/healthz")?.status, 200);
    assert_eq!(
        std::fs::read(&svc.config)?,
        std::fs::read(root.join("usr/share/autoscaler/autoscaler.toml"))?,
        "the first start did not install the packaged example config"
    );
    sb.stop_unit(UNIT)?;
    std::fs::remove_file(&first)?;
    std::fs::write(&svc.config, config_text)?;
    sb.systemctl(&["daemon-reload"])?;

    sb.start_unit(UNIT).with_context(|| sb.log_tail())?;
    assert_eq!(sb.show(UNIT, "ActiveState")?, "active");
    assert_eq!(
        sb.show(UNIT, "ExecMainPID")?,
        sb.show(UNIT, "MainPID")?,
        "not the daemon's own process"
    );

    let status = svc.http.get_ok("/api/autoscaler/status")?;
    assert_eq!(status["mode"], "manual", "{status}");
    let r = svc.http.post(
        "/api/autoscaler/scale",
        r#"{"cpu_quota": 70, "reason": "package test"}"#,
    )?;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until(Duration::from_secs(10), "CPUQuota to be 70%", || {
        Ok((sb.cpu_quota("busy.service")? == Some(70)).then_some(()))
    })?;
    Ok(())
}
