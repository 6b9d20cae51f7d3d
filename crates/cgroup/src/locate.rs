//! Where one unit's cgroup lives in each mounted hierarchy.
//!
//! This module owns [`CgroupPaths`]: the unit's own directory in the unified tree and in
//! the v1 `cpu`, `cpuacct`, `memory` and `pids` hierarchies, and listing the unit's
//! processes. It must not read counters or limits (that is [`crate::read`]) and it never
//! writes anything under `/sys/fs/cgroup`.
//!
//! Why a process id helps: on v1 and hybrid hosts systemd creates a per-unit directory only
//! in the hierarchies whose controller it enabled for the unit; in the others the unit's
//! processes sit in an ancestor (observed here: `2:cpuacct:/probe1` while the unit is
//! `/probe1/app.slice/probe-yes.service`). `/proc/PID/cgroup` of a process of the unit shows
//! that. A directory shared with other units is not the unit's: it is left out rather than
//! reporting a parent's numbers as the unit's.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::mounts::{Mount, Mounts};

/// The unit's own cgroup directory in each hierarchy; `None` when the hierarchy is not
/// mounted, the unit has no directory of its own there, or the directory does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupPaths {
    pub unified: Option<PathBuf>,
    pub cpu: Option<PathBuf>,
    pub cpuacct: Option<PathBuf>,
    pub memory: Option<PathBuf>,
    pub pids: Option<PathBuf>,
}

impl CgroupPaths {
    /// Finds the directories of the unit whose cgroup is `control_group` (systemd's
    /// `ControlGroup` property, e.g. `/probe1/app.slice/x.service`). `main_pid`, when known,
    /// is any process of the unit; it tells which v1 hierarchies have a per-unit directory.
    /// A process that is gone is not an error: the paths then come from `control_group` alone.
    pub fn locate(
        mounts: &Mounts,
        proc_root: &Path,
        control_group: &str,
        main_pid: Option<u32>,
    ) -> anyhow::Result<CgroupPaths> {
        anyhow::ensure!(
            control_group.starts_with('/'),
            "the unit's cgroup path {control_group:?} is not absolute; expected systemd's \
             ControlGroup property such as /system.slice/x.service"
        );
        let membership = match main_pid {
            Some(pid) => {
                let file = proc_root.join(pid.to_string()).join("cgroup");
                match std::fs::read_to_string(&file) {
                    Ok(text) => parse_proc_cgroup(&text),
                    Err(e) => {
                        tracing::debug!(
                            "{}: {e}; locating the unit's cgroup from its path alone",
                            file.display()
                        );
                        BTreeMap::new()
                    }
                }
            }
            None => BTreeMap::new(),
        };
        let dir = |mount: Option<&Mount>, hierarchy: &str| -> Option<PathBuf> {
            if let Some(path) = membership.get(hierarchy)
                && is_strict_ancestor(path, control_group)
            {
                tracing::debug!(
                    "hierarchy {hierarchy:?}: the unit's processes are in {path}, shared with \
                     other units; not using it for {control_group}"
                );
                return None;
            }
            let dir = mount?.dir_of(control_group)?;
            dir.is_dir().then_some(dir)
        };
        let paths = CgroupPaths {
            unified: dir(mounts.unified.as_ref(), ""),
            cpu: dir(mounts.v1.get("cpu"), "cpu"),
            cpuacct: dir(mounts.v1.get("cpuacct"), "cpuacct"),
            memory: dir(mounts.v1.get("memory"), "memory"),
            pids: dir(mounts.v1.get("pids"), "pids"),
        };
        if paths.any_dir().is_none() {
            anyhow::bail!(
                "the cgroup {control_group} has no directory in any mounted hierarchy \
                 (unified: {:?}, v1: {:?}); is the unit running?",
                mounts.unified.as_ref().map(|m| &m.point),
                mounts.v1.values().map(|m| &m.point).collect::<Vec<_>>()
            );
        }
        Ok(paths)
    }

    /// A directory whose `cgroup.procs` lists the unit's processes: the unified one first,
    /// since it always has a per-unit directory under systemd.
    pub fn any_dir(&self) -> Option<&Path> {
        [
            &self.unified,
            &self.pids,
            &self.memory,
            &self.cpu,
            &self.cpuacct,
        ]
        .into_iter()
        .find_map(|d| d.as_deref())
    }

    /// The process ids in the unit's cgroup and its child cgroups, sorted.
    pub fn pids_of_unit(&self) -> anyhow::Result<Vec<u32>> {
        let dir = self
            .any_dir()
            .context("the unit has no cgroup directory to list its processes from")?;
        let mut pids = ids_in_tree(dir, "cgroup.procs").with_context(|| {
            format!(
                "listing the unit's processes from {}/cgroup.procs",
                dir.display()
            )
        })?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }
}

/// `/proc/PID/cgroup` as hierarchy -> cgroup path, where the hierarchy is a controller
/// (`cpu`, `name=systemd`) or `""` for v2. Lines are `ID:CONTROLLERS:PATH`.
pub fn parse_proc_cgroup(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        // A cgroup removed while the process still sits in it reads "/x (deleted)".
        let path = path.trim_end_matches(" (deleted)");
        if !path.starts_with('/') {
            continue;
        }
        if id == "0" && controllers.is_empty() {
            map.insert(String::new(), path.to_string());
        } else {
            for c in controllers.split(',').filter(|c| !c.is_empty()) {
                map.insert(c.to_string(), path.to_string());
            }
        }
    }
    map
}

/// `a` is a proper ancestor of `b` (both cgroup paths).
fn is_strict_ancestor(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    a != b && b.strip_prefix(a).is_some_and(|rest| rest.starts_with('/'))
}

/// The numbers listed one a line in `file` of `dir` and of every cgroup below it. Child
/// cgroups that vanish while we walk are skipped; the top directory must be readable.
pub(crate) fn ids_in_tree(dir: &Path, file: &str) -> io::Result<Vec<u32>> {
    let text = std::fs::read_to_string(dir.join(file))?;
    let mut ids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    ids_below(dir, file, &mut ids)?;
    Ok(ids)
}

/// The numbers listed in `file` of every cgroup below `dir` (not `dir`'s own), added to
/// `ids`. Child cgroups that vanish while we walk are skipped; `dir` must be listable.
pub(crate) fn ids_below(dir: &Path, file: &str, ids: &mut Vec<u32>) -> io::Result<()> {
    let mut stack = vec![(dir.to_path_buf(), true)];
    while let Some((d, top)) = stack.pop() {
        if !top {
            match std::fs::read_to_string(d.join(file)) {
                Ok(text) => ids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if !top && e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((entry.path(), false));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "1:cpu:/probe1/app.slice/probe-yes.service\n2:cpuacct:/probe1\n0::/probe1/app.slice/probe-yes.service\n",
                &[
                    ("", "/probe1/app.slice/probe-yes.service"),
                    ("cpu", "/probe1/app.slice/probe-yes.service"),
                    ("cpuacct", "/probe1"),
                ],
            ),
            (
                "4:cpu,cpuacct:/a.slice\n9:name=systemd:/a.slice\n",
                &[
                    ("cpu", "/a.slice"),
                    ("cpuacct", "/a.slice"),
                    ("name=systemd", "/a.slice"),
                ],
            ),
            ("0::/gone.service (deleted)\n", &[("", "/gone.service")]),
            ("garbage\n3:memory\n5:pids:relative\n", &[]),
        ];
        for (text, want) in cases {
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(parse_proc_cgroup(text), want, "{text}");
        }
    }

    #[test]
    fn ancestor_table() {
        for (a, b, want) in [
            ("/probe1", "/probe1/app.slice/x.service", true),
            ("/", "/x.service", true),
            ("/x.service", "/x.service", false),
            ("/x.service/", "/x.service", false),
            ("/probe", "/probe1/x", false),
            ("/a/b", "/a", false),
        ] {
            assert_eq!(is_strict_ancestor(a, b), want, "{a} {b}");
        }
    }
}
