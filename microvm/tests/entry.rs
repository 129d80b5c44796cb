//! The monitor binary's own entry (`#![no_main]`, without the Rust runtime's start-up):
//! what that start-up did for a program and the monitor needs is still done. A closed
//! standard stream is opened on `/dev/null` before anything else takes its descriptor, a
//! reader that goes away does not kill the monitor with SIGPIPE, and bad usage is exit
//! status 2. Skipped with a reason when /dev/kvm cannot be used; a failure under CI=true.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use common::kvm_usable;

const VMM: &str = env!("CARGO_BIN_EXE_vcbench-vmm");

#[test]
fn bad_usage_is_status_2_with_the_usage() {
    let out = Command::new(VMM)
        .arg("no-such-guest")
        .output()
        .expect("run the monitor");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown guest \"no-such-guest\""),
        "{stderr}"
    );
    assert!(stderr.contains("usage: vcbench-vmm"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_closed_standard_input_is_dev_null_not_the_first_file_opened() {
    if !kvm_usable() {
        return;
    }
    let mut command = Command::new(VMM);
    command
        .args(["hello", "--hold"])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped());
    let close_stdin = || {
        // SAFETY: closes descriptor 0 of the forked child, which nothing there uses.
        unsafe { libc::close(0) };
        Ok(())
    };
    // SAFETY: the closure makes one async-signal-safe call (close) and allocates
    // nothing, as what runs between fork and exec must.
    unsafe { command.pre_exec(close_stdin) };
    let mut child = command.spawn().expect("start the monitor");
    let mut lines = BufReader::new(child.stdout.take().expect("its stdout")).lines();
    let report = lines.next().expect("a report line").expect("readable");
    assert!(report.contains("\"end\":\"halted\""), "{report}");
    // The VM is held, with /dev/kvm and the VM's descriptors open: none of them is 0.
    let stdin = std::fs::read_link(format!("/proc/{}/fd/0", child.id())).expect("its fd 0");
    // SAFETY: kill has no memory preconditions; the pid is our own child, not reaped yet.
    unsafe { libc::kill(i32::try_from(child.id()).expect("a pid"), libc::SIGTERM) };
    let torn_down = lines.next().expect("a torn-down line").expect("readable");
    assert!(torn_down.contains("torn_down"), "{torn_down}");
    assert!(child.wait().expect("the monitor's exit").success());
    assert_eq!(stdin, std::path::Path::new("/dev/null"));
}

#[test]
fn a_reader_that_goes_away_does_not_kill_the_monitor() {
    if !kvm_usable() {
        return;
    }
    let mut child = Command::new(VMM)
        .arg("hello")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the monitor");
    // Its reports then go to a pipe with no reader: the writes fail with EPIPE, and the
    // monitor runs its guest to the end as before.
    drop(child.stdout.take());
    let status = child.wait().expect("the monitor's exit");
    assert_eq!(status.code(), Some(0), "{status:?}");
}
