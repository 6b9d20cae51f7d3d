//! What an installation gets besides the binary, generated from the command line's own
//! definition: completion scripts that their shells accept, and man pages that `man` renders.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_autoscaler");

/// The completion script for `shell`, checked by the shell itself, names every subcommand.
#[test]
fn completions_are_valid_scripts_for_each_shell() {
    // (shell, the shell's syntax check of a file: argv before the file's path)
    let cases: &[(&str, &[&str])] = &[
        ("bash", &["bash", "-n"]),
        ("zsh", &["zsh", "-n"]),
        ("fish", &["fish", "--no-execute"]),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for (shell, check) in cases {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .expect("running autoscaler");
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).expect("UTF-8");
        for sub in ["serve", "status", "scale", "simulate", "completions", "man"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(
            // fish spells long flags `-l listen`
            script.contains("listen"),
            "{shell} completion lacks serve's flags"
        );
        let path = dir.path().join(format!("autoscaler.{shell}"));
        std::fs::write(&path, &script).expect("write");
        let status = Command::new(check[0])
            .args(&check[1..])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("{shell} is missing ({e}): scripts/setup-test-env installs it")
            });
        assert!(
            status.status.success(),
            "{shell} rejects its completion: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    let bad = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .expect("running autoscaler");
    assert!(!bad.status.success());
}

/// `autoscaler man --out DIR` writes one page per command; `man` renders them with the same
/// help text as `--help`.
#[test]
fn man_pages_render_for_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .expect("running autoscaler");
    assert!(out.status.success(), "{out:?}");
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for want in [
        "autoscaler.1",
        "autoscaler-serve.1",
        "autoscaler-config-set.1",
        "autoscaler-completions.1",
    ] {
        assert!(pages.iter().any(|p| p == want), "{want} missing: {pages:?}");
    }
    // (page, text `man` must show)
    let cases = [
        ("autoscaler.1", "A vertical autoscaler for systemd services"),
        ("autoscaler-serve.1", "--listen"),
        ("autoscaler-serve.1", "SIGHUP re-reads it"),
        ("autoscaler-scale.1", "--cpu-quota"),
    ];
    for (page, want) in cases {
        let rendered = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(dir.path().join(page))
            .env("MANWIDTH", "200")
            .output()
            .expect("man is installed (man-db)");
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(rendered.status.success(), "{page}: {rendered:?}");
        assert!(text.contains(want), "{page} lacks {want:?}:\n{text}");
    }
}
