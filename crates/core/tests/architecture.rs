//! ARCHITECTURE.md's invariant for this crate, checked where a test can: the core is pure.
//! It depends on no crate (so no tokio, rusqlite, zbus or serde_json can come in), and its
//! code names no I/O and no clock of the standard library. Comments are not read: they may
//! say what is absent.

use std::fs;
use std::path::{Path, PathBuf};

/// What the core must not use, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("std::fs", "file I/O"),
    ("std::io", "I/O"),
    ("std::net", "network I/O"),
    ("std::process", "processes"),
    ("std::env", "the environment"),
    ("std::thread", "threads and sleeping"),
    ("SystemTime", "the wall clock: time is an argument"),
    ("Instant", "the monotonic clock: time is an argument"),
    ("tokio", "the runtime"),
    ("rusqlite", "the store"),
    ("zbus", "systemd"),
    ("serde_json", "JSON: only the fronts know it"),
    ("println!", "output"),
    ("eprintln!", "output"),
];

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_manifest_has_no_dependencies() {
    let manifest = fs::read_to_string(crate_dir().join("Cargo.toml")).expect("Cargo.toml");
    // `[dependencies]`, `[dependencies.foo]` and `[target.'cfg(unix)'.dependencies]`; not
    // `[dev-dependencies]`, which only the tests use.
    let is_deps = |s: &str| {
        s == "dependencies"
            || s.starts_with("dependencies.")
            || (s.starts_with("target.")
                && (s.ends_with(".dependencies") || s.contains(".dependencies.")))
    };
    let mut in_deps = false;
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            let section = line.trim_matches(['[', ']']).trim();
            in_deps = is_deps(section);
            if in_deps && section != "dependencies" {
                found.push(format!("[{section}]"));
            }
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            found.push(line.to_string());
        }
    }
    assert!(
        found.is_empty(),
        "autoscaler-core must stay pure (ARCHITECTURE.md), yet Cargo.toml has dependencies: {found:?}"
    );
}

#[test]
fn the_code_does_no_io_and_reads_no_clock() {
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src"), &mut files);
    assert!(files.len() > 10, "found only {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("a source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for (word, why) in FORBIDDEN {
                if code.contains(word) {
                    found.push(format!("{}:{}: {word} ({why})", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "autoscaler-core must stay pure (ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
