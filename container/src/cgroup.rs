//! Which cgroup hierarchies the host has mounted, found from `/proc/self/mountinfo`.
//!
//! Hosts come in three layouts: pure cgroup v2 (one unified hierarchy, usually at
//! `/sys/fs/cgroup`), pure v1 (one hierarchy per controller) and hybrid (v1 controller
//! hierarchies with a v2 hierarchy beside them that holds no controllers, as systemd's
//! "hybrid" mode sets up). The layout is read, never assumed. An instance's [`Cgroup`]
//! is made in the layout found, with its limits and, when asked, its device list (v1
//! `devices.deny`/`devices.allow`, or a v2 device program from [`crate::devices`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::devices;
use crate::spec::{Cpu, Limits};

/// The controllers a cgroup v1 hierarchy can carry (the other super options, such as
/// `rw`, `xattr` or `name=systemd`, are not controllers).
const V1_CONTROLLERS: [&str; 14] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// Errors while reading the host's cgroup layout.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The mount table could not be read.
    #[error("cannot read the mount table {path}")]
    ReadMountinfo {
        /// The file that was read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No cgroup hierarchy can hold the instance.
    #[error("no usable cgroup hierarchy: {0}")]
    NoHierarchy(&'static str),
    /// A cgroup directory could not be created.
    #[error("cannot create cgroup {path}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kernel rejected a value written to a cgroup file (a limit, a PID).
    #[error("the kernel rejected {value:?} written to {file}")]
    Write {
        /// The file.
        file: PathBuf,
        /// The value.
        value: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The device program could not be set up.
    #[error(transparent)]
    Devices(#[from] devices::Error),
    /// Neither a v1 devices hierarchy nor a v2 hierarchy is mounted.
    #[error("device access cannot be limited: neither a v1 devices hierarchy nor a v2 hierarchy is mounted")]
    NoDeviceControl,
    /// A cgroup directory would not go away.
    #[error("cannot remove cgroup {path}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The cgroup layout of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// Only cgroup v1 hierarchies are mounted.
    V1,
    /// Only the unified cgroup v2 hierarchy is mounted.
    V2,
    /// v1 controller hierarchies and a v2 hierarchy are both mounted.
    Hybrid,
    /// No cgroup file system is mounted.
    None,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
            Version::Hybrid => "hybrid",
            Version::None => "none",
        })
    }
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where the hierarchy is mounted.
    pub mount_point: PathBuf,
    /// `true` for the unified (v2) hierarchy.
    pub unified: bool,
    /// The v1 controllers bound to it (from the super options); empty for v2.
    pub controllers: Vec<String>,
}

/// The cgroup hierarchies mounted on the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// Every cgroup or cgroup2 mount, in mount-table order.
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    /// Reads the layout of the calling process's mount namespace.
    pub fn detect() -> Result<Self, Error> {
        Self::from_mountinfo_file(Path::new("/proc/self/mountinfo"))
    }

    /// The layout as first read by this process: hierarchies are mounted at boot and stay,
    /// so instances after the first skip re-reading the mount table.
    pub fn cached() -> Result<&'static Self, Error> {
        static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
        if let Some(layout) = LAYOUT.get() {
            return Ok(layout);
        }
        let layout = Self::detect()?;
        Ok(LAYOUT.get_or_init(|| layout))
    }

    /// Reads the layout from a mountinfo file.
    pub fn from_mountinfo_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadMountinfo {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::parse_mountinfo(&text))
    }

    /// Parses the text of a `/proc/<pid>/mountinfo` file (see proc(5)).
    ///
    /// Lines that are not cgroup mounts, or that are malformed, are skipped.
    pub fn parse_mountinfo(text: &str) -> Self {
        let hierarchies = text.lines().filter_map(parse_cgroup_line).collect();
        Layout { hierarchies }
    }

    /// The overall layout: v1, v2, hybrid or none.
    pub fn version(&self) -> Version {
        let v1 = self.hierarchies.iter().any(|h| !h.unified);
        let v2 = self.hierarchies.iter().any(|h| h.unified);
        match (v1, v2) {
            (true, true) => Version::Hybrid,
            (true, false) => Version::V1,
            (false, true) => Version::V2,
            (false, false) => Version::None,
        }
    }

    /// Where the unified (v2) hierarchy is mounted, if it is.
    pub fn unified_mount(&self) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.unified)
            .map(|h| h.mount_point.as_path())
    }

    /// Whether an instance's cgroup is made in the unified (v2) hierarchy here: when that
    /// hierarchy has the memory controller (as [`Cgroup::create`] decides).
    pub fn instances_unified(&self) -> bool {
        self.unified_mount().is_some_and(v2_has_memory)
    }

    /// Where the v1 hierarchy that carries `controller` is mounted, if one does.
    pub fn v1_mount(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| !h.unified && h.controllers.iter().any(|c| c == controller))
            .map(|h| h.mount_point.as_path())
    }
}

/// Parses one mountinfo line if it describes a cgroup or cgroup2 mount.
///
/// Format: `id parent major:minor root mount-point options [optional...] - fstype source super-options`.
fn parse_cgroup_line(line: &str) -> Option<Hierarchy> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let _source = right.next()?;
    let super_options = right.next().unwrap_or("");
    let unified = match fstype {
        "cgroup2" => true,
        "cgroup" => false,
        _ => return None,
    };
    let controllers = if unified {
        Vec::new()
    } else {
        super_options
            .split(',')
            .filter(|o| V1_CONTROLLERS.contains(o))
            .map(str::to_owned)
            .collect()
    };
    Some(Hierarchy {
        mount_point: PathBuf::from(unescape_octal(mount_point)),
        unified,
        controllers,
    })
}

/// Undoes the `\ooo` escaping the kernel applies to spaces and other bytes in paths.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            let octal = std::str::from_utf8(digits).ok();
            if let Some(value) = octal.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory, under each hierarchy's root, that holds every instance's cgroup (but
/// in a v1 devices hierarchy those of [`RESTRICTED_PARENT`]).
pub const PARENT: &str = "vcbench";

/// The directory, under a v1 devices hierarchy's root, that holds the cgroups of the
/// instances whose devices are restricted to [`devices::ALLOWED`]. It is restricted to
/// that list itself, and a v1 devices cgroup starts with a copy of its parent's list, so
/// an instance made under it needs no write of its own: one read checks it. Written rule
/// by rule, the list took nine writes (about 0.11 ms), between the cgroup's making and the
/// child's go. A container whose devices are not restricted is made under [`PARENT`].
pub const RESTRICTED_PARENT: &str = "vcbench-restricted";

/// Every shared parent, for what looks for instances or removes empty parents.
pub const PARENTS: [&str; 2] = [PARENT, RESTRICTED_PARENT];

/// How many [`KeptParents`] this process holds: while any, instances leave [`PARENT`] be.
static KEEPERS: AtomicUsize = AtomicUsize::new(0);

/// While one is held, an instance's teardown leaves the shared [`PARENT`] directories in
/// place, so that the next instance of a run finds them made. Making and removing one is
/// a cgroup's creation and destruction in the kernel, in every hierarchy, on each
/// instance's start and teardown otherwise. The last one dropped removes those that are
/// empty; a run killed before that leaves an empty parent, which `vcbench clean` removes
/// ([`remove_empty_parents`]).
#[derive(Debug)]
#[must_use = "the parents are kept only while it is held"]
pub struct KeptParents(());

impl KeptParents {
    /// Keeps the parents from now until it is dropped.
    pub fn hold() -> Self {
        KEEPERS.fetch_add(1, Ordering::SeqCst);
        KeptParents(())
    }
}

impl Drop for KeptParents {
    fn drop(&mut self) {
        if KEEPERS.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Ok(layout) = Layout::cached() {
                remove_empty_parents(layout);
            }
        }
    }
}

/// Removes the shared parents ([`PARENTS`]) from every hierarchy where they are empty (a
/// parent still holding a live instance stays); returns the ones removed.
pub fn remove_empty_parents(layout: &Layout) -> Vec<PathBuf> {
    layout
        .hierarchies
        .iter()
        .flat_map(|h| PARENTS.map(|p| h.mount_point.join(p)))
        .filter(|parent| std::fs::remove_dir(parent).is_ok())
        .collect()
}

/// How long removal retries while the kernel still holds a cgroup (exiting tasks).
const REMOVE_PATIENCE: Duration = Duration::from_secs(2);

/// The file of a v1 cgroup through which a process joins it by itself: writing `0` to
/// `tasks` moves the calling thread (the whole process, when it has one thread) without
/// the cgroup core's global lock, whose writer may wait for an RCU grace period; writing
/// another process's PID to `cgroup.procs` takes it.
pub const V1_JOIN_FILE: &str = "tasks";

/// v1 controllers an instance joins (devices: for its device list).
const V1_USED: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "devices"];

/// What an instance's cgroup has counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Memory charged now, bytes (v2 `memory.current`, v1 `memory.usage_in_bytes`).
    pub memory_bytes: Option<u64>,
    /// Most memory ever charged, bytes (v2 `memory.peak`, v1 `memory.max_usage_in_bytes`).
    pub memory_peak_bytes: Option<u64>,
    /// CPU time used, microseconds (v2 `cpu.stat`, v1 `cpuacct.usage`).
    pub cpu_usage_us: Option<u64>,
    /// Tasks in the cgroup now.
    pub pids: Option<u64>,
    /// Processes the OOM killer killed in it.
    pub oom_kills: Option<u64>,
}

/// One instance's cgroup: a directory in the unified hierarchy, or one in each v1
/// hierarchy it uses. Removed (after killing what is left in it) when dropped.
#[derive(Debug)]
pub struct Cgroup {
    unified: bool,
    dirs: Vec<PathBuf>,
    /// Which of `dirs` is in the unified hierarchy, if one is.
    unified_dir: Option<usize>,
    removed: bool,
}

impl Cgroup {
    /// Creates the cgroup `name` with `limits`, in v2 when the unified hierarchy has the
    /// memory controller, else in the v1 hierarchies (hybrid hosts bind controllers to v1).
    pub fn create(layout: &Layout, name: &str, limits: &Limits) -> Result<Self, Error> {
        Self::create_for(layout, name, limits, false)
    }

    /// [`Cgroup::create`], for a cgroup whose devices [`Cgroup::restrict_devices`] will
    /// restrict to [`devices::ALLOWED`] when `restricted`: in a v1 devices hierarchy it is
    /// made under [`RESTRICTED_PARENT`], whose list it starts with.
    pub fn create_for(
        layout: &Layout,
        name: &str,
        limits: &Limits,
        restricted: bool,
    ) -> Result<Self, Error> {
        let mut cgroup = match layout.unified_mount().filter(|m| v2_has_memory(m)) {
            Some(root) => Self::create_v2(root, name)?,
            None => Self::create_v1(layout, name, restricted)?,
        };
        if let Err(e) = cgroup.apply(limits) {
            let _ = cgroup.remove();
            return Err(e);
        }
        Ok(cgroup)
    }

    fn create_v2(root: &Path, name: &str) -> Result<Self, Error> {
        let parent = root.join(PARENT);
        // Controllers must be enabled on the way down; ones the kernel lacks are skipped.
        let available =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let wanted: Vec<String> = ["memory", "pids", "cpu"]
            .iter()
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .map(|c| format!("+{c}"))
            .collect();
        let enable = || {
            for dir in [root, parent.as_path()] {
                let control = dir.join("cgroup.subtree_control");
                let enabled = std::fs::read_to_string(&control).unwrap_or_default();
                let missing: Vec<&str> = wanted
                    .iter()
                    .map(String::as_str)
                    .filter(|w| !enabled.split_whitespace().any(|e| e == &w[1..]))
                    .collect();
                if !missing.is_empty() {
                    write(&control, &missing.join(" "))?;
                }
            }
            Ok(())
        };
        let dir = make_under(&parent, name.as_ref(), |_| enable())?;
        Ok(Cgroup {
            unified: true,
            dirs: vec![dir],
            unified_dir: Some(0),
            removed: false,
        })
    }

    /// The directories [`Cgroup::create_for`] makes for `name` (`restricted` as there) in
    /// the v1 hierarchies: where a process can join it by writing 0 to their `tasks` files
    /// ([`V1_JOIN_FILE`]). Empty where instances' cgroups are made in the unified hierarchy.
    pub fn v1_dirs(layout: &Layout, name: &str, restricted: bool) -> Vec<PathBuf> {
        if layout.instances_unified() {
            return Vec::new();
        }
        v1_mounts(layout)
            .iter()
            .map(|m| v1_parent(layout, m, restricted).join(name))
            .collect()
    }

    /// Moves process `pid` into the cgroup's directory in the unified hierarchy only, if
    /// it has one; false when it has none (nothing was written).
    pub fn attach_unified(&self, pid: u32) -> Result<bool, Error> {
        match self.unified_dir() {
            Some(dir) => write(&dir.join("cgroup.procs"), &pid.to_string()).map(|()| true),
            None => Ok(false),
        }
    }

    fn create_v1(layout: &Layout, name: &str, restricted: bool) -> Result<Self, Error> {
        let mounts = v1_mounts(layout);
        if mounts.is_empty() {
            return Err(Error::NoHierarchy(
                "neither a v2 hierarchy with controllers nor a v1 memory, pids or cpu hierarchy is mounted",
            ));
        }
        let mut cgroup = Cgroup {
            unified: false,
            dirs: Vec::new(),
            unified_dir: None,
            removed: false,
        };
        for mount in mounts {
            let parent = v1_parent(layout, mount, restricted);
            // The restricted parent is restricted by the call that makes it. The kernel
            // refuses that once another process has made an instance under it; the
            // parent then stays open, and every instance under it is restricted by its
            // own writes in `restrict_devices`, which also finish a list left partial.
            let prepare = |made: bool| {
                if made && parent.ends_with(RESTRICTED_PARENT) {
                    let _ = write_device_list(&parent, &devices::ALLOWED);
                }
                Ok(())
            };
            match make_under(&parent, name.as_ref(), prepare) {
                Ok(dir) => cgroup.dirs.push(dir),
                Err(e) => {
                    let _ = cgroup.remove();
                    return Err(e);
                }
            }
        }
        Ok(cgroup)
    }

    /// Whether this cgroup is in the unified (v2) hierarchy.
    pub fn is_unified(&self) -> bool {
        self.unified
    }

    /// The directories that make up the cgroup.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The first directory holding `file`.
    fn file(&self, file: &str) -> Option<PathBuf> {
        self.dirs.iter().map(|d| d.join(file)).find(|p| p.exists())
    }

    fn apply(&self, limits: &Limits) -> Result<(), Error> {
        let set = |file: &str, value: String| -> Result<(), Error> {
            match self.file(file) {
                Some(path) => write(&path, &value),
                None => Err(Error::Write {
                    file: PathBuf::from(file),
                    value,
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no cgroup has this file",
                    ),
                }),
            }
        };
        // The pids controller has the same file in both versions.
        if let Some(p) = limits.pids_max {
            set("pids.max", p.to_string())?;
        }
        if self.unified {
            if let Some(m) = limits.memory_max {
                set("memory.max", m.to_string())?;
                if self.file("memory.swap.max").is_some() {
                    set("memory.swap.max", "0".to_owned())?;
                }
            }
            match limits.cpu {
                Some(Cpu::Quota {
                    quota_us,
                    period_us,
                }) => set("cpu.max", format!("{quota_us} {period_us}"))?,
                Some(Cpu::Weight(w)) => set("cpu.weight", w.to_string())?,
                None => {}
            }
        } else {
            if let Some(m) = limits.memory_max {
                set("memory.limit_in_bytes", m.to_string())?;
                // Without swap accounting the file is absent; with it, forbid swapping.
                if self.file("memory.memsw.limit_in_bytes").is_some() {
                    set("memory.memsw.limit_in_bytes", m.to_string())?;
                }
            }
            match limits.cpu {
                Some(Cpu::Quota {
                    quota_us,
                    period_us,
                }) => {
                    set("cpu.cfs_period_us", period_us.to_string())?;
                    set("cpu.cfs_quota_us", quota_us.to_string())?;
                }
                // v2 weight 100 is v1's default 1024 shares.
                Some(Cpu::Weight(w)) => {
                    set("cpu.shares", (w * 1024 / 100).clamp(2, 262_144).to_string())?
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Lets the processes of the cgroup use only the devices `rules` allow. In v2, a device
    /// program attached to the cgroup; in v1, `a` written to `devices.deny` and each rule
    /// to `devices.allow` (before any process joins, so none ever has more); in v1 without
    /// a devices hierarchy, a device program on a directory of the same name made in the
    /// unified hierarchy, which the cgroup then includes (device programs apply to v2
    /// cgroups whatever controllers the hierarchies carry).
    pub fn restrict_devices(
        &mut self,
        layout: &Layout,
        rules: &[devices::Rule],
    ) -> Result<(), Error> {
        let Some(first) = self.dirs.first().cloned() else {
            return Err(Error::NoDeviceControl);
        };
        if self.unified {
            return Ok(devices::restrict(&first, rules)?);
        }
        if let Some(dir) = self.dirs.iter().find(|d| d.join("devices.deny").exists()) {
            // Made under a restricted parent, it already holds the list.
            if holds_exactly(dir, rules) {
                return Ok(());
            }
            return restrict_v1(dir, rules);
        }
        let root = layout.unified_mount().ok_or(Error::NoDeviceControl)?;
        let name = first.file_name().unwrap_or_default().to_owned();
        let parent = root.join(PARENT);
        let dir = make_under(&parent, &name, |_| Ok(()))?;
        self.unified_dir = Some(self.dirs.len());
        self.dirs.push(dir.clone());
        Ok(devices::restrict(&dir, rules)?)
    }

    /// Moves process `pid` into the cgroup (every hierarchy of it).
    pub fn attach(&self, pid: u32) -> Result<(), Error> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The cgroup's directory in the unified (v2) hierarchy, if it has one: a child can
    /// be cloned straight into it ([`crate::process::clone_vfork_into`]).
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified_dir
            .and_then(|i| self.dirs.get(i))
            .map(PathBuf::as_path)
    }

    /// Moves process `pid` into the cgroup's directories outside the unified hierarchy,
    /// for a process cloned into [`Cgroup::unified_dir`]; false when there are none (a v2
    /// cgroup), so nothing was written.
    pub fn attach_outside_unified(&self, pid: u32) -> Result<bool, Error> {
        let mut wrote = false;
        for (i, dir) in self.dirs.iter().enumerate() {
            if Some(i) != self.unified_dir {
                write(&dir.join("cgroup.procs"), &pid.to_string())?;
                wrote = true;
            }
        }
        Ok(wrote)
    }

    /// What the cgroup has counted so far.
    pub fn stats(&self) -> Stats {
        let number = |file: &str| -> Option<u64> {
            std::fs::read_to_string(self.file(file)?)
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        let keyed = |file: &str, key: &str| -> Option<u64> {
            let text = std::fs::read_to_string(self.file(file)?).ok()?;
            text.lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.trim().parse().ok())
        };
        if self.unified {
            Stats {
                memory_bytes: number("memory.current"),
                memory_peak_bytes: number("memory.peak"),
                cpu_usage_us: keyed("cpu.stat", "usage_usec"),
                pids: number("pids.current"),
                oom_kills: keyed("memory.events", "oom_kill"),
            }
        } else {
            Stats {
                memory_bytes: number("memory.usage_in_bytes"),
                memory_peak_bytes: number("memory.max_usage_in_bytes"),
                cpu_usage_us: number("cpuacct.usage").map(|ns| ns / 1000),
                pids: number("pids.current"),
                oom_kills: keyed("memory.oom_control", "oom_kill"),
            }
        }
    }

    /// The PIDs in the cgroup (from its first hierarchy).
    pub fn pids(&self) -> Vec<u32> {
        self.file("cgroup.procs")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kills every process in the cgroup (v2 `cgroup.kill` where the kernel has it).
    pub fn kill(&self) {
        if let Some(kill) = self.file("cgroup.kill") {
            if std::fs::write(kill, "1").is_ok() {
                return;
            }
        }
        // v1, or an older v2: signal each member until none is left (new ones may fork
        // while the first are signalled).
        let deadline = Instant::now() + REMOVE_PATIENCE;
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() >= deadline {
                return;
            }
            for pid in pids {
                if let Ok(pid) = libc::pid_t::try_from(pid) {
                    // SAFETY: kill has no memory effects; the PID is a member of our cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Kills what is left and removes the cgroup's directories, retrying while the
    /// kernel still holds them; then removes the shared parent if it is empty and no
    /// [`KeptParents`] is held.
    pub fn remove(&mut self) -> Result<(), Error> {
        if self.removed {
            return Ok(());
        }
        self.kill();
        let mut first_error = None;
        for dir in &self.dirs {
            if let Err(e) = remove_dir_patiently(dir) {
                first_error.get_or_insert(e);
            }
            if let Some(parent) = dir.parent().filter(|_| KEEPERS.load(Ordering::SeqCst) == 0) {
                // Other instances may still use it; then it stays.
                let _ = std::fs::remove_dir(parent);
            }
        }
        self.removed = true;
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// The v1 hierarchies an instance joins, each once (controllers mounted together share
/// one).
fn v1_mounts(layout: &Layout) -> Vec<&Path> {
    let mut mounts: Vec<&Path> = V1_USED.iter().filter_map(|c| layout.v1_mount(c)).collect();
    mounts.dedup();
    mounts
}

/// Where an instance's directory goes in the v1 hierarchy at `mount`: under
/// [`RESTRICTED_PARENT`] in the devices hierarchy when its devices are to be restricted,
/// else under [`PARENT`].
fn v1_parent(layout: &Layout, mount: &Path, restricted: bool) -> PathBuf {
    let devices = layout.v1_mount("devices") == Some(mount);
    mount.join(if restricted && devices {
        RESTRICTED_PARENT
    } else {
        PARENT
    })
}

/// Whether the v1 devices cgroup `dir` allows exactly `rules` (its `devices.list`, one
/// line per rule in any order, `a *:* rwm` when it allows everything).
fn holds_exactly(dir: &Path, rules: &[devices::Rule]) -> bool {
    std::fs::read_to_string(dir.join("devices.list")).is_ok_and(|list| lists_exactly(&list, rules))
}

/// Whether the text of a `devices.list` names exactly `rules`.
fn lists_exactly(list: &str, rules: &[devices::Rule]) -> bool {
    let mut have: Vec<&str> = list.lines().collect();
    let mut want: Vec<String> = rules.iter().map(devices::Rule::v1_line).collect();
    have.sort_unstable();
    want.sort_unstable();
    have == want
}

/// Writes `rules` to the v1 devices cgroup `dir`, which does not hold them: made under
/// [`PARENT`], or under a [`RESTRICTED_PARENT`] whose list was not whole when it was made
/// (its maker still writing it, killed while it did, or refused because an instance was
/// made first). A child may allow only what its parent allows, so a restricted parent
/// that already denies by default gets the rules it lacks first (allowing needs no
/// childless parent; denying everything does), and a rule refused meanwhile (its maker
/// writing the list at the same moment) is tried again, for up to 0.1 s.
fn restrict_v1(dir: &Path, rules: &[devices::Rule]) -> Result<(), Error> {
    if let Some(parent) = dir.parent().filter(|p| p.ends_with(RESTRICTED_PARENT)) {
        let list = std::fs::read_to_string(parent.join("devices.list")).unwrap_or_default();
        let denies_by_default = !list.lines().any(|l| l.starts_with("a "));
        if denies_by_default && !lists_exactly(&list, rules) {
            for rule in rules {
                write(&parent.join("devices.allow"), &rule.v1_line())?;
            }
        }
    }
    let mut tries = 0;
    loop {
        match write_device_list(dir, rules) {
            Err(e) if e.is_refused() && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            other => return other,
        }
    }
}

/// Restricts the v1 devices cgroup `dir` to `rules`: everything denied, then each rule
/// allowed (one write each: the kernel takes one rule per write).
fn write_device_list(dir: &Path, rules: &[devices::Rule]) -> Result<(), Error> {
    write(&dir.join("devices.deny"), "a")?;
    for rule in rules {
        write(&dir.join("devices.allow"), &rule.v1_line())?;
    }
    Ok(())
}

/// Whether a v2 hierarchy offers the memory controller (on hybrid hosts it is bound to
/// v1, and the v2 tree offers at most leftovers such as `hugetlb`).
fn v2_has_memory(root: &Path) -> bool {
    std::fs::read_to_string(root.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
}

/// Makes `parent/name`, making `parent` first and running `prepare` on it (told whether
/// this call made it). The parent is shared by every instance, and one that is torn down
/// removes it when it is empty, so it may go away between the two: a step that finds it
/// gone starts again (a few times).
fn make_under(
    parent: &Path,
    name: &std::ffi::OsStr,
    prepare: impl Fn(bool) -> Result<(), Error>,
) -> Result<PathBuf, Error> {
    let dir = parent.join(name);
    let mut tries = 0;
    loop {
        let made = make_dir(parent, true)
            .and_then(&prepare)
            .and_then(|_| make_dir(&dir, false));
        match made {
            Err(e) if tries < 5 && e.is_not_found() => tries += 1,
            other => return other.map(|_| dir),
        }
    }
}

impl Error {
    /// Whether a directory or file was not there: a shared parent removed meanwhile.
    fn is_not_found(&self) -> bool {
        match self {
            Error::Create { source, .. } | Error::Write { source, .. } => {
                source.kind() == std::io::ErrorKind::NotFound
            }
            _ => false,
        }
    }

    /// Whether the kernel refused a write: a v1 devices cgroup asked to allow what its
    /// parent does not.
    fn is_refused(&self) -> bool {
        matches!(self, Error::Write { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
    }
}

/// Makes the directory `path`; true when this call made it, false when it was there and
/// `may_exist`.
fn make_dir(path: &Path, may_exist: bool) -> Result<bool, Error> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if may_exist && e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(Error::Create {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write(file: &Path, value: &str) -> Result<(), Error> {
    std::fs::write(file, value).map_err(|source| Error::Write {
        file: file.to_owned(),
        value: value.to_owned(),
        source,
    })
}

fn remove_dir_patiently(dir: &Path) -> Result<(), Error> {
    let deadline = Instant::now() + REMOVE_PATIENCE;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(source) => {
                return Err(Error::Remove {
                    path: dir.to_owned(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 31 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn hybrid_layout_is_recognised() {
        let layout = Layout::parse_mountinfo(HYBRID);
        assert_eq!(layout.version(), Version::Hybrid);
        assert_eq!(
            layout.unified_mount(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            layout.v1_mount("memory"),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            layout.v1_mount("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(layout.v1_mount("pids"), None);
        // The named systemd hierarchy carries no controller.
        assert!(layout.hierarchies[1].controllers.is_empty());
    }

    #[test]
    fn pure_v2_and_v1_and_none() {
        let v2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(Layout::parse_mountinfo(v2).version(), Version::V2);
        let v1 = "35 30 0:31 / /sys/fs/cgroup/pids rw shared:15 - cgroup cgroup rw,pids\n";
        assert_eq!(Layout::parse_mountinfo(v1).version(), Version::V1);
        assert_eq!(
            Layout::parse_mountinfo("garbage\n\n").version(),
            Version::None
        );
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        let line = "40 30 0:40 / /mnt/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        let layout = Layout::parse_mountinfo(line);
        assert_eq!(layout.unified_mount(), Some(Path::new("/mnt/my cgroup")));
    }

    #[test]
    fn this_host_is_readable() {
        // Whatever the layout, reading it must succeed on Linux.
        Layout::detect().expect("mountinfo readable");
    }

    #[test]
    fn a_shared_parent_removed_meanwhile_is_made_again() {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("vcbench");
        // Another instance's teardown removes the (empty) parent right after it was made,
        // once: the child is still made.
        let removed = std::cell::Cell::new(false);
        let dir = make_under(&parent, "one".as_ref(), |_| {
            if !removed.replace(true) {
                std::fs::remove_dir(&parent).unwrap();
            }
            Ok(())
        })
        .unwrap();
        assert!(dir.is_dir());
        // Gone every time: the error comes back, naming the directory.
        let other = root.path().join("other");
        let e = make_under(&other, "two".as_ref(), |_| {
            let _ = std::fs::remove_dir(&other);
            Ok(())
        })
        .unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }
}
