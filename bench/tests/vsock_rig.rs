//! The vsock scenario on the VM backends, in the test rig (hardware-style KVM under QEMU
//! TCG, where Linux guests boot and the rig's kernel serves guests' vsock devices through
//! vhost-vsock): the monitor's vsock device and QEMU's `vhost-vsock-device` carry the
//! hostnet work to the peer on the host at CID 2; both figures come back for both
//! backends, each run's connections came from the guest's own CID, and the monitor handed
//! the device's queues to the host kernel once per run. The rig's timings describe no real
//! machine: only that it works is checked.
//!
//! Skipped with the reason when the rig or the guest kernel is missing (a failure under
//! CI=true, where `.ci/run` installs the rig's packages and builds the kernel).

#[path = "../../tests/rig/support.rs"]
mod rig;

use std::path::PathBuf;

use serde_json::Value;

/// The kernel `vcbench kernel build` made, or why there is none.
fn guest_kernel() -> Option<PathBuf> {
    match images::kernel::latest(&images::image::cache_dir()) {
        Ok(Some(built)) => Some(built.vmlinux),
        other => {
            let why = match other {
                Err(e) => format!("the kernel cache is unreadable: {e}"),
                _ => "no guest kernel has been built: run `vcbench kernel build`".to_owned(),
            };
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {why}"
            );
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Where QEMU looks for its `-M microvm` firmware, next to its binary's install prefix.
const QEMU_FIRMWARE: &str = "/usr/share/qemu/qboot.rom";

#[test]
fn the_vm_backends_reach_the_host_over_vsock() {
    if !rig::available() {
        return;
    }
    let Some(kernel) = guest_kernel() else {
        return;
    };
    let qemu = rig::which("qemu-system-x86_64").expect("the rig runs on QEMU");
    let outcome = rig::Rig::default()
        .file(env!("CARGO_BIN_EXE_vcbench"), "/rig/vcbench")
        .file(&kernel, "/rig/vmlinux")
        .file(&qemu, "/usr/bin/qemu-system-x86_64")
        .file(QEMU_FIRMWARE, QEMU_FIRMWARE)
        .timeout(900)
        .retry_on_timeout()
        .run(&[
            "sh",
            "-c",
            "PATH=$PATH:/usr/bin vcbench run --backend microvm,qemu --kernel /rig/vmlinux \
               --scenario vsock --runs 1 --warmup 0 --timeout 400 --quiet \
               --out /tmp/v.json >/dev/null; s=$?; \
             echo '---- results ----'; cat /tmp/v.json; echo '----'; exit $s",
        ]);
    let text = outcome
        .output
        .split_once("---- results ----")
        .and_then(|(_, rest)| rest.split("\n----").next())
        .unwrap_or_else(|| panic!("no results in the rig's output:\n{}", outcome.output));
    let results: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("bad results JSON: {e}\n{}", outcome.output));
    assert_eq!(outcome.status, 0, "{:#}", results["failures"]);
    for backend in ["microvm", "qemu"] {
        for metric in ["host_vsock_rtt", "host_vsock_bulk"] {
            let value = results["figures"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| {
                    f["backend"] == backend && f["scenario"] == "vsock" && f["metric"] == metric
                })
                .and_then(|f| f["summary"]["median"].as_f64())
                .unwrap_or_else(|| panic!("no {backend} {metric}: {:#}", results["figures"]));
            assert!(value > 0.0, "{backend} {metric} {value}");
        }
    }
    for run in results["runs"].as_array().unwrap() {
        // The work's end of each connection: the guest's own CID, never the host's.
        let local = run["facts"]["local_addr"]
            .as_str()
            .unwrap_or_else(|| panic!("no local_addr: {run:#}"));
        let cid: u32 = local
            .strip_prefix("vsock:")
            .and_then(|rest| rest.split(':').next())
            .and_then(|cid| cid.parse().ok())
            .unwrap_or_else(|| panic!("not a vsock address: {local}"));
        assert!(cid > 2, "the guest's CID {cid}");
        assert_eq!(
            run["facts"]["peer_addr"]
                .as_str()
                .unwrap()
                .split(':')
                .nth(1),
            Some("2")
        );
    }
}
