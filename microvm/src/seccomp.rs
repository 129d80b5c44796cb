//! The monitor's own system call filter: once a guest runs, every thread of the monitor
//! may make only the calls running a guest needs, and `ioctl` only with the requests the
//! run loop and its devices use. A guest that found a flaw in the monitor's device code
//! could then reach only these calls of the host kernel, not the several hundred a process
//! has without a filter.
//!
//! The monitor's binary turns the filter on for its process ([`enforce`]); a program
//! that uses this crate as a library (the tests) runs guests without it unless it does
//! the same.
//!
//! It is an allow-list (the opposite of a container's deny-list, which must let an
//! arbitrary program run): a call outside it raises `SIGSYS`, whose handler writes the
//! call's number to standard error and ends the monitor with [`VIOLATION_EXIT`]. Each
//! thread installs the filter itself ([`Filter::apply`]) once it has done what needs more
//! (opening files, creating the VM, starting threads), so no call outside the list is
//! allowed for the setup's sake after the guest's first instruction.
//!
//! The list was taken from what the monitor calls while guests run (`strace -f` over
//! every micro guest, with and without `--hold`, at a timeout, and Linux guests in the
//! rig), then read against the code paths that run rarely: errors, diagnosis at a
//! timeout, teardown.

use std::sync::{Once, OnceLock};

mod rules;
pub use rules::{compile, Allowed, Error as CompileError, Only, ALLOWED};

/// The program [`compile`] made of [`ALLOWED`] at build time (`build.rs`).
mod built {
    include!(concat!(env!("OUT_DIR"), "/monitor_filter.rs"));
}

/// The exit status of a monitor stopped by its filter (128 + SIGSYS, as a shell reports a
/// process killed by that signal).
pub const VIOLATION_EXIT: i32 = 128 + libc::SIGSYS;

/// Errors installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused the filter.
    #[error("cannot install the monitor's system call filter")]
    Install(#[source] seccompiler::Error),
}

/// The compiled filter, shared by the monitor's threads: the program built into the
/// binary, not a copy of it.
#[derive(Debug, Clone, Copy)]
pub struct Filter {
    program: &'static [seccompiler::sock_filter],
}

impl Filter {
    /// The filter compiled from [`ALLOWED`] when this crate was built (`build.rs`);
    /// every other call raises `SIGSYS`.
    pub fn built() -> Self {
        Filter {
            program: &built::PROGRAM,
        }
    }

    /// Installs the filter on the calling thread (after `no_new_privs`, which seccompiler
    /// sets), with the handler that names a refused call.
    pub fn apply(&self) -> Result<(), Error> {
        install_violation_handler();
        seccompiler::apply_filter(self.program).map_err(Error::Install)
    }
}

/// The filter this process's guest threads run under, once [`enforce`] has set one.
static ENFORCED: OnceLock<Filter> = OnceLock::new();

/// Has every guest this process runs from now on run under `filter`: each thread that
/// runs or serves a guest installs it once its setup is done ([`on_guest_thread`],
/// [`on_guest_threads`]). Returns `false` when a filter was already set (it stays).
pub fn enforce(filter: Filter) -> bool {
    ENFORCED.set(filter).is_ok()
}

/// Whether [`enforce`] has set a filter for this process.
pub fn enforced() -> bool {
    ENFORCED.get().is_some()
}

/// Installs the enforced filter, if any, on the calling thread: called by each thread
/// that runs a vCPU or serves a device, once it is about to run the guest.
pub fn on_guest_thread() -> Result<(), Error> {
    match ENFORCED.get() {
        Some(filter) => filter.apply(),
        None => Ok(()),
    }
}

/// Installs the enforced filter, if any, on every thread of the process at once (the
/// kernel's thread synchronisation): for a monitor whose helper threads are already
/// started and are not running guest code yet.
pub fn on_guest_threads() -> Result<(), Error> {
    match ENFORCED.get() {
        Some(filter) => {
            install_violation_handler();
            seccompiler::apply_filter_all_threads(filter.program).map_err(Error::Install)
        }
        None => Ok(()),
    }
}

/// The offset of `si_syscall` in the kernel's `siginfo_t` for `SIGSYS` on 64-bit
/// architectures: after `si_signo`, `si_errno`, `si_code` (3 × 4 bytes), padding to 16,
/// and `si_call_addr` (8 bytes).
const SI_SYSCALL_OFFSET: usize = 24;

extern "C" fn on_violation(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t (128 bytes) for SIGSYS raised by
    // seccomp, so an offset inside it stays inside the same object.
    let field = unsafe { info.cast::<u8>().add(SI_SYSCALL_OFFSET) };
    // SAFETY: `si_syscall` is an int at that offset of the kernel's siginfo_t;
    // read_unaligned needs no alignment.
    let number = unsafe { std::ptr::read_unaligned(field.cast::<i32>()) };
    // Formatting without allocation: only write(2) and _exit(2) are async-signal-safe here.
    const PREFIX: &[u8] = b"vcbench-vmm: the monitor's system call filter refused system call ";
    let mut message = [0u8; PREFIX.len() + 12];
    message[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = number.unsigned_abs();
    let mut len = 0;
    while len == 0 || (n > 0 && len < digits.len()) {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
    }
    let mut end = PREFIX.len();
    for digit in digits[..len].iter().rev() {
        message[end] = *digit;
        end += 1;
    }
    message[end] = b'\n';
    // SAFETY: `message` is valid for `end + 1` bytes; write is async-signal-safe and
    // allowed by the filter.
    unsafe { libc::write(libc::STDERR_FILENO, message.as_ptr().cast(), end + 1) };
    // SAFETY: _exit is async-signal-safe and allowed (exit_group).
    unsafe { libc::_exit(VIOLATION_EXIT) };
}

fn install_violation_handler() {
    static HANDLER: Once = Once::new();
    HANDLER.call_once(|| {
        // SAFETY: sigaction is plain data; all-zero is an empty action.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_violation as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        // SAFETY: the handler only reads its siginfo, writes to stderr and exits, which is
        // async-signal-safe; installing it replaces the default action (a core dump).
        unsafe { libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) };
    });
}

#[cfg(test)]
mod tests {
    use seccompiler::{BpfProgram, SeccompAction};

    use super::rules::{KVM_GET_REGS, KVM_RUN};
    use super::*;

    #[test]
    fn every_allowed_call_is_listed_once_with_a_reason() {
        let mut numbers: Vec<_> = ALLOWED.iter().map(|a| a.number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), ALLOWED.len());
        assert!(ALLOWED.iter().all(|a| !a.why.is_empty()));
    }

    #[test]
    fn ioctl_is_limited_to_the_run_loops_requests() {
        let ioctl = ALLOWED.iter().find(|a| a.name == "ioctl").unwrap();
        let Only::OneOf { arg: 1, values } = ioctl.only else {
            panic!("ioctl must be limited by its request");
        };
        let requests = values();
        assert!(requests.contains(&KVM_RUN()));
        // KVM_RUN is _IO(0xAE, 0x80); KVM_GET_REGS _IOR(0xAE, 0x81, 144 bytes).
        assert_eq!(KVM_RUN(), 0xAE80);
        assert_eq!(KVM_GET_REGS(), 0x8090_AE81);
        assert!(ioctl.describe().contains("0xae80"));
    }

    #[test]
    fn the_built_filter_is_what_the_list_compiles_to() {
        let compiled = compile(std::env::consts::ARCH).unwrap();
        assert_eq!(Filter::built().program, compiled.as_slice());
        assert!(matches!(compile("sparc"), Err(CompileError::Arch(_))));
    }

    /// seccompiler's own program for the whole list, a row of every call: what the
    /// compiled filter must decide alike.
    fn whole_row() -> BpfProgram {
        use seccompiler::{SeccompFilter, TargetArch};
        let rules = ALLOWED
            .iter()
            .map(|allowed| (allowed.number, allowed.rules().unwrap()))
            .collect();
        let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
        BpfProgram::try_from(
            SeccompFilter::new(rules, SeccompAction::Trap, SeccompAction::Allow, arch).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn the_filter_decides_every_call_as_the_whole_list_does_and_is_shorter() {
        let compiled = Filter::built().program;
        let whole = whole_row();
        // Shorter than the whole row alone, let alone behind a search.
        assert!(
            compiled.len() < whole.len(),
            "{} against {}",
            compiled.len(),
            whole.len()
        );
        let mut arguments: Vec<u64> = vec![0, 1, 0x5401, u64::MAX];
        for allowed in &ALLOWED {
            if let Only::OneOf { values, .. } = allowed.only {
                for v in values() {
                    arguments.extend([v, v | 1 << 32, v + 1]);
                }
            }
        }
        for arch in [seccomp_search::AUDIT_ARCH_NATIVE, 0x4000_0003] {
            for nr in (0..600).chain((0..600).map(|n| n | 0x4000_0000)) {
                for &arg in &arguments {
                    let args = [arg, arg, arg, 0, 0, 0];
                    assert_eq!(
                        seccomp_search::run(compiled, arch, nr, args).map(|r| r.action),
                        seccomp_search::run(&whole, arch, nr, args).map(|r| r.action),
                        "arch {arch:#x}, call {nr}, arguments {arg:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_call_outside_the_list_is_refused_at_once_and_one_in_it_is_allowed() {
        let program = Filter::built().program;
        let native = seccomp_search::AUDIT_ARCH_NATIVE;
        let trap = u32::from(SeccompAction::Trap);
        let call = |nr: libc::c_long, args: [u64; 6]| {
            seccomp_search::run(program, native, u32::try_from(nr).unwrap(), args).unwrap()
        };
        let refused = call(libc::SYS_getppid, [0; 6]);
        assert_eq!(refused.action, trap);
        assert!(refused.steps <= 12, "{} instructions", refused.steps);
        assert_eq!(
            call(libc::SYS_write, [0; 6]).action,
            libc::SECCOMP_RET_ALLOW
        );
        let run = KVM_RUN();
        assert_eq!(
            call(libc::SYS_ioctl, [3, run, 0, 0, 0, 0]).action,
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(call(libc::SYS_ioctl, [3, 0x5401, 0, 0, 0, 0]).action, trap);
        for listed in ALLOWED.iter().filter(|a| matches!(a.only, Only::Any)) {
            assert_eq!(
                call(listed.number, [0; 6]).action,
                libc::SECCOMP_RET_ALLOW,
                "{}",
                listed.name
            );
        }
    }

    /// Installs the filter in a child process, which then makes an allowed call and one
    /// outside the list: the second must end it with the violation status, naming the call.
    #[test]
    fn a_call_outside_the_list_stops_the_thread_with_its_number() {
        let filter = Filter::built();
        let mut pipe = [0; 2];
        // SAFETY: `pipe` is a valid array of two descriptors.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: the child only makes async-signal-safe calls (dup2, prctl/seccomp
        // through apply, write, getppid) before it exits; the test harness's threads are
        // not touched in the child.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: both descriptors are open; stderr now goes to the pipe.
            unsafe { libc::dup2(pipe[1], libc::STDERR_FILENO) };
            if filter.apply().is_err() {
                // SAFETY: _exit is always safe.
                unsafe { libc::_exit(1) };
            }
            // Allowed: write. Not allowed: getppid.
            // SAFETY: the buffer is valid for 3 bytes.
            unsafe { libc::write(libc::STDERR_FILENO, b"ok\n".as_ptr().cast(), 3) };
            // SAFETY: getppid has no preconditions; the filter stops the process here.
            unsafe { libc::getppid() };
            // SAFETY: _exit is always safe.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: the write end belongs to the child now.
        unsafe { libc::close(pipe[1]) };
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        let mut out = [0u8; 256];
        // SAFETY: `out` is valid for its length.
        let n = unsafe { libc::read(pipe[0], out.as_mut_ptr().cast(), out.len()) };
        // SAFETY: the read end is ours.
        unsafe { libc::close(pipe[0]) };
        let text = String::from_utf8_lossy(&out[..usize::try_from(n).unwrap_or(0)]).into_owned();
        assert!(libc::WIFEXITED(status), "{text}");
        assert_eq!(libc::WEXITSTATUS(status), VIOLATION_EXIT, "{text}");
        assert!(
            text.contains(&format!("refused system call {}\n", libc::SYS_getppid)),
            "{text}"
        );
        assert!(text.starts_with("ok\n"), "{text}");
    }
}
