//! What the monitor's system call filter allows ([`ALLOWED`]), and its compilation to a
//! classic BPF program ([`compile`]).
//!
//! This file is also compiled into the crate's build script, which compiles the filter
//! once, at build time: a monitor process then installs a finished program instead of
//! spending a tenth of a millisecond of every start building it. So it names only other
//! crates, never this one.

use std::collections::BTreeMap;

use kvm_bindings::{kvm_irq_level, kvm_lapic_state, kvm_mp_state, kvm_regs, kvm_sregs};
use seccomp_search::Found;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The KVM requests the run loop makes, as the kernel numbers them.
mod requests {
    #![allow(missing_docs)]
    use super::{kvm_irq_level, kvm_lapic_state, kvm_mp_state, kvm_regs, kvm_sregs};

    const KVMIO: u32 = 0xAE;
    vmm_sys_util::ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_REGS, KVMIO, 0x81, kvm_regs);
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_SREGS, KVMIO, 0x83, kvm_sregs);
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_LAPIC, KVMIO, 0x8e, kvm_lapic_state);
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_MP_STATE, KVMIO, 0x98, kvm_mp_state);
    vmm_sys_util::ioctl_iow_nr!(KVM_IRQ_LINE, KVMIO, 0x61, kvm_irq_level);
}
pub use requests::*;

/// Which arguments an allowed call may have.
#[derive(Debug, Clone, Copy)]
pub enum Only {
    /// Any.
    Any,
    /// Argument `arg` (from 0) is one of `values` (compared on its low 32 bits).
    OneOf {
        /// The argument.
        arg: u8,
        /// Its allowed values.
        values: fn() -> Vec<u64>,
    },
}

/// One allowed system call.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    /// Its name, as in syscalls(2).
    pub name: &'static str,
    /// Its number on this architecture.
    pub number: libc::c_long,
    /// With which arguments.
    pub only: Only,
    /// What the monitor needs it for.
    pub why: &'static str,
}

impl Allowed {
    /// Its seccompiler rules: none (any arguments) for [`Only::Any`], else one rule per
    /// allowed value of the argument.
    pub fn rules(&self) -> Result<Vec<SeccompRule>, Error> {
        match self.only {
            Only::Any => Ok(Vec::new()),
            Only::OneOf { arg, values } => values()
                .into_iter()
                .map(|value| {
                    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
                        .and_then(|c| SeccompRule::new(vec![c]))
                        .map_err(Error::Build)
                })
                .collect(),
        }
    }

    /// One line for a report: the call, the arguments it is limited to, and why.
    pub fn describe(&self) -> String {
        match self.only {
            Only::Any => format!("{}: {}", self.name, self.why),
            Only::OneOf { arg, values } => {
                let values: Vec<String> = values().iter().map(|v| format!("{v:#x}")).collect();
                format!(
                    "{} with argument {arg} one of {}: {}",
                    self.name,
                    values.join(", "),
                    self.why
                )
            }
        }
    }
}

const fn any(name: &'static str, number: libc::c_long, why: &'static str) -> Allowed {
    Allowed {
        name,
        number,
        only: Only::Any,
        why,
    }
}

fn kvm_requests() -> Vec<u64> {
    use vhost::vhost_kern::vhost_binding::{
        VHOST_SET_FEATURES, VHOST_SET_VRING_ADDR, VHOST_SET_VRING_BASE, VHOST_SET_VRING_CALL,
        VHOST_SET_VRING_KICK, VHOST_SET_VRING_NUM, VHOST_VSOCK_SET_RUNNING,
    };
    [
        KVM_RUN(),
        KVM_GET_REGS(),
        KVM_GET_SREGS(),
        KVM_GET_LAPIC(),
        KVM_GET_MP_STATE(),
        KVM_IRQ_LINE(),
        // The vsock device hands its queues to the host kernel when the driver is ready
        // (and stops it when the driver resets it); everything else of vhost-vsock is set
        // up before the filter.
        VHOST_SET_FEATURES(),
        VHOST_SET_VRING_NUM(),
        VHOST_SET_VRING_ADDR(),
        VHOST_SET_VRING_BASE(),
        VHOST_SET_VRING_CALL(),
        VHOST_SET_VRING_KICK(),
        VHOST_VSOCK_SET_RUNNING(),
    ]
    .to_vec()
}

fn fcntl_queries() -> Vec<u64> {
    [libc::F_GETFD, libc::F_GETFL]
        .into_iter()
        .filter_map(|v| u64::try_from(v).ok())
        .collect()
}

/// Every call the monitor may make once a guest runs.
pub const ALLOWED: [Allowed; 38] = [
    Allowed {
        name: "ioctl",
        number: libc::SYS_ioctl,
        only: Only::OneOf {
            arg: 1,
            values: kvm_requests,
        },
        why: "KVM_RUN; the registers, local APIC and run state read at a failure or timeout; \
              the serial console's interrupt line; the vsock device's queues handed to \
              vhost-vsock at the driver's DRIVER_OK",
    },
    Allowed {
        name: "fcntl",
        number: libc::SYS_fcntl,
        only: Only::OneOf {
            arg: 1,
            values: fcntl_queries,
        },
        why: "reading a descriptor's flags (the standard library checks them when it closes one)",
    },
    any(
        "read",
        libc::SYS_read,
        "device back ends: the network device's tap, the notification eventfds",
    ),
    any("pread64", libc::SYS_pread64, "the virtio disk's reads"),
    any("pwrite64", libc::SYS_pwrite64, "the virtio disk's writes"),
    any(
        "fdatasync",
        libc::SYS_fdatasync,
        "the virtio disk's flushes (a guest's fsync)",
    ),
    any(
        "epoll_wait",
        libc::SYS_epoll_wait,
        "the virtio devices' notification threads, waiting for the guest (and the tap)",
    ),
    any(
        "epoll_pwait",
        libc::SYS_epoll_pwait,
        "the virtio devices' notification threads, waiting for the guest (and the tap)",
    ),
    any(
        "write",
        libc::SYS_write,
        "the report, console lines and errors on standard output and error; the network \
         device's tap; interrupts through their eventfds",
    ),
    any("writev", libc::SYS_writev, "buffered output"),
    any("close", libc::SYS_close, "teardown"),
    any("mmap", libc::SYS_mmap, "memory allocation"),
    any("munmap", libc::SYS_munmap, "memory allocation, teardown"),
    any("mremap", libc::SYS_mremap, "memory allocation"),
    any(
        "mprotect",
        libc::SYS_mprotect,
        "memory allocation (thread arenas)",
    ),
    any(
        "madvise",
        libc::SYS_madvise,
        "memory allocation, thread exit",
    ),
    any("brk", libc::SYS_brk, "memory allocation"),
    any(
        "mincore",
        libc::SYS_mincore,
        "counting the guest memory the guest touched",
    ),
    any(
        "futex",
        libc::SYS_futex,
        "locks and channels between threads",
    ),
    any(
        "rt_sigprocmask",
        libc::SYS_rt_sigprocmask,
        "signal masks (thread start and exit)",
    ),
    any(
        "rt_sigreturn",
        libc::SYS_rt_sigreturn,
        "returning from the kick signal's handler",
    ),
    any(
        "rt_sigtimedwait",
        libc::SYS_rt_sigtimedwait,
        "waiting for the release of a held VM",
    ),
    any(
        "sigaltstack",
        libc::SYS_sigaltstack,
        "thread exit (the standard library's signal stack)",
    ),
    any(
        "tgkill",
        libc::SYS_tgkill,
        "kicking a vCPU thread out of KVM_RUN",
    ),
    any("getpid", libc::SYS_getpid, "kicking a vCPU thread"),
    any("gettid", libc::SYS_gettid, "thread start"),
    any(
        "sched_getaffinity",
        libc::SYS_sched_getaffinity,
        "thread start",
    ),
    any("set_robust_list", libc::SYS_set_robust_list, "thread start"),
    any("rseq", libc::SYS_rseq, "thread start"),
    any("sched_yield", libc::SYS_sched_yield, "waiting on a lock"),
    any(
        "timer_delete",
        libc::SYS_timer_delete,
        "disarming a micro guest's timeout once it has stopped",
    ),
    any(
        "nanosleep",
        libc::SYS_nanosleep,
        "pauses between kicks at the end",
    ),
    any(
        "clock_nanosleep",
        libc::SYS_clock_nanosleep,
        "pauses between kicks at the end",
    ),
    any(
        "clock_gettime",
        libc::SYS_clock_gettime,
        "stamps, where the vDSO falls back to the call",
    ),
    any("exit", libc::SYS_exit, "thread exit"),
    any("exit_group", libc::SYS_exit_group, "the monitor's exit"),
    any(
        "restart_syscall",
        libc::SYS_restart_syscall,
        "a sleep interrupted by a signal",
    ),
    any(
        "getrandom",
        libc::SYS_getrandom,
        "hash map seeds in the standard library",
    ),
];

/// Errors compiling [`ALLOWED`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// seccompiler does not support the architecture.
    #[error("no system call filter can be built for this architecture ({0})")]
    Arch(String),
    /// seccompiler refused a rule or the filter.
    #[error("cannot build the monitor's system call filter")]
    Build(#[source] seccompiler::BackendError),
    /// The search over the list's call numbers is too long for classic BPF's jumps.
    #[error("the monitor's filter allows too many calls ({0}) for its search")]
    TooLong(usize),
}

/// Compiles [`ALLOWED`] for `arch` (as Rust names architectures: `x86_64`, `aarch64`):
/// every other call raises `SIGSYS`. A binary search over the call numbers comes first
/// ([`seccomp_search::in_front_deciding`]): it allows a call the list allows with any
/// arguments, and traps a call outside the list, at once; only the calls limited by their
/// arguments (and every call of another architecture) go on to seccompiler's program,
/// which names only those. The kernel runs the filter on every call number when each
/// thread installs it, and checks and compiles each of its instructions: this is about
/// half as long as seccompiler's row of the whole list behind the same search (173
/// instructions against 337 on x86-64).
pub fn compile(arch: &str) -> Result<BpfProgram, Error> {
    let target = TargetArch::try_from(arch).map_err(|_| Error::Arch(arch.to_owned()))?;
    let allow = u32::from(SeccompAction::Allow);
    let mut found = Vec::with_capacity(ALLOWED.len());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for allowed in &ALLOWED {
        let number = u32::try_from(allowed.number).map_err(|_| Error::Arch(arch.to_owned()))?;
        match allowed.only {
            Only::Any => found.push((number, Found::Return(allow))),
            Only::OneOf { .. } => {
                rules.insert(allowed.number, allowed.rules()?);
                found.push((number, Found::Program));
            }
        }
    }
    let filter = SeccompFilter::new(rules, SeccompAction::Trap, SeccompAction::Allow, target)
        .map_err(Error::Build)?;
    let program = BpfProgram::try_from(filter).map_err(Error::Build)?;
    seccomp_search::in_front_deciding(&found, u32::from(SeccompAction::Trap), program)
        .map_err(|_| Error::TooLong(found.len()))
}
