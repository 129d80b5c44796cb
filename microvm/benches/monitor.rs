//! The hypervisor's own costs, one at a time: creating and destroying a VM, registering
//! guest memory by size, creating a vCPU, and one exit round trip (timed by the guest's
//! own markers, stamped by the monitor). Needs a usable /dev/kvm; prints why and does
//! nothing otherwise. On software KVM (kvm_pvm) these are emulation figures.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::Kvm;
use microvm::guest;
use microvm::vm::{self, Config, End};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

fn memory(size: usize) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).expect("map guest memory")
}

fn region(memory: &GuestMemoryMmap, size: usize) -> kvm_userspace_memory_region {
    let host = memory
        .get_host_address(GuestAddress(0))
        .expect("host address");
    kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: size as u64,
        userspace_addr: host as u64,
    }
}

fn monitor(c: &mut Criterion) {
    let kvm = Kvm::new().expect("open /dev/kvm");
    let mut group = c.benchmark_group("kvm");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("create + destroy a VM", |b| {
        b.iter(|| drop(kvm.create_vm().expect("create_vm")))
    });
    for mib in [128usize, 1024] {
        let size = mib << 20;
        group.bench_function(format!("register {mib} MiB of guest memory"), |b| {
            b.iter_batched(
                || (kvm.create_vm().expect("create_vm"), memory(size)),
                |(vm, memory)| {
                    // SAFETY: the region maps `size` bytes owned by `memory`, which is
                    // returned with the VM and so outlives the registration.
                    unsafe { vm.set_user_memory_region(region(&memory, size)) }.expect("register");
                    (vm, memory)
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.bench_function("create a vCPU", |b| {
        b.iter_batched(
            || kvm.create_vm().expect("create_vm"),
            |vm| {
                let vcpu = vm.create_vcpu(0).expect("create_vcpu");
                (vm, vcpu)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();

    let mut group = c.benchmark_group("exit");
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    group.bench_function("one port-I/O exit round trip", |b| {
        b.iter_custom(|iters| {
            let count = u32::try_from(iters.max(1)).unwrap_or(u32::MAX);
            let config = Config {
                vcpus: 1,
                memory_mib: 16,
                payload: guest::exits(count),
                timeout: Duration::from_secs(120),
                devices: Default::default(),
            };
            let report = vm::run(&config).expect("run the exits guest");
            assert_eq!(report.end, End::Halted);
            let first = report.markers.stamps.first().map_or(0, |(_, s)| *s);
            let last = report.markers.last.map_or(first, |(_, s)| s);
            Duration::from_nanos(last - first)
        });
    });
    group.finish();
}

fn all(c: &mut Criterion) {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        eprintln!("skipped: /dev/kvm is not usable: {e}");
        return;
    }
    monitor(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
