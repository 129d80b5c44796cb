//! The CPUID table on leaves captured from real hosts' KVM (`KVM_GET_SUPPORTED_CPUID`,
//! with `cargo run -p microvm --example supported_cpuid`; `fixtures/cpuid/`, each file
//! naming its host in its first lines): whatever KVM reports, the guest gets the same
//! choices, and nothing outside the table changes.

use kvm_bindings::kvm_cpuid_entry2;
use microvm::linux::cpuid::{self, Host, Vendor, HYPERVISOR, TSC_DEADLINE};

/// The captured hosts: file, vendor.
const FIXTURES: [(&str, &str, Vendor); 2] = [
    (
        "AMD EPYC, software KVM (kvm_pvm), host Linux 6.18",
        include_str!("fixtures/cpuid/amd-epyc-kvm_pvm.txt"),
        Vendor::Amd,
    ),
    (
        "AMD EPYC (QEMU TCG), kvm_amd in the test rig, host Linux 6.1",
        include_str!("fixtures/cpuid/amd-epyc-rig-kvm_amd.txt"),
        Vendor::Amd,
    ),
];

/// The entries and the host's TSC-deadline capability of a fixture.
fn parse(text: &str) -> (Vec<kvm_cpuid_entry2>, Host) {
    let mut host = Host::default();
    let mut entries = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("# tsc-deadline capability: ") {
            host.tsc_deadline = v.trim() == "true";
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<u32> = line
            .split_whitespace()
            .map(|w| u32::from_str_radix(w, 16).expect("hex"))
            .collect();
        assert_eq!(f.len(), 7, "{line}");
        entries.push(kvm_cpuid_entry2 {
            function: f[0],
            index: f[1],
            flags: f[2],
            eax: f[3],
            ebx: f[4],
            ecx: f[5],
            edx: f[6],
            ..Default::default()
        });
    }
    (entries, host)
}

fn find(entries: &[kvm_cpuid_entry2], function: u32, index: u32) -> Option<&kvm_cpuid_entry2> {
    entries
        .iter()
        .find(|e| e.function == function && e.index == index)
}

/// The registers the table may change, per leaf (0: eax, 1: ebx, 2: ecx, 3: edx).
fn may_change(function: u32) -> &'static [usize] {
    match function {
        0x1 => &[1, 2, 3],
        0x7 => &[3],
        0xa | 0xd | 0x1d | 0x1e | 0xb | 0x1f | 0x8000_001e => &[0, 1, 2, 3],
        0x4 | 0x8000_001d => &[0],
        0x8000_0001 | 0x8000_0008 => &[2],
        0x8000_0007 => &[3],
        _ => &[],
    }
}

fn regs(e: &kvm_cpuid_entry2) -> [u32; 4] {
    [e.eax, e.ebx, e.ecx, e.edx]
}

#[test]
fn the_fixtures_name_their_vendor_and_kvm_leaves_out_the_deadline_timer_on_the_rig() {
    for (host, text, vendor) in FIXTURES {
        let (entries, caps) = parse(text);
        assert!(entries.len() > 20, "{host}");
        assert_eq!(cpuid::vendor(&entries), vendor, "{host}");
        assert!(caps.tsc_deadline, "{host}: both hosts have the capability");
    }
    // The point of offering it ourselves: Linux 6.1's kvm_amd has the capability but does
    // not report the bit in its supported CPUID.
    let (rig, _) = parse(FIXTURES[1].1);
    assert_eq!(find(&rig, 1, 0).expect("leaf 1").ecx & TSC_DEADLINE, 0);
}

#[test]
fn every_captured_host_gives_every_vcpu_the_same_choices() {
    for (host, text, _) in FIXTURES {
        let (supported, caps) = parse(text);
        for vcpus in [1u8, 2, 4] {
            for index in 0..vcpus {
                let mut entries = supported.clone();
                cpuid::filter(&mut entries, index, vcpus, caps);
                let what = format!("{host}, vCPU {index} of {vcpus}");
                let id = u32::from(index);
                let n = u32::from(vcpus);

                let leaf1 = find(&entries, 1, 0).expect("leaf 1");
                assert_ne!(leaf1.ecx & HYPERVISOR, 0, "{what}");
                assert_ne!(leaf1.ecx & TSC_DEADLINE, 0, "{what}: TSC-deadline offered");
                assert_eq!(leaf1.ebx >> 24, id, "{what}: initial APIC ID");
                assert_eq!((leaf1.ebx >> 16) & 0xff, n, "{what}: logical processors");
                assert_eq!(leaf1.edx & (1 << 28) != 0, n > 1, "{what}: HTT");
                // No AMX features, no AMX state.
                if let Some(l7) = find(&entries, 7, 0) {
                    assert_eq!(l7.edx & ((1 << 22) | (1 << 24) | (1 << 25)), 0, "{what}");
                }
                if let Some(xsave) = find(&entries, 0xd, 0) {
                    assert_eq!(xsave.eax & ((1 << 17) | (1 << 18)), 0, "{what}");
                }
                // No PMU, no invariant TSC, no AMD core counters.
                if let Some(pmu) = find(&entries, 0xa, 0) {
                    assert_eq!(regs(pmu), [0; 4], "{what}");
                }
                if let Some(power) = find(&entries, 0x8000_0007, 0) {
                    assert_eq!(power.edx & (1 << 8), 0, "{what}: invariant TSC");
                }
                let ext = find(&entries, 0x8000_0001, 0).expect("leaf 0x80000001");
                assert_eq!(ext.ecx & (1 << 23), 0, "{what}: PerfCtrExtCore");
                assert_eq!(ext.ecx & (1 << 1) != 0, n > 1, "{what}: CmpLegacy");
                // AMD's topology: one thread per core, this vCPU's IDs.
                if let Some(topo) = find(&entries, 0x8000_001e, 0) {
                    assert_eq!((topo.eax, topo.ebx, topo.ecx), (id, id, 0), "{what}");
                }
                let size = find(&entries, 0x8000_0008, 0).expect("leaf 0x80000008");
                assert_eq!(size.ecx & 0xff, n - 1, "{what}: cores");

                // Nothing outside the table changed.
                for (before, after) in supported.iter().zip(&entries) {
                    assert_eq!(
                        (before.function, before.index),
                        (after.function, after.index)
                    );
                    for r in 0..4 {
                        if regs(before)[r] != regs(after)[r] {
                            assert!(
                                may_change(before.function).contains(&r),
                                "{what}: leaf {:#x}.{} register {r} changed outside the table",
                                before.function,
                                before.index
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn without_the_capability_the_deadline_timer_is_withheld_even_where_kvm_reports_it() {
    for (host, text, _) in FIXTURES {
        let (mut entries, _) = parse(text);
        if let Some(l1) = entries.iter_mut().find(|e| e.function == 1) {
            l1.ecx |= TSC_DEADLINE;
        }
        cpuid::filter(&mut entries, 0, 1, Host::default());
        assert_eq!(
            find(&entries, 1, 0).expect("leaf 1").ecx & TSC_DEADLINE,
            0,
            "{host}"
        );
    }
}
