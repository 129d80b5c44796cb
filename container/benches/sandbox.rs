//! What each piece of a container costs: clone(2) with one namespace flag at a time (and
//! all seven), pivot_root into a bind-mounted root, and a cgroup's create, attach and
//! remove. Each clone runs a child that does its part and exits; the parent waits.
//! Needs root; prints why and does nothing otherwise.

use std::hint::black_box;
use std::time::Duration;

use container::cgroup::{Cgroup, Layout};
use container::{Limits, Namespaces};
use criterion::{criterion_group, criterion_main, Criterion};

/// Clones a child with `flags` that runs `child` (system calls only) then exits; waits.
fn clone_and_wait(flags: libc::c_int, child: fn() -> libc::c_int) {
    // SAFETY: the child runs only system calls and _exit.
    let pid = unsafe { container::process::clone_fork(flags) }.expect("clone");
    if pid == 0 {
        let code = child();
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: a valid out-pointer; the PID is our child.
    unsafe { libc::waitpid(libc::pid_t::try_from(pid).unwrap_or(0), &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status}"
    );
}

fn nothing() -> libc::c_int {
    0
}

/// The pivot_root sequence a container runs, into a bind-mounted scratch directory.
fn pivot() -> libc::c_int {
    let root = c"/tmp/vcbench-bench-root";
    let (null, dot) = (std::ptr::null(), c".".as_ptr());
    let private = libc::MS_REC | libc::MS_PRIVATE;
    // SAFETY: null or valid C strings, as mount(2) requires.
    if unsafe { libc::mount(null, c"/".as_ptr(), null, private, null.cast()) } != 0 {
        return 1;
    }
    // SAFETY: as above.
    if unsafe {
        libc::mount(
            root.as_ptr(),
            root.as_ptr(),
            null,
            libc::MS_BIND,
            null.cast(),
        )
    } != 0
    {
        return 2;
    }
    // SAFETY: a valid C string.
    if unsafe { libc::chdir(root.as_ptr()) } != 0 {
        return 3;
    }
    // SAFETY: two valid C strings.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot, dot) } != 0 {
        return 4;
    }
    // SAFETY: a valid C string.
    i32::from(unsafe { libc::umount2(dot, libc::MNT_DETACH) } != 0) * 5
}

fn namespaces(c: &mut Criterion) {
    let mut group = c.benchmark_group("clone");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("fork (no namespace)", |b| {
        b.iter(|| clone_and_wait(0, nothing))
    });
    for (name, flag) in [
        ("user", libc::CLONE_NEWUSER),
        ("pid", libc::CLONE_NEWPID),
        ("mount", libc::CLONE_NEWNS),
        ("uts", libc::CLONE_NEWUTS),
        ("ipc", libc::CLONE_NEWIPC),
        ("net", libc::CLONE_NEWNET),
        ("cgroup", libc::CLONE_NEWCGROUP),
    ] {
        group.bench_function(name, |b| b.iter(|| clone_and_wait(flag, nothing)));
    }
    group.bench_function("all seven", |b| {
        b.iter(|| clone_and_wait(Namespaces::ALL.clone_flags(), nothing))
    });
    group.finish();

    std::fs::create_dir_all("/tmp/vcbench-bench-root").expect("make the pivot root");
    let mut group = c.benchmark_group("pivot_root");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("mount namespace only", |b| {
        b.iter(|| clone_and_wait(libc::CLONE_NEWNS, nothing))
    });
    group.bench_function("mount namespace + bind + pivot_root + detach", |b| {
        b.iter(|| clone_and_wait(libc::CLONE_NEWNS, pivot));
    });
    group.finish();
    let _ = std::fs::remove_dir("/tmp/vcbench-bench-root");
}

fn cgroups(c: &mut Criterion) {
    let layout = Layout::detect().expect("mountinfo");
    let limits = Limits {
        memory_max: Some(64 << 20),
        pids_max: Some(64),
        cpu: None,
    };
    let mut group = c.benchmark_group("cgroup");
    group.measurement_time(Duration::from_secs(3));
    let mut n = 0u32;
    let mut name = || {
        n += 1;
        format!("vcbench-{}-{n}", std::process::id())
    };
    group.bench_function("create with limits + remove", |b| {
        b.iter(|| {
            let mut g = Cgroup::create(&layout, &name(), &limits).expect("create");
            g.remove().expect("remove");
        });
    });
    // A helper process to move in; it leaves with its cgroup's removal (killed).
    group.bench_function("create + attach a process + remove", |b| {
        b.iter_batched(
            || {
                std::process::Command::new("sleep")
                    .arg("60")
                    .spawn()
                    .expect("spawn sleep")
            },
            |mut sleeper| {
                let mut g = Cgroup::create(&layout, &name(), &limits).expect("create");
                g.attach(sleeper.id()).expect("attach");
                g.remove().expect("remove");
                black_box(sleeper.wait().ok());
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn all(c: &mut Criterion) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the sandbox benchmarks need root");
        return;
    }
    namespaces(c);
    cgroups(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
