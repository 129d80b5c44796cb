//! The container runtime on cgroup v2 alone, in the test rig (a throwaway Linux under
//! QEMU TCG): this crate's runtime tests, run there as root with CI=true, so the memory.max
//! OOM kill, pids.max, cpu.max and the removal of every cgroup are checked on the layout
//! most users have, whatever this host's own layout is.

#[path = "../../tests/rig/support.rs"]
mod rig;

#[test]
fn the_runtime_tests_pass_on_cgroup_v2_alone() {
    if !rig::available() {
        return;
    }
    let runtime = rig::sibling_test_binary("runtime");
    let outcome = rig::Rig::default()
        .file(&runtime, "/rig/runtime")
        .env("CI", "true")
        .timeout(900)
        .run(&[
            "sh",
            "-c",
            // The layout first, so a failure shows what the tests ran on. The rootless test
            // needs setpriv(1) from util-linux, which the rig does not carry.
            "grep cgroup /proc/mounts; runtime --test-threads 1 --skip rootless && \
             echo leftover cgroups: $(find /sys/fs/cgroup -mindepth 1 -type d -name 'vcbench-*' | wc -l)",
        ]);
    assert_eq!(outcome.status, 0, "the runtime tests failed in the rig");
    assert!(
        outcome.output.contains("cgroup2 /sys/fs/cgroup cgroup2"),
        "the rig's /sys/fs/cgroup is not cgroup2 alone"
    );
    assert!(
        !outcome.output.contains("cgroup /sys/fs/cgroup/"),
        "a cgroup v1 hierarchy is mounted in the rig"
    );
    for test in [
        "a_memory_hog_above_its_limit_is_oom_killed",
        "a_fork_bomb_stops_at_the_pids_limit",
        "cpu_limits_and_accounting_apply",
    ] {
        assert!(
            outcome.output.contains(&format!("{test} ... ok")),
            "{test} did not pass in the rig"
        );
    }
    assert!(outcome.output.contains("leftover cgroups: 0"));
}

/// The escape suite on cgroup v2 alone, as root, in every namespace combination, and its
/// check that each attempt catches a breach in a weakened container. The rig's RAM disk
/// (/dev/ram0) is the host block device a container must not open. The rootless half
/// needs setpriv(1), which the rig does not carry; it runs on the host.
#[test]
fn the_escape_suite_holds_on_cgroup_v2_alone() {
    if !rig::available() {
        return;
    }
    let escape = rig::sibling_test_binary("escape");
    let outcome = rig::Rig::default()
        .file(&escape, "/rig/escape")
        .env("CI", "true")
        .timeout(600)
        .run(&[
            "sh",
            "-c",
            "grep cgroup /proc/mounts; ls /sys/dev/block; \
             escape --test-threads 1 --skip rootless --nocapture",
        ]);
    assert_eq!(outcome.status, 0, "the escape suite failed in the rig");
    assert!(
        outcome.output.contains("cgroup2 /sys/fs/cgroup cgroup2"),
        "the rig's /sys/fs/cgroup is not cgroup2 alone"
    );
    assert!(
        outcome.output.contains("test result: ok. 2 passed"),
        "both root tests ran"
    );
}
