//! The system call filter a container's program runs under: the profile (which calls are
//! refused, when, and with which error), its compilation to classic BPF with seccompiler,
//! and nothing else. The child installs the compiled program as its last step before
//! execve(2), after no_new_privs.
//!
//! The default profile is a deny-list in the spirit of the OCI runtime's and Docker's
//! default profiles: every call is allowed except those that act on the host's kernel as
//! a whole (modules, kexec, reboot, swap, the clock, accounting, quotas, the kernel log,
//! keyrings), reach around the container's namespaces (mounts after setup, `setns`, file
//! handles, new user namespaces, `ptrace` and cross-process memory), or are an exploit's
//! favourite tools (`bpf`, `perf_event_open`, `userfaultfd`, `io_uring`, `kcmp`). Refused
//! calls fail with `EPERM`, as the kernel would refuse a call that lacks a capability;
//! `clone3` fails with `ENOSYS`, because its flags are behind a pointer the filter cannot
//! read, and `ENOSYS` makes the C library fall back to `clone`, whose flags it can.
//!
//! Calls of another ABI cannot slip past the native numbers: a call made through the
//! 32-bit x86 ABI (`int 0x80`) kills the process (seccompiler's architecture check), and
//! an x32 call (the `0x40000000` bit) fails with `ENOSYS`. So `vm86`, which only the 32-bit
//! ABI has, is refused with the rest of that ABI.
//!
//! With the kernel's seccomp action cache (Linux 5.11), a call that the filter allows
//! whatever its arguments (almost all of them) does not run the filter at all. To fill
//! that cache the kernel runs the filter on every call number when it is installed:
//! each compiled program starts with a binary search that allows a call it does not name
//! in a dozen instructions, instead of seccompiler's row of one comparison per call.
//!
//! seccompiler gives a program one action for the calls it names, so the profile compiles
//! to one program per error number, plus the x32 guard; they are joined into one
//! ([`seccomp_search::chain`]) and installed with one seccomp(2) call: each call is named
//! once, so the first program that refuses a call is the only one, and the joined
//! program answers as the separate ones would.

use std::collections::BTreeMap;

use seccomp_search::Found;
use seccompiler::{
    sock_filter, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Errors compiling a profile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// seccompiler does not support this machine's architecture.
    #[error("no system call filter can be built for this architecture ({0})")]
    Arch(&'static str),
    /// seccompiler refused a rule or the filter.
    #[error("cannot build the system call filter")]
    Build(#[source] seccompiler::BackendError),
    /// The joined program is longer than the kernel takes.
    #[error("the system call filter is longer than the kernel's 4096 instructions")]
    TooLong,
    /// One error number's calls are too many for the search in front of its program.
    #[error("the system call filter refuses too many calls ({0}) with one error number")]
    TooMany(usize),
    /// A filter's name is not one of [`Seccomp`]'s.
    #[error("no system call filter is called {0:?}: default or off")]
    Name(String),
}

/// Which system call filter a container runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seccomp {
    /// The default deny-list ([`Seccomp::rules`]).
    #[default]
    Default,
    /// No filter: every system call reaches the kernel (to measure what the filter costs).
    Off,
}

impl std::fmt::Display for Seccomp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Seccomp::Default => "default",
            Seccomp::Off => "off",
        })
    }
}

impl std::str::FromStr for Seccomp {
    type Err = Error;

    /// `default` or `off`, as [`Display`](std::fmt::Display) writes them.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "default" => Ok(Seccomp::Default),
            "off" => Ok(Seccomp::Off),
            other => Err(Error::Name(other.to_owned())),
        }
    }
}

impl Seccomp {
    /// The calls this profile refuses; every other call is allowed.
    pub fn rules(self) -> &'static [Rule] {
        match self {
            Seccomp::Default => &DEFAULT,
            Seccomp::Off => &[],
        }
    }

    /// The BPF program that enforces this profile, to be installed with seccomp(2); none
    /// for [`Seccomp::Off`].
    pub fn compile(self) -> Result<Option<Program>, Error> {
        compile(self.rules())
    }
}

/// When a rule refuses its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Whatever the arguments.
    Always,
    /// When argument `arg` (from 0) has every bit of `flags` set.
    FlagsSet {
        /// The argument.
        arg: u8,
        /// The bits.
        flags: u32,
    },
    /// When the low 32 bits of argument `arg` are none of `values`.
    NoneOf {
        /// The argument.
        arg: u8,
        /// The values that are allowed.
        values: &'static [u32],
    },
}

/// One refused system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Its name, as in syscalls(2).
    pub name: &'static str,
    /// Its number on this architecture.
    pub number: libc::c_long,
    /// When it is refused.
    pub when: When,
    /// The error it then fails with.
    pub errno: i32,
    /// What it would do that a container must not.
    pub why: &'static str,
}

impl Rule {
    /// One line for a report: the call, when it is refused, and the error.
    pub fn describe(&self) -> String {
        let errno = match self.errno {
            libc::EPERM => "EPERM".to_owned(),
            libc::ENOSYS => "ENOSYS".to_owned(),
            n => format!("errno {n}"),
        };
        let when = match self.when {
            When::Always => String::new(),
            When::FlagsSet { arg, flags } => format!(" when argument {arg} has {flags:#x} set"),
            When::NoneOf { arg, values } => {
                let values: Vec<String> = values.iter().map(|v| format!("{v:#x}")).collect();
                format!(" when argument {arg} is none of {}", values.join(", "))
            }
        };
        format!("{}{when}: {errno} ({})", self.name, self.why)
    }
}

/// One compiled filter: classic BPF instructions for seccomp(2).
pub type Program = Vec<sock_filter>;

const fn rule(name: &'static str, number: libc::c_long, why: &'static str) -> Rule {
    Rule {
        name,
        number,
        when: When::Always,
        errno: libc::EPERM,
        why,
    }
}

/// `CLONE_NEWUSER` as the filter compares it (the low 32 bits of the flags).
const NEWUSER: u32 = 0x1000_0000;

/// Execution domains personality(2) may set: Linux, 32-bit Linux, the 2.6-style uname
/// of UNAME26 (alone and with 32-bit), and the query value.
const PERSONALITIES: [u32; 5] = [0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// The default profile.
const DEFAULT: [Rule; 52] = [
    rule(
        "kexec_load",
        libc::SYS_kexec_load,
        "replaces the host's kernel",
    ),
    rule(
        "kexec_file_load",
        libc::SYS_kexec_file_load,
        "replaces the host's kernel",
    ),
    rule(
        "init_module",
        libc::SYS_init_module,
        "loads code into the host's kernel",
    ),
    rule(
        "finit_module",
        libc::SYS_finit_module,
        "loads code into the host's kernel",
    ),
    rule(
        "delete_module",
        libc::SYS_delete_module,
        "unloads a module from the host's kernel",
    ),
    rule("reboot", libc::SYS_reboot, "reboots or halts the host"),
    rule("swapon", libc::SYS_swapon, "changes the host's swap"),
    rule("swapoff", libc::SYS_swapoff, "changes the host's swap"),
    rule(
        "mount",
        libc::SYS_mount,
        "changes mounts (the container's are all made before the filter)",
    ),
    rule(
        "umount2",
        libc::SYS_umount2,
        "uncovers what the masks and read-only binds hide",
    ),
    rule("pivot_root", libc::SYS_pivot_root, "changes the root"),
    rule("fsopen", libc::SYS_fsopen, "the mount API"),
    rule("fsconfig", libc::SYS_fsconfig, "the mount API"),
    rule("fsmount", libc::SYS_fsmount, "the mount API"),
    rule("fspick", libc::SYS_fspick, "the mount API"),
    rule("move_mount", libc::SYS_move_mount, "the mount API"),
    rule("open_tree", libc::SYS_open_tree, "the mount API"),
    rule("mount_setattr", libc::SYS_mount_setattr, "the mount API"),
    rule(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        "opens any file of a file system by handle, around the container's root",
    ),
    rule(
        "name_to_handle_at",
        libc::SYS_name_to_handle_at,
        "makes the handles open_by_handle_at takes",
    ),
    rule(
        "bpf",
        libc::SYS_bpf,
        "loads programs into the host's kernel",
    ),
    rule(
        "perf_event_open",
        libc::SYS_perf_event_open,
        "the kernel's performance counters and tracing",
    ),
    rule(
        "userfaultfd",
        libc::SYS_userfaultfd,
        "holds the kernel in a page fault (an exploit's tool)",
    ),
    rule(
        "io_uring_setup",
        libc::SYS_io_uring_setup,
        "a second path to most calls, past this filter",
    ),
    rule(
        "io_uring_enter",
        libc::SYS_io_uring_enter,
        "a second path to most calls, past this filter",
    ),
    rule(
        "io_uring_register",
        libc::SYS_io_uring_register,
        "a second path to most calls, past this filter",
    ),
    rule(
        "keyctl",
        libc::SYS_keyctl,
        "the kernel's keyrings, which no namespace separates",
    ),
    rule(
        "add_key",
        libc::SYS_add_key,
        "the kernel's keyrings, which no namespace separates",
    ),
    rule(
        "request_key",
        libc::SYS_request_key,
        "the kernel's keyrings, which no namespace separates",
    ),
    rule(
        "ptrace",
        libc::SYS_ptrace,
        "reads and changes other processes",
    ),
    rule(
        "process_vm_readv",
        libc::SYS_process_vm_readv,
        "reads other processes' memory",
    ),
    rule(
        "process_vm_writev",
        libc::SYS_process_vm_writev,
        "writes other processes' memory",
    ),
    rule(
        "pidfd_getfd",
        libc::SYS_pidfd_getfd,
        "takes other processes' open files",
    ),
    rule(
        "kcmp",
        libc::SYS_kcmp,
        "compares other processes' kernel objects",
    ),
    rule(
        "clock_settime",
        libc::SYS_clock_settime,
        "sets the host's clock",
    ),
    rule(
        "clock_adjtime",
        libc::SYS_clock_adjtime,
        "adjusts the host's clock",
    ),
    rule(
        "settimeofday",
        libc::SYS_settimeofday,
        "sets the host's clock and time zone",
    ),
    rule("adjtimex", libc::SYS_adjtimex, "adjusts the host's clock"),
    rule(
        "acct",
        libc::SYS_acct,
        "switches the host's process accounting",
    ),
    rule("quotactl", libc::SYS_quotactl, "the host's disk quotas"),
    rule(
        "quotactl_fd",
        libc::SYS_quotactl_fd,
        "the host's disk quotas",
    ),
    rule("setns", libc::SYS_setns, "joins other namespaces"),
    Rule {
        when: When::FlagsSet {
            arg: 0,
            flags: NEWUSER,
        },
        ..rule(
            "unshare",
            libc::SYS_unshare,
            "a new user namespace: every capability over a fresh set of namespaces",
        )
    },
    Rule {
        when: When::FlagsSet {
            arg: 0,
            flags: NEWUSER,
        },
        ..rule(
            "clone",
            libc::SYS_clone,
            "a new user namespace: every capability over a fresh set of namespaces",
        )
    },
    Rule {
        errno: libc::ENOSYS,
        ..rule(
            "clone3",
            libc::SYS_clone3,
            "its flags are out of the filter's sight; the C library falls back to clone",
        )
    },
    rule(
        "lookup_dcookie",
        libc::SYS_lookup_dcookie,
        "the kernel profiler's path lookups",
    ),
    #[cfg(target_arch = "x86_64")]
    rule("iopl", libc::SYS_iopl, "raw access to the host's I/O ports"),
    #[cfg(target_arch = "x86_64")]
    rule(
        "ioperm",
        libc::SYS_ioperm,
        "raw access to the host's I/O ports",
    ),
    #[cfg(target_arch = "x86_64")]
    rule(
        "uselib",
        libc::SYS_uselib,
        "the obsolete a.out library loader",
    ),
    rule(
        "syslog",
        libc::SYS_syslog,
        "reads and clears the host's kernel log",
    ),
    Rule {
        when: When::NoneOf {
            arg: 0,
            values: &PERSONALITIES,
        },
        ..rule(
            "personality",
            libc::SYS_personality,
            "other execution domains (ADDR_NO_RANDOMIZE turns off address randomization)",
        )
    },
    rule("vhangup", libc::SYS_vhangup, "hangs up the terminal"),
];

/// The bit that marks a call of the x32 ABI on x86_64.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, Error> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(Error::Build)
}

/// The seccompiler rules of one refused call: none when it is always refused.
fn conditions(when: When) -> Result<Vec<SeccompRule>, Error> {
    let conditions = match when {
        When::Always => return Ok(Vec::new()),
        When::FlagsSet { arg, flags } => vec![condition(
            arg,
            SeccompCmpOp::MaskedEq(u64::from(flags)),
            u64::from(flags),
        )?],
        When::NoneOf { arg, values } => values
            .iter()
            .map(|v| condition(arg, SeccompCmpOp::Ne, u64::from(*v)))
            .collect::<Result<_, _>>()?,
    };
    Ok(vec![SeccompRule::new(conditions).map_err(Error::Build)?])
}

/// Compiles `rules` to one program: the programs of [`programs`] joined. None for no
/// rules.
pub fn compile(rules: &[Rule]) -> Result<Option<Program>, Error> {
    let programs = programs(rules)?;
    if programs.is_empty() {
        return Ok(None);
    }
    let joined = seccomp_search::chain(&programs).ok_or(Error::TooLong)?;
    Ok(Some(joined))
}

/// `rules`' seccompiler rules, by error number, then by call number.
type ByErrno = BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>>;

fn by_errno(rules: &[Rule]) -> Result<ByErrno, Error> {
    let mut grouped = ByErrno::new();
    for rule in rules {
        grouped
            .entry(rule.errno)
            .or_default()
            .insert(rule.number, conditions(rule.when)?);
    }
    Ok(grouped)
}

/// Compiles `rules` to one program per error number (a seccompiler filter has a single
/// action on a match), plus, on x86_64, the x32 guard. None for no rules.
fn programs(rules: &[Rule]) -> Result<Vec<Program>, Error> {
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| Error::Arch(std::env::consts::ARCH))?;
    let mut programs = Vec::new();
    for (errno, calls) in by_errno(rules)? {
        let errno = u32::try_from(errno).unwrap_or(libc::EPERM as u32);
        let refused = libc::SECCOMP_RET_ERRNO | errno;
        // A binary search in front allows a call the list does not name at once, and
        // refuses one it always refuses; only the calls refused by their arguments (and
        // every call of another architecture) go on to seccompiler's row, which names only
        // those. The kernel checks and compiles every instruction at each start.
        let mut found = Vec::with_capacity(calls.len());
        let mut conditional = BTreeMap::new();
        for (number, rules) in calls {
            let n = u32::try_from(number).map_err(|_| Error::Arch(std::env::consts::ARCH))?;
            if rules.is_empty() {
                found.push((n, Found::Return(refused)));
            } else {
                found.push((n, Found::Program));
                conditional.insert(number, rules);
            }
        }
        let filter = SeccompFilter::new(
            conditional,
            SeccompAction::Allow,
            SeccompAction::Errno(errno),
            arch,
        )
        .map_err(Error::Build)?;
        let program = Program::try_from(filter).map_err(Error::Build)?;
        programs.push(
            seccomp_search::in_front_deciding(&found, libc::SECCOMP_RET_ALLOW, program)
                .map_err(|_| Error::TooMany(found.len()))?,
        );
    }
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_guard());
    Ok(programs)
}

/// A filter that fails every call of the x32 ABI with `ENOSYS`: the deny-list names the
/// native numbers only, and an x32 number is another name for the same call.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> Program {
    // Classic BPF as seccomp runs it (linux/filter.h, linux/seccomp.h).
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JGE_K: u16 = 0x05 | 0x30;
    const RET_K: u16 = 0x06;
    /// Where `seccomp_data` holds the call's number.
    const NR: u32 = 0;
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        insn(LD_W_ABS, 0, 0, NR),
        insn(JGE_K, 0, 1, X32_SYSCALL_BIT),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// `struct sock_fprog` (linux/filter.h): a program as seccomp(2) takes it.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const sock_filter,
}

/// Installs `program` on the calling thread with seccomp(2): a single system call that
/// neither allocates nor locks, so the child may make it between clone and execve. The
/// caller must have set no_new_privs (or hold `CAP_SYS_ADMIN`). 0, or -1 with errno set.
pub(crate) fn install(program: &[sock_filter]) -> libc::c_int {
    // seccompiler keeps programs under the kernel's 4096 instructions; a length that did
    // not fit would become 0, which the kernel refuses with EINVAL.
    let len = libc::c_ushort::try_from(program.len()).unwrap_or(0);
    let prog = SockFprog {
        len,
        filter: program.as_ptr(),
    };
    // SAFETY: `prog` points to `len` valid instructions that outlive the call; the kernel
    // copies them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            std::ptr::from_ref(&prog),
        )
    };
    libc::c_int::try_from(rc).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    use seccomp_search::AUDIT_ARCH_NATIVE as NATIVE;

    /// Runs `program` on a call, as the kernel would.
    fn run(program: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        seccomp_search::run(program, arch, nr, args)
            .expect("a program of the subset the interpreter knows")
            .action
    }

    /// What the kernel would do: the strictest answer of every program (lower action
    /// values win; KILL_PROCESS is 0x80000000 and wins over everything).
    fn verdict(programs: &[Program], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let action = |r: u32| {
            // Order by the kernel's precedence: KILL_PROCESS first, then by value.
            let a = r & 0xffff_0000;
            if a == 0x8000_0000 {
                0
            } else {
                a.wrapping_add(1)
            }
        };
        programs
            .iter()
            .map(|p| run(p, arch, nr, args))
            .min_by_key(|r| action(*r))
            .unwrap()
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

    /// The default profile's program, as the child installs it.
    fn joined() -> Program {
        Seccomp::Default.compile().unwrap().unwrap()
    }

    fn nr(call: libc::c_long) -> u32 {
        u32::try_from(call).unwrap()
    }

    #[test]
    fn the_default_profile_refuses_its_calls_and_allows_the_rest() {
        let program = joined();
        let v = |call, arg0: u64| run(&program, NATIVE, nr(call), [arg0, 0, 0, 0, 0, 0]);
        for rule in Seccomp::Default.rules() {
            if rule.when == When::Always {
                let expected = libc::SECCOMP_RET_ERRNO | rule.errno.cast_unsigned();
                assert_eq!(v(rule.number, 0), expected, "{}", rule.describe());
            }
        }
        for allowed in [
            libc::SYS_getppid,
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_execve,
            libc::SYS_mknodat,
            libc::SYS_openat,
        ] {
            assert_eq!(v(allowed, 0), ALLOW, "{allowed}");
        }
        // A new user namespace is refused, other namespaces are left to the capabilities.
        let newuser = u64::from(NEWUSER);
        let newns = libc::CLONE_NEWNS as u64;
        assert_eq!(v(libc::SYS_unshare, newuser | newns), EPERM);
        assert_eq!(v(libc::SYS_unshare, newns), ALLOW);
        assert_eq!(v(libc::SYS_clone, newuser | libc::SIGCHLD as u64), EPERM);
        assert_eq!(v(libc::SYS_clone, libc::SIGCHLD as u64), ALLOW);
        assert_eq!(v(libc::SYS_clone3, 0), ENOSYS);
        // personality: the safe domains only.
        for ok in PERSONALITIES {
            assert_eq!(v(libc::SYS_personality, u64::from(ok)), ALLOW, "{ok:#x}");
        }
        let addr_no_randomize = 0x0004_0000;
        assert_eq!(v(libc::SYS_personality, addr_no_randomize), EPERM);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn other_abis_cannot_name_a_refused_call() {
        let program = joined();
        let x32 = X32_SYSCALL_BIT + nr(libc::SYS_kexec_load);
        assert_eq!(run(&program, NATIVE, x32, [0; 6]), ENOSYS);
        // The 32-bit ABI (AUDIT_ARCH_I386) is killed before any number is read.
        let i386 = 0x4000_0003;
        assert_eq!(
            run(&program, i386, nr(libc::SYS_getppid), [0; 6]),
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }

    /// The one program the child installs answers every call as the kernel would answer
    /// with the separate programs installed one by one.
    #[test]
    fn the_joined_program_answers_as_the_separate_programs_would() {
        let program = joined();
        let separate = programs(Seccomp::Default.rules()).unwrap();
        assert!(separate.len() > 1);
        assert_eq!(program.len(), separate.iter().map(Vec::len).sum::<usize>());
        answers_as(&program, &separate);
    }

    /// Asserts that `program` answers every call number 0-599, with and without the x32
    /// bit, under both ABIs, with the flags and personalities the rules name (and a few
    /// beside them) as the kernel would with `programs` installed one by one.
    fn answers_as(program: &[sock_filter], programs: &[Program]) {
        let mut arg0s = vec![
            0,
            u64::from(NEWUSER),
            u64::from(NEWUSER) | libc::CLONE_NEWNS as u64,
            libc::SIGCHLD as u64,
            0x0004_0000,
            u64::MAX,
        ];
        arg0s.extend(PERSONALITIES.iter().map(|p| u64::from(*p)));
        for arch in [NATIVE, 0x4000_0003] {
            for call in (0..600).chain(X32_SYSCALL_BIT..X32_SYSCALL_BIT + 600) {
                for &arg0 in &arg0s {
                    let args = [arg0, arg0, arg0, 0, 0, 0];
                    assert_eq!(
                        run(program, arch, call, args),
                        verdict(programs, arch, call, args),
                        "arch {arch:#x}, call {call}, arguments {arg0:#x}"
                    );
                }
            }
        }
    }

    /// seccompiler's own rows for `rules`, one per error number, with no search in front:
    /// what the compiled programs must decide alike.
    fn plain_rows(rules: &[Rule]) -> Vec<Program> {
        let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let mut rows: Vec<Program> = by_errno(rules)
            .unwrap()
            .into_iter()
            .map(|(errno, calls)| {
                let errno = u32::try_from(errno).unwrap();
                let filter = SeccompFilter::new(
                    calls,
                    SeccompAction::Allow,
                    SeccompAction::Errno(errno),
                    arch,
                )
                .unwrap();
                Program::try_from(filter).unwrap()
            })
            .collect();
        #[cfg(target_arch = "x86_64")]
        rows.push(x32_guard());
        rows
    }

    /// The search that answers the always-refused calls itself leaves a shorter program
    /// that answers every call as seccompiler's rows of the whole list would.
    #[test]
    fn the_program_answers_as_seccompilers_rows_of_the_whole_list_and_is_shorter() {
        let program = joined();
        let rows = plain_rows(Seccomp::Default.rules());
        assert!(
            program.len() < rows.iter().map(Vec::len).sum::<usize>(),
            "{} instructions",
            program.len()
        );
        answers_as(&program, &rows);
    }

    #[test]
    fn off_is_no_filter_and_every_rule_is_described() {
        assert!(Seccomp::Off.compile().unwrap().is_none());
        assert_eq!(Seccomp::default(), Seccomp::Default);
        for s in [Seccomp::Default, Seccomp::Off] {
            assert_eq!(s.to_string().parse::<Seccomp>().unwrap(), s);
        }
        assert!("strict".parse::<Seccomp>().is_err());
        let rules = Seccomp::Default.rules();
        let mut names: Vec<&str> = rules.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), rules.len(), "a call is named twice");
        let unshare = rules.iter().find(|r| r.name == "unshare").unwrap();
        assert_eq!(
            unshare.describe(),
            "unshare when argument 0 has 0x10000000 set: EPERM (a new user namespace: every \
             capability over a fresh set of namespaces)"
        );
        assert_eq!(NEWUSER.cast_signed(), libc::CLONE_NEWUSER);
    }

    /// Installs the default filter in a forked child and tries calls there: the kernel
    /// accepts the programs and answers as the interpreter above does. Needs no privilege
    /// (no_new_privs allows an unprivileged filter).
    #[test]
    fn the_kernel_enforces_the_compiled_filter() {
        let program = joined();
        // SAFETY: the child makes only raw system calls and ends in _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let code = in_child(&program);
            // SAFETY: ends the forked child at once.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above with a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status),
            "child ended by a signal: {status:#x}"
        );
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "check {} failed",
            libc::WEXITSTATUS(status)
        );
    }

    /// The forked child's side: 0 when every check holds, else the failed check's number.
    fn in_child(program: &[sock_filter]) -> i32 {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return 1;
        }
        if install(program) != 0 {
            return 2;
        }
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::syscall(libc::SYS_getppid) } <= 0 {
            return 3;
        }
        // SAFETY: unshare with a flag argument only; refused by the filter before it acts.
        let rc = unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) };
        if rc != -1 || errno() != libc::EPERM {
            return 4;
        }
        // SAFETY: clone3 with a null argument; refused by the filter before it is read.
        let rc = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0) };
        if rc != -1 || errno() != libc::ENOSYS {
            return 5;
        }
        // SAFETY: keyctl with integer arguments; refused by the filter.
        let rc = unsafe { libc::syscall(libc::SYS_keyctl, 0, -1, 0) };
        if rc != -1 || errno() != libc::EPERM {
            return 6;
        }
        0
    }
}
