//! Linux guests end to end, in the test rig (hardware-style KVM under QEMU TCG): the
//! project's kernel (`vcbench kernel build`) boots with the image's initramfs in this
//! project's monitor, and the `microvm` backend reports the workload's own records, with
//! every phase of the boot stamped and in order; with 2 vCPUs the guest counts 2 CPUs.
//! A kernel that never reaches init is stopped at the timeout with its console.
//!
//! Skipped with the reason when the rig or the kernel is missing (a failure under CI=true,
//! where `.ci/run` installs the rig's packages and builds the kernel).

#[path = "../../tests/rig/support.rs"]
mod rig;

mod guest;

use serde_json::Value;

/// The phases of a Linux guest's run, in the order they must happen.
const PHASES: [&str; 11] = [
    "vm_created",
    "memory_registered",
    "kernel_loaded",
    "vcpus_created",
    "vm_built",
    "kernel_entry",
    "init_reached",
    "workload_started",
    "result",
    "powered_off",
    "torn_down",
];

fn results_after(output: &str, marker: &str) -> Value {
    let json = output
        .split_once(marker)
        .unwrap_or_else(|| panic!("no {marker} in the output"))
        .1;
    let json = json.split("----").next().unwrap_or_default();
    serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("bad results JSON: {e}\n{json}"))
}

fn microvm_runs<'a>(results: &'a Value, scenario: &str) -> Vec<&'a Value> {
    results["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["backend"] == "microvm" && r["scenario"] == scenario)
        .collect()
}

fn check_phases(run: &Value) {
    let phases = run["phases"].as_array().expect("phases");
    let stamp = |name: &str| {
        phases
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["ms"].as_f64())
            .unwrap_or_else(|| panic!("phase {name} missing from {phases:?}"))
    };
    let stamps: Vec<f64> = PHASES.iter().map(|p| stamp(p)).collect();
    for (pair, names) in stamps.windows(2).zip(PHASES.windows(2)) {
        assert!(
            pair[0] <= pair[1],
            "{} ({} ms) comes after {} ({} ms)",
            names[0],
            pair[0],
            names[1],
            pair[1]
        );
    }
    assert!(stamps[0] >= 0.0, "the VM is created after the launch");
}

#[test]
fn the_project_kernel_boots_the_workload_as_init_and_the_backend_reports_its_records() {
    if !rig::available() {
        return;
    }
    let Some(kernel) = guest::kernel() else {
        return;
    };
    let outcome = rig::Rig::default()
        .file(env!("CARGO_BIN_EXE_vcbench"), "/rig/vcbench")
        .file(&kernel, "/rig/vmlinux")
        .timeout(420)
        .retry_on_timeout()
        .run(&[
            "sh",
            "-c",
            "vcbench run --backend microvm --kernel /rig/vmlinux --scenario startup,cpu,syscall \
               --runs 1 --warmup 0 --timeout 120 --quiet --out /tmp/one.json >/dev/null; s1=$?; \
             vcbench run --backend microvm --kernel /rig/vmlinux --vm-vcpus 2 --scenario startup \
               --runs 1 --warmup 0 --timeout 120 --quiet --out /tmp/two.json >/dev/null; s2=$?; \
             echo '---- one vCPU ----'; cat /tmp/one.json; echo '---- two vCPUs ----'; \
             cat /tmp/two.json; echo '----'; [ $s1 = 0 ] && [ $s2 = 0 ]",
        ]);
    let one = results_after(&outcome.output, "---- one vCPU ----");
    let two = results_after(&outcome.output, "---- two vCPUs ----");
    assert_eq!(
        outcome.status, 0,
        "vcbench run failed in the rig: {:#}",
        one["failures"]
    );
    let settings = one["plan"]["settings"]["microvm"].as_str().unwrap();
    assert!(
        settings.contains("Linux guests (Linux 6.1") && settings.contains("config "),
        "the kernel's identity is in the plan: {settings}"
    );
    for scenario in ["startup", "cpu", "syscall"] {
        let runs = microvm_runs(&one, scenario);
        assert_eq!(runs.len(), 1, "{scenario}: one run");
        assert_eq!(runs[0]["ok"], true, "{scenario}: {:#}", one["failures"]);
        check_phases(runs[0]);
        // The workload's own records: started (the marker the runner times) and result.
        assert!(
            runs[0]["markers"]["started_ms"].as_f64().is_some(),
            "{scenario}"
        );
        assert!(
            runs[0]["markers"]["result_ms"].as_f64().is_some(),
            "{scenario}"
        );
    }
    let figure = |results: &Value, scenario: &str, metric: &str| {
        results["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| {
                f["backend"] == "microvm" && f["scenario"] == scenario && f["metric"] == metric
            })
            .and_then(|f| f["samples"][0].as_f64())
            .unwrap_or_else(|| panic!("no {scenario} {metric} figure: {:#}", results["figures"]))
    };
    assert!(figure(&one, "startup", "time_to_start") > 0.0);
    assert!(figure(&one, "cpu", "throughput") > 0.0);
    assert!(figure(&one, "syscall", "syscall") > 0.0);
    let cpus = |results: &Value| {
        microvm_runs(results, "startup")[0]["counters"]["guest_cpus_online"].as_u64()
    };
    assert_eq!(cpus(&one), Some(1), "one vCPU");
    assert_eq!(cpus(&two), Some(2), "the guest sees 2 CPUs");
    check_phases(microvm_runs(&two, "startup")[0]);
    // The guest's timer is the local APIC in TSC-deadline mode (offered by the monitor
    // because KVM has the capability), so it was not calibrated against the PIT.
    for results in [&one, &two] {
        let facts = &microvm_runs(results, "startup")[0]["facts"];
        assert_eq!(facts["clock_event_device"], "lapic-deadline", "{facts:#}");
        assert!(facts["clocksource"].as_str().is_some(), "{facts:#}");
    }
}

#[test]
fn qemu_boots_the_same_kernel_and_image_and_reports_the_same_records() {
    let Some(rig) = guest::vm_rig() else {
        return;
    };
    let outcome = rig.timeout(420).retry_on_timeout().run(&[
        "sh",
        "-c",
        "PATH=$PATH:/usr/bin vcbench run --backend microvm,qemu --kernel /rig/vmlinux \
               --scenario startup,syscall --runs 1 --warmup 0 --timeout 120 --quiet \
               --out /tmp/both.json >/dev/null; s=$?; echo '---- both ----'; \
             cat /tmp/both.json; echo '----'; exit $s",
    ]);
    let both = results_after(&outcome.output, "---- both ----");
    assert_eq!(outcome.status, 0, "{:#}", both["failures"]);
    let settings = |backend: &str| {
        both["plan"]["settings"][backend]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let config = |text: &str| text.split("config ").nth(1).map(|c| c[..16].to_owned());
    assert!(config(&settings("qemu")).is_some(), "{}", settings("qemu"));
    assert_eq!(
        config(&settings("qemu")),
        config(&settings("microvm")),
        "both boot the same kernel"
    );
    for scenario in ["startup", "syscall"] {
        let runs: Vec<&Value> = both["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["backend"] == "qemu" && r["scenario"] == scenario)
            .collect();
        assert_eq!(runs.len(), 1, "{scenario}");
        let run = runs[0];
        assert_eq!(run["ok"], true, "{scenario}: {:#}", both["failures"]);
        let stamp = |name: &str| {
            run["phases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .and_then(|p| p["ms"].as_f64())
                .unwrap_or_else(|| panic!("{scenario}: phase {name} missing: {run:#}"))
        };
        let order = ["init_reached", "workload_started", "result", "powered_off"];
        let stamps: Vec<f64> = order.iter().map(|n| stamp(n)).collect();
        assert!(
            stamps.windows(2).all(|w| w[0] <= w[1]),
            "{scenario}: phases out of order: {order:?} {stamps:?}"
        );
        assert_eq!(run["markers"]["started_ms"].as_f64(), Some(stamps[1]));
    }
    let startup = both["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["backend"] == "qemu" && r["scenario"] == "startup")
        .unwrap();
    assert_eq!(
        startup["counters"]["guest_cpus_online"], 1,
        "hello counts its CPUs"
    );
}

#[test]
fn a_kernel_panic_ends_the_run_at_once_with_its_line() {
    if !rig::available() {
        return;
    }
    let Some(kernel) = guest::kernel() else {
        return;
    };
    let vmm = images::image::install_vmm(&images::image::cache_dir()).unwrap();
    // No initramfs and no root device: the kernel panics ("Unable to mount root fs") and,
    // with panic=0, would wait forever: the monitor ends the run at the panic's line.
    let outcome = rig::Rig::default()
        .file(&vmm, "/rig/vcbench-vmm")
        .file(&kernel, "/rig/vmlinux")
        .timeout(300)
        .retry_on_timeout()
        .run(&[
            "vcbench-vmm",
            "linux",
            "--kernel",
            "/rig/vmlinux",
            "--cmdline",
            "console=ttyS0 panic=0",
            "--timeout-ms",
            "20000",
        ]);
    assert_eq!(
        outcome.status, 1,
        "a guest whose kernel panicked is a failure"
    );
    let report = outcome
        .output
        .lines()
        .find_map(
            |l| match serde_json::from_str::<microvm::protocol::Line>(l) {
                Ok(microvm::protocol::Line::Report(r)) => Some(r),
                _ => None,
            },
        )
        .expect("a report");
    assert_eq!(report.end, microvm::protocol::End::Failed);
    let reason = report.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("the guest's kernel panicked: Kernel panic - not syncing"),
        "{reason}"
    );
    let entry = report
        .phase("kernel_entry")
        .expect("the kernel was entered");
    let stopped = report.phase("stopped").expect("the guest was stopped");
    assert!(
        stopped - entry < 19_000_000_000,
        "ended at the panic, not at the 20 s timeout: {} ms",
        (stopped - entry) / 1_000_000
    );
    assert!(report.markers.is_empty(), "init was never reached");
}

#[test]
fn workload_faults_inside_a_linux_guest_are_failures_with_reasons() {
    if !rig::available() {
        return;
    }
    let Some(kernel) = guest::kernel() else {
        return;
    };
    // Four guests, one rig: a crash, a flood, a workload that never starts (stopped at the
    // timeout) and, after them, a normal run.
    let once = "vcbench once -b microvm --kernel /rig/vmlinux --timeout 40 --json --";
    let outcome = rig::Rig::default()
        .file(env!("CARGO_BIN_EXE_vcbench"), "/rig/vcbench")
        .file(&kernel, "/rig/vmlinux")
        .timeout(420)
        .retry_on_timeout()
        .run(&[
            "sh",
            "-c",
            &format!(
                "for kind in segv flood mute; do echo \"---- $kind ----\"; \
                   {once} fault --kind $kind; echo \"---- status $? ----\"; done; \
                 echo '---- hello ----'; {once} hello; echo \"---- status $? ----\"; \
                 echo '---- end ----'"
            ),
        ]);
    let section = |name: &str| -> (serde_json::Value, String) {
        let text = outcome
            .output
            .split_once(&format!("---- {name} ----"))
            .unwrap_or_else(|| panic!("no {name} in the rig's output:\n{}", outcome.output))
            .1;
        let (json, rest) = text
            .split_once("---- status ")
            .unwrap_or_else(|| panic!("no status after {name}:\n{}", outcome.output));
        let status = rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        let value = serde_json::from_str(json.trim())
            .unwrap_or_else(|e| panic!("{name}: bad JSON ({e}):\n{json}"));
        (value, status)
    };
    let failure =
        |value: &serde_json::Value| value["failure"].as_str().unwrap_or_default().to_owned();

    let (segv, status) = section("segv");
    assert_eq!(status, "3", "{segv:#}");
    assert!(
        failure(&segv).contains("killed by signal SIGSEGV"),
        "{segv:#}"
    );

    let (flood, status) = section("flood");
    assert_eq!(status, "3", "{flood:#}");
    assert!(!failure(&flood).is_empty(), "{flood:#}");

    let (mute, status) = section("mute");
    assert_eq!(status, "3", "{mute:#}");
    assert!(mute["markers"]["started_ms"].is_null(), "{mute:#}");
    assert!(failure(&mute).contains("timeout"), "{mute:#}");
    // Where every vCPU was when it was stopped.
    assert!(
        failure(&mute).contains("vcpu0: rip=") && failure(&mute).contains("APIC timer"),
        "{mute:#}"
    );

    let (hello, status) = section("hello");
    assert_eq!(status, "0", "{hello:#}");
    assert!(hello["failure"].is_null(), "{hello:#}");
}
