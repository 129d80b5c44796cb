//! The lab (`docs/lab.md`), exercise by exercise: each test runs the exercise's commands,
//! kept small, and checks the observation the page says to expect. The observations are
//! ones a noisy shared machine does not change (which namespace, how many exits, one
//! measure of memory below another), never a timing. Exercises that need root or KVM are
//! skipped with the reason where the machine lacks them. The exercises run one at a time,
//! as a class would run them: two traced runs at once would share (and unmount) one
//! tracefs.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use reports::document::Kind;
use reports::Results;

const VCBENCH: &str = env!("CARGO_BIN_EXE_vcbench");

fn vcbench(args: &[&str], cwd: &Path) -> Output {
    let out = Command::new(VCBENCH)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", cwd.join("cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vcbench {} ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One exercise at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Holds the lab for one exercise; a failed exercise does not stop the others.
fn exercise() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the exercise can run here: root (cgroups, ftrace), and KVM where it needs a VM.
fn can_run(exercise: &str, kvm: bool) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let kvm_ok = !kvm || Path::new("/dev/kvm").exists();
    if !(root && kvm_ok) {
        eprintln!(
            "skipped: lab exercise {exercise} needs {}",
            if root { "/dev/kvm" } else { "root" }
        );
    }
    root && kvm_ok
}

/// Runs `vcbench run` with `args` into `name`.json and reads it.
fn run(dir: &Path, name: &str, args: &[&str]) -> Results {
    let out = format!("{name}.json");
    let mut all = vec!["run", "-q", "-o", out.as_str()];
    all.extend_from_slice(args);
    vcbench(&all, dir);
    Results::read(&dir.join(out)).unwrap()
}

/// The inside answer and verdict of a check in `backend`'s matrix.
fn check<'a>(doc: &'a Results, backend: &str, check: &str) -> (&'a str, &'a str, &'a str) {
    let row = doc
        .isolation
        .iter()
        .find(|m| m.backend == backend)
        .and_then(|m| m.rows.iter().find(|r| r.check == check))
        .unwrap_or_else(|| panic!("{backend} has no {check} check"));
    (&row.inside, &row.host, &row.verdict)
}

fn median(doc: &Results, backend: &str, scenario: &str, metric: &str) -> f64 {
    doc.figure(backend, scenario, metric)
        .unwrap_or_else(|| panic!("no {backend} {scenario} {metric}"))
        .summary
        .median
}

#[test]
fn the_tour_shows_one_kernel_and_a_fenced_container() {
    let _lab = exercise();
    if !can_run("0", false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let md = String::from_utf8(vcbench(&["tour", "--markdown"], dir.path()).stdout).unwrap();
    let row = |label: &str| -> Vec<String> {
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap_or_else(|| panic!("no row {label}:\n{md}"));
        line.trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_owned())
            .collect()
    };
    // Columns: the label, native, container, microvm.
    assert_eq!(row("its PID")[2], "2");
    assert_eq!(row("uid map (inside, outside, count)")[2], "0 100000 65536");
    assert_eq!(row("network interfaces")[2], "lo");
    let boot = row("kernel boot id");
    assert_eq!(boot[1], boot[2], "one kernel for both");
    if md.contains("micro guests, with no guest OS") {
        assert_eq!(row("its PID")[3], "none: no guest OS");
        assert_eq!(row("of them, port writes")[3], "1");
        assert_eq!(row("of them, halts")[3], "1");
    }
}

#[test]
fn each_namespace_hides_one_thing() {
    let _lab = exercise();
    if !can_run("1", false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let all = run(dir.path(), "all", &["-b", "container", "-s", "isolation"]);
    let no_user = run(
        dir.path(),
        "nouser",
        &[
            "-b",
            "container",
            "-s",
            "isolation",
            "--namespaces",
            "mount,pid,uts,ipc,net,cgroup",
        ],
    );
    let no_net = run(
        dir.path(),
        "nonet",
        &[
            "-b",
            "container",
            "-s",
            "isolation",
            "--namespaces",
            "mount,pid,uts,ipc,user,cgroup",
        ],
    );
    assert_eq!(
        check(&all, "container", "uid_map"),
        ("0 100000 65536", "0 0 4294967295", "isolated")
    );
    let (inside, _, verdict) = check(&all, "container", "net_interfaces");
    assert_eq!((inside, verdict), ("lo", "isolated"));
    // Without a user namespace, root inside is root on the host.
    let (inside, host, verdict) = check(&no_user, "container", "uid_map");
    assert_eq!((inside, verdict), (host, "shared"));
    assert_eq!(check(&no_user, "container", "net_interfaces").2, "isolated");
    // Without a network namespace, the host's interfaces.
    let (inside, host, verdict) = check(&no_net, "container", "net_interfaces");
    assert_eq!((inside, verdict), (host, "shared"));
    assert!(host.contains("lo") && host != "lo", "{host}");
    assert_eq!(check(&no_net, "container", "uid_map").2, "isolated");
    // No namespace changes which kernel serves the calls.
    for doc in [&all, &no_user, &no_net] {
        assert_eq!(check(doc, "container", "kernel_boot_id").2, "shared");
    }
}

#[test]
fn guest_memory_costs_only_what_is_touched() {
    let _lab = exercise();
    if !can_run("2", true) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = |mib: &'static str| {
        [
            "-b",
            "microvm",
            "-s",
            "footprint",
            "--runs",
            "3",
            "--vm-memory-mib",
            mib,
        ]
    };
    let small = run(dir.path(), "m128", &args("128"));
    let large = run(dir.path(), "m1024", &args("1024"));
    let touched = |doc: &Results| median(doc, "microvm", "footprint", "guest_touched");
    assert!((touched(&small) - touched(&large)).abs() < 0.5);
    assert!(
        (63.0..66.0).contains(&touched(&large)),
        "{}",
        touched(&large)
    );
    let rss = median(&large, "microvm", "footprint", "rss");
    assert!(rss < 1024.0 / 4.0, "{rss} MiB resident of a 1024 MiB guest");
    let out = vcbench(&["compare", "m128.json", "m1024.json"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("microvm settings"), "{text}");
}

#[test]
fn five_runs_give_the_whole_range_thirty_a_narrower_interval() {
    let _lab = exercise();
    if !can_run("3", false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = |runs: &'static str| {
        [
            "-b",
            "native,container",
            "-s",
            "startup",
            "--runs",
            runs,
            "--seed",
            "1",
        ]
    };
    let five = run(dir.path(), "r5", &args("5"));
    let thirty = run(dir.path(), "r30", &args("30"));
    for backend in ["native", "container"] {
        let f = five.figure(backend, "startup", "time_to_start").unwrap();
        let ci = f.summary.ci.unwrap();
        assert_eq!((ci.low, ci.high), (f.summary.min, f.summary.max));
        assert!((ci.coverage - 0.9375).abs() < 1e-9, "{}", ci.coverage);
        let f = thirty.figure(backend, "startup", "time_to_start").unwrap();
        assert_eq!(f.kind, Kind::Distribution);
        let ci = f.summary.ci.unwrap();
        let mut sorted = f.samples.clone();
        sorted.sort_by(f64::total_cmp);
        // Ranks 10 and 21 of 30: strictly inside the range, by rank.
        assert_eq!((ci.low, ci.high), (sorted[9], sorted[20]));
        assert!(ci.coverage >= 0.95);
    }
    let out = vcbench(&["compare", "r5.json", "r30.json"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("startup plan"), "{text}");
    assert!(
        text.contains("Warning: the documents differ in startup plan"),
        "{text}"
    );
}

#[test]
fn a_guest_exits_once_per_port_write() {
    let _lab = exercise();
    if !can_run("4", true) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(
        &[
            "once", "-b", "microvm", "--json", "--", "exits", "--count", "1000",
        ],
        dir.path(),
    );
    let once: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(once["counters"]["exits_io_out"], 1002, "{once}");
    assert_eq!(once["counters"]["exits_hlt"], 1, "{once}");
}

#[test]
fn a_container_calls_the_host_kernel_a_vm_s_monitor_runs_the_guest() {
    let _lab = exercise();
    if !can_run("5", true) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let doc = run(
        dir.path(),
        "surface",
        &["-b", "container,microvm", "-s", "isolation"],
    );
    let calls = |backend: &str, workload: &str, name: &str| {
        let s = doc
            .surface
            .iter()
            .find(|s| s.backend == backend && s.workload.first().is_some_and(|w| w == workload))
            .unwrap_or_else(|| panic!("no {backend} {workload} trace"));
        let count =
            |list: &[(String, u64)]| list.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c);
        (count(&s.syscalls), count(&s.vm_exits))
    };
    let (getppid, _) = calls("container", "syscall", "getppid");
    assert_eq!(getppid, 20_000);
    let (ioctl, _) = calls("microvm", "exits", "ioctl");
    let (_, port_writes) = calls("microvm", "exits", "exits_io_out");
    assert_eq!(port_writes, 10_002);
    assert!(
        ioctl >= port_writes,
        "{ioctl} ioctl for {port_writes} exits"
    );
}

#[test]
fn only_a_sandbox_with_a_cgroup_can_hold_a_neighbour_back() {
    let _lab = exercise();
    if !can_run("6", false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let doc = run(
        dir.path(),
        "noisy",
        &[
            "-b",
            "native,container",
            "-s",
            "interference",
            "--runs",
            "3",
        ],
    );
    let metrics = |backend: &str| -> Vec<&str> {
        doc.figures
            .iter()
            .filter(|f| f.backend == backend && f.scenario == "interference")
            .map(|f| f.metric.as_str())
            .collect()
    };
    let container = metrics("container");
    let native = metrics("native");
    assert!(!native.is_empty() && !container.is_empty());
    for m in &native {
        assert!(!m.ends_with("_limited"), "{m}");
        let limited = format!("{m}_limited");
        assert!(container.contains(m), "container lacks {m}");
        assert!(
            container.contains(&limited.as_str()),
            "container lacks {limited}"
        );
    }
    assert!(
        doc.skipped.iter().any(|s| s.backend == "native"
            && s.reason.contains("no limits to hold a neighbour to")),
        "{:?}",
        doc.skipped
    );
    // Each figure is a slowdown against the victim alone.
    assert!(doc
        .figures
        .iter()
        .filter(|f| f.scenario == "interference")
        .all(|f| f.unit == "x"));
}

#[test]
fn instances_share_pages_so_pss_is_below_rss() {
    let _lab = exercise();
    if !can_run("7", true) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let doc = run(
        dir.path(),
        "density",
        &[
            "-b",
            "container,microvm",
            "-s",
            "density",
            "--instances",
            "1,5,10",
        ],
    );
    for backend in ["container", "microvm"] {
        let series = doc
            .density
            .iter()
            .find(|d| d.backend == backend)
            .unwrap_or_else(|| panic!("no {backend} series"));
        assert_eq!(series.reached, 10, "{:?}", series.stopped);
        let at_ten = &series.steps.last().unwrap().per_instance;
        assert!(
            at_ten.uss_kib <= at_ten.pss_kib && at_ten.pss_kib < at_ten.rss_kib,
            "{backend}: {at_ten:?}"
        );
    }
}
