//! The child side of container creation: everything between clone(2) and execve(2).
//!
//! The child is cloned from a process that may run other threads, and it shares that
//! process's memory until it execs (`CLONE_VM`, as posix_spawn does, while the cloning
//! thread waits), so until then it may only make system calls: no allocation, no locks, no formatting. Everything it needs
//! (paths, mount arguments, argv, envp) is prepared by the parent as a [`Plan`] of C
//! strings before the clone, and the child walks that plan: the file system part of it is
//! the [`MountPlan`] of [`crate::mounts`], executed here one operation at a time; the last
//! steps are dropping privileges and installing the system call filter compiled by
//! [`crate::seccomp`]. It reports each phase and the first failure as a fixed-size
//! [`Message`] on a pipe that closes when exec succeeds.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::ptr;

use crate::mounts::{Mount, MountPlan, Op};
use crate::seccomp::{self, Program};

/// A step of the child's setup, as reported to the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    /// Waiting for the parent's go (ID maps written, cgroup attached).
    Go = 1,
    /// Becoming root of the new user namespace.
    Identity,
    /// unshare(2) of the cgroup namespace, now that the cgroup is joined.
    CgroupNamespace,
    /// Mount propagation made private ([`Op::Propagation`]).
    MakePrivate,
    /// One of the operations assembling the new root: [`Op::Mkdir`], [`Op::Touch`],
    /// [`Op::Mknod`], [`Op::Symlink`] or [`Op::Mount`].
    Mount,
    /// All mounts are in place (a phase).
    MountsDone,
    /// pivot_root into the new root and detach the old one ([`Op::PivotRoot`]).
    PivotRoot,
    /// Mount attributes set after the pivot ([`Op::SetAttr`]).
    SetAttr,
    /// Root switched and its attributes set (a phase).
    PivotDone,
    /// A kernel path masked or bound to be frozen ([`Op::Protect`]).
    Protect,
    /// Every kernel path protected (a phase; right after [`Step::PivotDone`] when none is).
    PathsMasked,
    /// sethostname.
    Hostname,
    /// Loopback brought up.
    Loopback,
    /// chdir to the working directory.
    Cwd,
    /// Standard streams set up.
    Stdio,
    /// no_new_privs and capabilities dropped.
    Privileges,
    /// Privileges dropped (a phase).
    PrivilegesDropped,
    /// The system call filter installed.
    Seccomp,
    /// execve.
    Exec,
    /// The child is running (a phase: its first action, before it waits for the go).
    Cloned,
    /// A pooled sandbox is built and waits for its program (a phase).
    Ready,
    /// A pooled sandbox received its program (or failed to).
    Request,
    /// The child joined its v1 cgroup by itself (a phase, `cgroup_attached`), or failed
    /// to.
    CgroupJoin,
}

impl Step {
    /// The step from its number.
    pub fn from_u32(n: u32) -> Option<Step> {
        use Step::*;
        [
            Go,
            Identity,
            CgroupNamespace,
            MakePrivate,
            Mount,
            MountsDone,
            PivotRoot,
            SetAttr,
            PivotDone,
            Protect,
            PathsMasked,
            Hostname,
            Loopback,
            Cwd,
            Stdio,
            Privileges,
            PrivilegesDropped,
            Seccomp,
            Exec,
            Cloned,
            Ready,
            Request,
            CgroupJoin,
        ]
        .into_iter()
        .find(|s| *s as u32 == n)
    }

    /// A name for errors and phases.
    pub fn name(self) -> &'static str {
        match self {
            Step::Go => "waiting for the parent",
            Step::Identity => "becoming root of the user namespace",
            Step::CgroupNamespace => "entering a cgroup namespace of its own",
            Step::MakePrivate => "making mount propagation private",
            Step::Mount => "mounting",
            Step::MountsDone => "mounts_done",
            Step::PivotRoot => "pivot_root",
            Step::SetAttr => "setting mount attributes",
            Step::PivotDone => "pivot_root_done",
            Step::Protect => "protecting kernel paths",
            Step::PathsMasked => "paths_masked",
            Step::Hostname => "setting the hostname",
            Step::Loopback => "bringing loopback up",
            Step::Cwd => "changing to the working directory",
            Step::Stdio => "setting up standard streams",
            Step::Privileges => "dropping privileges",
            Step::PrivilegesDropped => "privileges_dropped",
            Step::Seccomp => "installing the system call filter",
            Step::Exec => "exec",
            Step::Cloned => "cloned",
            Step::Ready => "ready",
            Step::Request => "receiving the program",
            Step::CgroupJoin => "cgroup_attached",
        }
    }
}

/// What the child tells the parent: a phase reached or a step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// The step.
    pub step: u32,
    /// 0 for a phase; the errno of a failure.
    pub errno: i32,
    /// For a failed operation of the [`MountPlan`], its index there.
    pub op: u32,
    /// CLOCK_MONOTONIC nanoseconds when it was written.
    pub stamp: u64,
}

/// Bytes in an encoded [`Message`].
pub const MESSAGE_LEN: usize = 20;

impl Message {
    /// Encodes without allocating.
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let mut b = [0u8; MESSAGE_LEN];
        b[0..4].copy_from_slice(&self.step.to_ne_bytes());
        b[4..8].copy_from_slice(&self.errno.to_ne_bytes());
        b[8..12].copy_from_slice(&self.op.to_ne_bytes());
        b[12..20].copy_from_slice(&self.stamp.to_ne_bytes());
        b
    }

    /// Decodes.
    pub fn decode(b: &[u8; MESSAGE_LEN]) -> Self {
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&b[12..20]);
        Message {
            step: u32_at(0),
            errno: i32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            op: u32_at(8),
            stamp: u64::from_ne_bytes(stamp),
        }
    }
}

/// Everything the child needs, prepared by the parent.
#[derive(Debug)]
pub struct Plan {
    /// Every file system operation, in order, pivot_root and what follows it included.
    pub mounts: MountPlan,
    /// unshare(2) a cgroup namespace after the go (the cgroup is joined by then).
    pub cgroup_namespace: bool,
    /// Hostname to set, with a UTS namespace.
    pub hostname: Option<CString>,
    /// Bring loopback up (with a network namespace).
    pub loopback: bool,
    /// Working directory inside.
    pub cwd: CString,
    /// Capabilities kept, as a bit mask.
    pub keep_caps: u64,
    /// The highest capability number the kernel knows.
    pub last_cap: u32,
    /// Program path, argv and envp (the pointer arrays end with null and point into
    /// `strings`, which must outlive them).
    pub program: CString,
    /// argv pointers, null-terminated.
    pub argv: Vec<*const libc::c_char>,
    /// envp pointers, null-terminated.
    pub envp: Vec<*const libc::c_char>,
    /// Owners of the argv and envp strings.
    #[expect(dead_code, reason = "owns the strings that argv and envp point into")]
    pub strings: Vec<CString>,
    /// Descriptors that become the child's 0, 1 and 2.
    pub stdio: [RawFd; 3],
    /// The `tasks` files of the v1 cgroup directories the child joins by itself after
    /// the go (by writing 0: see [`crate::cgroup::V1_JOIN_FILE`]), while it still has the
    /// parent's user ID outside.
    pub join_cgroup: Vec<CString>,
    /// Switch to uid and gid 0 of the new user namespace once its maps are written.
    pub become_root: bool,
    /// The system call filter's program, installed just before execve; none for no filter.
    pub seccomp: Option<Program>,
    /// For a pooled sandbox: the socket its program comes on (see [`REQUEST_MAX`]); the
    /// sandbox is built, says [`Step::Ready`] and waits there instead of exec'ing
    /// `program`.
    pub request: Option<RawFd>,
}

/// The longest request a pooled sandbox takes: one datagram of `argc` and `envc` (u32,
/// native order) then as many NUL-terminated strings, with the program's standard
/// input, output and error as its SCM_RIGHTS descriptors.
pub const REQUEST_MAX: usize = 32 * 1024;

/// The most arguments, and the most environment entries, a request may carry.
pub const REQUEST_STRINGS: usize = 256;

/// Message from a [`Step`]: phase or failure.
fn send(fd: RawFd, step: Step, errno: i32, op: u32) -> bool {
    // The host's one clock; reading it is async-signal-safe.
    let stamp = monotonic::now_ns();
    let bytes = Message {
        step: step as u32,
        errno,
        op,
        stamp,
    }
    .encode();
    // SAFETY: `bytes` is valid for its length; a short write to a pipe of 20 bytes cannot happen.
    let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    usize::try_from(written) == Ok(bytes.len())
}

/// The calling thread's errno (reading it neither allocates nor locks).
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Runs in the cloned child: never returns. `go` is read once; `status` reports.
///
/// # Safety
///
/// Must be called only in a child freshly created by clone(2) without `CLONE_VM`, before
/// any other code runs in it, with `plan` fully prepared by the parent and its pointer
/// arrays pointing into its own `strings`.
pub unsafe fn run(plan: &Plan, go: RawFd, go_write: RawFd, status: RawFd) -> ! {
    let fail = |step: Step, op: u32| -> ! {
        send(status, step, errno(), op);
        // SAFETY: ends the child at once without running the parent's exit handlers.
        unsafe { libc::_exit(127) }
    };
    let check = |rc: libc::c_int, step: Step| {
        if rc < 0 {
            fail(step, 0);
        }
    };

    // The child's copy of the go pipe's write end: closed, so that the parent dropping
    // its own unsaid (a failed admission) ends this child's wait instead of leaving it
    // waiting on itself, and the parent's clone with it.
    // SAFETY: closes a descriptor of this child's own table, which nothing here uses.
    unsafe { libc::close(go_write) };
    // If the parent dies (even by SIGKILL) the container dies with it.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    // The parent learns that the child runs (and its PID is known) from this message.
    if !send(status, Step::Cloned, 0, 0) {
        fail(Step::Go, 0);
    }
    let mut byte = 0u8;
    // SAFETY: `byte` is a valid one-byte buffer.
    if unsafe { libc::read(go, ptr::from_mut(&mut byte).cast(), 1) } != 1 {
        fail(Step::Go, 0);
    }
    if !plan.join_cgroup.is_empty() {
        for tasks in &plan.join_cgroup {
            if join(tasks) < 0 {
                fail(Step::CgroupJoin, 0);
            }
        }
        send(status, Step::CgroupJoin, 0, 0);
    }
    if plan.become_root {
        // The child still has the parent's IDs, which the new namespace may not map;
        // root of the namespace is what the maps made of it. Raw system calls: glibc's
        // wrappers would try to change the IDs of every thread the parent had, which
        // do not exist here, and wait for them forever.
        // SAFETY: set*id(2) with integer arguments only, for the calling thread.
        let gid = unsafe { libc::syscall(libc::SYS_setresgid, 0, 0, 0) };
        check(i32::try_from(gid).unwrap_or(-1), Step::Identity);
        // SAFETY: as above. setgroups is denied in namespaces made by unprivileged users,
        // where there are no supplementary groups to drop anyway.
        unsafe { libc::syscall(libc::SYS_setgroups, 0, ptr::null::<libc::gid_t>()) };
        // SAFETY: as above.
        let uid = unsafe { libc::syscall(libc::SYS_setresuid, 0, 0, 0) };
        check(i32::try_from(uid).unwrap_or(-1), Step::Identity);
    }
    if plan.cgroup_namespace {
        // The parent has moved this process into its cgroup before the go: that cgroup
        // becomes the namespace's root.
        // SAFETY: unshare with a flag argument only.
        check(
            unsafe { libc::unshare(libc::CLONE_NEWCGROUP) },
            Step::CgroupNamespace,
        );
    }
    let mut protecting = false;
    for (i, op) in plan.mounts.ops.iter().enumerate() {
        match op {
            Op::PivotRoot(_) => {
                send(status, Step::MountsDone, 0, 0);
            }
            Op::Protect(_) if !protecting => {
                protecting = true;
                send(status, Step::PivotDone, 0, 0);
            }
            _ => {}
        }
        if apply(op) < 0 {
            fail(step_of(op), u32::try_from(i).unwrap_or(u32::MAX));
        }
    }
    if !protecting {
        send(status, Step::PivotDone, 0, 0);
    }
    send(status, Step::PathsMasked, 0, 0);

    if let Some(name) = &plan.hostname {
        // SAFETY: `name` is valid for its length.
        check(
            unsafe { libc::sethostname(name.as_ptr(), name.as_bytes().len()) },
            Step::Hostname,
        );
    }
    if plan.loopback {
        check(loopback_up(), Step::Loopback);
    }
    // SAFETY: a valid C string path.
    check(unsafe { libc::chdir(plan.cwd.as_ptr()) }, Step::Cwd);

    for (target, &fd) in plan.stdio.iter().enumerate() {
        let target = i32::try_from(target).unwrap_or(0);
        if fd != target {
            // SAFETY: dup2 on descriptors the parent handed over; it clears close-on-exec.
            check(unsafe { libc::dup2(fd, target) }, Step::Stdio);
        }
    }
    // Nothing else the parent had open may reach the program.
    // SAFETY: close_range with CLOEXEC only marks descriptors; the status pipe is already
    // close-on-exec and must stay open until exec.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };

    check(
        drop_privileges(plan.keep_caps, plan.last_cap),
        Step::Privileges,
    );

    // Changing IDs and capabilities cleared the parent-death signal: arm it again, so the
    // program dies with the runtime even if the runtime is killed with SIGKILL.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    send(status, Step::PrivilegesDropped, 0, 0);

    // The filter last: everything above may use calls it refuses. It allows the write of
    // the last message and execve.
    if let Some(program) = &plan.seccomp {
        if seccomp::install(program) < 0 {
            fail(Step::Seccomp, 0);
        }
    }
    if let Some(request) = plan.request {
        if !send(status, Step::Ready, 0, 0) {
            // SAFETY: ends the child at once without running the parent's exit handlers.
            unsafe { libc::_exit(127) };
        }
        // SAFETY: `request` is the socket the parent handed over, open until exec.
        unsafe { run_request(request, status) }
    }
    // The last phase: execve is called now. (The pipe closing on success is read by a
    // parent that may be scheduled late, so its own stamp would be no measure.) A parent
    // that died before the signal was armed again no longer reads the pipe: then end here.
    if !send(status, Step::Exec, 0, 0) {
        // SAFETY: ends the child at once without running the parent's exit handlers.
        unsafe { libc::_exit(127) };
    }
    // SAFETY: program is a C string; argv and envp are null-terminated arrays of pointers
    // to C strings owned by `plan`.
    unsafe {
        libc::execve(
            plan.program.as_ptr(),
            plan.argv.as_ptr(),
            plan.envp.as_ptr(),
        )
    };
    fail(Step::Exec, 0)
}

/// A pooled sandbox's last act: waits for one request on `request`, makes its descriptors
/// the standard streams, and execs its program. System calls only, on buffers of this
/// stack.
///
/// # Safety
///
/// As [`run`]: the calling process is a container child that must end in execve or _exit.
unsafe fn run_request(request: RawFd, status: RawFd) -> ! {
    let fail = |errno: i32| -> ! {
        send(status, Step::Request, errno, 0);
        // SAFETY: ends the child at once without running the parent's exit handlers.
        unsafe { libc::_exit(127) }
    };
    let mut buf = [0u8; REQUEST_MAX];
    // Room for a header and three descriptors, aligned as cmsghdr wants.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr, filled in below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    let got = loop {
        // SAFETY: `msg` points at `iov` and `control`, valid for their lengths.
        let got = unsafe { libc::recvmsg(request, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if got >= 0 || errno() != libc::EINTR {
            break got;
        }
    };
    let Ok(len) = usize::try_from(got) else {
        fail(errno())
    };
    if len == 0 {
        // The pool is gone before asking: end quietly.
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(0) };
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        fail(libc::E2BIG);
    }
    // SAFETY: the control buffer was filled by recvmsg; the first header, if any, is in it.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: a non-null header from CMSG_FIRSTHDR lies within `control`.
    let fds = match unsafe { cmsg.as_ref() } {
        Some(c) if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_RIGHTS => {
            // SAFETY: the data of an SCM_RIGHTS header are descriptors, read unaligned.
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<[libc::c_int; 3]>();
            // SAFETY: three descriptors fit in `control` after the header (its length is
            // checked below).
            let fds = unsafe { data.read_unaligned() };
            // SAFETY: CMSG_LEN is arithmetic.
            let want = unsafe { libc::CMSG_LEN(3 * 4) } as usize;
            if c.cmsg_len != want {
                fail(libc::EINVAL);
            }
            fds
        }
        _ => fail(libc::EINVAL),
    };
    for (target, fd) in (0..).zip(fds) {
        // SAFETY: dup2 on descriptors just received.
        if unsafe { libc::dup2(fd, target) } < 0 {
            fail(errno());
        }
    }
    let data = &mut buf[..len];
    if data.len() < 8 {
        fail(libc::EINVAL);
    }
    let count = |at: usize| {
        let mut n = [0u8; 4];
        n.copy_from_slice(&data[at..at + 4]);
        u32::from_ne_bytes(n) as usize
    };
    let (argc, envc) = (count(0), count(4));
    if argc == 0 || argc > REQUEST_STRINGS || envc > REQUEST_STRINGS {
        fail(libc::E2BIG);
    }
    // The strings, each ending in NUL, must all be in the datagram, which must end there.
    let mut argv = [ptr::null::<libc::c_char>(); REQUEST_STRINGS + 1];
    let mut envp = [ptr::null::<libc::c_char>(); REQUEST_STRINGS + 1];
    let mut at = 8;
    for i in 0..argc + envc {
        let Some(end) = data[at..].iter().position(|b| *b == 0) else {
            fail(libc::EINVAL)
        };
        let start = data[at..].as_ptr().cast::<libc::c_char>();
        if i < argc {
            argv[i] = start;
        } else {
            envp[i - argc] = start;
        }
        at += end + 1;
    }
    if at != data.len() {
        fail(libc::EINVAL);
    }
    if !send(status, Step::Exec, 0, 0) {
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(127) };
    }
    // SAFETY: argv[0] is a C string in `buf`; argv and envp are null-terminated arrays of
    // pointers into `buf`, which lives until execve replaces this process.
    unsafe { libc::execve(argv[0], argv.as_ptr(), envp.as_ptr()) };
    fail(errno())
}

/// The step a failure of `op` is reported as.
fn step_of(op: &Op) -> Step {
    match op {
        Op::Propagation(_) => Step::MakePrivate,
        Op::Mkdir(_) | Op::Touch(_) | Op::Mknod { .. } | Op::Symlink { .. } | Op::Mount(_) => {
            Step::Mount
        }
        Op::PivotRoot(_) => Step::PivotRoot,
        Op::SetAttr { .. } => Step::SetAttr,
        Op::Protect(_) => Step::Protect,
    }
}

/// Moves the calling process (one thread) into the v1 cgroup whose `tasks` file is
/// `tasks`, by writing 0 to it; negative on failure, with errno set.
fn join(tasks: &CString) -> libc::c_int {
    // SAFETY: a valid C string path; the descriptor is closed below.
    let fd = unsafe { libc::open(tasks.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return fd;
    }
    // SAFETY: a one-byte buffer valid for the call.
    let written = unsafe { libc::write(fd, c"0".as_ptr().cast(), 1) };
    if written != 1 {
        // Left open (it closes at exec or exit) so that errno still holds the write's
        // error for the report.
        return -1;
    }
    // SAFETY: `fd` was opened above.
    unsafe { libc::close(fd) };
    0
}

/// mount(2) with the arguments of `m`.
fn mount(m: &Mount) -> libc::c_int {
    let opt = |c: &Option<CString>| c.as_ref().map_or(ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is null or a valid C string owned by `m`, as mount(2) requires.
    unsafe {
        libc::mount(
            opt(&m.source),
            m.target.as_ptr(),
            opt(&m.fstype),
            m.flags,
            opt(&m.data).cast(),
        )
    }
}

/// Performs one operation of the mount plan with system calls only; negative on failure,
/// with errno set by the call that failed.
fn apply(op: &Op) -> libc::c_int {
    match op {
        Op::Propagation(m) | Op::Mount(m) | Op::Protect(m) => mount(m),
        Op::SetAttr {
            path,
            set,
            recursive,
        } => set_attr(path, *set, *recursive),
        // SAFETY: a valid C string path.
        Op::Mkdir(path) => match unsafe { libc::mkdir(path.as_ptr(), 0o755) } {
            rc if rc < 0 && errno() == libc::EEXIST => 0,
            rc => rc,
        },
        Op::Touch(path) => {
            let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC;
            // SAFETY: a valid C string path; the descriptor is closed at once.
            let fd = unsafe { libc::open(path.as_ptr(), flags, 0o644) };
            if fd >= 0 {
                // SAFETY: `fd` was just opened by this process.
                unsafe { libc::close(fd) };
                0
            } else {
                fd
            }
        }
        Op::Mknod { path, major, minor } => {
            let dev = libc::makedev(*major, *minor);
            // SAFETY: a valid C string path.
            let rc = unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, dev) };
            if rc < 0 {
                return rc;
            }
            // mknod's mode passed through the umask; a device node opens for everyone.
            // SAFETY: a valid C string path.
            unsafe { libc::chmod(path.as_ptr(), 0o666) }
        }
        Op::Symlink { target, link } => {
            // SAFETY: two valid C strings.
            match unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) } {
                rc if rc < 0 && errno() == libc::EEXIST => 0,
                rc => rc,
            }
        }
        Op::PivotRoot(new_root) => pivot_root(new_root),
    }
}

/// `struct mount_attr` of mount_setattr(2), its first version.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `AT_RECURSIVE`: mount_setattr(2) acts on every mount under the path too.
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// mount_setattr(2): sets the attributes `set` on the mount at `path` (and every mount
/// under it when `recursive`), leaving the others as they are.
fn set_attr(path: &CString, set: u64, recursive: bool) -> libc::c_int {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: a valid C string path and a `struct mount_attr` of the size passed, both
    // alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            std::ptr::from_ref(&attr),
            std::mem::size_of::<MountAttr>(),
        )
    };
    libc::c_int::try_from(rc).unwrap_or(-1)
}

/// Makes `new_root` the root: pivot_root(".", ".") stacks the old root under the new one;
/// detaching "." then removes the old root without needing a directory for it.
fn pivot_root(new_root: &CString) -> libc::c_int {
    // SAFETY: a valid C string path.
    if unsafe { libc::chdir(new_root.as_ptr()) } < 0 {
        return -1;
    }
    // SAFETY: two valid C strings.
    let pivot = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
    if i32::try_from(pivot).unwrap_or(-1) < 0 {
        return -1;
    }
    // SAFETY: a valid C string path.
    if unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } < 0 {
        return -1;
    }
    // SAFETY: a valid C string path.
    unsafe { libc::chdir(c"/".as_ptr()) }
}

/// Sets the loopback interface up with SIOCSIFFLAGS (no netlink needed for one flag).
fn loopback_up() -> libc::c_int {
    // SAFETY: socket(2) with constant arguments.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return -1;
    }
    // SAFETY: ifreq is plain data; all-zero is a valid empty request.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = libc::c_char::try_from(*src).unwrap_or(0);
    }
    // SAFETY: `req` is a valid ifreq naming an interface; the kernel fills the flags.
    let mut rc = unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) };
    if rc == 0 {
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::c_short::try_from(libc::IFF_UP).unwrap_or(1);
        // SAFETY: as above, now setting the flags.
        rc = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &mut req) };
    }
    if rc == 0 {
        // SAFETY: `sock` was opened above. On failure it is left open (it closes at exec
        // or exit) so that errno still holds the ioctl's error for the report.
        unsafe { libc::close(sock) };
    }
    rc
}

/// Linux capability ABI version 3 (64-bit sets as two 32-bit halves).
pub const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct` of capget(2) and capset(2).
#[repr(C)]
pub struct CapHeader {
    /// The ABI version.
    pub version: u32,
    /// The process (0: the caller).
    pub pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: 32 capabilities of each set.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct CapData {
    /// Effective.
    pub effective: u32,
    /// Permitted.
    pub permitted: u32,
    /// Inheritable.
    pub inheritable: u32,
}

/// Sets no_new_privs, clears ambient capabilities, drops every capability outside `keep`
/// from the bounding set, and limits the effective, permitted and inheritable sets to `keep`.
fn drop_privileges(keep: u64, last_cap: u32) -> libc::c_int {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return -1;
    }
    // SAFETY: prctl with integer arguments only; fails harmlessly on kernels without ambient sets.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    for cap in 0..=last_cap.min(63) {
        if keep & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } < 0
            {
                return -1;
            }
        }
    }
    let low = u32::try_from(keep & 0xffff_ffff).unwrap_or(0);
    let high = u32::try_from(keep >> 32).unwrap_or(0);
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: low,
            permitted: low,
            inheritable: low,
        },
        CapData {
            effective: high,
            permitted: high,
            inheritable: high,
        },
    ];
    // SAFETY: a valid v3 header and two data structs, as capset(2) expects.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    i32::try_from(rc).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = Message {
            step: Step::Mount as u32,
            errno: libc::EPERM,
            op: 3,
            stamp: 123_456_789,
        };
        assert_eq!(Message::decode(&m.encode()), m);
    }

    #[test]
    fn steps_round_trip() {
        for n in 1..=23 {
            let step = Step::from_u32(n).unwrap();
            assert_eq!(step as u32, n);
            assert!(!step.name().is_empty());
        }
        assert_eq!(Step::from_u32(0), None);
        assert_eq!(Step::from_u32(24), None);
    }
}
