//! `fork`: the cost of creating and reaping a process.

use std::time::Instant;

use workload::record::Metric;

use super::{as_f64, seconds, Error};

/// Forks `count` children, one at a time; each exits at once and is waited for.
pub fn run(count: u64) -> Result<Vec<Metric>, Error> {
    let start = Instant::now();
    for _ in 0..count {
        // SAFETY: the child calls only _exit, which is async-signal-safe, so forking a
        // process that may hold locks in other threads is sound.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ends the child at once without touching the parent's state.
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            return Err(Error::last_os("fork"));
        }
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; `pid` is our own child.
        if unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
            return Err(Error::last_os("waitpid"));
        }
    }
    let elapsed = seconds(start.elapsed());
    Ok(vec![
        Metric::new("us_per_process", elapsed * 1e6 / as_f64(count), "µs"),
        Metric::new("processes_per_s", as_f64(count) / elapsed, "processes/s"),
    ])
}
