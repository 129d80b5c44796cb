//! Host timestamps: one clock, `CLOCK_MONOTONIC` ([`monotonic::now_ns`]), for every
//! marker of every backend.
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
        Stamp(monotonic::now_ns())
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

/// How long after a write to a pipe a thread blocked reading it takes its stamp: the
/// delay in every record stamped by a reader thread (native, containers, QEMU), which a
/// monitor stamping at the guest's exit does not have. The median of `trials` writes, in
/// ms; `None` when no pipe or thread could be made.
pub fn pipe_stamp_delay_ms(trials: u32) -> Option<f64> {
    use std::io::{Read, Write};
    let (mut reader, mut writer) = std::io::pipe().ok()?;
    let (sent, received) = std::sync::mpsc::channel::<Stamp>();
    let thread = std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        while reader.read_exact(&mut byte).is_ok() {
            if sent.send(Stamp::now()).is_err() {
                break;
            }
        }
    });
    let mut delays = Vec::new();
    for _ in 0..trials {
        // Let the reader block in read(2) first, as a record's reader waits on its pipe.
        std::thread::sleep(std::time::Duration::from_micros(200));
        let written = Stamp::now();
        writer.write_all(b"x").ok()?;
        let read = received.recv().ok()?;
        delays.push(read.ms_since(written));
    }
    drop(writer);
    thread.join().ok()?;
    stats::median(&delays)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_reader_stamps_after_the_write() {
        let delay = pipe_stamp_delay_ms(20).unwrap();
        // Not a timing goal: a delay exists and is not absurd.
        assert!(delay > 0.0 && delay < 1000.0, "{delay} ms");
    }

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
