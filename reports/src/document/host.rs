//! The description of the machine a run was taken on.
//!
//! Every results document carries one, so figures from different hosts are never
//! compared blind: a VM timing on software KVM is an emulation figure, and a container
//! on cgroup v1 is accounted differently from one on v2.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The host a run was taken on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Host {
    /// The host name.
    pub hostname: String,
    /// The CPU model, from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs online.
    pub cpus: usize,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// The distribution (`PRETTY_NAME` from /etc/os-release), if known.
    pub os: String,
    /// Whether the host itself runs under a hypervisor (the `hypervisor` CPU flag).
    pub virtualized: bool,
    /// The hypervisor the host runs under, as its CPUID vendor signature (`KVMKVMKVM`,
    /// `TCGTCGTCGTCG`, ...), or `None` on bare metal.
    #[serde(default)]
    pub hypervisor: Option<String>,
    /// Whether the host's own CPU is emulated instruction by instruction (QEMU TCG, as in
    /// the test rig): its results test correctness, and their timings describe no real machine.
    #[serde(default)]
    pub emulated: bool,
    /// The KVM the host offers.
    pub kvm: Kvm,
    /// The cgroup layout: `v1`, `v2`, `hybrid` or `none`.
    pub cgroup: String,
    /// Whether unprivileged user namespaces may be created.
    pub user_namespaces: bool,
    /// Whether the run had root privileges (effective UID 0).
    pub root: bool,
    /// The peer tools installed, with their version lines (`runc`, `crun`, `qemu`).
    #[serde(default)]
    pub peers: std::collections::BTreeMap<String, String>,
    /// How the CPUs' clock speed is governed, where the kernel exposes it (cpufreq): the
    /// governors in use and whether boost (turbo) is on. A governor other than
    /// `performance`, or boost, lets timings drift with load and temperature. `None`
    /// where nothing is exposed (in most VMs the hypervisor's host decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_frequency: Option<String>,
}

/// The KVM flavour, flattened for the results document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Kvm {
    /// `hardware`, `software` or `unavailable`.
    pub flavour: String,
    /// The KVM module behind /dev/kvm (`kvm_intel`, `kvm_amd`, `kvm_pvm`), when there is one.
    pub module: Option<String>,
    /// Why KVM is unavailable, when it is.
    pub reason: Option<String>,
}

impl Kvm {
    /// One phrase for tables: `software (kvm_pvm)`.
    pub fn label(&self) -> String {
        match &self.module {
            Some(m) => format!("{} ({m})", self.flavour),
            None => self.flavour.clone(),
        }
    }
}
