//! `workload`: the one program that runs inside every vcbench sandbox.
//!
//! It is started natively, as a container's init and as a microVM's `/init`, always the
//! same statically linked binary. Each subcommand writes a `started` record as its very
//! first action and a `result` record with its figures (see the `workload::record`
//! module); when it runs as PID 1 it also mounts the pseudo file systems, reaps
//! children and, when asked, powers the machine off at the end.

mod args;
mod exec;
mod init;
mod out;
mod work;

use std::process::ExitCode;

use workload::record::Record;

use crate::args::Args;

/// Exit status for a bad command line.
const EXIT_USAGE: u8 = 2;
/// Exit status when the work itself failed.
const EXIT_FAILED: u8 = 1;

fn main() -> ExitCode {
    // As a VM's init, tell the host first of all that init was reached.
    let marker = if std::process::id() == 1 {
        match workload::marker::MarkerPort::from_env() {
            Some(Ok(port)) => {
                port.write(workload::marker::INIT);
                Some(port)
            }
            Some(Err(e)) => {
                eprintln!("workload: {e}");
                None
            }
            None => None,
        }
    } else {
        None
    };
    // As given, not as UTF-8: a directory may be named in any bytes.
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if argv.first().is_some_and(|a| a == exec::NAME) {
        return exec_main(argv.split_off(1), marker);
    }
    let args = match Args::parse(argv) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{}", args::usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("workload: {e} (`workload --help` lists the workloads and options)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let pid1 = std::process::id() == 1;
    let mut out = match out::Output::open_from_env(pid1.then_some(init::mount_filesystems as fn()))
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("workload: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let args::Workload::Fault {
        kind: args::FaultKind::Mute,
        ..
    } = args.workload
    {
        // A workload that never starts: not even its first record.
        return ExitCode::from(run_work(&args, &mut out));
    }
    out.emit(&Record::Started {
        workload: args.workload.name().to_owned(),
        pid: std::process::id(),
        pid1,
    });
    if pid1 {
        init::run_as_init(
            args.workload.name(),
            |out| run_work(&args, out),
            out,
            marker,
        )
    } else {
        ExitCode::from(run_work(&args, &mut out))
    }
}

/// `workload exec`: the user's program as the workload, supervised (see [`exec`]).
fn exec_main(
    argv: Vec<std::ffi::OsString>,
    marker: Option<workload::marker::MarkerPort>,
) -> ExitCode {
    let args = match exec::parse(argv) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{}", exec::args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("workload: {e} (`workload exec --help` says how)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let pid1 = std::process::id() == 1;
    let mut out = match out::Output::open_from_env(pid1.then_some(init::mount_filesystems as fn()))
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("workload: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    out.emit(&Record::Started {
        workload: exec::NAME.to_owned(),
        pid: std::process::id(),
        pid1,
    });
    if pid1 {
        init::run_as_init(exec::NAME, |out| exec::run(&args, out), out, marker)
    } else {
        ExitCode::from(exec::run(&args, &mut out))
    }
}

/// Runs the chosen workload and writes its result (or error) record; returns the exit status.
fn run_work(args: &Args, out: &mut out::Output) -> u8 {
    let name = args.workload.name().to_owned();
    match work::run(args) {
        Ok(mut done) => {
            if let Some(hwm) = work::peak_rss_kib() {
                done.metrics
                    .push(workload::record::Metric::new("vm_hwm_kib", hwm, "KiB"));
            }
            out.emit(&Record::Result {
                workload: name,
                metrics: done.metrics,
                facts: done.facts,
            });
            if let Some(held) = done.held {
                held.wait();
            }
            0
        }
        Err(e) => {
            out.emit(&Record::Error {
                workload: name,
                message: e.to_string(),
            });
            eprintln!("workload: {e}");
            EXIT_FAILED
        }
    }
}
