//! The host attack surface: what reached the host kernel on an instance's behalf.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What one traced run reached of the host kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Surface {
    /// The backend.
    pub backend: String,
    /// The workload command line (for a micro-guest VM, the guest it stands for).
    pub workload: Vec<String>,
    /// How it was counted.
    pub mechanism: String,
    /// Distinct system calls made.
    pub distinct_syscalls: u32,
    /// System calls made, in all.
    pub total_syscalls: u64,
    /// Launch to exit, ms.
    pub wall_ms: f64,
    /// `total_syscalls` per second of `wall_ms`.
    pub syscalls_per_s: f64,
    /// Every system call made, by name (or `nr N`), with its count, most frequent first.
    pub syscalls: Vec<(String, u64)>,
    /// VM exits by kind, for a VM (the monitor's counters).
    pub vm_exits: Vec<(String, u64)>,
    /// Events the kernel dropped because the trace buffer was full (0: the count is exact).
    pub lost_events: u64,
}
