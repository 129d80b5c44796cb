//! Installing the embedded executables while other threads fork: an install must be
//! executable at once, never refused with ETXTBSY because a child forked by another
//! thread still held the file open for writing.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn an_install_runs_at_once_while_other_threads_fork() {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    Command::new("/bin/true").status().unwrap();
                }
            });
        }
        let result = std::panic::catch_unwind(|| {
            for round in 0..40 {
                let dir = tempfile::tempdir().unwrap();
                let vmm = images::image::install_vmm(dir.path()).unwrap();
                // Bad usage: the monitor starts, prints its usage and exits with 2.
                let out = Command::new(&vmm)
                    .output()
                    .unwrap_or_else(|e| panic!("round {round}: {}: {e}", vmm.display()));
                assert_eq!(out.status.code(), Some(2), "round {round}: {out:?}");
                let rootfs = images::image::install_rootfs(dir.path()).unwrap();
                let out = Command::new(rootfs.join("init"))
                    .arg("--no-such-option")
                    .output()
                    .unwrap_or_else(|e| panic!("round {round}: init: {e}"));
                assert!(out.status.code().is_some(), "round {round}: {out:?}");
            }
        });
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
}

#[test]
fn an_install_leaves_only_the_installed_file() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = images::image::install_vmm(dir.path()).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(names, std::slice::from_ref(&vmm));
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&vmm).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    assert_eq!(std::fs::read(&vmm).unwrap(), images::image::VMM);
}

#[test]
fn a_file_in_the_way_is_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tool");
    std::fs::write(&path, b"an older, longer file than the new one").unwrap();
    images::image::write_executable(&path, b"#!/bin/sh\nexit 7\n").unwrap();
    let out = Command::new(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["tool"]);
}

#[test]
fn a_file_that_cannot_be_written_is_an_error_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("tool");
    let e = images::image::write_executable(&missing, b"x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
