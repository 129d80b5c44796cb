//! The gvisor and podman backends for real: startup and footprint through the library, as
//! the runner runs one run, with real figures out (gVisor's memory split into its memory
//! file, the Sentry and the Gofer; podman's engine apart from its container); the
//! platforms this host cannot give refused with the reason; and nothing left behind, after
//! a run or after a killed run, once its leftovers are found and removed.
//!
//! Without runsc or podman (or root) a test prints why and skips; with CI=true that is a
//! failure, since CI installs them and runs as root.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reports::document::{Backend as Name, Part};
use vcbench::backend::gvisor::{self, Gvisor, Platform};
use vcbench::backend::{self, oci, podman, Availability, Backend, Event, Launch, Setup};
use vcbench::figures;
use vcbench::measure::{run_once, Outcome};
use vcbench::scenario::{Run as _, Scenario, Step};
use workload::record::Record;

/// One test at a time: each checks that nothing of this process is left, which another
/// test's live instance would break.
static SERIAL: Mutex<()> = Mutex::new(());

/// The environment variable that turns a run of this test binary into the killed child
/// of [`a_killed_run_leaves_what_stale_finds_and_remove_clears`], naming the backend.
const CHILD: &str = "VCBENCH_PEERS_TEST_CHILD";

/// What the child prints once its instance holds.
const HELD: &str = "the instance holds";

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `name`, set up as `vcbench run -b NAME` sets it up.
fn backend(name: Name) -> Box<dyn Backend> {
    backend::select(&Setup::default(), &[name])
        .unwrap()
        .pop()
        .unwrap()
}

/// Whether `backend` can run here; prints why not, and fails under CI.
fn available(backend: &dyn Backend) -> bool {
    match backend.availability() {
        Availability::Available => true,
        Availability::Unavailable(why) => {
            assert!(!ci(), "CI=true but {} cannot run: {why}", backend.name());
            eprintln!("skipped: {} cannot run here: {why}", backend.name());
            false
        }
    }
}

/// One run of `scenario` on `backend`, as the runner runs one.
fn run(backend: &dyn Backend, scenario: Scenario) -> Outcome {
    let launch = Launch {
        workload: images::image::install_workload(&images::image::cache_dir()).unwrap(),
        args: scenario.workload_args(),
    };
    let step = Step::new(scenario, Some(1), Some(0), Some(Duration::from_secs(60)));
    let outcome = run_once(backend, &launch, &step, &AtomicBool::new(false));
    assert_eq!(
        outcome.failure,
        None,
        "{} {}: {outcome:?}",
        backend.name(),
        scenario.name()
    );
    outcome
}

/// A startup run's markers are real and in order.
fn assert_started(outcome: &Outcome) {
    let m = &outcome.observation.markers;
    let (started, result, exited, gone) = (
        m.started_ms.unwrap(),
        m.result_ms.unwrap(),
        m.exited_ms.unwrap(),
        m.gone_ms.unwrap(),
    );
    assert!(
        0.0 < started && started <= result && result <= exited && exited <= gone,
        "{m:?}"
    );
    let values = figures::values(Scenario::Startup, &outcome.observation);
    let time_to_start = values.iter().find(|v| v.metric == "time_to_start").unwrap();
    assert!(time_to_start.value > 0.0, "{values:?}");
}

/// A footprint run's memory: the 64 MiB the workload touched, and what the sandbox adds.
fn footprint(outcome: &Outcome) -> (backend::Footprint, f64) {
    let footprint = outcome.observation.memory_at_result.clone().unwrap();
    let memory = footprint.processes.unwrap();
    assert!(memory.rss_kib >= 64 * 1024, "{footprint:?}");
    assert!(memory.uss_kib <= memory.pss_kib && memory.pss_kib <= memory.rss_kib);
    let values = figures::values(Scenario::Footprint, &outcome.observation);
    let overhead = values
        .iter()
        .find(|v| v.metric == "overhead_rss")
        .unwrap_or_else(|| panic!("no overhead_rss: {values:?}"))
        .value;
    assert!(overhead > 0.0, "{values:?}");
    (footprint, overhead)
}

fn part(footprint: &backend::Footprint, part: Part) -> u64 {
    footprint
        .parts
        .iter()
        .find(|(p, _)| *p == part)
        .map(|(_, kib)| *kib)
        .unwrap_or_else(|| panic!("no {part}: {footprint:?}"))
}

/// What of process `owner`'s containers is left: processes, mounts, containers, cgroups.
fn leftovers(owner: u32) -> Vec<String> {
    let names = [format!("vcbench-{owner}-"), format!("vcbench-run{owner}-")];
    let ours = |text: &str| names.iter().any(|n| text.contains(n.as_str()));
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if ours(&cmdline) && !cmdline.contains(CHILD) {
            left.push(format!(
                "process {}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    left.extend(
        mounts
            .lines()
            .filter(|l| ours(l))
            .map(|l| format!("mount {l}")),
    );
    for (tool, args) in [
        ("runsc", &["list", "--quiet"][..]),
        ("podman", &["ps", "--all", "--format", "{{.Names}}"][..]),
    ] {
        if let Ok(out) = Command::new(tool).args(args).output() {
            let text = String::from_utf8_lossy(&out.stdout);
            left.extend(
                text.lines()
                    .filter(|l| ours(l))
                    .map(|l| format!("{tool} container {l}")),
            );
        }
    }
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten() {
        let Ok(hierarchy) = hierarchy else { continue };
        for group in std::fs::read_dir(hierarchy.path()).into_iter().flatten() {
            let Ok(group) = group else { continue };
            if ours(&group.file_name().to_string_lossy()) {
                left.push(format!("cgroup {}", group.path().display()));
            }
        }
    }
    left
}

/// podman's overlay mounts, to see that a run leaves none of its own.
fn podman_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains("/containers/storage/overlay"))
        .count()
}

#[test]
fn gvisor_runs_startup_and_footprint_with_its_sandbox_split_out() {
    let _serial = serial();
    let gvisor = backend(Name::Gvisor);
    if !available(gvisor.as_ref()) {
        return;
    }
    assert!(
        gvisor.settings().contains("platform ptrace"),
        "{}",
        gvisor.settings()
    );
    assert_started(&run(gvisor.as_ref(), Scenario::Startup));
    let (footprint, overhead) = footprint(&run(gvisor.as_ref(), Scenario::Footprint));
    // The workload's 64 MiB live in the Sentry's memory file, not in any process's RSS;
    // the Sentry and the Gofer are the sandbox's own.
    let file = part(&footprint, Part::MemoryFile);
    assert!(file >= 64 * 1024, "{footprint:?}");
    let sentry = part(&footprint, Part::SentryOverhead);
    let gofer = part(&footprint, Part::GoferOverhead);
    assert!(sentry > 1024 && gofer > 1024, "{footprint:?}");
    let rss = footprint.processes.unwrap().rss_kib;
    assert_eq!(rss, file + sentry + gofer, "{footprint:?}");
    #[allow(clippy::cast_precision_loss, reason = "KiB far below 2^52")]
    let sandbox_mib = (sentry + gofer) as f64 / 1024.0;
    assert!(overhead > sandbox_mib * 0.9, "{overhead} {footprint:?}");
    assert!(part(&footprint, Part::CgroupMemory) >= 64 * 1024);
    assert_eq!(leftovers(std::process::id()), Vec::<String>::new());
}

#[test]
fn gvisor_platforms_this_host_cannot_give_are_refused_with_the_reason() {
    let _serial = serial();
    if !available(&Gvisor::default()) {
        return;
    }
    let platforms = String::from_utf8(
        Command::new("runsc")
            .args(["help", "platforms"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let has = |p: &str| platforms.lines().any(|l| l.trim() == p);
    let systrap = gvisor::platform_availability(Platform::Systrap);
    match has("systrap") {
        true => assert!(systrap.is_ok(), "{systrap:?}"),
        false => {
            let why = systrap.unwrap_err();
            assert!(why.contains("has no systrap platform"), "{why}");
        }
    }
    let kvm = Gvisor {
        platform: Platform::Kvm,
    };
    match (microvm::host::kvm_flavour(), kvm.availability()) {
        (microvm::host::KvmFlavour::Hardware { .. }, _) => {}
        (_, Availability::Available) => panic!("the kvm platform was offered without hardware KVM"),
        (microvm::host::KvmFlavour::Software { module }, Availability::Unavailable(why)) => {
            assert!(why.contains("software") && why.contains(&module), "{why}");
        }
        (_, Availability::Unavailable(why)) => assert!(why.contains("KVM"), "{why}"),
    }
    // The platform is part of what a figure measured.
    assert!(
        kvm.settings().contains("platform kvm"),
        "{}",
        kvm.settings()
    );
    assert!(kvm.supports(Scenario::Exits).is_err());
}

#[test]
fn podman_runs_startup_and_footprint_on_one_imported_image() {
    let _serial = serial();
    let podman = backend(Name::Podman);
    if !available(podman.as_ref()) {
        return;
    }
    let mounts = podman_mounts();
    assert_started(&run(podman.as_ref(), Scenario::Startup));
    let (footprint, overhead) = footprint(&run(podman.as_ref(), Scenario::Footprint));
    // The container's processes are the workload's, as runc's are; the engine's own
    // processes (podman's client, conmon) are a part apart.
    assert!(overhead < 16.0, "{overhead} {footprint:?}");
    assert!(
        part(&footprint, Part::EngineOverhead) > 1024,
        "{footprint:?}"
    );
    assert!(part(&footprint, Part::CgroupMemory) >= 64 * 1024);
    // One image, imported once and kept: this build's.
    let images = Command::new("podman")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
        .unwrap();
    let images = String::from_utf8_lossy(&images.stdout);
    let name = podman::image_name();
    assert_eq!(images.lines().filter(|l| *l == name).count(), 1, "{images}");
    assert!(
        podman.settings().contains("runtime "),
        "{}",
        podman.settings()
    );
    assert_eq!(leftovers(std::process::id()), Vec::<String>::new());
    assert!(podman_mounts() <= mounts, "podman left a mount");
}

/// In a child run of this binary ([`CHILD`] set): launches one held instance of the backend
/// it names, says so, and waits to be killed. Otherwise nothing.
#[test]
fn killed_child() {
    let Ok(name) = std::env::var(CHILD) else {
        return;
    };
    let backend = backend(name.parse().unwrap());
    let launch = Launch {
        workload: images::image::install_workload(&images::image::cache_dir()).unwrap(),
        args: vec!["alloc".to_owned(), "--mib".to_owned(), "1".to_owned()],
    };
    let mut instance = backend::launch(backend.as_ref(), &launch).unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while let Some(event) = instance.next_event(until).unwrap() {
        if let Event::Record {
            record: Record::Result { .. },
            ..
        } = event
        {
            println!("{HELD}");
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(120));
}

/// A run killed with SIGKILL while its instance holds: what it left is found by the
/// backend's `stale` and cleared by its `remove` (with the registry's own cleaning, as
/// `vcbench clean` does), and nothing of it remains.
fn killed_run_is_cleared(name: Name) {
    let mounts = podman_mounts();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, name.name())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let owner = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest may print the test's name on the same line first.
    let held = lines.any(|l| l.is_ok_and(|l| l.ends_with(HELD)));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(held, "the child's {name} instance never held");
    // Give what dies with the child (PR_SET_PDEATHSIG) a moment to go.
    std::thread::sleep(Duration::from_millis(500));
    vcbench::registry::clean();
    let found: Vec<String> = match name {
        Name::Gvisor => oci::stale(oci::Runtime::Runsc)
            .into_iter()
            .filter(|id| id.starts_with(&format!("vcbench-{owner}-")))
            .inspect(|id| oci::remove(oci::Runtime::Runsc, id).unwrap())
            .collect(),
        _ => podman::stale()
            .into_iter()
            .filter(|id| id.starts_with(&format!("vcbench-{owner}-")))
            .inspect(|id| podman::remove(id).unwrap())
            .collect(),
    };
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    assert_eq!(leftovers(owner), Vec::<String>::new(), "{name}");
    assert!(podman_mounts() <= mounts, "{name} left a mount");
}

#[test]
fn a_killed_run_leaves_what_stale_finds_and_remove_clears() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let _serial = serial();
    for name in [Name::Gvisor, Name::Podman] {
        if available(backend(name).as_ref()) {
            killed_run_is_cleared(name);
        }
    }
}
