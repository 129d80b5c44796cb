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

impl Markers {
    /// The mean time between consecutive writes from the first to the last, ns: `writes`
    /// stamps bound `writes - 1` round trips (guest resumed, its next write reached the
    /// monitor). For the `exits` guest, the cost of one exit round trip. `None` below three
    /// writes (the first and last markers with nothing between).
    pub fn ns_per_round_trip(&self) -> Option<f64> {
        let first = self.stamps.first()?.1;
        let last = self.last?.1;
        if self.writes < 3 {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        Some(last.saturating_sub(first) as f64 / (self.writes - 1) as f64)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_stamped_in_order_and_round_trips_averaged() {
        let (mut marker, seen) = Marker::new();
        for code in [1, 3, 3, 2] {
            marker.write(0, &[code]);
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.writes, 4);
        let codes: Vec<u8> = seen.stamps.iter().map(|s| s.0).collect();
        assert_eq!(codes, [1, 3, 3, 2]);
        assert!(seen.stamps.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(seen.last, seen.stamps.last().copied());
        let span = seen.stamps[3].1 - seen.stamps[0].1;
        #[allow(clippy::cast_precision_loss)]
        let expected = span as f64 / 3.0;
        assert_eq!(seen.ns_per_round_trip(), Some(expected));
        let two = Markers {
            stamps: vec![(1, 5), (2, 9)],
            writes: 2,
            last: Some((2, 9)),
        };
        assert_eq!(two.ns_per_round_trip(), None);
    }
}
