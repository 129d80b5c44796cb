//! Cleaning up after `vcbench` processes that are gone: what a run killed with SIGKILL
//! (or a crashed host) left behind, found by owner and removed, each item reported.
//!
//! In order: the instances it left running ([`crate::registry`]), its temporary
//! directories, the user images it was unpacking, its ftrace instances, its runc, crun,
//! runsc and podman containers, its cgroups and container state; then, when asked for a
//! thorough clean (`vcbench clean`, not the quick one before every run), the empty parent
//! cgroups, podman images of other builds and the installs of other builds in the cache.

use std::path::Path;

use crate::backend::oci::{self, Runtime};
use crate::backend::podman;

/// Why the cleanup could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host's cgroup layout could not be read.
    #[error("reading the cgroup layout")]
    Layout(#[source] container::cgroup::Error),
}

/// One thing found, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// What it was, in words (with its path or PID).
    pub what: String,
    /// Why it could not be removed; `None` when it was.
    pub error: Option<String>,
}

impl Removed {
    fn of(what: String, result: Result<(), String>) -> Self {
        Removed {
            what,
            error: result.err(),
        }
    }
}

/// Removes what `vcbench` processes that are gone left behind; `thorough` also removes
/// empty parent cgroups and other builds' installs (which a run about to start must not:
/// another run's parent may be empty only for a moment). Returns everything it found.
pub fn clean(thorough: bool) -> Result<Vec<Removed>, Error> {
    let layout = container::cgroup::Layout::detect().map_err(Error::Layout)?;
    // Processes first: a killed run's instances may still be running in its cgroups.
    let mut removed: Vec<Removed> = crate::registry::clean()
        .into_iter()
        .map(|r| Removed {
            what: r.what,
            error: r.error,
        })
        .collect();
    let found = container::cleanup::find(&layout);
    // A user's image half unpacked by a killed run (never renamed into place).
    for path in userimage::stale(&images::image::cache_dir().join("images")) {
        let result = remove_path(&path).map_err(|e| e.to_string());
        removed.push(Removed::of(
            format!("{} (an image a killed run was unpacking)", path.display()),
            result,
        ));
    }
    // A network namespace a killed run held for its hostnet scenario (its links go with it).
    let netns = crate::registry::dir().join(crate::backend::hostnet::run::DIR);
    for (path, result) in crate::backend::hostnet::netns::remove_stale(&netns) {
        removed.push(Removed::of(
            format!("{} (a killed run's network namespace)", path.display()),
            result.map_err(|e| e.to_string()),
        ));
    }
    removed.extend(crate::surface::remove_stale().into_iter().map(|path| {
        Removed::of(
            format!("{} (a killed run's ftrace instance)", path.display()),
            Ok(()),
        )
    }));
    // Each runtime is asked for its leftovers at once: every run starts with this clean,
    // and each listing is a program of its own.
    removed.extend(std::thread::scope(|scope| {
        let oci: Vec<_> = Runtime::ALL
            .into_iter()
            .map(|runtime| scope.spawn(move || oci_leftovers(runtime)))
            .collect();
        let podman = scope.spawn(podman_leftovers);
        oci.into_iter()
            .chain(std::iter::once(podman))
            .flat_map(|listing| listing.join().unwrap_or_default())
            .collect::<Vec<_>>()
    }));
    if thorough {
        for image in podman::stale_images() {
            let result = podman::remove_image(&image);
            removed.push(Removed::of(
                format!("podman image {image} (from another build)"),
                result,
            ));
        }
        removed.extend(
            container::cleanup::remove_empty_parents(&layout)
                .into_iter()
                .map(|parent| Removed::of(format!("{} (empty)", parent.display()), Ok(()))),
        );
        for path in images::image::stale_installs(&images::image::cache_dir()) {
            let result = remove_path(&path).map_err(|e| e.to_string());
            removed.push(Removed::of(
                format!("{} (from another build)", path.display()),
                result,
            ));
        }
    }
    for leftover in &found {
        let result = container::cleanup::remove(leftover).map_err(|e| e.to_string());
        removed.push(Removed::of(
            format!(
                "{} (left by vcbench process {})",
                leftover.path.display(),
                leftover.owner
            ),
            result,
        ));
    }
    Ok(removed)
}

/// A runtime's containers that a killed run left, removed.
fn oci_leftovers(runtime: Runtime) -> Vec<Removed> {
    oci::stale(runtime)
        .into_iter()
        .map(|id| {
            let result = oci::remove(runtime, &id);
            Removed::of(
                format!("{} container {id} (left by a killed run)", runtime.binary()),
                result,
            )
        })
        .collect()
}

/// Podman's containers that a killed run left, removed.
fn podman_leftovers() -> Vec<Removed> {
    podman::stale()
        .into_iter()
        .map(|name| {
            let result = podman::remove(&name);
            Removed::of(
                format!("podman container {name} (left by a killed run)"),
                result,
            )
        })
        .collect()
}

fn remove_path(path: &Path) -> std::io::Result<()> {
    match path.is_dir() {
        true => std::fs::remove_dir_all(path),
        false => std::fs::remove_file(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PID no process has: above the kernel's limit.
    fn dead_pid() -> u32 {
        std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .map_or(4_194_305, |max| max + 1)
    }

    #[test]
    fn a_gone_runs_temporary_directory_is_removed_and_a_live_ones_kept() {
        let temp = std::env::temp_dir();
        let stale = temp.join(format!("vcbench-run{}-cleanup-test", dead_pid()));
        let live = tempfile::Builder::new()
            .prefix(&crate::registry::temp_prefix("cleanup-test"))
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(stale.join("inner")).unwrap();
        let removed = clean(false).unwrap();
        assert!(!stale.exists(), "{removed:?}");
        assert!(live.path().exists());
        let item = removed
            .iter()
            .find(|r| r.what.contains(&stale.display().to_string()))
            .unwrap_or_else(|| panic!("not reported: {removed:?}"));
        assert_eq!(item.error, None);
        // Nothing of a live run is touched, and a second clean finds nothing of this one.
        let again = clean(false).unwrap();
        assert!(
            !again.iter().any(|r| r.what.contains("cleanup-test")),
            "{again:?}"
        );
    }
}
