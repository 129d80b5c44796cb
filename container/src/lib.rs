//! Run a process in Linux namespaces with a private root file system and cgroup limits.
//!
//! This crate knows nothing about benchmarks. [`Container::start`] builds a sandbox from
//! a [`Spec`] (namespaces, root file system, limits, protections) and starts its program,
//! stamping every phase; [`Container::wait`] and [`Container::destroy`] end it and clean
//! up everything. [`cgroup`] finds the host's cgroup layout (v1, v2 or hybrid) and manages
//! one cgroup per instance; [`process`] is the child-process handle both use. [`mounts`]
//! plans the container's file system (every mount, in order, with its flags, the masked
//! and read-only kernel paths included) as data, from the spec alone, for the child to
//! carry out. [`devices`] is the device allow-list and its cgroup v2 program; [`seccomp`]
//! the system call filter. [`Pool`] keeps sandboxes built ahead, each waiting for its
//! program ([`Idle`]): a warm start is only the exec.
//!
//! Every protection holds in every configuration the library accepts, root without a user
//! namespace included: the program keeps [`DEFAULT_CAPS`] only (no `CAP_SYS_ADMIN`,
//! `CAP_MKNOD` or `CAP_NET_RAW`), runs under no_new_privs and the default system call
//! filter, sees the kernel's sensitive paths masked or read-only, may open only the
//! devices bound into its `/dev` (enforced by its cgroup when it has one), and sees its own
//! cgroup as the root of its cgroup namespace. Each can be switched off in the [`Spec`],
//! to measure what it costs.

pub mod cgroup;
mod child;
pub mod cleanup;
mod container;
pub mod devices;
pub mod mounts;
pub mod pool;
pub mod process;
pub mod seccomp;
pub mod spec;

pub use container::{monotonic_ns, Container, Error, Idle, Phase, Stdio, DEFAULT_CAPS};
pub use pool::Pool;
pub use seccomp::Seccomp;
pub use spec::{Capabilities, Cpu, Limits, Namespaces, Spec};
