//! The host attack surface: what reaches the host kernel on an instance's behalf while
//! its workload runs, counted with the kernel's own tracer (ftrace).
//!
//! Each measured run gets an ftrace instance of its own (`instances/vcbench-<pid>` under
//! tracefs) recording three events: `raw_syscalls:sys_enter`, `sched:sched_process_exec`
//! and `sched:sched_process_fork`, for the launching thread and, through `event-fork`,
//! everything it starts. A process counts from the moment it executes the instance's
//! program (the workload, or the monitor for a VM), and its descendants from birth, so
//! vcbench's own threads and the runtime's setup before that exec are left out. The result
//! is the distinct system calls and their total per second of the run; for a VM, the VM
//! exits by kind come from the monitor's own counters.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::backend::{error_chain, Backend, Event, Launch};
use crate::clock::Stamp;
use crate::results::{Better, Figure};
use crate::scenario::Scenario;

/// Where tracefs lives.
const TRACEFS: &str = "/sys/kernel/tracing";
/// The trace buffers of all CPUs together, KiB: the buffer is per CPU, and a traced run
/// needs a few MiB on the CPUs it runs on, so a large host gets smaller buffers per CPU,
/// not hundreds of MiB. Lost events are counted and fail the figure.
const BUFFER_TOTAL_KIB: u64 = 64 * 1024;
/// Bounds of one CPU's buffer, KiB: 4 MiB holds about 50 000 events.
const BUFFER_KIB_RANGE: (u64, u64) = (4 * 1024, 16 * 1024);

/// One CPU's trace buffer for a host of `cpus` CPUs, KiB.
fn buffer_kib(cpus: usize) -> u64 {
    let cpus = u64::try_from(cpus.max(1)).unwrap_or(u64::MAX);
    (BUFFER_TOTAL_KIB / cpus).clamp(BUFFER_KIB_RANGE.0, BUFFER_KIB_RANGE.1)
}
/// The header that names x86-64 system calls (Debian's linux-libc-dev).
const UNISTD: &str = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";

/// Errors of the tracer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Tracing needs root.
    #[error("counting host system calls needs root (ftrace)")]
    NotRoot,
    /// A tracefs file could not be written or read.
    #[error("tracefs {path}: {source}")]
    Tracefs {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// tracefs is not mounted and could not be.
    #[error("cannot mount tracefs on {TRACEFS}: {0}")]
    Mount(#[source] std::io::Error),
}

pub use reports::document::surface::{Reachable, Surface};

/// The workloads traced, by the scenario that says whether a backend can run them.
const WORKLOADS: [(Scenario, &[&str]); 6] = [
    (Scenario::Startup, &["hello"]),
    (Scenario::Syscall, &["syscall", "--count", "20000"]),
    (Scenario::Fork, &["fork", "--count", "50"]),
    (Scenario::File, &["file", "--count", "50", "--size", "4096"]),
    (Scenario::Net, &["net", "--count", "2000", "--size", "64"]),
    (Scenario::Exits, &["exits", "--count", "10000"]),
];

/// Whether tracing can work here; `Err` says why not.
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::NotRoot.to_string());
    }
    if !Path::new("/sys/kernel").exists() {
        return Err("no /sys/kernel: sysfs is not mounted".to_owned());
    }
    Ok(())
}

/// Traces every workload `backend` supports, one run each. `Err` when tracing cannot
/// work here; a run that fails is an `Err` entry with its reason.
pub fn measure(
    backend: &dyn Backend,
    workload: &Path,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<Vec<Result<Surface, String>>, String> {
    available()?;
    let names = syscall_names();
    let mut out = Vec::new();
    for (scenario, args) in WORKLOADS {
        if backend.supports(scenario).is_err() || stop.load(Ordering::SeqCst) {
            continue;
        }
        let launch = Launch {
            workload: workload.to_owned(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
        };
        out.push(
            trace_one(backend, &launch, timeout, stop, &names)
                .map_err(|e| format!("{}: {e}", args.join(" "))),
        );
    }
    Ok(out)
}

/// Runs one instance under a fresh ftrace instance.
fn trace_one(
    backend: &dyn Backend,
    launch: &Launch,
    timeout: Duration,
    stop: &AtomicBool,
    names: &HashMap<i64, String>,
) -> Result<Surface, String> {
    let tracer = Tracer::start().map_err(|e| e.to_string())?;
    // SAFETY: gettid has no preconditions and cannot fail.
    let tracer_tid = u32::try_from(unsafe { libc::gettid() }).unwrap_or(0);
    let launched = Stamp::now();
    let mut instance = crate::backend::launch(backend, launch).map_err(|e| error_chain(&e))?;
    let first = instance.pids();
    let deadline = Instant::now() + timeout;
    let mut problem = None;
    // The workload's work, from its first record to its result, on the host's clock.
    let (mut started, mut result) = (None, None);
    loop {
        if stop.load(Ordering::SeqCst) {
            problem = Some("interrupted".to_owned());
            break;
        }
        match instance.next_event(deadline) {
            Ok(Some(Event::Closed { .. })) => break,
            Ok(Some(Event::Record {
                record: workload::record::Record::Error { message, .. },
                ..
            })) => problem = Some(format!("workload error: {message}")),
            Ok(Some(Event::Record {
                record: workload::record::Record::Started { .. },
                at,
            })) => started = started.or(Some(at.0)),
            Ok(Some(Event::Record {
                record: workload::record::Record::Result { .. },
                at,
            })) => result = result.or(Some(at.0)),
            Ok(None) => {
                problem = Some(format!("timed out after {:.1} s", timeout.as_secs_f64()));
                break;
            }
            Err(e) => {
                problem = Some(error_chain(&e));
                break;
            }
        }
    }
    let exit = instance.wait(if problem.is_some() {
        Instant::now()
    } else {
        deadline
    });
    let vm_exits: Vec<(String, u64)> = instance
        .counters()
        .into_iter()
        .filter(|(name, _)| name.starts_with("exits_"))
        .collect();
    instance.teardown();
    let trace = tracer.finish().map_err(|e| e.to_string())?;
    let wall_ms = match &exit {
        Ok(exit) => exit.at.ms_since(launched),
        Err(e) => return Err(error_chain(e)),
    };
    if let Some(problem) = problem {
        return Err(problem);
    }
    if trace.lost > 0 {
        return Err(format!(
            "the trace lost {} events (its buffer filled): the counts would be too low, so \
             they are not given",
            trace.lost
        ));
    }
    let program = launch.workload.display().to_string();
    let mut counts = count(
        &trace.text,
        &[program.as_str(), "/init"],
        &first,
        Some(tracer_tid),
        started.zip(result),
    );
    let mut mechanism = MECHANISM;
    if !counts.workload_ran && !counts.served.is_empty() {
        // The sandbox served the workload itself: what its processes asked of the host
        // while the workload worked is what the workload cost the host.
        counts.workload = std::mem::take(&mut counts.served);
        for (nr, n) in &counts.workload {
            if let Some(setup) = counts.setup.get_mut(nr) {
                *setup = setup.saturating_sub(*n);
            }
        }
        counts.setup.retain(|_, n| *n > 0);
        counts.workload_ran = true;
        mechanism = SERVED;
    }
    if !counts.workload_ran {
        return Err(format!(
            "the workload never ran as a host program or a guest on {}: its system calls are \
             served inside the sandbox (as gVisor's Sentry serves them), so the host's calls \
             made on its behalf cannot be told from the setup's, and none are given",
            backend.name()
        ));
    }
    let total: u64 = counts.workload.values().sum();
    let named = |counts: BTreeMap<i64, u64>| {
        let mut named: Vec<(String, u64)> = counts
            .into_iter()
            .map(|(nr, n)| (names.get(&nr).cloned().unwrap_or(format!("nr {nr}")), n))
            .collect();
        named.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        named
    };
    let syscalls = named(counts.workload);
    let mut kvm_exits: Vec<(String, u64)> = counts.kvm_exits.into_iter().collect();
    kvm_exits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let per_s = total as f64 / (wall_ms / 1e3).max(1e-9);
    Ok(Surface {
        backend: backend.name().to_owned(),
        workload: launch.args.clone(),
        mechanism: mechanism.to_owned(),
        distinct_syscalls: u32::try_from(syscalls.len()).unwrap_or(u32::MAX),
        total_syscalls: total,
        wall_ms,
        syscalls_per_s: per_s,
        syscalls,
        vm_exits,
        kvm_exits,
        setup_syscalls: named(counts.setup),
        lost_events: trace.lost,
    })
}

/// How the surface is counted, for the results.
const MECHANISM: &str = "ftrace raw_syscalls:sys_enter: the workload's from its exec on (a VM's \
    monitor's from the guest's first KVM_RUN on), descendants from birth; the setup before \
    that apart: the launching thread's, the runtime's or monitor's, the first process's before \
    its exec; VM exits by reason from kvm:kvm_exit where the kernel has it";

#[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn u64_f64(n: u64) -> f64 {
    n as f64
}

/// How the surface is counted for a sandbox that serves its workload itself.
const SERVED: &str = "ftrace raw_syscalls:sys_enter on the monotonic clock: the workload never \
    runs on the host (the sandbox's own kernel serves it), so the sandbox's processes' calls from \
    the workload's first record to its result; the setup before and after apart";

/// `ioctl`'s number on x86-64.
const NR_IOCTL: i64 = 16;
/// `KVM_RUN`, as the trace prints an ioctl's request (hex, no prefix).
const KVM_RUN: &str = "ae80";

/// Who a traced process is working for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The thread that launches the instance (and helpers it starts): its system calls
    /// are setup until the workload runs (this project's runtime builds the container
    /// there), and not counted after (vcbench reading the instance).
    Launcher,
    /// The runtime's or monitor's own setup.
    Setup,
    /// The workload: from its exec, or for a VM from the guest's first run.
    Workload,
}

/// What a trace says reached the host kernel, split by who asked.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    /// The workload's system calls by number (for a VM the monitor's, from the guest's
    /// first `KVM_RUN` on).
    workload: BTreeMap<i64, u64>,
    /// The setup's system calls by number.
    setup: BTreeMap<i64, u64>,
    /// VM exits by reason, from `kvm_exit`.
    kvm_exits: BTreeMap<String, u64>,
    /// Whether the workload ran as a host program or a guest (its exec, or the first
    /// `KVM_RUN`): without it, nothing tells its calls from the setup's.
    workload_ran: bool,
    /// The setup's calls within the workload's window (its first record to its result):
    /// the calls a sandbox that serves the workload itself made on its behalf.
    served: BTreeMap<i64, u64>,
}

/// Reads a trace. A process counts once it executes a program: the workload (one of
/// `workload_files`) makes it the workload's, anything else (an OCI runtime, a monitor)
/// the setup's; the instance's `first` host processes count as setup from their birth
/// until they execute the workload. Children take their parent's role. The first
/// `KVM_RUN` turns the setup into the workload: from then on a monitor serves its guest.
/// The `launcher` thread and the helpers it starts count as setup until the workload
/// runs (its exec, or the guest's first run), and not at all after; every backend's
/// launch goes through it, so what it does for each is counted alike.
fn count(
    trace: &str,
    workload_files: &[&str],
    first: &[u32],
    launcher: Option<u32>,
    window: Option<(u64, u64)>,
) -> Counts {
    let mut roles: HashMap<u32, Role> = launcher.map(|l| (l, Role::Launcher)).into_iter().collect();
    let mut guest_runs = false;
    let mut workload_runs = false;
    let mut counts = Counts::default();
    for line in trace.lines().filter(|l| !l.starts_with('#')) {
        let Some((task, rest)) = line.split_once(" [") else {
            continue;
        };
        let Some(pid) = task
            .trim()
            .rsplit_once('-')
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let Some((head, event)) = rest.split_once(": ") else {
            continue;
        };
        // The event's time, seconds on the trace clock, as nanoseconds.
        let at = head
            .split_whitespace()
            .last()
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(|t| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let ns = (t * 1e9).round() as u64;
                ns
            });
        let role = roles.get(&pid).copied();
        if let Some(args) = event.strip_prefix("sys_enter: NR ") {
            // `16 (7, ae80, 0, 0, 0, 0)`: the number, then the arguments in hex.
            let Some(nr) = args
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            let request = args
                .split_once('(')
                .and_then(|(_, a)| a.split(", ").nth(1))
                .map(str::trim);
            if role.is_some() && nr == NR_IOCTL && request == Some(KVM_RUN) {
                guest_runs = true;
                workload_runs = true;
            }
            let within = window
                .zip(at)
                .is_some_and(|((from, to), at)| (from..=to).contains(&at));
            if role == Some(Role::Setup) && !guest_runs && within {
                *counts.served.entry(nr).or_insert(0) += 1;
            }
            let bucket = match role {
                Some(Role::Workload) => &mut counts.workload,
                Some(Role::Setup) if guest_runs => &mut counts.workload,
                Some(Role::Setup) => &mut counts.setup,
                Some(Role::Launcher) if !workload_runs => &mut counts.setup,
                Some(Role::Launcher) | None => continue,
            };
            *bucket.entry(nr).or_insert(0) += 1;
        } else if let Some(fields) = event.strip_prefix("sched_process_exec: ") {
            let file = fields
                .split_whitespace()
                .find_map(|f| f.strip_prefix("filename="))
                .unwrap_or_default();
            let new = match workload_files.contains(&file) {
                true => Role::Workload,
                false => Role::Setup,
            };
            workload_runs |= new == Role::Workload;
            roles.insert(pid, new);
        } else if let Some(fields) = event.strip_prefix("sched_process_fork: ") {
            let field = |key: &str| {
                fields
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix(key))
                    .and_then(|v| v.parse::<u32>().ok())
            };
            if let (Some(parent), Some(child)) = (field("pid="), field("child_pid=")) {
                // The instance's first process is setup from its birth by the launcher;
                // a process the workload or a runtime starts takes its parent's role,
                // even when the instance's processes were listed after it was born.
                let role = match roles.get(&parent).copied() {
                    Some(Role::Launcher) | None if first.contains(&child) => Some(Role::Setup),
                    inherited => inherited,
                };
                if let Some(role) = role {
                    roles.insert(child, role);
                }
            }
        } else if let Some(fields) = event.strip_prefix("kvm_exit: ") {
            if role.is_some() {
                if let Some(reason) = fields
                    .split_whitespace()
                    .skip_while(|w| *w != "reason")
                    .nth(1)
                {
                    *counts.kvm_exits.entry(reason.to_owned()).or_insert(0) += 1;
                }
            }
        }
    }
    counts.workload_ran = workload_runs;
    counts
}

/// x86-64 system call names by number, from the kernel headers when installed.
fn syscall_names() -> HashMap<i64, String> {
    std::fs::read_to_string(UNISTD)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "#define").then_some(())?;
            let name = words.next()?.strip_prefix("__NR_")?;
            let nr = words.next()?.parse().ok()?;
            Some((nr, name.to_owned()))
        })
        .collect()
}

/// What a finished trace holds.
struct Trace {
    text: String,
    lost: u64,
}

/// An ftrace instance recording this thread and everything it starts. Removed on drop,
/// with tracefs unmounted again if it was mounted for it.
struct Tracer {
    dir: PathBuf,
    mounted: bool,
}

impl Tracer {
    fn start() -> Result<Self, Error> {
        let root = Path::new(TRACEFS);
        let mut mounted = false;
        if !root.join("instances").exists() {
            mount_tracefs()?;
            mounted = true;
        }
        remove_stale();
        let dir = root
            .join("instances")
            .join(format!("vcbench-{}", std::process::id()));
        if dir.exists() {
            let _ = std::fs::remove_dir(&dir);
        }
        std::fs::create_dir(&dir).map_err(|source| Error::Tracefs {
            path: dir.clone(),
            source,
        })?;
        let tracer = Tracer { dir, mounted };
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        tracer.write("buffer_size_kb", &buffer_kib(cpus).to_string())?;
        tracer.write("options/event-fork", "1")?;
        // Stamps on the host's one clock, so events compare with the workload's records
        // (older kernels lack it: then a sandbox that serves its workload is not counted).
        let _ = tracer.write("trace_clock", "mono");
        // SAFETY: gettid has no preconditions and cannot fail.
        let tid = unsafe { libc::gettid() };
        tracer.write("set_event_pid", &tid.to_string())?;
        for event in [
            "raw_syscalls/sys_enter",
            "sched/sched_process_exec",
            "sched/sched_process_fork",
        ] {
            tracer.write(&format!("events/{event}/enable"), "1")?;
        }
        // Every VM exit, those KVM handles in the kernel too, where KVM has the event.
        if tracer.dir.join("events/kvm/kvm_exit/enable").exists() {
            tracer.write("events/kvm/kvm_exit/enable", "1")?;
        }
        tracer.write("tracing_on", "1")?;
        Ok(tracer)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), Error> {
        let path = self.dir.join(file);
        std::fs::write(&path, value).map_err(|source| Error::Tracefs { path, source })
    }

    fn finish(self) -> Result<Trace, Error> {
        self.write("tracing_on", "0")?;
        let path = self.dir.join("trace");
        let text =
            std::fs::read_to_string(&path).map_err(|source| Error::Tracefs { path, source })?;
        let lost = std::fs::read_dir(self.dir.join("per_cpu"))
            .map(|cpus| {
                cpus.flatten()
                    .filter_map(|cpu| std::fs::read_to_string(cpu.path().join("stats")).ok())
                    .flat_map(|stats| {
                        stats
                            .lines()
                            .filter(|l| {
                                l.starts_with("overrun:") || l.starts_with("dropped events:")
                            })
                            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                            .collect::<Vec<_>>()
                    })
                    .sum()
            })
            .unwrap_or(0);
        Ok(Trace { text, lost })
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("tracing_on"), "0");
        // An instance directory is removed with rmdir, which frees its buffers.
        let _ = std::fs::remove_dir(&self.dir);
        if self.mounted {
            if let Ok(target) = std::ffi::CString::new(TRACEFS) {
                // SAFETY: unmounts the tracefs mounted by `start`, by its NUL-terminated path.
                unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

fn mount_tracefs() -> Result<(), Error> {
    let (Ok(source), Ok(target)) = (
        std::ffi::CString::new("tracefs"),
        std::ffi::CString::new(TRACEFS),
    ) else {
        return Err(Error::Mount(std::io::Error::other("path with a NUL")));
    };
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; no data.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            source.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::Mount(std::io::Error::last_os_error()))
    }
}

/// Removes the ftrace instances of vcbench processes that are gone (a killed run's), and
/// returns their paths. Only where tracefs is mounted: a killed run that mounted it left it
/// mounted, with its instance in it.
pub fn remove_stale() -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(dirs) = std::fs::read_dir(Path::new(TRACEFS).join("instances")) else {
        return removed;
    };
    for dir in dirs.flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("vcbench-") else {
            continue;
        };
        if pid.parse::<u32>().is_ok()
            && !Path::new("/proc").join(pid).exists()
            && std::fs::remove_dir(dir.path()).is_ok()
        {
            removed.push(dir.path());
        }
    }
    removed
}

/// What `backend` lets a hostile program reach of the host kernel: its filter's allowed
/// calls, of those the host's kernel headers name. Needs no tracing.
pub fn reachable(backend: &dyn Backend) -> Reachable {
    let reach = backend.reach();
    let of = u32::try_from(syscall_names().len()).unwrap_or(u32::MAX);
    Reachable {
        backend: backend.name().to_owned(),
        filter: reach.filter,
        // Without the headers there is nothing to count against.
        syscalls: (of > 0).then(|| reach.calls.of(of)).flatten(),
        of,
        conditional: reach.conditional,
        vm_exits: reach.vm_exits,
    }
}

/// The figure of what a backend lets a program reach: the host system calls its filter
/// allows (none where it was not counted).
pub fn reachable_figures(reachable: &Reachable) -> Vec<Figure> {
    reachable
        .syscalls
        .map(|n| {
            Figure::value(
                &reachable.backend,
                "isolation",
                "host_syscalls_reachable",
                "syscalls",
                Better::Lower,
                f64::from(n),
            )
        })
        .into_iter()
        .flatten()
        .collect()
}

/// Figures of a backend's traced runs, per workload: the workload's distinct system calls
/// and system calls per second, and the setup's system calls before it ran.
pub fn figures(surfaces: &[Surface]) -> Vec<Figure> {
    let mut figures = Vec::new();
    for s in surfaces {
        let name = s.workload.first().map_or("?", String::as_str);
        for (metric, unit, value) in [
            (
                format!("host_syscalls_distinct_{name}"),
                "syscalls",
                f64::from(s.distinct_syscalls),
            ),
            (
                format!("host_syscalls_per_s_{name}"),
                "/s",
                s.syscalls_per_s,
            ),
            (
                format!("host_syscalls_setup_{name}"),
                "syscalls",
                u64_f64(s.setup_syscalls.iter().map(|(_, n)| n).sum()),
            ),
        ] {
            figures.extend(Figure::value(
                &s.backend,
                "isolation",
                &metric,
                unit,
                Better::Lower,
                value,
            ));
        }
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "\
# tracer: nop
         vcbench-100     [000] ..... 1.000: sys_enter: NR 56 (0, 0, 0, 0, 0, 0)
         vcbench-100     [000] ..... 1.001: sched_process_fork: comm=vcbench pid=100 child_comm=vcbench child_pid=200
         vcbench-200     [001] ..... 1.002: sys_enter: NR 59 (0, 0, 0, 0, 0, 0)
        workload-200     [001] ..... 1.003: sched_process_exec: filename=/w pid=200 old_pid=200
        workload-200     [001] ..... 1.004: sys_enter: NR 110 (0, 0, 0, 0, 0, 0)
        workload-200     [001] ..... 1.005: sys_enter: NR 110 (0, 0, 0, 0, 0, 0)
        workload-200     [001] ..... 1.006: sched_process_fork: comm=workload pid=200 child_comm=workload child_pid=201
        workload-201     [000] ..... 1.007: sys_enter: NR 60 (0, 0, 0, 0, 0, 0)
         vcbench-100     [000] ..... 1.008: sys_enter: NR 0 (0, 0, 0, 0, 0, 0)
";

    #[test]
    fn buffers_shrink_per_cpu_on_large_hosts_within_bounds() {
        assert_eq!(buffer_kib(2), 16 * 1024);
        assert_eq!(buffer_kib(8), 8 * 1024);
        assert_eq!(buffer_kib(256), 4 * 1024);
        assert_eq!(buffer_kib(0), 16 * 1024);
    }

    #[test]
    fn only_the_program_and_its_descendants_count_from_its_exec() {
        let counts = count_all(TRACE, &["/w"], &[], None);
        assert_eq!(counts.workload, BTreeMap::from([(60, 1), (110, 2)]));
        // The forked child's exec call (NR 59), before it became the workload, belongs
        // to nobody traced: it is not the instance's first process.
        assert!(counts.setup.is_empty());
        // As the instance's first process, it is setup until its exec.
        let counts = count_all(TRACE, &["/w"], &[200], None);
        assert_eq!(counts.setup, BTreeMap::from([(59, 1)]));
        assert_eq!(counts.workload, BTreeMap::from([(60, 1), (110, 2)]));
        // The launching thread's calls are setup until the workload runs (NR 56), and
        // not counted after (NR 0: vcbench reading the instance).
        let counts = count_all(TRACE, &["/w"], &[200], Some(100));
        assert_eq!(counts.setup, BTreeMap::from([(56, 1), (59, 1)]));
        assert_eq!(counts.workload, BTreeMap::from([(60, 1), (110, 2)]));
        // The workload's own child is the workload's, even when the instance's processes
        // were listed after it was born (a container's cgroup holds both).
        let counts = count_all(TRACE, &["/w"], &[200, 201], Some(100));
        assert_eq!(counts.setup, BTreeMap::from([(56, 1), (59, 1)]));
        assert_eq!(counts.workload, BTreeMap::from([(60, 1), (110, 2)]));
    }

    /// An OCI runtime execs itself, sets up, and execs the workload as /init.
    const RUNTIME: &str = "\
         vcbench-100     [000] ..... 1.000: sched_process_fork: comm=vcbench pid=100 child_comm=vcbench child_pid=300
         vcbench-300     [000] ..... 1.001: sched_process_exec: filename=/usr/sbin/runc pid=300 old_pid=300
            runc-300     [000] ..... 1.002: sys_enter: NR 56 (0, 0, 0, 0, 0, 0)
            runc-300     [000] ..... 1.003: sched_process_fork: comm=runc pid=300 child_comm=runc child_pid=301
            runc-301     [001] ..... 1.004: sys_enter: NR 165 (0, 0, 0, 0, 0, 0)
            runc-301     [001] ..... 1.005: sched_process_exec: filename=/init pid=301 old_pid=301
            init-301     [001] ..... 1.006: sys_enter: NR 39 (0, 0, 0, 0, 0, 0)
";

    #[test]
    fn an_oci_runtime_s_setup_is_counted_apart_from_the_workload() {
        let counts = count_all(RUNTIME, &["/w", "/init"], &[301], None);
        assert_eq!(counts.setup, BTreeMap::from([(56, 1), (165, 1)]));
        assert_eq!(counts.workload, BTreeMap::from([(39, 1)]));
        assert!(counts.workload_ran);
        // A sandbox that serves the workload itself never executes it on the host: all
        // its calls are setup, and the trace says the workload never ran.
        let served = count_all(RUNTIME, &["/w"], &[301], None);
        assert!(!served.workload_ran);
        assert!(served.workload.is_empty());
        // Its processes' calls while the workload worked (its first record to its result)
        // are what it asked of the host on the workload's behalf.
        let window = Some((1_003_000_000, 1_005_000_000));
        let served = count(RUNTIME, &["/w"], &[301], None, window);
        assert_eq!(served.served, BTreeMap::from([(165, 1)]));
    }

    /// A trace read without a window for the workload's work.
    fn count_all(trace: &str, files: &[&str], first: &[u32], launcher: Option<u32>) -> Counts {
        count(trace, files, first, launcher, None)
    }

    /// A monitor sets up, then its vCPU thread runs the guest, which exits twice.
    const MONITOR: &str = "\
         vcbench-100     [000] ..... 1.000: sched_process_fork: comm=vcbench pid=100 child_comm=vcbench child_pid=400
         vcbench-400     [000] ..... 1.001: sched_process_exec: filename=/cache/vcbench-vmm pid=400 old_pid=400
    vcbench-vmm-400     [000] ..... 1.002: sys_enter: NR 9 (0, 0, 0, 0, 0, 0)
    vcbench-vmm-400     [000] ..... 1.003: sched_process_fork: comm=vcbench-vmm pid=400 child_comm=vcpu0 child_pid=401
          vcpu0-401     [001] ..... 1.004: sys_enter: NR 16 (7, ae80, 0, 0, 0, 0)
          vcpu0-401     [001] ..... 1.005: kvm_exit: vcpu 0 reason EXIT_IOIO rip 0x1000 info1 0x0 info2 0x0
          vcpu0-401     [001] ..... 1.006: kvm_exit: vcpu 0 reason EXIT_HLT rip 0x1004 info1 0x0 info2 0x0
    vcbench-vmm-400     [000] ..... 1.007: sys_enter: NR 1 (0, 0, 0, 0, 0, 0)
";

    #[test]
    fn a_monitor_s_setup_ends_at_the_guest_s_first_run() {
        let counts = count_all(MONITOR, &["/w", "/init"], &[400], Some(100));
        assert_eq!(counts.setup, BTreeMap::from([(9, 1)]));
        assert_eq!(counts.workload, BTreeMap::from([(1, 1), (16, 1)]));
        assert_eq!(
            counts.kvm_exits,
            BTreeMap::from([("EXIT_HLT".to_owned(), 1), ("EXIT_IOIO".to_owned(), 1)])
        );
    }

    #[test]
    fn syscall_names_come_from_the_kernel_headers() {
        let names = syscall_names();
        if Path::new(UNISTD).exists() {
            assert_eq!(names.get(&39).map(String::as_str), Some("getpid"));
        }
    }
}
