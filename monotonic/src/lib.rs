//! The host's one clock: `CLOCK_MONOTONIC`, in nanoseconds.
//!
//! Every stamp vcbench takes comes from [`now_ns`]: the container runtime's phases, the
//! microVM monitor's phases and markers, the harness's markers. Stamps taken by different
//! processes on one host are then points on one line and compare directly; a guest's
//! clock is never used. The clock does not jump with the wall clock, and it is readable
//! between `fork` and `exec` (`clock_gettime` is async-signal-safe).

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration; CLOCK_MONOTONIC
    // exists on every Linux, so the call cannot fail and leaves `ts` set.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs * 1_000_000_000 + nanos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_never_goes_back_and_matches_std() {
        let before = std::time::Instant::now();
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = now_ns();
        let elapsed = u64::try_from(before.elapsed().as_nanos()).unwrap();
        assert!(b >= a + 2_000_000, "{a} {b}");
        // std's Instant reads the same clock: the two spans agree.
        assert!(b - a <= elapsed, "{} > {elapsed}", b - a);
    }
}
