//! The monitor binary runs its guests under its own system call filter: every thread of a
//! held VM is in seccomp filter mode, the guest's report still arrives whole, and
//! `--no-seccomp` leaves the threads unfiltered. Skipped with a reason when /dev/kvm cannot
//! be used; a failure under CI=true.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::kvm_usable;

const VMM: &str = env!("CARGO_BIN_EXE_vcbench-vmm");

/// The `Seccomp:` mode (0 none, 2 filter) of every thread of `pid`.
fn seccomp_modes(pid: u32) -> Vec<u32> {
    let mut modes = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the monitor's threads") {
        let status = std::fs::read_to_string(task.expect("a thread").path().join("status"))
            .expect("a thread's status");
        let mode = status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("a Seccomp: line");
        modes.push(mode);
    }
    modes
}

/// Runs `hello --hold` (plus `extra`), reads its report while the VM is held, and returns
/// every thread's seccomp mode then, and the monitor's exit status after SIGTERM.
fn held_modes(extra: &[&str]) -> (Vec<u32>, std::process::ExitStatus) {
    let mut child = Command::new(VMM)
        .args(["hello", "--hold"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the monitor");
    let mut lines = BufReader::new(child.stdout.take().expect("its stdout")).lines();
    let report = lines.next().expect("a report line").expect("readable");
    assert!(report.contains("\"end\":\"halted\""), "{report}");
    let modes = seccomp_modes(child.id());
    // SAFETY: kill has no memory preconditions; the pid is our own child, not reaped yet.
    unsafe { libc::kill(i32::try_from(child.id()).expect("a pid"), libc::SIGTERM) };
    let torn_down = lines.next().expect("a torn-down line").expect("readable");
    assert!(torn_down.contains("torn_down"), "{torn_down}");
    (modes, child.wait().expect("the monitor's exit"))
}

#[test]
fn every_thread_of_a_running_monitor_is_filtered_unless_asked_not_to_be() {
    if !kvm_usable() {
        return;
    }
    let (modes, status) = held_modes(&[]);
    assert!(!modes.is_empty());
    assert!(modes.iter().all(|&m| m == 2), "seccomp modes {modes:?}");
    assert!(status.success(), "{status:?}");

    let (modes, status) = held_modes(&["--no-seccomp"]);
    assert!(modes.iter().all(|&m| m == 0), "seccomp modes {modes:?}");
    assert!(status.success(), "{status:?}");
}

#[test]
fn every_micro_guest_runs_to_its_end_under_the_filter() {
    if !kvm_usable() {
        return;
    }
    for guest in [
        &["hello"][..],
        &["exits", "2000"],
        &["touch", "4"],
        &["spin", "1000"],
        &["triple-fault"],
        &["mmio-nowhere"],
    ] {
        let out = Command::new(VMM)
            .args(guest)
            .args(["--vcpus", "2", "--timeout-ms", "5000"])
            .output()
            .expect("run the monitor");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("system call filter refused"),
            "{guest:?}: {stderr}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("\"torn_down\""),
            "{guest:?}: {stdout}{stderr}"
        );
    }
    // A guest stopped at its timeout: the watchdog kicks, the diagnosis is read.
    let out = Command::new(VMM)
        .args(["spin", "4000000000", "--timeout-ms", "200"])
        .output()
        .expect("run the monitor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"end\":\"timed_out\""), "{stdout}");
    assert!(stdout.contains("\"torn_down\""), "{stdout}");
}
