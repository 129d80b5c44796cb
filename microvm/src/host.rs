//! What kind of virtualization the host offers.
//!
//! `/dev/kvm` alone says little: it may be backed by hardware virtualization
//! (`kvm_intel` with VMX, `kvm_amd` with SVM) or by a software implementation such as
//! `kvm_pvm`, which runs guests by shadow paging and emulation and cannot boot an
//! unmodified Linux kernel. Every VM timing must carry this distinction, so it is
//! detected here from the loaded modules and the CPU flags, never assumed.

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// KVM modules that use hardware virtualization extensions.
const HARDWARE_MODULES: [&str; 2] = ["kvm_intel", "kvm_amd"];
/// KVM modules known to implement virtualization in software.
const SOFTWARE_MODULES: [&str; 1] = ["kvm_pvm"];

/// The kind of KVM on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KvmFlavour {
    /// Hardware-assisted KVM (`kvm_intel` or `kvm_amd`).
    Hardware {
        /// The vendor module loaded.
        module: String,
    },
    /// KVM implemented in software (for example `kvm_pvm`): VM timings are emulation figures.
    Software {
        /// The module loaded, or `kvm` when no vendor module was found.
        module: String,
    },
    /// No usable `/dev/kvm`.
    Unavailable {
        /// Why KVM cannot be used.
        reason: String,
    },
}

impl KvmFlavour {
    /// Short name for tables: `hardware (kvm_amd)`, `software (kvm_pvm)`, `unavailable`.
    pub fn label(&self) -> String {
        match self {
            KvmFlavour::Hardware { module } => format!("hardware ({module})"),
            KvmFlavour::Software { module } => format!("software ({module})"),
            KvmFlavour::Unavailable { .. } => "unavailable".to_owned(),
        }
    }

    /// Whether guests run with hardware virtualization.
    pub fn is_hardware(&self) -> bool {
        matches!(self, KvmFlavour::Hardware { .. })
    }
}

impl fmt::Display for KvmFlavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvmFlavour::Unavailable { reason } => write!(f, "unavailable: {reason}"),
            other => f.write_str(&other.label()),
        }
    }
}

/// The facts [`KvmFlavour`] is decided from, gathered separately so the decision is testable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmFacts {
    /// `/dev/kvm` exists.
    pub dev_kvm_exists: bool,
    /// `/dev/kvm` could be opened for reading and writing, or the error text if not.
    pub dev_kvm_open: Result<(), String>,
    /// Names of loaded kernel modules that start with `kvm`.
    pub modules: Vec<String>,
    /// The CPU advertises `vmx` or `svm`.
    pub cpu_virt_flag: bool,
}

impl KvmFacts {
    /// Gathers the facts from `/dev/kvm`, `/sys/module` and `/proc/cpuinfo`.
    pub fn gather() -> Self {
        Self::gather_from(
            Path::new("/dev/kvm"),
            Path::new("/sys/module"),
            Path::new("/proc/cpuinfo"),
        )
    }

    fn gather_from(dev_kvm: &Path, sys_module: &Path, cpuinfo: &Path) -> Self {
        let dev_kvm_exists = dev_kvm.exists();
        let dev_kvm_open = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev_kvm)
            .map(drop)
            .map_err(|e| e.to_string());
        let mut modules: Vec<String> = std::fs::read_dir(sys_module)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|name| name.starts_with("kvm"))
                    .collect()
            })
            .unwrap_or_default();
        modules.sort();
        let cpu_virt_flag = std::fs::read_to_string(cpuinfo)
            .map(|text| cpu_flags_have_virt(&text))
            .unwrap_or(false);
        KvmFacts {
            dev_kvm_exists,
            dev_kvm_open,
            modules,
            cpu_virt_flag,
        }
    }

    /// Decides the flavour.
    pub fn flavour(&self) -> KvmFlavour {
        if !self.dev_kvm_exists {
            return KvmFlavour::Unavailable {
                reason: "/dev/kvm does not exist (KVM module not loaded, or no virtualization)"
                    .to_owned(),
            };
        }
        if let Err(e) = &self.dev_kvm_open {
            return KvmFlavour::Unavailable {
                reason: format!("/dev/kvm cannot be opened read-write: {e}"),
            };
        }
        let has = |names: &[&str]| {
            names
                .iter()
                .find(|n| self.modules.iter().any(|m| m == *n))
                .map(|n| (*n).to_owned())
        };
        if let Some(module) = has(&SOFTWARE_MODULES) {
            return KvmFlavour::Software { module };
        }
        match has(&HARDWARE_MODULES) {
            Some(module) if self.cpu_virt_flag => KvmFlavour::Hardware { module },
            Some(module) => KvmFlavour::Software { module },
            None => KvmFlavour::Software {
                module: self
                    .modules
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "kvm".to_owned()),
            },
        }
    }
}

/// Detects the host's KVM flavour.
pub fn kvm_flavour() -> KvmFlavour {
    KvmFacts::gather().flavour()
}

/// The most vCPUs one VM may have here (`KVM_CAP_MAX_VCPUS`); `None` without /dev/kvm.
pub fn max_vcpus() -> Option<usize> {
    kvm_ioctls::Kvm::new().ok().map(|kvm| kvm.get_max_vcpus())
}

/// The hypervisor QEMU's TCG names itself as in CPUID leaf 0x4000_0000.
pub const TCG_VENDOR: &str = "TCGTCGTCGTCG";

/// The hypervisor this machine itself runs under, as its CPUID vendor signature (leaf
/// 0x4000_0000: `KVMKVMKVM`, `Microsoft Hv`, `VMwareVMware`, [`TCG_VENDOR`] for QEMU's
/// emulator), or `None` on bare metal (the CPUID hypervisor bit is clear).
///
/// Under [`TCG_VENDOR`] every instruction of the host, and so of its guests, is emulated:
/// timings taken there test correctness and describe no real machine.
pub fn hypervisor_vendor() -> Option<String> {
    // CPUID exists on every x86_64 CPU, and leaf 1 always does.
    let leaf1 = std::arch::x86_64::__cpuid(1);
    if leaf1.ecx & (1 << 31) == 0 {
        return None;
    }
    // With the hypervisor bit set, leaf 0x4000_0000 is the hypervisor's vendor leaf (one
    // that does not implement it returns zeros, which decode to an empty string).
    let leaf = std::arch::x86_64::__cpuid(0x4000_0000);
    let bytes: Vec<u8> = [leaf.ebx, leaf.ecx, leaf.edx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .collect();
    let vendor = String::from_utf8_lossy(&bytes)
        .trim_end_matches('\0')
        .trim()
        .to_owned();
    Some(vendor)
}

/// Whether the `flags` line of a cpuinfo text lists `vmx` or `svm`.
fn cpu_flags_have_virt(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .any(|f| f == "vmx" || f == "svm")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(modules: &[&str], virt: bool) -> KvmFacts {
        KvmFacts {
            dev_kvm_exists: true,
            dev_kvm_open: Ok(()),
            modules: modules.iter().map(|s| (*s).to_owned()).collect(),
            cpu_virt_flag: virt,
        }
    }

    #[test]
    fn software_module_wins() {
        assert_eq!(
            facts(&["kvm", "kvm_pvm"], false).flavour(),
            KvmFlavour::Software {
                module: "kvm_pvm".into()
            }
        );
    }

    #[test]
    fn hardware_needs_the_cpu_flag() {
        assert_eq!(
            facts(&["kvm", "kvm_amd"], true).flavour(),
            KvmFlavour::Hardware {
                module: "kvm_amd".into()
            }
        );
        assert!(!facts(&["kvm", "kvm_intel"], false).flavour().is_hardware());
    }

    #[test]
    fn missing_device_is_unavailable() {
        let f = KvmFacts {
            dev_kvm_exists: false,
            ..facts(&[], false)
        };
        assert!(matches!(f.flavour(), KvmFlavour::Unavailable { .. }));
        let f = KvmFacts {
            dev_kvm_open: Err("Permission denied".into()),
            ..facts(&["kvm_amd"], true)
        };
        assert!(
            matches!(f.flavour(), KvmFlavour::Unavailable { reason } if reason.contains("Permission denied"))
        );
    }

    #[test]
    fn cpu_flags_are_parsed() {
        assert!(cpu_flags_have_virt("flags\t\t: fpu vme svm lm\n"));
        assert!(!cpu_flags_have_virt(
            "flags\t\t: fpu vme hypervisor\nmodel name: svm\n"
        ));
    }
}
