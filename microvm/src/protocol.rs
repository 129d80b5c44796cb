//! What `vcbench-vmm` (the monitor as a process of its own) writes on standard output: one
//! JSON object per line, each a [`Line`].
//!
//! ```text
//! {"report": {"phases": [["vm_created", ns], ...], "markers": [[code, ns], ...],
//!             "marker_writes": n, "last_marker": [code, ns], "ns_per_round_trip": f,
//!             "exits": {"exits_io_out": n, ...}, "end": "halted", "reason": null,
//!             "registers": null, "serial": "...", "guest_touched_kib": n}}
//! {"torn_down": ns}
//! ```
//!
//! The report comes when the guest has stopped and the VM still exists (with `--hold`, the
//! monitor then waits for SIGTERM so its memory can be measured); `torn_down` comes when
//! everything is released. Every `ns` is a CLOCK_MONOTONIC stamp, comparable with any
//! other process's on the host. A monitor that cannot build its VM writes no line and
//! says why on standard error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::machine::{End as VmEnd, Report};

/// One line of the monitor's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// The run, once the guest stopped.
    Report(Box<WireReport>),
    /// When the VM was torn down.
    TornDown(u64),
    /// A line of the guest's console, as it arrived (Linux guests).
    Console(ConsoleLine),
}

impl Line {
    /// Reads one line of the monitor's output (without its line ending). The line comes
    /// from another process, which relays what the guest wrote: anything that is not one
    /// JSON [`Line`] is an error, never a panic.
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// A line of the guest's serial console and when its last byte reached the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleLine {
    /// The line, without its line ending (lossy UTF-8).
    pub line: String,
    /// CLOCK_MONOTONIC, ns.
    pub at: u64,
}

/// How the guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// It halted.
    Halted,
    /// It reset the machine through the i8042.
    Reset,
    /// It powered off (every vCPU halted with interrupts off).
    PoweredOff,
    /// It outlived its timeout.
    TimedOut,
    /// It failed (see `reason` and `registers`).
    Failed,
}

impl End {
    /// A normal end: halted or reset.
    pub fn is_clean(self) -> bool {
        matches!(self, End::Halted | End::Reset | End::PoweredOff)
    }
}

/// A [`Report`] as it travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireReport {
    /// Phases and their stamps, in order (no `torn_down` yet).
    pub phases: Vec<(String, u64)>,
    /// Marker codes and stamps, in order (the first [`crate::devices::marker::KEPT`]).
    pub markers: Vec<(u8, u64)>,
    /// Every marker write, counted.
    pub marker_writes: u64,
    /// The last marker written.
    pub last_marker: Option<(u8, u64)>,
    /// Mean time between consecutive marker writes, ns: for the `exits` guest, one exit
    /// round trip. See [`crate::devices::marker::Markers::ns_per_round_trip`].
    pub ns_per_round_trip: Option<f64>,
    /// Exits by kind.
    pub exits: BTreeMap<String, u64>,
    /// How the guest ended.
    pub end: End,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// The vCPU's registers when it failed.
    pub registers: Option<String>,
    /// Console output (lossy UTF-8).
    pub serial: String,
    /// Guest memory resident when the guest stopped, KiB.
    pub guest_touched_kib: Option<u64>,
    /// The Linux kernel's release, for Linux guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Where every vCPU was when a Linux guest was stopped at its timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<String>,
    /// The host-dependent choices in a Linux guest's CPUID, as counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu: BTreeMap<String, u64>,
    /// What the virtio devices served, as counts (a Linux guest's disk: `disk_*`; its
    /// network device: `net_*`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, u64>,
}

impl WireReport {
    /// The stamp of phase `name`.
    pub fn phase(&self, name: &str) -> Option<u64> {
        self.phases.iter().find(|(n, _)| n == name).map(|(_, s)| *s)
    }
}

impl From<&Report> for WireReport {
    fn from(report: &Report) -> Self {
        let (end, reason, registers) = match &report.end {
            VmEnd::Halted => (End::Halted, None, None),
            VmEnd::Reset => (End::Reset, None, None),
            VmEnd::PoweredOff => (End::PoweredOff, None, None),
            VmEnd::TimedOut => (End::TimedOut, None, None),
            VmEnd::Failed { reason, registers } => {
                (End::Failed, Some(reason.clone()), Some(registers.clone()))
            }
        };
        WireReport {
            phases: report
                .phases
                .iter()
                .map(|(n, s)| ((*n).to_owned(), *s))
                .collect(),
            markers: report.markers.stamps.clone(),
            marker_writes: report.markers.writes,
            last_marker: report.markers.last,
            ns_per_round_trip: report.markers.ns_per_round_trip(),
            exits: report
                .exits
                .pairs()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            end,
            reason,
            registers,
            serial: String::from_utf8_lossy(&report.serial.bytes).into_owned(),
            guest_touched_kib: report.guest_touched_kib,
            kernel: report.kernel.clone(),
            diagnosis: report.diagnosis.clone(),
            cpu: report.cpu.iter().cloned().collect(),
            devices: report.devices.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::marker::Markers;
    use crate::devices::serial::Capture;
    use crate::exit::ExitCounts;

    #[test]
    fn lines_have_the_documented_shape_and_read_back() {
        let report = Report {
            diagnosis: None,
            cpu: Vec::new(),
            devices: vec![("disk_writes".to_owned(), 7)],
            phases: vec![("vm_created", 10), ("first_marker", 20), ("halted", 40)],
            markers: Markers {
                stamps: vec![(1, 20), (3, 25), (2, 40)],
                writes: 3,
                last: Some((2, 40)),
            },
            exits: ExitCounts {
                io_out: 3,
                hlt: 1,
                ..ExitCounts::default()
            },
            serial: Capture {
                bytes: b"hi".to_vec(),
                dropped: 0,
            },
            end: VmEnd::Failed {
                reason: "why".into(),
                registers: "rip=0x1000".into(),
            },
            guest_touched_kib: Some(8),
            kernel: None,
        };
        let line = Line::Report(Box::new(WireReport::from(&report)));
        let text = serde_json::to_string(&line).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["report"]["end"], "failed");
        assert_eq!(value["report"]["phases"][1][0], "first_marker");
        assert_eq!(value["report"]["exits"]["exits_io_out"], 3);
        assert_eq!(value["report"]["devices"]["disk_writes"], 7);
        assert_eq!(value["report"]["ns_per_round_trip"], 10.0);
        assert_eq!(Line::parse(&text).unwrap(), line);
        assert_eq!(
            serde_json::to_string(&Line::TornDown(7)).unwrap(),
            r#"{"torn_down":7}"#
        );
    }
}
