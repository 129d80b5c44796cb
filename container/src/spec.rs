//! What to run, in which namespaces, with which limits and protections: the container's
//! specification.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::seccomp::Seccomp;

/// Errors in a specification, found before anything is created.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root file system is missing or not a directory.
    #[error("root file system {0} is not a directory")]
    Rootfs(PathBuf),
    /// No program was given.
    #[error("no program to run: the argument list is empty")]
    NoProgram,
    /// The program is not an executable file inside the root file system.
    #[error("{program} is not an executable file inside the root file system {rootfs}")]
    Program {
        /// The program, as seen inside the container.
        program: String,
        /// The root file system.
        rootfs: PathBuf,
    },
    /// A string holds a NUL byte and cannot be passed to the kernel.
    #[error("{what} contains a NUL byte: {value:?}")]
    Nul {
        /// Which field.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// A limit is out of range.
    #[error("bad limit {what}: {why}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// The working directory is not absolute.
    #[error("working directory {0} is not an absolute path")]
    Cwd(PathBuf),
}

/// The namespaces a container gets; each can be switched off to measure what it costs.
///
/// All but the cgroup namespace are created together by one clone(2); the user namespace,
/// when present, is created first by the kernel and owns the others, so they are set up in
/// this order: user (ID maps written by the parent), then mount, uts, ipc, net and pid,
/// which the child configures after the parent says go. The cgroup namespace is made by
/// the child with unshare(2) once the parent has moved it into its cgroup, so that cgroup
/// is the namespace's root: the program sees itself at `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespaces {
    /// A user namespace (always on when not root).
    pub user: bool,
    /// A PID namespace: the program is PID 1.
    pub pid: bool,
    /// A mount namespace with the private root file system. Required.
    pub mount: bool,
    /// A UTS namespace: its own hostname.
    pub uts: bool,
    /// An IPC namespace.
    pub ipc: bool,
    /// A network namespace with only loopback, up.
    pub net: bool,
    /// A cgroup namespace, rooted at the container's own cgroup.
    pub cgroup: bool,
}

impl Namespaces {
    /// All seven.
    pub const ALL: Namespaces = Namespaces {
        user: true,
        pid: true,
        mount: true,
        uts: true,
        ipc: true,
        net: true,
        cgroup: true,
    };

    /// Every namespace but the user namespace: the rootful default.
    pub const ROOTFUL: Namespaces = Namespaces {
        user: false,
        ..Namespaces::ALL
    };

    /// The clone(2) flags for these namespaces (the cgroup namespace's included; the
    /// runtime itself leaves it to an unshare(2) after the cgroup is joined).
    pub fn clone_flags(self) -> libc::c_int {
        let mut flags = 0;
        for (on, flag) in [
            (self.user, libc::CLONE_NEWUSER),
            (self.pid, libc::CLONE_NEWPID),
            (self.mount, libc::CLONE_NEWNS),
            (self.uts, libc::CLONE_NEWUTS),
            (self.ipc, libc::CLONE_NEWIPC),
            (self.net, libc::CLONE_NEWNET),
            (self.cgroup, libc::CLONE_NEWCGROUP),
        ] {
            if on {
                flags |= flag;
            }
        }
        flags
    }

    /// The names of the namespaces that are on, in creation order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (self.user, "user"),
            (self.mount, "mount"),
            (self.uts, "uts"),
            (self.ipc, "ipc"),
            (self.net, "net"),
            (self.cgroup, "cgroup"),
            (self.pid, "pid"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// CPU limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpu {
    /// At most `quota_us` of CPU time every `period_us` (v2 `cpu.max`, v1 `cfs_quota_us`).
    Quota {
        /// Microseconds of CPU time per period.
        quota_us: u64,
        /// The period, microseconds.
        period_us: u64,
    },
    /// A relative weight, 1..=10000 (v2 `cpu.weight`; v1 `cpu.shares` scaled).
    Weight(u64),
}

/// Resource limits, applied through the instance's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Memory limit, bytes.
    pub memory_max: Option<u64>,
    /// CPU limit.
    pub cpu: Option<Cpu>,
    /// Most processes and threads at once.
    pub pids_max: Option<u64>,
}

impl Limits {
    /// Checks the ranges the kernel would reject, so the error can name the limit.
    pub fn validate(&self) -> Result<(), Error> {
        if self.memory_max.is_some_and(|m| m < 1 << 20) {
            return Err(Error::Limit {
                what: "memory_max",
                why: "below 1 MiB: the program could not even start",
            });
        }
        if self.pids_max == Some(0) {
            return Err(Error::Limit {
                what: "pids_max",
                why: "0 would forbid the program itself",
            });
        }
        match self.cpu {
            Some(Cpu::Quota {
                quota_us,
                period_us,
            }) if quota_us < 1000 || !(1000..=1_000_000).contains(&period_us) => {
                Err(Error::Limit {
                    what: "cpu",
                    why: "quota must be at least 1000 µs and the period 1000..=1000000 µs",
                })
            }
            Some(Cpu::Weight(w)) if !(1..=10_000).contains(&w) => Err(Error::Limit {
                what: "cpu",
                why: "weight must be 1..=10000",
            }),
            _ => Ok(()),
        }
    }

    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory_max.is_some() || self.cpu.is_some() || self.pids_max.is_some()
    }
}

/// Which capabilities the container's program keeps (in its user namespace, when it has
/// one: there they reach only what that namespace owns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Capabilities {
    /// [`DEFAULT_CAPS`](crate::DEFAULT_CAPS): the usual runtime default, without
    /// `NET_RAW` and `MKNOD`.
    #[default]
    Default,
    /// Every capability the runtime has (a privileged container: to measure what the
    /// default set buys).
    All,
}

/// A container to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The root file system: a directory holding at least the program.
    pub rootfs: PathBuf,
    /// The program (a path inside the root file system) and its arguments.
    pub args: Vec<String>,
    /// The environment, `NAME=value`.
    pub env: Vec<String>,
    /// The working directory inside the container.
    pub cwd: PathBuf,
    /// The hostname (with a UTS namespace).
    pub hostname: String,
    /// Which namespaces.
    pub namespaces: Namespaces,
    /// Resource limits.
    pub limits: Limits,
    /// Mount the root file system read-only.
    pub readonly_rootfs: bool,
    /// Put a tmpfs-backed overlay over the root file system, so writes go to memory and
    /// one image serves many instances.
    pub overlay: bool,
    /// Put the container in a cgroup even without limits, for its accounting.
    pub cgroup: bool,
    /// A host directory bound at `/tmp` instead of a fresh tmpfs, so file I/O inside
    /// reaches the same file system as outside.
    pub tmp: Option<PathBuf>,
    /// How long the container may live; enforced by whoever waits for it.
    pub timeout: Option<Duration>,
    /// The system call filter the program runs under.
    pub seccomp: Seccomp,
    /// The capabilities the program keeps.
    pub capabilities: Capabilities,
    /// Make the kernel paths of [`READONLY_PATHS`](crate::mounts::READONLY_PATHS)
    /// read-only and hide those of [`MASKED_PATHS`](crate::mounts::MASKED_PATHS).
    pub protect_kernel_paths: bool,
    /// Let the program use only the devices of [`ALLOWED`](crate::devices::ALLOWED),
    /// through its cgroup (v1 `devices.deny`/`devices.allow`, or a v2 device program).
    /// Applies when the container has a cgroup, that is as root; without one, see
    /// [`devices`](crate::devices) for what keeps other devices out of reach.
    pub restrict_devices: bool,
}

impl Spec {
    /// A specification with the defaults: every namespace but user (all seven when not
    /// root), a cgroup, a writable root, hostname `vcbench`, working directory `/`, and
    /// every protection on: the default system call filter and capabilities, the kernel
    /// paths protected, the devices restricted.
    pub fn new(rootfs: impl Into<PathBuf>, args: Vec<String>) -> Self {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        Spec {
            rootfs: rootfs.into(),
            args,
            env: vec!["PATH=/usr/bin:/bin".to_owned()],
            cwd: PathBuf::from("/"),
            hostname: "vcbench".to_owned(),
            namespaces: if root {
                Namespaces::ROOTFUL
            } else {
                Namespaces::ALL
            },
            limits: Limits::default(),
            readonly_rootfs: false,
            overlay: false,
            cgroup: true,
            tmp: None,
            timeout: None,
            seccomp: Seccomp::Default,
            capabilities: Capabilities::Default,
            protect_kernel_paths: true,
            restrict_devices: true,
        }
    }

    /// Checks everything that can be checked before any namespace or cgroup exists.
    pub fn validate(&self) -> Result<(), Error> {
        if !self.rootfs.is_dir() {
            return Err(Error::Rootfs(self.rootfs.clone()));
        }
        let program = self.args.first().ok_or(Error::NoProgram)?;
        // A program under /tmp is found in the host directory bound there, when one is.
        let inside = match (&self.tmp, program.strip_prefix("/tmp/")) {
            (Some(tmp), Some(rest)) => tmp.join(rest),
            _ => self.rootfs.join(program.trim_start_matches('/')),
        };
        if !is_executable(&inside) {
            return Err(Error::Program {
                program: program.clone(),
                rootfs: self.rootfs.clone(),
            });
        }
        if !self.cwd.is_absolute() {
            return Err(Error::Cwd(self.cwd.clone()));
        }
        let strings = self
            .args
            .iter()
            .map(|a| ("an argument", a))
            .chain(self.env.iter().map(|e| ("the environment", e)))
            .chain([("the hostname", &self.hostname)]);
        for (what, value) in strings {
            if value.contains('\0') {
                return Err(Error::Nul {
                    what,
                    value: value.clone(),
                });
            }
        }
        self.limits.validate()
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_flags_follow_the_switches() {
        assert_eq!(
            Namespaces::ALL.clone_flags(),
            libc::CLONE_NEWUSER
                | libc::CLONE_NEWPID
                | libc::CLONE_NEWNS
                | libc::CLONE_NEWUTS
                | libc::CLONE_NEWIPC
                | libc::CLONE_NEWNET
                | libc::CLONE_NEWCGROUP
        );
        let only_mount = Namespaces {
            user: false,
            pid: false,
            mount: true,
            uts: false,
            ipc: false,
            net: false,
            cgroup: false,
        };
        assert_eq!(only_mount.clone_flags(), libc::CLONE_NEWNS);
        assert_eq!(Namespaces::ALL.names()[0], "user");
    }

    #[test]
    fn bad_specs_are_named() {
        let dir = std::env::temp_dir();
        let spec = Spec::new("/nonexistent/rootfs", vec!["/init".into()]);
        assert!(matches!(spec.validate(), Err(Error::Rootfs(_))));
        let spec = Spec::new(&dir, vec![]);
        assert!(matches!(spec.validate(), Err(Error::NoProgram)));
        let spec = Spec::new(&dir, vec!["/surely-not-here".into()]);
        assert!(matches!(spec.validate(), Err(Error::Program { .. })));
    }

    #[test]
    fn a_program_under_tmp_is_found_in_the_directory_bound_there() {
        let root = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let program = tmp.path().join("tool");
        std::fs::write(&program, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            &program,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut spec = Spec::new(root.path(), vec!["/tmp/tool".into()]);
        assert!(matches!(spec.validate(), Err(Error::Program { .. })));
        spec.tmp = Some(tmp.path().to_owned());
        spec.validate().unwrap();
    }

    #[test]
    fn limits_are_range_checked() {
        let bad = [
            Limits {
                memory_max: Some(10),
                ..Limits::default()
            },
            Limits {
                pids_max: Some(0),
                ..Limits::default()
            },
            Limits {
                cpu: Some(Cpu::Weight(0)),
                ..Limits::default()
            },
            Limits {
                cpu: Some(Cpu::Quota {
                    quota_us: 10,
                    period_us: 100_000,
                }),
                ..Limits::default()
            },
        ];
        for limits in bad {
            assert!(limits.validate().is_err(), "{limits:?}");
        }
        let good = Limits {
            memory_max: Some(64 << 20),
            cpu: Some(Cpu::Quota {
                quota_us: 50_000,
                period_us: 100_000,
            }),
            pids_max: Some(64),
        };
        assert!(good.validate().is_ok() && good.any());
    }
}
