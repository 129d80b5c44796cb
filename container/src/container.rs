//! Starting, watching and tearing down one container.
//!
//! The recipe, each step stamped on `CLOCK_MONOTONIC`:
//! 1. validate the [`Spec`] and prepare the child's plan (`prepared`: the mount plan, the
//!    compiled system call filter); where instances' cgroups live in the unified (v2)
//!    hierarchy, create the cgroup with its limits (`cgroup_created`);
//! 2. clone(2) with every namespace flag at once but the cgroup namespace's, sharing this
//!    process's memory until the child execs (`CLONE_VM | CLONE_VFORK`, as posix_spawn
//!    does: a copy of a large, many-threaded parent's memory cost about as much as the
//!    namespaces, once at the clone and again at the exec); with a v2 cgroup, clone3(2)
//!    with `CLONE_INTO_CGROUP` starts the child in it. The child says it runs (`cloned`)
//!    and waits;
//! 3. meanwhile a helper thread makes a v1 cgroup with its limits (`cgroup_created`: v1
//!    needs a write of the child's PID anyway, so its directories are made while the
//!    kernel makes the namespaces), restricts the cgroup's devices
//!    (`devices_restricted`), writes the user namespace's ID maps once the child runs
//!    (`idmaps_written`), then says go;
//! 4. the child joins its v1 cgroup by itself, writing 0 to each directory's `tasks`
//!    (`cgroup_attached`: a process that moves itself needs none of the cgroup core's
//!    global lock, whose writer, moving another process, may wait for an RCU grace period:
//!    10-17 ms in a fresh process on this development machine); a v2 cgroup it was cloned
//!    into needs nothing. Then it unshares its cgroup namespace (rooted at the cgroup it
//!    is now in) and walks
//!    its [`MountPlan`](crate::mounts::MountPlan): makes mounts private, assembles the root
//!    (`mounts_done`), pivots into it and sets the attributes of what it bound
//!    (`pivot_root_done`), then protects the kernel paths (`paths_masked`); it sets
//!    hostname and loopback and drops privileges (`privileges_dropped`), installs the
//!    system call filter and calls execve (`exec`, stamped by the child); the status pipe
//!    closing on exec says it succeeded.
//!
//! Teardown kills the whole PID namespace (its init) and everything in the cgroup, reaps,
//! removes the cgroup and any overlay state. Mounts live only in the container's mount
//! namespace, so none can be left on the host.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::Instant;

use crate::cgroup::{self, Cgroup, Layout};
use crate::child::{self, Message, Plan, Step, MESSAGE_LEN, REQUEST_MAX, REQUEST_STRINGS};
use crate::devices;
use crate::mounts::{self, Host, KernelPath};
use crate::process::{Child, Reaped};
use crate::seccomp::{self, Program, Seccomp};
use crate::spec::{self, Capabilities, Limits, Spec};

/// Capabilities a container keeps (the usual runtime default, without `NET_RAW` and
/// `MKNOD`: nothing in a container needs to make a device node, and the device cgroup
/// refuses all but the bound ones anyway): CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL,
/// SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, AUDIT_WRITE, SETFCAP.
pub const DEFAULT_CAPS: [u32; 12] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 18, 29, 31];

/// Where a root-run container's user namespace maps its IDs when none are delegated.
const ROOT_ID_BASE: u32 = 100_000;
/// How many IDs that map covers.
const ROOT_ID_COUNT: u32 = 65_536;

/// Errors creating or running a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The specification is invalid.
    #[error(transparent)]
    Spec(#[from] spec::Error),
    /// The cgroup could not be set up.
    #[error(transparent)]
    Cgroup(#[from] cgroup::Error),
    /// No mount plan could be made for the specification.
    #[error(transparent)]
    Mounts(#[from] mounts::Error),
    /// The system call filter could not be built.
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
    /// A system call in the parent failed.
    #[error("{what}")]
    Sys {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused to create the namespaces.
    #[error("cannot create the {namespaces} namespaces (clone failed): run as root, or enable unprivileged user namespaces")]
    Clone {
        /// The namespaces asked for.
        namespaces: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The user namespace's ID maps could not be written.
    #[error("cannot write the user namespace ID map {what}")]
    IdMap {
        /// Which map.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A step inside the new namespaces failed.
    #[error("container setup failed while {step}")]
    Setup {
        /// The step, with its operation where there is one.
        step: String,
        /// The error the kernel gave.
        #[source]
        source: std::io::Error,
    },
}

fn sys(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Sys { what, source }
}

/// The standard streams of the container's program.
#[derive(Debug)]
pub struct Stdio {
    /// Standard input (`/dev/null` when `None`).
    pub stdin: Option<OwnedFd>,
    /// Standard output.
    pub stdout: OwnedFd,
    /// Standard error.
    pub stderr: OwnedFd,
}

/// A phase of container creation and when it ended (CLOCK_MONOTONIC nanoseconds).
pub type Phase = (&'static str, u64);

/// A running (or exited, not yet destroyed) container.
#[derive(Debug)]
pub struct Container {
    child: Child,
    cgroup: Option<Cgroup>,
    phases: Vec<Phase>,
    pid_namespace: bool,
    state: Option<PathBuf>,
}

/// CLOCK_MONOTONIC now, nanoseconds: the host's one clock ([`monotonic::now_ns`]).
pub use monotonic::now_ns as monotonic_ns;

/// A name no other instance of this process or another has.
fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "vcbench-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn cstring(what: &'static str, s: impl Into<Vec<u8>>) -> Result<CString, Error> {
    CString::new(s).map_err(|e| {
        Error::Spec(spec::Error::Nul {
            what,
            value: String::from_utf8_lossy(&e.into_vec()).into_owned(),
        })
    })
}

fn path_c(path: &Path) -> Result<CString, Error> {
    cstring("a path", path.as_os_str().as_encoded_bytes())
}

impl Container {
    /// Creates the container and starts its program; returns once the program has been
    /// exec'ed (or with the step that failed, everything undone).
    pub fn start(spec: &Spec, stdio: Stdio) -> Result<Self, Error> {
        spec.validate()?;
        let mut phases: Vec<Phase> = Vec::new();
        let name = unique_name();
        let state = spec.overlay.then(|| state_dir(&name)).transpose()?;
        // From here on, dropping `guard` removes what was made if a step fails.
        let mut guard = StateGuard(state.clone());
        let stdin = match stdio.stdin {
            Some(fd) => fd,
            None => std::fs::File::open("/dev/null")
                .map_err(sys("open /dev/null"))?
                .into(),
        };
        let mut plan = prepare(
            spec,
            state.as_deref(),
            [
                stdin.as_raw_fd(),
                stdio.stdout.as_raw_fd(),
                stdio.stderr.as_raw_fd(),
            ],
        )?;

        let layout = (spec.cgroup || spec.limits.any())
            .then(Layout::cached)
            .transpose()?;
        phases.push(("prepared", monotonic_ns()));
        // In the unified hierarchy the cgroup is made before the clone, which starts the
        // child in it. v1 hierarchies need a write of the child's PID anyway: the admitting
        // thread makes them while the clone runs.
        let early = match layout {
            Some(layout) if layout.instances_unified() => {
                let cgroup = Cgroup::create(layout, &name, &spec.limits)?;
                phases.push(("cgroup_created", monotonic_ns()));
                Some(cgroup)
            }
            _ => None,
        };
        let target = early
            .as_ref()
            .and_then(Cgroup::unified_dir)
            .map(open_dir)
            .transpose()?;
        let cgroup_plan = match (early, layout) {
            (Some(made), _) => CgroupPlan::Made(made),
            (None, Some(layout)) => {
                // The child joins its v1 directories by itself once they are made.
                plan.join_cgroup = Cgroup::v1_dirs(layout, &name, spec.restrict_devices)
                    .iter()
                    .map(|dir| path_c(&dir.join(cgroup::V1_JOIN_FILE)))
                    .collect::<Result<_, _>>()?;
                CgroupPlan::Make {
                    layout,
                    name: &name,
                    limits: &spec.limits,
                    restricted: spec.restrict_devices,
                }
            }
            (None, None) => CgroupPlan::None,
        };

        let (go_read, go_write) = pipe()?;
        let (status_read, status_write) = pipe()?;
        let status = std::fs::File::from(status_read);
        // The cgroup namespace is the child's to make, once it is in its cgroup.
        let flags = spec.namespaces.clone_flags() & !libc::CLONE_NEWCGROUP;
        let pid_slot = AtomicI32::new(0);
        let cloned_into = AtomicBool::new(false);
        let (go_fd, status_fd) = (go_read.as_raw_fd(), status_write.as_raw_fd());
        let go_write_fd = go_write.as_raw_fd();
        let mut run_child = || -> libc::c_int {
            // SAFETY: this is the freshly cloned child and `plan` was fully prepared.
            unsafe { child::run(&plan, go_fd, go_write_fd, status_fd) }
        };
        // While the cloning thread waits for the child's exec, a helper thread admits it:
        // cgroup (v1), device list, ID maps, attach, go.
        let (cloned, admitted) = std::thread::scope(|scope| {
            let admit = scope.spawn(|| {
                admit(Admission {
                    status: &status,
                    go: go_write,
                    pid_slot: &pid_slot,
                    user: spec.namespaces.user,
                    cgroup: cgroup_plan,
                    devices: spec.restrict_devices.then_some(layout).flatten(),
                    cloned_into: &cloned_into,
                })
            });
            let cloned = match &target {
                Some(dir) => {
                    cloned_into.store(true, Ordering::SeqCst);
                    // SAFETY: in the child, only `child::run` runs: system calls on data
                    // prepared above, ending in execve or _exit.
                    match unsafe {
                        crate::process::clone_vfork_into(
                            flags,
                            dir.as_fd(),
                            &pid_slot,
                            &mut run_child,
                        )
                    } {
                        // No clone3 here (an old kernel, a filter): clone, then the write.
                        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::E2BIG)) => {
                            cloned_into.store(false, Ordering::SeqCst);
                            // SAFETY: as above.
                            unsafe { crate::process::clone_vfork(flags, &pid_slot, &mut run_child) }
                        }
                        other => other,
                    }
                }
                // SAFETY: as above.
                None => unsafe { crate::process::clone_vfork(flags, &pid_slot, &mut run_child) },
            };
            // The parent's ends: the admitting thread sees the end of the status pipe if the
            // child never ran, and the status pipe ends at the child's exec.
            drop(status_write);
            drop(go_read);
            (cloned, admit.join())
        });
        let pid = cloned.map_err(|source| Error::Clone {
            namespaces: spec.namespaces.names().join(", "),
            source,
        })?;
        let child = Child::new(pid);
        let cgroup = match admitted {
            Ok(admitted) => {
                let (admitted, cgroup) = admitted?;
                phases.extend(admitted);
                cgroup
            }
            Err(_) => {
                return Err(sys("admit the container")(std::io::Error::other(
                    "panicked",
                )))
            }
        };

        loop {
            let mut buf = [0u8; MESSAGE_LEN];
            match read_message(&status, &mut buf).map_err(sys("read the container's status"))? {
                false => break,
                true => {
                    let m = Message::decode(&buf);
                    let step = Step::from_u32(m.step).unwrap_or(Step::Exec);
                    if m.errno != 0 {
                        let what = match step {
                            Step::MakePrivate
                            | Step::Mount
                            | Step::PivotRoot
                            | Step::SetAttr
                            | Step::Protect => plan
                                .mounts
                                .ops
                                .get(usize::try_from(m.op).unwrap_or(usize::MAX))
                                .map_or_else(|| step.name().to_owned(), |op| op.describe()),
                            Step::Exec => format!("executing {}", spec.args[0]),
                            Step::CgroupJoin => "joining its cgroup".to_owned(),
                            other => other.name().to_owned(),
                        };
                        return Err(Error::Setup {
                            step: what,
                            source: std::io::Error::from_raw_os_error(m.errno),
                        });
                    }
                    phases.push((step.name(), m.stamp));
                }
            }
        }
        guard.0 = None;
        // The admitting thread's phases overlap the clone: in the order they happened.
        phases.sort_by_key(|(_, at)| *at);
        Ok(Container {
            child,
            cgroup,
            phases,
            pid_namespace: spec.namespaces.pid,
            state,
        })
    }

    /// The host PID of the container's first process.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Creation phases in order.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// The container's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// Host PIDs of every process in the container.
    pub fn pids(&self) -> Vec<u32> {
        match &self.cgroup {
            Some(c) if self.child.reaped().is_none() => c.pids(),
            _ if self.child.reaped().is_none() => vec![self.child.pid()],
            _ => Vec::new(),
        }
    }

    /// Sends `signal` to the container's first process.
    pub fn signal(&self, signal: libc::c_int) {
        self.child.signal(signal, false);
    }

    /// Kills every process of the container: its PID namespace goes with its init, and
    /// the cgroup catches anything outside one.
    pub fn kill(&self) {
        self.child.signal(libc::SIGKILL, false);
        if !self.pid_namespace {
            if let Some(c) = &self.cgroup {
                c.kill();
            }
        }
    }

    /// Waits for the first process to exit, killing everything at `until`; returns how
    /// it ended and whether it was killed for time.
    pub fn wait(&mut self, until: Instant) -> Result<(Reaped, bool), Error> {
        let timed_out = !self.child.exited_by(until);
        // On a timeout everything goes; otherwise whatever outlived the first process.
        self.kill();
        let reaped = self.child.reap().map_err(sys("wait for the container"))?;
        Ok((reaped, timed_out))
    }

    /// Kills what is left, reaps, and removes the cgroup and any overlay state.
    pub fn destroy(mut self) -> Result<(), Error> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), Error> {
        self.kill();
        let _ = self.child.reap();
        let cgroup = self.cgroup.take().map(|mut c| c.remove());
        if let Some(state) = self.state.take() {
            remove_state(&state);
        }
        cgroup.transpose()?;
        Ok(())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// A sandbox built ahead (namespaces, ID maps, cgroup, mounts, privileges and filter
/// done) whose first process waits for its program: [`Idle::start`] sends it, and the
/// sandbox becomes a running [`Container`]. Dropping it kills the process and removes the
/// cgroup and any overlay state.
#[derive(Debug)]
pub struct Idle {
    container: Container,
    status: std::fs::File,
    request: OwnedFd,
}

/// A NUL-free string, or the error naming what held the NUL.
fn checked<'a>(what: &'static str, s: &'a str) -> Result<&'a str, Error> {
    if s.contains('\0') {
        return Err(Error::Spec(spec::Error::Nul {
            what,
            value: s.to_owned(),
        }));
    }
    Ok(s)
}

impl Idle {
    /// Builds a sandbox from `spec` up to its program's exec and leaves it waiting (its
    /// `args` and `env` are not used: the request brings them). The phases end with
    /// `ready`.
    pub fn build(spec: &Spec) -> Result<Self, Error> {
        spec.validate()?;
        let mut phases: Vec<Phase> = Vec::new();
        let name = unique_name();
        let state = spec.overlay.then(|| state_dir(&name)).transpose()?;
        let mut guard = StateGuard(state.clone());
        let null = std::fs::File::open("/dev/null").map_err(sys("open /dev/null"))?;
        let mut plan = prepare(spec, state.as_deref(), [null.as_raw_fd(); 3])?;
        let (request, request_child) = seqpacket_pair()?;
        plan.request = Some(request_child.as_raw_fd());
        phases.push(("prepared", monotonic_ns()));
        let cgroup = if spec.cgroup || spec.limits.any() {
            let layout = Layout::cached()?;
            let mut cgroup =
                Cgroup::create_for(layout, &name, &spec.limits, spec.restrict_devices)?;
            phases.push(("cgroup_created", monotonic_ns()));
            if spec.restrict_devices {
                cgroup.restrict_devices(layout, &devices::ALLOWED)?;
                phases.push(("devices_restricted", monotonic_ns()));
            }
            Some(cgroup)
        } else {
            None
        };
        let (go_read, go_write) = pipe()?;
        let (status_read, status_write) = pipe()?;
        let status = std::fs::File::from(status_read);
        let flags = spec.namespaces.clone_flags() & !libc::CLONE_NEWCGROUP;
        // A fork, not a clone sharing memory: the child waits for its program for as
        // long as the pool keeps it, and the cloning thread goes on meanwhile.
        // SAFETY: in the child, only `child::run` runs: system calls on its copy of data
        // prepared above, ending in execve or _exit.
        let pid = unsafe { crate::process::clone_fork(flags) }.map_err(|source| Error::Clone {
            namespaces: spec.namespaces.names().join(", "),
            source,
        })?;
        if pid == 0 {
            // SAFETY: this is the freshly cloned child and `plan` was fully prepared.
            unsafe {
                child::run(
                    &plan,
                    go_read.as_raw_fd(),
                    go_write.as_raw_fd(),
                    status_write.as_raw_fd(),
                )
            }
        }
        let child = Child::new(pid);
        drop((go_read, status_write, request_child, null));
        let pid_slot = AtomicI32::new(i32::try_from(pid).unwrap_or(0));
        let (admitted, cgroup) = admit(Admission {
            status: &status,
            go: go_write,
            pid_slot: &pid_slot,
            user: spec.namespaces.user,
            cgroup: cgroup.map_or(CgroupPlan::None, CgroupPlan::Made),
            devices: None,
            cloned_into: &AtomicBool::new(false),
        })?;
        let mut container = Container {
            child,
            cgroup,
            phases,
            pid_namespace: spec.namespaces.pid,
            state,
        };
        guard.0 = None;
        container.phases.extend(admitted);
        // Every phase up to `ready`, or the step that failed.
        let mut idle = Idle {
            container,
            status,
            request,
        };
        idle.read_phases(&plan, &spec.args[0], Step::Ready)?;
        Ok(idle)
    }

    /// The sandbox's first process, waiting.
    pub fn container(&self) -> &Container {
        &self.container
    }

    /// Reads messages into the phases until `until` (true) or the end of the pipe
    /// (false); a failure becomes the error of its step.
    fn read_phases(&mut self, plan: &Plan, program: &str, until: Step) -> Result<bool, Error> {
        loop {
            let mut buf = [0u8; MESSAGE_LEN];
            if !read_message(&self.status, &mut buf).map_err(sys("read the container's status"))? {
                return Ok(false);
            }
            let m = Message::decode(&buf);
            let step = Step::from_u32(m.step).unwrap_or(Step::Exec);
            if m.errno != 0 {
                return Err(setup_error(plan, program, step, &m));
            }
            self.container.phases.push((step.name(), m.stamp));
            if step == until {
                return Ok(true);
            }
        }
    }

    /// Starts `args` (the program's path inside first) with `env` and `stdio` in the
    /// sandbox; returns once it has been exec'ed. The phases gain `requested` (now) and
    /// `exec`.
    pub fn start(
        mut self,
        args: &[String],
        env: &[String],
        stdio: Stdio,
    ) -> Result<Container, Error> {
        let requested = monotonic_ns();
        if args.is_empty() {
            return Err(Error::Spec(spec::Error::NoProgram));
        }
        if args.len() > REQUEST_STRINGS || env.len() > REQUEST_STRINGS {
            return Err(sys("send the program")(std::io::Error::from_raw_os_error(
                libc::E2BIG,
            )));
        }
        let mut data = Vec::new();
        data.extend_from_slice(&u32::try_from(args.len()).unwrap_or(0).to_ne_bytes());
        data.extend_from_slice(&u32::try_from(env.len()).unwrap_or(0).to_ne_bytes());
        for s in args
            .iter()
            .map(|a| checked("an argument", a))
            .chain(env.iter().map(|e| checked("the environment", e)))
        {
            data.extend_from_slice(s?.as_bytes());
            data.push(0);
        }
        if data.len() > REQUEST_MAX {
            return Err(sys("send the program")(std::io::Error::from_raw_os_error(
                libc::E2BIG,
            )));
        }
        let stdin = match stdio.stdin {
            Some(fd) => fd,
            None => std::fs::File::open("/dev/null")
                .map_err(sys("open /dev/null"))?
                .into(),
        };
        send_request(
            &self.request,
            &data,
            [
                stdin.as_raw_fd(),
                stdio.stdout.as_raw_fd(),
                stdio.stderr.as_raw_fd(),
            ],
        )
        .map_err(sys("send the program"))?;
        self.container.phases.push(("requested", requested));
        loop {
            let mut buf = [0u8; MESSAGE_LEN];
            if !read_message(&self.status, &mut buf).map_err(sys("read the container's status"))? {
                break;
            }
            let m = Message::decode(&buf);
            let step = Step::from_u32(m.step).unwrap_or(Step::Exec);
            if m.errno != 0 {
                return Err(Error::Setup {
                    step: match step {
                        Step::Exec | Step::Request => format!("executing {}", args[0]),
                        other => other.name().to_owned(),
                    },
                    source: std::io::Error::from_raw_os_error(m.errno),
                });
            }
            self.container.phases.push((step.name(), m.stamp));
        }
        Ok(self.container)
    }
}

/// The error a failure message from the child stands for.
fn setup_error(plan: &Plan, program: &str, step: Step, m: &Message) -> Error {
    let what = match step {
        Step::MakePrivate | Step::Mount | Step::PivotRoot | Step::SetAttr | Step::Protect => plan
            .mounts
            .ops
            .get(usize::try_from(m.op).unwrap_or(usize::MAX))
            .map_or_else(|| step.name().to_owned(), |op| op.describe()),
        Step::Exec => format!("executing {program}"),
        other => other.name().to_owned(),
    };
    Error::Setup {
        step: what,
        source: std::io::Error::from_raw_os_error(m.errno),
    }
}

/// A connected pair of sequenced-packet sockets, close-on-exec.
fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), Error> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for socketpair to fill.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(sys("create the request socket")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the descriptor was just created and is owned by nothing else.
    let parent = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let child = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    Ok((parent, child))
}

/// Sends `data` with `fds` as SCM_RIGHTS in one datagram.
fn send_request(socket: &OwnedFd, data: &[u8], fds: [libc::c_int; 3]) -> std::io::Result<()> {
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: all-zero is a valid msghdr, filled in below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is arithmetic.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(3 * 4) } as usize;
    // SAFETY: `msg` has a control buffer of at least one header's space.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: CMSG_LEN is arithmetic.
    let len = unsafe { libc::CMSG_LEN(3 * 4) } as usize;
    // SAFETY: CMSG_FIRSTHDR returned a header inside `control`, which has room for it
    // (and `control` is aligned for it).
    let header = unsafe { &mut *cmsg };
    header.cmsg_level = libc::SOL_SOCKET;
    header.cmsg_type = libc::SCM_RIGHTS;
    header.cmsg_len = len;
    // SAFETY: the header's data follow it inside `control`, with room for three
    // descriptors, written unaligned.
    let fds_at = unsafe { libc::CMSG_DATA(cmsg) };
    // SAFETY: as above.
    unsafe { fds_at.cast::<[libc::c_int; 3]>().write_unaligned(fds) };
    // SAFETY: `msg` points at valid buffers for their lengths.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    match usize::try_from(sent) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(_) => Err(std::io::ErrorKind::WriteZero.into()),
        Err(_) => Err(std::io::Error::last_os_error()),
    }
}

/// Removes a state directory when a failed start leaves it.
struct StateGuard(Option<PathBuf>);

impl Drop for StateGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            remove_state(&dir);
        }
    }
}

fn remove_state(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
}

/// Where per-instance state directories go: `$XDG_RUNTIME_DIR/vcbench`, else
/// `vcbench-run` under the temporary directory.
pub(crate) fn state_base() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(
            || std::env::temp_dir().join("vcbench-run"),
            |d| PathBuf::from(d).join("vcbench"),
        )
}

/// A per-instance directory for overlay mount points, under the runtime directory.
fn state_dir(name: &str) -> Result<PathBuf, Error> {
    let dir = state_base().join(name);
    std::fs::create_dir_all(dir.join("overlay"))
        .map_err(sys(format!("create {}", dir.display())))?;
    std::fs::create_dir_all(dir.join("merged"))
        .map_err(sys(format!("create {}", dir.display())))?;
    Ok(dir)
}

/// The container's cgroup as the admitting thread finds it.
enum CgroupPlan<'a> {
    /// The container has none.
    None,
    /// Made before the clone.
    Made(Cgroup),
    /// To be made by the admitting thread, in `layout`, while the clone runs.
    Make {
        /// The host's hierarchies.
        layout: &'static Layout,
        /// The instance's name.
        name: &'a str,
        /// Its limits.
        limits: &'a Limits,
        /// Whether its devices are to be restricted ([`Cgroup::create_for`]).
        restricted: bool,
    },
}

/// What the admitting thread needs.
struct Admission<'a> {
    /// The child's status pipe.
    status: &'a std::fs::File,
    /// The go pipe's write end: said once admitted, dropped unsaid on a failure.
    go: OwnedFd,
    /// Where the kernel stores the child's PID.
    pid_slot: &'a AtomicI32,
    /// Whether the child has a user namespace whose ID maps are to be written.
    user: bool,
    /// The cgroup.
    cgroup: CgroupPlan<'a>,
    /// The layout in which to restrict the cgroup's devices, when they are restricted.
    devices: Option<&'static Layout>,
    /// Set (before the clone) when the child is cloned into the cgroup's unified
    /// directory, so only its other directories need the write.
    cloned_into: &'a AtomicBool,
}

/// The parent's side of a start while the child waits for its go: makes the cgroup and
/// its device list if asked (a v1 cgroup is made here while the clone runs), takes the
/// child's first message (it runs, its PID is in `pid_slot`), writes its ID maps, moves it
/// into its cgroup unless it was cloned there, and says go. On a failure `go` is dropped
/// unsaid, which makes the child end, and a cgroup made here is removed.
fn admit(a: Admission<'_>) -> Result<(Vec<Phase>, Option<Cgroup>), Error> {
    let Admission {
        status,
        go,
        pid_slot,
        user,
        cgroup,
        devices,
        cloned_into,
    } = a;
    let mut phases = Vec::new();
    // A cgroup made here has v1 directories, which the child joins by itself after the go.
    let child_joins = matches!(cgroup, CgroupPlan::Make { .. });
    let mut cgroup = match cgroup {
        CgroupPlan::None => None,
        CgroupPlan::Made(made) => Some(made),
        CgroupPlan::Make {
            layout,
            name,
            limits,
            restricted,
        } => {
            let made = Cgroup::create_for(layout, name, limits, restricted)?;
            phases.push(("cgroup_created", monotonic_ns()));
            Some(made)
        }
    };
    if let (Some(made), Some(layout)) = (cgroup.as_mut(), devices) {
        made.restrict_devices(layout, &devices::ALLOWED)?;
        phases.push(("devices_restricted", monotonic_ns()));
    }
    let mut buf = [0u8; MESSAGE_LEN];
    let started = read_message(status, &mut buf).map_err(sys("read the container's status"))?;
    let first = Message::decode(&buf);
    if !started || first.step != Step::Cloned as u32 || first.errno != 0 {
        return Err(Error::Setup {
            step: Step::Cloned.name().to_owned(),
            source: std::io::Error::from_raw_os_error(if started { first.errno } else { 0 }),
        });
    }
    phases.push((Step::Cloned.name(), first.stamp));
    let pid = u32::try_from(pid_slot.load(Ordering::Acquire))
        .map_err(|_| sys("learn the container's PID")(std::io::ErrorKind::InvalidData.into()))?;
    if user {
        write_id_maps(pid)?;
        phases.push(("idmaps_written", monotonic_ns()));
    }
    if let Some(made) = &cgroup {
        let wrote = if child_joins {
            // Only a directory in the unified hierarchy (for the device program) is left;
            // the child stamps `cgroup_attached` once it has joined the rest.
            made.attach_unified(pid)?;
            false
        } else if cloned_into.load(Ordering::SeqCst) {
            made.attach_outside_unified(pid)?
        } else {
            made.attach(pid)?;
            true
        };
        if wrote {
            phases.push(("cgroup_attached", monotonic_ns()));
        }
    }
    let mut go = std::fs::File::from(go);
    std::io::Write::write_all(&mut go, b"g").map_err(sys("signal the container to go"))?;
    Ok((phases, cgroup))
}

/// Opens a directory to name it to the kernel (a cgroup for clone3), close-on-exec.
fn open_dir(path: &Path) -> Result<OwnedFd, Error> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(sys(format!("open {}", path.display())))
}

/// Reads one message; false at end of stream.
fn read_message(mut file: &std::fs::File, buf: &mut [u8; MESSAGE_LEN]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < MESSAGE_LEN {
        match file.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(sys("create a pipe")(std::io::Error::last_os_error()));
    }
    // SAFETY: the descriptor was just created and is owned by nothing else.
    let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let write = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    Ok((read, write))
}

/// Writes uid_map and gid_map for `pid`: the calling user maps to root inside. As root,
/// inside root maps to an unprivileged range, so root inside is nobody outside.
fn write_id_maps(pid: u32) -> Result<(), Error> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    // SAFETY: as getuid.
    let gid = unsafe { libc::getgid() };
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let write = |file: &str, text: &str| {
        std::fs::write(proc.join(file), text).map_err(|source| Error::IdMap {
            what: format!("{file} ({})", text.trim()),
            source,
        })
    };
    if uid == 0 {
        write("uid_map", &format!("0 {ROOT_ID_BASE} {ROOT_ID_COUNT}\n"))?;
        write("gid_map", &format!("0 {ROOT_ID_BASE} {ROOT_ID_COUNT}\n"))
    } else {
        // An unprivileged process may map only its own IDs, and only after giving up
        // setgroups(2) in the namespace.
        write("setgroups", "deny")?;
        write("uid_map", &format!("0 {uid} 1\n"))?;
        write("gid_map", &format!("0 {gid} 1\n"))
    }
}

/// The highest capability number the running kernel knows (read once per process).
fn last_cap() -> u32 {
    static LAST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40)
    })
}

/// The capabilities this process holds (its permitted set), as a bit mask.
fn own_caps() -> u64 {
    let mut header = child::CapHeader {
        version: child::CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [child::CapData::default(); 2];
    // SAFETY: a valid v3 header and room for the two data structs capget(2) fills.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    u64::from(data[0].permitted) | u64::from(data[1].permitted) << 32
}

/// The kernel paths the host has (read once per process: the kernel does not change).
fn kernel_paths() -> &'static [KernelPath] {
    static PRESENT: std::sync::OnceLock<Vec<KernelPath>> = std::sync::OnceLock::new();
    PRESENT.get_or_init(KernelPath::present)
}

/// The compiled program of a filter (the default one compiled once per process).
fn filter(seccomp: Seccomp) -> Result<Option<Program>, Error> {
    static DEFAULT: std::sync::OnceLock<Option<Program>> = std::sync::OnceLock::new();
    match seccomp {
        Seccomp::Default => {
            if let Some(programs) = DEFAULT.get() {
                return Ok(programs.clone());
            }
            let programs = seccomp.compile()?;
            Ok(DEFAULT.get_or_init(|| programs).clone())
        }
        Seccomp::Off => Ok(seccomp.compile()?),
    }
}

/// Prepares everything the child needs, before the clone.
fn prepare(spec: &Spec, state: Option<&Path>, stdio: [i32; 3]) -> Result<Plan, Error> {
    let ns = spec.namespaces;
    let host = Host {
        rootfs: std::fs::canonicalize(&spec.rootfs)
            .map_err(sys(format!("resolve {}", spec.rootfs.display())))?,
        state: state.map(Path::to_path_buf),
        kernel_paths: kernel_paths().to_vec(),
    };
    let mounts = mounts::plan(spec, &host)?;

    let strings: Vec<CString> = spec
        .args
        .iter()
        .map(|a| cstring("an argument", a.as_str()))
        .chain(
            spec.env
                .iter()
                .map(|e| cstring("the environment", e.as_str())),
        )
        .collect::<Result<_, _>>()?;
    let pointers = |range: std::ops::Range<usize>| -> Vec<*const libc::c_char> {
        strings[range]
            .iter()
            .map(|s| s.as_ptr())
            .chain([std::ptr::null()])
            .collect()
    };
    let argv = pointers(0..spec.args.len());
    let envp = pointers(spec.args.len()..strings.len());
    let keep_caps = match spec.capabilities {
        Capabilities::Default => DEFAULT_CAPS.iter().fold(0u64, |m, c| m | 1 << c),
        Capabilities::All => own_caps(),
    };
    Ok(Plan {
        mounts,
        cgroup_namespace: ns.cgroup,
        hostname: ns
            .uts
            .then(|| cstring("the hostname", spec.hostname.as_str()))
            .transpose()?,
        loopback: ns.net,
        cwd: path_c(&spec.cwd)?,
        keep_caps,
        last_cap: last_cap(),
        program: cstring("the program", spec.args[0].as_str())?,
        argv,
        envp,
        strings,
        stdio,
        join_cgroup: Vec::new(),
        become_root: ns.user,
        seccomp: filter(spec.seccomp)?,
        request: None,
    })
}
