//! The OCI path the peer runtimes share, and the `runc` and `crun` backends that are this
//! path alone: the same image and workload, run by an installed OCI runtime, so this
//! project's runtime is measured against the ones people use. The `gvisor` backend
//! (runsc) runs through the same path with options of its own.
//!
//! Each instance gets a bundle of its own ([`Bundle`]): `config.json`, written through the
//! `oci-spec` crate, with the image as a read-only root, the workload as `/init`, the same
//! seven namespaces as the `container` backend (root inside mapped to 100000 outside) and a
//! fresh host directory as `/tmp`. On a user's image (`exec --root DIR`) that image is the
//! root and the workload is reached from `/tmp`; limits go into `linux.resources`. The
//! runtime runs in the foreground (`<runtime> run`, [`Invocation::launch`]), its standard
//! output carrying the workload's records; the instance is the runtime's descendants. Teardown deletes the container by force whatever
//! happened, and the bundle goes with the instance. What a killed run left is found by
//! [`stale`] and removed by [`remove`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use container::Namespaces;
use oci_spec::runtime::{
    LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Mount, MountBuilder,
    RootBuilder, Spec,
};
use reports::document::Part;
use workload::channel;

use super::protocol::{
    Availability, Backend, Calls, Error, Event, Exit, Footprint, Instance, Launch, Reach,
};
use super::supervised::Supervised;
use super::watch;
use crate::host::tool_version;
use crate::procfs;
use crate::scenario::Scenario;

/// Instances started by this process, for unique container IDs.
static STARTED: AtomicU32 = AtomicU32::new(0);

/// The first host ID root inside maps to, as in the `container` backend.
pub const ID_BASE: u32 = 100_000;

/// How many IDs are mapped from [`ID_BASE`] on.
pub const ID_COUNT: u32 = 65_536;

/// The prefix of every container vcbench names, followed by its PID: `vcbench-<pid>-<n>`.
pub const ID_PREFIX: &str = "vcbench-";

/// Which OCI runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// runc, the reference runtime (Go).
    Runc,
    /// crun (C).
    Crun,
    /// runsc, gVisor's runtime: the container runs on a kernel in user space (Go).
    Runsc,
}

impl Runtime {
    /// Every runtime, for finding what a killed run left in each.
    pub const ALL: [Runtime; 3] = [Runtime::Runc, Runtime::Crun, Runtime::Runsc];

    /// Its command name.
    pub fn binary(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
            Runtime::Runsc => "runsc",
        }
    }
}

/// A new container name of this process: `vcbench-<pid>-<n>`, which [`owner_gone`] reads
/// back.
pub fn new_id() -> String {
    format!(
        "{ID_PREFIX}{}-{}",
        std::process::id(),
        STARTED.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether `id` is a vcbench container name whose owner process is gone.
pub fn owner_gone(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX)
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| !container::cleanup::alive(pid))
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The error of a step of a launch that failed with `source`.
pub fn spawn_error<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |source| Error::Spawn {
        what: what.to_owned(),
        source: std::io::Error::other(source.to_string()),
    }
}

/// The image's root file system directory, installed once per build.
pub fn rootfs() -> Result<PathBuf, Error> {
    images::image::install_rootfs(&images::image::cache_dir())
        .map_err(spawn_error("the container image"))
}

/// A fresh host directory for a container's `/tmp` inside `dir`: sticky and
/// world-writable, as /tmp is, since root inside is an unprivileged ID outside.
pub fn scratch_tmp(dir: &Path) -> Result<PathBuf, Error> {
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).map_err(spawn_error("the container's /tmp"))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
        .map_err(spawn_error("the container's /tmp"))?;
    Ok(tmp)
}

/// One instance's bundle: a temporary directory (named after this process, so a killed
/// run's is found) with `config.json` and the container's `/tmp`; removed when dropped.
#[derive(Debug)]
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    /// The bundle of a container running `args` with `namespaces`.
    pub fn new(args: &[String], namespaces: Namespaces) -> Result<Self, Error> {
        Self::make(None, args, namespaces, &container::Limits::default())
    }

    /// The bundle of a container running `launch` with `namespaces` and `limits`: on the
    /// user's image when its line names one (`exec --root DIR`), the workload then reached
    /// from the container's `/tmp`.
    pub fn for_launch(
        launch: &Launch,
        namespaces: Namespaces,
        limits: &container::Limits,
    ) -> Result<Self, Error> {
        Self::make(Some(&launch.workload), &launch.args, namespaces, limits)
    }

    fn make(
        workload: Option<&Path>,
        args: &[String],
        namespaces: Namespaces,
        limits: &container::Limits,
    ) -> Result<Self, Error> {
        let user_image = workload.and_then(|w| Some((w, super::image::split_root(args)?)));
        let rootfs = match &user_image {
            Some((_, (root, _))) => root.clone(),
            None => rootfs()?,
        };
        let dir = tempfile::Builder::new()
            .prefix(&crate::registry::temp_prefix("oci"))
            .tempdir()
            .map_err(spawn_error("the OCI bundle"))?;
        let tmp = scratch_tmp(dir.path())?;
        let config_error = spawn_error("the OCI configuration");
        let mut spec = match &user_image {
            Some((workload, (_, line))) => {
                let inside = super::image::place_workload(workload, &tmp)?;
                let mut spec = spec(&rootfs, &tmp, line, namespaces).map_err(config_error)?;
                let mut process = spec.process().clone().unwrap_or_default();
                let mut argv = process.args().clone().unwrap_or_default();
                if let Some(first) = argv.first_mut() {
                    *first = inside;
                }
                process.set_args(Some(argv));
                spec.set_process(Some(process));
                spec
            }
            None => spec(&rootfs, &tmp, args, namespaces).map_err(config_error)?,
        };
        if limits.any() {
            let resources = super::limits::oci_resources(limits)
                .map_err(spawn_error("the OCI configuration's limits"))?;
            let mut linux = spec.linux().clone().unwrap_or_default();
            linux.set_resources(Some(resources));
            spec.set_linux(Some(linux));
        }
        spec.save(dir.path().join("config.json"))
            .map_err(spawn_error("the OCI configuration"))?;
        Ok(Bundle { dir })
    }

    /// Its directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// How an OCI runtime is run: which one, the global options every command gets before
/// its name (runsc's platform, say), and whether `run` sees the host without its cgroup
/// v2 tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The runtime.
    pub runtime: Runtime,
    /// Global options, before the command.
    pub options: Vec<String>,
    /// Run the runtime in a mount namespace of its own where the cgroup v2 tree of a
    /// hybrid host is unmounted, so it sees a plain v1 host (crun 1.8 refuses hybrid hosts).
    pub hide_unified_cgroup: bool,
}

impl Invocation {
    /// `runtime` with no global options.
    pub fn new(runtime: Runtime) -> Self {
        Invocation {
            runtime,
            options: Vec::new(),
            hide_unified_cgroup: false,
        }
    }

    /// The runtime's command `args`, after the global options.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.runtime.binary());
        command.args(&self.options).args(args);
        command
    }

    /// Runs `launch` in a container of its own, with `namespaces`, on a new bundle, the
    /// runtime in the foreground.
    pub fn launch(&self, launch: &Launch, namespaces: Namespaces) -> Result<OciInstance, Error> {
        self.launch_limited(launch, namespaces, &container::Limits::default())
    }

    /// Runs `launch` as [`Invocation::launch`] does, its container held to `limits`.
    pub fn launch_limited(
        &self,
        launch: &Launch,
        namespaces: Namespaces,
        limits: &container::Limits,
    ) -> Result<OciInstance, Error> {
        let bundle = Bundle::for_launch(launch, namespaces, limits)?;
        let id = new_id();
        let mut command = Command::new(self.runtime.binary());
        if self.hide_unified_cgroup {
            hide_unified_cgroup(&mut command);
        }
        command
            .args(&self.options)
            .arg("run")
            .arg("--bundle")
            .arg(bundle.path())
            .arg(&id);
        let inner = Supervised::spawn(&mut command, watch::records(), watch::MAX_LINE, false)?;
        Ok(OciInstance {
            inner,
            invocation: self.clone(),
            id,
            _bundle: bundle,
        })
    }
}

/// An OCI-runtime backend: runc or crun, named after the runtime. runsc runs as the
/// `gvisor` backend ([`super::gvisor`]), with options of its own.
#[derive(Debug, Clone, Copy)]
pub struct Oci {
    /// The runtime.
    pub runtime: Runtime,
    /// The namespaces each container gets.
    pub namespaces: Namespaces,
    /// Run the runtime in a mount namespace of its own where the cgroup v2 tree of a
    /// hybrid host is unmounted, so it sees a plain v1 host (crun 1.8 refuses hybrid hosts).
    pub hide_unified_cgroup: bool,
    /// Limits on each container, in its bundle's `linux.resources` (none by default).
    pub limits: container::Limits,
}

impl Oci {
    /// The backend for `runtime` with the default settings.
    pub fn new(runtime: Runtime) -> Self {
        Oci {
            runtime,
            namespaces: Namespaces::ALL,
            hide_unified_cgroup: false,
            limits: container::Limits::default(),
        }
    }
}

/// Whether a rootful peer can run here: root and its program; `Err` says why not.
pub fn rootful_peer(binary: &str) -> Result<String, String> {
    if !is_root() {
        return Err(format!(
            "{binary} needs root here (its rootless mode needs a delegated cgroup): run \
             vcbench as root"
        ));
    }
    tool_version(binary)
}

impl Backend for Oci {
    fn name(&self) -> &'static str {
        self.runtime.binary()
    }

    fn describe(&self) -> &'static str {
        match self.runtime {
            Runtime::Runc => "runc (peer OCI runtime) on the same image, namespaces and workload",
            Runtime::Crun => "crun (peer OCI runtime) on the same image, namespaces and workload",
            Runtime::Runsc => "runsc (gVisor) on the same image, namespaces and workload",
        }
    }

    fn version(&self) -> Option<String> {
        Some(tool_version(self.runtime.binary()).unwrap_or_else(|why| why))
    }

    fn reach(&self) -> Reach {
        Reach {
            filter: format!(
                "none: the bundle vcbench writes has no seccomp profile, and {} adds none of \
                 its own",
                self.runtime.binary()
            ),
            calls: Calls::All,
            conditional: Vec::new(),
            vm_exits: Vec::new(),
        }
    }

    fn availability(&self) -> Availability {
        match rootful_peer(self.runtime.binary()) {
            Ok(_) => Availability::Available,
            Err(why) => Availability::Unavailable(why),
        }
    }

    fn in_default_set(&self) -> bool {
        false
    }

    fn settings(&self) -> String {
        let version = tool_version(self.runtime.binary()).unwrap_or_default();
        let mut s = format!(
            "{version}; namespaces: {}",
            self.namespaces.names().join(",")
        );
        if self.hide_unified_cgroup {
            s.push_str("; cgroup v2 tree hidden (v1 controllers only)");
        }
        if self.limits.any() {
            s.push_str(&format!(
                "; limits: {}",
                super::limits::describe(&self.limits)
            ));
        }
        s
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        match scenario {
            Scenario::Exits => Err("VM exits exist only in a VM".to_owned()),
            _ => Ok(()),
        }
    }

    fn runs_user_images(&self) -> Result<(), String> {
        match self.runtime {
            Runtime::Runsc => Err("runsc runs as the gvisor backend".to_owned()),
            _ => Ok(()),
        }
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        let invocation = Invocation {
            hide_unified_cgroup: self.hide_unified_cgroup,
            ..Invocation::new(self.runtime)
        };
        Ok(Box::new(invocation.launch_limited(
            launch,
            self.namespaces,
            &self.limits,
        )?))
    }
}

/// Makes `command` run in a mount namespace of its own without the hybrid host's cgroup v2
/// tree, so a runtime that refuses hybrid hosts sees a v1 host and uses its controllers.
fn hide_unified_cgroup(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let hide = || {
        // SAFETY: unshare takes flags only; in the forked child it affects that child alone.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: static NUL-terminated strings and null data: no memory is written.
        let private = unsafe {
            libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        if private != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Absent on a pure v1 host: then there is nothing to hide.
        // SAFETY: a static NUL-terminated path; the mount namespace is the child's own.
        unsafe { libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH) };
        Ok(())
    };
    // SAFETY: the closure runs in the forked child before exec and only makes raw system
    // calls on static strings: no allocation and no lock, nothing a fork of a threaded
    // process could find half-held.
    unsafe { command.pre_exec(hide) };
}

/// The configuration of one container.
pub fn spec(
    rootfs: &Path,
    tmp: &Path,
    args: &[String],
    namespaces: Namespaces,
) -> Result<Spec, oci_spec::OciSpecError> {
    let mut spec = Spec::default();
    spec.set_root(Some(
        RootBuilder::default().path(rootfs).readonly(true).build()?,
    ));
    let mut argv = vec!["/init".to_owned()];
    argv.extend(args.iter().cloned());
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(argv));
    process.set_env(Some(vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        format!("{}=stdout", channel::ENV),
    ]));
    process.set_terminal(Some(false));
    spec.set_process(Some(process));
    spec.set_hostname(Some("vcbench".to_owned()));
    let mut mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
    // What the `container` backend mounts: no mqueue, a cgroup view only with a cgroup
    // namespace, and the host directory as /tmp.
    mounts.retain(|m| {
        let dest = m.destination().to_string_lossy();
        dest != "/dev/mqueue" && (namespaces.cgroup || dest != "/sys/fs/cgroup")
    });
    mounts.push(
        MountBuilder::default()
            .destination("/tmp")
            .typ("bind")
            .source(tmp)
            .options(vec!["rbind".to_owned(), "rw".to_owned()])
            .build()?,
    );
    spec.set_mounts(Some(mounts));
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut kinds = Vec::new();
    for (on, kind) in [
        (namespaces.pid, LinuxNamespaceType::Pid),
        (namespaces.net, LinuxNamespaceType::Network),
        (namespaces.ipc, LinuxNamespaceType::Ipc),
        (namespaces.uts, LinuxNamespaceType::Uts),
        (true, LinuxNamespaceType::Mount),
        (namespaces.cgroup, LinuxNamespaceType::Cgroup),
        (namespaces.user, LinuxNamespaceType::User),
    ] {
        if on {
            kinds.push(LinuxNamespaceBuilder::default().typ(kind).build()?);
        }
    }
    linux.set_namespaces(Some(kinds));
    if namespaces.user {
        let map = LinuxIdMappingBuilder::default()
            .container_id(0_u32)
            .host_id(ID_BASE)
            .size(ID_COUNT)
            .build()?;
        linux.set_uid_mappings(Some(vec![map]));
        linux.set_gid_mappings(Some(vec![map]));
    }
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// A container run by an OCI runtime in the foreground.
pub struct OciInstance {
    /// The runtime process, whose standard output carries the records.
    inner: Supervised,
    invocation: Invocation,
    id: String,
    /// Removed after the container.
    _bundle: Bundle,
}

impl OciInstance {
    /// The container's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The runtime's own process, while it runs.
    pub fn runtime_pid(&self) -> Option<u32> {
        self.inner.pids().first().copied()
    }
}

impl Instance for OciInstance {
    /// The runtime's descendants: the container's processes (and, for runsc, its sandbox
    /// and file proxy), not the runtime's own foreground process.
    fn pids(&self) -> Vec<u32> {
        let Some(runtime) = self.runtime_pid() else {
            return Vec::new();
        };
        let mut pids = procfs::with_descendants(runtime);
        pids.retain(|&p| p != runtime);
        pids
    }

    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        self.inner.next_event(until)
    }

    fn release(&mut self) {
        // The workload, as the container's PID 1, forwards SIGTERM to its work.
        let _ = self
            .invocation
            .command(&["kill", &self.id, "TERM"])
            .output();
    }

    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        self.inner.wait(until)
    }

    fn diagnostics(&mut self) -> String {
        self.inner.diagnostics()
    }

    fn footprint(&self) -> Footprint {
        let pids = self.pids();
        Footprint {
            processes: procfs::memory_of(&pids),
            parts: pids
                .first()
                .and_then(|&pid| cgroup_memory_kib(pid))
                .map(|kib| vec![(Part::CgroupMemory, kib)])
                .unwrap_or_default(),
        }
    }

    fn teardown(self: Box<Self>) {
        let OciInstance {
            inner,
            invocation,
            id,
            ..
        } = *self;
        Box::new(inner).teardown();
        // Whatever happened to the runtime process, the container must not outlive it.
        let _ = invocation.command(&["delete", "--force", &id]).output();
    }
}

/// The memory, KiB, that the memory cgroup of process `pid` uses (its own processes' and
/// the kernel's for them, page cache and shared memory included): `memory.current` on a
/// cgroup v2 host, `memory.usage_in_bytes` of the v1 memory controller otherwise; `None`
/// when it has none or cannot be read.
pub fn cgroup_memory_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cgroup_memory_file(&text, Path::new("/sys/fs/cgroup"))
        .and_then(|file| std::fs::read_to_string(file).ok())
        .and_then(|bytes| bytes.trim().parse::<u64>().ok())
        .map(|bytes| bytes / 1024)
}

/// The file under `root` that gives the memory use of the cgroup named in `cgroup` (the
/// text of `/proc/PID/cgroup`): the v1 memory controller's where there is one, else the
/// unified tree's.
fn cgroup_memory_file(cgroup: &str, root: &Path) -> Option<PathBuf> {
    let mut unified = None;
    for line in cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let relative = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            return Some(
                root.join("memory")
                    .join(relative)
                    .join("memory.usage_in_bytes"),
            );
        }
        if controllers.is_empty() {
            unified = Some(root.join(relative).join("memory.current"));
        }
    }
    unified.filter(|file| file.exists())
}

/// The runtime's leftover containers of vcbench processes that are gone.
pub fn stale(runtime: Runtime) -> Vec<String> {
    // `--quiet`, not `-q`: runsc knows only the long form.
    let Ok(out) = Command::new(runtime.binary())
        .args(["list", "--quiet"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|id| owner_gone(id))
        .map(str::to_owned)
        .collect()
}

/// Deletes a leftover container by force.
pub fn remove(runtime: Runtime, id: &str) -> Result<(), String> {
    let out = Command::new(runtime.binary())
        .args(["delete", "--force", id])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_cgroup_is_the_v1_controller_s_or_else_the_unified_one() {
        let root = tempfile::tempdir().unwrap();
        let hybrid = "9:name=systemd:/x\n4:memory:/runc-1\n0::/\n";
        assert_eq!(
            cgroup_memory_file(hybrid, root.path()).unwrap(),
            root.path().join("memory/runc-1/memory.usage_in_bytes")
        );
        let v2 = "0::/system.slice/runc-1\n";
        // Only a unified cgroup that exists (a hybrid host's v2 tree has no controllers).
        assert_eq!(cgroup_memory_file(v2, root.path()), None);
        let dir = root.path().join("system.slice/runc-1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.current"), "4096\n").unwrap();
        assert_eq!(
            cgroup_memory_file(v2, root.path()).unwrap(),
            dir.join("memory.current")
        );
    }

    #[test]
    fn names_carry_their_owner() {
        let id = new_id();
        assert!(
            id.starts_with(&format!("vcbench-{}-", std::process::id())),
            "{id}"
        );
        assert!(!owner_gone(&id));
        assert!(owner_gone("vcbench-4294967295-0"));
        // Not ours at all: never touched.
        assert!(!owner_gone("3f2a9c"));
        assert!(!owner_gone("vcbench-notapid-1"));
    }
}
