//! Every workload subcommand, run as a plain process, writes its `started` record first
//! and a `result` record with its figures, on the channel the host chose.

use std::process::{Command, Output, Stdio};

use workload::record::{parse_line, Record};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

fn run(args: &[&str], channel: &str) -> Output {
    Command::new(WORKLOAD)
        .args(args)
        .env("VCBENCH_CHANNEL", channel)
        .stdin(Stdio::null())
        .output()
        .expect("run the workload")
}

/// Runs a workload, checks its records, and returns the result's metrics by name.
fn metrics_of(args: &[&str]) -> Vec<(String, f64, String)> {
    let out = run(args, "stdout");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let records: Vec<Record> = text
        .lines()
        .filter_map(|l| parse_line(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{args:?} wrote {text}");
    match &records[0] {
        Record::Started {
            workload,
            pid,
            pid1,
        } => {
            assert_eq!(workload, args[0]);
            assert!(*pid > 1 && !pid1);
        }
        other => panic!("first record of {args:?} is {other:?}"),
    }
    match &records[1] {
        Record::Result {
            workload, metrics, ..
        } => {
            assert_eq!(workload, args[0]);
            metrics
                .iter()
                .map(|m| (m.name.clone(), m.value, m.unit.clone()))
                .collect()
        }
        other => panic!("second record of {args:?} is {other:?}"),
    }
}

fn value(metrics: &[(String, f64, String)], name: &str) -> f64 {
    metrics
        .iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no metric {name} in {metrics:?}"))
        .1
}

#[test]
fn hello_reports_the_cpus_it_sees_and_its_peak_memory() {
    let m = metrics_of(&["hello"]);
    assert!(value(&m, "vm_hwm_kib") > 0.0);
    let online = std::thread::available_parallelism().map_or(0, usize::from);
    assert!(value(&m, "cpus_online") >= 1.0);
    assert!(value(&m, "cpus_online") >= online as f64);
    assert_eq!(m.len(), 2);
}

#[test]
fn cpu_reports_a_throughput() {
    let m = metrics_of(&["cpu", "--mib", "2"]);
    assert!(value(&m, "throughput") > 0.0);
    assert!(value(&m, "seconds") > 0.0);
}

#[test]
fn mem_reports_the_four_stream_kernels() {
    let m = metrics_of(&["mem", "--mib", "2", "--iterations", "2"]);
    for kernel in ["copy", "scale", "add", "triad"] {
        assert!(value(&m, kernel) > 0.0, "{kernel}");
    }
}

#[test]
fn syscall_reports_time_per_call() {
    let m = metrics_of(&["syscall", "--count", "1000"]);
    assert!(value(&m, "ns_per_call") > 0.0);
}

#[test]
fn fork_reports_time_per_process() {
    let m = metrics_of(&["fork", "--count", "5"]);
    assert!(value(&m, "us_per_process") > 0.0);
}

#[test]
fn file_writes_and_cleans_up_its_scratch_directory() {
    let dir = tempfile::tempdir().unwrap();
    let m = metrics_of(&[
        "file",
        "--count",
        "5",
        "--size",
        "100",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(value(&m, "files_per_s") > 0.0);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "scratch left behind"
    );
}

#[test]
fn file_in_a_missing_directory_is_an_error_record() {
    let out = run(&["file", "--dir", "/nonexistent/vcbench"], "stdout");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text
        .lines()
        .filter_map(|l| parse_line(l).unwrap())
        .next_back()
        .unwrap();
    assert!(
        matches!(last, Record::Error { message, .. } if message.contains("/nonexistent/vcbench"))
    );
}

#[test]
fn net_reports_a_round_trip_time() {
    let m = metrics_of(&["net", "--count", "100"]);
    assert!(value(&m, "rtt_us") > 0.0);
}

#[test]
fn alloc_touches_its_memory_and_holds_it_for_the_hold_time() {
    let m = metrics_of(&["alloc", "--mib", "8", "--hold-ms", "10"]);
    assert_eq!(value(&m, "touched_mib"), 8.0);
    // The pages were touched, so the resident set covers them.
    assert!(value(&m, "self_rss_kib") >= 8.0 * 1024.0);
}

#[test]
fn alloc_holds_until_signalled() {
    let mut child = Command::new(WORKLOAD)
        .args(["alloc", "--mib", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        if matches!(parse_line(&line).unwrap(), Some(Record::Result { .. })) {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(child.try_wait().unwrap().is_none(), "alloc did not hold");
    // SAFETY: kill has no memory effects; the PID is our live child.
    unsafe { libc::kill(libc::pid_t::try_from(child.id()).unwrap(), libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn records_go_to_the_chosen_channel() {
    // fd:2 is standard error: nothing on standard output.
    let out = run(&["hello"], "fd:2");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("@vcbench {\"record\":\"started\""));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records");
    std::fs::write(&file, "").unwrap();
    let out = run(&["hello"], &format!("path:{}", file.display()));
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 2);
}

#[test]
fn a_bad_channel_or_command_line_is_a_usage_error() {
    for (args, channel) in [
        (&["hello"][..], "fd:99"),
        (&["hello"], "carrier-pigeon"),
        (&["nope"], "stdout"),
        (&["cpu", "--mib", "x"], "stdout"),
    ] {
        let out = run(args, channel);
        assert_eq!(out.status.code(), Some(2), "{args:?} {channel}");
        assert!(!out.stderr.is_empty());
    }
}
