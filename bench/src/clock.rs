//! Host timestamps: one clock, `CLOCK_MONOTONIC`, for every marker of every backend.
//!
//! A [`Stamp`] is plain nanoseconds on that clock, so a stamp taken by another process on
//! the same host (a monitor recording a guest's marker write, say) is directly comparable
//! with the runner's own. A guest's clock is never used.

/// A point on the host's `CLOCK_MONOTONIC`, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(pub u64);

impl Stamp {
    /// Now.
    pub fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
        Stamp(secs * 1_000_000_000 + nanos)
    }

    /// Milliseconds from `earlier` to this stamp (0 if `earlier` is later).
    pub fn ms_since(self, earlier: Stamp) -> f64 {
        let nanos = self.0.saturating_sub(earlier.0);
        // Below 2^53 ns (104 days) the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let nanos = nanos as f64;
        nanos / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_move_forward() {
        let a = Stamp::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = Stamp::now();
        assert!(b > a);
        assert!(b.ms_since(a) >= 2.0);
        assert_eq!(a.ms_since(b), 0.0);
    }
}
