//! Run a process in Linux namespaces with a private root filesystem and cgroup limits.
//!
//! This crate knows nothing about benchmarks: it describes the host's container
//! facilities and (as it grows) builds and tears down sandboxes.

pub mod cgroup;
