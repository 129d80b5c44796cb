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
    /// VM exits by kind, for a VM (the monitor's counters: the exits it handles).
    pub vm_exits: Vec<(String, u64)>,
    /// Every VM exit by reason, from the kernel's `kvm_exit` tracepoint: those KVM
    /// handles in the host kernel too (empty where the tracepoint is missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kvm_exits: Vec<(String, u64)>,
    /// The runtime's or monitor's own system calls before the workload ran (an OCI
    /// runtime's process, a monitor before the guest's first run, the instance's first
    /// process before its exec of the workload), by name, most frequent first; not part
    /// of the counts above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup_syscalls: Vec<(String, u64)>,
    /// Events the kernel dropped because the trace buffer was full (0: the count is exact).
    pub lost_events: u64,
}

/// What a sandbox lets a hostile program reach of the host kernel, whatever its workload
/// happened to call: the system calls its filter allows (all of them without one), and
/// for a VM the kinds of exit that run the monitor's own code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reachable {
    /// The backend.
    pub backend: String,
    /// What limits the calls, and whose calls they are (the program's, or a VM monitor's).
    pub filter: String,
    /// Host system calls that can be made, of `of`; `None` where it was not counted (a
    /// peer's own filter).
    pub syscalls: Option<u32>,
    /// System calls this architecture has, by the host's kernel headers.
    pub of: u32,
    /// Calls allowed or refused only with some arguments, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditional: Vec<String>,
    /// For a VM: the kinds of exit handled by the monitor's own code in user space, the
    /// guest's way into host code besides the host kernel's KVM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vm_exits: Vec<String>,
}
