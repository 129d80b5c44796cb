//! Run a process in Linux namespaces with a private root file system and cgroup limits.
//!
//! This crate knows nothing about benchmarks. [`Container::start`] builds a sandbox from
//! a [`Spec`] (namespaces, root file system, limits) and starts its program, stamping every
//! phase; [`Container::wait`] and [`Container::destroy`] end it and clean up everything.
//! [`cgroup`] finds the host's cgroup layout (v1, v2 or hybrid) and manages one cgroup per
//! instance; [`process`] is the child-process handle both use. [`mounts`] plans the
//! container's file system (every mount, in order, with its flags) as data, from the spec
//! alone, for the child to carry out.

pub mod cgroup;
mod child;
pub mod cleanup;
mod container;
pub mod mounts;
pub mod process;
pub mod spec;

pub use container::{monotonic_ns, Container, Error, Phase, Stdio, DEFAULT_CAPS};
pub use spec::{Cpu, Limits, Namespaces, Spec};
