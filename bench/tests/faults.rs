//! Fault injection: a workload that crashes, exits non-zero, never starts, floods its
//! output, hangs, forks without end or eats memory, and a VM that triple faults or makes
//! an exit nothing handles. Each is run as one run of the suite would be; each must end
//! as that run's failure with a reason that names what happened, the next run must still
//! succeed, and nothing of the run may be left: no process, cgroup, mount, temporary
//! directory or registry file.
//!
//! The test process makes itself a child subreaper, so a process a run leaves behind
//! (even one whose parent died) becomes its child, where the check finds it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vcbench::backend::container::Container;
use vcbench::backend::microvm::{Guests, MicroVm};
use vcbench::backend::native::Native;
use vcbench::backend::{Backend, Launch};
use vcbench::measure::{run_once, Outcome};
use vcbench::scenario::Scenario;
use vcbench::scenario::Step;

/// The checks look at the whole process: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether a prerequisite is here; prints why not, and fails under CI.
fn have(prerequisite: bool, why_not: &str) -> bool {
    if !prerequisite {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {why_not}"
        );
        eprintln!("skipped: {why_not}");
    }
    prerequisite
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// What the host looks like before a run, to compare with after it.
struct Before {
    mounts: BTreeSet<String>,
    netns: BTreeSet<String>,
}

fn vcbench_mounts() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains("vcbench"))
        .map(str::to_owned)
        .collect()
}

fn named_netns() -> BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn before() -> Before {
    Before {
        mounts: vcbench_mounts(),
        netns: named_netns(),
    }
}

/// This process's children that are still running (zombies are reaped first).
fn live_children() -> Vec<String> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid out-pointer; only children nobody else waits for
        // are left at this point (every run has been waited for).
        if unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } <= 0 {
            break;
        }
    }
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|p| {
            let text = std::fs::read_to_string(p.path().join("stat")).ok()?;
            let stat = container::process::Stat::parse(&text)?;
            (stat.parent == me && stat.running()).then(|| text.trim().to_owned())
        })
        .collect()
}

/// Asserts that nothing of a run is left, giving stragglers a moment to be reaped.
fn assert_nothing_left(before: &Before, what: &str) {
    assert_nothing_left_by(std::process::id(), before, what);
}

/// Asserts that no child of this process is running, giving stragglers (killed, not yet
/// reaped) a moment.
fn assert_no_children(what: &str) {
    let give_up = Instant::now() + Duration::from_secs(5);
    let mut children = live_children();
    while !children.is_empty() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(20));
        children = live_children();
    }
    assert!(children.is_empty(), "{what}: processes left: {children:?}");
}

/// Asserts that nothing `owner` (this process or a `vcbench` it ran) made is left.
fn assert_nothing_left_by(owner: u32, before: &Before, what: &str) {
    assert_no_children(what);

    let me = owner;
    let layout = container::cgroup::Layout::detect().unwrap();
    let parents = layout
        .hierarchies
        .iter()
        .flat_map(|h| container::cgroup::PARENTS.map(|p| h.mount_point.join(p)));
    for parent in parents {
        let ours: Vec<PathBuf> = std::fs::read_dir(&parent)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        container::cleanup::owner_of(&p.file_name().unwrap().to_string_lossy())
                            == Some(me)
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert!(ours.is_empty(), "{what}: cgroups left: {ours:?}");
    }
    assert_eq!(vcbench_mounts(), before.mounts, "{what}: mounts left");
    assert_eq!(
        named_netns(),
        before.netns,
        "{what}: network namespaces left"
    );

    let prefix = format!("vcbench-run{owner}-");
    let temps: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    assert!(
        temps.is_empty(),
        "{what}: temporary directories left: {temps:?}"
    );

    let records: Vec<PathBuf> = std::fs::read_dir(vcbench::registry::dir())
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{me}-"))
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        records.is_empty(),
        "{what}: registry files left: {records:?}"
    );
}

/// The installed workload, shared by the tests of this file.
fn workload() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    images::image::install_workload(dir.path()).unwrap()
}

/// Runs `args` once on `backend` with a time limit, as the suite runs one run, and
/// checks that nothing is left afterwards.
fn run(backend: &dyn Backend, args: &[&str], timeout: Duration) -> Outcome {
    let before = before();
    let launch = Launch {
        workload: workload(),
        args: args.iter().map(|s| (*s).to_owned()).collect(),
    };
    let step = Step::new(Scenario::Startup, Some(1), Some(0), Some(timeout));
    let started = Instant::now();
    let outcome = run_once(backend, &launch, &step, &AtomicBool::new(false));
    let what = format!("{} {}", backend.name(), args.join(" "));
    eprintln!(
        "{what}: {:?} in {:.2} s",
        outcome.failure,
        started.elapsed().as_secs_f64()
    );
    assert!(
        started.elapsed() < timeout + Duration::from_secs(10),
        "{what}: the run outlived its time limit by far"
    );
    assert_nothing_left(&before, &what);
    outcome
}

/// Asserts a failure whose reason contains each of `words`.
fn assert_failed(outcome: &Outcome, words: &[&str]) {
    let reason = outcome
        .failure
        .as_deref()
        .unwrap_or_else(|| panic!("the run succeeded: {outcome:?}"));
    for word in words {
        assert!(reason.contains(word), "{reason:?} does not say {word:?}");
    }
}

/// This test alone, as a child subreaper: every process a run leaves becomes its child.
fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    become_subreaper();
    guard
}

fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER");
}

/// The process faults every backend that runs the workload program must survive.
fn workload_faults(backend: &dyn Backend) {
    let short = Duration::from_secs(2);
    assert_failed(
        &run(backend, &["fault", "--kind", "segv"], short * 5),
        &["killed by signal SIGSEGV"],
    );
    assert_failed(
        &run(backend, &["fault", "--kind", "exit"], short * 5),
        &["exited with status 3", "giving up"],
    );
    assert_failed(
        &run(backend, &["fault", "--kind", "hang"], short),
        &["timed out after 2.0 s"],
    );
    assert_failed(
        &run(backend, &["fault", "--kind", "mute"], short),
        &["timed out", "without the workload starting"],
    );
    let flood = run(backend, &["fault", "--kind", "flood"], short * 5);
    assert_failed(&flood, &["a line of more than 65536 bytes"]);
    // A bad command line is the workload's usage error, in its own words.
    assert_failed(
        &run(backend, &["fault", "--kind", "nonsense"], short * 5),
        &["exited with status 2", "--kind must be one of"],
    );
    // And the suite carries on: the next run is a normal one.
    let hello = run(backend, &["hello"], short * 5);
    assert_eq!(hello.failure, None);
    assert!(hello.observation.markers.started_ms.is_some());
}

#[test]
fn native_workload_faults_are_failures_with_reasons_and_leave_nothing() {
    let _serial = exclusive();
    workload_faults(&Native);
}

#[test]
fn container_faults_are_failures_with_reasons_and_leave_nothing() {
    if !have(is_root(), "not root: containers with limits need cgroups") {
        return;
    }
    let _serial = exclusive();
    workload_faults(&Container::default());

    let limited = Container {
        limits: container::Limits {
            memory_max: Some(48 << 20),
            cpu: None,
            pids_max: Some(24),
        },
        ..Container::default()
    };
    let timeout = Duration::from_secs(20);
    // A fork bomb meets the pids limit: fork fails, and the workload says after how many.
    assert_failed(
        &run(&limited, &["fault", "--kind", "forkbomb"], timeout),
        &["fork failed after", "Resource temporarily unavailable"],
    );
    // Eating memory meets the memory limit: the OOM killer, counted in the cgroup.
    let oom = run(&limited, &["fault", "--kind", "oom"], timeout);
    assert_failed(&oom, &["out-of-memory killer", "memory limit"]);
    assert!(
        oom.counters
            .iter()
            .any(|(name, n)| name == "cgroup_oom_kills" && *n > 0),
        "{:?}",
        oom.counters
    );
    assert_eq!(run(&limited, &["hello"], timeout).failure, None);
}

#[test]
fn vm_faults_are_failures_with_reasons_and_leave_nothing() {
    if !have(kvm_usable(), "/dev/kvm is not usable here") {
        return;
    }
    let _serial = exclusive();
    let vm = MicroVm::with_guests(Guests::Micro("micro guests only".to_owned()));
    let timeout = Duration::from_secs(20);
    // Hardware KVM reports a triple fault as a shutdown exit; software KVM (kvm_pvm) as
    // an internal error. Either way the registers come with it.
    let triple = run(&vm, &["fault", "--kind", "triple-fault"], timeout);
    assert_failed(&triple, &["micro guest failed", "rip="]);
    let reason = triple.failure.unwrap_or_default();
    assert!(
        reason.contains("triple") || reason.contains("internal error"),
        "{reason}"
    );
    assert_failed(
        &run(&vm, &["fault", "--kind", "unhandled-exit"], timeout),
        &["0xe0000000"],
    );
    // A workload no micro guest runs is refused at launch, naming it.
    assert_failed(
        &run(&vm, &["fault", "--kind", "segv"], timeout),
        &["a micro guest can fault only with", "need a Linux guest"],
    );
    assert_eq!(run(&vm, &["hello"], timeout).failure, None);
}

const VCBENCH: &str = env!("CARGO_BIN_EXE_vcbench");

/// Starts `vcbench run` of many held instances, returns once `count` are tracked.
fn start_density_run(dir: &std::path::Path, count: usize) -> std::process::Child {
    // SAFETY: geteuid has no preconditions.
    let backends = if unsafe { libc::geteuid() } == 0 {
        "native,container"
    } else {
        "native"
    };
    let child = std::process::Command::new(VCBENCH)
        .args(["run", "-q", "-b", backends, "-s", "density"])
        .args(["--instances", "1,2000,4000", "-o", "r.json"])
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    until_tracked(child, count)
}

/// Returns `child` once `count` of its instances are tracked; kills it if that takes
/// a minute.
fn until_tracked(mut child: std::process::Child, count: usize) -> std::process::Child {
    let prefix = format!("{}-", child.id());
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let tracked = std::fs::read_dir(vcbench::registry::dir())
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .count()
            })
            .unwrap_or(0);
        if tracked >= count {
            return child;
        }
        if Instant::now() >= give_up {
            child.kill().ok();
            child.wait().ok();
            panic!("only {tracked} instances after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_vcbench_killed_mid_run_leaves_what_clean_finds_and_removes() {
    let _serial = exclusive();
    let before = before();
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_density_run(dir.path(), 20);
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    // Its instances die with it: the kernel kills them when their parent dies (they were
    // its children, so they are reparented to this subreaper, where the check sees them).
    assert_no_children("after a SIGKILL, before clean");
    let said = clean(dir.path());
    // ... and what they leave, clean finds and names.
    assert!(
        said.contains(&format!("vcbench process {pid}")),
        "clean did not name the killed run's leftovers: {said}"
    );
    assert_nothing_left_by(pid, &before, "after a SIGKILL and clean");
}

#[test]
fn a_second_signal_ends_at_once_and_leaves_no_process() {
    let _serial = exclusive();
    let before = before();
    let dir = tempfile::tempdir().unwrap();
    let child = start_density_run(dir.path(), 20);
    let owner = child.id();
    let pid = libc::pid_t::try_from(owner).unwrap();
    // SIGTERM (a service manager stopping it), then Ctrl-C before it has finished.
    // SAFETY: kill has no memory effects; the PID is our live child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(5));
    // SAFETY: as above (a zombie at worst, which kill ignores).
    unsafe { libc::kill(pid, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No process: a forced exit takes its instances with it.
    assert_no_children("after SIGTERM and Ctrl-C");
    clean(dir.path());
    assert_nothing_left_by(owner, &before, "after SIGTERM, Ctrl-C and clean");
}

/// Runs `vcbench clean`, asserts it succeeded, and returns what it said.
fn clean(dir: &std::path::Path) -> String {
    let out = std::process::Command::new(VCBENCH)
        .arg("clean")
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    said
}
