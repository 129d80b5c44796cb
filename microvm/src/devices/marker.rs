//! The marker device: the guest writes a byte code to its port and the monitor records the
//! host's `CLOCK_MONOTONIC` at that exit. Guest and host clocks never mix: the stamp is the
//! host's, taken when the guest's write reached it.

use std::sync::{Arc, Mutex};

use crate::bus::{Action, BusDevice};

/// At most this many markers are kept with their stamps; more are only counted.
pub const KEPT: usize = 4096;

/// What the marker device saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markers {
    /// (code, CLOCK_MONOTONIC ns), in order, the first [`KEPT`].
    pub stamps: Vec<(u8, u64)>,
    /// Every write, counted.
    pub writes: u64,
    /// The last write's code and stamp (kept even past [`KEPT`]).
    pub last: Option<(u8, u64)>,
}

/// The device; the shared record is read by the monitor after the run.
#[derive(Debug, Default)]
pub struct Marker {
    seen: Arc<Mutex<Markers>>,
}

impl Marker {
    /// A marker device and a handle on what it sees.
    pub fn new() -> (Self, Arc<Mutex<Markers>>) {
        let seen = Arc::new(Mutex::new(Markers::default()));
        (
            Marker {
                seen: Arc::clone(&seen),
            },
            seen,
        )
    }

    /// A second door onto the same record (the marker answers on a port and at an MMIO
    /// address, as Firecracker's boot timer moved from one to the other).
    pub fn sharing(seen: &Arc<Mutex<Markers>>) -> Self {
        Marker {
            seen: Arc::clone(seen),
        }
    }
}

impl BusDevice for Marker {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) -> Action {
        let stamp = crate::monotonic_ns();
        let code = data.first().copied().unwrap_or(0);
        if let Ok(mut seen) = self.seen.lock() {
            seen.writes += 1;
            seen.last = Some((code, stamp));
            if seen.stamps.len() < KEPT {
                seen.stamps.push((code, stamp));
            }
        }
        Action::None
    }
}
