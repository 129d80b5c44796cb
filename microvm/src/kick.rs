//! Kicking vCPU threads out of `KVM_RUN`: a real-time signal with a handler that does
//! nothing, installed without `SA_RESTART`, so a blocked `KVM_RUN` returns `EINTR` and the
//! thread's loop can look at why it was woken (a deadline, a stop, a state check).
//!
//! A signal that lands while the thread is outside `KVM_RUN` is not remembered, so callers
//! that must be heard kick again until the thread answers.

use std::sync::Once;

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

/// The calling thread, as a target for [`kick`].
pub fn this_thread() -> libc::pthread_t {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() }
}

/// Kicks `thread` out of `KVM_RUN`.
///
/// The caller guarantees `thread` is alive: a vCPU thread stays alive until the thread
/// that kicks it has seen it finish.
pub fn kick(thread: libc::pthread_t) {
    // SAFETY: `thread` is a live thread of this process (the caller's duty, above) and the
    // signal's handler is installed by `install`, which every kicker calls first.
    unsafe { libc::pthread_kill(thread, signal()) };
}
