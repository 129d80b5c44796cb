//! Micro-guest snapshots through the monitor binary: a `ready` guest saved at its snapshot
//! point and restored in a new monitor process runs on to its end (its marker 1 again,
//! then marker 2), the memory it wrote still there; the restored monitor runs under its
//! filter; a damaged, foreign or mismatched snapshot is refused with the reason, and no
//! partial file is left. Skipped with a reason when /dev/kvm cannot be used; a failure
//! under CI=true. A Linux guest with a disk is refused a snapshot before anything runs
//! (Linux guests' snapshots themselves are tested in the rig:
//! `bench/tests/linux_snapshot.rs`).

mod common;

use std::process::Command;

use common::kvm_usable;
use microvm::protocol::Line;

const VMM: &str = env!("CARGO_BIN_EXE_vcbench-vmm");

/// Runs the monitor; returns its exit status, report and stderr.
fn vmm(args: &[&str]) -> (i32, Option<microvm::protocol::WireReport>, String) {
    let out = Command::new(VMM)
        .args(args)
        .output()
        .expect("run the monitor");
    let report = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| match Line::parse(l) {
            Ok(Line::Report(r)) => Some(*r),
            _ => None,
        });
    (
        out.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_saved_guest_runs_on_in_a_new_monitor_and_bad_snapshots_are_refused() {
    if !kvm_usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("ready.snap");
    let path = snap.to_str().unwrap();
    let (status, report, stderr) =
        vmm(&["ready", "4", "--memory-mib", "32", "--snapshot-to", path]);
    assert_eq!(status, 0, "{stderr}");
    let report = report.expect("a report");
    let codes: Vec<u8> = report.markers.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [1], "stopped at its snapshot point");
    assert!(report.phase("snapshot_saved").is_some());
    let saved = report.cpu.get("snapshot_memory_saved_kib");
    assert!(
        saved.is_some_and(|kib| (4096..4200).contains(kib)),
        "the 4 MiB it wrote and the page its code is on: {:?}",
        report.cpu
    );
    assert!(!dir.path().join("ready.partial").exists());
    // Sparse: the file is as long as the guest's memory, but holds only what it touched.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&snap).unwrap();
    assert!(meta.len() >= 32 << 20);
    assert!(meta.blocks() * 512 < 8 << 20, "{} blocks", meta.blocks());

    // Restored twice: each time the guest's marker 1 again, then its read of the pages it
    // wrote, marker 2 and a clean halt.
    for _ in 0..2 {
        let (status, report, stderr) = vmm(&["restore", path, "--memory-mib", "32"]);
        assert_eq!(status, 0, "{stderr}");
        let report = report.expect("a report");
        let codes: Vec<u8> = report.markers.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [1, 2], "{stderr}");
        for phase in [
            "snapshot_read",
            "memory_registered",
            "state_restored",
            "first_marker",
        ] {
            assert!(
                report.phase(phase).is_some(),
                "{phase}: {:?}",
                report.phases
            );
        }
        assert_eq!(report.end, microvm::protocol::End::Halted);
    }

    // Refused, each with its reason.
    let (status, _, stderr) = vmm(&["restore", path, "--memory-mib", "64"]);
    assert_ne!(status, 0);
    assert!(
        stderr.contains("holds a guest of 32 MiB, not the 64 MiB"),
        "{stderr}"
    );
    let mut bytes = std::fs::read(&snap).unwrap();
    // A digit of the saved registers changed: the header no longer matches its hash.
    let at = bytes.windows(8).position(|w| w == b"\"regs\":[").unwrap() + 8;
    bytes[at] = if bytes[at] == b'9' { b'8' } else { b'9' };
    let tampered = dir.path().join("tampered.snap");
    std::fs::write(&tampered, &bytes).unwrap();
    let (status, _, stderr) = vmm(&["restore", tampered.to_str().unwrap()]);
    assert_ne!(status, 0);
    assert!(stderr.contains("does not match its SHA-256"), "{stderr}");
    let cut = dir.path().join("cut.snap");
    std::fs::write(&cut, &std::fs::read(&snap).unwrap()[..20_000]).unwrap();
    let (status, _, stderr) = vmm(&["restore", cut.to_str().unwrap()]);
    assert_ne!(status, 0);
    assert!(stderr.contains("cut short"), "{stderr}");
    let (status, _, stderr) = vmm(&["restore", "/nonexistent/x.snap"]);
    assert_ne!(status, 0);
    assert!(stderr.contains("/nonexistent/x.snap"), "{stderr}");

    // A guest that does not stop at a hlt (it resets) leaves no snapshot behind.
    let other = dir.path().join("triple.snap");
    let (status, _, stderr) = vmm(&["triple-fault", "--snapshot-to", other.to_str().unwrap()]);
    assert_ne!(status, 0);
    assert!(stderr.contains("did not stop at a hlt"), "{stderr}");
    assert!(!other.exists() && !dir.path().join("triple.partial").exists());
}

#[test]
fn a_linux_guest_with_a_disk_is_refused_a_snapshot_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("linux.snap");
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let (status, report, stderr) = vmm(&[
        "linux",
        "--kernel",
        "/nonexistent/vmlinux",
        "--disk",
        disk.to_str().unwrap(),
        "--snapshot-to",
        snap.to_str().unwrap(),
    ]);
    assert_ne!(status, 0);
    assert!(report.is_none());
    assert!(
        stderr.contains("a guest with a disk cannot be snapshotted"),
        "{stderr}"
    );
    assert!(!snap.exists() && !dir.path().join("linux.partial").exists());
    let (status, _, stderr) = vmm(&["linux", "--kernel", "/k", "--snapshot-to"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("--snapshot-to needs a PATH"), "{stderr}");
}
