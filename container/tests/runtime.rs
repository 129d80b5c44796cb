//! Real containers: what the inside sees, limits enforced, phases stamped, and nothing
//! left behind. Needs root and busybox-static; skipped with a reason otherwise (a failure
//! under CI=true).

mod common;

use std::time::Duration;

use common::{assert_nothing_left, busybox_rootfs, prerequisites, run, sh};
use container::{Cpu, Limits};

const T: Duration = Duration::from_secs(30);

#[test]
fn inside_is_pid1_with_its_own_hostname_and_only_loopback() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let script = "echo pid=$$; echo host=$(hostname); echo net=$(ls /sys/class/net); \
                  echo procs=$(ls /proc | grep -c '^[0-9]'); echo root=$(ls / | tr '\\n' ' '); \
                  cat /sys/class/net/lo/operstate /sys/class/net/lo/flags";
    let f = run(&sh(rootfs.path(), script), T).unwrap();
    assert_eq!(f.status, 0, "{f:?}");
    let out = &f.stdout;
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains("host=vcbench\n"), "{out}");
    assert!(out.contains("net=lo\n"), "{out}");
    // Only the shell and the pipeline counting are in the PID namespace.
    let procs: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("procs="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(procs <= 4, "{out}");
    // The root is the busybox tree, not the host's.
    assert!(out.contains("root=bin dev proc sys tmp"), "{out}");
    // Loopback is up (IFF_UP is bit 0 of the flags).
    let flags = out.lines().last().unwrap().trim_start_matches("0x");
    assert_eq!(u32::from_str_radix(flags, 16).unwrap() & 1, 1, "{out}");
    assert_nothing_left(&f);
}

#[test]
fn no_host_path_or_device_is_reachable() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let script = "ls /dev | tr '\\n' ' '; echo; cat /proc/self/status | grep CapEff; \
                  grep NoNewPrivs /proc/self/status; ls /work /root /etc 2>&1 | head -3; \
                  mount -t tmpfs none /mnt 2>&1 || echo mount-refused";
    let f = run(&sh(rootfs.path(), script), T).unwrap();
    let out = &f.stdout;
    let devs: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx",
    ] {
        assert!(devs.contains(&d), "/dev lacks {d}: {devs:?}");
    }
    assert!(
        !devs
            .iter()
            .any(|d| d.starts_with("sd") || d.starts_with("vd") || *d == "kvm" || *d == "mem"),
        "{devs:?}"
    );
    // Capabilities are the default set: no CAP_SYS_ADMIN (bit 21).
    let cap_eff = out.lines().find(|l| l.starts_with("CapEff")).unwrap();
    let caps = u64::from_str_radix(cap_eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(caps & (1 << 21), 0, "{cap_eff}");
    assert_eq!(
        caps,
        container::DEFAULT_CAPS.iter().fold(0u64, |m, c| m | 1 << c)
    );
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(
        !out.contains("\n/work") && f.stdout.contains("No such file"),
        "{out}"
    );
    assert!(out.contains("mount-refused"), "{out}");
    assert_nothing_left(&f);
}

#[test]
fn every_phase_is_stamped_in_order() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let f = run(&sh(rootfs.path(), "true"), T).unwrap();
    // The phases come in the order they happened. The cgroup is made beside the clone
    // (v1: by the admitting thread while the kernel makes the namespaces), so `cloned`
    // may come before or after it; a child cloned into its v2 cgroup needs no attach.
    let unified = container::cgroup::Layout::detect()
        .unwrap()
        .instances_unified();
    let mut expected = vec![
        "prepared",
        "cgroup_created",
        "devices_restricted",
        "cloned",
        "cgroup_attached",
        "mounts_done",
        "pivot_root_done",
        "paths_masked",
        "privileges_dropped",
        "exec",
    ];
    if unified {
        expected.retain(|p| *p != "cgroup_attached");
    }
    let mut sorted = f.phases.clone();
    sorted.sort_unstable();
    let mut want = expected.clone();
    want.sort_unstable();
    assert_eq!(sorted, want, "every phase once: {:?}", f.phases);
    let at = |p: &str| f.phases.iter().position(|n| *n == p).unwrap();
    for pair in [
        ["prepared", "cgroup_created"],
        ["prepared", "cloned"],
        ["cgroup_created", "devices_restricted"],
        ["devices_restricted", "mounts_done"],
        ["cloned", "mounts_done"],
    ]
    .into_iter()
    .chain(
        [
            "mounts_done",
            "pivot_root_done",
            "paths_masked",
            "privileges_dropped",
            "exec",
        ]
        .windows(2)
        .map(|w| [w[0], w[1]]),
    ) {
        assert!(
            at(pair[0]) < at(pair[1]),
            "{} before {}: {:?}",
            pair[0],
            pair[1],
            f.phases
        );
    }
    if !unified {
        assert!(
            at("devices_restricted") < at("cgroup_attached"),
            "{:?}",
            f.phases
        );
        assert!(at("cloned") < at("cgroup_attached"), "{:?}", f.phases);
    }
    let stamps: Vec<u64> = f.stamps.iter().map(|(_, at)| *at).collect();
    assert!(stamps.is_sorted(), "{:?}", f.stamps);
    assert_nothing_left(&f);
}

#[test]
fn the_cgroup_namespace_is_rooted_at_the_containers_own_cgroup() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    for namespaces in [container::Namespaces::ROOTFUL, container::Namespaces::ALL] {
        let mut spec = sh(rootfs.path(), "cat /proc/self/cgroup");
        spec.namespaces = namespaces;
        let f = run(&spec, T).unwrap();
        assert_eq!(f.status, 0, "{f:?}");
        // Every hierarchy it joined (and the others, where it stayed in the runtime's
        // cgroup) is its namespace's root.
        let lines: Vec<&str> = f.stdout.lines().collect();
        assert!(!lines.is_empty(), "{f:?}");
        for line in &lines {
            assert!(line.ends_with(":/"), "{line} in {f:?}");
        }
        let layout = container::cgroup::Layout::detect().unwrap();
        let in_v2 = layout
            .unified_mount()
            .is_some_and(|m| f.cgroup_dirs[0].starts_with(m));
        if in_v2 {
            assert!(lines.contains(&"0::/"), "{f:?}");
        } else {
            let memory = lines.iter().any(|l| l.split(':').nth(1) == Some("memory"));
            assert!(memory, "{f:?}");
        }
        assert_nothing_left(&f);
    }
}

#[test]
fn kernel_paths_are_read_only_or_masked_and_the_filter_is_on() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    // `: >> file` opens the file for appending and closes it: nothing is written. (busybox's
    // `[ -w ]` tells root that everything is writable.)
    let script = "grep Seccomp: /proc/self/status; \
                  for f in /proc/sys/kernel/core_pattern /proc/sys/vm/drop_caches /proc/sysrq-trigger; do \
                    [ -e $f ] || continue; \
                    if (: >> $f) 2>/dev/null; then echo writable $f; else echo read-only $f; fi; done; \
                  for d in /proc/acpi /sys/firmware; do \
                    [ -e $d ] && echo $d has $(ls -A $d | wc -l) entries; done; \
                  [ -e /proc/kcore ] && echo kcore $(head -c 4 /proc/kcore | wc -c) bytes; true";
    for namespaces in [
        container::Namespaces::ROOTFUL,
        container::Namespaces::ALL,
        container::Namespaces {
            pid: false,
            net: false,
            ..container::Namespaces::ALL
        },
        container::Namespaces {
            pid: false,
            ..container::Namespaces::ROOTFUL
        },
    ] {
        let mut spec = sh(rootfs.path(), script);
        spec.namespaces = namespaces;
        let f = run(&spec, T).unwrap();
        assert_eq!(f.status, 0, "{f:?}");
        let out = &f.stdout;
        assert!(out.contains("Seccomp:\t2"), "{namespaces:?}: {f:?}");
        assert!(!out.contains("writable"), "{namespaces:?}: {out}");
        assert!(
            out.contains("read-only /proc/sys/kernel/core_pattern"),
            "{out}"
        );
        for masked in ["/proc/acpi", "/sys/firmware"] {
            if std::path::Path::new(masked).exists() {
                assert!(out.contains(&format!("{masked} has 0 entries")), "{out}");
            }
        }
        if std::path::Path::new("/proc/kcore").exists() {
            assert!(out.contains("kcore 0 bytes"), "{out}");
        }
        assert_nothing_left(&f);
    }

    // Switched off, the same script sees the host's settings writable, and no filter.
    let mut spec = sh(rootfs.path(), script);
    spec.protect_kernel_paths = false;
    spec.seccomp = container::Seccomp::Off;
    let f = run(&spec, T).unwrap();
    assert!(f.stdout.contains("Seccomp:\t0"), "{f:?}");
    assert!(
        f.stdout.contains("writable /proc/sys/kernel/core_pattern"),
        "{f:?}"
    );
    assert_nothing_left(&f);
}

#[test]
fn devices_outside_the_list_are_refused_even_with_every_capability() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    // /dev/kmsg's number; opening it for reading (the shell's redirection) reads nothing.
    let script = "true < /dev/null && echo null-opens; \
                  mknod /dev/probe c 1 11 && echo made; \
                  true < /dev/probe && echo opened; \
                  grep -c . /proc/self/status >/dev/null; true";
    let mut spec = sh(rootfs.path(), script);
    spec.capabilities = container::Capabilities::All;
    let f = run(&spec, T).unwrap();
    assert!(f.stdout.contains("null-opens"), "{f:?}");
    assert!(
        !f.stdout.contains("made") && !f.stdout.contains("opened"),
        "{f:?}"
    );
    assert!(f.stderr.contains("Operation not permitted"), "{f:?}");
    assert_nothing_left(&f);

    // Without the list, the same capabilities make and open the node: the refusal above
    // was the cgroup's.
    spec.restrict_devices = false;
    let f = run(&spec, T).unwrap();
    assert!(
        f.stdout.contains("made") && f.stdout.contains("opened"),
        "{f:?}"
    );
    assert!(!f.phases.contains(&"devices_restricted"), "{f:?}");
    assert_nothing_left(&f);
}

#[test]
fn the_devices_of_dev_work_whether_made_or_bound() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    // Made with mknod without a user namespace, bound from the host's /dev with one: the
    // same numbers, open to everyone, and each does what its kind does.
    let script = "stat -c '%n %t:%T %a' /dev/null /dev/zero /dev/full /dev/random \
                  /dev/urandom /dev/tty; \
                  echo x > /dev/null && echo null-writes; \
                  echo zero-reads $(head -c 4 /dev/zero | od -An -tx1 | tr -d ' '); \
                  echo random-reads $(head -c 16 /dev/urandom | wc -c); \
                  (echo x > /dev/full) 2>/dev/null || echo full-is-full";
    for namespaces in [container::Namespaces::ROOTFUL, container::Namespaces::ALL] {
        let mut spec = sh(rootfs.path(), script);
        spec.namespaces = namespaces;
        let f = run(&spec, T).unwrap();
        assert_eq!(f.status, 0, "{namespaces:?}: {f:?}");
        for node in [
            "/dev/null 1:3",
            "/dev/zero 1:5",
            "/dev/full 1:7",
            "/dev/random 1:8",
            "/dev/urandom 1:9",
            "/dev/tty 5:0",
        ] {
            assert!(
                f.stdout.lines().any(|l| l == format!("{node} 666")),
                "{node}: {namespaces:?}: {f:?}"
            );
        }
        for seen in [
            "null-writes",
            "zero-reads 00000000",
            "random-reads 16",
            "full-is-full",
        ] {
            assert!(f.stdout.contains(seen), "{seen}: {namespaces:?}: {f:?}");
        }
        assert_nothing_left(&f);
    }
}

#[test]
fn a_memory_hog_above_its_limit_is_oom_killed() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let mut spec = sh(
        rootfs.path(),
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
    );
    spec.limits = Limits {
        memory_max: Some(32 << 20),
        ..Limits::default()
    };
    let f = run(&spec, T).unwrap();
    assert!(!f.stdout.contains("survived"), "{f:?}");
    let stats = f.stats.unwrap();
    assert!(stats.oom_kills.unwrap_or(0) >= 1, "{stats:?}");
    assert!(
        stats.memory_peak_bytes.unwrap_or(0) <= 33 << 20,
        "{stats:?}"
    );
    assert_nothing_left(&f);
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let mut spec = sh(
        rootfs.path(),
        "for i in $(seq 1 100); do sleep 30 & done; echo started; ps | wc -l",
    );
    spec.limits = Limits {
        pids_max: Some(16),
        ..Limits::default()
    };
    let f = run(&spec, T).unwrap();
    assert!(!f.timed_out, "{f:?}");
    assert!(
        f.stderr.contains("fork"),
        "the shell should have failed to fork: {f:?}"
    );
    let stats = f.stats.unwrap();
    assert!(stats.pids.unwrap_or(0) <= 16, "{stats:?}");
    assert_nothing_left(&f);
}

#[test]
fn cpu_limits_and_accounting_apply() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let mut spec = sh(
        rootfs.path(),
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done",
    );
    spec.limits = Limits {
        cpu: Some(Cpu::Quota {
            quota_us: 50_000,
            period_us: 100_000,
        }),
        ..Limits::default()
    };
    let f = run(&spec, T).unwrap();
    assert_eq!(f.status, 0, "{f:?}");
    assert!(f.stats.unwrap().cpu_usage_us.unwrap_or(0) > 0, "{f:?}");
    assert_nothing_left(&f);
}

#[test]
fn a_timeout_kills_the_whole_pid_namespace() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let f = run(
        &sh(rootfs.path(), "sleep 60 & sleep 60 & sleep 60"),
        Duration::from_millis(300),
    )
    .unwrap();
    assert!(f.timed_out);
    assert_eq!(f.status, 137);
    assert_nothing_left(&f);
}

#[test]
fn a_readonly_root_and_an_overlay() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let mut spec = sh(
        rootfs.path(),
        "echo x > /file && echo wrote; echo y > /tmp/t && echo tmp-ok",
    );
    spec.readonly_rootfs = true;
    let f = run(&spec, T).unwrap();
    assert!(
        !f.stdout.contains("wrote") && f.stdout.contains("tmp-ok"),
        "{f:?}"
    );
    assert_nothing_left(&f);

    // A host directory can stand in for the tmpfs at /tmp.
    let host_tmp = tempfile::tempdir().unwrap();
    let mut spec = sh(rootfs.path(), "echo y > /tmp/t");
    spec.tmp = Some(host_tmp.path().to_owned());
    let f = run(&spec, T).unwrap();
    assert_eq!(
        std::fs::read_to_string(host_tmp.path().join("t")).unwrap(),
        "y\n",
        "{f:?}"
    );
    assert_nothing_left(&f);

    let mut spec = sh(rootfs.path(), "echo x > /file && cat /file");
    spec.overlay = true;
    let f = run(&spec, T).unwrap();
    assert_eq!(f.stdout, "x\n", "{f:?}");
    // The write went to the overlay, not the image.
    assert!(!rootfs.path().join("file").exists());
    assert_nothing_left(&f);
}

#[test]
fn namespaces_can_be_switched_off() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let mut spec = sh(rootfs.path(), "echo pid=$$; ls /sys/class/net | wc -l");
    spec.namespaces.pid = false;
    spec.namespaces.net = false;
    let f = run(&spec, T).unwrap();
    assert!(!f.stdout.contains("pid=1\n"), "{f:?}");
    let interfaces: u32 = f.stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(interfaces >= 1, "{f:?}");
    assert_nothing_left(&f);
}

#[test]
fn all_seven_namespaces_as_root() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let mut spec = sh(rootfs.path(), "id -u; cat /proc/self/uid_map");
    spec.namespaces = container::Namespaces::ALL;
    let f = run(&spec, T).unwrap();
    assert_eq!(f.status, 0, "{f:?}");
    // Root inside is an unprivileged ID outside.
    assert!(
        f.stdout.starts_with("0\n") && f.stdout.contains("100000"),
        "{f:?}"
    );
    assert!(f.phases.contains(&"idmaps_written"));
    assert_nothing_left(&f);
}

/// Set in the re-executed copy of this test binary that runs as an unprivileged user.
const ROOTLESS_ENV: &str = "VCBENCH_TEST_ROOTLESS_ROOTFS";

#[test]
fn rootless_runs_as_an_unprivileged_user() {
    if let Ok(rootfs) = std::env::var(ROOTLESS_ENV) {
        // The unprivileged side: all seven namespaces, no cgroup (none is delegated).
        let mut spec = sh(
            std::path::Path::new(&rootfs),
            "echo inside=$(id -u); cat /proc/self/uid_map",
        );
        spec.namespaces = container::Namespaces::ALL;
        spec.cgroup = false;
        // SAFETY: geteuid has no preconditions.
        println!("outside={}", unsafe { libc::geteuid() });
        match run(&spec, T) {
            Ok(f) => println!("status={} {}", f.status, f.stdout),
            Err(e) => println!("error={e}: {:?}", std::error::Error::source(&e)),
        }
        return;
    }
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "rootless_runs_as_an_unprivileged_user",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROOTLESS_ENV, rootfs.path())
        .output()
        .expect("setpriv (util-linux) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("outside=65534"), "{text}");
    assert!(
        text.contains("status=0 inside=0"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Root inside is the unprivileged user outside, and only that one ID is mapped.
    let map: Vec<&str> = text
        .lines()
        .find(|l| l.trim_start().starts_with('0'))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(map, ["0", "65534", "1"], "{text}");
}
