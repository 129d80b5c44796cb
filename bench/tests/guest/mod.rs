//! What the Linux-guest tests share: the guest kernel `vcbench kernel build` made, QEMU's
//! firmware in the rig, and reading the rig's output. Each test file includes this module
//! and uses only part of it.

#![allow(dead_code, reason = "each test file uses a part of the shared helpers")]

use std::path::PathBuf;

/// Where QEMU looks for its `-M microvm` firmware, next to its binary's install prefix.
pub const QEMU_FIRMWARE: &str = "/usr/share/qemu/qboot.rom";

/// A rig that runs this build's `vcbench` on both VM backends: the binary, the guest kernel
/// at `/rig/vmlinux`, QEMU and its firmware. `None` without a rig or a guest kernel
/// (skipped with the reason, a failure under `CI=true`).
pub fn vm_rig() -> Option<super::rig::Rig> {
    if !super::rig::available() {
        return None;
    }
    let kernel = kernel()?;
    let qemu = super::rig::which("qemu-system-x86_64").expect("the rig runs on QEMU");
    Some(
        super::rig::Rig::default()
            .file(env!("CARGO_BIN_EXE_vcbench"), "/rig/vcbench")
            .file(&kernel, "/rig/vmlinux")
            .file(&qemu, "/usr/bin/qemu-system-x86_64")
            .file(QEMU_FIRMWARE, QEMU_FIRMWARE)
            .retry_when(emulator_fault),
    )
}

/// Why the rig's command failed, when every run that failed did so the way the emulated
/// machine fails rather than vcbench: in the rig (nested SVM emulated by QEMU TCG), a Linux
/// guest of either VM backend now and then triple-faults at a random point of its boot or
/// run, or stops making progress until its run times out. The microvm reports the first as
/// a shutdown exit at the reset vector (KVM on AMD resets a vCPU that shut down). The
/// runs' failures are read from every results document the command printed after a
/// `---- NAME ----` line; `None` when there is none, or any other failure.
pub fn emulator_fault(outcome: &super::rig::Outcome) -> Option<String> {
    if outcome.status == 0 {
        return None;
    }
    let output = format!("\n{}", outcome.output);
    let mut reasons = Vec::new();
    for (at, _) in output.match_indices("\n---- ") {
        let rest = &output[at + 1..];
        let Some((_, document)) = rest.split_once(" ----\n") else {
            continue;
        };
        let document = &document[..document.find("\n----").unwrap_or(document.len())];
        let Ok(results) = serde_json::from_str::<serde_json::Value>(document.trim()) else {
            continue;
        };
        for failure in results["failures"].as_array().into_iter().flatten() {
            reasons.push(format!(
                "{} {}: {}",
                failure["backend"].as_str().unwrap_or("?"),
                failure["scenario"].as_str().unwrap_or("?"),
                failure["reason"].as_str().unwrap_or_default()
            ));
        }
    }
    let emulated = |reason: &String| {
        (reason.contains("triple-faulted (shutdown exit)") && reason.contains("rip=0xfff0 "))
            || reason.contains(": timed out after ")
    };
    (!reasons.is_empty() && reasons.iter().all(emulated)).then(|| {
        format!(
            "a guest failed the way the emulated machine fails ({})",
            reasons.join("; ")
        )
    })
}

/// Skips a test with `why`; under `CI=true`, where `.ci/run` provides every prerequisite,
/// fails it instead.
pub fn skip(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {why}"
    );
    eprintln!("skipped: {why}");
}

/// The kernel `vcbench kernel build` made, or `None` (skipped with the reason).
pub fn kernel() -> Option<PathBuf> {
    match images::kernel::latest(&images::image::cache_dir()) {
        Ok(Some(built)) => Some(built.vmlinux),
        Ok(None) => {
            skip("no guest kernel has been built: run `vcbench kernel build`");
            None
        }
        Err(e) => {
            skip(&format!("the kernel cache is unreadable: {e}"));
            None
        }
    }
}

/// The text between `marker` and the next `----` line of the rig's output.
pub fn section<'a>(output: &'a str, marker: &str) -> &'a str {
    let start = output
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the rig's output:\n{output}"))
        + marker.len();
    let rest = &output[start..];
    &rest[..rest.find("\n----").unwrap_or(rest.len())]
}

/// `name=value` printed by the rig's command.
pub fn value(output: &str, name: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in the rig's output:\n{output}"))
        .trim()
        .to_owned()
}

#[test]
fn only_the_emulated_machines_own_failures_are_run_again() {
    let outcome = |status: i32, reasons: &[&str]| {
        let failures: Vec<serde_json::Value> = reasons
            .iter()
            .map(|r| serde_json::json!({"backend": "microvm", "scenario": "hostnet", "reason": r}))
            .collect();
        super::rig::Outcome {
            status,
            output: format!(
                "---- results ----\n{}\n----\n---- left ----\nlinks unchanged\n----\n",
                serde_json::json!({"failures": failures, "skipped": [{"reason": "x"}]})
            ),
            stderr: String::new(),
            wall: std::time::Duration::ZERO,
        }
    };
    let triple = "linux guest failed: the guest failed: the guest triple-faulted (shutdown exit) \
                  vcpu0: rip=0xfff0 rsp=0x0 (init was reached)";
    assert!(emulator_fault(&outcome(3, &[triple])).is_some());
    assert!(emulator_fault(&outcome(3, &["timed out after 300.0 s", triple])).is_some());
    assert!(emulator_fault(&outcome(0, &[triple])).is_none());
    assert!(emulator_fault(&outcome(3, &[])).is_none());
    assert!(emulator_fault(&outcome(3, &[triple, "no host_tcp_rtt record"])).is_none());
}
