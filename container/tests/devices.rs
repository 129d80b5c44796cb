//! The cgroup v2 device program in the kernel, whatever this host's layout: attached to a
//! directory of the unified hierarchy (device programs act there even on a hybrid host,
//! whose controllers are all v1), it lets a shell moved into that cgroup open `/dev/null`
//! and refuses `/dev/kmsg`. And the v1 path without a devices hierarchy, which falls back
//! to such a program. Needs root; skipped with a reason otherwise (a failure under CI=true).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use container::cgroup::{Cgroup, Layout, PARENT, RESTRICTED_PARENT};
use container::devices::{self, ALLOWED};
use container::Limits;

/// A cgroup directory made for a test, removed (with the shared parent when it is empty)
/// when dropped, after the processes in it have exited.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// A shell that joins `cgroup.procs` files given on its standard input's first line, then
/// opens `/dev/null` and `/dev/kmsg` for reading (its redirections open; `true` reads
/// nothing) and says which opened.
fn shell() -> std::process::Child {
    Command::new("/bin/sh")
        .args([
            "-c",
            "read procs; for p in $procs; do echo $$ > $p; done; \
             true < /dev/null && echo null-opened; true < /dev/kmsg && echo kmsg-opened; true",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/bin/sh runs")
}

fn finish(mut child: std::process::Child, procs: &[PathBuf]) -> (String, String) {
    let line: Vec<String> = procs.iter().map(|p| p.display().to_string()).collect();
    writeln!(child.stdin.take().unwrap(), "{}", line.join(" ")).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A shell attached to `cgroup` opens `/dev/null` and is refused `/dev/kmsg`.
fn assert_only_the_list_opens(cgroup: &Cgroup) {
    let child = shell();
    cgroup.attach(child.id()).unwrap();
    let (out, err) = finish(child, &[]);
    assert!(out.contains("null-opened"), "{out}{err}");
    assert!(!out.contains("kmsg-opened"), "{out}{err}");
}

fn unified() -> Option<PathBuf> {
    let layout = Layout::detect().unwrap();
    let mount = layout.unified_mount().map(Path::to_path_buf);
    if mount.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no cgroup v2 hierarchy is mounted"
        );
        eprintln!("skipped: no cgroup v2 hierarchy is mounted");
    }
    mount
}

#[test]
fn the_device_program_allows_the_list_and_refuses_the_rest() {
    if !common::prerequisites() {
        return;
    }
    let Some(root) = unified() else { return };
    let parent = root.join(PARENT);
    let _ = std::fs::create_dir(&parent);
    let dir = Dir(parent.join(format!("vcbench-{}-4000000000", std::process::id())));
    std::fs::create_dir(&dir.0).unwrap();
    devices::restrict(&dir.0, &ALLOWED).unwrap();

    let (out, err) = finish(shell(), &[dir.0.join("cgroup.procs")]);
    assert!(out.contains("null-opened"), "{out}{err}");
    assert!(!out.contains("kmsg-opened"), "{out}{err}");
    assert!(err.contains("Operation not permitted"), "{out}{err}");

    // The same shell outside the cgroup opens both: the refusal was the program's.
    let (out, err) = finish(shell(), &[]);
    assert!(
        out.contains("null-opened") && out.contains("kmsg-opened"),
        "{out}{err}"
    );

    // A second cgroup gets the program this process loaded already, and it holds there
    // too, while the first cgroup still has it.
    // Each test of this file names its cgroups apart: they run at once.
    let second = Dir(parent.join(format!("vcbench-{}-4000000004", std::process::id())));
    std::fs::create_dir(&second.0).unwrap();
    devices::restrict(&second.0, &ALLOWED).unwrap();
    let program = devices::program(&ALLOWED);
    assert!(std::sync::Arc::ptr_eq(
        &devices::loaded(&program).unwrap(),
        &devices::loaded(&program).unwrap()
    ));
    for dir in [&second.0, &dir.0] {
        let (out, err) = finish(shell(), &[dir.join("cgroup.procs")]);
        assert!(out.contains("null-opened"), "{out}{err}");
        assert!(!out.contains("kmsg-opened"), "{out}{err}");
    }
    drop(second);
}

#[test]
fn v1_without_a_devices_hierarchy_uses_the_device_program() {
    if !common::prerequisites() {
        return;
    }
    let detected = Layout::detect().unwrap();
    let v1_memory = detected.v1_mount("memory").is_some();
    if !v1_memory || detected.unified_mount().is_none() {
        eprintln!("not applicable: this host does not put memory in v1 beside a v2 hierarchy");
        return;
    }
    // The host's layout, as if it had no devices hierarchy.
    let mut layout = detected.clone();
    layout
        .hierarchies
        .retain(|h| !h.controllers.iter().any(|c| c == "devices"));
    let name = format!("vcbench-{}-4000000001", std::process::id());
    let mut cgroup = Cgroup::create(&layout, &name, &Limits::default()).unwrap();
    assert!(!cgroup.is_unified());
    let before = cgroup.dirs().len();
    cgroup.restrict_devices(&layout, &ALLOWED).unwrap();
    let unified_dir = layout.unified_mount().unwrap().join(PARENT).join(&name);
    assert_eq!(cgroup.dirs().len(), before + 1);
    assert_eq!(cgroup.dirs().last(), Some(&unified_dir));

    assert_only_the_list_opens(&cgroup);
    cgroup.remove().unwrap();
    assert!(!unified_dir.exists());
}

#[test]
fn a_v1_cgroup_made_under_the_restricted_parent_starts_with_the_list() {
    if !common::prerequisites() {
        return;
    }
    let layout = Layout::detect().unwrap();
    let Some(devices_mount) = layout.v1_mount("devices").map(Path::to_path_buf) else {
        eprintln!("not applicable: this host has no v1 devices hierarchy");
        return;
    };
    if layout.instances_unified() {
        eprintln!("not applicable: instances' cgroups are made in the unified hierarchy here");
        return;
    }
    let list = |dir: &Path| -> Vec<String> {
        let mut lines: Vec<String> = std::fs::read_to_string(dir.join("devices.list"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let mut allowed: Vec<String> = ALLOWED.iter().map(devices::Rule::v1_line).collect();
    allowed.sort();

    // A restricted parent that a killed maker left with a partial list, or that stayed
    // open because another process made an instance under it first: an instance under it
    // is restricted by its own writes, and a partial parent is completed on the way.
    let parent = devices_mount.join(RESTRICTED_PARENT);
    for partial in [true, false] {
        if std::fs::create_dir(&parent).is_err() {
            eprintln!("the restricted parent exists (another vcbench is running): not remade");
            break;
        }
        if partial {
            std::fs::write(parent.join("devices.deny"), "a").unwrap();
            std::fs::write(parent.join("devices.allow"), ALLOWED[0].v1_line()).unwrap();
        }
        let name = format!("vcbench-{}-4000000005", std::process::id());
        let mut first = Cgroup::create_for(&layout, &name, &Limits::default(), true).unwrap();
        let dir = parent.join(&name);
        assert_ne!(list(&dir), allowed);
        first.restrict_devices(&layout, &ALLOWED).unwrap();
        assert_eq!(list(&dir), allowed);
        let parent_list = if partial {
            allowed.clone()
        } else {
            vec!["a *:* rwm".to_owned()]
        };
        assert_eq!(list(&parent), parent_list);
        first.remove().unwrap();
        assert!(!parent.exists());
    }

    // Made for a restricted container: under the restricted parent, with its list before
    // anything is written to the cgroup itself.
    let name = format!("vcbench-{}-4000000002", std::process::id());
    let mut cgroup = Cgroup::create_for(&layout, &name, &Limits::default(), true).unwrap();
    let dir = devices_mount.join(RESTRICTED_PARENT).join(&name);
    assert!(cgroup.dirs().contains(&dir), "{:?}", cgroup.dirs());
    assert_eq!(list(&dir), allowed);
    assert_eq!(list(dir.parent().unwrap()), allowed);
    // The other hierarchies keep the usual parent.
    assert!(cgroup
        .dirs()
        .iter()
        .filter(|d| **d != dir)
        .all(|d| d.parent().unwrap().ends_with(PARENT)));
    cgroup.restrict_devices(&layout, &ALLOWED).unwrap();
    assert_eq!(list(&dir), allowed);
    assert_only_the_list_opens(&cgroup);
    cgroup.remove().unwrap();
    assert!(!dir.exists());

    // Made for a container whose devices are not restricted: the usual parent, every
    // device allowed.
    let name = format!("vcbench-{}-4000000003", std::process::id());
    let mut open = Cgroup::create_for(&layout, &name, &Limits::default(), false).unwrap();
    let dir = devices_mount.join(PARENT).join(&name);
    assert!(open.dirs().contains(&dir), "{:?}", open.dirs());
    assert_eq!(list(&dir), ["a *:* rwm"]);
    open.remove().unwrap();
}
