//! The `container` backend: the workload as PID 1 of this project's namespace container.
//!
//! The root file system is made from the same image files as every other sandbox's
//! (see `image`), mounted read-only. As root the container gets all seven namespaces
//! (root inside is an unprivileged ID outside) and a cgroup; as another user, all seven
//! in rootless mode, without a cgroup unless one is delegated. A user's image (`exec --root
//! DIR`) is the root instead, the workload reached from the container's `/tmp`.

use reports::document::Part;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use container::{Namespaces, Spec, Stdio};
use workload::channel;

use super::protocol::{
    error_chain, Availability, Backend, Calls, Error, Event, Exit, Footprint, Instance, Launch,
    Reach,
};
use super::watch::{self, Watch};
use crate::clock::Stamp;
use crate::procfs;
use crate::scenario::Scenario;

/// The container backend.
#[derive(Debug, Clone, Copy)]
pub struct Container {
    /// The namespaces each instance gets (all seven unless switched off, to measure what
    /// each costs).
    pub namespaces: Namespaces,
    /// Limits applied through each instance's cgroup (none by default).
    pub limits: container::Limits,
    /// The system call filter (the default deny-list unless switched off, to measure what
    /// it costs).
    pub seccomp: container::Seccomp,
}

impl Default for Container {
    fn default() -> Self {
        Container {
            namespaces: Namespaces::ALL,
            limits: container::Limits::default(),
            seccomp: container::Seccomp::Default,
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Backend for Container {
    fn name(&self) -> &'static str {
        "container"
    }

    fn describe(&self) -> &'static str {
        "this project's runtime: 7 namespaces, pivot_root into the image, cgroup, capabilities dropped"
    }

    fn reach(&self) -> Reach {
        let rules = self.seccomp.rules();
        let always = rules
            .iter()
            .filter(|r| r.when == container::seccomp::When::Always)
            .count();
        Reach {
            filter: match self.seccomp {
                container::Seccomp::Default => format!(
                    "the runtime's default deny-list (seccomp) on the program: {always} calls \
                     refused whatever their arguments"
                ),
                container::Seccomp::Off => "none (--seccomp off)".to_owned(),
            },
            calls: match self.seccomp {
                container::Seccomp::Default => Calls::AllBut(always),
                container::Seccomp::Off => Calls::All,
            },
            conditional: rules
                .iter()
                .filter(|r| r.when != container::seccomp::When::Always)
                .map(|r| format!("refused {}", r.describe()))
                .collect(),
            vm_exits: Vec::new(),
        }
    }

    fn availability(&self) -> Availability {
        match crate::host::user_namespaces_blocker() {
            _ if is_root() => Availability::Available,
            None => Availability::Available,
            Some(blocker) => Availability::Unavailable(format!(
                "needs root, or unprivileged user namespaces, which are off here: {blocker}"
            )),
        }
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        match scenario {
            Scenario::Exits => Err("VM exits exist only in a VM".to_owned()),
            _ => Ok(()),
        }
    }

    fn settings(&self) -> String {
        let mut settings = format!(
            "namespaces: {}; seccomp: {}",
            self.namespaces.names().join(","),
            self.seccomp
        );
        if self.limits.any() {
            settings.push_str(&format!(
                "; limits: {}",
                super::limits::describe(&self.limits)
            ));
        }
        settings
    }

    fn limited(&self, cpu_percent: u32, memory_mib: u64) -> Option<Box<dyn Backend>> {
        // Limits need a cgroup, which only root gets here.
        is_root().then(|| {
            let period_us = 100_000;
            Box::new(Container {
                namespaces: self.namespaces,
                limits: container::Limits {
                    memory_max: Some(memory_mib << 20),
                    cpu: Some(container::Cpu::Quota {
                        quota_us: period_us * u64::from(cpu_percent) / 100,
                        period_us,
                    }),
                    pids_max: self.limits.pids_max,
                },
                seccomp: self.seccomp,
            }) as Box<dyn Backend>
        })
    }

    fn runs_user_images(&self) -> Result<(), String> {
        Ok(())
    }

    fn warm(&self) -> Result<Box<dyn Backend>, String> {
        WarmContainer::new(*self).map(|warm| Box::new(warm) as Box<dyn Backend>)
    }

    fn networked(
        &self,
        net: &std::sync::Arc<super::hostnet::RunNet>,
    ) -> Result<Box<dyn Backend>, String> {
        use super::hostnet::{Attach, Joined};
        if !self.namespaces.net {
            return Err(
                "its instances share the host's network namespace (--namespaces \
                        without net), and the host's namespace is never touched"
                    .to_owned(),
            );
        }
        let subnet = net.subnet().map_err(|e| error_chain(&e))?;
        Ok(Box::new(Joined::new(
            std::sync::Arc::new(*self),
            net,
            Attach::Veth(subnet),
        )))
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        // A user's image is the root itself; the project's own is installed once.
        let user_image = super::image::split_root(&launch.args);
        let rootfs = match &user_image {
            Some((root, _)) => root.clone(),
            None => images::image::install_rootfs(&images::image::cache_dir()).map_err(|e| {
                Error::Spawn {
                    what: "the container image".to_owned(),
                    source: std::io::Error::other(e),
                }
            })?,
        };
        // /tmp inside is a fresh host directory on the file system the native workload
        // uses, so file I/O is compared like for like (not against a tmpfs).
        let tmp_error = |source| Error::Spawn {
            what: "the container's /tmp".to_owned(),
            source,
        };
        let tmp = tempfile::Builder::new()
            .prefix(&crate::registry::temp_prefix("tmp"))
            .tempdir()
            .map_err(tmp_error)?;
        // Sticky and world-writable, as /tmp is: root inside is an unprivileged ID outside.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777))
            .map_err(tmp_error)?;
        let mut spec = match &user_image {
            Some((_, args)) => {
                let inside = super::image::place_workload(&launch.workload, tmp.path())?;
                let mut spec = spec(rootfs, args, self.namespaces, self.seccomp);
                spec.args[0] = inside;
                spec
            }
            None => spec(rootfs, &launch.args, self.namespaces, self.seccomp),
        };
        spec.limits = self.limits;
        spec.tmp = Some(tmp.path().to_owned());
        let (outputs, watch) = watch::watch(watch::records(), watch::MAX_LINE)?;
        let stdio = Stdio {
            stdin: None,
            stdout: outputs.stdout,
            stderr: outputs.stderr,
        };
        let container = container::Container::start(&spec, stdio).map_err(|e| Error::Spawn {
            what: "the container".to_owned(),
            source: std::io::Error::other(error_chain(&e)),
        })?;
        Ok(Box::new(ContainerInstance {
            container: Some(container),
            watch,
            _tmp: Some(tmp),
            refill: None,
        }))
    }
}

/// How many sandboxes a warm container backend keeps built ahead: one taken by a run is
/// replaced at that run's teardown, after everything measured.
const POOL_SIZE: usize = 2;

/// The container backend started warm: sandboxes built ahead from the same specification
/// (namespaces, ID maps, cgroup, mounts, privileges and filter done) wait in a
/// [`container::Pool`], and a launch sends the workload to one, so only its exec is left.
/// The pool's sandboxes share one host directory as their /tmp. Dropping the backend
/// removes what waits.
struct WarmContainer {
    base: Container,
    refill: Refill,
    /// The host directory behind every pooled sandbox's /tmp; removed after the pool.
    _tmp: tempfile::TempDir,
}

/// The pool, shared with the instances that refill it at their teardown, and what its
/// idle sandboxes held at its last fill.
#[derive(Clone)]
struct Refill {
    pool: Arc<Mutex<container::Pool>>,
    idle_kib: Arc<AtomicU64>,
}

impl Refill {
    /// Tops the pool up and reads the memory of its idle sandboxes (their mean, KiB).
    fn fill(&self) -> Result<(), container::Error> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.fill(POOL_SIZE)?;
        let each = pool.idle_memory_kib();
        if let Some(mean) = each.iter().sum::<u64>().checked_div(each.len() as u64) {
            self.idle_kib.store(mean, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl WarmContainer {
    fn new(base: Container) -> Result<Self, String> {
        let rootfs = images::image::install_rootfs(&images::image::cache_dir())
            .map_err(|e| format!("its image could not be installed: {e}"))?;
        let tmp = tempfile::Builder::new()
            .prefix(&crate::registry::temp_prefix("tmp"))
            .tempdir()
            .map_err(|e| format!("its /tmp could not be made: {e}"))?;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777))
            .map_err(|e| format!("its /tmp could not be made: {e}"))?;
        // The program and its arguments come with each launch.
        let mut spec = spec(rootfs, &[], base.namespaces, base.seccomp);
        spec.limits = base.limits;
        spec.tmp = Some(tmp.path().to_owned());
        let pool = container::Pool::new(&spec, 0)
            .map_err(|e| format!("its pool could not be made: {}", error_chain(&e)))?;
        let refill = Refill {
            pool: Arc::new(Mutex::new(pool)),
            idle_kib: Arc::new(AtomicU64::new(0)),
        };
        refill
            .fill()
            .map_err(|e| format!("its pool could not be filled: {}", error_chain(&e)))?;
        Ok(WarmContainer {
            base,
            refill,
            _tmp: tmp,
        })
    }
}

impl Backend for WarmContainer {
    fn name(&self) -> &'static str {
        self.base.name()
    }

    fn describe(&self) -> &'static str {
        "this project's runtime started warm: sandboxes built ahead, the workload exec'ed on demand"
    }

    fn availability(&self) -> Availability {
        self.base.availability()
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        self.base.supports(scenario)
    }

    fn settings(&self) -> String {
        format!(
            "{}; warm: {POOL_SIZE} sandboxes built ahead",
            self.base.settings()
        )
    }

    fn reach(&self) -> Reach {
        self.base.reach()
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        let refuse = |why: String| Error::Spawn {
            what: "a warm container".to_owned(),
            source: std::io::Error::other(why),
        };
        if super::image::split_root(&launch.args).is_some() {
            return Err(refuse("a user's image has no pool of its own".to_owned()));
        }
        let args: Vec<String> = std::iter::once("/init".to_owned())
            .chain(launch.args.iter().cloned())
            .collect();
        let env = [format!("{}=stdout", channel::ENV)];
        let (outputs, watch) = watch::watch(watch::records(), watch::MAX_LINE)?;
        let stdio = Stdio {
            stdin: None,
            stdout: outputs.stdout,
            stderr: outputs.stderr,
        };
        let taken = self
            .refill
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(&args, &env, stdio);
        let container = match taken {
            Some(started) => started.map_err(|e| refuse(error_chain(&e)))?,
            None => return Err(refuse("no sandbox waits in its pool".to_owned())),
        };
        Ok(Box::new(ContainerInstance {
            container: Some(container),
            watch,
            _tmp: None,
            refill: Some(self.refill.clone()),
        }))
    }
}

/// The specification every container instance runs with.
fn spec(
    rootfs: PathBuf,
    args: &[String],
    namespaces: Namespaces,
    seccomp: container::Seccomp,
) -> Spec {
    let argv = std::iter::once("/init".to_owned())
        .chain(args.iter().cloned())
        .collect();
    let mut spec = Spec::new(rootfs, argv);
    spec.env.push(format!("{}=stdout", channel::ENV));
    spec.namespaces = namespaces;
    spec.seccomp = seccomp;
    spec.readonly_rootfs = true;
    spec.cgroup = is_root();
    spec
}

struct ContainerInstance {
    /// Present until teardown.
    container: Option<container::Container>,
    watch: Watch,
    /// The host directory behind /tmp, removed after the container (a pooled sandbox's
    /// is its pool's).
    _tmp: Option<tempfile::TempDir>,
    /// A pooled sandbox's pool, topped up at teardown.
    refill: Option<Refill>,
}

impl ContainerInstance {
    fn container(&self) -> Option<&container::Container> {
        self.container.as_ref()
    }
}

impl Instance for ContainerInstance {
    fn pids(&self) -> Vec<u32> {
        match self.container() {
            // Without a cgroup (rootless), the container's processes are its first
            // process and every one descended from it: the workload forks its work.
            Some(c) if c.cgroup().is_none() => c
                .pids()
                .first()
                .map(|&init| procfs::with_descendants(init))
                .unwrap_or_default(),
            Some(c) => c.pids(),
            None => Vec::new(),
        }
    }

    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        self.watch.next_event(until)
    }

    fn release(&mut self) {
        if let Some(c) = self.container() {
            // The workload, as PID 1, forwards it to its work process.
            c.signal(libc::SIGTERM);
        }
    }

    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        let Some(c) = self.container.as_mut() else {
            return Err(Error::Wait(std::io::Error::other("the container is gone")));
        };
        let (reaped, timed_out) = c
            .wait(until)
            .map_err(|e| Error::Wait(std::io::Error::other(error_chain(&e))))?;
        Ok(Exit::reaped(reaped, timed_out))
    }

    fn diagnostics(&mut self) -> String {
        self.watch.diagnostics()
    }

    fn footprint(&self) -> Footprint {
        let processes = procfs::memory_of(&self.pids());
        let parts = self
            .container()
            .and_then(container::Container::cgroup)
            .and_then(|g| g.stats().memory_bytes)
            .map(|bytes| vec![(Part::CgroupMemory, bytes / 1024)])
            .unwrap_or_default();
        Footprint { processes, parts }
    }

    fn phases(&mut self) -> Vec<(String, Stamp)> {
        // A pooled sandbox was built before its launch: its phases start at the request.
        let warm = self.refill.is_some();
        self.container()
            .map(|c| {
                c.phases()
                    .iter()
                    .skip_while(|(name, _)| warm && *name != "requested")
                    .map(|(name, ns)| ((*name).to_owned(), Stamp(*ns)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn counters(&mut self) -> Vec<(String, u64)> {
        let Some(stats) = self
            .container()
            .and_then(container::Container::cgroup)
            .map(container::cgroup::Cgroup::stats)
        else {
            return Vec::new();
        };
        let pool_idle_kib = self
            .refill
            .as_ref()
            .map(|r| r.idle_kib.load(Ordering::Relaxed));
        [
            ("pool_idle_kib_per_sandbox", pool_idle_kib),
            ("cgroup_cpu_usage_us", stats.cpu_usage_us),
            (
                "cgroup_memory_peak_kib",
                stats.memory_peak_bytes.map(|b| b / 1024),
            ),
            ("cgroup_oom_kills", stats.oom_kills),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value?)))
        .collect()
    }

    fn teardown(mut self: Box<Self>) {
        if let Some(c) = self.container.take() {
            // Errors here are cleanup that could not finish; the cgroup's Drop retries.
            drop(c.destroy());
        }
        self.watch.join();
        if let Some(refill) = self.refill.take() {
            // After everything measured: the next warm start finds a sandbox waiting
            // (one that cannot be built leaves the pool short, and that start says so).
            drop(refill.fill());
        }
    }
}
