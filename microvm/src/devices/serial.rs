//! The 16550 serial console (vm-superio), its output captured into a bounded buffer.

use std::io::Write;
use std::sync::{Arc, Mutex};

use vm_superio::{Serial, Trigger};

use crate::bus::{Action, BusDevice};

/// Most bytes of console output kept; the rest is counted as dropped.
pub const CAPTURE_MAX: usize = 64 * 1024;

/// Captured console output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    /// The first [`CAPTURE_MAX`] bytes.
    pub bytes: Vec<u8>,
    /// Bytes that did not fit.
    pub dropped: u64,
}

/// A writer into a shared, bounded capture.
#[derive(Debug, Clone)]
pub struct Sink(Arc<Mutex<Capture>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut c) = self.0.lock() {
            let room = CAPTURE_MAX.saturating_sub(c.bytes.len());
            let kept = buf.len().min(room);
            c.bytes.extend_from_slice(&buf[..kept]);
            c.dropped += (buf.len() - kept) as u64;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Interrupts are not wired for micro guests (they poll); the trigger does nothing.
#[derive(Debug)]
pub struct NoInterrupt;

impl Trigger for NoInterrupt {
    type E = std::convert::Infallible;

    fn trigger(&self) -> Result<(), Self::E> {
        Ok(())
    }
}

/// The serial device on the bus.
pub struct Console {
    serial: Serial<NoInterrupt, vm_superio::serial::NoEvents, Sink>,
}

impl Console {
    /// A console and a handle on its captured output.
    pub fn new() -> (Self, Arc<Mutex<Capture>>) {
        let capture = Arc::new(Mutex::new(Capture::default()));
        let serial = Serial::new(NoInterrupt, Sink(Arc::clone(&capture)));
        (Console { serial }, capture)
    }
}

impl BusDevice for Console {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value = self.serial.read(u8::try_from(offset).unwrap_or(0));
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Action {
        if let Some(&value) = data.first() {
            // The only error is a failed interrupt trigger, which cannot happen here.
            let _ = self.serial.write(u8::try_from(offset).unwrap_or(0), value);
        }
        Action::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_captured_and_bounded() {
        let (mut console, capture) = Console::new();
        for b in b"hi\n" {
            console.write(0, &[*b]);
        }
        assert_eq!(capture.lock().unwrap().bytes, b"hi\n");
        let mut sink = Sink(Arc::clone(&capture));
        sink.write_all(&vec![b'x'; CAPTURE_MAX]).unwrap();
        let c = capture.lock().unwrap();
        assert_eq!(c.bytes.len(), CAPTURE_MAX);
        assert_eq!(c.dropped, 3);
    }
}
