//! Pooled sandboxes: built ahead, started on demand, and nothing left behind whether a
//! sandbox was taken or not, ran or failed. Needs root (cgroups) and busybox.

mod common;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{busybox_rootfs, prerequisites};
use container::{Pool, Spec, Stdio};

/// What a waiting sandbox holds on the host: its process and cgroup directories.
fn held(pool: &Pool) -> Vec<(u32, Vec<PathBuf>)> {
    pool.waiting()
        .map(|c| {
            let dirs = c.cgroup().map(|g| g.dirs().to_vec()).unwrap_or_default();
            (c.pid(), dirs)
        })
        .collect()
}

fn assert_gone(held: &[(u32, Vec<PathBuf>)]) {
    for (pid, dirs) in held {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} left behind"
        );
        for dir in dirs {
            assert!(!dir.exists(), "cgroup {} left behind", dir.display());
        }
    }
}

fn spec(rootfs: &Path) -> Spec {
    let mut spec = Spec::new(rootfs, vec!["/bin/true".into()]);
    spec.cgroup = true;
    spec
}

fn output() -> (std::fs::File, Stdio) {
    let (read, write) = std::io::pipe().unwrap();
    let write = OwnedFd::from(write);
    let stdio = Stdio {
        stdin: None,
        stdout: write.try_clone().unwrap(),
        stderr: write,
    };
    (std::fs::File::from(OwnedFd::from(read)), stdio)
}

#[test]
fn a_taken_sandbox_runs_its_program_and_the_rest_go_with_the_pool() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let mut pool = Pool::new(&spec(rootfs.path()), 2).unwrap();
    assert_eq!(pool.idle(), 2);
    let memory = pool.idle_memory_kib();
    assert_eq!(memory.len(), 2, "{memory:?}");
    assert!(memory.iter().all(|&kib| kib > 0), "{memory:?}");
    let all = held(&pool);

    let (mut out, stdio) = output();
    let args: Vec<String> = ["/bin/sh", "-c", "echo $GREETING from $$"]
        .map(String::from)
        .into();
    let mut running = pool
        .take(&args, &["GREETING=warm".to_owned()], stdio)
        .expect("a sandbox waits")
        .unwrap();
    let phases: Vec<&str> = running.phases().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        phases[phases.len() - 4..],
        ["privileges_dropped", "ready", "requested", "exec"],
        "{phases:?}"
    );
    let (reaped, timed_out) = running
        .wait(Instant::now() + Duration::from_secs(10))
        .unwrap();
    assert!(!timed_out);
    assert_eq!(reaped.status, 0);
    running.destroy().unwrap();
    let mut text = String::new();
    out.read_to_string(&mut text).unwrap();
    // PID 1 of its own namespace, with the environment the request brought.
    assert_eq!(text.trim(), "warm from 1");
    assert_eq!(pool.idle(), 1);
    drop(pool);
    assert_gone(&all);
}

#[test]
fn a_bad_request_is_refused_with_its_reason_and_leaves_nothing() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let mut pool = Pool::new(&spec(rootfs.path()), 2).unwrap();
    let all = held(&pool);

    let (_out, stdio) = output();
    let nul = pool
        .take(&["/bin/sh\0x".to_owned()], &[], stdio)
        .unwrap()
        .unwrap_err();
    assert!(nul.to_string().contains("NUL"), "{nul}");

    let (_out, stdio) = output();
    let missing = pool
        .take(&["/bin/nowhere".to_owned()], &[], stdio)
        .unwrap()
        .unwrap_err();
    assert!(
        missing.to_string().contains("executing /bin/nowhere"),
        "{missing}"
    );
    assert_eq!(pool.idle(), 0);
    let (_out, stdio) = output();
    assert!(pool.take(&["/bin/true".to_owned()], &[], stdio).is_none());
    assert_gone(&all);
}

#[test]
fn a_pool_of_a_bad_spec_is_refused_and_leaves_nothing() {
    if !prerequisites() {
        return;
    }
    let missing = Pool::new(&spec(Path::new("/nonexistent-vcbench-root")), 1).unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent-vcbench-root"),
        "{missing}"
    );
}

/// Run as its own process by the test below: fills a pool, says so, and waits to be
/// killed.
#[test]
#[ignore = "a helper the SIGKILL test runs in a process of its own"]
fn pool_holder() {
    let Some(rootfs) = std::env::var_os("VCBENCH_POOL_ROOTFS") else {
        return;
    };
    let pool = Pool::new(&spec(Path::new(&rootfs)), 2).unwrap();
    println!("filled {}", pool.idle());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_pool_killed_with_sigkill_is_found_and_removed_by_the_cleanup() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let mut holder = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "pool_holder", "--include-ignored", "--nocapture"])
        .env("VCBENCH_POOL_ROOTFS", rootfs.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = holder.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("filled 2") {
        assert_eq!(out.read(&mut byte).unwrap(), 1, "the holder ended early");
        seen.push(byte[0]);
    }
    let owner = holder.id();
    holder.kill().unwrap();
    holder.wait().unwrap();
    let layout = container::cgroup::Layout::detect().unwrap();
    let left: Vec<_> = container::cleanup::find(&layout)
        .into_iter()
        .filter(|l| l.owner == owner)
        .collect();
    // Two sandboxes, each a cgroup in every hierarchy it uses.
    let mut names: Vec<_> = left.iter().filter_map(|l| l.path.file_name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 2, "{left:?}");
    for leftover in &left {
        container::cleanup::remove(leftover).unwrap();
        assert!(!leftover.path.exists(), "{leftover:?}");
    }
}
