//! The host's capacity: cores, memory and the kernel's task limit, from `/proc`.
//!
//! This module owns building a core [`Host`]. It must not look at any unit or cgroup: a
//! unit's limits are bounded by what the machine has, not by what its cgroup shows.

use std::path::Path;

use anyhow::Context;
use autoscaler_core::Host;

/// Reads the host's capacity under `proc_root` (normally `/proc`).
pub fn read_host(proc_root: &Path) -> anyhow::Result<Host> {
    let cpuinfo = proc_root.join("cpuinfo");
    let cores = match std::fs::read_to_string(&cpuinfo)
        .ok()
        .and_then(|t| count_processors(&t))
    {
        Some(n) => n,
        None => {
            // The affinity-aware count is a fallback only: it shrinks under our own cgroup's
            // quota, while limits are bounded by the whole machine.
            let n = std::thread::available_parallelism().with_context(|| {
                format!(
                    "counting CPU cores: {} lists no processors and the OS gives no count",
                    cpuinfo.display()
                )
            })?;
            tracing::debug!(
                "{} lists no processors; using {n} cores from the OS",
                cpuinfo.display()
            );
            u32::try_from(n.get()).unwrap_or(u32::MAX)
        }
    };

    let meminfo = proc_root.join("meminfo");
    let text = std::fs::read_to_string(&meminfo)
        .with_context(|| format!("reading the host's memory size from {}", meminfo.display()))?;
    let memory_bytes = parse_mem_total(&text)
        .with_context(|| format!("{} has no \"MemTotal: N kB\" line", meminfo.display()))?;

    let pid_max = proc_root.join("sys/kernel/pid_max");
    let text = std::fs::read_to_string(&pid_max)
        .with_context(|| format!("reading the kernel's task limit from {}", pid_max.display()))?;
    let max_tasks = text.trim().parse().with_context(|| {
        format!(
            "{} holds {:?}, not a number",
            pid_max.display(),
            text.trim()
        )
    })?;

    Ok(Host {
        cores,
        memory_bytes,
        max_tasks,
    })
}

/// The number of `processor : N` entries; `None` when there are none.
pub fn count_processors(cpuinfo: &str) -> Option<u32> {
    let n = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    u32::try_from(n).ok().filter(|n| *n > 0)
}

/// `MemTotal:  16318412 kB` in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let rest = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let mut it = rest.split_whitespace();
    let kib: u64 = it.next()?.parse().ok()?;
    match it.next() {
        Some("kB") | None => kib.checked_mul(1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processors_table() {
        for (text, want) in [
            (
                "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\n",
                Some(2),
            ),
            ("processor : 0\n", Some(1)),
            // ARM lists "Processor : ARMv7" once as a model name; it is not a core.
            ("Processor\t: ARMv7\nprocessor\t: 0\n", Some(1)),
            ("model name : x\n", None),
            ("", None),
        ] {
            assert_eq!(count_processors(text), want, "{text:?}");
        }
    }

    #[test]
    fn mem_total_table() {
        for (text, want) in [
            (
                "MemTotal:       16318412 kB\nMemFree: 1 kB\n",
                Some(16_318_412 * 1024),
            ),
            ("MemFree: 1 kB\nMemTotal: 2 kB\n", Some(2048)),
            ("MemTotal: lots kB\n", None),
            ("MemTotal: 5 MB\n", None),
            ("MemFree: 1 kB\n", None),
        ] {
            assert_eq!(parse_mem_total(text), want, "{text:?}");
        }
    }
}
