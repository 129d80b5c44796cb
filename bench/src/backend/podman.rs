//! The `podman` backend: the same image and workload run by the podman container engine,
//! to measure what an engine costs above the bare OCI runtime that it drives.
//!
//! The image's root file system is imported once into podman's storage, as
//! `localhost/vcbench-workload:<the workload's hash>`, and reused while it is there; an
//! image is never pulled (`--pull never`). Each instance is `podman run --rm` in the
//! foreground, its standard output carrying the workload's records, with what the `runc`
//! backend's bundle gives: a read-only root, root mapped to 100000, its own cgroup, pid,
//! ipc, uts and network namespaces (`--network none`: a loopback only), and a fresh host
//! directory as `/tmp`. The rest is podman's own defaults (its seccomp profile, its
//! capabilities, its log file). On a hybrid cgroup host it runs on runc, since crun 1.8
//! refuses such hosts.
//!
//! The container's processes are conmon's descendants; podman's client and conmon are the
//! engine's own (the `engine_overhead` part). Teardown removes a container that podman's
//! `--rm` did not (a timed-out or killed client); what a killed run left is found by
//! [`stale`], and images of other builds by [`stale_images`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use reports::document::Part;
use workload::channel;

use super::oci::{self, ID_BASE, ID_COUNT};
use super::protocol::{
    Availability, Backend, Calls, Error, Event, Exit, Footprint, Instance, Launch, Reach,
};
use super::supervised::Supervised;
use super::watch;
use crate::host::tool_version;
use crate::procfs;
use crate::scenario::Scenario;

/// The repository of the imported image; its tag is the workload's hash.
pub const IMAGE_REPOSITORY: &str = "localhost/vcbench-workload";

/// The most processes a container gets: podman lowers its own limit to this at start, and
/// a container may not have more than the process that starts it.
const MAX_PROCESSES: u64 = 32_768;

/// The image this build's workload runs from.
pub fn image_name() -> String {
    format!("{IMAGE_REPOSITORY}:{}", images::image::WORKLOAD_FNV)
}

/// The podman backend.
#[derive(Debug, Default)]
pub struct Podman {
    /// What `podman info` says, asked once.
    info: OnceLock<Info>,
}

/// What podman is set up with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Info {
    /// The OCI runtime it runs containers on, unless told otherwise.
    runtime: String,
    /// How it makes cgroups (`cgroupfs`, `systemd`).
    cgroup_manager: String,
}

impl Podman {
    fn info(&self) -> &Info {
        self.info.get_or_init(|| {
            let out = Command::new("podman")
                .args([
                    "info",
                    "--format",
                    "{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}",
                ])
                .output();
            let text = out
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let mut words = text.split_whitespace().map(str::to_owned);
            Info {
                runtime: words.next().unwrap_or_else(|| "unknown".to_owned()),
                cgroup_manager: words.next().unwrap_or_else(|| "unknown".to_owned()),
            }
        })
    }

    /// The runtime podman is told to use instead of its own: runc on a hybrid cgroup host
    /// where podman is set up with crun, which refuses such hosts.
    fn runtime_override(&self) -> Option<&'static str> {
        (hybrid_cgroups() && self.info().runtime == "crun").then_some("runc")
    }
}

/// Whether this host mounts both cgroup versions.
fn hybrid_cgroups() -> bool {
    container::cgroup::Layout::detect()
        .is_ok_and(|l| l.version() == container::cgroup::Version::Hybrid)
}

impl Backend for Podman {
    fn name(&self) -> &'static str {
        "podman"
    }

    fn describe(&self) -> &'static str {
        "podman (peer container engine) on the same image, namespaces and workload"
    }

    fn version(&self) -> Option<String> {
        Some(tool_version("podman").unwrap_or_else(|why| why))
    }

    fn reach(&self) -> Reach {
        Reach {
            filter: "podman's default seccomp profile (an allow-list of its own), not counted \
                     here"
                .to_owned(),
            calls: Calls::Uncounted,
            conditional: Vec::new(),
            vm_exits: Vec::new(),
        }
    }

    fn availability(&self) -> Availability {
        if !oci::is_root() {
            return Availability::Unavailable(
                "podman needs root here: its containers map root inside to 100000 outside, \
                 which another user may do only through /etc/subuid; run vcbench as root"
                    .to_owned(),
            );
        }
        if let Err(why) = tool_version("podman") {
            return Availability::Unavailable(why);
        }
        // Asking podman which runtime it is set up with takes a third of a second, so a
        // hybrid host is taken to need runc (crun, podman's usual runtime, refuses it).
        if hybrid_cgroups() {
            if let Err(why) = tool_version("runc") {
                return Availability::Unavailable(format!(
                    "on this hybrid cgroup host podman runs on runc (crun 1.8 refuses such \
                     hosts), and runc cannot be run: {why}"
                ));
            }
        }
        Availability::Available
    }

    fn in_default_set(&self) -> bool {
        false
    }

    fn settings(&self) -> String {
        let version = tool_version("podman").unwrap_or_default();
        let info = self.info();
        let runtime = match self.runtime_override() {
            Some(runtime) => format!(
                "runtime {runtime} (--runtime: its own, crun, refuses this hybrid cgroup host)"
            ),
            None => format!("runtime {} (its own)", info.runtime),
        };
        let (nofile, nproc) = limits();
        format!(
            "{version}; {runtime}; cgroup manager {}; network none; uid/gid map 0:{ID_BASE}:\
             {ID_COUNT}; ulimits nofile={}:{} (vcbench's own), nproc={nproc}:{nproc} (at most \
             podman's own)",
            info.cgroup_manager, nofile.0, nofile.1
        )
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        match scenario {
            Scenario::Exits => Err("VM exits exist only in a VM".to_owned()),
            _ => Ok(()),
        }
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        let image = ensure_image()?;
        let dir = tempfile::Builder::new()
            .prefix(&crate::registry::temp_prefix("podman"))
            .tempdir()
            .map_err(oci::spawn_error("the podman instance's directory"))?;
        let tmp = oci::scratch_tmp(dir.path())?;
        let conmon_pidfile = dir.path().join("conmon.pid");
        let id = oci::new_id();
        let mut command = Command::new("podman");
        if let Some(runtime) = self.runtime_override() {
            command.args(["--runtime", runtime]);
        }
        command.args(run_args(&id, &conmon_pidfile, &tmp, &image, &launch.args));
        let inner = Supervised::spawn(&mut command, watch::records(), watch::MAX_LINE, false)?;
        Ok(Box::new(PodmanInstance {
            inner,
            id,
            conmon_pidfile,
            conmon: OnceLock::new(),
            ended_alone: false,
            _dir: dir,
        }))
    }
}

/// The soft and hard limits on open files, and the limit on processes, that containers
/// get: this process's own, the latter at most [`MAX_PROCESSES`].
fn limits() -> ((u64, u64), u64) {
    let get = |resource| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into the struct it is given, which lives
        // across the call.
        match unsafe { libc::getrlimit(resource, &mut limit) } {
            0 => (limit.rlim_cur, limit.rlim_max),
            _ => (1024, 1024),
        }
    };
    let nofile = get(libc::RLIMIT_NOFILE);
    let nproc = get(libc::RLIMIT_NPROC).0.min(MAX_PROCESSES);
    (nofile, nproc)
}

/// `podman run`'s arguments for container `id` running `args` from `image`.
fn run_args(
    id: &str,
    conmon_pidfile: &Path,
    tmp: &Path,
    image: &str,
    args: &[String],
) -> Vec<String> {
    let ((soft, hard), nproc) = limits();
    let map = format!("0:{ID_BASE}:{ID_COUNT}");
    let mut run: Vec<String> = [
        "run",
        "--rm",
        "--pull",
        "never",
        "--name",
        id,
        "--network",
        "none",
        "--read-only",
        "--read-only-tmpfs=false",
        "--uidmap",
        &map,
        "--gidmap",
        &map,
        "--cgroupns",
        "private",
        "--ipc",
        "private",
        "--hostname",
        "vcbench",
        "--ulimit",
        &format!("nofile={soft}:{hard}"),
        "--ulimit",
        &format!("nproc={nproc}:{nproc}"),
        "--env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--env",
        &format!("{}=stdout", channel::ENV),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    run.push("--conmon-pidfile".to_owned());
    run.push(conmon_pidfile.display().to_string());
    run.push("--volume".to_owned());
    run.push(format!("{}:/tmp", tmp.display()));
    run.push(image.to_owned());
    run.push("/init".to_owned());
    run.extend(args.iter().cloned());
    run
}

/// The image this build's workload runs from, imported into podman's storage if it is not
/// there yet (once per process; a later check costs nothing).
fn ensure_image() -> Result<String, Error> {
    static READY: Mutex<bool> = Mutex::new(false);
    let name = image_name();
    let mut ready = READY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *ready {
        return Ok(name);
    }
    let exists = Command::new("podman")
        .args(["image", "exists", &name])
        .status()
        .map_err(oci::spawn_error("podman image exists"))?;
    if !exists.success() {
        import(&oci::rootfs()?, &name)?;
    }
    *ready = true;
    Ok(name)
}

/// Imports the directory `rootfs` into podman's storage as image `name`, through a tar
/// stream of it.
fn import(rootfs: &Path, name: &str) -> Result<(), Error> {
    let what = format!("the import of {} into podman as {name}", rootfs.display());
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(oci::spawn_error(&what))?;
    let stream = tar
        .stdout
        .take()
        .map(Stdio::from)
        .unwrap_or_else(Stdio::null);
    let imported = Command::new("podman")
        .args(["import", "--quiet", "-", name])
        .stdin(stream)
        .output()
        .map_err(oci::spawn_error(&what));
    let tarred = tar.wait_with_output().map_err(oci::spawn_error(&what))?;
    let imported = imported?;
    let failed = |output: &std::process::Output, who: &str| Error::Spawn {
        what: what.clone(),
        source: std::io::Error::other(format!(
            "{who} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    };
    if !tarred.status.success() {
        return Err(failed(&tarred, "tar"));
    }
    if !imported.status.success() {
        return Err(failed(&imported, "podman import"));
    }
    Ok(())
}

/// A container run by `podman run` in the foreground.
struct PodmanInstance {
    /// podman's client, whose standard output carries the records.
    inner: Supervised,
    id: String,
    /// Where podman writes conmon's PID once the container is made.
    conmon_pidfile: PathBuf,
    /// conmon's PID with its start time, once read.
    conmon: OnceLock<(u32, u64)>,
    /// The client exited on its own (so its `--rm` has removed the container).
    ended_alone: bool,
    /// The container's `/tmp` and conmon's PID file; removed after the container.
    _dir: tempfile::TempDir,
}

impl PodmanInstance {
    /// conmon's PID while the same process lives.
    fn conmon_pid(&self) -> Option<u32> {
        let (pid, start) = match self.conmon.get() {
            Some(known) => *known,
            None => {
                let pid: u32 = std::fs::read_to_string(&self.conmon_pidfile)
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                let start = crate::registry::start_time(pid)?;
                *self.conmon.get_or_init(|| (pid, start))
            }
        };
        (crate::registry::start_time(pid) == Some(start)).then_some(pid)
    }
}

impl Instance for PodmanInstance {
    /// The container's processes: conmon's descendants, not conmon.
    fn pids(&self) -> Vec<u32> {
        let Some(conmon) = self.conmon_pid() else {
            return Vec::new();
        };
        let mut pids = procfs::with_descendants(conmon);
        pids.retain(|&p| p != conmon);
        pids
    }

    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        self.inner.next_event(until)
    }

    fn release(&mut self) {
        // podman's client passes SIGTERM on to the container (--sig-proxy, its default),
        // whose PID 1, the workload, forwards it to its work.
        self.inner.release();
    }

    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        let exit = self.inner.wait(until)?;
        self.ended_alone = !exit.timed_out;
        Ok(exit)
    }

    fn diagnostics(&mut self) -> String {
        self.inner.diagnostics()
    }

    fn footprint(&self) -> Footprint {
        let pids = self.pids();
        let mut parts = Vec::new();
        let engine: Vec<u32> = self
            .inner
            .pids()
            .into_iter()
            .chain(self.conmon_pid())
            .collect();
        if let Some(engine) = procfs::memory_of(&engine) {
            parts.push((Part::EngineOverhead, engine.rss_kib));
        }
        if let Some(kib) = pids.first().and_then(|&pid| oci::cgroup_memory_kib(pid)) {
            parts.push((Part::CgroupMemory, kib));
        }
        Footprint {
            processes: procfs::memory_of(&pids),
            parts,
        }
    }

    fn teardown(self: Box<Self>) {
        let conmon = self.conmon_pid().and_then(|_| self.conmon.get().copied());
        let PodmanInstance {
            inner,
            id,
            ended_alone,
            ..
        } = *self;
        Box::new(inner).teardown();
        if !ended_alone {
            // The client was killed (or never waited for): its --rm never ran.
            drop(remove_now(&id));
        }
        // conmon runs podman's cleanup after the container, and is the instance's until
        // it is done.
        if let Some(conmon) = conmon {
            wait_gone(conmon);
        }
    }
}

/// The leftover containers of vcbench processes that are gone, by name.
pub fn stale() -> Vec<String> {
    let Ok(out) = Command::new("podman")
        .args([
            "ps",
            "--all",
            "--filter",
            &format!("name=^{}", oci::ID_PREFIX),
            "--format",
            "{{.Names}}",
        ])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|name| oci::owner_gone(name))
        .map(str::to_owned)
        .collect()
}

/// Removes container `name` by force (killing it if it runs), with its storage, and waits
/// for its conmon to finish.
pub fn remove(name: &str) -> Result<(), String> {
    let conmon = Command::new("podman")
        .args(["inspect", "--format", "{{.State.ConmonPid}}", name])
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u32>()
                .ok()
        })
        .and_then(|pid| Some((pid, crate::registry::start_time(pid)?)));
    let removed = remove_now(name);
    if let Some(conmon) = conmon {
        wait_gone(conmon);
    }
    removed
}

/// Removes container `name` by force, with its storage; its conmon may still be finishing.
fn remove_now(name: &str) -> Result<(), String> {
    checked(Command::new("podman").args(["rm", "--force", "--ignore", "--time", "0", name]))
}

/// How long a container's conmon may take to finish once the container is gone (it runs
/// podman's cleanup first).
const CONMON_GRACE: Duration = Duration::from_secs(10);

/// Waits, up to [`CONMON_GRACE`], for process `(pid, start time)` to be gone.
fn wait_gone((pid, start): (u32, u64)) {
    let until = Instant::now() + CONMON_GRACE;
    while crate::registry::start_time(pid) == Some(start) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The images of other builds' workloads in podman's storage (this build's stays).
pub fn stale_images() -> Vec<String> {
    let Ok(out) = Command::new("podman")
        .args([
            "images",
            "--filter",
            &format!("reference={IMAGE_REPOSITORY}"),
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ])
        .output()
    else {
        return Vec::new();
    };
    let current = image_name();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|name| name.starts_with(IMAGE_REPOSITORY) && *name != current)
        .map(str::to_owned)
        .collect()
}

/// Removes image `name` from podman's storage.
pub fn remove_image(name: &str) -> Result<(), String> {
    checked(Command::new("podman").args(["rmi", "--force", name]))
}

/// Runs `command`; `Err` with its standard error when it fails.
fn checked(command: &mut Command) -> Result<(), String> {
    let out = command.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        let mut why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if why.is_empty() {
            why = out.status.to_string();
        }
        Err(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_never_pulls_and_mirrors_the_runc_bundle() {
        let args = run_args(
            "vcbench-1-0",
            Path::new("/d/conmon.pid"),
            Path::new("/d/tmp"),
            "localhost/vcbench-workload:abc",
            &["alloc".to_owned(), "--mib".to_owned(), "1".to_owned()],
        );
        let text = args.join(" ");
        for expected in [
            "run --rm --pull never --name vcbench-1-0",
            "--network none --read-only --read-only-tmpfs=false",
            "--uidmap 0:100000:65536 --gidmap 0:100000:65536",
            "--cgroupns private",
            "--conmon-pidfile /d/conmon.pid --volume /d/tmp:/tmp",
        ] {
            assert!(text.contains(expected), "{expected:?} not in {text}");
        }
        assert!(
            text.ends_with("localhost/vcbench-workload:abc /init alloc --mib 1"),
            "{text}"
        );
    }

    #[test]
    fn containers_get_at_most_podman_s_own_process_limit() {
        let ((soft, hard), nproc) = limits();
        assert!(soft <= hard);
        assert!((1..=MAX_PROCESSES).contains(&nproc));
    }

    #[test]
    fn the_image_is_named_by_the_workload_s_hash() {
        assert_eq!(
            image_name(),
            format!("localhost/vcbench-workload:{}", images::image::WORKLOAD_FNV)
        );
    }
}
