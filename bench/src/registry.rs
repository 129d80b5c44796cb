//! Live instances, tracked in a runtime directory, so that what a `vcbench` killed with
//! SIGKILL left running is found and ended by the next one (`vcbench clean`, and every
//! `vcbench run` before it starts).
//!
//! Each instance is one file, `<owner pid>-<n>`, naming its owner and host processes with
//! their start times (field 22 of `/proc/PID/stat`), so a PID that was reused by an
//! unrelated process is never killed. The file goes when the instance is torn down.
//! Temporary directories of a run carry their owner's PID in their name
//! ([`temp_prefix`]) and are found the same way.
//!
//! Direct children also get `PR_SET_PDEATHSIG` ([`die_with_parent`]): the kernel kills
//! them the moment their parent dies; the registry catches what that cannot (their own
//! children, a container's processes).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use container::process::Stat;

/// The directory: `/run/vcbench` for root, `$XDG_RUNTIME_DIR/vcbench` or
/// `$TMPDIR/vcbench-<uid>` for other users.
pub fn dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/vcbench");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(runtime) if !runtime.is_empty() => PathBuf::from(runtime).join("vcbench"),
        _ => std::env::temp_dir().join(format!("vcbench-{uid}")),
    }
}

/// The prefix of a temporary directory this process makes for `what`:
/// `vcbench-run<pid>-<what>-`.
pub fn temp_prefix(what: &str) -> String {
    format!("vcbench-run{}-{what}-", std::process::id())
}

/// The start time of process `pid`, in clock ticks since boot; `None` when it is gone or
/// a zombie (dead, waiting to be reaped).
pub fn start_time(pid: u32) -> Option<u64> {
    Stat::of(pid).filter(Stat::running).map(|s| s.start)
}

/// One instance's file; removed when dropped.
#[derive(Debug)]
pub struct Entry {
    path: PathBuf,
}

impl Drop for Entry {
    fn drop(&mut self) {
        drop(std::fs::remove_file(&self.path));
    }
}

/// Writes the file of a new instance of `backend` made of `pids`; `None` when the
/// directory cannot be written (tracking is a safety net, not a precondition).
pub fn track(backend: &str, pids: &[u32]) -> Option<Entry> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let owner = std::process::id();
    let mut text = format!("owner {owner} {}\nbackend {backend}\n", start_time(owner)?);
    for &pid in pids {
        if let Some(start) = start_time(pid) {
            text.push_str(&format!("process {pid} {start}\n"));
            // A process group it leads holds what it starts (the native workload's).
            if let Ok(target) = libc::pid_t::try_from(pid) {
                // SAFETY: getpgid takes an integer and has no memory effects.
                if unsafe { libc::getpgid(target) } == target {
                    text.push_str(&format!("group {pid} {start}\n"));
                }
            }
        }
    }
    let dir = dir();
    std::fs::create_dir_all(&dir).ok()?;
    let name = format!("{owner}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    // Written aside and renamed into place: a reader never sees half a record.
    let partial = dir.join(format!(".{name}"));
    let path = dir.join(name);
    if std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, &path))
        .is_err()
    {
        drop(std::fs::remove_file(&partial));
        return None;
    }
    Some(Entry { path })
}

/// Something a killed `vcbench` left, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// What it was, in words.
    pub what: String,
    /// The error, when it could not be removed.
    pub error: Option<String>,
}

fn alive_as(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// Whether a process that is not a zombie is in process group `group`.
fn group_runs(group: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|text| Stat::parse(&text))
            .is_some_and(|s| s.running() && s.group == group)
    })
}

/// Parses `<word> <pid> <start>` lines.
fn processes(text: &str, word: &str) -> Vec<(u32, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            (parts.next()? == word).then_some(())?;
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect()
}

/// Ends the instances in `dir` whose owner is gone: kills their processes (with the
/// process group each leads) and removes their files.
fn reap_instances(dir: &Path) -> Vec<Removed> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if let Some(partial) = entry.file_name().to_string_lossy().strip_prefix('.') {
            // A record being written, or one its writer was killed writing.
            let writer = partial.split('-').next().and_then(|p| p.parse().ok());
            if writer.is_some_and(|pid| !container::cleanup::alive(pid)) {
                drop(std::fs::remove_file(&path));
            }
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let owner = processes(&text, "owner");
        if owner.iter().any(|&(pid, start)| alive_as(pid, start)) {
            continue;
        }
        let backend = text
            .lines()
            .find_map(|l| l.strip_prefix("backend "))
            .unwrap_or("unknown")
            .to_owned();
        let owner_pid = owner.first().map_or(0, |(pid, _)| *pid);
        let mut killed = Vec::new();
        for (pid, start) in processes(&text, "process") {
            if !alive_as(pid, start) {
                continue;
            }
            let Ok(target) = libc::pid_t::try_from(pid) else {
                continue;
            };
            // SAFETY: kill has no memory effects; the PID is the very process that was
            // tracked (same start time).
            let error = unsafe { libc::kill(target, libc::SIGKILL) };
            killed.push(Removed {
                what: format!(
                    "{backend} instance process {pid} (left running by vcbench process {owner_pid})"
                ),
                error: (error != 0).then(|| std::io::Error::last_os_error().to_string()),
            });
        }
        for (leader, start) in processes(&text, "group") {
            // The group is still the tracked one while its leader lives (same start time)
            // or is gone altogether: a PID stays taken while a group is named after it.
            let ours = Stat::of(leader).is_none_or(|s| s.start == start);
            let Ok(group) = libc::pid_t::try_from(leader) else {
                continue;
            };
            // SAFETY: kill has no memory effects; the group was checked to be the tracked one.
            if ours && group_runs(leader) && unsafe { libc::kill(-group, libc::SIGKILL) } == 0 {
                killed.push(Removed {
                    what: format!(
                        "{backend} instance process group {leader} (left running by vcbench process {owner_pid})"
                    ),
                    error: None,
                });
            }
        }
        if killed.is_empty() {
            killed.push(Removed {
                what: format!(
                    "the record of a {backend} instance of vcbench process {owner_pid} (its processes had ended)"
                ),
                error: None,
            });
        }
        removed.extend(killed);
        drop(std::fs::remove_file(&path));
    }
    removed
}

/// Removes the temporary directories in `dir` made by `vcbench` processes that are gone.
fn remove_stale_temp(dir: &Path) -> Vec<Removed> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let pid: u32 = name
                .strip_prefix("vcbench-run")?
                .split('-')
                .next()?
                .parse()
                .ok()?;
            let owner_gone = !container::cleanup::alive(pid);
            owner_gone.then(|| {
                let path = entry.path();
                let result = match path.is_dir() {
                    true => std::fs::remove_dir_all(&path),
                    false => std::fs::remove_file(&path),
                };
                Removed {
                    what: format!(
                        "{} (a temporary directory of vcbench process {pid})",
                        path.display()
                    ),
                    error: result.err().map(|e| e.to_string()),
                }
            })
        })
        .collect()
}

/// Ends every instance a `vcbench` that is gone left running, and removes its temporary
/// directories; returns what it found.
pub fn clean() -> Vec<Removed> {
    let mut removed = reap_instances(&dir());
    removed.extend(remove_stale_temp(&std::env::temp_dir()));
    removed
}

/// Makes a child about to exec die with SIGKILL when the thread that spawned it does (a
/// `vcbench` killed with SIGKILL, say); use in `Command::pre_exec`. Runs between fork and
/// exec, so only async-signal-safe calls.
pub fn die_with_parent(parent: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: prctl takes integers only and is async-signal-safe.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The parent may have died before the prctl: then end now.
    // SAFETY: getppid has no preconditions and is async-signal-safe.
    if unsafe { libc::getppid() } != parent {
        // SAFETY: _exit is async-signal-safe and ends only this child.
        unsafe { libc::_exit(137) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_tell_processes_apart() {
        let me = std::process::id();
        let start = start_time(me).expect("own start time");
        assert!(alive_as(me, start));
        assert!(!alive_as(me, start + 1));
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn an_orphaned_instance_is_killed_and_its_file_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let start = start_time(child.id()).unwrap();
        // An owner that is gone: a start time no process of ours has.
        std::fs::write(
            dir.path().join("1-0"),
            format!(
                "owner 1 {}\nbackend native\nprocess {} {start}\n",
                u64::MAX,
                child.id()
            ),
        )
        .unwrap();
        // A live owner's instance is kept.
        let me = std::process::id();
        std::fs::write(
            dir.path().join(format!("{me}-0")),
            format!(
                "owner {me} {}\nbackend native\nprocess {} {start}\n",
                start_time(me).unwrap(),
                child.id()
            ),
        )
        .unwrap();
        let removed = reap_instances(dir.path());
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert!(removed[0].what.contains("native instance"), "{removed:?}");
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(!dir.path().join("1-0").exists());
        assert!(dir.path().join(format!("{me}-0")).exists());
    }

    #[test]
    fn stale_temp_directories_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("vcbench-run999999999-tmp-abc");
        let live = dir
            .path()
            .join(format!("vcbench-run{}-tmp-abc", std::process::id()));
        std::fs::create_dir_all(stale.join("inner")).unwrap();
        std::fs::create_dir(&live).unwrap();
        let removed = remove_stale_temp(dir.path());
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert!(!stale.exists());
        assert!(live.exists());
    }
}
