//! `vcbench-vmm`: runs one micro guest in a process of its own, so the monitor's memory can
//! be told apart from everything else, and reports on standard output as JSON lines:
//!
//! ```text
//! {"report": {"phases": [["vm_created", ns], ...], "markers": [[code, ns], ...],
//!             "marker_writes": n, "exits": {"exits_io_out": n, ...}, "end": "halted",
//!             "reason": null, "registers": null, "serial": "...", "guest_touched_kib": n}}
//! {"torn_down": ns}
//! ```
//!
//! Stamps are CLOCK_MONOTONIC nanoseconds. With `--hold` it waits for SIGTERM between the
//! two lines, with the VM still built, so its footprint can be measured.
//!
//! Usage: `vcbench-vmm hello|exits N|touch MIB|spin N [--vcpus N] [--memory-mib M]
//! [--timeout-ms T] [--no-serial] [--hold]`

use std::process::ExitCode;
use std::time::Duration;

use microvm::guest;
use microvm::vm::{self, Config, End, Report};

const USAGE: &str =
    "usage: vcbench-vmm hello|exits N|touch MIB|spin N [--vcpus N] [--memory-mib M] [--timeout-ms T] [--no-serial] [--hold]";

fn parse(args: &[String]) -> Result<(Config, bool), String> {
    let mut it = args.iter();
    let name = it.next().ok_or("no guest given")?;
    let mut number = |what: &str| -> Result<u32, String> {
        it.next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{what} needs a whole number"))
    };
    let payload = match name.as_str() {
        "hello" => guest::hello(),
        "exits" => guest::exits(number("exits")?),
        "touch" => guest::touch(number("touch")?),
        "spin" => guest::spin(number("spin")?),
        other => return Err(format!("unknown guest {other:?}")),
    };
    let rest: Vec<&String> = it.collect();
    let mut config = Config::new(payload);
    let mut hold = false;
    let mut i = 0;
    while i < rest.len() {
        let value = || {
            rest.get(i + 1)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{} needs a number", rest[i]))
        };
        match rest[i].as_str() {
            "--memory-mib" => {
                config.memory_mib = value()?;
                i += 1;
            }
            "--vcpus" => {
                config.vcpus =
                    u8::try_from(value()?).map_err(|_| "--vcpus must be 1..=255".to_owned())?;
                i += 1;
            }
            "--timeout-ms" => {
                config.timeout = Duration::from_millis(value()?);
                i += 1;
            }
            "--hold" => hold = true,
            "--no-serial" => config.devices.serial = false,
            other => return Err(format!("unknown option {other:?}")),
        }
        i += 1;
    }
    Ok((config, hold))
}

fn to_json(report: &Report) -> serde_json::Value {
    let (end, reason, registers) = match &report.end {
        End::Halted => ("halted", None, None),
        End::Reset => ("reset", None, None),
        End::TimedOut => ("timed_out", None, None),
        End::Failed { reason, registers } => {
            ("failed", Some(reason.clone()), Some(registers.clone()))
        }
    };
    let exits: serde_json::Map<String, serde_json::Value> = report
        .exits
        .pairs()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    serde_json::json!({"report": {
        "phases": report.phases,
        "markers": report.markers.stamps,
        "marker_writes": report.markers.writes,
        "last_marker": report.markers.last,
        "exits": exits,
        "end": end,
        "reason": reason,
        "registers": registers,
        "serial": String::from_utf8_lossy(&report.serial.bytes),
        "guest_touched_kib": report.guest_touched_kib,
    }})
}

/// Writes one line; a reader that went away is no reason to stop the VM's teardown.
fn emit(value: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}").and_then(|()| out.flush());
}

/// Blocks until SIGTERM or SIGINT.
fn wait_for_release() {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: `set` is initialised and `sig` valid.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    let mut sig = 0;
    // SAFETY: `set` is initialised; `sig` is a valid out-pointer. The signals were blocked
    // in main before the VM was built, so none sent meanwhile is lost.
    unsafe { libc::sigwait(&set, &mut sig) };
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, hold) = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vcbench-vmm: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if hold {
        // SAFETY: sigset_t is plain data; initialised by sigemptyset before use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is valid.
        unsafe { libc::sigemptyset(&mut set) };
        for sig in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: `set` is initialised and `sig` valid.
            unsafe { libc::sigaddset(&mut set, sig) };
        }
        // SAFETY: `set` is initialised; blocking only affects this single-threaded process.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    }
    let result = vm::run_with(&config, |report| {
        emit(&to_json(report));
        if hold {
            wait_for_release();
        }
    });
    match result {
        Ok(report) => {
            let torn_down = report.phases.last().map_or(0, |(_, ns)| *ns);
            emit(&serde_json::json!({ "torn_down": torn_down }));
            match report.end {
                End::Halted | End::Reset => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            eprintln!("vcbench-vmm: {text}");
            ExitCode::FAILURE
        }
    }
}
