//! Finding and removing what a killed runtime left behind.
//!
//! Every instance is named `vcbench-<pid>-<n>` after the process that made it, so state
//! whose maker is gone is recognisable: cgroups under each hierarchy's `vcbench/` (and a
//! v1 devices hierarchy's `vcbench-restricted/`), and
//! overlay state directories. A process killed with SIGKILL cannot clean up; the next one
//! can.

use std::path::{Path, PathBuf};

use crate::cgroup::{Layout, PARENTS};

/// Something left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The cgroup or state directory.
    pub path: PathBuf,
    /// The PID of the process that made it (no longer running).
    pub owner: u32,
}

/// The owner PID encoded in an instance name, `vcbench-<pid>-<n>`.
pub fn owner_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("vcbench-")?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Whether process `pid` exists and is not a zombie (a killed runtime its parent has not
/// reaped yet is gone for this purpose).
pub fn alive(pid: u32) -> bool {
    crate::process::Stat::of(pid).is_some_and(|s| s.running())
}

/// Instance directories in `dir` whose owner is gone.
fn stale_in(dir: &Path) -> Vec<Leftover> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let owner = owner_of(e.file_name().to_str()?)?;
            (!alive(owner)).then(|| Leftover {
                path: e.path(),
                owner,
            })
        })
        .collect()
}

/// Everything stale: instance cgroups in every hierarchy, and overlay state directories.
pub fn find(layout: &Layout) -> Vec<Leftover> {
    let mut found: Vec<Leftover> = layout
        .hierarchies
        .iter()
        .flat_map(|h| PARENTS.map(|p| h.mount_point.join(p)))
        .flat_map(|parent| stale_in(&parent))
        .collect();
    found.extend(stale_in(&crate::container::state_base()));
    found
}

pub use crate::cgroup::remove_empty_parents;

/// Removes a leftover: kills whatever still runs in a cgroup, then removes the directory.
pub fn remove(leftover: &Leftover) -> std::io::Result<()> {
    let procs = leftover.path.join("cgroup.procs");
    if procs.exists() {
        for _ in 0..1000 {
            let pids: Vec<libc::pid_t> = std::fs::read_to_string(&procs)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // SAFETY: kill has no memory effects; the PID is a member of a stale cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::fs::remove_dir(&leftover.path)?;
    } else {
        std::fs::remove_dir_all(&leftover.path)?;
    }
    if let Some(parent) = leftover.path.parent() {
        // Shared by live instances, perhaps; then it stays.
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_read_from_names() {
        assert_eq!(owner_of("vcbench-1234-0"), Some(1234));
        assert_eq!(owner_of("vcbench-1234"), None);
        assert_eq!(owner_of("vcbench-x-1"), None);
        assert_eq!(owner_of("other-1-2"), None);
    }

    #[test]
    fn stale_directories_are_found_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // PID 1 is always alive; a PID above pid_max never is.
        std::fs::create_dir(dir.path().join("vcbench-1-0")).unwrap();
        std::fs::create_dir_all(dir.path().join("vcbench-999999999-3/merged")).unwrap();
        std::fs::create_dir(dir.path().join("unrelated")).unwrap();
        let stale = stale_in(dir.path());
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].owner, 999_999_999);
        remove(&stale[0]).unwrap();
        assert!(!stale[0].path.exists());
        assert!(dir.path().join("vcbench-1-0").exists());
    }
}
