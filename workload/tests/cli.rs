//! The command line as the program answers it: help on standard output with status 0, a
//! bad line named on standard error with status 2 and no record written.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output, Stdio};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

fn run<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(WORKLOAD)
        .args(args)
        .env("VCBENCH_CHANNEL", "stdout")
        .stdin(Stdio::null())
        .output()
        .expect("run the workload")
}

#[test]
fn help_is_printed_and_is_not_a_failure() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["cpu", "--help"],
        &["fault", "-h"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with("usage: workload"), "{args:?}: {text}");
        assert!(text.contains("--hold-ms N"), "{args:?}: {text}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn a_bad_line_is_named_with_status_2_and_no_record() {
    for (args, says) in [
        (&["hello", "--bogus"][..], "takes no option \"--bogus\""),
        (&["hello", "extra"], "takes no argument \"extra\""),
        (&["cpu", "--mib"], "option --mib needs a value"),
        (
            &["cpu", "--mib", "zero"],
            "--mib must be a positive whole number",
        ),
        (
            &["net", "--size", "4294967296"],
            "--size must be at most 1073741824",
        ),
        (&["fault", "--kind", "boom"], "--kind must be one of"),
        (&["nope"], "unknown workload \"nope\""),
        (&[], "no workload given"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} wrote a record");
        let text = String::from_utf8(out.stderr).unwrap();
        assert!(text.contains(says), "{args:?}: {text}");
    }
}

#[test]
fn an_argument_in_any_bytes_is_a_usage_error_not_a_crash() {
    let out = run(&[OsStr::new("hello"), OsStr::from_bytes(b"\xff")]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(text.contains("takes no argument"), "{text}");
}
