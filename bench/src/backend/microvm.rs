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

use microvm::protocol::Line;
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
            Scenario::Startup
            | Scenario::Footprint
            | Scenario::Exits
            | Scenario::Density
            | Scenario::Isolation => Ok(()),
            _ => Err("needs a Linux guest, which this backend does not boot yet".to_owned()),
        }
    }

    fn runs_programs(&self) -> Result<(), String> {
        Err("micro guests run no program to probe: needs a Linux guest, which this backend does not boot yet".to_owned())
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

/// Turns one of the monitor's lines ([`microvm::protocol`]) into events, keeping what it
/// reports. A line that is not part of the protocol is ignored.
fn read_report(line: &str, facts: &Mutex<Facts>) -> Vec<Result<Event, Error>> {
    let report = match serde_json::from_str::<Line>(line) {
        Ok(Line::Report(report)) => report,
        Ok(Line::TornDown(ns)) => {
            if let Ok(mut f) = facts.lock() {
                f.phases.push(("torn_down".to_owned(), Stamp(ns)));
            }
            return Vec::new();
        }
        Err(_) => return Vec::new(),
    };
    let mut events = Vec::new();
    let workload = "micro guest".to_owned();
    if let Some(ns) = report.phase("first_marker") {
        let record = Record::Started {
            workload: workload.clone(),
            pid: 0,
            pid1: true,
        };
        events.push(Ok(Event::Record {
            record,
            at: Stamp(ns),
        }));
    }
    let at = report.phase("halted").map_or_else(Stamp::now, Stamp);
    let record = if report.end.is_clean() {
        // For the `exits` guest, the cost of one exit round trip.
        let metrics = report
            .ns_per_round_trip
            .map(|ns| Metric::new("ns_per_exit", ns, "ns"))
            .into_iter()
            .collect();
        Record::Result {
            workload,
            metrics,
            facts: Vec::new(),
        }
    } else {
        let why = report.reason.as_deref().unwrap_or("the guest did not halt");
        let end = serde_json::to_value(report.end)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let registers = report.registers.as_deref().unwrap_or_default();
        Record::Error {
            workload,
            message: format!("{why} ({end}) {registers}").trim_end().to_owned(),
        }
    };
    events.push(Ok(Event::Record { record, at }));
    if let Ok(mut f) = facts.lock() {
        f.counters = report.exits.into_iter().collect();
        f.guest_touched_kib = report.guest_touched_kib;
        f.phases
            .extend(report.phases.into_iter().map(|(n, ns)| (n, Stamp(ns))));
    }
    events
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

#[cfg(test)]
mod tests {
    use super::*;

    fn events(line: &str, facts: &Mutex<Facts>) -> Vec<(Record, Stamp)> {
        read_report(line, facts)
            .into_iter()
            .map(|e| match e {
                Ok(Event::Record { record, at }) => (record, at),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_first_marker_starts_and_the_halt_gives_the_per_exit_cost() {
        let facts = Mutex::new(Facts::default());
        let line = r#"{"report":{"phases":[["vm_created",100],["first_marker",150],["halted",400]],
            "markers":[[1,150],[3,200],[2,250]],"marker_writes":3,"last_marker":[2,250],
            "ns_per_round_trip":50.0,"exits":{"exits_io_out":3,"exits_hlt":1},"end":"halted",
            "reason":null,"registers":null,"serial":"","guest_touched_kib":64}}"#
            .replace('\n', "");
        let seen = events(&line, &facts);
        assert_eq!(seen.len(), 2);
        assert!(matches!(seen[0], (Record::Started { .. }, Stamp(150))));
        match &seen[1] {
            (Record::Result { metrics, .. }, Stamp(400)) => {
                assert_eq!(metrics.len(), 1);
                assert_eq!(
                    (metrics[0].name.as_str(), metrics[0].value),
                    ("ns_per_exit", 50.0)
                );
            }
            other => panic!("expected a result at the halt, got {other:?}"),
        }
        assert!(events(r#"{"torn_down":500}"#, &facts).is_empty());
        assert!(events("not the protocol", &facts).is_empty());
        let f = facts.lock().unwrap();
        let names: Vec<&str> = f.phases.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["vm_created", "first_marker", "halted", "torn_down"]);
        assert!(f.counters.contains(&("exits_hlt".to_owned(), 1)));
        assert_eq!(f.guest_touched_kib, Some(64));
    }

    #[test]
    fn a_failed_guest_is_an_error_record_with_its_registers() {
        let facts = Mutex::new(Facts::default());
        let line = r#"{"report":{"phases":[["first_marker",10],["halted",20]],"markers":[[1,10]],
            "marker_writes":1,"last_marker":[1,10],"ns_per_round_trip":null,
            "exits":{"exits_shutdown":1},"end":"failed","reason":"the guest triple-faulted",
            "registers":"rip=0x1004","serial":"","guest_touched_kib":4}}"#
            .replace('\n', "");
        let seen = events(&line, &facts);
        match &seen[1].0 {
            Record::Error { message, .. } => {
                assert!(
                    message.contains("triple-faulted (failed) rip=0x1004"),
                    "{message}"
                );
            }
            other => panic!("expected an error record, got {other:?}"),
        }
    }

    #[test]
    fn workloads_map_to_micro_guests() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            guest_for(&args(&["hello"])).unwrap(),
            (args(&["hello"]), false)
        );
        assert_eq!(
            guest_for(&args(&["alloc", "--mib", "32"])).unwrap(),
            (args(&["touch", "32"]), true)
        );
        assert_eq!(
            guest_for(&args(&["exits", "--count", "500"])).unwrap(),
            (args(&["exits", "500"]), false)
        );
        assert!(guest_for(&args(&["cpu"])).is_err());
    }
}
