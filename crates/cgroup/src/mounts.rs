//! Where each cgroup hierarchy is mounted, from `/proc/self/mountinfo`.
//!
//! This module owns one job: turning mountinfo text into a [`Mounts`] map (the unified v2
//! tree, if any, and every v1 controller's hierarchy). It handles pure v2, hybrid (v1
//! controllers plus `cgroup2` at `/sys/fs/cgroup/unified`) and combined v1 mounts such as
//! `cpu,cpuacct`. It must not look at any unit or read any cgroup file: [`crate::locate`]
//! does that with the map built here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where the hierarchy is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub point: PathBuf,
    /// The cgroup shown at the mount point (mountinfo's 4th field), usually `/`. A container
    /// without its own cgroup namespace sees e.g. `/docker/<id>` here, and the paths in
    /// `/proc/PID/cgroup` then start with that prefix.
    pub root: String,
}

impl Mount {
    /// The directory of cgroup `path` (as `/proc/PID/cgroup` and systemd write it) under this
    /// mount, or `None` when that cgroup lies outside what this mount shows.
    pub fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let root = self.root.trim_end_matches('/');
        let rest = path.strip_prefix(root)?;
        // "/docker/ab" must not match "/docker/abc/...": the prefix ends at a separator.
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let rest = rest.trim_matches('/');
        // Refuse anything that would climb out of the mount.
        if rest.split('/').any(|c| c == "..") {
            return None;
        }
        Some(if rest.is_empty() {
            self.point.clone()
        } else {
            self.point.join(rest)
        })
    }
}

/// Every cgroup hierarchy mounted on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts {
    /// The v2 (unified) hierarchy: `/sys/fs/cgroup` on pure v2, `/sys/fs/cgroup/unified` on
    /// hybrid hosts.
    pub unified: Option<Mount>,
    /// v1 hierarchies by controller (`cpu`, `cpuacct`, `memory`, `pids`, ... and named ones
    /// such as `name=systemd`). A combined mount (`cpu,cpuacct`) appears under each of its
    /// controllers.
    pub v1: BTreeMap<String, Mount>,
}

/// Controllers the kernel can attach to a v1 hierarchy. Mount options of a `cgroup` mount
/// mix these with plain options (`rw`, `xattr`, `clone_children`...), so we keep only names
/// known to be controllers, plus `name=...` for named hierarchies.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "debug",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

impl Mounts {
    /// Parses mountinfo text. Lines that are not cgroup mounts, or are malformed, are skipped:
    /// mountinfo is written by the kernel and a line we do not understand is not ours.
    /// When a hierarchy is mounted twice (bind mounts), the first mount wins.
    pub fn parse(mountinfo: &str) -> Mounts {
        let mut mounts = Mounts::default();
        for line in mountinfo.lines() {
            // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            if left.len() < 5 || right.len() < 3 {
                continue;
            }
            let mount = Mount {
                point: PathBuf::from(unescape(left[4])),
                root: unescape(left[3]),
            };
            match right[0] {
                "cgroup2" => {
                    mounts.unified.get_or_insert(mount);
                }
                "cgroup" => {
                    for opt in right[2].split(',') {
                        if V1_CONTROLLERS.contains(&opt) || opt.starts_with("name=") {
                            mounts
                                .v1
                                .entry(opt.to_string())
                                .or_insert_with(|| mount.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        mounts
    }

    /// Reads and parses `<proc_root>/self/mountinfo`.
    pub fn read(proc_root: &Path) -> anyhow::Result<Mounts> {
        let path = proc_root.join("self/mountinfo");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading the mount table {} to find the cgroup hierarchies",
                path.display()
            )
        })?;
        let mounts = Mounts::parse(&text);
        if mounts.unified.is_none() && mounts.v1.is_empty() {
            anyhow::bail!(
                "no cgroup filesystem is mounted according to {}: mount cgroup2 (or the v1 \
                 hierarchies) under /sys/fs/cgroup",
                path.display()
            );
        }
        Ok(mounts)
    }
}

/// Undoes mountinfo's octal escapes (`\040` is a space, `\011` a tab, `\012` a newline,
/// `\134` a backslash).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    fn m(point: &str, root: &str) -> Mount {
        Mount {
            point: PathBuf::from(point),
            root: root.to_string(),
        }
    }

    fn check(mountinfo: &str, unified: Option<Mount>, v1: &[(&str, Mount)]) {
        let got = Mounts::parse(mountinfo);
        let want = Mounts {
            unified,
            v1: v1.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        };
        assert_eq!(got, want, "{mountinfo}");
    }

    #[test]
    fn parse_table() {
        // Pure v2, with an optional field before the separator.
        check(
            "25 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
            Some(m("/sys/fs/cgroup", "/")),
            &[],
        );
        // Hybrid, as on this machine.
        check(
            HYBRID,
            Some(m("/sys/fs/cgroup/unified", "/")),
            &[
                ("cpu", m("/sys/fs/cgroup/cpu", "/")),
                ("cpuacct", m("/sys/fs/cgroup/cpuacct", "/")),
                ("memory", m("/sys/fs/cgroup/memory", "/")),
                ("name=systemd", m("/sys/fs/cgroup/systemd", "/")),
                ("pids", m("/sys/fs/cgroup/pids", "/")),
            ],
        );
        // Combined cpu,cpuacct; a bind mount of the same hierarchy later loses.
        check(
            "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw shared:11 - cgroup cgroup rw,cpu,cpuacct\n\
             90 25 0:26 / /mnt/again rw - cgroup cgroup rw,cpu,cpuacct\n",
            None,
            &[
                ("cpu", m("/sys/fs/cgroup/cpu,cpuacct", "/")),
                ("cpuacct", m("/sys/fs/cgroup/cpu,cpuacct", "/")),
            ],
        );
        // A container without a cgroup namespace, and an escaped space in the mount point.
        check(
            "50 40 0:30 /docker/abc /sys/fs/cgroup/my\\040mem ro - cgroup cgroup ro,memory\n",
            None,
            &[("memory", m("/sys/fs/cgroup/my mem", "/docker/abc"))],
        );
        // Garbage, truncated lines and other filesystems are skipped.
        check(
            "garbage\n1 2 3\n- cgroup2\n22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
            None,
            &[],
        );
    }

    #[test]
    fn dir_of_table() {
        let cases: &[(Mount, &str, Option<&str>)] = &[
            (
                m("/sys/fs/cgroup/unified", "/"),
                "/",
                Some("/sys/fs/cgroup/unified"),
            ),
            (
                m("/sys/fs/cgroup/unified", "/"),
                "/a.slice/b.service",
                Some("/sys/fs/cgroup/unified/a.slice/b.service"),
            ),
            (m("/cg", "/docker/ab"), "/docker/ab/x", Some("/cg/x")),
            (m("/cg", "/docker/ab"), "/docker/ab", Some("/cg")),
            (m("/cg", "/docker/ab"), "/docker/abc/x", None),
            (m("/cg", "/docker/ab"), "/other", None),
            (m("/cg", "/"), "/a/../../etc", None),
        ];
        for (mount, path, want) in cases {
            assert_eq!(
                mount.dir_of(path),
                want.map(PathBuf::from),
                "{mount:?} {path}"
            );
        }
    }
}
