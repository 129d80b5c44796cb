//! The monitor `vcbench` carries, as installed for a run (not the workspace's own build of
//! it): linked with musl where the build had the target (always under CI=true, where
//! `.ci/run` adds it), reading its arguments without the Rust runtime's start-up, and
//! running a micro guest under its system call filter. The guest tests are skipped with
//! the reason when /dev/kvm cannot be used (a failure under CI=true).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Command;

#[path = "../../microvm/tests/common/mod.rs"]
mod common;
use common::kvm_usable;

fn installed(dir: &tempfile::TempDir) -> PathBuf {
    images::image::install_vmm(dir.path()).expect("install the embedded monitor")
}

#[test]
fn the_embedded_monitor_is_static_and_says_its_c_library() {
    assert!(images::image::elf_is_static(images::image::VMM) == Some(true));
    assert!(
        ["musl", "glibc"].contains(&images::image::VMM_LIBC),
        "{}",
        images::image::VMM_LIBC
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        assert_eq!(
            images::image::VMM_LIBC,
            "musl",
            "CI=true, but the monitor was built without the musl target"
        );
    }
}

#[test]
fn the_embedded_monitor_reads_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = installed(&dir);
    let out = Command::new(&vmm).arg("no-such-guest").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown guest \"no-such-guest\""),
        "{stderr}"
    );

    let out = Command::new(&vmm)
        .arg("hello")
        .arg(OsStr::from_bytes(b"--memory-mib\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("argument 2 is not UTF-8"), "{stderr}");
    assert!(stderr.contains("usage: vcbench-vmm"), "{stderr}");
}

#[test]
fn the_embedded_monitor_runs_a_micro_guest_under_its_filter() {
    if !kvm_usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vmm = installed(&dir);
    // `exits 50`: the guest leaves to the monitor 50 times; two vCPUs: a second KVM object
    // made and torn down. The watchdog's thread runs under the filter in each.
    for args in [
        &["hello"][..],
        &["exits", "50", "--timeout-ms", "5000"],
        &["hello", "--vcpus", "2", "--memory-mib", "64"],
    ] {
        let out = Command::new(&vmm).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}{stderr}");
        assert!(stdout.contains("\"end\":\"halted\""), "{args:?}: {stdout}");
        assert!(stdout.contains("\"first_marker\""), "{args:?}: {stdout}");
        assert!(stdout.contains("torn_down"), "{args:?}: {stdout}");
    }
}

#[test]
fn the_embedded_monitor_is_stopped_at_its_timeout_by_a_kick() {
    if !kvm_usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vmm = installed(&dir);
    // A guest that spins past the timeout: the watchdog must kick the vCPU thread out of
    // KVM_RUN, under the filter, on this C library's threads.
    let out = Command::new(&vmm)
        .args(["spin", "4000000000", "--timeout-ms", "200"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("\"end\":\"timed_out\""),
        "{:?}: {stdout}{stderr}",
        out.status
    );
    assert!(!stderr.contains("refused system call"), "{stderr}");
}
