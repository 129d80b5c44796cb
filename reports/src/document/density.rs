//! A density series: instances kept alive in rising steps, and what each step cost.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One backend's density series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Series {
    /// The backend.
    pub backend: String,
    /// The workload command line every instance ran.
    pub workload: Vec<String>,
    /// Instances started at once within a step.
    pub parallel: u32,
    /// The instance counts asked for.
    pub asked: Vec<u32>,
    /// The host-memory floor the governor kept, MiB.
    pub floor_mib: u64,
    /// One entry per step reached.
    pub steps: Vec<Step>,
    /// The most instances alive at once.
    pub reached: u32,
    /// Why the series ended before its last count, when it did ("stopped at 120: memory
    /// floor ...", a launch failure, an interruption).
    pub stopped: Option<String>,
    /// Whether it stopped because an instance failed (to launch, or to report in time),
    /// rather than at the memory floor or an interruption.
    #[serde(default)]
    pub failed: bool,
    /// Time to release, wait for and tear down every instance, ms.
    pub teardown_ms: f64,
}

/// The state after one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// Instances alive.
    pub instances: u32,
    /// Launch to the workload's first record, ms, for each instance this step started, in
    /// launch order: the last is the newest.
    pub start_ms: Vec<f64>,
    /// Wall time the step took, from its first launch to its last instance reporting, ms.
    pub step_ms: f64,
    /// Memory per instance: the sum over all live instances divided by their number.
    pub per_instance: PerInstance,
    /// The host's memory after the step.
    pub host: HostMemory,
}

/// Mean memory of one instance, KiB.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PerInstance {
    /// Resident set of its host processes.
    pub rss_kib: u64,
    /// Proportional set: shared pages divided among their sharers.
    pub pss_kib: u64,
    /// Unique set: pages no other process maps.
    pub uss_kib: u64,
    /// The parts its backend names ([`super::Part`]: `cgroup_memory`, `monitor_overhead`,
    /// `guest_touched`), KiB per instance.
    pub parts: BTreeMap<String, u64>,
    /// Each live instance's own PSS, KiB, in launch order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pss_kib_each: Vec<u64>,
    /// Each live instance's own USS, KiB, in launch order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uss_kib_each: Vec<u64>,
}

/// The host's memory, KiB, from /proc/meminfo.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct HostMemory {
    /// `MemAvailable`.
    pub available_kib: u64,
    /// `Slab`: kernel objects (namespaces, cgroups, VM structures live here).
    pub slab_kib: u64,
    /// `PageTables`.
    pub page_tables_kib: u64,
}
