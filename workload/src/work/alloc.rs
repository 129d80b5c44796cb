//! `alloc`: touch a set amount of memory and hold it, so the host can measure the
//! footprint of an instance whose working set it knows.

use std::hint::black_box;
use std::time::Instant;

use workload::record::Metric;

use super::{as_f64, mib_to_bytes, seconds, Error};

/// Signals that end the hold.
const RELEASE: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1];

/// Memory being held until a release signal or the hold time.
pub struct Held {
    memory: Vec<u8>,
    hold_ms: u64,
    set: libc::sigset_t,
}

impl Held {
    /// Blocks until a release signal arrives (or `hold_ms` passes, when non-zero), then
    /// frees the memory.
    pub fn wait(self) {
        if self.hold_ms == 0 {
            let mut sig = 0;
            // SAFETY: `set` was initialised in `run`; `sig` is a valid out-pointer.
            unsafe { libc::sigwait(&self.set, &mut sig) };
        } else {
            let timeout = libc::timespec {
                tv_sec: libc::time_t::try_from(self.hold_ms / 1000).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::try_from((self.hold_ms % 1000) * 1_000_000).unwrap_or(0),
            };
            // SAFETY: `set` is initialised; a null siginfo pointer is allowed; `timeout`
            // lives for the call.
            unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &timeout) };
        }
        black_box(&self.memory);
    }
}

/// Blocks the release signals (so one sent as soon as the result is read is not lost),
/// touches every page of `mib` MiB and returns the memory, still held.
pub fn run(mib: u64, hold_ms: u64) -> Result<(Vec<Metric>, Held), Error> {
    let bytes = mib_to_bytes(mib, "--mib")?;
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for sig in RELEASE {
        // SAFETY: `set` is initialised and `sig` a valid signal number.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    // SAFETY: `set` is initialised; the old mask is not needed.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(Error::last_os("block release signals"));
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let start = Instant::now();
    let mut memory = vec![0u8; bytes];
    for byte in memory.iter_mut().step_by(page.max(1)) {
        *byte = 1;
    }
    let elapsed = seconds(start.elapsed());
    let mut metrics = vec![
        Metric::new("touched_mib", as_f64(mib), "MiB"),
        Metric::new("touch_seconds", elapsed, "s"),
    ];
    if let Some(rss) = super::status_kib("VmRSS:") {
        metrics.push(Metric::new("self_rss_kib", rss, "KiB"));
    }
    Ok((
        metrics,
        Held {
            memory,
            hold_ms,
            set,
        },
    ))
}
