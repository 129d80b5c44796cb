//! Escape attempts from inside a container, in every namespace combination the library
//! accepts: each must be refused, and harmlessly. Needs root (a skip with a reason
//! otherwise, a failure under CI=true).
//!
//! The program inside is this test binary itself, run again in the container (hard-linked
//! into a root file system with the shared libraries `ldd` names, so the attempts are
//! plain Rust over libc) with [`PROBE_ENV`] set: it makes every attempt of [`ATTEMPTS`] and
//! prints one line per attempt, which the test outside reads.
//!
//! Every attempt is harmless whatever its outcome: files are opened for writing and closed
//! without a byte written; device nodes are made in the container's own `/dev` and only
//! opened; mounts are made in the container's own mount namespace and unmounted; the
//! module image is garbage the kernel can never load; the clock calls carry an
//! out-of-range value that the kernel checks after the permission and refuses, so even a
//! permitted call changes nothing; the process trace is a PTRACE_SEIZE, which never stops
//! the traced process, from a child that exits at once (detaching); new namespaces are
//! made by children that exit at once.
//!
//! Each check is shown to catch a breach: the same attempts in a deliberately weakened
//! container (every capability, no system call filter, no kernel path protection, no
//! device list, and no namespace but the mount namespace) must all be permitted there,
//! but for those whose kernel feature this host lacks.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{prerequisites, run, self_rootfs};
use container::{Capabilities, Namespaces, Seccomp, Spec};

const T: Duration = Duration::from_secs(60);

/// Set inside the container: this binary then makes the attempts.
const PROBE_ENV: &str = "VCBENCH_ESCAPE_PROBE";
/// A block device of the host as `major:minor`, for the block device attempt.
const DISK_ENV: &str = "VCBENCH_ESCAPE_DISK";
/// A file that exists on the host only, for the host path attempt.
const MARKER_ENV: &str = "VCBENCH_ESCAPE_MARKER";
/// Options that mount one of the host's cgroup v1 hierarchies (or make a new one).
const CGROUP_ENV: &str = "VCBENCH_ESCAPE_CGROUP";
/// The prefix of an attempt's line on standard output.
const LINE: &str = "escape-attempt";

/// The tests start containers from a root file system holding this binary: one at a time,
/// so no other thread forks while a copy is open for writing (ETXTBSY).
static SERIAL: Mutex<()> = Mutex::new(());

// ----------------------------------------------------------------------------------------
// Inside the container.

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The sandbox refused it.
    Refused(String),
    /// It went through (or past every permission check, to a refusal of its harmless
    /// argument).
    Permitted(String),
    /// The kernel has no such thing: nothing to refuse.
    Absent(String),
}

impl Outcome {
    fn kind(&self) -> &'static str {
        match self {
            Outcome::Refused(_) => "refused",
            Outcome::Permitted(_) => "permitted",
            Outcome::Absent(_) => "absent",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Outcome::Refused(d) | Outcome::Permitted(d) | Outcome::Absent(d) => d,
        }
    }
}

/// What the attempts need to know of the host.
struct Facts {
    disk: (u32, u32),
    marker: String,
    cgroup: String,
}

/// One attempt: its name, what it tries, and when the host itself lacks what it needs
/// (then it may be absent in the weakened container too).
struct Attempt {
    name: &'static str,
    run: fn(&Facts) -> Outcome,
    host_lacks: fn() -> bool,
}

fn never() -> bool {
    false
}

const ATTEMPTS: [Attempt; 25] = [
    Attempt {
        name: "write-open /proc/sys/kernel/core_pattern",
        run: |_| open_for_writing("/proc/sys/kernel/core_pattern"),
        host_lacks: never,
    },
    Attempt {
        name: "write-open /proc/sys/vm/drop_caches",
        run: |_| open_for_writing("/proc/sys/vm/drop_caches"),
        host_lacks: never,
    },
    Attempt {
        name: "write-open /proc/sysrq-trigger",
        run: |_| open_for_writing("/proc/sysrq-trigger"),
        host_lacks: || !Path::new("/proc/sysrq-trigger").exists(),
    },
    Attempt {
        name: "read /proc/kcore",
        run: |_| read_kcore(),
        host_lacks: || !Path::new("/proc/kcore").exists(),
    },
    Attempt {
        name: "read /dev/mem (made with mknod 1:1)",
        run: |_| make_and_open("/dev/.probe-mem", libc::S_IFCHR, (1, 1)),
        host_lacks: never,
    },
    Attempt {
        name: "mknod a host block device and open it",
        run: |f| make_and_open("/dev/.probe-disk", libc::S_IFBLK, f.disk),
        host_lacks: never,
    },
    Attempt {
        name: "mknod /dev/kmsg (1:11) and open it",
        run: |_| make_and_open("/dev/.probe-kmsg", libc::S_IFCHR, (1, 11)),
        host_lacks: never,
    },
    Attempt {
        name: "mount proc",
        run: |_| mount_and_leave("proc", "proc", ""),
        host_lacks: never,
    },
    Attempt {
        name: "mount tmpfs",
        run: |_| mount_and_leave("tmpfs", "tmpfs", ""),
        host_lacks: never,
    },
    Attempt {
        name: "mount cgroup v1 and open its release_agent",
        run: |f| mount_and_leave("cgroup", "cgroup", &f.cgroup),
        host_lacks: never,
    },
    Attempt {
        name: "init_module of a garbage image",
        run: |_| init_module(),
        host_lacks: || !Path::new("/proc/modules").exists(),
    },
    Attempt {
        name: "settimeofday (an out-of-range time zone)",
        run: |_| set_time_zone(),
        host_lacks: never,
    },
    Attempt {
        name: "clock_settime (now, with an out-of-range nanosecond)",
        run: |_| clock_settime(),
        host_lacks: never,
    },
    Attempt {
        name: "raw socket",
        run: |_| raw_socket(),
        host_lacks: never,
    },
    Attempt {
        name: "host paths through /proc/PID/root",
        run: host_paths,
        host_lacks: never,
    },
    Attempt {
        name: "unshare(CLONE_NEWUSER)",
        run: |_| in_child(unshare_user),
        host_lacks: never,
    },
    Attempt {
        name: "clone(CLONE_NEWUSER)",
        run: |_| clone_user(),
        host_lacks: never,
    },
    Attempt {
        name: "clone3(CLONE_NEWUSER)",
        run: |_| clone3_user(),
        host_lacks: never,
    },
    Attempt {
        name: "open_by_handle_at of the root file system's root",
        run: |_| open_by_handle(),
        host_lacks: never,
    },
    Attempt {
        name: "keyctl",
        run: |_| keyctl(),
        host_lacks: never,
    },
    Attempt {
        name: "bpf(BPF_PROG_LOAD) of a trivial program",
        run: |_| bpf_load(),
        host_lacks: never,
    },
    Attempt {
        name: "perf_event_open",
        run: |_| perf_event_open(),
        host_lacks: never,
    },
    Attempt {
        name: "userfaultfd",
        run: |_| userfaultfd(),
        host_lacks: never,
    },
    Attempt {
        name: "ptrace the runtime (PTRACE_SEIZE of the parent)",
        run: |_| ptrace_parent(),
        host_lacks: never,
    },
    Attempt {
        name: "setns into the runtime's mount namespace",
        run: |_| setns_parent(),
        host_lacks: never,
    },
];

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `EPERM`, `EROFS`... for the reports.
fn name(errno: i32) -> String {
    let names = [
        (libc::EPERM, "EPERM"),
        (libc::EACCES, "EACCES"),
        (libc::EROFS, "EROFS"),
        (libc::ENOENT, "ENOENT"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENXIO, "ENXIO"),
        (libc::ENODEV, "ENODEV"),
        (libc::ESRCH, "ESRCH"),
        (libc::ESTALE, "ESTALE"),
        (libc::ENOKEY, "ENOKEY"),
        (libc::EBUSY, "EBUSY"),
        (libc::ENOEXEC, "ENOEXEC"),
        (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
    ];
    names
        .iter()
        .find(|(n, _)| *n == errno)
        .map_or_else(|| format!("errno {errno}"), |(_, s)| (*s).to_owned())
}

/// Refused for the permission errors, `Permitted` with `past` for any other.
fn judged(errno: i32, past: &str) -> Outcome {
    match errno {
        libc::EPERM | libc::EACCES | libc::EROFS => Outcome::Refused(name(errno)),
        e => Outcome::Permitted(format!("{past} ({})", name(e))),
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn close(fd: libc::c_long) {
    if let Ok(fd) = libc::c_int::try_from(fd) {
        // SAFETY: a descriptor this process just opened.
        unsafe { libc::close(fd) };
    }
}

/// Opens for writing and closes: nothing is written.
fn open_for_writing(path: &str) -> Outcome {
    let flags = libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(c(path).as_ptr(), flags) };
    if fd >= 0 {
        close(fd.into());
        return Outcome::Permitted("opened for writing (nothing written)".into());
    }
    match errno() {
        libc::ENOENT => Outcome::Absent("no such file".into()),
        e => judged(e, "opened"),
    }
}

fn read_kcore() -> Outcome {
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(c"/proc/kcore".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return match errno() {
            libc::ENOENT => Outcome::Absent("no /proc/kcore".into()),
            e => judged(e, "opened"),
        };
    }
    let mut buf = [0u8; 64];
    // SAFETY: `buf` is valid for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    close(fd.into());
    match n {
        0 => Outcome::Refused("masked: it reads as empty".into()),
        n if n > 0 => Outcome::Permitted(format!("read {n} bytes of the host's memory image")),
        _ => judged(errno(), "opened, then the read failed"),
    }
}

/// mknod of a device node in the container's /dev, then open for reading; removed after.
fn make_and_open(path: &str, kind: libc::mode_t, (major, minor): (u32, u32)) -> Outcome {
    let path = c(path);
    // SAFETY: a valid C string; the node may not exist.
    unsafe { libc::unlink(path.as_ptr()) };
    let dev = libc::makedev(major, minor);
    // SAFETY: a valid C string.
    if unsafe { libc::mknod(path.as_ptr(), kind | 0o600, dev) } < 0 {
        return judged(errno(), "mknod failed past the permission checks");
    }
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    let outcome = if fd >= 0 {
        close(fd.into());
        Outcome::Permitted(format!("made {major}:{minor} and opened it"))
    } else {
        match errno() {
            libc::EPERM | libc::EACCES => {
                Outcome::Refused(format!("made, but opening it: {}", name(errno())))
            }
            e => Outcome::Permitted(format!(
                "made {major}:{minor} and got past the permission checks to the driver ({})",
                name(e)
            )),
        }
    };
    // SAFETY: a valid C string.
    unsafe { libc::unlink(path.as_ptr()) };
    outcome
}

/// Mounts in a fresh directory of the container's /tmp, looks for a release agent, and
/// unmounts.
fn mount_and_leave(source: &str, fstype: &str, data: &str) -> Outcome {
    let dir = format!("/tmp/.probe-{fstype}");
    let _ = std::fs::create_dir(&dir);
    let target = c(&dir);
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let data = c(data);
    // SAFETY: valid C strings; the mount is in the container's own mount namespace.
    let rc = unsafe {
        libc::mount(
            c(source).as_ptr(),
            target.as_ptr(),
            c(fstype).as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc < 0 {
        let e = errno();
        let _ = std::fs::remove_dir(&dir);
        return match e {
            libc::ENODEV => Outcome::Absent(format!("no {fstype} file system")),
            e => judged(e, "mount failed past the permission checks"),
        };
    }
    let agent = format!("{dir}/release_agent");
    let mut what = format!("mounted {fstype}");
    if Path::new(&agent).exists() {
        what = match open_for_writing(&agent) {
            Outcome::Permitted(_) => format!("{what}; its release_agent opens for writing"),
            other => format!("{what}; its release_agent: {}", other.detail()),
        };
    }
    // SAFETY: a valid C string.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    let _ = std::fs::remove_dir(&dir);
    Outcome::Permitted(what)
}

fn init_module() -> Outcome {
    // Not an ELF file: the kernel can never load it.
    let garbage = [0x5au8; 64];
    // SAFETY: a buffer of the length passed and an empty C string of parameters.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            garbage.as_ptr(),
            garbage.len(),
            c"".as_ptr(),
        )
    };
    if rc == 0 {
        return Outcome::Permitted("loaded?!".into());
    }
    match errno() {
        libc::ENOSYS => Outcome::Absent("the kernel has no module support".into()),
        e => judged(e, "the kernel read the image and rejected it"),
    }
}

/// settimeofday(NULL, tz) with a zone 24 hours west: the kernel checks CAP_SYS_TIME before
/// the range, so a permitted call fails with EINVAL and changes nothing.
fn set_time_zone() -> Outcome {
    /// `struct timezone`.
    #[repr(C)]
    struct TimeZone {
        minutes_west: i32,
        dst_time: i32,
    }
    let tz = TimeZone {
        minutes_west: 24 * 60,
        dst_time: 0,
    };
    // SAFETY: a null time and a valid time zone.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_settimeofday,
            std::ptr::null::<libc::timeval>(),
            &tz,
        )
    };
    match rc {
        0 => Outcome::Permitted("the time zone was set?!".into()),
        _ => judged(errno(), "past the permission check to the range check"),
    }
}

/// clock_settime with the current second and an out-of-range nanosecond: the kernel
/// refuses the value before anything is set, so only the filter can say EPERM.
fn clock_settime() -> Outcome {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    now.tv_nsec = 1_000_000_000;
    // SAFETY: a valid timespec.
    let rc = unsafe { libc::syscall(libc::SYS_clock_settime, libc::CLOCK_REALTIME, &now) };
    match rc {
        0 => Outcome::Permitted("the clock was set?!".into()),
        _ => judged(errno(), "reached the kernel, which refused the value"),
    }
}

fn raw_socket() -> Outcome {
    let kind = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, kind, libc::IPPROTO_ICMP) };
    if fd >= 0 {
        close(fd.into());
        return Outcome::Permitted("a raw ICMP socket".into());
    }
    match errno() {
        libc::EAFNOSUPPORT => Outcome::Absent("no IPv4".into()),
        e => judged(e, "socket failed"),
    }
}

fn host_paths(facts: &Facts) -> Outcome {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    let pids: Vec<i32> = [1, parent].into_iter().filter(|p| *p > 0).collect();
    for pid in &pids {
        let path = format!("/proc/{pid}/root{}", facts.marker);
        if Path::new(&path).exists() {
            return Outcome::Permitted(format!("a host file is visible at {path}"));
        }
    }
    Outcome::Refused(format!(
        "the host's file is not visible through /proc/{pids:?}/root"
    ))
}

/// Runs `f` in a forked child and reports its errno (0: it succeeded).
fn in_child(f: fn() -> i32) -> Outcome {
    // SAFETY: the child only makes system calls and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = f();
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(code) };
    }
    if pid < 0 {
        return Outcome::Refused(format!("fork: {}", name(errno())));
    }
    match wait(pid) {
        0 => Outcome::Permitted("done".into()),
        e => judged(e, "failed"),
    }
}

fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: a valid out-pointer; `pid` is this process's child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    }
}

fn unshare_user() -> i32 {
    // SAFETY: unshare with a flag only, in a forked child that exits next.
    match unsafe { libc::unshare(libc::CLONE_NEWUSER) } {
        0 => 0,
        _ => errno(),
    }
}

/// A clone(2) or clone3(2) result: the child exits at once; the parent reports.
fn cloned(rc: libc::c_long) -> Outcome {
    match rc {
        0 => {
            // SAFETY: the new child (no CLONE_VM) ends at once.
            unsafe { libc::_exit(0) }
        }
        pid if pid > 0 => {
            wait(libc::pid_t::try_from(pid).unwrap_or(0));
            Outcome::Permitted("a child in a new user namespace".into())
        }
        _ => match errno() {
            libc::ENOSYS => Outcome::Refused("ENOSYS".into()),
            e => judged(e, "clone failed"),
        },
    }
}

fn clone_user() -> Outcome {
    let flags = libc::CLONE_NEWUSER | libc::SIGCHLD;
    // SAFETY: clone without CLONE_VM and with a null stack behaves like fork; the child
    // exits at once in `cloned`.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    cloned(rc)
}

fn clone3_user() -> Outcome {
    /// `struct clone_args` (linux/sched.h), its first version.
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
    }
    let args = CloneArgs {
        flags: libc::CLONE_NEWUSER as u64,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
    };
    // SAFETY: clone3 without CLONE_VM and without a stack behaves like fork; the child
    // exits at once in `cloned`.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, &args, std::mem::size_of::<CloneArgs>()) };
    cloned(rc)
}

fn open_by_handle() -> Outcome {
    /// `struct file_handle` with an ext4-style handle: inode 2 (a file system's root),
    /// generation 0 (unchecked).
    #[repr(C)]
    struct Handle {
        bytes: u32,
        kind: i32,
        inode: u32,
        generation: u32,
    }
    let handle = Handle {
        bytes: 8,
        kind: 1, // FILEID_INO32_GEN
        inode: 2,
        generation: 0,
    };
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: a valid C string.
    let root = unsafe { libc::open(c"/".as_ptr(), flags) };
    // SAFETY: a mount descriptor and a valid handle of the size it declares.
    let fd = unsafe { libc::syscall(libc::SYS_open_by_handle_at, root, &handle, flags) };
    let e = errno();
    close(root.into());
    if fd >= 0 {
        close(fd);
        return Outcome::Permitted(
            "opened the root directory of the disk under / by handle".into(),
        );
    }
    judged(e, "past the permission check")
}

fn keyctl() -> Outcome {
    // KEYCTL_GET_KEYRING_ID of the thread keyring, without creating it.
    // SAFETY: integer arguments only.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, 0, -1, 0) };
    match rc {
        r if r >= 0 => Outcome::Permitted("a keyring id".into()),
        _ => judged(errno(), "reached the keyrings"),
    }
}

fn bpf_load() -> Outcome {
    /// `r0 = 0; exit`: a socket filter that passes nothing.
    const PROGRAM: [u64; 2] = [0xb7, 0x95];
    #[repr(C)]
    struct Load {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
    }
    let mut attr = Load {
        prog_type: 1, // BPF_PROG_TYPE_SOCKET_FILTER
        insn_cnt: 2,
        insns: PROGRAM.as_ptr() as u64,
        license: c"GPL".as_ptr() as u64,
    };
    // SAFETY: a BPF_PROG_LOAD attribute prefix of the size passed, pointing to live data.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            5, // BPF_PROG_LOAD
            &mut attr,
            std::mem::size_of::<Load>(),
        )
    };
    if fd >= 0 {
        close(fd);
        return Outcome::Permitted("a program was loaded into the kernel".into());
    }
    judged(errno(), "the verifier refused it")
}

fn perf_event_open() -> Outcome {
    /// `struct perf_event_attr`, its first version (64 bytes).
    #[repr(C)]
    struct Attr {
        kind: u32,
        size: u32,
        config: u64,
        sample_period: u64,
        sample_type: u64,
        read_format: u64,
        flags: u64,
        wakeup_events: u32,
        bp_type: u32,
        bp_addr: u64,
    }
    let attr = Attr {
        kind: 1, // PERF_TYPE_SOFTWARE
        size: 64,
        config: 0, // PERF_COUNT_SW_CPU_CLOCK
        sample_period: 0,
        sample_type: 0,
        read_format: 0,
        flags: 1 | 1 << 5 | 1 << 6, // disabled, exclude_kernel, exclude_hv
        wakeup_events: 0,
        bp_type: 0,
        bp_addr: 0,
    };
    // SAFETY: a valid attribute; this process, any CPU, no group, close-on-exec.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, &attr, 0, -1, -1, 8) };
    if fd >= 0 {
        close(fd);
        return Outcome::Permitted("a performance counter".into());
    }
    match errno() {
        libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP => {
            Outcome::Absent(format!("no software events ({})", name(errno())))
        }
        e => judged(e, "perf_event_open failed"),
    }
}

fn userfaultfd() -> Outcome {
    // SAFETY: a flag argument only.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) };
    if fd >= 0 {
        close(fd);
        return Outcome::Permitted("a userfaultfd".into());
    }
    match errno() {
        libc::ENOSYS => Outcome::Absent("no userfaultfd".into()),
        e => judged(e, "userfaultfd failed"),
    }
}

fn ptrace_parent() -> Outcome {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    if parent == 0 {
        return Outcome::Refused("no process outside the container is visible".into());
    }
    // SAFETY: the child only makes system calls and _exits (which detaches).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let seize = libc::PTRACE_SEIZE;
        // SAFETY: PTRACE_SEIZE of a visible process: it is not stopped, and this child's
        // exit detaches it.
        let rc = unsafe { libc::ptrace(seize, parent, 0, 0) };
        let code = if rc == 0 { 0 } else { errno() };
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(code) };
    }
    match wait(pid) {
        0 => Outcome::Permitted(format!("seized the runtime (PID {parent}); not stopped")),
        libc::ESRCH => Outcome::Refused("ESRCH".into()),
        e => judged(e, "ptrace failed"),
    }
}

fn setns_parent() -> Outcome {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    if parent == 0 {
        return Outcome::Refused("no process outside the container is visible".into());
    }
    let path = c(&format!("/proc/{parent}/ns/mnt"));
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return judged(errno(), "open failed");
    }
    // Joined in a child that exits at once.
    // SAFETY: the child only makes system calls and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: setns with a descriptor this process holds.
        let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNS) };
        let code = if rc == 0 { 0 } else { errno() };
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(code) };
    }
    close(fd.into());
    match wait(pid) {
        0 => Outcome::Permitted("joined the runtime's mount namespace".into()),
        e => judged(e, "setns failed"),
    }
}

/// Inside: makes every attempt and prints one line each.
fn probe() {
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let disk = env(DISK_ENV);
    let (major, minor) = disk.split_once(':').unwrap_or(("7", "0"));
    let facts = Facts {
        disk: (major.parse().unwrap_or(7), minor.parse().unwrap_or(0)),
        marker: env(MARKER_ENV),
        cgroup: env(CGROUP_ENV),
    };
    for attempt in &ATTEMPTS {
        let outcome = (attempt.run)(&facts);
        println!(
            "{LINE}\t{}\t{}\t{}",
            attempt.name,
            outcome.kind(),
            outcome.detail()
        );
    }
}

// ----------------------------------------------------------------------------------------
// Outside.

/// A block device the host itself opens, `major:minor`: its root disk where it can (a host
/// may deny even root its disk, by a security module), else the first that opens; each
/// is tried through a node made in a temporary directory, opened read-only and closed.
fn host_block_device() -> String {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/").unwrap().dev();
    let mut candidates = vec![(libc::major(root), libc::minor(root))];
    for entry in std::fs::read_dir("/sys/dev/block").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((major, minor)) = name.split_once(':') {
            candidates.push((major.parse().unwrap(), minor.parse().unwrap()));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let node = c(&dir.path().join("node").to_string_lossy());
    for (major, minor) in candidates.into_iter().filter(|(major, _)| *major != 0) {
        // SAFETY: a valid C string; the node is removed below.
        let made = unsafe {
            libc::mknod(
                node.as_ptr(),
                libc::S_IFBLK | 0o600,
                libc::makedev(major, minor),
            )
        };
        if made != 0 {
            continue;
        }
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: a valid C string.
        let fd = unsafe { libc::open(node.as_ptr(), flags) };
        // SAFETY: a valid C string.
        unsafe { libc::unlink(node.as_ptr()) };
        if fd >= 0 {
            close(fd.into());
            return format!("{major}:{minor}");
        }
    }
    panic!("no block device opens on this host");
}

/// Mount options of one of the host's cgroup v1 hierarchies, or of a new named one.
fn cgroup_options() -> String {
    let layout = container::cgroup::Layout::detect().unwrap();
    layout
        .hierarchies
        .iter()
        .find(|h| !h.unified && !h.controllers.is_empty())
        .map_or_else(
            || "none,name=vcbench-escape".to_owned(),
            |h| h.controllers.join(","),
        )
}

/// The attempts' outcomes in a container of `spec`'s making, by attempt name.
fn outcomes(spec: &Spec) -> BTreeMap<String, Outcome> {
    let f = run(spec, T).unwrap();
    assert_eq!(f.status, 0, "the probe failed: {f:?}");
    common::assert_nothing_left(&f);
    let found: BTreeMap<String, Outcome> = f
        .stdout
        .lines()
        // The first line follows libtest's "test ... " on the same line.
        .filter_map(|l| l.split_once(LINE).map(|(_, rest)| rest))
        .map(|l| {
            let mut parts = l.trim_start_matches('\t').splitn(3, '\t');
            let name = parts.next().unwrap_or_default().to_owned();
            let kind = parts.next().unwrap_or_default();
            let detail = parts.next().unwrap_or_default().to_owned();
            let outcome = match kind {
                "refused" => Outcome::Refused(detail),
                "permitted" => Outcome::Permitted(detail),
                _ => Outcome::Absent(detail),
            };
            (name, outcome)
        })
        .collect();
    assert_eq!(found.len(), ATTEMPTS.len(), "{f:?}");
    found
}

/// What the probe needs to know of the host, found as root.
struct Host {
    /// A block device the host opens, `major:minor`.
    disk: String,
    /// Options mounting a cgroup v1 hierarchy.
    cgroup: String,
    /// A file only the host has.
    marker: PathBuf,
    /// Its directory, removed at the end.
    _dir: tempfile::TempDir,
}

impl Host {
    fn find() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("host-only");
        std::fs::write(&marker, "").unwrap();
        Host {
            disk: host_block_device(),
            cgroup: cgroup_options(),
            marker,
            _dir: dir,
        }
    }
}

/// A spec that runs the probe, with what it needs to know of the host.
fn probe_spec(rootfs: &Path, marker: &Path, disk: &str, cgroup: &str) -> Spec {
    let args = [
        "/probe",
        "--exact",
        "every_attempt_is_refused_in_every_namespace_combination",
        "--nocapture",
        "--test-threads=1",
    ];
    let mut spec = Spec::new(rootfs, args.iter().map(|a| (*a).to_owned()).collect());
    spec.env.extend([
        format!("{PROBE_ENV}=1"),
        format!("{DISK_ENV}={disk}"),
        format!("{MARKER_ENV}={}", marker.display()),
        format!("{CGROUP_ENV}={cgroup}"),
    ]);
    spec
}

/// Every combination of the namespaces the library lets switch (the mount namespace is
/// always on): 2^6.
fn every_combination() -> Vec<Namespaces> {
    (0..64u32)
        .map(|bits| {
            let on = |bit: u32| bits & (1 << bit) != 0;
            Namespaces {
                user: on(0),
                pid: on(1),
                net: on(2),
                uts: on(3),
                ipc: on(4),
                cgroup: on(5),
                mount: true,
            }
        })
        .collect()
}

#[test]
fn every_attempt_is_refused_in_every_namespace_combination() {
    if std::env::var_os(PROBE_ENV).is_some() {
        probe();
        return;
    }
    if !prerequisites() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rootfs = self_rootfs("probe");
    let host = Host::find();
    let started = Instant::now();
    let combinations = every_combination();
    let failures = matrix(&combinations, |namespaces| {
        let mut spec = probe_spec(rootfs.path(), &host.marker, &host.disk, &host.cgroup);
        spec.namespaces = namespaces;
        spec
    });
    println!(
        "{} attempts in each of {} namespace combinations: {:.1} s",
        ATTEMPTS.len(),
        combinations.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "escapes:\n{}", failures.join("\n"));
}

/// Runs the probe in a container of each namespace combination; returns every permitted
/// attempt, and prints how each attempt was refused across them.
fn matrix(combinations: &[Namespaces], spec: impl Fn(Namespaces) -> Spec) -> Vec<String> {
    let mut failures = Vec::new();
    let mut seen: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for namespaces in combinations {
        for (attempt, outcome) in outcomes(&spec(*namespaces)) {
            if let Outcome::Permitted(what) = &outcome {
                failures.push(format!("{:?}: {attempt}: {what}", namespaces.names()));
            }
            let how = format!("{} ({})", outcome.kind(), outcome.detail());
            seen.entry(attempt).or_default().insert(how);
        }
    }
    for (attempt, hows) in seen {
        let hows: Vec<String> = hows.into_iter().collect();
        println!("{attempt}: {}", hows.join("; "));
    }
    failures
}

/// Set in the copy of this binary that runs the rootless matrix as an unprivileged user:
/// the root file system, then the host facts, tab-separated.
const ROOTLESS_ENV: &str = "VCBENCH_ESCAPE_ROOTLESS";

#[test]
fn every_attempt_is_refused_rootless_in_every_namespace_combination() {
    if let Ok(args) = std::env::var(ROOTLESS_ENV) {
        // The unprivileged side: no cgroup (none is delegated), so no device list either;
        // the user namespace is always on.
        let parts: Vec<&str> = args.split('\t').collect();
        let [rootfs, marker, disk, cgroup] = parts[..] else {
            panic!("bad {ROOTLESS_ENV}: {args:?}");
        };
        let combinations: Vec<Namespaces> =
            every_combination().into_iter().filter(|n| n.user).collect();
        let failures = matrix(&combinations, |namespaces| {
            let mut spec = probe_spec(Path::new(rootfs), Path::new(marker), disk, cgroup);
            spec.namespaces = namespaces;
            spec.cgroup = false;
            spec
        });
        for failure in &failures {
            println!("rootless-escape\t{failure}");
        }
        println!("rootless-combinations {}", combinations.len());
        return;
    }
    if !prerequisites() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rootfs = self_rootfs("probe");
    let host = Host::find();
    let started = Instant::now();
    let args = [
        rootfs.path().to_string_lossy().into_owned(),
        host.marker.to_string_lossy().into_owned(),
        host.disk.clone(),
        host.cgroup.clone(),
    ];
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "every_attempt_is_refused_rootless_in_every_namespace_combination",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROOTLESS_ENV, args.join("\t"))
        .output()
        .expect("setpriv (util-linux) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let why = format!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    // How each attempt was refused, as the unprivileged side saw it.
    for line in text
        .lines()
        .filter(|l| !l.contains(LINE) && l.contains(": "))
    {
        println!("rootless: {line}");
    }
    assert!(out.status.success(), "{why}");
    assert!(text.contains("rootless-combinations 32"), "{why}");
    assert!(!text.contains("rootless-escape"), "{why}");
    println!(
        "{} attempts in each of 32 rootless namespace combinations: {:.1} s",
        ATTEMPTS.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn each_attempt_detects_a_breach_in_a_weakened_container() {
    if !prerequisites() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rootfs = self_rootfs("probe");
    let host = Host::find();

    // Every protection off, and the host's namespaces but the mount namespace.
    let mut spec = probe_spec(rootfs.path(), &host.marker, &host.disk, &host.cgroup);
    spec.namespaces = Namespaces {
        user: false,
        pid: false,
        mount: true,
        uts: false,
        ipc: false,
        net: false,
        cgroup: false,
    };
    spec.seccomp = Seccomp::Off;
    spec.capabilities = Capabilities::All;
    spec.protect_kernel_paths = false;
    spec.restrict_devices = false;
    let outcomes = outcomes(&spec);
    let mut undetected = Vec::new();
    for attempt in &ATTEMPTS {
        let outcome = &outcomes[attempt.name];
        let shown = match outcome {
            Outcome::Permitted(_) => true,
            Outcome::Absent(_) => (attempt.host_lacks)(),
            Outcome::Refused(_) => false,
        };
        println!(
            "weakened: {}: {} ({})",
            attempt.name,
            outcome.kind(),
            outcome.detail()
        );
        if !shown {
            undetected.push(format!("{}: {outcome:?}", attempt.name));
        }
    }
    assert!(
        undetected.is_empty(),
        "these attempts were not permitted even in the weakened container, so their \
         refusal proves nothing:\n{}",
        undetected.join("\n")
    );
}
