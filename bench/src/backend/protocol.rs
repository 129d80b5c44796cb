//! The protocol every backend speaks: a [`Backend`] launches an [`Instance`]; the harness
//! reads the instance's [`Event`]s (workload records, each stamped on the host's monotonic
//! clock when it arrived), samples its [`Footprint`], asks it to finish, waits for its
//! [`Exit`] and tears it down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use reports::document::Part;
use workload::record::Record;

use super::hostnet::run::RunNet;
use crate::clock::Stamp;
use crate::procfs::{self, Memory};
use crate::scenario::Scenario;

/// Errors from a backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The instance could not be started.
    #[error("cannot start {what}")]
    Spawn {
        /// What was being started.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the instance failed.
    #[error("cannot wait for the instance")]
    Wait(#[source] std::io::Error),
    /// The workload wrote a line longer than the host reads as one (a flood).
    #[error("the instance wrote a line of more than {0} bytes on its record stream")]
    LineTooLong(usize),
    /// The workload wrote a malformed record.
    #[error(transparent)]
    Record(#[from] workload::record::Error),
}

/// Whether a backend can run on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// It can.
    Available,
    /// It cannot, and why (with what would fix it).
    Unavailable(String),
}

/// What to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The workload executable on the host.
    pub workload: PathBuf,
    /// Its arguments (subcommand and options).
    pub args: Vec<String>,
}

/// Something that happened in an instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The workload wrote a record; `at` is when the host read it.
    Record {
        /// The record.
        record: Record,
        /// When the host received it (or, for a monitor, saw the guest write it).
        at: Stamp,
    },
    /// The record channel closed: the workload and everything it started are done with it.
    Closed {
        /// When the stream ended.
        at: Stamp,
    },
}

/// How an instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Exit status, or 128 + signal number when killed by a signal.
    pub status: i32,
    /// When it was reaped.
    pub at: Stamp,
    /// `ru_maxrss` of the instance's main host process, KiB (see `Run::host_maxrss_kib`).
    pub maxrss_kib: Option<u64>,
    /// It was killed because it outlived its deadline.
    pub timed_out: bool,
}

impl Exit {
    /// An end with `status`, stamped now, not for time, with no resource usage: for an
    /// instance whose end is not a reaped host process of its own.
    pub fn now(status: i32) -> Self {
        Exit {
            status,
            at: Stamp::now(),
            maxrss_kib: None,
            timed_out: false,
        }
    }

    /// How a reaped host process ended, stamped now.
    pub fn reaped(reaped: ::container::process::Reaped, timed_out: bool) -> Self {
        Exit {
            status: reaped.status,
            at: Stamp::now(),
            maxrss_kib: Some(reaped.maxrss_kib),
            timed_out,
        }
    }
}

/// Where an instance's records get their host-clock stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamping {
    /// A host thread blocked reading the instance's pipe stamps a record when its read
    /// returns: a wake-up after the write (see [`crate::clock::pipe_stamp_delay_ms`]).
    PipeReader,
    /// The monitor stamps the guest's marker write at the VM exit it causes.
    MonitorExit,
}

impl Stamping {
    /// In words, for the results' plan.
    pub fn describe(self) -> &'static str {
        match self {
            Stamping::PipeReader => "by a host thread when its read of the instance's pipe returns",
            Stamping::MonitorExit => "by the monitor at the VM exit of the guest's marker write",
        }
    }
}

/// A way of running the workload.
pub trait Backend: Sync {
    /// Short name, as used on the command line and in results.
    fn name(&self) -> &'static str;
    /// One line on what it is.
    fn describe(&self) -> &'static str;
    /// Whether it can run here.
    fn availability(&self) -> Availability;
    /// How it is configured, in one line for the results' plan (empty when it has no settings).
    fn settings(&self) -> String {
        String::new()
    }
    /// Whether it can run `scenario`; `Err` says why not (the run is recorded as skipped).
    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        let _ = scenario;
        Ok(())
    }
    /// Whether `vcbench run` runs it when no backend is named (the peers run only when named).
    fn in_default_set(&self) -> bool {
        true
    }
    /// Whether its instances run the workload program itself (a Linux userland), which the
    /// isolation probe needs; `Err` says why not.
    fn runs_programs(&self) -> Result<(), String> {
        Ok(())
    }
    /// Whether it runs a user's program from a user's image (a workload line `exec --root
    /// DIR ...`); `Err` says why not.
    fn runs_user_images(&self) -> Result<(), String> {
        Err(format!(
            "{} does not run a user's image yet (native, container, runc, crun, microvm and qemu do)",
            self.name()
        ))
    }
    /// Makes, ahead of the measured runs, what launching `launch` needs and takes a while
    /// to make (a Linux guest's initramfs from a user's image), so that no run's time
    /// includes it; `Err` says why it cannot be launched, and what to change.
    fn prepare(&self, launch: &Launch) -> Result<(), String> {
        let _ = launch;
        Ok(())
    }
    /// How its instances' records are stamped on the host's clock.
    fn stamping(&self) -> Stamping {
        Stamping::PipeReader
    }
    /// Starts one instance.
    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error>;
    /// The same backend with each instance held to `cpu_percent` of one CPU and
    /// `memory_mib` of memory, or `None` when it has no way to limit an instance.
    fn limited(&self, cpu_percent: u32, memory_mib: u64) -> Option<Box<dyn Backend>> {
        let _ = (cpu_percent, memory_mib);
        None
    }
    /// The version of the program it runs, for a peer (`runc version 1.1.5`); `None`
    /// for this project's own backends, which are this build of vcbench.
    fn version(&self) -> Option<String> {
        None
    }
    /// This backend started warm: prepared ahead (here, once: a snapshot taken, a pool
    /// filled), its `launch` the start on demand; `Err` says why it has no warm start. What
    /// was prepared is removed when the returned backend is dropped.
    fn warm(&self) -> Result<Box<dyn Backend>, String> {
        Err("it has no warm start".to_owned())
    }
    /// This backend with its instances on the run's own network `net` (the hostnet
    /// scenario: TCP with a peer on the host side); `Err` says why it cannot join it.
    fn networked(&self, net: &Arc<RunNet>) -> Result<Box<dyn Backend>, String> {
        let _ = net;
        Err(format!(
            "{} does not join the run's network yet (native, container, microvm and qemu do)",
            self.name()
        ))
    }
    /// This backend with its guests reaching `peer` over vsock (the vsock scenario: the
    /// hostnet work between a VM's guest and its host, with no network); `Err` says why
    /// it cannot.
    fn over_vsock(
        &self,
        peer: &Arc<super::hostnet::vsock::VsockPeer>,
    ) -> Result<Box<dyn Backend>, String> {
        let _ = peer;
        Err(format!(
            "vsock is a VM's channel to its own host; {} reaches the host over TCP (the \
             hostnet scenario)",
            self.name()
        ))
    }
    /// What a hostile program in an instance could reach of the host kernel, whatever the
    /// workload calls: the filter between them.
    fn reach(&self) -> Reach {
        Reach {
            filter: "not counted for this backend".to_owned(),
            calls: Calls::Uncounted,
            conditional: Vec::new(),
            vm_exits: Vec::new(),
        }
    }
}

/// What a hostile program in an instance could reach of the host kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Reach {
    /// What limits the calls, and whose calls they are.
    pub filter: String,
    /// How many host system calls can be made.
    pub calls: Calls,
    /// Calls allowed or refused only with some arguments, one line each.
    pub conditional: Vec<String>,
    /// For a VM: the kinds of exit handled by the monitor's own code.
    pub vm_exits: Vec<String>,
}

/// How many of the host's system calls can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    /// Every one: no filter.
    All,
    /// Every one but this many, refused whatever the arguments (a deny-list).
    AllBut(usize),
    /// Only this many (an allow-list).
    Only(usize),
    /// Not counted (a peer's own filter).
    Uncounted,
}

impl Calls {
    /// The count, of `of` system calls the architecture has.
    pub fn of(self, of: u32) -> Option<u32> {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match self {
            Calls::All => Some(of),
            Calls::AllBut(n) => Some(of.saturating_sub(count(n))),
            Calls::Only(n) => Some(count(n).min(of)),
            Calls::Uncounted => None,
        }
    }
}

/// A running instance of the workload.
pub trait Instance: Send {
    /// The host processes that make up the instance, for memory sampling.
    fn pids(&self) -> Vec<u32>;
    /// The next event, waiting no later than `until`; `Ok(None)` when `until` passed first.
    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error>;
    /// Asks the workload to finish (ends an `alloc` hold).
    fn release(&mut self);
    /// Waits for the instance to exit; at `until` it is killed (and `timed_out` set).
    fn wait(&mut self, until: Instant) -> Result<Exit, Error>;
    /// The last lines the workload wrote on its diagnostic stream, for failure reports.
    fn diagnostics(&mut self) -> String;
    /// The instance's memory now: its host processes (RSS/PSS/USS) and, where the backend
    /// can tell them apart, named parts such as a cgroup's usage or a monitor's overhead.
    fn footprint(&self) -> Footprint {
        Footprint {
            processes: procfs::memory_of(&self.pids()),
            parts: Vec::new(),
        }
    }
    /// The backend's own phases (sandbox built, VM created, ...), in order, once the
    /// instance has exited.
    fn phases(&mut self) -> Vec<(String, Stamp)> {
        Vec::new()
    }
    /// Counts the backend keeps (VM exits by kind, ...), once the instance has exited.
    fn counters(&mut self) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// Releases everything the instance used. Called once, after [`Instance::wait`].
    fn teardown(self: Box<Self>);
}

/// The memory of an instance at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Footprint {
    /// The summed memory of the instance's host processes, if any could be read.
    pub processes: Option<Memory>,
    /// Named parts, KiB: what the backend can attribute (its cgroup's memory, the guest's
    /// touched memory and the monitor's overhead).
    pub parts: Vec<(Part, u64)>,
}

/// `line` cut to at most `max` characters, with `...` where it was cut: a flooding
/// workload's output stays out of failure reasons.
pub fn clip(line: &str, max: usize) -> String {
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_owned(),
    }
}

/// An error with its chain of causes, `a: b: c`, for failure reasons in results.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
