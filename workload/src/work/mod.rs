//! The workloads themselves. Each returns the metrics of its result record.

mod alloc;
mod cpu;
mod fault;
mod file;
mod fork;
mod hostnet;
mod mem;
mod net;
mod probe;
mod syscall;

use std::time::Duration;

use workload::record::{Fact, Metric};

use crate::args::{Args, Workload};

/// Why a workload could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A `fault` workload failed as asked.
    #[error("{0}")]
    Fault(String),
    /// The parameters ask for more than the machine can address.
    #[error("{0} is too large for this machine")]
    TooLarge(&'static str),
}

impl Error {
    /// An I/O error with what was being done.
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: format!("{}: {source}", what.into()),
            source,
        }
    }

    /// The last OS error with what was being done.
    fn last_os(what: impl Into<String>) -> Self {
        Self::io(what, std::io::Error::last_os_error())
    }
}

pub use alloc::Held;

/// What a finished workload hands back: its figures, and memory it still holds.
pub struct Done {
    /// The figures for the result record.
    pub metrics: Vec<Metric>,
    /// For `alloc`: the memory, held until released after the result is written.
    pub held: Option<Held>,
    /// For `probe`: what it saw and could do.
    pub facts: Vec<Fact>,
}

impl From<Vec<Metric>> for Done {
    fn from(metrics: Vec<Metric>) -> Self {
        Done {
            metrics,
            held: None,
            facts: Vec::new(),
        }
    }
}

/// Runs the workload the arguments name.
pub fn run(args: &Args) -> Result<Done, Error> {
    Ok(match &args.workload {
        Workload::Hello => Done {
            metrics: hello(),
            held: None,
            facts: clock_facts(),
        },
        Workload::Cpu { mib } => cpu::run(*mib)?.into(),
        Workload::Mem { mib, iterations } => mem::run(*mib, *iterations)?.into(),
        Workload::Syscall { count } => syscall::run(*count).into(),
        Workload::Fork { count } => fork::run(*count)?.into(),
        Workload::File { count, size, dir } => file::run(*count, *size, dir)?.into(),
        Workload::Net { count, size } => net::run(*count, *size)?.into(),
        Workload::Hostnet {
            peer,
            count,
            size,
            bulk_mib,
            ifaddr,
            wait_ms,
        } => hostnet::run(&hostnet::Options {
            peer: *peer,
            count: *count,
            size: *size,
            bulk_mib: *bulk_mib,
            ifaddr: *ifaddr,
            wait_ms: *wait_ms,
        })?,
        Workload::Alloc { mib, hold_ms } => {
            let (metrics, held) = alloc::run(*mib, *hold_ms)?;
            Done {
                metrics,
                held: Some(held),
                facts: Vec::new(),
            }
        }
        Workload::Fault { kind, limit } => {
            fault::run(*kind, *limit)?;
            Vec::new().into()
        }
        Workload::Probe => Done {
            metrics: Vec::new(),
            held: None,
            facts: probe::run(),
        },
    })
}

/// `count` as a float, for rates.
#[allow(clippy::cast_precision_loss)]
fn as_f64(count: u64) -> f64 {
    count as f64
}

/// Seconds in `d`, never zero (a rate over a zero interval would be infinite).
fn seconds(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

/// MiB to bytes, refusing sizes the address space cannot hold.
fn mib_to_bytes(mib: u64, what: &'static str) -> Result<usize, Error> {
    mib.checked_mul(1 << 20)
        .and_then(|b| usize::try_from(b).ok())
        .filter(|b| *b <= isize::MAX as usize)
        .ok_or(Error::TooLarge(what))
}

/// This process's peak resident set (`VmHWM` in /proc/self/status), KiB.
///
/// Unlike wait4's `ru_maxrss`, it starts afresh at exec, so it measures the workload alone
/// and not the image of the process that launched it.
pub fn peak_rss_kib() -> Option<f64> {
    status_kib("VmHWM:")
}

/// A KiB field of /proc/self/status.
fn status_kib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The kernel's clocks where `hello` runs: the clocksource it keeps time with, and the
/// device its timer interrupts come from (`lapic-deadline` when the local APIC timer is
/// in TSC-deadline mode, `lapic` when it counts down from a calibrated rate). Two small
/// sysfs reads, on every backend alike; a file that is missing is left out.
fn clock_facts() -> Vec<Fact> {
    [
        (
            "clocksource",
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        ),
        (
            "clock_event_device",
            "/sys/devices/system/clockevents/clockevent0/current_device",
        ),
    ]
    .into_iter()
    .filter_map(|(name, path)| {
        let value = std::fs::read_to_string(path).ok()?;
        let value = value.trim();
        (!value.is_empty()).then(|| Fact::new(name, value))
    })
    .collect()
}

/// `hello`'s one figure: the CPUs it can see online (a VM's vCPUs as its kernel counts them).
fn hello() -> Vec<Metric> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if online > 0 {
        #[allow(clippy::cast_precision_loss)]
        let cpus = online as f64;
        vec![Metric::new("cpus_online", cpus, "CPUs")]
    } else {
        Vec::new()
    }
}
