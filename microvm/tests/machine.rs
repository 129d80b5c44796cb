//! The VM core ([`microvm::machine::Machine`]) on this machine's KVM: machines created,
//! run and dropped over and over, with and without in-kernel interrupt controllers, each
//! take their guest memory, file descriptors and address space with them when dropped.
//! One test alone in its binary, so no other test's VMs are counted. Skipped with a reason
//! when /dev/kvm cannot be used; a failure under CI=true.

mod common;

use microvm::bus::MmioPolicy;
use microvm::exit::{self, ExitCounts};
use microvm::guest::{self, MARKER_DONE, MARKER_START};
use microvm::layout::PAYLOAD_START;
use microvm::machine::{self, End, Interrupts, Machine, Phases, Spec, Step};
use microvm::vcpu::entry_regs;
use vm_memory::{GuestAddress, GuestMemoryBackend};

use common::kvm_usable;

/// Guest memory of each machine, bytes.
const MEMORY: u64 = 16 << 20;
/// Machines of each kind built and dropped.
const ROUNDS: usize = 40;

/// Builds a machine, runs `payload` on its first vCPU to its end, and drops it. Returns
/// how the guest ended, the markers it wrote, what it touched (KiB), and where its guest
/// memory was mapped.
fn build_run_drop(
    interrupts: Interrupts,
    vcpus: u8,
    payload: &guest::Payload,
) -> (End, Vec<u8>, u64, *mut u8) {
    let mut phases = Phases::new();
    let spec = Spec {
        vcpus,
        memory_bytes: MEMORY,
        interrupts,
        capabilities: &[],
    };
    let mut machine = Machine::new(spec, &mut phases).expect("build the machine");
    assert_eq!(
        phases.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["vm_created", "memory_registered"]
    );
    machine
        .create_vcpus(|index, vcpu| match index {
            0 => machine::enter_at(vcpu, payload.mode, &entry_regs()),
            _ => Ok(()),
        })
        .expect("create the vCPUs");
    assert_eq!(machine.vcpus_mut().len(), usize::from(vcpus));
    machine
        .write("payload", &payload.code, PAYLOAD_START)
        .expect("load the payload");
    let (mut buses, markers) = machine::buses(MmioPolicy::Fail, None).expect("devices");
    let mut counts = ExitCounts::default();
    let vcpu = &mut machine.vcpus_mut()[0];
    let end = loop {
        match machine::enter(vcpu, |exit| exit::handle(exit, &mut buses, &mut counts)) {
            Step::Kicked => {}
            Step::Exit(outcome) => {
                if let Some(end) = End::of(outcome, || machine::registers(vcpu).unwrap_or_default())
                {
                    break end;
                }
            }
        }
    };
    let touched = machine.guest_touched_kib().expect("resident guest memory");
    let host = machine
        .memory()
        .get_host_address(GuestAddress(0))
        .expect("guest memory is mapped");
    drop(machine);
    let codes = markers.lock().unwrap().stamps.iter().map(|s| s.0).collect();
    (end, codes, touched, host)
}

/// The lines of /proc/self/maps whose mappings overlap the `len` bytes at `at`.
fn mappings_over(at: *mut u8, len: u64) -> Vec<String> {
    let start = at as u64;
    let end = start + len;
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| {
            let range = line.split(' ').next().unwrap_or("");
            let (from, to) = range.split_once('-').unwrap_or(("0", "0"));
            let from = u64::from_str_radix(from, 16).unwrap_or(0);
            let to = u64::from_str_radix(to, 16).unwrap_or(0);
            from < end && start < to
        })
        .map(str::to_owned)
        .collect()
}

/// File descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// This process's address space, KiB (`VmSize`).
fn address_space_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn machines_built_and_dropped_over_and_over_leave_nothing_behind() {
    if !kvm_usable() {
        return;
    }
    // A guest that writes 1 MiB of its memory, and one that resets the machine: with the
    // in-kernel interrupt controllers a halt stays inside KVM, so that kind ends by reset.
    let kinds = [
        (Interrupts::None, 1, guest::touch(1)),
        (Interrupts::None, 2, guest::hello()),
        (Interrupts::InKernel, 2, guest::reset()),
    ];
    // One round of each first, so that whatever the process sets up once (allocator
    // arenas, the KVM module's first use) is not counted.
    for (interrupts, vcpus, payload) in &kinds {
        build_run_drop(*interrupts, *vcpus, payload);
    }
    let fds = open_fds();
    let space = address_space_kib();
    for round in 0..ROUNDS {
        for (interrupts, vcpus, payload) in &kinds {
            let (end, codes, touched, host) = build_run_drop(*interrupts, *vcpus, payload);
            let what = format!("round {round}, {} with {interrupts:?}", payload.name);
            let expected = if *interrupts == Interrupts::InKernel {
                End::Reset
            } else {
                End::Halted
            };
            assert_eq!(end, expected, "{what}");
            assert_eq!(codes.first(), Some(&MARKER_START), "{what}");
            if payload.name.starts_with("touch") {
                assert_eq!(codes.last(), Some(&MARKER_DONE), "{what}");
                assert!(touched >= 1024, "{what}: {touched} KiB touched");
            }
            let left = mappings_over(host, MEMORY);
            assert!(
                left.is_empty(),
                "{what}: guest memory at {host:p} outlived its machine: {left:?}"
            );
        }
    }
    assert_eq!(open_fds(), fds, "file descriptors left open");
    let grown = address_space_kib().saturating_sub(space);
    // Leaking even one machine's memory would grow the address space by 16 MiB.
    assert!(
        grown < (MEMORY >> 10) / 2,
        "the address space grew by {grown} KiB over {ROUNDS} rounds"
    );
}
