//! `vcbench-vmm`: runs one micro guest in a process of its own, so the monitor's memory can
//! be told apart from everything else, and reports on standard output as JSON lines (see
//! [`microvm::protocol`]): a report when the guest has stopped, then when the VM was torn
//! down. With `--hold` it waits for SIGTERM between the two, with the VM still built, so
//! its footprint can be measured. Once the guest runs, the monitor's threads run under
//! its system call filter ([`microvm::seccomp`]); `--no-seccomp` leaves it off.
//!
//! Usage: `vcbench-vmm hello|exits N|touch MIB|ready MIB|spin N|triple-fault|mmio-nowhere
//! [--vcpus N] [--memory-mib M] [--timeout-ms T] [--no-serial] [--hold] [--no-seccomp]
//! [--snapshot-to PATH]` (a guest that stops at a `hlt` is then saved to PATH: see
//! [`microvm::snapshot`]), `vcbench-vmm restore PATH [--memory-mib M] [--timeout-ms T]
//! [--no-serial] [--hold] [--no-seccomp]` (a saved guest, micro or Linux, run on in a new
//! VM), or for a Linux guest
//! `vcbench-vmm linux --kernel PATH [--initrd PATH] [--cmdline TEXT] [--vcpus N]
//! [--memory-mib M] [--timeout-ms T] [--disk PATH | --disk-read-only PATH] [--hold]
//! [--no-seccomp] [--snapshot-to PATH]`, whose console lines are written as they arrive,
//! each stamped. A disk is a raw image file the guest sees as a virtio-blk device
//! (`/dev/vda`). `--tap IFNAME` gives the guest a virtio-net device (`eth0`) on the host's
//! tap IFNAME, in the monitor's network namespace (created when missing), with MAC address
//! `--mac` (default 52:54:00:12:34:56). With `--snapshot-to PATH` a Linux guest without
//! virtio devices is saved to PATH when its init writes its first marker, then runs on to
//! its end (see [`microvm::linux::machine::snapshot_to`]).

#![no_main]

use std::ffi::{c_char, c_int};
use std::time::Duration;

use microvm::guest;
use microvm::linux::machine;
use microvm::protocol::{ConsoleLine, Line, WireReport};
use microvm::seccomp;
use microvm::vm::{self, Config, End};

const USAGE: &str = "usage: vcbench-vmm hello|exits N|touch MIB|ready MIB|spin N|triple-fault|mmio-nowhere [--vcpus N] [--memory-mib M] [--timeout-ms T] [--no-serial] [--hold] [--no-seccomp] [--snapshot-to PATH]
       vcbench-vmm restore PATH [--memory-mib M] [--timeout-ms T] [--no-serial] [--hold] [--no-seccomp]
       vcbench-vmm linux --kernel PATH [--initrd PATH] [--cmdline TEXT] [--vcpus N] [--memory-mib M] [--timeout-ms T] [--disk PATH | --disk-read-only PATH] [--vsock-cid CID] [--tap IFNAME [--mac MAC]] [--hold] [--no-seccomp] [--snapshot-to PATH]";

/// What to run.
enum Guest {
    Micro(Config),
    /// A micro guest run to its snapshot point, saved to the path.
    Snapshot(Config, std::path::PathBuf),
    /// A micro guest restored from a snapshot.
    Restore {
        path: std::path::PathBuf,
        memory_mib: Option<u64>,
        devices: microvm::config::Devices,
        timeout: Duration,
    },
    Linux(machine::Config),
    /// A Linux guest snapshotted when its init writes its first marker, saved to the path.
    LinuxSnapshot(machine::Config, std::path::PathBuf),
}

fn parse_restore(args: &[String]) -> Result<(Guest, bool), String> {
    let mut it = args.iter();
    let path = it.next().ok_or("restore needs a snapshot PATH")?.into();
    let (mut memory_mib, mut timeout, mut hold) = (None, Duration::from_secs(60), false);
    let mut devices = microvm::config::Devices::default();
    while let Some(option) = it.next() {
        let mut number = || -> Result<u64, String> {
            let given = it.next().ok_or(format!("{option} needs a number"))?;
            given
                .parse()
                .map_err(|_| format!("{option} needs a number, not {given:?}"))
        };
        match option.as_str() {
            "--memory-mib" => memory_mib = Some(number()?),
            "--timeout-ms" => timeout = Duration::from_millis(number()?),
            "--hold" => hold = true,
            "--no-serial" => devices.serial = false,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok((
        Guest::Restore {
            path,
            memory_mib,
            devices,
            timeout,
        },
        hold,
    ))
}

fn parse_linux(args: &[String]) -> Result<(machine::Config, bool), String> {
    let mut config = machine::Config {
        vcpus: 1,
        memory_mib: 128,
        kernel: Default::default(),
        initrd: None,
        cmdline: String::new(),
        timeout: Duration::from_secs(60),
        disk: None,
        vsock_cid: None,
        net: None,
    };
    let mut kernel = None;
    let (mut tap, mut mac) = (None, None);
    let mut hold = false;
    let mut it = args.iter();
    while let Some(option) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{option} needs a value"))
        };
        let number = |text: String| {
            text.parse::<u64>()
                .map_err(|_| format!("{option} needs a whole number, not {text:?}"))
        };
        match option.as_str() {
            "--kernel" => kernel = Some(value()?.into()),
            "--initrd" => config.initrd = Some(value()?.into()),
            "--cmdline" => config.cmdline = value()?,
            "--memory-mib" => config.memory_mib = number(value()?)?,
            "--vcpus" => {
                config.vcpus = u8::try_from(number(value()?)?)
                    .map_err(|_| "--vcpus must be 1..=254".to_owned())?
            }
            "--timeout-ms" => config.timeout = Duration::from_millis(number(value()?)?),
            "--hold" => hold = true,
            "--disk" | "--disk-read-only" => {
                config.disk = Some(machine::DiskConfig {
                    path: value()?.into(),
                    read_only: option == "--disk-read-only",
                })
            }
            "--vsock-cid" => config.vsock_cid = Some(number(value()?)?),
            "--tap" => tap = Some(value()?),
            "--mac" => mac = Some(value()?.parse().map_err(|e| format!("--mac: {e}"))?),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    config.kernel = kernel.ok_or("linux needs --kernel PATH")?;
    config.net = match (tap, mac) {
        (Some(tap), mac) => Some(machine::NetConfig {
            tap,
            mac: mac.unwrap_or(microvm::virtio::net::Mac::DEFAULT),
        }),
        (None, Some(_)) => return Err("--mac needs --tap IFNAME".to_owned()),
        (None, None) => None,
    };
    Ok((config, hold))
}

fn parse_guest(args: &[String]) -> Result<(Guest, bool), String> {
    if args.first().map(String::as_str) == Some("linux") {
        let mut rest = args[1..].to_vec();
        let snapshot = match rest.iter().position(|a| a == "--snapshot-to") {
            Some(at) if at + 1 < rest.len() => {
                let path = rest.remove(at + 1);
                rest.remove(at);
                Some(std::path::PathBuf::from(path))
            }
            Some(_) => return Err("--snapshot-to needs a PATH".to_owned()),
            None => None,
        };
        let (config, hold) = parse_linux(&rest)?;
        return Ok(match snapshot {
            Some(path) => (Guest::LinuxSnapshot(config, path), hold),
            None => (Guest::Linux(config), hold),
        });
    }
    if args.first().map(String::as_str) == Some("restore") {
        return parse_restore(&args[1..]);
    }
    let (config, hold, snapshot) = parse(args)?;
    match snapshot {
        Some(path) => Ok((Guest::Snapshot(config, path), hold)),
        None => Ok((Guest::Micro(config), hold)),
    }
}

fn parse(args: &[String]) -> Result<(Config, bool, Option<std::path::PathBuf>), String> {
    let mut it = args.iter();
    let name = it.next().ok_or("no guest given")?;
    let mut number = |what: &str| -> Result<u32, String> {
        let given = it
            .next()
            .ok_or_else(|| format!("{what} needs a whole number"))?;
        given
            .parse()
            .map_err(|_| format!("{what} needs a whole number, not {given:?}"))
    };
    let payload = match name.as_str() {
        "hello" => guest::hello(),
        "exits" => guest::exits(number("exits")?),
        "touch" => guest::touch(number("touch")?),
        "ready" => guest::ready(number("ready")?),
        "spin" => guest::spin(number("spin")?),
        // Guests that fail on purpose, to test how a failing VM is reported.
        "triple-fault" => guest::triple_fault(),
        "mmio-nowhere" => guest::mmio_nowhere(),
        other => return Err(format!("unknown guest {other:?}")),
    };
    let rest: Vec<&String> = it.collect();
    let mut config = Config::new(payload);
    let mut hold = false;
    let mut snapshot = None;
    let mut i = 0;
    while i < rest.len() {
        let value = || {
            let given = rest
                .get(i + 1)
                .ok_or(format!("{} needs a number", rest[i]))?;
            given
                .parse::<u64>()
                .map_err(|_| format!("{} needs a number, not {given:?}", rest[i]))
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
            "--snapshot-to" => {
                let path = rest.get(i + 1).ok_or("--snapshot-to needs a PATH")?;
                snapshot = Some(path.into());
                i += 1;
            }
            other => return Err(format!("unknown option {other:?}")),
        }
        i += 1;
    }
    Ok((config, hold, snapshot))
}

/// Console lines written as they arrive, each stamped.
fn console_lines() -> microvm::devices::serial::LineHandler {
    Box::new(|line: &str, at: u64| {
        emit(&Line::Console(ConsoleLine {
            line: line.to_owned(),
            at,
        }));
    })
}

/// Restores the snapshot at `path`, of either kind of guest.
fn restore(
    path: &std::path::Path,
    memory_mib: Option<u64>,
    devices: microvm::config::Devices,
    timeout: Duration,
    before_teardown: impl FnOnce(&vm::Report),
) -> anyhow::Result<vm::Report> {
    let (header, file) = microvm::snapshot::read(path, memory_mib)?;
    match header.kind {
        microvm::snapshot::Kind::Micro => Ok(vm::restore_read(
            path,
            header,
            &file,
            devices,
            timeout,
            before_teardown,
        )?),
        microvm::snapshot::Kind::Linux if !devices.serial => Err(anyhow::anyhow!(
            "{} holds a Linux guest, whose console cannot be left off (--no-serial)",
            path.display()
        )),
        microvm::snapshot::Kind::Linux => Ok(microvm::linux::restore::restore(
            path,
            header,
            &file,
            timeout,
            console_lines(),
            before_teardown,
        )?),
    }
}

/// Writes one line; a reader that went away is no reason to stop the VM's teardown.
fn emit(line: &Line) {
    use std::io::Write;
    let Ok(text) = serde_json::to_string(line) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
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

/// The process's entry, called by the C library's start-up code with nothing of the
/// Rust runtime's own start-up before it (`#![no_main]`). The monitor is on the path of
/// every micro VM start, and that start-up, which finds the main thread's stack guard by
/// reading `/proc/self/maps` and gives every thread an alternate signal stack for its
/// stack-overflow message, cost tens of microseconds of each start under software KVM.
/// What of it the monitor needs is done here: the standard streams open (the reports go
/// to standard output, which must never be `/dev/kvm` or a guest's file), `SIGPIPE`
/// ignored, a panic turned into exit status 101, standard output flushed at the end.
/// The arguments are read from `argv` here: glibc also hands them to the standard library
/// at load, but musl, which the monitor is built with where it can be, does not, so
/// `std::env::args` is empty without the runtime's start-up.
#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    standard_streams_open();
    // SAFETY: sets a signal's disposition to ignore; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // SAFETY: the C library calls main with `argc` valid C strings in `argv`, which live
    // as long as the process.
    let args = unsafe { arguments(argc, argv) };
    let status = std::panic::catch_unwind(|| match args {
        Ok(args) => run(args),
        Err(at) => {
            eprintln!("vcbench-vmm: argument {at} is not UTF-8\n{USAGE}");
            2
        }
    })
    .unwrap_or(101);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    c_int::from(status)
}

/// The arguments after the program's name, or the position of the first that is not
/// UTF-8.
///
/// # Safety
///
/// `argv` holds `argc` pointers to NUL-terminated strings that outlive the call.
unsafe fn arguments(argc: c_int, argv: *const *const c_char) -> Result<Vec<String>, usize> {
    let count = usize::try_from(argc).unwrap_or(0);
    if count == 0 || argv.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: the caller's `argv` holds `argc` pointers.
    let pointers = unsafe { std::slice::from_raw_parts(argv, count) };
    pointers
        .iter()
        .enumerate()
        .skip(1)
        .map(|(at, &pointer)| {
            // SAFETY: each of the caller's pointers is a NUL-terminated string that
            // outlives the call.
            let arg = unsafe { std::ffi::CStr::from_ptr(pointer) };
            arg.to_str().map(str::to_owned).map_err(|_| at)
        })
        .collect()
}

/// Opens `/dev/null` on each of descriptors 0, 1 and 2 that is closed, as the Rust
/// runtime's start-up does, so that no descriptor the monitor opens later takes one.
fn standard_streams_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd for the call's length; a zero
    // timeout returns at once.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for pollfd in fds {
        if pollfd.revents & libc::POLLNVAL != 0 {
            // SAFETY: a valid C string path; the descriptor opened is the lowest free one,
            // the closed standard stream's, and stays open for the process's life.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// The monitor's work: exit status 0 when the guest stopped as a guest should, 2 for bad
/// usage, 1 otherwise.
fn run(mut args: Vec<String>) -> u8 {
    // The system call filter is on unless `--no-seccomp` turns it off (to measure it).
    let filtered = match args.iter().position(|a| a == "--no-seccomp") {
        Some(at) => {
            args.remove(at);
            false
        }
        None => true,
    };
    let (guest, hold) = match parse_guest(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vcbench-vmm: {e}\n{USAGE}");
            return 2;
        }
    };
    // A monitor taking a snapshot writes a file once its guest has run: its filter would
    // refuse that.
    if filtered && !matches!(guest, Guest::Snapshot(..) | Guest::LinuxSnapshot(..)) {
        seccomp::enforce(seccomp::Filter::built());
    }
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
    let before_teardown = |report: &vm::Report| {
        emit(&Line::Report(Box::new(WireReport::from(report))));
        if hold {
            wait_for_release();
        }
    };
    let result = match guest {
        Guest::Micro(config) => vm::run_with(&config, before_teardown).map_err(anyhow::Error::new),
        Guest::Snapshot(config, path) => vm::snapshot_to(&config, &path, before_teardown)
            .map(|(report, _)| report)
            .map_err(anyhow::Error::new),
        Guest::Restore {
            path,
            memory_mib,
            devices,
            timeout,
        } => restore(&path, memory_mib, devices, timeout, before_teardown),
        Guest::Linux(config) => {
            let on_line = Box::new(|line: &str, at: u64| {
                emit(&Line::Console(ConsoleLine {
                    line: line.to_owned(),
                    at,
                }));
            });
            machine::run(&config, on_line, before_teardown).map_err(anyhow::Error::new)
        }
        Guest::LinuxSnapshot(config, path) => {
            machine::snapshot_to(&config, &path, console_lines(), before_teardown)
                .map(|(report, _)| report)
                .map_err(anyhow::Error::new)
        }
    };
    match result {
        Ok(report) => {
            let torn_down = report.phases.last().map_or(0, |(_, ns)| *ns);
            emit(&Line::TornDown(torn_down));
            match report.end {
                End::Halted | End::Reset | End::PoweredOff => 0,
                _ => 1,
            }
        }
        Err(e) => {
            // The error and its causes, as one line.
            eprintln!("vcbench-vmm: {e:#}");
            1
        }
    }
}
