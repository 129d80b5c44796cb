//! The shared cgroup parents, kept for a whole run: while a `KeptParents` is held, an
//! instance's teardown leaves the parent it was made in, so the next one finds it; the last
//! hold dropped removes the parents no other instance uses. Needs root; skipped with a
//! reason otherwise (a failure under CI=true). A test binary of its own, since the hold is
//! process-wide.

mod common;

use std::path::{Path, PathBuf};

use container::cgroup::{Cgroup, KeptParents, Layout};
use container::Limits;

/// Whether `parent` still has a cgroup in it (another instance on this host).
fn in_use(parent: &Path) -> bool {
    std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
}

#[test]
fn a_held_parent_outlives_each_instance_and_goes_with_the_last_hold() {
    if !common::prerequisites() {
        return;
    }
    let layout = Layout::detect().unwrap();
    let name = |i: u32| format!("vcbench-{}-{i}", std::process::id());
    let outer = KeptParents::hold();
    let inner = KeptParents::hold();

    let mut first = Cgroup::create(&layout, &name(0), &Limits::default()).unwrap();
    let parents: Vec<PathBuf> = first
        .dirs()
        .iter()
        .filter_map(|d| d.parent().map(Path::to_owned))
        .collect();
    assert!(!parents.is_empty());
    first.remove().unwrap();
    for parent in &parents {
        assert!(parent.is_dir(), "{} removed while held", parent.display());
    }

    // The next instance is made in the same parents, and leaves them too.
    let mut second = Cgroup::create(&layout, &name(1), &Limits::default()).unwrap();
    for dir in second.dirs() {
        assert!(parents.iter().any(|p| dir.parent() == Some(p.as_path())));
    }
    second.remove().unwrap();

    // Not the last hold: the parents stay.
    drop(inner);
    for parent in &parents {
        assert!(
            parent.is_dir(),
            "{} removed with a hold left",
            parent.display()
        );
    }

    drop(outer);
    for parent in &parents {
        assert!(
            !parent.exists() || in_use(parent),
            "{} left empty after the last hold",
            parent.display()
        );
    }
}
