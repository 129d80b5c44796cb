//! Prints what this host's KVM supports of CPUID (`KVM_GET_SUPPORTED_CPUID`), one entry a
//! line: `function index flags eax ebx ecx edx` in hex, preceded by comment lines naming
//! the host (CPU model, KVM module, kernel, whether KVM has the TSC-deadline capability).
//! The CPUID tests' fixtures (`microvm/tests/fixtures/cpuid/`) were captured with it:
//!
//! ```sh
//! cargo run -p microvm --example supported_cpuid > host.txt
//! ```

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Cap, Kvm};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kvm = Kvm::new()?;
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("# cpu: {model}");
    println!("# kvm: {}", microvm::host::kvm_flavour());
    println!("# host kernel: {}", kernel.trim());
    println!(
        "# tsc-deadline capability: {}",
        kvm.check_extension(Cap::TscDeadlineTimer)
    );
    for e in kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)?.as_slice() {
        println!(
            "{:08x} {:x} {:x} {:08x} {:08x} {:08x} {:08x}",
            e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx
        );
    }
    Ok(())
}
