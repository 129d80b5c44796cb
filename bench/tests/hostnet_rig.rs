//! The hostnet scenario on the VM backends, in the test rig (hardware-style KVM under QEMU
//! TCG, where Linux guests boot): the microvm's monitor and QEMU are started inside the
//! run's network namespace on a tap there, the guest's workload configures its `eth0` and
//! reaches the host-side peer; both figures come back, with the monitor's device counts
//! per operation; and nothing is left, in the rig's own namespace or under the run's
//! directory. The rig's timings describe no real machine: only that it works is checked.
//!
//! Skipped with the reason when the rig or the guest kernel is missing (a failure under
//! CI=true, where `.ci/run` installs the rig's packages and builds the kernel).

#[path = "../../tests/rig/support.rs"]
mod rig;

mod guest;

use std::net::SocketAddrV4;

use serde_json::Value;

#[test]
fn the_vm_backends_reach_the_host_side_peer_over_a_tap_in_the_runs_namespace() {
    let Some(rig) = guest::vm_rig() else {
        return;
    };
    let outcome = rig.timeout(1200).retry_on_timeout().run(&[
        "sh",
        "-c",
        "ls /sys/class/net > /tmp/before; \
             PATH=$PATH:/usr/bin vcbench run --backend microvm,qemu --kernel /rig/vmlinux \
               --scenario hostnet --runs 1 --warmup 0 --timeout 300 --quiet \
               --out /tmp/h.json >/dev/null; s=$?; \
             echo '---- results ----'; cat /tmp/h.json; echo '----'; \
             echo '---- left ----'; ls -A /run/vcbench/netns; \
             ls /sys/class/net | diff /tmp/before - && echo 'links unchanged'; echo '----'; \
             exit $s",
    ]);
    let results: Value = serde_json::from_str(guest::section(&outcome.output, "---- results ----"))
        .unwrap_or_else(|e| panic!("bad results JSON: {e}\n{}", outcome.output));
    assert_eq!(outcome.status, 0, "{:#}", results["failures"]);
    let figure = |backend: &str, metric: &str| {
        results["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| {
                f["backend"] == backend && f["scenario"] == "hostnet" && f["metric"] == metric
            })
            .and_then(|f| f["summary"]["median"].as_f64())
    };
    for backend in ["microvm", "qemu"] {
        for metric in ["host_tcp_rtt", "host_tcp_bulk"] {
            let value = figure(backend, metric)
                .unwrap_or_else(|| panic!("no {backend} {metric}: {:#}", results["figures"]));
            assert!(value > 0.0, "{backend} {metric} {value}");
        }
    }
    // The monitor's device counters: every round trip kicks the device at least once
    // in each direction, over the run.
    let exits = figure("microvm", "device_exits_per_op").expect("device_exits_per_op");
    let interrupts = figure("microvm", "device_interrupts_per_op").expect("interrupts");
    let syscalls = figure("microvm", "device_syscalls_per_op").expect("syscalls");
    assert!(exits > 0.0 && interrupts > 0.0, "{exits} {interrupts}");
    // A notification's eventfd read and an interrupt's write are among the system calls.
    assert!(syscalls >= exits + interrupts, "{syscalls}");
    eprintln!(
        "microvm per operation: {exits} exits, {interrupts} interrupts, {syscalls} system calls"
    );
    // The guest used its own subnet's addresses only.
    for run in results["runs"].as_array().unwrap() {
        for fact in ["local_addr", "peer_addr"] {
            let address: SocketAddrV4 = run["facts"][fact]
                .as_str()
                .unwrap_or_else(|| panic!("no {fact}: {run:#}"))
                .parse()
                .unwrap();
            assert_eq!(address.ip().octets()[..2], [10, 200], "{fact} {address}");
        }
    }
    // Nothing left: no namespace held, the rig's own links as they were.
    assert_eq!(
        guest::section(&outcome.output, "---- left ----").trim(),
        "links unchanged"
    );
}
