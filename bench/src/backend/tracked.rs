//! Instances tracked from launch to teardown in the runtime directory that
//! [`crate::registry`] keeps, so that what a killed `vcbench` left running is found and
//! ended by the next one.

use std::time::Instant;

use super::protocol::{Backend, Error, Event, Exit, Footprint, Instance, Launch};
use crate::clock::Stamp;
use crate::registry::{self, Entry};

/// Launches an instance of `backend` and tracks it until its teardown.
pub fn launch(backend: &dyn Backend, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
    let inner = backend.launch(launch)?;
    let entry = registry::track(backend.name(), &inner.pids());
    Ok(Box::new(Tracked {
        inner,
        _entry: entry,
    }))
}

/// An instance with its registry file.
struct Tracked {
    inner: Box<dyn Instance>,
    _entry: Option<Entry>,
}

impl Instance for Tracked {
    fn pids(&self) -> Vec<u32> {
        self.inner.pids()
    }
    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        self.inner.next_event(until)
    }
    fn release(&mut self) {
        self.inner.release();
    }
    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        self.inner.wait(until)
    }
    fn diagnostics(&mut self) -> String {
        self.inner.diagnostics()
    }
    fn footprint(&self) -> Footprint {
        self.inner.footprint()
    }
    fn phases(&mut self) -> Vec<(String, Stamp)> {
        self.inner.phases()
    }
    fn counters(&mut self) -> Vec<(String, u64)> {
        self.inner.counters()
    }
    fn teardown(self: Box<Self>) {
        let Tracked { inner, _entry } = *self;
        inner.teardown();
        // The file goes only once everything is released.
        drop(_entry);
    }
}
