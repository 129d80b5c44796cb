//! The test rig itself (a throwaway Linux under QEMU TCG with hardware-style KVM and
//! cgroup v2 alone), and `vcbench` run inside it: the command's output and exit status come
//! back, a hung command is killed at the timeout, and results taken inside are marked as
//! taken on an emulated CPU.

#[path = "../../tests/rig/support.rs"]
mod rig;

#[test]
fn a_command_runs_as_root_with_kvm_amd_and_cgroup2_alone_and_its_status_comes_back() {
    if !rig::available() {
        return;
    }
    let outcome = rig::Rig::default().timeout(180).run(&[
        "sh",
        "-c",
        "echo to stdout; echo to stderr >&2; id -u; test -c /dev/kvm && echo kvm; \
         test -d /sys/module/kvm_amd && echo kvm_amd; \
         grep -c ' /sys/fs/cgroup ' /proc/mounts; grep ' /sys/fs/cgroup ' /proc/mounts; exit 7",
    ]);
    assert_eq!(outcome.status, 7, "the command's own status comes back");
    let lines: Vec<&str> = outcome.output.lines().collect();
    for expected in ["to stdout", "to stderr", "0", "kvm", "kvm_amd", "1"] {
        assert!(
            lines.contains(&expected),
            "{expected:?} missing from {lines:?}"
        );
    }
    assert!(
        outcome.output.contains("cgroup2 /sys/fs/cgroup cgroup2"),
        "cgroup v2 alone on /sys/fs/cgroup"
    );
    assert!(outcome.stderr.contains("outer Linux up at"));
}

#[test]
fn a_hung_command_is_killed_at_the_timeout_with_the_console_tail() {
    if !rig::available() {
        return;
    }
    let outcome = rig::Rig::default()
        .timeout(25)
        .run(&["sh", "-c", "echo started; sleep 1000"]);
    assert_eq!(outcome.status, 124, "a timeout is status 124");
    assert!(outcome.stderr.contains("timed out after 25 s"));
    assert!(
        outcome.stderr.contains("==== rig: up"),
        "the console's tail comes with the timeout"
    );
    assert!(
        outcome.wall.as_secs() < 60,
        "QEMU was not killed at the timeout"
    );
}

#[test]
fn an_outer_linux_that_never_comes_up_fails_with_the_console_and_qemu_messages() {
    if !rig::available() {
        return;
    }
    // A file QEMU cannot boot: no outer Linux, so the command never runs.
    let not_a_kernel = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_a_kernel.path(), b"not a kernel").unwrap();
    let outcome = rig::Rig::default()
        .kernel(not_a_kernel.path())
        .timeout(60)
        .run(&["true"]);
    assert_eq!(outcome.status, 125, "the rig's own failure is status 125");
    assert!(
        outcome.stderr.contains("the outer Linux never came up"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("qemu"),
        "QEMU's own message comes with it: {}",
        outcome.stderr
    );
}

#[test]
fn a_command_that_cannot_start_fails_with_its_message() {
    if !rig::available() {
        return;
    }
    let outcome = rig::Rig::default()
        .timeout(180)
        .run(&["no-such-command", "--flag"]);
    assert_eq!(outcome.status, 127);
    assert!(
        outcome.output.contains("no-such-command"),
        "{}",
        outcome.output
    );
}

#[test]
fn vcbench_in_the_rig_sees_hardware_style_kvm_and_marks_its_results_emulated() {
    if !rig::available() {
        return;
    }
    let outcome = rig::Rig::default()
        .file(env!("CARGO_BIN_EXE_vcbench"), "/rig/vcbench")
        .timeout(300)
        .retry_on_timeout()
        .run(&[
            "sh",
            "-c",
            // The progress goes to the rig's console, a terminal, so a stuck run shows where.
            "vcbench doctor; vcbench run --backend container,microvm \
             --scenario startup,exits --runs 3 --warmup 1 --timeout 30 --out /tmp/r.json; \
             status=$?; echo '---- results ----'; cat /tmp/r.json; exit $status",
        ]);
    assert_eq!(outcome.status, 0, "vcbench run failed in the rig");
    assert!(
        outcome.output.contains("emulated by QEMU TCG"),
        "doctor names the emulated CPU"
    );
    let json = outcome
        .output
        .split_once("---- results ----")
        .map(|(_, json)| json)
        .expect("the results document follows the marker");
    let results: serde_json::Value = serde_json::from_str(json.trim()).expect("results JSON");
    let host = &results["host"];
    assert_eq!(
        host["emulated"], true,
        "results inside the rig are marked emulated"
    );
    assert_eq!(host["hypervisor"], "TCGTCGTCGTCG");
    assert_eq!(host["kvm"]["flavour"], "hardware");
    assert_eq!(host["kvm"]["module"], "kvm_amd");
    assert_eq!(host["cgroup"], "v2");
    let figures = results["figures"].as_array().expect("figures");
    for backend in ["container", "microvm"] {
        assert!(
            figures
                .iter()
                .any(|f| f["backend"] == backend && f["scenario"] == "startup"),
            "no {backend} startup figure"
        );
    }
    assert!(results["failures"].as_array().is_some_and(Vec::is_empty));
}
