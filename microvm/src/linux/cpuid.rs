//! The CPUID a Linux guest sees: what KVM supports on this host (`KVM_GET_SUPPORTED_CPUID`),
//! told that it runs under a hypervisor and given a topology of N vCPUs, one core each, in
//! one package, with APIC ID = vCPU index.
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

/// Filters `entries` (KVM's supported CPUID) for vCPU `index` of `vcpus`.
pub fn filter(entries: &mut [kvm_cpuid_entry2], index: u8, vcpus: u8) {
    let id = u32::from(index);
    let n = u32::from(vcpus.max(1));
    for e in entries.iter_mut() {
        match e.function {
            0x1 => {
                e.ecx |= HYPERVISOR;
                e.ebx = (e.ebx & 0xff00) | (id << 24) | (n.min(0xff) << 16);
                if n > 1 {
                    e.edx |= HTT;
                } else {
                    e.edx &= !HTT;
                }
            }
            // Leave "no more caches" (type 0) entries alone.
            0x4 if e.eax & 0x1f != 0 => {
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
            0x8000_0001 => {
                if n > 1 {
                    e.ecx |= CMP_LEGACY;
                } else {
                    e.ecx &= !CMP_LEGACY;
                }
            }
            0x8000_0008 => {
                e.ecx = (e.ecx & !0xf0ff) | (id_bits(n) << 12) | (n - 1);
            }
            0x8000_001e => {
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

    fn host() -> Vec<kvm_cpuid_entry2> {
        vec![
            entry(0x1, 0, [0x0083_0f10, 0x0a10_0800, 0x7ed8_3203, 0x178b_fbff]),
            entry(0x4, 0, [0x0400_0121, 0, 0, 0]),
            entry(0x4, 3, [0x0400_0163, 0, 0, 0]),
            entry(0x4, 4, [0, 0, 0, 0]),
            entry(0xb, 0, [1, 2, 0x100, 7]),
            entry(0xb, 1, [7, 64, 0x201, 7]),
            entry(0xb, 2, [0, 0, 2, 7]),
            entry(0x8000_0001, 0, [0, 0, 0x75c2_37ff, 0]),
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
        filter(&mut e, 1, 2);
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
        filter(&mut e, 0, 1);
        let leaf1 = find(&e, 1, 0);
        assert_eq!(leaf1.ebx, 0x0001_0800);
        assert_eq!(leaf1.edx & HTT, 0);
        assert_eq!(find(&e, 0x8000_0001, 0).ecx & CMP_LEGACY, 0);
        assert_eq!(find(&e, 0x8000_0008, 0).ecx, 0);
        assert_eq!(find(&e, 0xb, 1).ebx, 1);
        assert_eq!(find(&e, 4, 0).eax >> 26, 0);
    }

    #[test]
    fn id_bits_round_up() {
        assert_eq!([1, 2, 3, 4, 5, 8, 9].map(id_bits), [0, 1, 2, 2, 3, 3, 4]);
    }
}
