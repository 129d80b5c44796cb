//! `workload exec`: the user's program run, supervised and reported: its readiness as a
//! result record, its failures (not found, ended before ready, a bad status) as error
//! records with its last output, and its output never taken for a record.

use std::process::{Command, Stdio};

use workload::record::{parse_line, Record};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

/// Runs `workload exec ARGS`; returns its records, its standard error and its status.
fn exec(args: &[&str]) -> (Vec<Record>, String, i32) {
    let out = Command::new(WORKLOAD)
        .arg("exec")
        .args(args)
        .env("VCBENCH_CHANNEL", "stdout")
        .stdin(Stdio::null())
        .output()
        .expect("run the workload");
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| parse_line(l).expect("a well-formed record"))
        .collect();
    (
        records,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn error_of(records: &[Record]) -> String {
    match records.last() {
        Some(Record::Error { message, .. }) => message.clone(),
        other => panic!("no error record: {other:?}"),
    }
}

fn ready_ms(records: &[Record]) -> f64 {
    assert!(
        matches!(records.first(), Some(Record::Started { workload, .. }) if workload == "exec")
    );
    match records.last() {
        Some(Record::Result { metrics, .. }) => {
            metrics
                .iter()
                .find(|m| m.name == "ready_ms")
                .expect("ready_ms")
                .value
        }
        other => panic!("no result record: {other:?}"),
    }
}

#[test]
fn a_command_that_exits_is_ready_at_its_exit() {
    let (records, _, status) = exec(&["--", "sh", "-c", "echo @vcbench {\"record\":\"error\"}"]);
    assert_eq!(status, 0);
    assert_eq!(
        records.len(),
        2,
        "the program's line passed for a record: {records:?}"
    );
    assert!(ready_ms(&records) > 0.0);
    // The program's own peak memory, once it has been reaped.
    let Some(Record::Result { metrics, .. }) = records.last() else {
        panic!("no result: {records:?}");
    };
    assert!(
        metrics
            .iter()
            .any(|m| m.name == "vm_hwm_kib" && m.value > 0.0),
        "{metrics:?}"
    );
}

#[test]
fn a_missing_program_is_named() {
    let (records, _, status) = exec(&["--", "no-such-program-here"]);
    assert_eq!(status, 127);
    let message = error_of(&records);
    assert!(
        message.contains("cannot run \"no-such-program-here\""),
        "{message}"
    );
}

#[test]
fn a_failing_command_says_its_status_and_last_output() {
    let (records, stderr, status) = exec(&["--", "sh", "-c", "echo one; echo two >&2; exit 3"]);
    assert_eq!(status, 3);
    let message = error_of(&records);
    assert!(message.contains("exited with status 3"), "{message}");
    assert!(
        message.contains("one") && message.contains("two"),
        "{message}"
    );
    assert!(stderr.contains("one"), "the output is relayed: {stderr}");
}

#[test]
fn a_line_of_output_makes_a_service_ready_and_it_is_stopped() {
    let started = std::time::Instant::now();
    let (records, _, status) = exec(&[
        "--ready",
        "output:^listening on [0-9]+$",
        "--",
        "sh",
        "-c",
        "echo warming; sleep 0.2; echo listening on 80; exec sleep 60",
    ]);
    assert_eq!(status, 0);
    assert!(ready_ms(&records) >= 200.0);
    assert!(
        started.elapsed().as_secs() < 30,
        "the service was not stopped"
    );
}

#[test]
fn a_port_that_opens_makes_a_service_ready() {
    if Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 is missing"
        );
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let script = format!(
        "import socket,time; time.sleep(0.1); s=socket.socket(); \
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1',{port})); \
         s.listen(); time.sleep(60)"
    );
    let (records, _, status) = exec(&[
        "--ready",
        &format!("tcp:{port}"),
        "--",
        "python3",
        "-c",
        &script,
    ]);
    assert_eq!(status, 0, "{records:?}");
    assert!(ready_ms(&records) >= 100.0);
}

#[test]
fn a_service_that_ends_before_it_is_ready_fails_with_its_output() {
    let (records, _, status) = exec(&["--ready", "tcp:1", "--", "sh", "-c", "echo no port today"]);
    assert_ne!(status, 0);
    let message = error_of(&records);
    assert!(message.contains("before it was ready (tcp:1)"), "{message}");
    assert!(message.contains("no port today"), "{message}");
}

#[test]
fn the_root_is_the_programs_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "needs root");
        eprintln!("skipped: chroot needs root");
        return;
    }
    let busybox = std::path::Path::new("/bin/busybox");
    if !busybox.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "busybox-static is missing"
        );
        eprintln!("skipped: /bin/busybox (busybox-static) is not installed");
        return;
    }
    // A root with one static program.
    let root = tempfile::tempdir().unwrap();
    // Copied by cp: a copy this process held open for writing while another test's thread
    // forked could not be executed (ETXTBSY) until that child exec'd.
    let copied = Command::new("cp")
        .arg(busybox)
        .arg(root.path().join("true"))
        .status()
        .unwrap();
    assert!(copied.success());
    let dir = root.path().to_str().unwrap();
    let (records, _, status) = exec(&["--root", dir, "--workdir", "/", "--", "/true"]);
    assert_eq!(status, 0, "{records:?}");
    let (records, _, status) = exec(&["--root", dir, "--", "sh", "-c", "true"]);
    assert_eq!(status, 127);
    let message = error_of(&records);
    assert!(
        message.contains(&format!("in the image {dir}")),
        "{message}"
    );
}

#[test]
fn a_held_service_runs_until_it_is_released() {
    use std::io::BufRead;
    let mut child = Command::new(WORKLOAD)
        .args(["exec", "--hold", "--ready", "output:^up$", "--"])
        .args(["sh", "-c", "echo up; exec sleep 60"])
        .env("VCBENCH_CHANNEL", "stdout")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the workload");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let result = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| match parse_line(&l).unwrap() {
            Some(r @ Record::Result { .. }) => Some(r),
            _ => None,
        });
    assert!(result.is_some(), "no result record");
    // Ready, and still serving: held until released.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the held service ended by itself"
    );
    let released = std::time::Instant::now();
    // SAFETY: kill with the PID of this test's own child.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(released.elapsed().as_secs() < 10);
}
