//! A handle on a child process: an exact wait with a deadline (through a pidfd), and
//! reaping with wait4(2) for the exit status and resource usage.
//!
//! The PID stays ours until the child is reaped, so signalling it (or its process group)
//! before then can never reach an unrelated process; after reaping, the handle refuses.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// clone(2) without `CLONE_VM`, like fork(2) but with namespace `flags`: returns 0 in the
/// child and the child's PID in the parent. The raw system call skips the C library's
/// fork handlers, so the child must confine itself to system calls until it execs or exits.
///
/// # Safety
///
/// In the child (return value 0) only async-signal-safe operations are allowed: no
/// allocation, no locks, no C library wrappers that act on all threads; it must end in
/// execve(2) or _exit(2).
pub unsafe fn clone_fork(flags: libc::c_int) -> std::io::Result<u32> {
    // SAFETY: clone without CLONE_VM and with a null stack behaves like fork; the caller
    // upholds the child's restrictions.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_ulong::try_from(flags | libc::SIGCHLD).unwrap_or(0),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            0,
        )
    };
    u32::try_from(pid).map_err(|_| std::io::Error::last_os_error())
}

/// Bytes of the stack a [`clone_vfork`] child runs on (untouched pages cost nothing).
const CHILD_STACK: usize = 1 << 20;

/// What the child of [`clone_vfork`] runs first: it resets every signal handler to its
/// default (a handler of the parent must not run on memory the parent shares), restores
/// the signal mask the parent had, then runs the caller's code.
struct Trampoline<'a> {
    child: &'a mut dyn FnMut() -> libc::c_int,
    mask: libc::sigset_t,
}

extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Trampoline` that `clone_vfork` passed, alive on the suspended
    // parent's stack until this child execs or exits.
    let t = unsafe { &mut *arg.cast::<Trampoline<'_>>() };
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `old` is a valid out-pointer; querying has no other effect.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above; a signal number the C library keeps for itself fails harmlessly.
        if unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) } != 0 {
            continue;
        }
        if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
            // SAFETY: all-zero is a valid sigaction: SIG_DFL, no flags, an empty mask.
            let default: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: a valid sigaction for a signal that has a handler.
            unsafe { libc::sigaction(signal, &default, std::ptr::null_mut()) };
        }
    }
    // SAFETY: a valid mask; only the calling (child) thread's mask changes.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &t.mask, std::ptr::null_mut()) };
    (t.child)()
}

/// Anonymous memory for a child's stack, unmapped on drop.
struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

impl Stack {
    fn new(len: usize) -> std::io::Result<Self> {
        // SAFETY: a fresh private anonymous mapping; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // The lowest page stays unusable, so an overflow faults instead of writing below.
        // SAFETY: the first page of the mapping just made.
        if unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The initial stack pointer: the top of the mapping, 16-byte aligned.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, which the stack grows down from.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made by `new`; the child that used it has exec'ed or exited
        // (`clone_vfork` returns only then).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// clone(2) with `CLONE_VM | CLONE_VFORK` and namespace `flags`, as posix_spawn does it:
/// no copy of this process's memory (whose size would otherwise be paid twice, at the
/// clone and again at the child's exec). `child` runs in the new process on a stack of its
/// own, sharing this process's memory, while the calling thread waits in the kernel until
/// the child execs or exits; returns the child's PID. The kernel stores that PID in
/// `pid_slot` before the child runs, so another thread of this process can act on the
/// child (write its ID maps, move it into a cgroup) while the caller waits.
///
/// Signals are blocked in the calling thread across the call; the child resets every
/// handler to its default, then restores the mask, so no handler of this process runs
/// in the child.
///
/// # Safety
///
/// `child` runs in a process that shares this one's memory, on the suspended calling
/// thread's thread-local storage: only async-signal-safe system calls on data prepared
/// beforehand (no allocation, no locks, no C library call that acts on all threads); it
/// must end in execve(2) or _exit(2) and never return.
pub unsafe fn clone_vfork(
    flags: libc::c_int,
    pid_slot: &std::sync::atomic::AtomicI32,
    child: &mut dyn FnMut() -> libc::c_int,
) -> std::io::Result<u32> {
    // SAFETY: the caller upholds the child's restrictions.
    unsafe { vfork_with(flags, None, pid_slot, child) }
}

/// [`clone_vfork`] that starts the child in the cgroup v2 directory open as `cgroup`
/// (clone3(2) with `CLONE_INTO_CGROUP`, Linux 5.7): the child is a member from its first
/// instruction, and nobody writes its PID to `cgroup.procs`, a write that takes the
/// cgroup core's global lock for writing, whose writer may wait for an RCU grace period.
/// A kernel (or a filter around this process) without clone3 fails with `ENOSYS`: then
/// [`clone_vfork`] and a write to `cgroup.procs` do the same.
///
/// # Safety
///
/// As [`clone_vfork`].
pub unsafe fn clone_vfork_into(
    flags: libc::c_int,
    cgroup: BorrowedFd<'_>,
    pid_slot: &std::sync::atomic::AtomicI32,
    child: &mut dyn FnMut() -> libc::c_int,
) -> std::io::Result<u32> {
    // SAFETY: the caller upholds the child's restrictions.
    unsafe { vfork_with(flags, Some(cgroup), pid_slot, child) }
}

/// The one body of [`clone_vfork`] and [`clone_vfork_into`]: clone(2) through the C
/// library without a cgroup, clone3(2) with one.
///
/// # Safety
///
/// As [`clone_vfork`].
unsafe fn vfork_with(
    flags: libc::c_int,
    cgroup: Option<BorrowedFd<'_>>,
    pid_slot: &std::sync::atomic::AtomicI32,
    child: &mut dyn FnMut() -> libc::c_int,
) -> std::io::Result<u32> {
    let stack = Stack::new(CHILD_STACK)?;
    // SAFETY: all-zero is a valid (empty) signal set, filled below.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid set to fill.
    unsafe { libc::sigfillset(&mut all) };
    let mut trampoline_arg = Trampoline {
        child,
        // SAFETY: all-zero is a valid signal set, overwritten below.
        mask: unsafe { std::mem::zeroed() },
    };
    // SAFETY: valid sets; only the calling thread's mask changes (restored below).
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut trampoline_arg.mask) };
    let clone_flags = flags | libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PARENT_SETTID;
    let arg = std::ptr::from_mut(&mut trampoline_arg).cast::<libc::c_void>();
    let pid = match cgroup {
        // SAFETY: the child runs `trampoline` on its own stack (the top of a mapping that
        // outlives it, since CLONE_VFORK returns only once the child has exec'ed or
        // exited), with `trampoline_arg`, alive on this suspended thread's stack; the
        // caller upholds the child's restrictions. The kernel writes the PID into
        // `pid_slot`, a valid pid_t.
        None => libc::c_long::from(unsafe {
            libc::clone(
                trampoline,
                stack.top(),
                clone_flags | libc::SIGCHLD,
                arg,
                pid_slot.as_ptr(),
            )
        }),
        Some(cgroup) => {
            let args = CloneArgs {
                flags: u64::from(clone_flags.cast_unsigned()) | CLONE_INTO_CGROUP,
                pidfd: 0,
                child_tid: 0,
                parent_tid: pid_slot.as_ptr() as u64,
                exit_signal: u64::try_from(libc::SIGCHLD).unwrap_or(17),
                stack: stack.base as u64,
                stack_size: stack.len as u64,
                tls: 0,
                set_tid: 0,
                set_tid_size: 0,
                cgroup: u64::try_from(cgroup.as_raw_fd()).unwrap_or(u64::MAX),
            };
            // SAFETY: as for clone above; `args` names that stack, the PID slot and an
            // open cgroup directory, and lives across the call.
            unsafe { clone3(&args, trampoline, arg) }
        }
    };
    let error = std::io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe {
        libc::pthread_sigmask(
            libc::SIG_SETMASK,
            &trampoline_arg.mask,
            std::ptr::null_mut(),
        )
    };
    drop(stack);
    match u32::try_from(pid) {
        Ok(pid) => Ok(pid),
        Err(_) if cgroup.is_some() => Err(std::io::Error::from_raw_os_error(
            i32::try_from(-pid).unwrap_or(libc::EINVAL),
        )),
        Err(_) => Err(error),
    }
}

/// `CLONE_INTO_CGROUP` of clone3(2): `clone_args.cgroup` is the child's cgroup.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of clone3(2), its second version (up to `cgroup`).
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
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3(2) with a function for the child, which the C library does not offer: the
/// kernel starts the child at the instruction after the system call with the stack
/// pointer at the top of `args`' stack, so the child's path is written in assembly: it
/// calls `run(arg)` there and exits with what it returns. Returns what the kernel
/// returned to the parent: the child's PID or a negated errno.
///
/// # Safety
///
/// `args` must name a stack the child may use (`stack` + `stack_size`, 16-byte aligned
/// at the top) and valid addresses for whatever its flags ask the kernel to write;
/// `run` must be safe to call with `arg` in the child, on that stack.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3(
    args: &CloneArgs,
    run: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> libc::c_long {
    let ret: libc::c_long;
    // SAFETY: the parent's path is one system call that changes rax (the result), rcx and
    // r11, all declared. The child's path never returns into Rust: on the stack the kernel
    // gave it (whose top is 16-byte aligned, so `call` leaves it as the ABI wants at a
    // function's entry) it calls `run` with `arg` (r12 and r13 keep the parent's values
    // across the system call) and then exit(2)s, so nothing the compiler assumed about
    // registers or memory matters there.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "mov edi, eax",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const libc::SYS_exit,
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") std::ptr::from_ref(args),
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") run,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// Exit status as a shell reports it: the code, or 128 + signal.
    pub status: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// `ru_maxrss` from wait4, KiB.
    pub maxrss_kib: u64,
}

/// A child process of this process.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    reaped: Option<Reaped>,
}

impl Child {
    /// Takes charge of the child `pid`, which must be a child of this process that no one
    /// else waits for.
    pub fn new(pid: u32) -> Self {
        let pid = libc::pid_t::try_from(pid).unwrap_or(libc::pid_t::MAX);
        // SAFETY: pidfd_open takes a PID and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::c_long::from(pid), 0) };
        let pidfd = i32::try_from(fd).ok().filter(|fd| *fd >= 0).map(|fd| {
            // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
            unsafe { OwnedFd::from_raw_fd(fd) }
        });
        Child {
            pid,
            pidfd,
            reaped: None,
        }
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        u32::try_from(self.pid).unwrap_or(0)
    }

    /// How it ended, once reaped.
    pub fn reaped(&self) -> Option<Reaped> {
        self.reaped
    }

    /// Sends `signal` to the child (or, with `group`, to its process group) unless it has
    /// been reaped.
    pub fn signal(&self, signal: libc::c_int, group: bool) {
        if self.reaped.is_none() {
            let target = if group { -self.pid } else { self.pid };
            // SAFETY: kill has no memory effects; the PID is our unreaped child.
            unsafe { libc::kill(target, signal) };
        }
    }

    /// Waits until the child has exited (without reaping it) or `until` passes; true if
    /// it exited.
    pub fn exited_by(&self, until: Instant) -> bool {
        if self.reaped.is_some() {
            return true;
        }
        match &self.pidfd {
            Some(fd) => loop {
                let timeout = until.saturating_duration_since(Instant::now());
                let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
                let mut poll = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: `poll` points to one valid pollfd for the duration of the call.
                let n = unsafe { libc::poll(&mut poll, 1, ms) };
                if n >= 0 {
                    return n > 0;
                }
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    return false;
                }
            },
            None => loop {
                if self.has_exited() {
                    return true;
                }
                if Instant::now() >= until {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            },
        }
    }

    /// Whether the child has exited, without reaping it (waitid with WNOWAIT).
    fn has_exited(&self) -> bool {
        // SAFETY: siginfo_t is plain data, filled by waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let id = libc::id_t::try_from(self.pid).unwrap_or(0);
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: waitid with a valid out-pointer; P_PID names our own child.
        let rc = unsafe { libc::waitid(libc::P_PID, id, &mut info, flags) };
        // SAFETY: si_pid is valid to read after a successful waitid.
        rc == 0 && unsafe { info.si_pid() } != 0
    }

    /// Reaps the child, blocking until it exits; returns how it ended.
    pub fn reap(&mut self) -> std::io::Result<Reaped> {
        if let Some(r) = self.reaped {
            return Ok(r);
        }
        let mut status = 0;
        // SAFETY: rusage is plain data, filled by wait4.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: `status` and `usage` are valid out-pointers; the PID is our child.
            let rc = unsafe { libc::wait4(self.pid, &mut status, 0, &mut usage) };
            if rc >= 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let signal = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
        let reaped = Reaped {
            status: signal.map_or_else(|| libc::WEXITSTATUS(status), |s| 128 + s),
            signal,
            maxrss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        };
        self.reaped = Some(reaped);
        Ok(reaped)
    }
}

impl Drop for Child {
    /// A child dropped unreaped is killed and reaped, so no zombie or stray process stays.
    fn drop(&mut self) {
        if self.reaped.is_none() {
            self.signal(libc::SIGKILL, false);
            let _ = self.reap();
        }
    }
}

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The state letter (`R`, `S`, `Z` for a zombie, ...).
    pub state: char,
    /// The parent's PID.
    pub parent: u32,
    /// The process group.
    pub group: u32,
    /// When it started, in clock ticks since boot: with the PID, it names one process.
    pub start: u64,
}

impl Stat {
    /// Process `pid`'s, or `None` when there is no such process.
    pub fn of(pid: u32) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Parses the text of a `/proc/PID/stat`. The command name may hold spaces and
    /// parentheses, so the fields are counted from the last ')': field 3 (the state) is
    /// the first after it.
    pub fn parse(text: &str) -> Option<Self> {
        let mut fields = text.rsplit_once(')')?.1.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let parent = fields.next()?.parse().ok()?;
        let group = fields.next()?.parse().ok()?;
        // Field 22; the iterator is at field 6.
        let start = fields.nth(16)?.parse().ok()?;
        Some(Stat {
            state,
            parent,
            group,
            start,
        })
    }

    /// Whether it is still running: not a zombie waiting to be reaped, nor dead.
    pub fn running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    123456 8192 100 18446744073709551615";
        let stat = super::Stat::parse(text).unwrap();
        assert_eq!(
            stat,
            super::Stat {
                state: 'S',
                parent: 7,
                group: 42,
                start: 123_456
            }
        );
        assert!(stat.running());
        let me = super::Stat::of(std::process::id()).unwrap();
        assert!(me.running());
        assert_eq!(super::Stat::of(u32::MAX), None);
    }
    use super::*;

    #[expect(clippy::zombie_processes, reason = "the returned Child reaps it")]
    fn spawn(args: &[&str]) -> Child {
        let child = std::process::Command::new(args[0])
            .args(&args[1..])
            .spawn()
            .unwrap();
        Child::new(child.id())
    }

    #[test]
    fn exit_status_is_reaped() {
        let mut child = spawn(&["sh", "-c", "exit 7"]);
        assert!(child.exited_by(Instant::now() + Duration::from_secs(10)));
        let r = child.reap().unwrap();
        assert_eq!((r.status, r.signal), (7, None));
        assert_eq!(child.reaped(), Some(r));
    }

    #[test]
    fn a_deadline_passes_and_a_kill_is_reported() {
        let mut child = spawn(&["sleep", "10"]);
        assert!(!child.exited_by(Instant::now() + Duration::from_millis(50)));
        child.signal(libc::SIGKILL, false);
        let r = child.reap().unwrap();
        assert_eq!((r.status, r.signal), (137, Some(libc::SIGKILL)));
    }

    #[test]
    fn a_child_cloned_into_a_cgroup_starts_there() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI runs as root; this test needs root to make a cgroup"
            );
            eprintln!("skipped: making a cgroup needs root");
            return;
        }
        let layout = crate::cgroup::Layout::detect().unwrap();
        let Some(root) = layout.unified_mount() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "no cgroup v2 hierarchy is mounted"
            );
            eprintln!("skipped: no cgroup v2 hierarchy is mounted");
            return;
        };
        let name = format!("vcbench-clone-into-{}", std::process::id());
        let dir = root.join(&name);
        std::fs::create_dir(&dir).unwrap();
        let cgroup = std::fs::File::open(&dir).unwrap();
        let sleep = std::ffi::CString::new("/bin/sleep").unwrap();
        let ten = std::ffi::CString::new("10").unwrap();
        let argv = [sleep.as_ptr(), ten.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        let slot = std::sync::atomic::AtomicI32::new(0);
        let mut child = || -> libc::c_int {
            // SAFETY: C strings and null-terminated arrays prepared before the clone.
            unsafe { libc::execve(sleep.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            // SAFETY: ends the child at once when the exec failed.
            unsafe { libc::_exit(127) }
        };
        // SAFETY: the child only execs or exits, on data prepared above.
        let pid = unsafe { clone_vfork_into(0, cgroup.as_fd(), &slot, &mut child) }.unwrap();
        let mut child = Child::new(pid);
        assert_eq!(
            slot.load(std::sync::atomic::Ordering::SeqCst),
            i32::try_from(pid).unwrap()
        );
        let members = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        child.signal(libc::SIGKILL, false);
        child.reap().unwrap();
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(members.trim(), pid.to_string(), "the cgroup's members");
    }

    #[test]
    fn dropping_kills_and_reaps() {
        let child = spawn(&["sleep", "10"]);
        let pid = child.pid();
        drop(child);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
