//! The descriptors kept open for cgroup files and kernel notifications, within a budget.
//!
//! A unit's cgroup files stay open between readings ([`crate::CgroupFiles`]) and each armed
//! notification holds one or two descriptors ([`crate::events::arm`]): about 20 a unit on a
//! hybrid host. At 1000 units that was every descriptor of a 20,000 limit. `accept` then
//! failed with `EMFILE`, and every status request waited out the HTTP server's 100 ms
//! back-off (docs/BENCHMARKS.md, "Descriptors"). A file opened for a reading could fail the
//! same way, and the reading with it.
//!
//! So what is kept open is counted against a [`Descriptors`] budget: the process's limit less
//! [`RESERVED`]. Over the budget a file is read as a one-off reading reads it (opened, read,
//! closed), which costs an `openat` and a `close` a read but is never wrong, and a
//! notification is not armed: the unit is polled, and `/status` says why. Files stop being
//! kept while [`NOTIFY_SHARE`] of the budget is left, so the notifications, which make
//! reactions fast, are not crowded out by files, which only make readings cheaper.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Descriptors left to everything that is not a kept cgroup file or a notification: the HTTP
/// server's connections (256 at most), SQLite's files, the D-Bus connections, the async
/// runtime's own, and the files a reading opens for a moment (`/proc/PID/cmdline`,
/// AutoCoder's databases).
pub const RESERVED: u64 = 512;

/// The share of the budget that only notifications may take: a file is kept open only while
/// more than this is left. Notifications need about 6 descriptors a unit (two PSI triggers,
/// v1's threshold and OOM eventfds with their watched files), files about 14.
pub const NOTIFY_SHARE: f64 = 0.3;

/// How many descriptors may be kept open, and how many are. Shared by every unit's files and
/// notifications; cheap to take from and give back to (one atomic operation).
#[derive(Debug)]
pub struct Descriptors {
    total: usize,
    used: AtomicUsize,
    /// Whether the log already said that the budget ran out.
    warned: AtomicBool,
}

impl Descriptors {
    /// A budget of `total` descriptors.
    pub fn new(total: usize) -> Arc<Descriptors> {
        Arc::new(Descriptors {
            total,
            used: AtomicUsize::new(0),
            warned: AtomicBool::new(false),
        })
    }

    /// The budget for a process allowed `limit` open descriptors (`RLIMIT_NOFILE`).
    pub fn for_limit(limit: u64) -> Arc<Descriptors> {
        let total = limit.saturating_sub(RESERVED);
        Descriptors::new(usize::try_from(total).unwrap_or(usize::MAX))
    }

    /// A budget that never runs out: tests, and one-off readings that keep nothing.
    pub fn unlimited() -> Arc<Descriptors> {
        Descriptors::new(usize::MAX / 2)
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Descriptors kept open now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `n` if at least `n + spare` are left; `false` (and nothing taken) otherwise.
    fn take_leaving(&self, n: usize, spare: usize) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let after = used.checked_add(n)?;
                (after.saturating_add(spare) <= self.total).then_some(after)
            })
            .is_ok();
        if !taken && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{} descriptors kept open, the budget ({} = the open-files limit less {RESERVED}) \
                 is spent: further cgroup files are opened at each reading and further units \
                 are polled instead of notified; raise LimitNOFILE= in the service's unit",
                self.used(),
                self.total
            );
        }
        taken
    }

    /// Takes one descriptor for a kept cgroup file, leaving [`NOTIFY_SHARE`] to notifications.
    pub fn take_for_file(&self) -> bool {
        self.take_leaving(1, (self.total as f64 * NOTIFY_SHARE) as usize)
    }

    /// A lease of `n` descriptors for a notification, given back when it is dropped.
    pub fn lease(self: &Arc<Self>, n: usize) -> Option<Lease> {
        self.take_leaving(n, 0).then(|| Lease {
            from: self.clone(),
            n,
        })
    }

    /// Gives back `n` descriptors taken with [`Descriptors::take_for_file`].
    pub fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Descriptors held by one notification; dropping it gives them back.
#[derive(Debug)]
pub struct Lease {
    from: Arc<Descriptors>,
    n: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.from.give_back(self.n);
    }
}

/// Raises the soft limit on open files to the hard limit, and returns the soft limit in
/// force. systemd starts services with a soft limit of 1024 (for programs that still use
/// `select`) and a hard limit of 524288, and asks programs that need more descriptors to
/// raise the soft limit themselves (systemd.exec(5), `LimitNOFILE=`).
pub fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (l.current, l.maximum)
        && cur < max
    {
        l.current = Some(max);
        if let Err(e) = setrlimit(Resource::Nofile, l) {
            tracing::warn!("raising the open-files limit from {cur} to {max} failed: {e}");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_leave_room_for_notifications_and_leases_give_back() {
        let d = Descriptors::new(10);
        // Files stop while 3 of 10 (NOTIFY_SHARE) are left.
        let files = (0..20).filter(|_| d.take_for_file()).count();
        assert_eq!(files, 7);
        let a = d.lease(2).expect("notifications take what files left");
        assert!(d.lease(2).is_none(), "one left, two asked");
        let b = d.lease(1).expect("the last one");
        assert_eq!(d.used(), 10);
        drop(a);
        drop(b);
        d.give_back(files);
        assert_eq!(d.used(), 0);
        assert_eq!(Descriptors::for_limit(1024).total(), 512);
        assert_eq!(Descriptors::for_limit(100).total(), 0);
    }
}
