//! The workload as PID 1 of a new PID namespace: it supervises its work in a child,
//! passes the exit status on, reaps what the work leaves behind, and forwards signals.
//! Needs root (or `unshare`); skipped with a reason otherwise, failed under CI=true.

use std::process::{Command, Stdio};

use workload::record::{parse_line, Record};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

/// Whether `unshare --pid --fork --mount-proc` works here; prints why not when it does not.
fn can_unshare() -> bool {
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = "cannot create a PID namespace with `unshare --pid --fork --mount-proc` (needs root and util-linux)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {msg}"
        );
        eprintln!("skipped: {msg}");
    }
    ok
}

fn as_pid1(args: &[&str]) -> (Option<i32>, Vec<Record>) {
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", WORKLOAD])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let records = text
        .lines()
        .filter_map(|l| parse_line(l).unwrap())
        .collect();
    (out.status.code(), records)
}

#[test]
fn runs_as_pid1_and_reports_it() {
    if !can_unshare() {
        return;
    }
    let (code, records) = as_pid1(&["fork", "--count", "20"]);
    assert_eq!(code, Some(0));
    assert!(
        matches!(
            &records[0],
            Record::Started {
                pid: 1,
                pid1: true,
                ..
            }
        ),
        "{records:?}"
    );
    assert!(matches!(&records[1], Record::Result { .. }), "{records:?}");
}

#[test]
fn passes_on_the_work_exit_status() {
    if !can_unshare() {
        return;
    }
    let (code, records) = as_pid1(&["file", "--dir", "/nonexistent/vcbench"]);
    assert_eq!(code, Some(1));
    assert!(matches!(records.last(), Some(Record::Error { .. })));
}

#[test]
fn forwards_termination_to_the_work() {
    if !can_unshare() {
        return;
    }
    let mut child = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--kill-child=SIGKILL",
            "--mount-proc",
            WORKLOAD,
            "alloc",
            "--mib",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0,
            "no result"
        );
        if matches!(parse_line(&line).unwrap(), Some(Record::Result { .. })) {
            break;
        }
    }
    // unshare ignores SIGTERM while it waits, so signal its child, our PID 1, directly:
    // PID 1 forwards it to the work, the hold ends, and everything exits cleanly.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap();
    let init: libc::pid_t = children.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: kill has no memory effects; the PID is our live grandchild.
    unsafe { libc::kill(init, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
