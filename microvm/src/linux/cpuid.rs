//! The CPUID a Linux guest sees: what KVM supports on this host (`KVM_GET_SUPPORTED_CPUID`),
//! told that it runs under a hypervisor and given a topology of N vCPUs, one core each, in
//! one package, with APIC ID = vCPU index; and the same choices on every host, so a guest
//! boots alike whatever KVM reports:
//!
//! - the TSC-deadline timer is offered whenever KVM can emulate it
//!   (`KVM_CAP_TSC_DEADLINE_TIMER`): before Linux 6.14 KVM does not report it in its
//!   supported CPUID, and without it the guest calibrates its APIC timer against the PIT;
//! - the invariant TSC, the PMU (leaf 0xA, and AMD's core performance counters) and AMX
//!   (whose state a guest may use only after the monitor asks the host's permission) are
//!   withheld: timekeeping goes through kvm-clock, and no host-specific counters or state
//!   reach the guest;
//! - the topology fields of one vendor are never written on the other's CPU.
//!
//! | leaf        | change                                                              |
//! | ----------- | ------------------------------------------------------------------- |
//! | 0x1         | ECX bit 31 (hypervisor) set; EBX: initial APIC ID, logical count N, CLFLUSH size kept; EDX bit 28 (HTT) when N > 1 |
//! | 0x4         | EAX bits 31..26 = cores per package − 1; EAX bits 25..14 = sharing: 0 for L1/L2, N − 1 for L3 |
//! | 0xb, 0x1f   | level 0 (SMT): 1 thread, shift 0; level 1 (core): N, shift ⌈log2 N⌉; EDX = x2APIC ID |
//! | 0x80000001  | ECX bit 1 (CmpLegacy) when N > 1                                    |
//! | 0x80000008  | ECX: cores − 1 in bits 7..0, APIC ID size ⌈log2 N⌉ in bits 15..12          |
//! | 0x8000001e  | EAX = APIC ID, EBX = core ID (one thread per core), ECX = node 0    |

use kvm_bindings::kvm_cpuid_entry2;

/// Leaf 1 ECX: running under a hypervisor.
pub const HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 ECX: the local APIC timer has a TSC-deadline mode.
pub const TSC_DEADLINE: u32 = 1 << 24;
/// Leaf 7 EDX: AMX-BF16, AMX-TILE, AMX-INT8.
const AMX_FEATURES: u32 = (1 << 22) | (1 << 24) | (1 << 25);
/// Leaf 0xD, sub-leaf 0, EAX: the XTILECFG and XTILEDATA state components.
const AMX_STATE: u32 = (1 << 17) | (1 << 18);
/// Leaf 0x8000_0007 EDX: the TSC is invariant.
const INVARIANT_TSC: u32 = 1 << 8;
/// Leaf 0x8000_0001 ECX: AMD's core performance counter extensions.
const PERF_CTR_EXT_CORE: u32 = 1 << 23;

/// The CPU's maker, from leaf 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// GenuineIntel.
    Intel,
    /// AuthenticAMD, or Hygon's AMD-compatible parts.
    Amd,
    /// Anything else: only the vendor-neutral choices are made.
    Other,
}

/// The vendor that leaf 0 of `entries` names.
pub fn vendor(entries: &[kvm_cpuid_entry2]) -> Vendor {
    let Some(leaf0) = entries.iter().find(|e| e.function == 0) else {
        return Vendor::Other;
    };
    let mut name = Vec::with_capacity(12);
    for register in [leaf0.ebx, leaf0.edx, leaf0.ecx] {
        name.extend_from_slice(&register.to_le_bytes());
    }
    match name.as_slice() {
        b"GenuineIntel" => Vendor::Intel,
        b"AuthenticAMD" | b"HygonGenuine" => Vendor::Amd,
        _ => Vendor::Other,
    }
}

/// What the host's KVM can give that its supported CPUID may not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Host {
    /// `KVM_CAP_TSC_DEADLINE_TIMER`: the in-kernel local APIC emulates the TSC-deadline
    /// mode.
    pub tsc_deadline: bool,
}
/// Leaf 1 EDX: the package has more than one logical processor.
const HTT: u32 = 1 << 28;
/// Leaf 0x80000001 ECX: core multi-processing legacy mode.
const CMP_LEGACY: u32 = 1 << 1;

/// Bits needed to number `n` things (⌈log2 n⌉).
fn id_bits(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// Filters `entries` (KVM's supported CPUID) for vCPU `index` of `vcpus` on `host`.
pub fn filter(entries: &mut [kvm_cpuid_entry2], index: u8, vcpus: u8, host: Host) {
    let id = u32::from(index);
    let n = u32::from(vcpus.max(1));
    let maker = vendor(entries);
    let amd = maker == Vendor::Amd;
    for e in entries.iter_mut() {
        match e.function {
            0x1 => {
                e.ecx |= HYPERVISOR;
                if host.tsc_deadline {
                    e.ecx |= TSC_DEADLINE;
                } else {
                    e.ecx &= !TSC_DEADLINE;
                }
                e.ebx = (e.ebx & 0xff00) | (id << 24) | (n.min(0xff) << 16);
                if n > 1 {
                    e.edx |= HTT;
                } else {
                    e.edx &= !HTT;
                }
            }
            0x7 if e.index == 0 => e.edx &= !AMX_FEATURES,
            // No PMU: no architectural performance counters.
            0xa => (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0),
            0xd if e.index == 0 => e.eax &= !AMX_STATE,
            0xd if e.index == 17 || e.index == 18 => (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0),
            // AMX's tile and matrix-unit leaves.
            0x1d | 0x1e => (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0),
            // Leave "no more caches" (type 0) entries alone; AMD's own cache leaf has the
            // same layout.
            0x4 | 0x8000_001d if e.eax & 0x1f != 0 => {
                let level = (e.eax >> 5) & 0x7;
                let sharing = if level >= 3 { n - 1 } else { 0 };
                e.eax = (e.eax & 0x3fff) | ((n - 1).min(0x3f) << 26) | (sharing.min(0xfff) << 14);
            }
            0xb | 0x1f => {
                match e.index {
                    0 => {
                        e.eax = 0;
                        e.ebx = 1;
                        e.ecx = 1 << 8;
                    }
                    1 => {
                        e.eax = id_bits(n);
                        e.ebx = n;
                        e.ecx = (2 << 8) | 1;
                    }
                    level => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = level;
                    }
                }
                e.edx = id;
            }
            0x8000_0001 if amd => {
                e.ecx &= !PERF_CTR_EXT_CORE;
                if n > 1 {
                    e.ecx |= CMP_LEGACY;
                } else {
                    e.ecx &= !CMP_LEGACY;
                }
            }
            0x8000_0007 => e.edx &= !INVARIANT_TSC,
            0x8000_0008 if amd => {
                e.ecx = (e.ecx & !0xf0ff) | (id_bits(n) << 12) | (n - 1);
            }
            0x8000_001e if amd => {
                e.eax = id;
                e.ebx = id;
                e.ecx = 0;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32, regs: [u32; 4]) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: regs[0],
            ebx: regs[1],
            ecx: regs[2],
            edx: regs[3],
            ..Default::default()
        }
    }

    /// Leaf 0 for a vendor's 12-byte name (EBX, EDX, ECX).
    fn leaf0(name: &[u8; 12]) -> kvm_cpuid_entry2 {
        let word = |i: usize| u32::from_le_bytes([name[i], name[i + 1], name[i + 2], name[i + 3]]);
        entry(0, 0, [0x10, word(0), word(8), word(4)])
    }

    const WITH_DEADLINE: Host = Host { tsc_deadline: true };

    /// Leaves shaped as KVM reports them on an AMD EPYC.
    fn host() -> Vec<kvm_cpuid_entry2> {
        vec![
            leaf0(b"AuthenticAMD"),
            entry(0x1, 0, [0x0083_0f10, 0x0a10_0800, 0x7ed8_3203, 0x178b_fbff]),
            entry(0x4, 0, [0x0400_0121, 0, 0, 0]),
            entry(0x4, 3, [0x0400_0163, 0, 0, 0]),
            entry(0x4, 4, [0, 0, 0, 0]),
            entry(0xb, 0, [1, 2, 0x100, 7]),
            entry(0xb, 1, [7, 64, 0x201, 7]),
            entry(0xb, 2, [0, 0, 2, 7]),
            entry(0x8000_0001, 0, [0, 0, 0x75c2_37ff, 0]),
            entry(0x8000_0007, 0, [0, 0, 0, 0x100]),
            entry(0x8000_0008, 0, [0x3030, 0, 0x700f, 0]),
            entry(0x8000_001e, 0, [9, 0x100, 0x300, 0]),
        ]
    }

    fn find(e: &[kvm_cpuid_entry2], function: u32, index: u32) -> kvm_cpuid_entry2 {
        *e.iter()
            .find(|x| x.function == function && x.index == index)
            .unwrap()
    }

    #[test]
    fn two_vcpus_see_a_hypervisor_and_two_cores() {
        let mut e = host();
        filter(&mut e, 1, 2, WITH_DEADLINE);
        let leaf1 = find(&e, 1, 0);
        assert_ne!(leaf1.ecx & HYPERVISOR, 0);
        assert_eq!(leaf1.ebx, 0x0102_0800, "APIC ID 1, 2 logical, CLFLUSH kept");
        assert_ne!(leaf1.edx & HTT, 0);
        assert_eq!(find(&e, 4, 0).eax, 0x0400_0121, "L1: 2 cores, not shared");
        assert_eq!(find(&e, 4, 3).eax, 0x0400_4163, "L3 shared by both");
        assert_eq!(find(&e, 4, 4).eax, 0, "the end of the cache list kept");
        let smt = find(&e, 0xb, 0);
        let core = find(&e, 0xb, 1);
        assert_eq!((smt.eax, smt.ebx, smt.ecx, smt.edx), (0, 1, 0x100, 1));
        assert_eq!((core.eax, core.ebx, core.ecx, core.edx), (1, 2, 0x201, 1));
        assert_eq!(find(&e, 0xb, 2).ebx, 0);
        assert_ne!(find(&e, 0x8000_0001, 0).ecx & CMP_LEGACY, 0);
        assert_eq!(find(&e, 0x8000_0008, 0).ecx, 0x1001);
        let ext = find(&e, 0x8000_001e, 0);
        assert_eq!((ext.eax, ext.ebx, ext.ecx), (1, 1, 0));
    }

    #[test]
    fn one_vcpu_is_one_core_with_apic_id_0() {
        let mut e = host();
        filter(&mut e, 0, 1, WITH_DEADLINE);
        let leaf1 = find(&e, 1, 0);
        assert_eq!(leaf1.ebx, 0x0001_0800);
        assert_eq!(leaf1.edx & HTT, 0);
        assert_eq!(find(&e, 0x8000_0001, 0).ecx & CMP_LEGACY, 0);
        assert_eq!(find(&e, 0x8000_0008, 0).ecx, 0);
        assert_eq!(find(&e, 0xb, 1).ebx, 1);
        assert_eq!(find(&e, 4, 0).eax >> 26, 0);
    }

    /// Leaves shaped as KVM reports them on an Intel Xeon with AMX, a PMU and the invariant
    /// TSC.
    fn intel() -> Vec<kvm_cpuid_entry2> {
        vec![
            leaf0(b"GenuineIntel"),
            entry(0x1, 0, [0x0008_06f8, 0x0010_0800, 0x7ffa_3203, 0x0f8b_fbff]),
            entry(0x4, 0, [0x1c00_4121, 0x02c0_003f, 0x3f, 0]),
            entry(0x7, 0, [2, 0xf1bf_fbfb, 0x1b41_5f6e, 0xff9d_4816]),
            entry(0xa, 0, [0x0703_0802, 0, 0, 0x8603]),
            entry(0xd, 0, [0x0006_02e7, 0x0000_2b00, 0x0000_2b00, 0]),
            entry(0xd, 17, [0x40, 0x0000_0ac0, 0x2, 0]),
            entry(0xd, 18, [0x2000, 0x0000_0b00, 0x6, 0]),
            entry(0x1d, 0, [1, 0, 0, 0]),
            entry(0x8000_0007, 0, [0, 0, 0, 0x100]),
            entry(0x8000_0008, 0, [0x3030, 0, 0, 0]),
            entry(0x8000_001e, 0, [0, 0, 0, 0]),
        ]
    }

    #[test]
    fn an_intel_guest_gets_the_deadline_timer_and_no_amx_pmu_or_invariant_tsc() {
        let mut e = intel();
        filter(&mut e, 0, 2, WITH_DEADLINE);
        assert_eq!(vendor(&e), Vendor::Intel);
        assert_ne!(find(&e, 1, 0).ecx & TSC_DEADLINE, 0);
        assert_eq!(find(&e, 7, 0).edx & AMX_FEATURES, 0);
        assert_eq!(
            find(&e, 0xd, 0).eax & AMX_STATE,
            0,
            "XCR0 without tile state"
        );
        assert_eq!(find(&e, 0xd, 0).eax & 0x2e7, 0x2e7, "the other state kept");
        for (leaf, index) in [(0xd, 17), (0xd, 18), (0x1d, 0), (0xa, 0)] {
            let x = find(&e, leaf, index);
            assert_eq!(
                (x.eax, x.ebx, x.ecx, x.edx),
                (0, 0, 0, 0),
                "{leaf:#x}.{index}"
            );
        }
        assert_eq!(find(&e, 0x8000_0007, 0).edx & INVARIANT_TSC, 0);
        // AMD's topology fields are not written on Intel.
        assert_eq!(find(&e, 0x8000_0008, 0).ecx, 0);
        assert_eq!(find(&e, 0x8000_001e, 0).eax, 0);
        // Without the capability, no TSC-deadline timer, whatever the host reported.
        let mut e = intel();
        e[1].ecx |= TSC_DEADLINE;
        filter(&mut e, 0, 1, Host::default());
        assert_eq!(find(&e, 1, 0).ecx & TSC_DEADLINE, 0);
    }

    #[test]
    fn an_amd_guest_gets_the_same_choices() {
        let mut e = host();
        e.push(entry(0x8000_001d, 2, [0x0000_0163, 0, 0, 0]));
        filter(&mut e, 0, 2, WITH_DEADLINE);
        assert_eq!(vendor(&e), Vendor::Amd);
        assert_ne!(find(&e, 1, 0).ecx & TSC_DEADLINE, 0);
        assert_eq!(find(&e, 0x8000_0007, 0).edx & INVARIANT_TSC, 0);
        assert_eq!(find(&e, 0x8000_0001, 0).ecx & PERF_CTR_EXT_CORE, 0);
        assert_eq!(
            find(&e, 0x8000_001d, 2).eax,
            0x0400_4163,
            "the L3 shared by both"
        );
    }

    #[test]
    fn id_bits_round_up() {
        assert_eq!([1, 2, 3, 4, 5, 8, 9].map(id_bits), [0, 1, 2, 2, 3, 3, 4]);
    }
}
