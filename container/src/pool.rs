//! A pool of sandboxes built ahead: namespaces, ID maps, cgroup, mounts, dropped
//! privileges and the system call filter all done, each first process waiting for its
//! program ([`Idle`]). [`Pool::take`] sends a program to one and returns it running, with
//! only the exec left between the request and the program's start; what a cold start
//! pays before that was paid when the pool was filled.
//!
//! What the pool costs while it waits is what its idle sandboxes hold:
//! [`Pool::idle_memory_kib`] reads it. Dropping the pool kills every idle sandbox and
//! removes its cgroup and state; a sandbox taken is the caller's [`Container`]. Every
//! sandbox's process dies with the thread that filled the pool (the parent-death signal),
//! and its cgroup is named as every container's, so `cleanup` finds what a killed process
//! left.

use std::collections::VecDeque;

use crate::container::{Container, Error, Idle, Stdio};
use crate::spec::Spec;

/// Sandboxes built from one [`Spec`], waiting.
#[derive(Debug)]
pub struct Pool {
    spec: Spec,
    idle: VecDeque<Idle>,
}

impl Pool {
    /// A pool of `size` sandboxes built from `spec` (its program and environment are not
    /// used: each [`Pool::take`] brings its own). Fails with the first sandbox that could
    /// not be built, having removed those that were.
    pub fn new(spec: &Spec, size: usize) -> Result<Self, Error> {
        let mut pool = Pool {
            spec: spec.clone(),
            idle: VecDeque::with_capacity(size),
        };
        pool.fill(size)?;
        Ok(pool)
    }

    /// Builds sandboxes until `size` wait.
    pub fn fill(&mut self, size: usize) -> Result<(), Error> {
        while self.idle.len() < size {
            self.idle.push_back(Idle::build(&self.spec)?);
        }
        Ok(())
    }

    /// How many sandboxes wait.
    pub fn idle(&self) -> usize {
        self.idle.len()
    }

    /// The waiting sandboxes, oldest first (each one's first process and cgroup).
    pub fn waiting(&self) -> impl Iterator<Item = &Container> {
        self.idle.iter().map(Idle::container)
    }

    /// Starts `args` (the program's path inside the sandbox first) with `env` and
    /// `stdio` in the oldest waiting sandbox; `None` when none waits. The container's
    /// phases end with `requested` and `exec`.
    pub fn take(
        &mut self,
        args: &[String],
        env: &[String],
        stdio: Stdio,
    ) -> Option<Result<Container, Error>> {
        let idle = self.idle.pop_front()?;
        Some(idle.start(args, env, stdio))
    }

    /// The memory the waiting sandboxes hold, KiB each: their cgroups' usage where they
    /// have cgroups, else their processes' resident set. Empty when none waits.
    pub fn idle_memory_kib(&self) -> Vec<u64> {
        self.idle
            .iter()
            .filter_map(|idle| {
                let container = idle.container();
                match container.cgroup() {
                    Some(cgroup) => cgroup.stats().memory_bytes.map(|b| b / 1024),
                    None => resident_kib(container.pid()),
                }
            })
            .collect()
    }
}

/// A process's resident set, KiB, from /proc.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
