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

mod guest;

use serde_json::Value;

#[test]
fn the_vm_backends_reach_the_host_over_vsock() {
    let Some(rig) = guest::vm_rig() else {
        return;
    };
    let outcome = rig.timeout(900).retry_on_timeout().run(&[
        "sh",
        "-c",
        "PATH=$PATH:/usr/bin vcbench run --backend microvm,qemu --kernel /rig/vmlinux \
               --scenario vsock --runs 1 --warmup 0 --timeout 300 --quiet \
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
