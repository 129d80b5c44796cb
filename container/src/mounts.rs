//! The container's mount plan: what is mounted where, in which order, with which flags.
//!
//! [`plan`] is a pure function from a [`Spec`] and the [`Host`] facts it depends on (the
//! resolved root file system, the instance's overlay state directory, which of the kernel's
//! sensitive paths exist) to a [`MountPlan`]: every file system operation the child
//! performs between clone(2) and execve(2), in order, from making mount propagation private
//! to the last mount attribute set after pivot_root. It touches no file system, so the plan
//! can be checked as data without root. The child walks the plan one [`Op`] at a time, each
//! a single system call except [`Op::PivotRoot`], a fixed sequence of four.
//!
//! What the plan depends on: the root file system (bound onto itself, or the lower layer
//! of an overlay when [`Spec::overlay`] is set); the PID namespace (a fresh proc, or the
//! host's bound); the user and network namespaces (a fresh sysfs, or the host's bound,
//! made read-only after the pivot, where a user namespace without its own network may not
//! mount one); [`Spec::tmp`] (a tmpfs, or a host directory made nosuid and nodev, at
//! `/tmp`); [`Spec::readonly_rootfs`] (the root made read-only after the pivot; it is nodev
//! either way); and [`Spec::protect_kernel_paths`]: the paths of [`READONLY_PATHS`] bound
//! onto themselves and made read-only, nosuid, nodev and noexec with every mount under
//! them, and those of [`MASKED_PATHS`] hidden (`/dev/null` bound over a file, an empty
//! read-only tmpfs over a directory), as the OCI runtime's defaults do; paths the host's
//! kernel does not have are skipped. Nothing depends on the cgroup layout: no cgroup file
//! system is mounted.
//!
//! `/dev` is a small tmpfs holding the nodes of [`DEVICES`]: made with mknod(2) where the
//! container has no user namespace of its own (a node in a tmpfs costs a third of a bind
//! mount), bound from the host's `/dev` where it has one (a user namespace may not make
//! device nodes).
//!
//! Every mount the runtime makes or binds is nodev but `/dev`, where those device nodes
//! must open (the nodes the device cgroup allows; without `CAP_MKNOD` no other can be
//! made), and `/dev/pts`, whose terminals are device nodes.
//!
//! Mount attributes are changed with mount_setattr(2) (Linux 5.12), not a remount: it can
//! reach every mount under a path, and it sets only the attributes asked for, so it never
//! clears one that the host locked on a mount a user namespace received.

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::spec::Spec;

/// The character devices of the container's /dev: name, major and minor number (fixed by
/// the kernel's device list, `Documentation/admin-guide/devices.txt`).
pub(crate) const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Kernel paths every container gets read-only (the OCI runtime specification's defaults):
/// they change host-wide kernel settings (`/proc/sys`), act on the host
/// (`/proc/sysrq-trigger`) or configure its interrupts, buses and file systems.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Kernel paths every container gets masked (the OCI runtime specification's and Docker's
/// defaults): the host's memory (`/proc/kcore`), keys, timers and scheduler internals,
/// firmware tables, sound cards, and the power meters that leak what other programs compute.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// `MOUNT_ATTR_RDONLY` of mount_setattr(2): read-only.
pub const ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_NOSUID`: set-user-ID bits ignored.
pub const ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV`: device nodes do not open.
pub const ATTR_NODEV: u64 = 0x4;
/// `MOUNT_ATTR_NOEXEC`: nothing executes.
pub const ATTR_NOEXEC: u64 = 0x8;

/// Read-only, nosuid, nodev and noexec: what a frozen kernel path gets.
const FROZEN: u64 = ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC;

/// Errors building a plan: input it cannot be built from.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root file system is not an absolute path, so mount targets could not be.
    #[error("root file system {0} is not an absolute path")]
    Relative(PathBuf),
    /// An overlay was asked for without the state directory that holds its layers.
    #[error("an overlay root needs the instance's state directory, and none was given")]
    NoState,
    /// A path or option holds a NUL byte and cannot be passed to the kernel.
    #[error("{what} contains a NUL byte: {value:?}")]
    Nul {
        /// Which field.
        what: &'static str,
        /// The value.
        value: String,
    },
}

/// The facts about the host a plan depends on, found by the caller so that [`plan`]
/// needs no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The root file system as an absolute path with every symlink resolved (the spec's
    /// `rootfs`, canonicalized): bound onto itself, or an overlay's lower layer.
    pub rootfs: PathBuf,
    /// The instance's state directory, holding the existing directories `overlay` (where
    /// the overlay's tmpfs goes) and `merged` (the overlay itself, the new root). Needed
    /// when [`Spec::overlay`] is set and unused otherwise.
    pub state: Option<PathBuf>,
    /// Which paths of [`READONLY_PATHS`] and [`MASKED_PATHS`] the host's kernel has
    /// ([`KernelPath::present`]): the container's proc and sysfs show the same kernel.
    pub kernel_paths: Vec<KernelPath>,
}

/// A path of [`READONLY_PATHS`] or [`MASKED_PATHS`] that exists on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelPath {
    /// The path.
    pub path: &'static str,
    /// Whether it is a directory (masked with a tmpfs) rather than a file (masked with
    /// `/dev/null`).
    pub dir: bool,
}

impl KernelPath {
    /// The paths of [`READONLY_PATHS`] and [`MASKED_PATHS`] that exist here, as the calling
    /// process sees them.
    pub fn present() -> Vec<KernelPath> {
        READONLY_PATHS
            .iter()
            .chain(&MASKED_PATHS)
            .filter_map(|path| {
                let meta = std::fs::symlink_metadata(path).ok()?;
                (!meta.file_type().is_symlink()).then_some(KernelPath {
                    path,
                    dir: meta.is_dir(),
                })
            })
            .collect()
    }
}

/// The five arguments of one mount(2) call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The source: a device, a host path for a bind, a file system's name; null if `None`.
    pub source: Option<CString>,
    /// Where it is mounted. Before the pivot a host path, after it a path inside.
    pub target: CString,
    /// The file system type; null if `None` (binds and remounts).
    pub fstype: Option<CString>,
    /// `MS_*` flags.
    pub flags: libc::c_ulong,
    /// File-system specific options; null if `None`.
    pub data: Option<CString>,
}

impl Mount {
    /// The target as a path.
    pub fn target(&self) -> &Path {
        path(&self.target)
    }

    /// Whether every flag in `flags` is set.
    pub fn has(&self, flags: libc::c_ulong) -> bool {
        self.flags & flags == flags
    }
}

/// One step of the plan. Before [`Op::PivotRoot`] paths are the host's (in the
/// container's own mount namespace); after it they are the container's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Change the propagation of every mount in the namespace (always first, so that
    /// nothing after it reaches the host): mount(2) with no source, type or data.
    Propagation(Mount),
    /// mkdir(2) with mode 0755, tolerating an existing entry: a mount point.
    Mkdir(CString),
    /// Create an empty file with mode 0644 (open(2) `O_CREAT`, closed at once), tolerating
    /// an existing one: the mount point of a device bound from the host.
    Touch(CString),
    /// mknod(2) of a character device, then chmod(2) to mode 0666 (whatever the umask): a
    /// device node in the container's own `/dev`.
    Mknod {
        /// The node created.
        path: CString,
        /// Its major number.
        major: u32,
        /// Its minor number.
        minor: u32,
    },
    /// symlink(2), tolerating an existing entry.
    Symlink {
        /// What the link points to.
        target: CString,
        /// The link created.
        link: CString,
    },
    /// mount(2) before the pivot: a file system or a bind.
    Mount(Mount),
    /// Make this directory `/`: chdir(2) into it, pivot_root(".", ".") (which stacks the
    /// old root on the new one), umount2(".", `MNT_DETACH`) (which detaches the old root)
    /// and chdir("/"). Everything before it has assembled the new root.
    PivotRoot(CString),
    /// mount_setattr(2) after the pivot: sets the attributes `set` (`ATTR_*`) on the mount
    /// at `path` (inside the container), and on every mount under it when `recursive`.
    /// Attributes not named are left as they are.
    SetAttr {
        /// The mount, by its path inside the container.
        path: CString,
        /// The `MOUNT_ATTR_*` bits to set.
        set: u64,
        /// Whether the mounts under it get them too (`AT_RECURSIVE`).
        recursive: bool,
    },
    /// mount(2) after the pivot that protects a kernel path (inside paths): binds it onto
    /// itself (for a [`Op::SetAttr`] to freeze it alone), binds `/dev/null` over a file, or
    /// mounts an empty read-only tmpfs over a directory.
    Protect(Mount),
}

impl Op {
    /// The path the operation acts on: a mount's target, the directory, file or link
    /// created, the new root.
    pub fn path(&self) -> &Path {
        match self {
            Op::Propagation(m) | Op::Mount(m) | Op::Protect(m) => m.target(),
            Op::Mkdir(p)
            | Op::Touch(p)
            | Op::PivotRoot(p)
            | Op::SetAttr { path: p, .. }
            | Op::Mknod { path: p, .. } => path(p),
            Op::Symlink { link, .. } => path(link),
        }
    }

    /// The mount(2) call, where the operation is one.
    pub fn mount(&self) -> Option<&Mount> {
        match self {
            Op::Propagation(m) | Op::Mount(m) | Op::Protect(m) => Some(m),
            _ => None,
        }
    }

    /// A description for error messages.
    pub fn describe(&self) -> String {
        let s = |c: &CStr| c.to_string_lossy().into_owned();
        match self {
            Op::Propagation(_) => "making mount propagation private".to_owned(),
            Op::Mkdir(p) => format!("mkdir {}", s(p)),
            Op::Touch(p) => format!("create {}", s(p)),
            Op::Mknod { path, major, minor } => {
                format!("mknod {} (character device {major}:{minor})", s(path))
            }
            Op::Symlink { target, link } => format!("symlink {} -> {}", s(link), s(target)),
            Op::Mount(Mount {
                source,
                target,
                fstype,
                data,
                ..
            }) => format!(
                "mount {} on {} (type {}, options {})",
                source.as_deref().map_or("none".into(), s),
                s(target),
                fstype.as_deref().map_or("bind".into(), s),
                data.as_deref().map_or(String::new(), s),
            ),
            Op::PivotRoot(_) => "pivot_root".to_owned(),
            Op::SetAttr {
                path,
                set,
                recursive,
            } => {
                let what = match path.as_bytes() {
                    b"/" => "the root".to_owned(),
                    _ => s(path),
                };
                let names: Vec<&str> = [
                    (ATTR_RDONLY, "read-only"),
                    (ATTR_NOSUID, "nosuid"),
                    (ATTR_NODEV, "nodev"),
                    (ATTR_NOEXEC, "noexec"),
                ]
                .into_iter()
                .filter_map(|(bit, name)| (set & bit != 0).then_some(name))
                .collect();
                let under = match recursive {
                    true => ", with every mount under it",
                    false => "",
                };
                format!("making {what} {}{under}", names.join(", "))
            }
            Op::Protect(m) => match (m.source.as_deref(), m.fstype.as_deref()) {
                (Some(source), None) if source == m.target.as_c_str() => {
                    format!("binding {} onto itself", s(&m.target))
                }
                (Some(source), None) => format!("masking {} with {}", s(&m.target), s(source)),
                _ => format!("masking {} with an empty read-only tmpfs", s(&m.target)),
            },
        }
    }
}

/// Every file system operation of a container's setup, in the order the child performs
/// them. Exactly one [`Op::PivotRoot`]; the first operation makes propagation private;
/// after the pivot, the attributes of the new root and the mounts bound from the host, then
/// the kernel paths' protection (from the first [`Op::Protect`] on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// The operations, in order.
    pub ops: Vec<Op>,
}

impl MountPlan {
    /// The directory that becomes `/`, as the host sees it.
    pub fn new_root(&self) -> Option<&Path> {
        self.ops.iter().find_map(|op| match op {
            Op::PivotRoot(p) => Some(path(p)),
            _ => None,
        })
    }
}

fn path(c: &CStr) -> &Path {
    Path::new(OsStr::from_bytes(c.to_bytes()))
}

fn cstring(what: &'static str, s: impl Into<Vec<u8>>) -> Result<CString, Error> {
    CString::new(s).map_err(|e| Error::Nul {
        what,
        value: String::from_utf8_lossy(&e.into_vec()).into_owned(),
    })
}

fn path_c(path: &Path) -> Result<CString, Error> {
    cstring("a path", path.as_os_str().as_encoded_bytes())
}

fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<Mount, Error> {
    Ok(Mount {
        source: source.map(|s| cstring("a mount source", s)).transpose()?,
        target: path_c(target)?,
        fstype: fstype
            .map(|s| cstring("a file system type", s))
            .transpose()?,
        flags,
        data: data.map(|s| cstring("mount options", s)).transpose()?,
    })
}

/// The mount plan for `spec` on `host`: the same spec and host facts always give the
/// same plan, and nothing is read or changed to make it.
pub fn plan(spec: &Spec, host: &Host) -> Result<MountPlan, Error> {
    let ns = spec.namespaces;
    let rootfs = &host.rootfs;
    if !rootfs.is_absolute() {
        return Err(Error::Relative(rootfs.clone()));
    }
    let (nosuid, nodev, noexec) = (libc::MS_NOSUID, libc::MS_NODEV, libc::MS_NOEXEC);
    let mut ops = vec![Op::Propagation(Mount {
        source: None,
        target: c"/".to_owned(),
        fstype: None,
        flags: libc::MS_REC | libc::MS_PRIVATE,
        data: None,
    })];

    let root = if spec.overlay {
        let state = host.state.as_deref().ok_or(Error::NoState)?;
        // A tmpfs for the upper layer, then the overlay: writes go to memory.
        let overlay = state.join("overlay");
        ops.push(Op::Mount(mount(
            Some("tmpfs"),
            &overlay,
            Some("tmpfs"),
            nosuid | nodev,
            Some("mode=0755"),
        )?));
        ops.push(Op::Mkdir(path_c(&overlay.join("upper"))?));
        ops.push(Op::Mkdir(path_c(&overlay.join("work"))?));
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            rootfs.display(),
            overlay.join("upper").display(),
            overlay.join("work").display()
        );
        let merged = state.join("merged");
        ops.push(Op::Mount(mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            0,
            Some(&data),
        )?));
        merged
    } else {
        // pivot_root needs the new root to be a mount point: bind it onto itself.
        ops.push(Op::Mount(mount(
            Some(&rootfs.to_string_lossy()),
            rootfs,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?));
        rootfs.clone()
    };
    let inside = |p: &str| root.join(p);

    ops.push(Op::Mkdir(path_c(&inside("proc"))?));
    ops.push(Op::Mount(if ns.pid {
        mount(
            Some("proc"),
            &inside("proc"),
            Some("proc"),
            nosuid | nodev | noexec,
            None,
        )?
    } else {
        // Without its own PID namespace a fresh proc is not allowed in a user namespace;
        // the host's is what such a container sees anyway.
        mount(
            Some("/proc"),
            &inside("proc"),
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?
    }));
    ops.push(Op::Mkdir(path_c(&inside("sys"))?));
    ops.push(Op::Mount(if ns.net || !ns.user {
        mount(
            Some("sysfs"),
            &inside("sys"),
            Some("sysfs"),
            nosuid | nodev | noexec | libc::MS_RDONLY,
            None,
        )?
    } else {
        // A user namespace may mount sysfs only with a network namespace of its own. A
        // bind ignores every flag but MS_REC: it is made read-only after the pivot.
        mount(
            Some("/sys"),
            &inside("sys"),
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?
    }));
    let sys_bound = ns.user && !ns.net;
    ops.push(Op::Mkdir(path_c(&inside("dev"))?));
    ops.push(Op::Mount(mount(
        Some("tmpfs"),
        &inside("dev"),
        Some("tmpfs"),
        nosuid | libc::MS_STRICTATIME,
        Some("mode=755,size=64k"),
    )?));
    for (dev, major, minor) in DEVICES {
        let target = inside("dev").join(dev);
        if ns.user {
            // No device node can be made in a user namespace: the host's are bound.
            ops.push(Op::Touch(path_c(&target)?));
            ops.push(Op::Mount(mount(
                Some(&format!("/dev/{dev}")),
                &target,
                None,
                libc::MS_BIND,
                None,
            )?));
        } else {
            ops.push(Op::Mknod {
                path: path_c(&target)?,
                major,
                minor,
            });
        }
    }
    ops.push(Op::Mkdir(path_c(&inside("dev/pts"))?));
    ops.push(Op::Mount(mount(
        Some("devpts"),
        &inside("dev/pts"),
        Some("devpts"),
        nosuid | noexec,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?));
    for (target, link) in [
        ("pts/ptmx", "ptmx"),
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ] {
        ops.push(Op::Symlink {
            target: cstring("a link", target)?,
            link: path_c(&inside("dev").join(link))?,
        });
    }
    ops.push(Op::Mkdir(path_c(&inside("tmp"))?));
    ops.push(Op::Mount(match &spec.tmp {
        Some(host_tmp) => mount(
            Some(&host_tmp.to_string_lossy()),
            &inside("tmp"),
            None,
            libc::MS_BIND,
            None,
        )?,
        None => mount(
            Some("tmpfs"),
            &inside("tmp"),
            Some("tmpfs"),
            nosuid | nodev,
            Some("mode=1777"),
        )?,
    }));

    ops.push(Op::PivotRoot(path_c(&root)?));
    // The root never honours device nodes (the image's own, or ones made in it), and is
    // read-only when asked; the mounts under it keep their own attributes.
    let root_attrs = ATTR_NODEV | if spec.readonly_rootfs { ATTR_RDONLY } else { 0 };
    ops.push(set_attr("/", root_attrs, false));
    if sys_bound {
        ops.push(set_attr("/sys", FROZEN, true));
    }
    if spec.tmp.is_some() {
        ops.push(set_attr("/tmp", ATTR_NOSUID | ATTR_NODEV, false));
    }
    if spec.protect_kernel_paths {
        protect_kernel_paths(&host.kernel_paths, &mut ops)?;
    }
    Ok(MountPlan { ops })
}

fn set_attr(path: &'static str, set: u64, recursive: bool) -> Op {
    Op::SetAttr {
        path: CString::new(path).unwrap_or_default(),
        set,
        recursive,
    }
}

/// The read-only paths bound onto themselves and frozen with every mount under them
/// (binfmt_misc under a bound host /proc/sys, say), then the masks; only paths the host
/// has.
fn protect_kernel_paths(present: &[KernelPath], ops: &mut Vec<Op>) -> Result<(), Error> {
    let has = |path: &str| present.iter().find(|k| k.path == path);
    for path in READONLY_PATHS.iter().filter(|p| has(p).is_some()) {
        ops.push(Op::Protect(mount(
            Some(path),
            Path::new(path),
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?));
        ops.push(set_attr(path, FROZEN, true));
    }
    for kernel in MASKED_PATHS.iter().filter_map(|p| has(p)) {
        let target = Path::new(kernel.path);
        ops.push(Op::Protect(if kernel.dir {
            mount(
                Some("tmpfs"),
                target,
                Some("tmpfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                Some("size=4k,mode=0555"),
            )?
        } else {
            mount(Some("/dev/null"), target, None, libc::MS_BIND, None)?
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Namespaces;

    const ROOTFS: &str = "/images/busybox";
    const STATE: &str = "/run/vcbench/vcbench-1-0";

    fn spec(namespaces: Namespaces) -> Spec {
        let mut spec = Spec::new(ROOTFS, vec!["/bin/sh".into()]);
        spec.namespaces = namespaces;
        spec
    }

    /// The kernel paths of the hosts in these tests: some of each list, files and
    /// directories (a kernel without sysrq, latency statistics or powercap, say).
    fn kernel() -> Vec<KernelPath> {
        let file = |path| KernelPath { path, dir: false };
        let dir = |path| KernelPath { path, dir: true };
        vec![
            dir("/proc/bus"),
            dir("/proc/fs"),
            dir("/proc/irq"),
            dir("/proc/sys"),
            dir("/proc/acpi"),
            file("/proc/kcore"),
            file("/proc/keys"),
            file("/proc/timer_list"),
            dir("/sys/firmware"),
        ]
    }

    fn host() -> Host {
        Host {
            rootfs: PathBuf::from(ROOTFS),
            state: None,
            kernel_paths: kernel(),
        }
    }

    /// What a default spec's plan ends with after the pivot on [`host`]: the root made
    /// nodev, then the kernel paths of [`kernel`] protected.
    fn after_pivot(root: u64) -> Vec<Op> {
        let frozen = ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC;
        let mut ops = vec![Op::SetAttr {
            path: c("/"),
            set: root,
            recursive: false,
        }];
        for path in ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"] {
            ops.push(Op::Protect(Mount {
                source: Some(c(path)),
                target: c(path),
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REC,
                data: None,
            }));
            ops.push(Op::SetAttr {
                path: c(path),
                set: frozen,
                recursive: true,
            });
        }
        for (path, dir) in [
            ("/proc/acpi", true),
            ("/proc/kcore", false),
            ("/proc/keys", false),
            ("/proc/timer_list", false),
            ("/sys/firmware", true),
        ] {
            ops.push(Op::Protect(if dir {
                Mount {
                    source: Some(c("tmpfs")),
                    target: c(path),
                    fstype: Some(c("tmpfs")),
                    flags: libc::MS_RDONLY | NOSUID | NODEV | NOEXEC,
                    data: Some(c("size=4k,mode=0555")),
                }
            } else {
                Mount {
                    source: Some(c("/dev/null")),
                    target: c(path),
                    fstype: None,
                    flags: libc::MS_BIND,
                    data: None,
                }
            }));
        }
        ops
    }

    fn planned(spec: &Spec) -> MountPlan {
        let host = Host {
            state: spec.overlay.then(|| PathBuf::from(STATE)),
            ..host()
        };
        plan(spec, &host).unwrap()
    }

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    fn m(
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> Op {
        Op::Mount(Mount {
            source: source.map(c),
            target: c(target),
            fstype: fstype.map(c),
            flags,
            data: data.map(c),
        })
    }

    /// The mount at `target` (the last one there).
    fn mount_at<'p>(plan: &'p MountPlan, target: &str) -> &'p Mount {
        plan.ops
            .iter()
            .rev()
            .filter_map(Op::mount)
            .find(|m| m.target() == Path::new(target))
            .unwrap_or_else(|| panic!("nothing is mounted at {target}: {plan:#?}"))
    }

    /// Where the first operation matching `f` is.
    fn position(plan: &MountPlan, f: impl Fn(&Op) -> bool) -> usize {
        plan.ops.iter().position(f).expect("no such operation")
    }

    fn pivot(plan: &MountPlan) -> usize {
        position(plan, |op| matches!(op, Op::PivotRoot(_)))
    }

    /// Every namespace combination, root file system kind and option the plan depends on.
    fn every_spec() -> Vec<Spec> {
        let mut specs = Vec::new();
        for bits in 0..64u32 {
            let on = |bit: u32| bits & (1 << bit) != 0;
            let mut spec = spec(Namespaces {
                user: on(0),
                pid: on(1),
                net: on(2),
                ..Namespaces::ALL
            });
            spec.readonly_rootfs = on(3);
            spec.overlay = on(4);
            spec.tmp = on(5).then(|| PathBuf::from("/var/tmp/bench"));
            for protect in [true, false] {
                spec.protect_kernel_paths = protect;
                specs.push(spec.clone());
            }
        }
        specs
    }

    const NOSUID: libc::c_ulong = libc::MS_NOSUID;
    const NODEV: libc::c_ulong = libc::MS_NODEV;
    const NOEXEC: libc::c_ulong = libc::MS_NOEXEC;

    #[test]
    fn the_rootful_default_in_full() {
        let plan = planned(&spec(Namespaces::ROOTFUL));
        let r = |p: &str| format!("{ROOTFS}/{p}");
        let mut expected = vec![
            Op::Propagation(Mount {
                source: None,
                target: c("/"),
                fstype: None,
                flags: libc::MS_REC | libc::MS_PRIVATE,
                data: None,
            }),
            m(
                Some(ROOTFS),
                ROOTFS,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            ),
            Op::Mkdir(c(&r("proc"))),
            m(
                Some("proc"),
                &r("proc"),
                Some("proc"),
                NOSUID | NODEV | NOEXEC,
                None,
            ),
            Op::Mkdir(c(&r("sys"))),
            m(
                Some("sysfs"),
                &r("sys"),
                Some("sysfs"),
                NOSUID | NODEV | NOEXEC | libc::MS_RDONLY,
                None,
            ),
            Op::Mkdir(c(&r("dev"))),
            m(
                Some("tmpfs"),
                &r("dev"),
                Some("tmpfs"),
                NOSUID | libc::MS_STRICTATIME,
                Some("mode=755,size=64k"),
            ),
        ];
        // The numbers are checked against the host's nodes in `devices`.
        for (dev, major, minor) in DEVICES {
            expected.push(Op::Mknod {
                path: c(&r(&format!("dev/{dev}"))),
                major,
                minor,
            });
        }
        expected.push(Op::Mkdir(c(&r("dev/pts"))));
        expected.push(m(
            Some("devpts"),
            &r("dev/pts"),
            Some("devpts"),
            NOSUID | NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        ));
        for (target, link) in [
            ("pts/ptmx", "ptmx"),
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
        ] {
            expected.push(Op::Symlink {
                target: c(target),
                link: c(&r(&format!("dev/{link}"))),
            });
        }
        expected.push(Op::Mkdir(c(&r("tmp"))));
        expected.push(m(
            Some("tmpfs"),
            &r("tmp"),
            Some("tmpfs"),
            NOSUID | NODEV,
            Some("mode=1777"),
        ));
        expected.push(Op::PivotRoot(c(ROOTFS)));
        expected.extend(after_pivot(ATTR_NODEV));
        assert_eq!(plan.ops, expected);
        assert_eq!(plan.new_root(), Some(Path::new(ROOTFS)));
    }

    #[test]
    fn a_user_namespace_with_its_own_pid_and_net_changes_only_how_devices_are_made() {
        let with_user = planned(&spec(Namespaces::ALL)).ops;
        let rootful = planned(&spec(Namespaces::ROOTFUL)).ops;
        // Each device node made in the rootful plan is a file made and bound from the
        // host's /dev in the user namespace's, at the same place in the plan.
        let mut expected = Vec::new();
        for op in rootful {
            match op {
                Op::Mknod { path: node, .. } => {
                    let name = path(&node)
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    expected.push(Op::Touch(node.clone()));
                    expected.push(m(
                        Some(&format!("/dev/{name}")),
                        &path(&node).to_string_lossy(),
                        None,
                        libc::MS_BIND,
                        None,
                    ));
                }
                op => expected.push(op),
            }
        }
        assert_eq!(with_user, expected);
    }

    #[test]
    fn without_a_pid_namespace_proc_is_the_hosts() {
        for user in [false, true] {
            let plan = planned(&spec(Namespaces {
                pid: false,
                user,
                ..Namespaces::ALL
            }));
            let proc = mount_at(&plan, &format!("{ROOTFS}/proc"));
            assert_eq!(proc.source.as_deref(), Some(c"/proc"));
            assert_eq!(proc.fstype, None);
            assert_eq!(proc.flags, libc::MS_BIND | libc::MS_REC);
            // No fresh proc anywhere.
            assert!(!plan
                .ops
                .iter()
                .filter_map(Op::mount)
                .any(|m| m.fstype.as_deref() == Some(c"proc")));
        }
        // With one, a fresh proc with nosuid, nodev and noexec.
        let plan = planned(&spec(Namespaces::ROOTFUL));
        let proc = mount_at(&plan, &format!("{ROOTFS}/proc"));
        assert_eq!(proc.fstype.as_deref(), Some(c"proc"));
        assert_eq!(proc.flags, NOSUID | NODEV | NOEXEC);
    }

    #[test]
    fn sys_is_the_hosts_only_in_a_user_namespace_without_its_own_network() {
        let sys = format!("{ROOTFS}/sys");
        for (user, net, bound) in [
            (false, false, false),
            (false, true, false),
            (true, true, false),
            (true, false, true),
        ] {
            let plan = planned(&spec(Namespaces {
                user,
                net,
                ..Namespaces::ALL
            }));
            let mount = mount_at(&plan, &sys);
            let frozen_after_pivot = plan.ops[pivot(&plan)..].contains(&Op::SetAttr {
                path: c("/sys"),
                set: ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC,
                recursive: true,
            });
            if bound {
                // A bind ignores MS_RDONLY: the whole tree is made read-only after the
                // pivot instead.
                assert_eq!(mount.source.as_deref(), Some(c"/sys"));
                assert_eq!(mount.fstype, None);
                assert_eq!(mount.flags, libc::MS_BIND | libc::MS_REC);
                assert!(frozen_after_pivot, "{plan:#?}");
            } else {
                assert_eq!(mount.fstype.as_deref(), Some(c"sysfs"));
                assert_eq!(mount.flags, NOSUID | NODEV | NOEXEC | libc::MS_RDONLY);
                assert!(!frozen_after_pivot, "{plan:#?}");
            }
        }
        // As root, a network namespace switched off changes nothing.
        let no_net = Namespaces {
            net: false,
            ..Namespaces::ROOTFUL
        };
        assert_eq!(planned(&spec(no_net)), planned(&spec(Namespaces::ROOTFUL)));
    }

    #[test]
    fn the_root_is_nodev_and_read_only_when_asked_after_the_pivot() {
        let mut readonly = spec(Namespaces::ROOTFUL);
        readonly.readonly_rootfs = true;
        let plan = planned(&readonly);
        let at = pivot(&plan);
        let root = Op::SetAttr {
            path: c("/"),
            set: ATTR_RDONLY | ATTR_NODEV,
            recursive: false,
        };
        assert_eq!(plan.ops[at + 1], root);
        assert_eq!(root.describe(), "making the root read-only, nodev");
        // Otherwise the plan is the writable one, whose root is nodev only.
        let writable = planned(&spec(Namespaces::ROOTFUL));
        assert_eq!(plan.ops[..=at], writable.ops[..=at]);
        assert_eq!(plan.ops[at + 2..], writable.ops[at + 2..]);
        assert_eq!(
            writable.ops[at + 1],
            Op::SetAttr {
                path: c("/"),
                set: ATTR_NODEV,
                recursive: false,
            }
        );
    }

    #[test]
    fn kernel_paths_are_protected_only_where_the_host_has_them() {
        // The full protection of the test host is checked in the rootful default above;
        // here a host with other paths, and the switch.
        let mut spec = spec(Namespaces::ROOTFUL);
        let bare = Host {
            kernel_paths: vec![KernelPath {
                path: "/proc/sysrq-trigger",
                dir: false,
            }],
            ..host()
        };
        let plan = plan(&spec, &bare).unwrap();
        let protected: Vec<&Op> = plan
            .ops
            .iter()
            .skip_while(|op| !matches!(op, Op::Protect(_)))
            .collect();
        assert_eq!(
            protected.iter().map(|op| op.describe()).collect::<Vec<_>>(),
            [
                "binding /proc/sysrq-trigger onto itself",
                "making /proc/sysrq-trigger read-only, nosuid, nodev, noexec, with every \
                 mount under it",
            ]
        );
        // Switched off, nothing is protected whatever the host has.
        spec.protect_kernel_paths = false;
        let off = super::plan(&spec, &host()).unwrap();
        assert!(!off.ops.iter().any(|op| matches!(op, Op::Protect(_))));
        assert_eq!(
            off.ops.last(),
            Some(&Op::SetAttr {
                path: c("/"),
                set: ATTR_NODEV,
                recursive: false
            })
        );
    }

    #[test]
    fn an_overlay_root_is_assembled_in_the_state_directory() {
        let mut overlay = spec(Namespaces::ROOTFUL);
        overlay.overlay = true;
        let plan = planned(&overlay);
        let merged = format!("{STATE}/merged");
        assert_eq!(
            plan.ops[1..5],
            [
                m(
                    Some("tmpfs"),
                    &format!("{STATE}/overlay"),
                    Some("tmpfs"),
                    NOSUID | NODEV,
                    Some("mode=0755"),
                ),
                Op::Mkdir(c(&format!("{STATE}/overlay/upper"))),
                Op::Mkdir(c(&format!("{STATE}/overlay/work"))),
                m(
                    Some("overlay"),
                    &merged,
                    Some("overlay"),
                    0,
                    Some(&format!(
                        "lowerdir={ROOTFS},upperdir={STATE}/overlay/upper,\
                         workdir={STATE}/overlay/work"
                    )),
                ),
            ]
        );
        assert_eq!(plan.new_root(), Some(Path::new(&merged)));
        // The image itself is not bound, and nothing else changes but the root.
        assert!(!plan.ops.iter().any(|op| op.path().starts_with(ROOTFS)));
        let plain = planned(&spec(Namespaces::ROOTFUL));
        assert_eq!(plan.ops.len(), plain.ops.len() + 3);
        let rerooted = |op: &Op| op.describe().replace(&merged, ROOTFS);
        assert!(plan.ops[5..]
            .iter()
            .map(rerooted)
            .eq(plain.ops[2..].iter().map(Op::describe)));
    }

    #[test]
    fn a_host_tmp_is_bound_instead_of_a_tmpfs() {
        let mut with_tmp = spec(Namespaces::ROOTFUL);
        with_tmp.tmp = Some(PathBuf::from("/var/tmp/bench"));
        let plan = planned(&with_tmp);
        let tmp = mount_at(&plan, &format!("{ROOTFS}/tmp"));
        assert_eq!(tmp.source.as_deref(), Some(c"/var/tmp/bench"));
        assert_eq!((tmp.fstype.as_deref(), tmp.flags), (None, libc::MS_BIND));
        // The bind keeps the host's flags: it is made nosuid and nodev after the pivot.
        assert!(plan.ops[pivot(&plan)..].contains(&Op::SetAttr {
            path: c("/tmp"),
            set: ATTR_NOSUID | ATTR_NODEV,
            recursive: false,
        }));
        assert!(!plan
            .ops
            .iter()
            .filter_map(Op::mount)
            .any(|m| m.data.as_deref() == Some(c"mode=1777")));
    }

    #[test]
    fn every_plan_keeps_its_order_and_stays_under_the_new_root() {
        for spec in every_spec() {
            let plan = planned(&spec);
            let ops = &plan.ops;
            let why = format!("{spec:?}\n{plan:#?}");
            let root = plan.new_root().expect("a new root");
            let state = Path::new(STATE);

            // Propagation is made private before anything else, and only there.
            let Op::Propagation(first) = &ops[0] else {
                panic!("the plan does not begin with propagation: {why}");
            };
            let private = libc::MS_REC | libc::MS_PRIVATE;
            assert_eq!((first.flags, first.target()), (private, Path::new("/")));
            assert_eq!(
                ops.iter()
                    .filter(|op| matches!(op, Op::Propagation(_)))
                    .count(),
                1,
                "{why}"
            );
            // One pivot, and after it nothing but attributes and the kernel paths'
            // protection, by inside paths; those only after it.
            let at = pivot(&plan);
            assert_eq!(
                ops.iter()
                    .filter(|op| matches!(op, Op::PivotRoot(_)))
                    .count(),
                1,
                "{why}"
            );
            let after = |op: &Op| matches!(op, Op::SetAttr { .. } | Op::Protect(_));
            for op in &ops[at + 1..] {
                assert!(after(op) && op.path().is_absolute(), "{op:?}: {why}");
            }
            assert!(!ops[..at].iter().any(after), "{why}");
            check_after_pivot(&spec, &ops[at + 1..], &why);
            // The new root is mounted (a bind or the overlay) before anything under it, and
            // every other operation before the pivot is under it, or assembles the overlay
            // in the state directory before it.
            let root_mount = position(&plan, |op| matches!(op, Op::Mount(m) if m.target() == root));
            for (i, op) in ops[1..at].iter().enumerate().map(|(i, op)| (i + 1, op)) {
                let p = op.path();
                match i.cmp(&root_mount) {
                    std::cmp::Ordering::Less => {
                        assert!(spec.overlay && p.starts_with(state), "{op:?}: {why}")
                    }
                    std::cmp::Ordering::Equal => {}
                    std::cmp::Ordering::Greater => {
                        assert!(p.starts_with(root) && p != root, "{op:?}: {why}")
                    }
                }
            }
            // No mount hides an earlier one, and nothing is made before the mount it
            // belongs in: each operation comes after every mount above its path.
            for (i, op) in ops[..at].iter().enumerate().skip(1) {
                let p = op.path();
                for later in ops[i + 1..at].iter().filter_map(Op::mount) {
                    let t = later.target();
                    let covered = match op {
                        Op::Mount(_) => p.starts_with(t),
                        _ => p.starts_with(t) && p != t,
                    };
                    assert!(!covered, "{later:?} covers the earlier {op:?}: {why}");
                }
            }
            // Every mount point under the new root is made before its mount.
            for (i, op) in ops[root_mount + 1..at].iter().enumerate() {
                let Some(mount) = op.mount() else { continue };
                let made = ops[root_mount + 1..root_mount + 1 + i].iter().any(
                    |before| matches!(before, Op::Mkdir(p) | Op::Touch(p) if *p == mount.target),
                );
                assert!(made, "no mount point for {mount:?}: {why}");
            }
            // proc is mounted once the new root is in place, before the pivot.
            let proc = root.join("proc");
            let proc_at = position(&plan, |op| matches!(op, Op::Mount(m) if m.target() == proc));
            assert!(root_mount < proc_at && proc_at < at, "{why}");
            // File systems made inside the container (not binds, not the root) never
            // honour set-user-ID bits.
            for mount in ops[root_mount + 1..at].iter().filter_map(Op::mount) {
                if !mount.has(libc::MS_BIND) {
                    assert!(mount.has(NOSUID), "{mount:?}: {why}");
                }
            }
            // Devices come after /dev's tmpfs: in a user namespace bound from the host's
            // /dev, each onto a file made for it; without one, made with their numbers.
            let dev = root.join("dev");
            let dev_at = position(&plan, |op| matches!(op, Op::Mount(m) if m.target() == dev));
            for (name, major, minor) in DEVICES {
                let target = dev.join(name);
                if !spec.namespaces.user {
                    let made = position(
                        &plan,
                        |op| matches!(op, Op::Mknod { path: p, .. } if path(p) == target),
                    );
                    assert!(dev_at < made, "{why}");
                    assert_eq!(
                        ops[made],
                        Op::Mknod {
                            path: path_c(&target).unwrap(),
                            major,
                            minor
                        },
                        "{why}"
                    );
                    continue;
                }
                let bound = position(
                    &plan,
                    |op| matches!(op, Op::Mount(m) if m.target() == target),
                );
                let made = position(&plan, |op| matches!(op, Op::Touch(p) if path(p) == target));
                assert!(dev_at < made && made < bound, "{why}");
                let bind = ops[bound].mount().unwrap();
                assert_eq!(bind.flags, libc::MS_BIND, "{why}");
                assert_eq!(
                    bind.source.as_deref().map(path),
                    Some(Path::new("/dev").join(name).as_path()),
                    "{why}"
                );
            }
        }
    }

    /// What follows the pivot, in order: the root's attributes (nodev, read-only when
    /// asked); the bound host /sys and /tmp made read-only and nosuid, nodev; then, when
    /// asked, every present read-only path bound onto itself and frozen with every mount
    /// under it, and every present masked path masked by its kind; nothing else.
    fn check_after_pivot(spec: &Spec, ops: &[Op], why: &str) {
        let frozen = ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC;
        let attr = |path: &str, set, recursive| Op::SetAttr {
            path: c(path),
            set,
            recursive,
        };
        let root = ATTR_NODEV | if spec.readonly_rootfs { ATTR_RDONLY } else { 0 };
        let mut expected = vec![attr("/", root, false)];
        if spec.namespaces.user && !spec.namespaces.net {
            expected.push(attr("/sys", frozen, true));
        }
        if spec.tmp.is_some() {
            expected.push(attr("/tmp", ATTR_NOSUID | ATTR_NODEV, false));
        }
        assert_eq!(ops[..expected.len()], expected[..], "{why}");
        let protection = &ops[expected.len()..];
        if !spec.protect_kernel_paths {
            assert!(protection.is_empty(), "{why}");
            return;
        }
        assert_eq!(protection, &after_pivot(0)[1..], "{why}");
        // Every protected path is one of the lists', present on the host.
        for op in protection {
            let path = op.path().to_str().unwrap();
            assert!(
                kernel().iter().any(|k| k.path == path)
                    && (READONLY_PATHS.contains(&path) || MASKED_PATHS.contains(&path)),
                "{op:?}: {why}"
            );
        }
    }

    #[test]
    fn the_plan_depends_on_its_input_only() {
        for spec in every_spec() {
            assert_eq!(planned(&spec), planned(&spec));
        }
        // Nothing the plan does not use changes it.
        let mut other = spec(Namespaces::ROOTFUL);
        other.args = vec!["/bin/true".into()];
        other.env.clear();
        other.hostname = "elsewhere".into();
        other.cgroup = false;
        other.namespaces.uts = false;
        other.namespaces.ipc = false;
        other.namespaces.cgroup = false;
        assert_eq!(planned(&other), planned(&spec(Namespaces::ROOTFUL)));
        // The state directory is used for an overlay only.
        let with_state = Host {
            state: Some(PathBuf::from(STATE)),
            ..host()
        };
        let plain = spec(Namespaces::ROOTFUL);
        assert_eq!(plan(&plain, &with_state).unwrap(), planned(&plain));
    }

    #[test]
    fn input_it_cannot_plan_for_is_named() {
        let relative = Host {
            rootfs: PathBuf::from("images/busybox"),
            ..host()
        };
        let err = plan(&spec(Namespaces::ROOTFUL), &relative).unwrap_err();
        assert!(matches!(err, Error::Relative(_)), "{err}");
        let mut overlay = spec(Namespaces::ROOTFUL);
        overlay.overlay = true;
        assert!(matches!(plan(&overlay, &host()), Err(Error::NoState)));
        let mut nul = spec(Namespaces::ROOTFUL);
        nul.tmp = Some(PathBuf::from("/var/tmp/a\0b"));
        let err = plan(&nul, &host()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Nul {
                    what: "a mount source",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn failures_are_described_by_their_operation() {
        let plan = planned(&spec(Namespaces::ROOTFUL));
        let described: Vec<String> = plan.ops.iter().map(Op::describe).collect();
        assert_eq!(described[0], "making mount propagation private");
        assert_eq!(
            described[1],
            format!("mount {ROOTFS} on {ROOTFS} (type bind, options )")
        );
        assert!(described.contains(&format!(
            "mount tmpfs on {ROOTFS}/tmp (type tmpfs, options mode=1777)"
        )));
        assert!(described.contains(&format!("mknod {ROOTFS}/dev/null (character device 1:3)")));
        let with_user = planned(&spec(Namespaces::ALL));
        assert!(with_user
            .ops
            .iter()
            .any(|op| op.describe() == format!("create {ROOTFS}/dev/null")));
        assert!(described.contains(&format!("symlink {ROOTFS}/dev/ptmx -> pts/ptmx")));
        assert!(described.contains(&"pivot_root".to_owned()));
        for after in [
            "making the root nodev",
            "binding /proc/sys onto itself",
            "making /proc/sys read-only, nosuid, nodev, noexec, with every mount under it",
            "masking /proc/kcore with /dev/null",
            "masking /proc/acpi with an empty read-only tmpfs",
        ] {
            assert!(
                described.contains(&after.to_owned()),
                "{after}: {described:#?}"
            );
        }
    }
}
