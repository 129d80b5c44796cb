//! The `runc` and `crun` backends: the same image and workload, run by an installed OCI
//! runtime, so this project's runtime is measured against the ones people use.
//!
//! Each instance gets a bundle of its own: `config.json`, written through the `oci-spec`
//! crate, with the image as a read-only root, the workload as `/init`, the same seven
//! namespaces as the `container` backend (root inside mapped to 100000 outside) and a fresh
//! host directory as `/tmp`. The runtime runs in the foreground (`<runtime> run`), its
//! standard output carrying the workload's records; teardown deletes the container by force
//! whatever happened, and the bundle goes with the instance.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use container::Namespaces;
use oci_spec::runtime::{
    LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Mount, MountBuilder,
    RootBuilder, Spec,
};
use workload::channel;

use super::protocol::{Availability, Backend, Error, Event, Exit, Footprint, Instance, Launch};
use super::supervised::Supervised;
use super::watch;
use crate::host::tool_version;
use crate::procfs;
use crate::scenario::Scenario;

/// Instances started by this process, for unique container IDs.
static STARTED: AtomicU32 = AtomicU32::new(0);

/// The first host ID root inside maps to, as in the `container` backend.
const ID_BASE: u32 = 100_000;

/// Which OCI runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// runc, the reference runtime (Go).
    Runc,
    /// crun (C).
    Crun,
}

impl Runtime {
    /// Its command name.
    pub fn binary(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }
}

/// An OCI-runtime backend.
#[derive(Debug, Clone, Copy)]
pub struct Oci {
    /// The runtime.
    pub runtime: Runtime,
    /// The namespaces each container gets.
    pub namespaces: Namespaces,
    /// Run the runtime in a mount namespace of its own where the cgroup v2 tree of a
    /// hybrid host is unmounted, so it sees a plain v1 host (crun 1.8 refuses hybrid hosts).
    pub hide_unified_cgroup: bool,
}

impl Oci {
    /// The backend for `runtime` with the default settings.
    pub fn new(runtime: Runtime) -> Self {
        Oci {
            runtime,
            namespaces: Namespaces::ALL,
            hide_unified_cgroup: false,
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Backend for Oci {
    fn name(&self) -> &'static str {
        self.runtime.binary()
    }

    fn describe(&self) -> &'static str {
        match self.runtime {
            Runtime::Runc => "runc (peer OCI runtime) on the same image, namespaces and workload",
            Runtime::Crun => "crun (peer OCI runtime) on the same image, namespaces and workload",
        }
    }

    fn availability(&self) -> Availability {
        if !is_root() {
            return Availability::Unavailable(format!(
                "{} needs root here (its rootless mode needs a delegated cgroup)",
                self.runtime.binary()
            ));
        }
        match tool_version(self.runtime.binary()) {
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
        s
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        match scenario {
            Scenario::Exits => Err("VM exits exist only in a VM".to_owned()),
            _ => Ok(()),
        }
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        let spawn_error = |what: &str| {
            let what = what.to_owned();
            move |source| Error::Spawn { what, source }
        };
        let rootfs = images::image::install_rootfs(&images::image::cache_dir()).map_err(|e| {
            Error::Spawn {
                what: "the container image".to_owned(),
                source: std::io::Error::other(e),
            }
        })?;
        let bundle = tempfile::Builder::new()
            .prefix(&crate::registry::temp_prefix("oci"))
            .tempdir()
            .map_err(spawn_error("the OCI bundle"))?;
        let tmp = bundle.path().join("tmp");
        std::fs::create_dir(&tmp).map_err(spawn_error("the container's /tmp"))?;
        // Sticky and world-writable, as /tmp is: root inside is an unprivileged ID outside.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
            .map_err(spawn_error("the container's /tmp"))?;
        let spec =
            spec(&rootfs, &tmp, &launch.args, self.namespaces).map_err(|e| Error::Spawn {
                what: "the OCI configuration".to_owned(),
                source: std::io::Error::other(e),
            })?;
        spec.save(bundle.path().join("config.json"))
            .map_err(|e| Error::Spawn {
                what: "the OCI configuration".to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let id = format!(
            "vcbench-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let mut command = Command::new(self.runtime.binary());
        if self.hide_unified_cgroup {
            hide_unified_cgroup(&mut command);
        }
        command
            .arg("run")
            .arg("--bundle")
            .arg(bundle.path())
            .arg(&id);
        let inner = Supervised::spawn(&mut command, watch::records(), watch::MAX_LINE, false)?;
        Ok(Box::new(OciInstance {
            inner,
            runtime: self.runtime,
            id,
            init: None,
            _bundle: bundle,
        }))
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
            .size(65_536_u32)
            .build()?;
        linux.set_uid_mappings(Some(vec![map]));
        linux.set_gid_mappings(Some(vec![map]));
    }
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// A container run by an OCI runtime in the foreground.
struct OciInstance {
    /// The runtime process, whose standard output carries the records.
    inner: Supervised,
    runtime: Runtime,
    id: String,
    /// The container's init on the host, once known.
    init: Option<u32>,
    /// Removed after the container.
    _bundle: tempfile::TempDir,
}

impl OciInstance {
    /// The container's init PID, from `<runtime> state`.
    fn init_pid(&mut self) -> Option<u32> {
        if self.init.is_none() {
            let out = Command::new(self.runtime.binary())
                .args(["state", &self.id])
                .output()
                .ok()?;
            let state: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            self.init = state
                .get("pid")
                .and_then(serde_json::Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p != 0);
        }
        self.init
    }
}

impl Instance for OciInstance {
    fn pids(&self) -> Vec<u32> {
        match self.init {
            Some(init) => procfs::with_descendants(init),
            None => Vec::new(),
        }
    }

    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        let event = self.inner.next_event(until)?;
        if let Some(Event::Record {
            record: workload::record::Record::Started { .. },
            ..
        }) = &event
        {
            self.init_pid();
        }
        Ok(event)
    }

    fn release(&mut self) {
        // The workload, as the container's PID 1, forwards SIGTERM to its work.
        let _ = Command::new(self.runtime.binary())
            .args(["kill", &self.id, "TERM"])
            .output();
    }

    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        self.inner.wait(until)
    }

    fn diagnostics(&mut self) -> String {
        self.inner.diagnostics()
    }

    fn footprint(&self) -> Footprint {
        Footprint {
            processes: procfs::memory_of(&self.pids()),
            parts: Vec::new(),
        }
    }

    fn teardown(self: Box<Self>) {
        let OciInstance {
            inner, runtime, id, ..
        } = *self;
        Box::new(inner).teardown();
        // Whatever happened to the runtime process, the container must not outlive it.
        let _ = Command::new(runtime.binary())
            .args(["delete", "--force", &id])
            .output();
    }
}

/// The runtime's leftover containers of vcbench processes that are gone: `(runtime, id)`.
pub fn stale(runtime: Runtime) -> Vec<String> {
    let Ok(out) = Command::new(runtime.binary()).args(["list", "-q"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|id| {
            let pid = id.strip_prefix("vcbench-")?.split('-').next()?;
            let gone = !Path::new("/proc").join(pid).exists();
            gone.then(|| id.to_owned())
        })
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
