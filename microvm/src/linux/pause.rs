//! Pausing every vCPU of a running guest at once, to snapshot it: one vCPU thread asks
//! ([`Pause::request`]), the supervisor kicks the others out of `KVM_RUN` until each has
//! parked ([`Pause::wait_all`]), each parking thread leaves what it saved of its vCPU
//! ([`Pause::park`]), and once the supervisor has written the snapshot it lets them all go
//! on ([`Pause::release`]). A guest is paused once per run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A one-time pause of `n` vCPU threads, each leaving an `S`.
#[derive(Debug)]
pub struct Pause<S> {
    /// Asked, and not yet released.
    wanted: AtomicBool,
    inner: Mutex<Inner<S>>,
    changed: Condvar,
}

#[derive(Debug)]
struct Inner<S> {
    asked: bool,
    released: bool,
    /// What each vCPU thread left when it parked, by index.
    parked: Vec<Option<S>>,
}

impl<S> Pause<S> {
    /// A pause of `vcpus` threads, not yet asked for.
    pub fn new(vcpus: usize) -> Self {
        Pause {
            wanted: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                asked: false,
                released: false,
                parked: (0..vcpus).map(|_| None).collect(),
            }),
            changed: Condvar::new(),
        }
    }

    /// Asks every thread to park; true the first time only.
    pub fn request(&self) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        if inner.asked {
            return false;
        }
        inner.asked = true;
        self.wanted.store(true, Ordering::SeqCst);
        true
    }

    /// Whether threads should park now (asked, not yet released): a cheap check for each
    /// turn of a vCPU loop.
    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::SeqCst)
    }

    /// Called by thread `index`: leaves `state` and blocks until [`Pause::release`].
    pub fn park(&self, index: usize, state: S) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.released || index >= inner.parked.len() {
            return;
        }
        inner.parked[index] = Some(state);
        self.changed.notify_all();
        while !inner.released {
            inner = match self.changed.wait(inner) {
                Ok(guard) => guard,
                Err(_) => return,
            };
        }
    }

    /// Waits until every thread has parked, calling `kick` every `tick` meanwhile (a kick
    /// can be lost), and returns what they left; `None` when `gone()` says some thread
    /// will never park (it ended) or `deadline` passes first.
    pub fn wait_all(
        &self,
        tick: Duration,
        deadline: Instant,
        mut kick: impl FnMut(),
        gone: impl Fn() -> bool,
    ) -> Option<Vec<S>> {
        let mut inner = self.inner.lock().ok()?;
        loop {
            if inner.parked.iter().all(Option::is_some) {
                return Some(inner.parked.iter_mut().filter_map(Option::take).collect());
            }
            if gone() || Instant::now() >= deadline {
                return None;
            }
            kick();
            inner = self.changed.wait_timeout(inner, tick).ok()?.0;
        }
    }

    /// Lets every parked thread go on; no thread parks after this.
    pub fn release(&self) {
        self.wanted.store(false, Ordering::SeqCst);
        if let Ok(mut inner) = self.inner.lock() {
            inner.released = true;
        }
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_thread_parks_with_its_state_and_goes_on_once_released() {
        let pause = Pause::<usize>::new(3);
        let went_on = AtomicUsize::new(0);
        assert!(!pause.wanted());
        std::thread::scope(|scope| {
            for index in 0..3 {
                let (pause, went_on) = (&pause, &went_on);
                scope.spawn(move || {
                    while !pause.wanted() {
                        std::thread::yield_now();
                    }
                    pause.park(index, index * 10);
                    went_on.fetch_add(1, Ordering::SeqCst);
                });
            }
            assert!(pause.request());
            assert!(!pause.request(), "a guest pauses once");
            let kicks = AtomicUsize::new(0);
            let states = pause
                .wait_all(
                    Duration::from_millis(1),
                    Instant::now() + Duration::from_secs(30),
                    || {
                        kicks.fetch_add(1, Ordering::SeqCst);
                    },
                    || false,
                )
                .unwrap();
            assert_eq!(states, [0, 10, 20]);
            assert_eq!(went_on.load(Ordering::SeqCst), 0, "parked until released");
            pause.release();
        });
        assert_eq!(went_on.load(Ordering::SeqCst), 3);
        assert!(!pause.wanted());
        // After the release nothing parks.
        pause.park(0, 1);
    }

    #[test]
    fn a_thread_that_never_parks_ends_the_wait() {
        let pause = Pause::<()>::new(2);
        pause.request();
        let started = Instant::now();
        assert!(pause
            .wait_all(
                Duration::from_millis(1),
                started + Duration::from_millis(50),
                || {},
                || false
            )
            .is_none());
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(pause
            .wait_all(
                Duration::from_millis(1),
                Instant::now() + Duration::from_secs(30),
                || {},
                || true
            )
            .is_none());
    }
}
