//! The `microvm` backend: this project's KVM monitor, in a process of its own
//! (`vcbench-vmm`, embedded like the workload), running micro guests.
//!
//! Micro guests have no kernel: `startup` boots `hello` (one marker, then halt),
//! `footprint` boots `touch N` and holds the VM so its memory can be split into the
//! monitor's own overhead and the guest memory touched, `exits` times port-I/O exits. The
//! guest's first marker is stamped by the monitor at the exit it causes, on the same
//! CLOCK_MONOTONIC as the runner, and becomes the `started` record.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use workload::record::{Metric, Record};

use super::supervised::Supervised;
use super::{Availability, Backend, Error, Event, Exit, Footprint, Instance, Launch};
use crate::clock::Stamp;
use crate::procfs;
use crate::scenario::Scenario;

/// Guest memory of a microVM unless told otherwise, MiB.
pub const GUEST_MIB: u64 = 128;

/// The microVM backend.
#[derive(Debug, Clone, Copy)]
pub struct MicroVm {
    /// Guest memory, MiB.
    pub memory_mib: u64,
}

impl Default for MicroVm {
    fn default() -> Self {
        MicroVm {
            memory_mib: GUEST_MIB,
        }
    }
}

impl Backend for MicroVm {
    fn name(&self) -> &'static str {
        "microvm"
    }

    fn describe(&self) -> &'static str {
        "this project's KVM monitor in its own process, running micro guests (no kernel yet)"
    }

    fn availability(&self) -> Availability {
        match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
            Ok(_) => Availability::Available,
            Err(e) => Availability::Unavailable(format!(
                "/dev/kvm cannot be opened read-write ({e}): load kvm_intel or kvm_amd and join the kvm group"
            )),
        }
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        match scenario {
            Scenario::Startup | Scenario::Footprint | Scenario::Exits => Ok(()),
            _ => Err("needs a Linux guest, which this backend does not boot yet".to_owned()),
        }
    }

    fn settings(&self) -> String {
        format!("1 vCPU, {} MiB, micro guests", self.memory_mib)
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        let (guest, hold) = guest_for(&launch.args)?;
        let vmm =
            crate::image::install_vmm(&crate::image::cache_dir()).map_err(|e| Error::Spawn {
                what: "the monitor".to_owned(),
                source: std::io::Error::other(e),
            })?;
        let mut command = Command::new(&vmm);
        command
            .args(&guest)
            .args(["--memory-mib", &self.memory_mib.to_string()]);
        if hold {
            command.arg("--hold");
        }
        let facts = Arc::new(Mutex::new(Facts::default()));
        let shared = Arc::clone(&facts);
        let handler = Box::new(move |line: &str, _at: Stamp| read_report(line, &shared));
        Ok(Box::new(VmInstance {
            process: Supervised::spawn(&mut command, handler, false)?,
            facts,
        }))
    }
}

/// The micro guest for a workload command line, and whether it holds.
fn guest_for(args: &[String]) -> Result<(Vec<String>, bool), Error> {
    let option = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    };
    match args.first().map(String::as_str) {
        Some("hello") => Ok((vec!["hello".into()], false)),
        Some("alloc") => Ok((vec!["touch".into(), option("--mib", "64")], true)),
        Some("exits") => Ok((vec!["exits".into(), option("--count", "10000")], false)),
        other => Err(Error::Spawn {
            what: format!("a micro guest for {other:?}"),
            source: std::io::Error::other("no micro guest does that"),
        }),
    }
}

/// What the monitor reported, kept for phases, counters and footprint.
#[derive(Debug, Default)]
struct Facts {
    phases: Vec<(String, Stamp)>,
    counters: Vec<(String, u64)>,
    guest_touched_kib: Option<u64>,
}

/// Turns one of the monitor's JSON lines into events, keeping what it reports.
fn read_report(line: &str, facts: &Mutex<Facts>) -> Vec<Result<Event, Error>> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
        return Vec::new();
    };
    if let Some(ns) = value.get("torn_down").and_then(serde_json::Value::as_u64) {
        if let Ok(mut f) = facts.lock() {
            f.phases.push(("torn_down".to_owned(), Stamp(ns)));
        }
        return Vec::new();
    }
    let Some(report) = value.get("report") else {
        return Vec::new();
    };
    let phases: Vec<(String, Stamp)> = report["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[0].as_str()?.to_owned(), Stamp(p[1].as_u64()?))))
        .collect();
    let stamp_of = |name: &str| phases.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
    let mut events = Vec::new();
    let workload = "micro guest".to_owned();
    if let Some(at) = stamp_of("first_marker") {
        let record = Record::Started {
            workload: workload.clone(),
            pid: 0,
            pid1: true,
        };
        events.push(Ok(Event::Record { record, at }));
    }
    let at = stamp_of("halted").unwrap_or_else(Stamp::now);
    let record = if report["end"] == "halted" || report["end"] == "reset" {
        Record::Result {
            workload,
            metrics: metrics(report),
        }
    } else {
        let why = report["reason"]
            .as_str()
            .unwrap_or("the guest did not halt");
        let registers = report["registers"].as_str().unwrap_or_default();
        let end = report["end"].as_str().unwrap_or("?");
        Record::Error {
            workload,
            message: format!("{why} ({end}) {registers}"),
        }
    };
    events.push(Ok(Event::Record { record, at }));
    if let Ok(mut f) = facts.lock() {
        f.counters = report["exits"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
            .collect();
        f.guest_touched_kib = report["guest_touched_kib"].as_u64();
        f.phases.extend(phases);
    }
    events
}

/// The guest's figures: for `exits`, the cost of one exit round trip, from the monitor's
/// stamps of the first and last markers. `writes` markers stamp `writes - 1` round trips
/// between the first and the last (guest resumed, next write reached the monitor).
fn metrics(report: &serde_json::Value) -> Vec<Metric> {
    let mut metrics = Vec::new();
    let first = report["markers"][0][1].as_u64();
    let last = report["last_marker"][1].as_u64();
    let writes = report["marker_writes"].as_u64().unwrap_or(0);
    if let (Some(first), Some(last)) = (first, last) {
        if writes > 2 {
            #[allow(clippy::cast_precision_loss)]
            let per_exit = (last.saturating_sub(first)) as f64 / (writes - 1) as f64;
            metrics.push(Metric::new("ns_per_exit", per_exit, "ns"));
        }
    }
    metrics
}

/// The monitor process, and what it reported.
struct VmInstance {
    process: Supervised,
    facts: Arc<Mutex<Facts>>,
}

impl Instance for VmInstance {
    fn pids(&self) -> Vec<u32> {
        self.process.pids()
    }

    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        self.process.next_event(until)
    }

    fn release(&mut self) {
        self.process.release();
    }

    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        self.process.wait(until)
    }

    fn diagnostics(&mut self) -> String {
        self.process.diagnostics()
    }

    /// The monitor process's memory, and its split: guest memory the guest touched, and
    /// the monitor's own overhead (its resident set outside guest memory).
    fn footprint(&self) -> Footprint {
        let processes = procfs::memory_of(&self.pids());
        let touched = self.facts.lock().ok().and_then(|f| f.guest_touched_kib);
        let mut parts = Vec::new();
        if let Some(touched) = touched {
            parts.push(("guest_touched".to_owned(), touched));
            if let Some(m) = processes {
                parts.push((
                    "monitor_overhead".to_owned(),
                    m.rss_kib.saturating_sub(touched),
                ));
            }
        }
        Footprint { processes, parts }
    }

    fn phases(&mut self) -> Vec<(String, Stamp)> {
        self.facts
            .lock()
            .map(|f| f.phases.clone())
            .unwrap_or_default()
    }

    fn counters(&mut self) -> Vec<(String, u64)> {
        self.facts
            .lock()
            .map(|f| f.counters.clone())
            .unwrap_or_default()
    }

    fn teardown(self: Box<Self>) {
        Box::new(self.process).teardown();
    }
}
