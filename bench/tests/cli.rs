//! The `vcbench` binary end to end: real runs of the native backend, and the clear,
//! non-zero exits that bad command lines and inputs must give.

use std::process::{Command, Output};

use vcbench::results::{Results, SCHEMA_VERSION};

const VCBENCH: &str = env!("CARGO_BIN_EXE_vcbench");

fn vcbench(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(VCBENCH)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", cwd.join("cache"))
        .output()
        .expect("run vcbench")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_native_run_writes_a_valid_document_with_raw_samples() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(
        &[
            "run",
            "--backend",
            "native",
            "--scenario",
            "startup,cpu,syscall",
            "--runs",
            "3",
            "--warmup",
            "1",
            "--out",
            "r.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("time_to_start") && table.contains("results: r.json"),
        "{table}"
    );

    let results = Results::read(&dir.path().join("r.json")).unwrap();
    assert_eq!(results.schema_version, SCHEMA_VERSION);
    assert!(results.complete);
    assert!(results.failures.is_empty(), "{:?}", results.failures);
    assert_eq!(results.plan.backends, ["native"]);
    for (scenario, metric) in [
        ("startup", "time_to_start"),
        ("startup", "time_to_exit"),
        ("cpu", "throughput"),
        ("syscall", "syscall"),
    ] {
        let f = results
            .figure("native", scenario, metric)
            .unwrap_or_else(|| panic!("no {scenario}/{metric}"));
        assert_eq!(f.samples.len(), 3);
        assert_eq!(f.summary.n, 3);
        assert!(f.samples.iter().all(|s| *s > 0.0));
        assert!(f.summary.min <= f.summary.median && f.summary.median <= f.summary.max);
    }
    // Every run is recorded, warmups included, with ordered host-clock markers.
    assert_eq!(results.runs.len(), 3 * 4);
    for run in &results.runs {
        let m = &run.markers;
        let (s, r, e, g) = (
            m.started_ms.unwrap(),
            m.result_ms.unwrap(),
            m.exited_ms.unwrap(),
            m.gone_ms.unwrap(),
        );
        assert!(0.0 < s && s <= r && r <= e && e <= g, "{m:?}");
    }
    // The workload was installed into the cache, not left anywhere else.
    assert!(dir.path().join("cache/vcbench").is_dir());

    // The document reads back through `show`.
    let shown = vcbench(&["show", "r.json"], dir.path());
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("throughput"));
}

#[test]
fn report_writes_csv_one_row_per_figure_or_per_sample() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(
        &[
            "run", "-b", "native", "-s", "startup", "-r", "4", "-w", "0", "-o", "r.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    for (file, rows, header) in [
        (
            "r.csv",
            results.figures.len(),
            "backend,scenario,metric,unit,better,variant,",
        ),
        (
            "r.samples.csv",
            results.figures.iter().map(|f| f.samples.len()).sum(),
            "backend,scenario,metric,unit,variant,raw_cost,sample,value",
        ),
    ] {
        let out = vcbench(&["report", "r.json", "-o", file], dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(header), "{file}: {}", lines[0]);
        assert_eq!(lines.len(), rows + 1, "{file}: {text}");
        assert!(
            lines[1].starts_with("native,startup,"),
            "{file}: {}",
            lines[1]
        );
    }
    let out = vcbench(&["report", "r.json", "-o", "r.txt"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(".samples.csv"), "{}", stderr(&out));
    // compare, for machines: JSON and CSV.
    let out = vcbench(&["compare", "r.json", "r.json", "--json"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let compared: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &compared["figures"][0];
    assert_eq!(first["figure"], "native startup time_to_start");
    assert_eq!(first["changes"][0]["significant"], false, "{first}");
    assert_eq!(first["changes"][0]["change"], 0.0, "{first}");
    let out = vcbench(&["compare", "r.json", "r.json", "--csv"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("figure,unit,baseline,baseline_median,document,median,change"));
    assert_eq!(lines.len(), results.figures.len() + 1, "{text}");
    let out = vcbench(
        &["compare", "r.json", "r.json", "--csv", "--json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_options_for_scripts_counts_budgets_and_cpus() {
    let dir = tempfile::tempdir().unwrap();
    // --json without --out: the document on standard output, no file anywhere.
    let out = vcbench(
        &["run", "-b", "native", "-s", "startup", "-r", "3", "--json"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["plan"]["scenarios"][0]["runs"], 3);
    // (The cache, where the workload is installed, is not a result.)
    let written: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != "cache")
        .collect();
    assert!(written.is_empty(), "no file written: {written:?}");

    // -q: only the paths and what must not be missed; counts per scenario.
    let out = vcbench(
        &[
            "run",
            "-b",
            "native",
            "-s",
            "startup,syscall",
            "-r",
            "2,startup=4",
            "-w",
            "0",
            "-q",
            "-o",
            "q.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("results: q.json\n"), "{text}");
    assert!(
        text.lines().all(
            |l| ["results: ", "report: ", "goal: ", "warning: ", "skipped: "]
                .iter()
                .any(|p| l.starts_with(p))
        ),
        "{text}"
    );
    let results = Results::read(&dir.path().join("q.json")).unwrap();
    let runs: Vec<(String, u32)> = results
        .plan
        .scenarios
        .iter()
        .map(|s| (s.name.clone(), s.runs))
        .collect();
    assert_eq!(runs, [("startup".to_owned(), 4), ("syscall".to_owned(), 2)]);

    // A time budget picks the run count; the CPUs the run is held to are recorded.
    let out = vcbench(
        &[
            "run",
            "-b",
            "native",
            "-s",
            "startup",
            "--max-time",
            "1",
            "--cpus-set",
            "0",
            "-q",
            "-o",
            "m.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let results = Results::read(&dir.path().join("m.json")).unwrap();
    assert_eq!(results.plan.max_time_s, Some(1.0));
    assert_eq!(results.plan.cpus.as_deref(), Some("0"));
    let n = results
        .figure("native", "startup", "time_to_start")
        .unwrap()
        .summary
        .n;
    // Fewer than the 1000 runs a budget allows at most: the budget, not the cap, ended
    // it (with 2 s, native runs started by vfork reached the cap).
    assert!((3..1000).contains(&n), "{n} runs in 1 s");
    for bad in [
        &["--cpus-set", "5000"][..],
        &["--cpus-set", "3-1"],
        &["--max-time", "0"],
        &["-r", "startup=x"],
        &["-r", "nosuch=3"],
    ] {
        let mut args = vec!["run", "-b", "native", "-s", "startup"];
        args.extend(bad);
        let out = vcbench(&args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
}

#[test]
fn json_output_is_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(
        &[
            "run",
            "-s",
            "footprint",
            "-r",
            "1",
            "-w",
            "0",
            "--json",
            "-o",
            "f.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("f.json")).unwrap()).unwrap();
    assert_eq!(printed, written);
    let results: Results = serde_json::from_value(printed).unwrap();
    let overhead = results
        .figure("native", "footprint", "overhead_rss")
        .unwrap();
    // The workload held 64 MiB; what it costs beyond that is small and positive.
    assert!(
        overhead.summary.median > 0.0 && overhead.summary.median < 32.0,
        "{overhead:?}"
    );
}

#[test]
fn a_bad_scenario_is_rejected_with_the_valid_names() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(&["run", "--scenario", "startup,warp-speed"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("warp-speed") && err.contains("startup") && err.contains("footprint"),
        "{err}"
    );
    assert!(
        !dir.path().join("vcbench-results").exists(),
        "a rejected run left files"
    );
}

#[test]
fn a_bad_backend_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(&["run", "--backend", "mainframe"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("mainframe"));
}

#[test]
fn bad_run_counts_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for runs in ["0", "-1", "many", "1000001"] {
        let arg = format!("--runs={runs}");
        let out = vcbench(&["run", &arg], dir.path());
        assert_eq!(out.status.code(), Some(2), "--runs {runs}");
        assert!(
            stderr(&out).contains("--runs"),
            "--runs {runs}: {}",
            stderr(&out)
        );
    }
    let out = vcbench(&["run", "--timeout", "0"], dir.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unwritable_out_is_rejected_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that cannot be made (in /proc), and a directory.
    for out_path in ["/proc/nonexistent-dir/r.json", "."] {
        let out = vcbench(
            &["run", "--scenario", "startup", "--out", out_path],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(2), "--out {out_path}");
        let err = stderr(&out);
        assert!(
            err.contains("cannot write results") && err.contains(out_path),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains(".vcbench-check-"), "a temporary name: {err}");
    }
    // Nothing ran, so nothing was installed either.
    assert!(!dir.path().join("cache").exists());
}

#[test]
fn show_rejects_a_file_that_is_not_results() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not.json"), "{\"hello\": 1}").unwrap();
    std::fs::write(dir.path().join("old.json"), "{\"schema_version\": 999}").unwrap();
    for (file, says) in [
        ("not.json", "is not a vcbench results document"),
        ("old.json", "schema version 999"),
        ("missing.json", "cannot read"),
        // Reading these would never end, or is no file at all.
        ("/dev/zero", "it is not a regular file"),
        (".", "it is a directory"),
    ] {
        let out = vcbench(&["show", file], dir.path());
        assert_eq!(out.status.code(), Some(2), "{file}");
        assert!(stderr(&out).contains(says), "{file}: {}", stderr(&out));
    }
}

#[test]
fn list_and_doctor_describe_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let list = vcbench(&["list"], dir.path());
    assert!(list.status.success());
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("native") && text.contains("footprint"),
        "{text}"
    );
    // Every backend says what version it runs: this build for its own, the peer's for a
    // peer (its --version, or why it has none).
    let list = vcbench(&["list", "--json"], dir.path());
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    for b in listed["backends"].as_array().unwrap() {
        let version = b["version"].as_str().unwrap_or_default();
        match b["name"].as_str().unwrap() {
            "native" | "container" | "microvm" => assert!(version.starts_with("vcbench "), "{b}"),
            "runc" if b["available"] == true => assert!(version.contains("runc"), "{b}"),
            _ => assert!(!version.is_empty(), "{b}"),
        }
    }

    let doctor = vcbench(&["doctor", "--json"], dir.path());
    assert!(doctor.status.success());
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let flavour = report["host"]["kvm"]["flavour"].as_str().unwrap();
    assert!(["hardware", "software", "unavailable"].contains(&flavour));
    // What /sys/module says must agree with the report.
    if std::path::Path::new("/sys/module/kvm_pvm").exists()
        && std::path::Path::new("/dev/kvm").exists()
    {
        assert_eq!(flavour, "software");
        assert_eq!(report["host"]["kvm"]["module"], "kvm_pvm");
    }
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"kvm") && names.contains(&"cgroups") && names.contains(&"runc"),
        "{names:?}"
    );
}

#[test]
fn help_has_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(&["run", "--help"], dir.path());
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:"));
    // The default suite as the code has it, and the options of fair comparisons.
    assert!(help.contains("every scenario but density and"), "{help}");
    for option in ["--order", "--seed", "--baseline"] {
        assert!(help.contains(option), "{option} missing: {help}");
    }
}

#[test]
fn a_timeout_of_zero_is_refused_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(&["run", "--timeout", "0"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not a number of seconds more than 0 and at most 86400"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_committed_schema_is_current() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(&["schema"], dir.path());
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/results.schema.json"
    ))
    .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        committed.trim(),
        "docs/results.schema.json is stale: regenerate it with `vcbench schema > docs/results.schema.json`"
    );
}

/// Whether /dev/kvm can be used here; prints why not, fails under CI.
fn kvm_available() -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            let msg = format!("/dev/kvm is not usable: {e}");
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {msg}"
            );
            eprintln!("skipped: {msg}");
            false
        }
    }
}

/// Whether containers can run here (root and namespaces); prints why not, fails under CI.
fn containers_available() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let msg = "not root: the container comparison test needs cgroups";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {msg}"
    );
    eprintln!("skipped: {msg}");
    false
}

#[test]
fn native_and_container_side_by_side_with_container_phases() {
    if !containers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // User-namespaced containers must reach the image through the cache directory.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = vcbench(
        &[
            "run",
            "--backend",
            "native,container",
            "--scenario",
            "startup,syscall,footprint",
            "--runs",
            "3",
            "--warmup",
            "0",
            "--check-goals",
            "--out",
            "r.json",
        ],
        dir.path(),
    );
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    // The container's goal is judged by its interval; --check-goals fails the run (4)
    // only when all of it is beyond the goal.
    let goal = results
        .figure("container", "startup", "over_native")
        .unwrap();
    let missed = goal.verdict() == Some(reports::document::Verdict::Missed);
    assert_eq!(
        out.status.code(),
        Some(if missed { 4 } else { 0 }),
        "{:?}: {}\n{}",
        goal.verdict(),
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("container  startup") && table.contains("native     startup"),
        "{table}"
    );
    assert!(
        table.contains("\ngoals (met only when the whole 95% interval is within the goal):\n")
            && table.contains("  container startup over_native: "),
        "{table}"
    );

    for backend in ["native", "container"] {
        for (scenario, metric) in [
            ("startup", "time_to_start"),
            ("syscall", "syscall"),
            ("footprint", "rss"),
        ] {
            let f = results
                .figure(backend, scenario, metric)
                .unwrap_or_else(|| panic!("{backend} {scenario} {metric}"));
            assert_eq!(f.samples.len(), 3);
        }
    }
    // The cgroup saw the 64 MiB the workload held.
    let cgroup = results
        .figure("container", "footprint", "cgroup_memory")
        .unwrap();
    assert!(cgroup.summary.median >= 64.0, "{cgroup:?}");
    // Every container run carries its phases, in the order they happened, before the
    // workload started. The cgroup is made beside the clone, so `cloned` may come before
    // or after it; a child cloned into a v2 cgroup needs no attach.
    let unified = container::cgroup::Layout::detect()
        .unwrap()
        .instances_unified();
    let mut admitted = vec![
        "cgroup_created",
        "devices_restricted",
        "cloned",
        "idmaps_written",
        "cgroup_attached",
    ];
    if unified {
        admitted.retain(|p| *p != "cgroup_attached");
    }
    admitted.sort_unstable();
    let child = [
        "mounts_done",
        "pivot_root_done",
        "paths_masked",
        "privileges_dropped",
        "exec",
    ];
    for run in results.runs.iter().filter(|r| r.backend == "container") {
        let names: Vec<&str> = run.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"prepared"), "{run:?}");
        let split = names.len().saturating_sub(child.len());
        assert_eq!(names[split..], child, "{run:?}");
        let mut middle = names[1..split].to_vec();
        middle.sort_unstable();
        assert_eq!(middle, admitted, "{run:?}");
        assert!(run.phases.windows(2).all(|w| w[0].ms <= w[1].ms), "{run:?}");
        let exec = run.phases.last().unwrap().ms;
        assert!(exec <= run.markers.started_ms.unwrap(), "{run:?}");
        assert!(run.counters.contains_key("cgroup_cpu_usage_us"), "{run:?}");
    }
    // Nothing of the containers is left (other tests' live ones may exist meanwhile).
    assert_no_stale_cgroups();
}

#[test]
fn ctrl_c_stops_cleanly_and_keeps_what_was_measured() {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let backends = if unsafe { libc::geteuid() } == 0 {
        "native,container"
    } else {
        "native"
    };
    let child = Command::new(VCBENCH)
        .args([
            "run",
            "-b",
            backends,
            "-s",
            "startup,footprint",
            "-r",
            "100000",
            "-w",
            "0",
            "-o",
            "r.json",
        ])
        .current_dir(dir.path())
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: kill has no memory effects; the PID is our live child.
    unsafe { libc::kill(libc::pid_t::try_from(child.id()).unwrap(), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    assert!(!results.complete);
    assert!(!results.runs.is_empty());
    // No process of the run is left: nothing runs the installed workload any more.
    let workload = dir.path().join("cache");
    let procs = std::fs::read_dir("/proc").unwrap().filter_map(Result::ok);
    for p in procs {
        let exe = std::fs::read_link(p.path().join("exe")).unwrap_or_default();
        assert!(
            !exe.starts_with(&workload),
            "process {:?} still runs {}",
            p.file_name(),
            exe.display()
        );
    }
    // And no cgroup of it (containers run as /init, named in their cgroup instead).
    assert_no_stale_cgroups();
}

/// Asserts that no instance cgroup outlived the vcbench that made it (other tests'
/// vcbench processes may have live ones meanwhile).
fn assert_no_stale_cgroups() {
    let layout = container::cgroup::Layout::detect().unwrap();
    let stale = container::cleanup::find(&layout);
    assert!(stale.is_empty(), "{stale:?}");
}

#[test]
fn container_namespaces_can_be_switched_off_and_are_recorded() {
    if !containers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(
        &[
            "run",
            "-b",
            "container",
            "-s",
            "startup",
            "-r",
            "2",
            "-w",
            "0",
            "--namespaces",
            "mount,pid",
            "--seccomp",
            "off",
            "-o",
            "r.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    assert_eq!(
        results.plan.settings["container"],
        "namespaces: mount,pid; seccomp: off"
    );
    // Without the filter, no phase installs it: the privileges are the last step.
    for run in results.runs.iter().filter(|r| r.ok) {
        let names: Vec<&str> = run.phases.iter().map(|p| p.name.as_str()).collect();
        assert!(names.contains(&"privileges_dropped"), "{names:?}");
    }
    // Without a user namespace there are no ID maps to write.
    for run in &results.runs {
        assert!(
            run.phases.iter().all(|p| p.name != "idmaps_written"),
            "{run:?}"
        );
    }
}

#[test]
fn microvm_startup_footprint_and_exits() {
    if !kvm_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(
        &[
            "run",
            "-b",
            "native,microvm",
            "-s",
            "startup,footprint,exits",
            "-r",
            "3",
            "-w",
            "0",
            "-o",
            "r.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("skipped: native exits"), "{table}");
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    let start = results
        .figure("microvm", "startup", "time_to_start")
        .unwrap();
    assert_eq!(start.samples.len(), 3);
    let exit = results
        .figure("microvm", "exits", "exit_round_trip")
        .unwrap();
    assert!(exit.summary.median > 0.0);
    let touched = results
        .figure("microvm", "footprint", "guest_touched")
        .unwrap();
    assert!(
        (64.0..65.0).contains(&touched.summary.median),
        "{touched:?}"
    );
    let overhead = results
        .figure("microvm", "footprint", "monitor_overhead")
        .unwrap();
    assert!(
        overhead.summary.median > 0.0 && overhead.summary.median < 16.0,
        "{overhead:?}"
    );
    for run in results.runs.iter().filter(|r| r.backend == "microvm") {
        let names: Vec<&str> = run.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "vm_created",
                "memory_registered",
                "vcpus_created",
                "payload_loaded",
                "first_marker",
                "halted",
                "torn_down"
            ],
            "{run:?}"
        );
        assert_eq!(run.counters["exits_hlt"], 1, "{run:?}");
    }
    if results.host.kvm.flavour == "software" {
        assert!(table.contains("emulation figures"), "{table}");
    }
}

#[test]
fn warm_starts_restore_a_micro_guest_snapshot_and_leave_nothing_behind() {
    if !kvm_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(
        &[
            "run",
            "-b",
            "native,microvm",
            "-s",
            "startup,warm",
            "-r",
            "3",
            "-w",
            "0",
            "-o",
            "r.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("skipped: native warm: it has no warm start"),
        "{table}"
    );
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    let warm = results.figure("microvm", "warm", "warm_start").unwrap();
    assert_eq!(warm.samples.len(), 3);
    assert!(
        warm.variant.contains("restored from its snapshot"),
        "{}",
        warm.variant
    );
    for run in results
        .runs
        .iter()
        .filter(|r| r.backend == "microvm" && r.scenario == "warm")
    {
        let names: Vec<&str> = run.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "snapshot_read",
                "vm_created",
                "memory_registered",
                "state_restored",
                "first_marker",
                "halted",
                "torn_down"
            ],
            "{run:?}"
        );
    }
    // The snapshot went with the run.
    let prefix = "vcbench-run";
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.contains("-snapshot-"))
        .filter(|n| {
            // Only this run's: its pid is in the name, and it is gone.
            n.trim_start_matches(prefix)
                .split('-')
                .next()
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        })
        .collect();
    assert!(left.is_empty(), "snapshots left behind: {left:?}");
}

/// Asserts that no process runs a binary from `cache` (the run's installed workload and
/// monitor): everything a run started is gone.
fn assert_no_process_runs_from(cache: &std::path::Path) {
    for p in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let exe = std::fs::read_link(p.path().join("exe")).unwrap_or_default();
        assert!(
            !exe.starts_with(cache),
            "process {:?} still runs {}",
            p.file_name(),
            exe.display()
        );
    }
}

#[test]
fn density_holds_every_instance_alive_and_leaves_nothing_behind() {
    let mut backends = vec!["native"];
    if containers_available() {
        backends.push("container");
    }
    if kvm_available() {
        backends.push("microvm");
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = vcbench(
        &[
            "run",
            "-b",
            &backends.join(","),
            "-s",
            "density",
            "--instances",
            "1,5,20",
            "--parallel",
            "4",
            "--hold-mib",
            "2",
            "-o",
            "r.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("density, native: 20 alive at most"),
        "{table}"
    );
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    assert_eq!(results.density.len(), backends.len());
    for series in &results.density {
        assert_eq!(series.reached, 20, "{series:?}");
        assert_eq!(series.stopped, None);
        let counts: Vec<u32> = series.steps.iter().map(|s| s.instances).collect();
        assert_eq!(counts, [1, 5, 20]);
        let started: usize = series.steps.iter().map(|s| s.start_ms.len()).sum();
        assert_eq!(started, 20, "one start latency per instance");
        // Each instance holds the 2 MiB it touched, so none weighs less than that.
        let last = series.steps.last().unwrap();
        assert!(
            last.per_instance.rss_kib >= 2 * 1024,
            "{}: {:?}",
            series.backend,
            last.per_instance
        );
        assert!(last.host.available_kib > 0 && last.host.slab_kib > 0);
        for metric in [
            "start_latency",
            "pss_per_instance",
            "marginal_pss",
            "instances_reached",
        ] {
            assert!(
                results.figure(&series.backend, "density", metric).is_some(),
                "{}: no {metric} figure",
                series.backend
            );
        }
    }
    assert_no_process_runs_from(&dir.path().join("cache"));
    assert_no_stale_cgroups();
}

#[test]
fn the_density_governor_stops_at_a_floor_above_what_the_host_has() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(
        &[
            "run",
            "-b",
            "native",
            "-s",
            "density",
            "--instances",
            "1,5",
            "--memory-floor-mib",
            "1000000000",
            "-o",
            "r.json",
        ],
        dir.path(),
    );
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    let series = &results.density[0];
    assert_eq!(series.reached, 0);
    assert!(series.steps.is_empty());
    let stopped = series.stopped.as_deref().unwrap_or_default();
    assert!(
        stopped.starts_with("stopped at 0: memory floor"),
        "{stopped}"
    );
    assert!(!series.failed, "the floor is a limit, not a failure");
    assert!(results.failures.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("memory floor"),
        "the table says why it stopped"
    );
    assert_no_process_runs_from(&dir.path().join("cache"));
}

#[test]
fn density_counts_must_rise() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(&["run", "-s", "density", "--instances", "10,5"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--instances 10,5"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_isolation_matrix_judges_each_backend_against_the_host() {
    let mut backends = vec!["native"];
    if containers_available() {
        backends.push("container");
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = vcbench(
        &[
            "run",
            "-b",
            &format!("{},microvm", backends.join(",")),
            "-s",
            "isolation",
            "-o",
            "r.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("isolation (against the same probe run on the host)"));
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    let verdict = |backend: &str, check: &str| {
        results
            .isolation
            .iter()
            .find(|m| m.backend == backend)
            .and_then(|m| m.rows.iter().find(|r| r.check == check))
            .map(|r| r.verdict.clone())
            .unwrap_or_else(|| panic!("no {check} row for {backend}"))
    };
    // The host against itself: nothing is isolated; what the host cannot do either
    // (load a module where the kernel has none) is untested, never isolated.
    let native = results
        .isolation
        .iter()
        .find(|m| m.backend == "native")
        .unwrap();
    assert!(
        native
            .rows
            .iter()
            .all(|r| r.verdict == "shared" || r.verdict == "untested"),
        "{:?}",
        native.rows
    );
    assert!(native.rows.iter().any(|r| r.verdict == "shared"));
    if backends.contains(&"container") {
        assert_eq!(verdict("container", "kernel_boot_id"), "shared");
        for check in [
            "ns_pid",
            "ns_net",
            "ns_mnt",
            "host_paths",
            "visible_processes",
            "can_set_time",
        ] {
            assert_eq!(verdict("container", check), "isolated", "{check}");
        }
    }
    // Micro guests have no kernel to probe: said, not silently dropped.
    assert!(results
        .skipped
        .iter()
        .any(|s| s.backend == "microvm" && s.scenario.as_deref() == Some("isolation (probe)")));
    // The host surface, traced with ftrace where the run is root.
    if backends.contains(&"container") {
        let traced = |backend: &str, workload: &str| {
            results
                .surface
                .iter()
                .find(|s| s.backend == backend && s.workload[0] == workload)
                .unwrap_or_else(|| panic!("no {backend} {workload} surface: {:?}", results.skipped))
        };
        let count = |s: &vcbench::surface::Surface, name: &str| {
            s.syscalls
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, c)| *c)
        };
        for backend in ["native", "container"] {
            let s = traced(backend, "syscall");
            assert!(count(s, "getppid") >= 20_000, "{s:?}");
            assert!(s.distinct_syscalls > 5 && s.lost_events == 0, "{s:?}");
        }
        if let Some(vm) = results
            .surface
            .iter()
            .find(|s| s.backend == "microvm" && s.workload[0] == "exits")
        {
            assert!(count(vm, "ioctl") >= 10_000, "one KVM_RUN per exit: {vm:?}");
            assert!(vm
                .vm_exits
                .iter()
                .any(|(k, n)| k == "exits_io_out" && *n >= 10_000));
        }
        let instances = std::path::Path::new("/sys/kernel/tracing/instances");
        if let Ok(dirs) = std::fs::read_dir(instances) {
            let ours: Vec<_> = dirs
                .flatten()
                .filter(|d| d.file_name().to_string_lossy().starts_with("vcbench-"))
                .collect();
            assert!(ours.is_empty(), "ftrace instances left: {ours:?}");
        }
    }
}

#[test]
fn interference_measures_each_victim_beside_a_neighbour_and_stops_it() {
    let mut backends = vec!["native"];
    if containers_available() {
        backends.push("container");
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = vcbench(
        &[
            "run",
            "-b",
            &backends.join(","),
            "-s",
            "interference",
            "--runs",
            "2",
            "-o",
            "r.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    for metric in [
        "cpu_throughput_beside_cpu_spin",
        "mem_copy_beside_memory_bandwidth",
        "syscall_syscall_beside_fork_storm",
        "file_fsync_writes_beside_file_churn",
    ] {
        let f = results
            .figure("native", "interference", metric)
            .unwrap_or_else(|| panic!("no native {metric}"));
        assert!(f.samples.iter().all(|s| *s > 0.0), "{f:?}");
        if backends.contains(&"container") {
            let limited = format!("{metric}_limited");
            assert!(
                results
                    .figure("container", "interference", &limited)
                    .is_some(),
                "no container {limited}"
            );
        }
    }
    assert!(results.skipped.iter().any(|s| s.backend == "native"
        && s.scenario.as_deref() == Some("interference (limited neighbour)")));
    // Every neighbour was stopped, and its scratch files went with it.
    assert_no_process_runs_from(&dir.path().join("cache"));
    assert_no_stale_cgroups();
}

/// Whether `tool` runs here; prints why not, fails under CI (which installs it).
fn peer_available(tool: &str) -> bool {
    match vcbench::host::tool_version(tool) {
        Ok(_) => true,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {why}"
            );
            eprintln!("skipped: {why}");
            false
        }
    }
}

#[test]
fn runc_and_crun_run_the_same_workload_from_a_generated_bundle_and_leave_nothing() {
    if !containers_available() || !peer_available("runc") || !peer_available("crun") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The runtimes validate the generated config.json as they run it: a record back from
    // the workload means the bundle was accepted.
    let out = vcbench(
        &[
            "run",
            "-b",
            "runc,crun",
            "-s",
            "startup,footprint",
            "-r",
            "3",
            "-w",
            "0",
            "--crun-hide-unified-cgroup",
            "-o",
            "r.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    for runtime in ["runc", "crun"] {
        let start = results
            .figure(runtime, "startup", "time_to_start")
            .unwrap_or_else(|| panic!("no {runtime} startup: {:?}", results.failures));
        assert_eq!(start.samples.len(), 3);
        assert!(results.figure(runtime, "footprint", "rss").is_some());
        assert!(
            results.host.peers.contains_key(runtime),
            "{:?}",
            results.host.peers
        );
        assert!(results.plan.settings[runtime].contains("namespaces: "));
        // No container of the run is left in the runtime's list.
        let list = Command::new(runtime).args(["list", "-q"]).output().unwrap();
        let ids = String::from_utf8_lossy(&list.stdout);
        assert!(!ids.contains("vcbench-"), "{runtime} still lists {ids}");
    }
    assert_no_process_runs_from(&dir.path().join("cache"));
    assert_no_stale_cgroups();
}

#[test]
fn qemu_runs_the_same_micro_guest_with_its_markers_and_no_unlike_footprint() {
    if !peer_available("qemu-system-x86_64") {
        return;
    }
    if !kvm_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(
        &[
            "run",
            "-b",
            "qemu",
            "-s",
            "startup,footprint",
            "-r",
            "2",
            "-w",
            "0",
            "-o",
            "r.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    let start = results.figure("qemu", "startup", "time_to_start").unwrap();
    assert_eq!(start.samples.len(), 2);
    // A micro guest's startup is a raw hypervisor cost, set against nothing.
    assert!(start.raw_cost && start.vs_baseline.is_none());
    // QEMU cannot run the microvm's footprint guest: no unlike figure, and the reason.
    assert!(results.figure("qemu", "footprint", "rss").is_none());
    let skip = results
        .skipped
        .iter()
        .find(|s| s.backend == "qemu" && s.scenario.as_deref() == Some("footprint"))
        .unwrap();
    assert!(skip.reason.contains("real mode"), "{}", skip.reason);
    assert!(results.host.peers.contains_key("qemu-system-x86_64"));
    let left = Command::new("pgrep")
        .args(["-f", "vcbench-qemu-"])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "QEMU still runs");
}

/// An x86-64 `ET_EXEC` ELF whose one loadable segment needs 1 MiB of file, cut at 4 KiB.
fn truncated_vmlinux() -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[..6].copy_from_slice(b"\x7fELF\x02\x01");
    b[0x10..0x12].copy_from_slice(&2u16.to_le_bytes());
    b[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
    b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    b[64..68].copy_from_slice(&1u32.to_le_bytes());
    b[72..80].copy_from_slice(&0x1000u64.to_le_bytes());
    b[96..104].copy_from_slice(&0x10_0000u64.to_le_bytes());
    b
}

#[test]
fn a_truncated_or_non_kernel_file_given_as_kernel_is_a_clear_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("vmlinux");
    std::fs::write(&truncated, truncated_vmlinux()).unwrap();
    let script = dir.path().join("notes.txt");
    std::fs::write(&script, "not a kernel\n").unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    // Bytes that are nothing in particular (a fixed pattern, so the test repeats).
    let random = dir.path().join("random");
    let noise: Vec<u8> = (0u32..65_536)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::fs::write(&random, noise).unwrap();
    let program = std::env::current_exe().unwrap();
    for (file, expected) in [
        (
            std::path::Path::new("/dev/zero"),
            "is not a file but a character device",
        ),
        (dir.path(), "is not a file but a directory"),
        (empty.as_path(), "is empty"),
        (random.as_path(), "is not a Linux kernel"),
        (
            truncated.as_path(),
            "is truncated: its headers need 1052672 bytes, the file has 4096",
        ),
        (
            script.as_path(),
            "is not a Linux kernel: neither an ELF vmlinux",
        ),
        (
            program.as_path(),
            "is not a Linux kernel: an ELF file, but a program or library",
        ),
        (&dir.path().join("missing"), "cannot read the kernel"),
    ] {
        let out = vcbench(
            &[
                "run",
                "-b",
                "microvm",
                "--kernel",
                file.to_str().unwrap(),
                "-o",
                "r.json",
            ],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("--kernel"), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains(expected), "{expected:?} not in {err}");
        assert!(!dir.path().join("r.json").exists(), "nothing was run");
    }
}

#[test]
fn guest_sizes_the_host_cannot_give_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (["--vm-memory-mib", "0"], "0 is not in 2..=65536"),
        (["--vm-memory-mib", "65536"], "more than this host's memory"),
        (["--vm-vcpus", "0"], "0 is not in 1..=254"),
    ] {
        let out = vcbench(
            &[&["run", "-b", "microvm", "-o", "r.json"], &args[..]].concat(),
            dir.path(),
        );
        // A host with 64 GiB or more has room for the second; it is then not refused.
        if args[1] == "65536" && out.status.code() != Some(2) {
            let total = vcbench::host::meminfo_kib("MemTotal").unwrap_or(0);
            assert!(total / 1024 >= 65_536, "{}", stderr(&out));
            continue;
        }
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
        assert!(!dir.path().join("r.json").exists(), "nothing was run");
    }
    if let Some(max) = microvm::host::max_vcpus().filter(|m| *m < 254) {
        let over = (max + 1).to_string();
        let out = vcbench(
            &["run", "-b", "microvm", "--vm-vcpus", &over, "-o", "r.json"],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("more than this host's KVM allows ({max})")),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn the_monitor_refuses_a_bad_kernel_before_building_a_vm() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("vmlinux");
    std::fs::write(&truncated, truncated_vmlinux()).unwrap();
    let vmm = images::image::install_vmm(&dir.path().join("cache")).unwrap();
    let out = Command::new(vmm)
        .args(["linux", "--kernel", truncated.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no report for a VM never built");
    let err = stderr(&out);
    assert!(
        err.contains("truncated") && err.contains("vmlinux"),
        "{err}"
    );
    let out = Command::new(images::image::install_vmm(&dir.path().join("cache")).unwrap())
        .args(["linux"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--kernel"));
}

/// Runs this build's vcbench as the unprivileged user `nobody` (uid 65534, no groups) in
/// `dir`, which it can write.
fn vcbench_as_nobody(args: &[&str], dir: &std::path::Path) -> Output {
    let copy = dir.join("vcbench");
    if !copy.exists() {
        std::fs::copy(VCBENCH, &copy).unwrap();
    }
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&copy)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("NO_COLOR", "1")
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .output()
        .expect("run setpriv")
}

#[test]
fn without_root_or_kvm_access_it_says_what_is_missing_and_runs_what_it_can() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !root || !setpriv {
        let msg = "needs root and setpriv(1) to run as another user";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {msg}"
        );
        eprintln!("skipped: {msg}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // Whether nobody may open /dev/kvm: only where the device is open to everyone.
    let kvm_mode = std::fs::metadata("/dev/kvm").map_or(0, |m| m.permissions().mode());
    let kvm_for_all = kvm_mode & 0o006 == 0o006;

    let out = vcbench_as_nobody(&["doctor"], dir.path());
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(said.contains("privileges"), "{said}");
    assert!(said.contains("not root"), "{said}");
    if !kvm_for_all {
        // The device's owner, group and mode, and the exact fix for this user.
        assert!(said.contains("/dev/kvm is "), "{said}");
        assert!(said.contains("usermod -aG"), "{said}");
        assert!(said.contains("nobody"), "{said}");
    }

    let out = vcbench_as_nobody(
        &[
            "run",
            "-b",
            "native,microvm,runc",
            "-s",
            "startup",
            "-r",
            "2",
            "-w",
            "0",
            "-o",
            "r.json",
        ],
        dir.path(),
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    // What it can do, it did: native ran as this user.
    assert!(results
        .figure("native", "startup", "time_to_start")
        .is_some());
    // What it cannot, it names with the reason.
    assert!(
        said.contains("skipped: runc: runc needs root") || said.contains("skipped: runc: runc not"),
        "{said}"
    );
    if !kvm_for_all {
        assert!(said.contains("skipped: microvm: /dev/kvm is "), "{said}");
    }
}

#[test]
fn once_runs_one_instance_and_reports_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(
        &["once", "--json", "--", "syscall", "--count", "1000"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["backend"], "native");
    assert!(value["failure"].is_null(), "{value:#}");
    assert!(
        value["markers"]["started_ms"].as_f64().is_some(),
        "{value:#}"
    );
    assert!(value["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "ns_per_call"));

    // A failing run: exit 3, and the reason on the outcome line.
    let out = vcbench(&["once", "--", "fault", "--kind", "exit"], dir.path());
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("outcome   failed: exited with status 3"),
        "{text}"
    );
    // A backend that is not one is a usage error.
    let out = vcbench(&["once", "-b", "nope"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // A workload that holds its memory is released after its result, not left to the
    // time limit.
    let out = vcbench(
        &["once", "--timeout", "30", "--", "alloc", "--mib", "8"],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("outcome   ok"), "{text}");

    // The workload's own help, as text (it is not a record).
    let out = vcbench(&["once", "--", "--help"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.starts_with("usage: workload"), "{text}");
}

#[test]
fn a_closed_standard_output_is_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["schema"][..], &["list"][..], &["once"][..]] {
        let mut child = Command::new(VCBENCH)
            .args(args)
            .current_dir(dir.path())
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end at once, as `| head -0` would.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn without_a_guest_kernel_the_skip_says_what_would_help_here() {
    let dir = tempfile::tempdir().unwrap();
    // A fresh cache: no kernel was built.
    let out = vcbench(
        &[
            "run", "-b", "microvm", "-s", "cpu", "-r", "1", "-w", "0", "-o", "r.json",
        ],
        dir.path(),
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    let software = std::path::Path::new("/sys/module/kvm_pvm").exists();
    if software {
        // Building a kernel would not help: no Linux guest boots on software KVM.
        assert!(said.contains("only micro guests run here"), "{said}");
        assert!(!said.contains("vcbench kernel build"), "{said}");
    } else {
        assert!(
            said.contains("vcbench kernel build") || !said.contains("skipped: microvm"),
            "{said}"
        );
    }
}

#[test]
fn once_refuses_a_kernel_this_host_cannot_boot_instead_of_running_a_micro_guest() {
    let software = std::path::Path::new("/sys/module/kvm_pvm").exists();
    let kernel = std::fs::read_dir("/boot").ok().and_then(|d| {
        d.filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("vmlinuz-"))
    });
    let (true, Some(kernel)) = (software, kernel) else {
        eprintln!("skipped: needs a software KVM and a kernel in /boot");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kernel = kernel.to_string_lossy().into_owned();
    let out = vcbench(
        &["once", "-b", "microvm", "--kernel", &kernel, "--", "hello"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot boot --kernel"),
        "{}",
        stderr(&out)
    );
}
