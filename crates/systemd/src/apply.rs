//! The actuators: putting new limits on a unit live, by rewriting its unit file and
//! restarting it, or not at all (dry run), and undoing a change that did not take.
//!
//! Every strategy reads the limits back from systemd and compares them with what was asked;
//! a change that systemd did not take is a failure and is rolled back. Deciding *whether* to
//! change limits, bounds and cooldowns are the engine's job, not this module's.
//!
//! # Restart and the drop-ins of a live apply
//!
//! A live apply (`SetUnitProperties`, what `systemctl set-property` does) persists its values
//! as drop-ins named `50-CPUQuota.conf`, `50-MemoryMax.conf` and `50-TasksMax.conf` in the
//! manager's control directories (`~/.config/systemd/user.control/<unit>.d/` and
//! `$XDG_RUNTIME_DIR/systemd/user.control/<unit>.d/` for the user manager,
//! `/etc/systemd/system.control/` and `/run/systemd/system.control/` for the system one).
//! Drop-ins override the unit file, so a restart that only rewrote the file would restart the
//! service under the old live values. The restart strategy therefore makes the unit file the
//! single source of truth again: it removes those drop-ins for the limits it writes (and
//! only those files, only in `*.control` directories), and puts them back byte for byte when
//! it rolls back. Any other drop-in that sets the same keys (an admin's `override.conf`)
//! still wins; the read-back then fails, names the drop-ins, and the change is rolled back.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use autoscaler_core::{Limits, Resource, UnitName};

use crate::manager::{Error, Setting, Systemd, UnitInfo};
use crate::unit_file::rewrite_limits;

/// How limits are put on a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// `SetUnitProperties`: the cgroup limits change at once, nothing restarts.
    #[default]
    Live,
    /// Rewrite the unit file, `daemon-reload`, restart (the spec's way).
    Restart,
    /// Decide and record, change nothing.
    DryRun,
}

impl Strategy {
    /// The names [`Strategy::from_str`] takes, as settings and flags spell them.
    pub const NAMES: [&'static str; 3] = ["live", "restart", "dry-run"];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Live => "live",
            Strategy::Restart => "restart",
            Strategy::DryRun => "dry-run",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Strategy, String> {
        match s {
            "live" => Ok(Strategy::Live),
            "restart" => Ok(Strategy::Restart),
            "dry-run" => Ok(Strategy::DryRun),
            _ => Err(format!(
                "unknown apply strategy {s:?}: expected live, restart or dry-run"
            )),
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The limits systemd reports afterwards. For a dry run, the limits that would have been
    /// asked for (only the fields that were set), since nothing was read or changed.
    pub limits_after: Limits,
    /// The service was restarted (its processes were replaced).
    pub restarted: bool,
    pub dry_run: bool,
    pub elapsed: Duration,
}

/// What became of the change after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// The failure came before anything was changed.
    NothingChanged,
    /// The previous state was restored; the sentence says what was restored.
    Done(String),
    /// Restoring failed too: the unit may be left changed or stopped.
    Failed(String),
}

impl fmt::Display for Rollback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rollback::NothingChanged => f.write_str("nothing was changed"),
            Rollback::Done(what) => write!(f, "rolled back: {what}"),
            Rollback::Failed(why) => {
                write!(f, "ROLLBACK FAILED: {why}; check the unit by hand")
            }
        }
    }
}

/// An apply that failed: what failed and whether the previous state is back. Its `Display`
/// is one line, for a history row's `error_message`.
#[derive(Debug)]
pub struct ApplyError {
    pub strategy: Strategy,
    pub unit: UnitName,
    /// What failed, as a sentence.
    pub what: String,
    pub rollback: Rollback,
    /// The systemd error behind it, when there is one (e.g. [`Error::UnitNotFound`]).
    pub cause: Option<Error>,
}

impl ApplyError {
    /// True when the unit does not exist or is not loaded (the daemon's HTTP 503).
    pub fn is_unit_not_found(&self) -> bool {
        matches!(self.cause, Some(Error::UnitNotFound { .. }))
    }

    pub fn rolled_back(&self) -> bool {
        matches!(self.rollback, Rollback::Done(_))
    }
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} apply to {} failed: {}; {}",
            self.strategy, self.unit, self.what, self.rollback
        )
    }
}

impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().map(|e| e as _)
    }
}

/// How long a restart (and a rollback's start) may take before it counts as failed.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(10);

/// Suffix of the copy of the unit file the restart strategy keeps while it changes the file.
pub const BACKUP_SUFFIX: &str = ".autoscaler-backup";
/// What the name of a temp file written beside its target and renamed over it contains.
const TMP_SUFFIX: &str = ".autoscaler-tmp";

/// Puts the set fields of `new` on `unit` with `strategy`. Fields that are `None` are left
/// as they are.
pub async fn apply(
    sd: &Systemd,
    strategy: Strategy,
    unit: &UnitName,
    new: &Limits,
) -> Result<Applied, ApplyError> {
    let started = Instant::now();
    let fail = |what: String, rollback: Rollback, cause: Option<Error>| ApplyError {
        strategy,
        unit: unit.clone(),
        what,
        rollback,
        cause,
    };
    let (limits_after, restarted) = match strategy {
        Strategy::DryRun => (*new, false),
        Strategy::Live => (
            live(sd, unit, new)
                .await
                .map_err(|(w, r, c)| fail(w, r, c))?,
            false,
        ),
        Strategy::Restart => (
            restart(sd, unit, new)
                .await
                .map_err(|(w, r, c)| fail(w, r, c))?,
            true,
        ),
    };
    Ok(Applied {
        limits_after,
        restarted,
        dry_run: strategy == Strategy::DryRun,
        elapsed: started.elapsed(),
    })
}

type Failure = (String, Rollback, Option<Error>);

fn settings(new: &Limits) -> Vec<Setting> {
    Resource::ALL
        .iter()
        .filter_map(|&r| new.get(r).map(|v| (r, Some(v))))
        .collect()
}

/// The fields of `new` that systemd does not report back, as one sentence, or `None`.
fn mismatch(after: &UnitInfo, new: &Limits) -> Option<String> {
    let wrong: Vec<String> = Resource::ALL
        .iter()
        .filter_map(|&r| {
            let want = new.get(r)?;
            let got = after.limits.get(r);
            (got != Some(want)).then(|| {
                let got = got.map_or_else(|| "infinity".to_string(), |v| v.to_string());
                format!("{} {got} after setting {want}", key(r))
            })
        })
        .collect();
    if wrong.is_empty() {
        return None;
    }
    let drop_ins: Vec<String> = after
        .drop_in_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Some(format!(
        "systemd reports {}{}",
        wrong.join(", "),
        if drop_ins.is_empty() {
            String::new()
        } else {
            format!(" (drop-ins in effect: {})", drop_ins.join(", "))
        }
    ))
}

fn key(r: Resource) -> &'static str {
    match r {
        Resource::Cpu => "CPUQuota%",
        Resource::Memory => "MemoryMax",
        Resource::Tasks => "TasksMax",
    }
}

async fn live(sd: &Systemd, unit: &UnitName, new: &Limits) -> Result<Limits, Failure> {
    let before = sd
        .inspect(unit)
        .await
        .map_err(|e| (e.to_string(), Rollback::NothingChanged, Some(e)))?;
    let wanted = settings(new);
    if wanted.is_empty() {
        return Ok(before.limits);
    }
    // systemd checks every property before it applies any, so a refused call changed nothing.
    sd.set_limits(unit, &wanted)
        .await
        .map_err(|e| (e.to_string(), Rollback::NothingChanged, Some(e)))?;
    crate::crash::point("live-set");
    let checked = match sd.inspect(unit).await {
        Ok(after) => match mismatch(&after, new) {
            None => return Ok(after.limits),
            Some(m) => (m, None),
        },
        Err(e) => (format!("reading the limits back: {e}"), Some(e)),
    };
    // Put back the previous value of every field we set (None = infinity).
    let old: Vec<Setting> = wanted
        .iter()
        .map(|&(r, _)| (r, before.limits.get(r)))
        .collect();
    let rollback = match sd.set_limits(unit, &old).await {
        Ok(()) => Rollback::Done(format!("previous limits restored ({})", before.limits)),
        Err(e) => Rollback::Failed(format!("restoring {}: {e}", before.limits)),
    };
    Err((checked.0, rollback, checked.1))
}

/// Where a unit file comes from, when the restart strategy must not rewrite it.
fn not_rewritable(fragment: &Path) -> Option<&'static str> {
    let parent = fragment.parent()?;
    if parent.ends_with("systemd/transient") {
        return Some(
            "it is a transient unit (created at runtime, e.g. by systemd-run) and has no unit file \
             to rewrite; use the live strategy",
        );
    }
    let dir = parent.file_name()?.to_string_lossy();
    if dir.starts_with("generator") {
        return Some(
            "its unit file is made by a generator and is rewritten at every daemon-reload; use the live strategy",
        );
    }
    None
}

/// The drop-ins a live apply left for the limits we are about to write (see the module doc).
fn live_drop_ins(info: &UnitInfo, unit: &UnitName, new: &Limits) -> Vec<PathBuf> {
    let names: Vec<&str> = Resource::ALL
        .iter()
        .filter(|&&r| new.get(r).is_some())
        .map(|r| match r {
            Resource::Cpu => "50-CPUQuota.conf",
            Resource::Memory => "50-MemoryMax.conf",
            Resource::Tasks => "50-TasksMax.conf",
        })
        .collect();
    let unit_d = format!("{unit}.d");
    info.drop_in_paths
        .iter()
        .filter(|p| {
            let file = p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dir = p.parent();
            let control = dir.and_then(Path::parent).and_then(Path::file_name);
            names.contains(&file.as_str())
                && dir
                    .and_then(Path::file_name)
                    .is_some_and(|d| d.to_string_lossy() == unit_d)
                && control.is_some_and(|c| c.to_string_lossy().ends_with(".control"))
        })
        .cloned()
        .collect()
}

/// What a restart changed, so it can be put back.
struct Undo {
    file: PathBuf,
    /// The unit file's owner and mode, which every rewrite keeps.
    meta: std::fs::Metadata,
    original: Vec<u8>,
    drop_ins: Vec<(PathBuf, Vec<u8>, std::fs::Metadata)>,
    was_running: bool,
}

async fn restart(sd: &Systemd, unit: &UnitName, new: &Limits) -> Result<Limits, Failure> {
    let nothing = |what: String| (what, Rollback::NothingChanged, None);
    let before = sd
        .inspect(unit)
        .await
        .map_err(|e| (e.to_string(), Rollback::NothingChanged, Some(e)))?;
    // Nothing asked, nothing written and nothing restarted.
    if settings(new).is_empty() {
        return Ok(before.limits);
    }
    let Some(fragment) = before.fragment_path.clone() else {
        return Err(nothing(format!(
            "{unit} has no unit file (FragmentPath is empty)"
        )));
    };
    if let Some(why) = not_rewritable(&fragment) {
        return Err(nothing(format!(
            "cannot restart {unit} with new limits: {why} ({})",
            fragment.display()
        )));
    }
    let file = fragment;
    let meta = unit_file_metadata(&file).await.map_err(|why| {
        nothing(format!(
            "cannot restart {unit} with new limits: {why}; nothing was written"
        ))
    })?;
    let original = tokio::fs::read(&file)
        .await
        .map_err(|e| nothing(format!("reading the unit file {}: {e}", file.display())))?;
    let text = std::str::from_utf8(&original).map_err(|e| {
        nothing(format!(
            "the unit file {} is not UTF-8 ({e}); not rewriting it",
            file.display()
        ))
    })?;
    let rewritten = rewrite_limits(text, new);
    let backup = with_suffix(&file, BACKUP_SUFFIX);
    // A link planted where the backup goes would be replaced, not followed, by the rename;
    // still, something that is not our own earlier backup is not ours to replace.
    match tokio::fs::symlink_metadata(&backup).await {
        Ok(m) if !m.is_file() => {
            return Err(nothing(format!(
                "cannot restart {unit} with new limits: {} exists and is not a regular file \
                 (a symlink or a directory); the backup of the unit file would replace it. \
                 Remove it and try again",
                backup.display()
            )));
        }
        _ => {}
    }
    write_atomic(&backup, &original, &meta).await.map_err(|e| {
        nothing(format!(
            "backing up {} to {}: {e}",
            file.display(),
            backup.display()
        ))
    })?;
    crate::crash::point("restart-backup");
    let mut drop_ins = Vec::new();
    for p in live_drop_ins(&before, unit, new) {
        let read = async {
            let meta = tokio::fs::symlink_metadata(&p).await?;
            Ok::<_, std::io::Error>((tokio::fs::read(&p).await?, meta))
        };
        let (bytes, meta) = read
            .await
            .map_err(|e| nothing(format!("reading the drop-in {}: {e}", p.display())))?;
        drop_ins.push((p, bytes, meta));
    }
    let undo = Undo {
        file,
        meta,
        original,
        drop_ins,
        was_running: matches!(
            before.active_state.as_str(),
            "active" | "activating" | "reloading"
        ),
    };

    // From here on, every failure is rolled back.
    let outcome = async {
        write_atomic(&undo.file, rewritten.as_bytes(), &undo.meta)
            .await
            .map_err(|e| (format!("writing {}: {e}", undo.file.display()), None))?;
        crate::crash::point("restart-file");
        for (p, _, _) in &undo.drop_ins {
            tokio::fs::remove_file(p).await.map_err(|e| {
                (
                    format!("removing the live drop-in {}: {e}", p.display()),
                    None,
                )
            })?;
        }
        sd.reload().await.map_err(|e| (e.to_string(), Some(e)))?;
        crate::crash::point("restart-reload");
        sd.restart_and_wait(unit, true, RESTART_TIMEOUT)
            .await
            .map_err(|e| (format!("restart: {e}"), None))?;
        crate::crash::point("restart-restarted");
        let after = sd
            .inspect(unit)
            .await
            .map_err(|e| (format!("reading the limits back: {e}"), Some(e)))?;
        match mismatch(&after, new) {
            None => Ok(after.limits),
            Some(m) => Err((m, None)),
        }
    }
    .await;
    // The backup lives as long as the change: a backup left behind means a change was cut
    // short, and `recover` puts it back.
    match outcome {
        Ok(limits) => {
            remove_backup(&backup).await;
            Ok(limits)
        }
        Err((what, cause)) => {
            tracing::warn!(%unit, %what, "restart apply failed; rolling back");
            let rollback = roll_back(sd, unit, &undo).await;
            if matches!(rollback, Rollback::Done(_)) {
                remove_backup(&backup).await;
            }
            Err((what, rollback, cause))
        }
    }
}

async fn remove_backup(backup: &Path) {
    if let Err(e) = tokio::fs::remove_file(backup).await {
        tracing::warn!("removing the unit file's backup {}: {e}", backup.display());
    }
}

/// After a daemon died in the middle of a change to `unit`: when the restart strategy's
/// backup of its unit file is still there, that change was cut short somewhere between the
/// backup and its end. The file is put back byte for byte, systemd reloads, the unit starts
/// again if it was running, and the backup goes; the outcome says how that went. Stray temp
/// files beside the unit file are removed either way. `None`: no backup, so nothing of the
/// restart strategy's is left to undo (the change never began, or it finished).
pub async fn recover(sd: &Systemd, unit: &UnitName, was_running: bool) -> Option<Rollback> {
    let file = sd.inspect(unit).await.ok()?.fragment_path?;
    remove_strays(&file).await;
    let backup = with_suffix(&file, BACKUP_SUFFIX);
    let original = tokio::fs::read(&backup).await.ok()?;
    let meta = match unit_file_metadata(&file).await {
        Ok(meta) => meta,
        Err(why) => {
            return Some(Rollback::Failed(format!(
                "{why}; its backup is {}",
                backup.display()
            )));
        }
    };
    let undo = Undo {
        file,
        meta,
        original,
        drop_ins: Vec::new(),
        was_running,
    };
    let rollback = roll_back(sd, unit, &undo).await;
    if matches!(rollback, Rollback::Done(_)) {
        remove_backup(&backup).await;
    }
    Some(rollback)
}

/// Removes the temp files a cut-short write left beside `file` (see `write_atomic`).
async fn remove_strays(file: &Path) {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return;
    };
    let prefix = format!(".{}.autoscaler-", name.to_string_lossy());
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(e)) = entries.next_entry().await {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.contains(TMP_SUFFIX) {
            match tokio::fs::remove_file(e.path()).await {
                Ok(()) => tracing::warn!("removed the stray temp file {}", e.path().display()),
                Err(err) => {
                    tracing::warn!("removing the stray temp file {}: {err}", e.path().display())
                }
            }
        }
    }
}

/// Restores the unit file and the removed drop-ins byte for byte, reloads, and starts the
/// unit again if it was running.
async fn roll_back(sd: &Systemd, unit: &UnitName, undo: &Undo) -> Rollback {
    let mut restored = vec![format!("unit file {} restored", undo.file.display())];
    if let Err(e) = write_atomic(&undo.file, &undo.original, &undo.meta).await {
        return Rollback::Failed(format!("restoring {}: {e}", undo.file.display()));
    }
    for (p, bytes, meta) in &undo.drop_ins {
        let dir_made = match p.parent() {
            Some(d) => tokio::fs::create_dir_all(d).await,
            None => Ok(()),
        };
        let restored = match dir_made {
            Ok(()) => write_atomic(p, bytes, meta).await,
            Err(e) => Err(e),
        };
        if let Err(e) = restored {
            return Rollback::Failed(format!(
                "unit file restored, but restoring the drop-in {}: {e}",
                p.display()
            ));
        }
    }
    if !undo.drop_ins.is_empty() {
        restored.push(format!("{} live drop-in(s) restored", undo.drop_ins.len()));
    }
    if let Err(e) = sd.reload().await {
        return Rollback::Failed(format!("{}, but {e}", restored.join(", ")));
    }
    if undo.was_running {
        // A failed restart counts against the start rate limit; the old config deserves a
        // clean try.
        let _ = sd.reset_failed(unit).await;
        if let Err(e) = sd.restart_and_wait(unit, false, RESTART_TIMEOUT).await {
            return Rollback::Failed(format!(
                "{}, but starting it again failed: {e}",
                restored.join(", ")
            ));
        }
        restored.push("unit running again with its previous limits".into());
    }
    Rollback::Done(restored.join(", "))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The unit file's metadata, if the restart strategy may rewrite it: a regular file, not a
/// symlink. A link (`systemctl link`, a package's alias) points at a file that may be shared
/// or live outside systemd's directories; rewriting its target, or replacing the link by a
/// copy, would change something nobody asked to change. So it is refused, and says why.
async fn unit_file_metadata(file: &Path) -> Result<std::fs::Metadata, String> {
    let meta = tokio::fs::symlink_metadata(file)
        .await
        .map_err(|e| format!("reading the unit file {}: {e}", file.display()))?;
    if meta.file_type().is_symlink() {
        let target = tokio::fs::read_link(file)
            .await
            .map_or_else(|e| format!("unreadable: {e}"), |t| t.display().to_string());
        return Err(format!(
            "its unit file {} is a symlink (to {target}); the restart strategy does not rewrite \
             files through links. Copy the target over the link, or use the live strategy",
            file.display()
        ));
    }
    if !meta.is_file() {
        return Err(format!(
            "its unit file {} is not a regular file",
            file.display()
        ));
    }
    Ok(meta)
}

/// Writes `bytes` to `path` through a new temp file in the same directory and a rename, so
/// systemd never reads half a file. The temp file is created with `O_CREAT|O_EXCL|O_NOFOLLOW`
/// (a file or link planted under its name is never opened, let alone followed), with the
/// mode and owner of `like`, and removed on any failure. Unit files are small: this runs on
/// the blocking pool in one go.
async fn write_atomic(path: &Path, bytes: &[u8], like: &std::fs::Metadata) -> std::io::Result<()> {
    let (path, bytes, like) = (path.to_path_buf(), bytes.to_vec(), like.clone());
    tokio::task::spawn_blocking(move || write_atomic_blocking(&path, &bytes, &like))
        .await
        .map_err(std::io::Error::other)?
}

fn write_atomic_blocking(
    path: &Path,
    bytes: &[u8],
    like: &std::fs::Metadata,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);

    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::other(format!(
            "{} has no directory and file name",
            path.display()
        )));
    };
    let mode = like.mode() & 0o7777;
    // A name nobody else uses, hidden and without a unit suffix so systemd never loads it; a
    // taken name (planted, or left by a crash) is skipped, never opened.
    let (tmp, mut f) = (|| {
        let mut last = None;
        for _ in 0..16 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!("{TMP_SUFFIX}-{}-{n}", std::process::id()));
            let tmp = dir.join(tmp_name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(mode)
                .open(&tmp)
            {
                Ok(f) => return Ok((tmp, f)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free temp file name")))
    })()?;
    let result = (|| {
        f.write_all(bytes)?;
        // The umask applied at creation; the original's mode and owner are put back exactly.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        let now = f.metadata()?;
        if (now.uid(), now.gid()) != (like.uid(), like.gid()) {
            std::os::unix::fs::fchown(&f, Some(like.uid()), Some(like.gid()))?;
        }
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse() {
        let cases: [(&str, Option<Strategy>); 5] = [
            ("live", Some(Strategy::Live)),
            ("restart", Some(Strategy::Restart)),
            ("dry-run", Some(Strategy::DryRun)),
            ("Live", None),
            ("dryrun", None),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<Strategy>().ok(), want, "{s}");
            if let Some(w) = want {
                assert_eq!(w.to_string(), s);
            }
        }
    }

    #[test]
    fn rewritable_fragments() {
        let cases: [(&str, bool); 5] = [
            ("/root/.config/systemd/user/a.service", true),
            ("/etc/systemd/system/a.service", true),
            ("/run/user/0/systemd/transient/run-r1.service", false),
            ("/run/systemd/transient/run-r1.service", false),
            ("/run/systemd/generator/a.mount", false),
        ];
        for (p, ok) in cases {
            assert_eq!(not_rewritable(Path::new(p)).is_none(), ok, "{p}");
        }
    }

    #[test]
    fn live_drop_ins_are_found() {
        let unit = UnitName::parse("a.service").expect("valid");
        let info = |paths: &[&str]| UnitInfo {
            load_state: "loaded".into(),
            active_state: "active".into(),
            sub_state: "running".into(),
            main_pid: None,
            control_group: None,
            limits: Limits::default(),
            fragment_path: None,
            drop_in_paths: paths.iter().map(PathBuf::from).collect(),
        };
        let cpu = Limits {
            cpu_quota: Some(50),
            ..Limits::default()
        };
        let all = Limits::new(100, 1, 10);
        let cases: [(&[&str], Limits, &[&str]); 5] = [
            (
                &["/h/.config/systemd/user.control/a.service.d/50-CPUQuota.conf"],
                cpu,
                &["/h/.config/systemd/user.control/a.service.d/50-CPUQuota.conf"],
            ),
            // Only the fields being written.
            (
                &["/h/.config/systemd/user.control/a.service.d/50-MemoryMax.conf"],
                cpu,
                &[],
            ),
            (
                &[
                    "/run/user/0/systemd/user.control/a.service.d/50-TasksMax.conf",
                    "/etc/systemd/system.control/a.service.d/50-MemoryMax.conf",
                ],
                all,
                &[
                    "/run/user/0/systemd/user.control/a.service.d/50-TasksMax.conf",
                    "/etc/systemd/system.control/a.service.d/50-MemoryMax.conf",
                ],
            ),
            // An admin's drop-ins, and other units' directories, are not ours.
            (
                &["/h/.config/systemd/user/a.service.d/50-CPUQuota.conf"],
                cpu,
                &[],
            ),
            (
                &["/h/.config/systemd/user.control/b.service.d/50-CPUQuota.conf"],
                cpu,
                &[],
            ),
        ];
        for (paths, new, want) in cases {
            let got = live_drop_ins(&info(paths), &unit, &new);
            let want: Vec<PathBuf> = want.iter().map(PathBuf::from).collect();
            assert_eq!(got, want, "{paths:?}");
        }
    }

    #[test]
    fn errors_read_as_one_line() {
        let unit = UnitName::parse("a.service").expect("valid");
        let cases: [(Rollback, &str); 3] = [
            (
                Rollback::NothingChanged,
                "restart apply to a.service failed: boom; nothing was changed",
            ),
            (
                Rollback::Done("unit file restored".into()),
                "restart apply to a.service failed: boom; rolled back: unit file restored",
            ),
            (
                Rollback::Failed("disk full".into()),
                "restart apply to a.service failed: boom; ROLLBACK FAILED: disk full; check the unit by hand",
            ),
        ];
        for (rollback, want) in cases {
            let e = ApplyError {
                strategy: Strategy::Restart,
                unit: unit.clone(),
                what: "boom".into(),
                rollback,
                cause: None,
            };
            assert_eq!(e.to_string(), want);
        }
    }
}
