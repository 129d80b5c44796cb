//! Kicking vCPU threads out of `KVM_RUN`: a real-time signal with a handler that does
//! nothing, installed without `SA_RESTART`, so a blocked `KVM_RUN` returns `EINTR` and the
//! thread's loop can look at why it was woken (a deadline, a stop, a state check).
//!
//! A signal that lands while the thread is outside `KVM_RUN` is not remembered, so callers
//! that must be heard kick again until the thread answers.
//!
//! A kick comes from another thread ([`kick`]) or from a kernel timer ([`Alarm`]), which
//! needs no thread of its own to wait out a deadline.

use std::sync::Once;
use std::time::Duration;

/// The kick signal.
pub fn signal() -> libc::c_int {
    libc::SIGRTMIN() + 1
}

extern "C" fn ignore(_: libc::c_int) {}

/// Installs the kick signal's handler (once per process).
pub fn install() {
    static HANDLER: Once = Once::new();
    HANDLER.call_once(|| {
        // SAFETY: sigaction is plain data; all-zero is an empty action.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = ignore as *const () as usize;
        // SAFETY: the handler does nothing, which is async-signal-safe; without
        // SA_RESTART, KVM_RUN returns EINTR when the signal arrives.
        unsafe { libc::sigaction(signal(), &action, std::ptr::null_mut()) };
    });
}

/// A thread of this process, by its kernel thread ID: a target for [`kick`]. A plain
/// number, so the same on every C library (a `pthread_t` is an integer on glibc and a
/// pointer on musl) and free to pass between threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thread(libc::pid_t);

/// The calling thread, as a target for [`kick`].
pub fn this_thread() -> Thread {
    // SAFETY: gettid has no preconditions and cannot fail.
    Thread(unsafe { libc::gettid() })
}

/// Kicks `thread` out of `KVM_RUN`.
///
/// The caller guarantees `thread` is alive: a vCPU thread stays alive until the thread
/// that kicks it has seen it finish, so its ID cannot have been given to another thread.
/// tgkill(2) names the process too, so a kick can never reach a thread of another one.
pub fn kick(thread: Thread) {
    let process = libc::c_long::from(std::process::id());
    // SAFETY: tgkill takes plain integers; the target is a live thread of this process
    // (the caller's duty, above) and the signal's handler is installed by `install`,
    // which every kicker calls first.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            process,
            libc::c_long::from(thread.0),
            libc::c_long::from(signal()),
        )
    };
}

/// A kernel timer (timer_create(2), `CLOCK_MONOTONIC`) that kicks one thread at a deadline
/// and again at an interval after it, until it is dropped: a timeout for a thread in
/// `KVM_RUN` without a thread that sleeps until it. The kernel keeps at most one of its
/// signals pending, so a thread that is slow to answer is not flooded.
#[derive(Debug)]
pub struct Alarm {
    /// The kernel's timer ID.
    id: libc::c_int,
}

impl Alarm {
    /// Kicks `thread` `after` from now, then `every` until dropped.
    pub fn start(thread: Thread, after: Duration, every: Duration) -> std::io::Result<Self> {
        install();
        // SAFETY: sigevent is plain data; all-zero is a valid value to fill in.
        let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = signal();
        event.sigev_notify_thread_id = thread.0;
        let mut id: libc::c_int = 0;
        // SAFETY: `event` is a valid sigevent the kernel reads, and `id` a valid int the
        // kernel writes the new timer's ID to (the kernel's timer_t is an int); both
        // outlive the call.
        let made = unsafe {
            libc::syscall(
                libc::SYS_timer_create,
                libc::c_long::from(libc::CLOCK_MONOTONIC),
                &raw const event,
                &raw mut id,
            )
        };
        if made != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let alarm = Alarm { id };
        // A zero first expiry would disarm the timer: one nanosecond is "at once".
        let spec = libc::itimerspec {
            it_value: timespec(after.max(Duration::from_nanos(1))),
            it_interval: timespec(every),
        };
        // SAFETY: `id` is the timer just made; `spec` is a valid itimerspec the kernel
        // reads; a null old value asks for none.
        let armed = unsafe {
            libc::syscall(
                libc::SYS_timer_settime,
                libc::c_long::from(alarm.id),
                0 as libc::c_long,
                &raw const spec,
                std::ptr::null_mut::<libc::itimerspec>(),
            )
        };
        if armed != 0 {
            // Dropping `alarm` deletes the timer.
            return Err(std::io::Error::last_os_error());
        }
        Ok(alarm)
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        // SAFETY: `id` is a timer this value made and nothing else deletes; once deleted
        // it sends no more signals.
        unsafe { libc::syscall(libc::SYS_timer_delete, libc::c_long::from(self.id)) };
    }
}

/// `d` as a timespec (64-bit seconds on x86-64 with either C library; libc names the
/// seconds' type differently on musl, so it is left to inference here).
fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: libc::c_long::from(d.subsec_nanos()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Sleeps up to `limit` in one nanosleep(2); returns whether a signal cut it short.
    fn interrupted_sleep(limit: Duration) -> bool {
        let request = timespec(limit);
        let mut left = timespec(Duration::ZERO);
        // SAFETY: both are valid timespecs for the call.
        let slept = unsafe { libc::nanosleep(&request, &mut left) };
        slept != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
    }

    #[test]
    fn an_alarm_kicks_its_thread_at_the_deadline_and_after_it_until_dropped() {
        let started = Instant::now();
        let alarm = Alarm::start(
            this_thread(),
            Duration::from_millis(30),
            Duration::from_millis(1),
        )
        .unwrap();
        assert!(interrupted_sleep(Duration::from_secs(10)));
        assert!(started.elapsed() >= Duration::from_millis(30));
        // And again, every millisecond.
        assert!(interrupted_sleep(Duration::from_secs(10)));
        drop(alarm);
        // Once dropped, no kick comes (one already pending is taken by this sleep).
        let _ = interrupted_sleep(Duration::from_millis(5));
        assert!(!interrupted_sleep(Duration::from_millis(50)));
    }
}
