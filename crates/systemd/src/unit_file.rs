//! Rewriting the `CPUQuota=`, `MemoryMax=` and `TasksMax=` lines of a unit file's
//! `[Service]` section, keeping every other byte.
//!
//! This is the pure half of the restart strategy: text in, text out, no I/O. It knows
//! systemd's unit file syntax only as far as it must (sections, `Key=value` lines with
//! optional blanks around `=`, `#`/`;` comments, backslash continuations) and never
//! reformats, reorders or drops a line it does not own.

use autoscaler_core::{GIB, Limits, MIB};

/// The `[Service]` assignments `rewrite_limits` owns, in the order it adds missing ones.
const KEYS: [&str; 3] = ["CPUQuota", "MemoryMax", "TasksMax"];

/// The unit file `unit_file` with the set fields of `new` written into `[Service]`.
///
/// - Every active assignment of a key whose limit is set is replaced in place (duplicates
///   too, so no later line silently wins), including its continuation lines.
/// - Missing keys are added after the last assignment of the last `[Service]` section (later
///   sections of the same name override earlier ones); a file with no `[Service]` gets one at
///   its end.
/// - Commented-out lines, other sections, other keys, blank lines and line endings (LF or
///   CRLF, whichever the file uses) stay as they are. Fields of `new` that are `None` are not
///   touched.
pub fn rewrite_limits(unit_file: &str, new: &Limits) -> String {
    let wanted: Vec<(&str, String)> = KEYS
        .iter()
        .zip([
            new.cpu_quota.map(|p| format!("{p}%")),
            new.memory_max.map(fmt_bytes),
            new.tasks_max.map(|t| t.to_string()),
        ])
        .filter_map(|(k, v)| v.map(|v| (*k, v)))
        .collect();
    let eol = if unit_file.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };

    // Lines with their endings, so untouched lines are copied byte for byte.
    let lines: Vec<&str> = unit_file.split_inclusive('\n').collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + wanted.len() + 2);
    let mut seen: Vec<&str> = Vec::new();
    let mut in_service = false;
    // Index in `out` after which missing keys go: the last non-blank, non-comment line of the
    // last [Service] section.
    let mut insert_at: Option<usize> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim();
        let mut end = i + 1;
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            in_service = trimmed == "[Service]";
            out.push(line.to_string());
            if in_service {
                insert_at = Some(out.len());
            }
            i = end;
            continue;
        }
        let is_comment = trimmed.starts_with('#') || trimmed.starts_with(';');
        // An assignment may continue over lines ending in a backslash (comments cannot).
        if !is_comment {
            while end < lines.len()
                && lines[end - 1]
                    .trim_end_matches(['\n', '\r'])
                    .ends_with('\\')
            {
                end += 1;
            }
        }
        let owned = if in_service && !is_comment {
            key_of(trimmed)
        } else {
            None
        };
        match owned.and_then(|k| wanted.iter().find(|(w, _)| *w == k)) {
            Some((key, value)) => {
                let line_eol = if lines[end - 1].ends_with("\r\n") {
                    "\r\n"
                } else if lines[end - 1].ends_with('\n') {
                    "\n"
                } else {
                    ""
                };
                out.push(format!("{key}={value}{line_eol}"));
                seen.push(key);
            }
            None => out.extend(lines[i..end].iter().map(|l| l.to_string())),
        }
        if in_service && !trimmed.is_empty() && !is_comment {
            insert_at = Some(out.len());
        }
        i = end;
    }

    let missing: Vec<String> = wanted
        .iter()
        .filter(|(k, _)| !seen.contains(k))
        .map(|(k, v)| format!("{k}={v}{eol}"))
        .collect();
    if missing.is_empty() {
        return out.concat();
    }
    match insert_at {
        Some(at) => {
            // The line we insert after may be the file's last one, without a newline.
            if at > 0 && !out[at - 1].ends_with('\n') {
                out[at - 1].push_str(eol);
            }
            out.splice(at..at, missing);
        }
        None => {
            if out.last().is_some_and(|l| !l.ends_with('\n')) {
                out.push(eol.to_string());
            }
            if !out.is_empty() {
                out.push(eol.to_string());
            }
            out.push(format!("[Service]{eol}"));
            out.extend(missing);
        }
    }
    out.concat()
}

/// The key of an assignment line such as `CPUQuota = 50%`, if it is one we own.
fn key_of(trimmed: &str) -> Option<&'static str> {
    KEYS.iter().copied().find(|k| {
        trimmed
            .strip_prefix(k)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    })
}

/// Bytes the way a person writes them in a unit file: `32G`, `512M`, `64K`, or plain bytes.
/// systemd reads these suffixes as powers of 1024.
pub fn fmt_bytes(b: u64) -> String {
    match b {
        0 => "0".to_string(),
        b if b % GIB == 0 => format!("{}G", b / GIB),
        b if b % MIB == 0 => format!("{}M", b / MIB),
        b if b % 1024 == 0 => format!("{}K", b / 1024),
        b => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, new: Limits, want: &str) {
        let got = rewrite_limits(input, &new);
        assert_eq!(got, want, "\ninput:\n{input}\nnew: {new:?}");
        // Rewriting again with the same limits changes nothing.
        assert_eq!(
            rewrite_limits(&got, &new),
            got,
            "not idempotent for\n{input}"
        );
    }

    const ALL: Limits = Limits {
        cpu_quota: Some(150),
        memory_max: Some(8 * GIB),
        tasks_max: Some(200),
    };
    const CPU: Limits = Limits {
        cpu_quota: Some(75),
        memory_max: None,
        tasks_max: None,
    };

    #[test]
    fn rewrites() {
        let cases: &[(&str, Limits, &str)] = &[
            // Existing lines are replaced in place; everything else stays.
            (
                "# my app\n[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/app\nCPUQuota=100%\nMemoryMax=4G\nTasksMax=50\nRestart=always\n\n[Install]\nWantedBy=default.target\n",
                ALL,
                "# my app\n[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/app\nCPUQuota=150%\nMemoryMax=8G\nTasksMax=200\nRestart=always\n\n[Install]\nWantedBy=default.target\n",
            ),
            // Missing keys go after the last assignment of [Service], before the blank line.
            (
                "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/app\n# a comment\n\n[Install]\nWantedBy=default.target\n",
                ALL,
                "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/app\nCPUQuota=150%\nMemoryMax=8G\nTasksMax=200\n# a comment\n\n[Install]\nWantedBy=default.target\n",
            ),
            // No [Service] section: one is appended.
            (
                "[Unit]\nDescription=x\n",
                CPU,
                "[Unit]\nDescription=x\n\n[Service]\nCPUQuota=75%\n",
            ),
            ("", CPU, "[Service]\nCPUQuota=75%\n"),
            // No trailing newline.
            (
                "[Service]\nExecStart=/bin/app",
                CPU,
                "[Service]\nExecStart=/bin/app\nCPUQuota=75%\n",
            ),
            ("[Service]\nCPUQuota=10%", CPU, "[Service]\nCPUQuota=75%"),
            (
                "[Unit]\nDescription=x",
                CPU,
                "[Unit]\nDescription=x\n\n[Service]\nCPUQuota=75%\n",
            ),
            // Commented-out lines stay and the key is added.
            (
                "[Service]\n#CPUQuota=10%\n; CPUQuota=20%\nExecStart=/bin/app\n",
                CPU,
                "[Service]\n#CPUQuota=10%\n; CPUQuota=20%\nExecStart=/bin/app\nCPUQuota=75%\n",
            ),
            // Duplicates are all rewritten, so none of them wins with an old value.
            (
                "[Service]\nCPUQuota=10%\nExecStart=/bin/app\nCPUQuota=20%\n",
                CPU,
                "[Service]\nCPUQuota=75%\nExecStart=/bin/app\nCPUQuota=75%\n",
            ),
            // Blanks around '=' and indentation.
            (
                "[Service]\n  CPUQuota = 10%\n",
                CPU,
                "[Service]\nCPUQuota=75%\n",
            ),
            // Keys that merely start like ours, and our keys in other sections, are not ours.
            (
                "[Unit]\nCPUQuota=5%\n[Service]\nCPUQuotaPeriodSec=10ms\nMemoryMaxFoo=1\n",
                CPU,
                "[Unit]\nCPUQuota=5%\n[Service]\nCPUQuotaPeriodSec=10ms\nMemoryMaxFoo=1\nCPUQuota=75%\n",
            ),
            // Fields that are None are left alone.
            (
                "[Service]\nMemoryMax=1G\nTasksMax=9\n",
                CPU,
                "[Service]\nMemoryMax=1G\nTasksMax=9\nCPUQuota=75%\n",
            ),
            // CRLF files stay CRLF, added lines too.
            (
                "[Service]\r\nExecStart=/bin/app\r\nMemoryMax=1G\r\n",
                ALL,
                "[Service]\r\nExecStart=/bin/app\r\nMemoryMax=8G\r\nCPUQuota=150%\r\nTasksMax=200\r\n",
            ),
            // A continued assignment is replaced with its continuation lines.
            (
                "[Service]\nCPUQuota=\\\n  10%\nExecStart=/bin/app \\\n  --flag\n",
                CPU,
                "[Service]\nCPUQuota=75%\nExecStart=/bin/app \\\n  --flag\n",
            ),
            // Several [Service] sections: missing keys go into the last one.
            (
                "[Service]\nExecStart=/a\n[Install]\nWantedBy=x\n[Service]\nUser=me\n",
                CPU,
                "[Service]\nExecStart=/a\n[Install]\nWantedBy=x\n[Service]\nUser=me\nCPUQuota=75%\n",
            ),
            // An empty [Service] section.
            (
                "[Service]\n\n[Install]\n",
                CPU,
                "[Service]\nCPUQuota=75%\n\n[Install]\n",
            ),
            // Nothing to write: the file is unchanged, byte for byte.
            (
                "[Service]\r\nA=b\n#x",
                Limits::default(),
                "[Service]\r\nA=b\n#x",
            ),
        ];
        for (input, new, want) in cases {
            check(input, *new, want);
        }
    }

    #[test]
    fn bytes() {
        let cases: [(u64, &str); 6] = [
            (0, "0"),
            (8 * GIB, "8G"),
            (512 * MIB, "512M"),
            (GIB + 512 * MIB, "1536M"),
            (4096, "4K"),
            (1000, "1000"),
        ];
        for (b, want) in cases {
            assert_eq!(fmt_bytes(b), want, "{b}");
        }
    }
}
