//! `workload exec`: the user's own program as the workload. The workload stays the
//! supervisor that stamps and reports: it writes `started`, runs the program in a child
//! (chrooted into the image when natively run), relays its output, writes `result` the
//! moment the program is ready (see [`args::Ready`]) and ends with the program's status;
//! a program that cannot be run, or that ends before it is ready, is an `error` record
//! with its last output.

pub mod args;
mod output;
mod user;

use std::ffi::{CString, OsString};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use workload::record::{Metric, Record};

use self::args::{ExecArgs, Ready};
use self::output::Tail;
use crate::out::Output;

/// The `PATH` a program gets when its image names none (the OCI runtimes' default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How often a readiness that is polled (a port, the program's end) is checked.
const POLL: Duration = Duration::from_millis(1);
/// How long a service has to end after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(2);
/// The exit status when the program cannot be run at all (as a shell says it).
const CANNOT_RUN: u8 = 127;

/// The workload's name in its records.
pub const NAME: &str = "exec";

/// Runs the program; returns the workload's exit status.
pub fn run(args: &ExecArgs, out: &mut Output) -> u8 {
    let program = args.command[0].to_string_lossy().into_owned();
    let fail = |out: &mut Output, message: String| {
        out.emit(&Record::Error {
            workload: NAME.to_owned(),
            message: message.clone(),
        });
        eprintln!("workload: {message}");
    };
    // A held service waits for its release: the signals are blocked from here on (the
    // program itself starts with them unblocked), so one sent early is kept, not fatal.
    let hold = args.hold && matches!(args.ready, Ready::Output(_) | Ready::Tcp(_));
    let release = sigset(&RELEASE);
    let mut command = match command(args, hold.then_some(release)) {
        Ok(command) => command,
        Err(message) => {
            fail(out, message);
            return CANNOT_RUN;
        }
    };
    if hold {
        // SAFETY: `release` is an initialised set; no thread has been started yet, so every
        // thread made later inherits the mask.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &release, std::ptr::null_mut()) };
    }
    let begun = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let place = match &args.root {
                Some(root) => format!(" in the image {}", root.display()),
                None => " in the image".to_owned(),
            };
            fail(out, format!("cannot run {program:?}{place}: {e}"));
            return CANNOT_RUN;
        }
    };
    // The standard library returns from spawn once the exec has succeeded.
    let exec_ms = ms(begun.elapsed());
    let tail = Tail::default();
    let (matched_tx, matched) = mpsc::channel();
    let pattern = match &args.ready {
        Ready::Output(re) => Some(re.clone()),
        _ => None,
    };
    let mut relays = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        relays.push(output::relay(
            stdout,
            tail.clone(),
            pattern.clone().map(|re| (re, matched_tx.clone())),
        ));
    }
    if let Some(stderr) = child.stderr.take() {
        relays.push(output::relay(
            stderr,
            tail.clone(),
            pattern.map(|re| (re, matched_tx.clone())),
        ));
    }
    drop(matched_tx);
    let ready = args.ready.describe();
    let result = |out: &mut Output, ready_ms: f64| {
        out.emit(&Record::Result {
            workload: NAME.to_owned(),
            metrics: vec![
                Metric::new("exec_ms", exec_ms, "ms"),
                Metric::new("ready_ms", ready_ms, "ms"),
            ],
            facts: Vec::new(),
        })
    };
    let ended_early = |status: std::process::ExitStatus| {
        format!(
            "{program:?} {} before it was ready ({ready}); its last output: {}",
            describe(status),
            tail.summary()
        )
    };
    let status = match &args.ready {
        Ready::Exec => {
            result(out, exec_ms);
            wait(&mut child)
        }
        Ready::Exit => {
            let status = wait(&mut child);
            finish_relays(relays);
            if status.success() {
                let ready_ms = ms(begun.elapsed());
                let mut metrics = vec![
                    Metric::new("exec_ms", exec_ms, "ms"),
                    Metric::new("ready_ms", ready_ms, "ms"),
                ];
                // The program's own peak resident memory, now that it has been reaped.
                metrics
                    .extend(children_maxrss_kib().map(|kib| Metric::new("vm_hwm_kib", kib, "KiB")));
                out.emit(&Record::Result {
                    workload: NAME.to_owned(),
                    metrics,
                    facts: Vec::new(),
                });
            } else {
                fail(
                    out,
                    format!(
                        "{program:?} {}; its last output: {}",
                        describe(status),
                        tail.summary()
                    ),
                );
            }
            return code(status);
        }
        Ready::Output(_) | Ready::Tcp(_) => {
            let port = match args.ready {
                Ready::Tcp(port) => Some(port),
                _ => None,
            };
            loop {
                let is_ready = match port {
                    Some(port) => accepts(port),
                    None => matched.recv_timeout(POLL).is_ok(),
                };
                if is_ready {
                    result(out, ms(begun.elapsed()));
                    if hold {
                        wait_for_release(&release, &mut child);
                    }
                    stop(&mut child);
                    finish_relays(relays);
                    return 0;
                }
                match child.try_wait() {
                    Ok(Some(status)) => {
                        finish_relays(relays);
                        // A line that matched as the program ended still counts.
                        if matched.try_recv().is_ok() {
                            result(out, ms(begun.elapsed()));
                            return code(status);
                        }
                        fail(out, ended_early(status));
                        return if status.success() { 1 } else { code(status) };
                    }
                    Ok(None) => {}
                    Err(e) => {
                        fail(out, format!("cannot wait for {program:?}: {e}"));
                        return 1;
                    }
                }
                if port.is_some() {
                    std::thread::sleep(POLL);
                }
            }
        }
    };
    finish_relays(relays);
    if !status.success() {
        fail(
            out,
            format!(
                "{program:?} {}; its last output: {}",
                describe(status),
                tail.summary()
            ),
        );
    }
    code(status)
}

/// The program's command: its environment, root, directory and user.
fn command(args: &ExecArgs, unblock: Option<libc::sigset_t>) -> Result<Command, String> {
    let mut command = Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // It stays in the workload's process group: natively the host ends that whole group
    // at a timeout, and as PID 1 the workload ends everything once the work is done.
    let mut has_path = false;
    for pair in &args.env {
        let bytes = pair.as_bytes();
        let at = bytes.iter().position(|b| *b == b'=').unwrap_or(bytes.len());
        let name = std::ffi::OsStr::from_bytes(&bytes[..at]);
        let value = std::ffi::OsStr::from_bytes(bytes.get(at + 1..).unwrap_or_default());
        has_path |= name == "PATH";
        command.env(name, value);
    }
    if !has_path {
        command.env("PATH", DEFAULT_PATH);
    }
    let ids = match &args.user {
        Some(spec) => Some(user::resolve(spec, args.root.as_deref())?),
        None => None,
    };
    let c = |p: &std::path::Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| format!("{} has a NUL byte", p.display()))
    };
    let root = args.root.as_deref().map(c).transpose()?;
    let workdir = args.workdir.as_deref().map(c).transpose()?;
    if root.is_some() || workdir.is_some() || ids.is_some() || unblock.is_some() {
        let setup = move || -> std::io::Result<()> {
            let check = |rc: libc::c_int| match rc {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            };
            if let Some(set) = &unblock {
                // SAFETY: `set` is an initialised signal set copied before the fork; the
                // program must not start with the workload's release signals blocked.
                let rc =
                    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, set, std::ptr::null_mut()) };
                if rc != 0 {
                    return Err(std::io::Error::from_raw_os_error(rc));
                }
            }
            if let Some(root) = &root {
                // SAFETY: `root` is a NUL-terminated path made before the fork.
                check(unsafe { libc::chroot(root.as_ptr()) })?;
                // SAFETY: a constant NUL-terminated path.
                check(unsafe { libc::chdir(c"/".as_ptr()) })?;
            }
            if let Some(dir) = &workdir {
                // SAFETY: `dir` is a NUL-terminated path made before the fork.
                check(unsafe { libc::chdir(dir.as_ptr()) })?;
            }
            if let Some((uid, gid)) = ids {
                // SAFETY: an empty group list: no pointer is read.
                check(unsafe { libc::setgroups(0, std::ptr::null()) })?;
                // SAFETY: setgid and setuid take plain IDs.
                check(unsafe { libc::setgid(gid) })?;
                // SAFETY: as above.
                check(unsafe { libc::setuid(uid) })?;
            }
            Ok(())
        };
        // SAFETY: `setup` runs in the child between fork and exec and calls only
        // async-signal-safe functions (pthread_sigmask, chroot, chdir, setgroups, setgid,
        // setuid) on data prepared before the fork; it allocates nothing.
        unsafe { command.pre_exec(setup) };
    }
    Ok(command)
}

/// Whether a TCP connection to `port` on loopback (IPv4, then IPv6) is accepted.
fn accepts(port: u16) -> bool {
    [
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    ]
    .iter()
    .any(|addr| TcpStream::connect_timeout(addr, Duration::from_millis(100)).is_ok())
}

/// Waits for the program.
fn wait(child: &mut Child) -> std::process::ExitStatus {
    child
        .wait()
        .unwrap_or_else(|_| std::process::ExitStatus::from_raw(1 << 8))
}

/// The signals that release a held service.
const RELEASE: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1];

/// A signal set holding `signals`.
fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &signal in signals {
        // SAFETY: `set` is initialised and `signal` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, signal) };
    }
    set
}

/// Keeps a ready service running until a release signal arrives, or it ends by itself.
fn wait_for_release(release: &libc::sigset_t, child: &mut Child) {
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    loop {
        // SAFETY: `release` is initialised and its signals are blocked in this thread; a
        // null info pointer is allowed.
        let signal = unsafe { libc::sigtimedwait(release, std::ptr::null_mut(), &timeout) };
        if signal > 0 || matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
    }
}

/// Stops a service: SIGTERM, SIGKILL after [`GRACE`]. (What it started goes with the
/// workload's process group, or as the workload ends as PID 1.)
fn stop(child: &mut Child) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill with the PID of this process's own child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits briefly for the relays to pass on the last output (a descendant holding the
/// pipes open must not keep the workload).
fn finish_relays(relays: Vec<std::thread::JoinHandle<()>>) {
    let deadline = Instant::now() + Duration::from_millis(200);
    for relay in relays {
        while !relay.is_finished() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if relay.is_finished() {
            let _ = relay.join();
        }
    }
}

/// How a program ended, in words.
fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by {}", workload::signal::name(signal)),
        _ => "ended".to_owned(),
    }
}

/// The workload's exit status for the program's: its code, or 128 + its signal.
fn code(status: std::process::ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        _ => 1,
    }
}

/// The largest resident set of any reaped child of this process (`ru_maxrss`), KiB.
fn children_maxrss_kib() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `usage` is a valid out-pointer for one rusage, which getrusage fills.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage succeeded, so it initialised `usage`.
    let usage = unsafe { usage.assume_init() };
    #[allow(clippy::cast_precision_loss)]
    let kib = usage.ru_maxrss as f64;
    (kib > 0.0).then_some(kib)
}

/// A duration in milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The arguments of `exec`, as given.
pub fn parse(
    argv: impl IntoIterator<Item = OsString>,
) -> Result<Option<ExecArgs>, args::UsageError> {
    ExecArgs::parse(argv)
}
