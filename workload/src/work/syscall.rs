//! `syscall`: the cost of entering the kernel, timed over many getppid(2) calls.

use std::hint::black_box;
use std::time::Instant;

use workload::record::Metric;

use super::{as_f64, seconds};

/// Makes `count` getppid calls and reports the time per call.
pub fn run(count: u64) -> Vec<Metric> {
    let start = Instant::now();
    for _ in 0..count {
        // SAFETY: getppid takes no arguments, cannot fail and touches no memory. It is
        // called through syscall(2) so no C library can answer it from a cache.
        black_box(unsafe { libc::syscall(libc::SYS_getppid) });
    }
    let elapsed = seconds(start.elapsed());
    vec![
        Metric::new("ns_per_call", elapsed * 1e9 / as_f64(count), "ns"),
        Metric::new("calls_per_s", as_f64(count) / elapsed, "calls/s"),
    ]
}
