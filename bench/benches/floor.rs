//! The floor: what the kernel asks, at least, for each way of starting a program, measured
//! with system calls only so that `vcbench run -s startup` can be read against it on any
//! host (`cargo bench -p vcbench --bench floor`).
//!
//! - `process`: fork + exec + exit + wait of the smallest static program (an ELF of three
//!   instructions that calls exit_group), and of the workload itself (`hello`, as the
//!   native backend runs it: C library start-up and its records included); the same
//!   through posix_spawn, as `std::process::Command` does it.
//! - `namespaces`: the same fork + exec with all seven namespaces, as a container's
//!   clone(2) makes them, before any mount, pivot_root or cgroup.
//! - `kvm`: open /dev/kvm, create a VM, register one memory region (128 MiB, not
//!   pre-faulted), create one vCPU, set its registers and run it to its first exit (a
//!   port write), as a monitor must before a guest's first marker; the teardown comes
//!   after the clock stops.
//!
//! The namespace figures need root, the KVM figure a usable /dev/kvm: each group says why
//! it is skipped and the others run. The code of each floor is `vcbench::floor`'s, which
//! `vcbench run -s startup` also times in the same run as the backends.

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use vcbench::floor::{self, Floor, Program};

fn processes(c: &mut Criterion, smallest: &Path, workload: &Path) {
    let tiny = Program::new(smallest, &[]).expect("the smallest program");
    let hello = Program::new(workload, &["hello"]).expect("the workload");
    let mut group = c.benchmark_group("process");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("fork + exec smallest static program + wait", |b| {
        b.iter(|| tiny.fork_exec_wait(0).expect("fork + exec"))
    });
    group.bench_function("vfork + exec smallest static program + wait", |b| {
        b.iter(|| tiny.vfork_exec_wait(0).expect("vfork + exec"))
    });
    group.bench_function("posix_spawn smallest static program + wait", |b| {
        b.iter(|| {
            let status = std::process::Command::new(smallest)
                .status()
                .expect("spawn");
            assert!(status.success());
        })
    });
    group.bench_function("fork + exec workload hello + wait", |b| {
        b.iter(|| hello.fork_exec_wait(0).expect("fork + exec"))
    });
    group.finish();

    if let Some(reason) = Floor::Namespaces.unavailable() {
        eprintln!("skipped namespaces: {reason}");
        return;
    }
    let mut group = c.benchmark_group("namespaces");
    group.measurement_time(Duration::from_secs(3));
    let all = container::Namespaces::ALL.clone_flags();
    group.bench_function(
        "clone with all seven + exec smallest static program + wait",
        |b| b.iter(|| tiny.fork_exec_wait(all).expect("clone + exec")),
    );
    group.bench_function("clone with all seven but net + exec smallest + wait", |b| {
        b.iter(|| {
            tiny.fork_exec_wait(all & !libc::CLONE_NEWNET)
                .expect("clone + exec")
        })
    });
    group.bench_function(
        "vfork-style clone with all seven + exec smallest + wait",
        |b| b.iter(|| tiny.vfork_exec_wait(all).expect("clone + exec")),
    );
    group.finish();
}

fn kvm(c: &mut Criterion) {
    if let Some(reason) = Floor::Kvm.unavailable() {
        eprintln!("skipped kvm: {reason}");
        return;
    }
    let mut group = c.benchmark_group("kvm");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function(
        "open + create VM + 128 MiB region + vCPU + run to first exit",
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (took, built) = floor::first_exit().expect("a VM to its first exit");
                    total += took;
                    drop(built);
                }
                total
            })
        },
    );
    group.finish();
}

fn all(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let smallest = floor::write_smallest(dir.path()).expect("write the smallest program");
    let workload = images::image::install_workload(dir.path()).expect("install the workload");
    processes(c, &smallest, &workload);
    kvm(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
