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

/// The guest's interrupt line for the UART: an eventfd that KVM turns into an interrupt on
/// its GSI (`KVM_IRQFD`), so the console works with interrupts as Linux drives it.
#[derive(Debug)]
pub struct IrqLine(pub vmm_sys_util::eventfd::EventFd);

impl Trigger for IrqLine {
    type E = std::io::Error;

    fn trigger(&self) -> Result<(), Self::E> {
        self.0.write(1)
    }
}

/// Called with each complete line of console output (without its line ending) and the
/// CLOCK_MONOTONIC time its last byte reached the monitor.
pub type LineHandler = Box<dyn FnMut(&str, u64) + Send>;

/// A writer into the capture that also hands complete lines to a [`LineHandler`].
pub struct LineSink {
    capture: Sink,
    partial: Vec<u8>,
    on_line: LineHandler,
}

/// The longest line handed over whole; a longer one is handed over in pieces.
pub const LINE_MAX: usize = 16 * 1024;

impl LineSink {
    /// A sink into `capture` that calls `on_line` per line.
    pub fn new(capture: &Arc<Mutex<Capture>>, on_line: LineHandler) -> Self {
        LineSink {
            capture: Sink(Arc::clone(capture)),
            partial: Vec::new(),
            on_line,
        }
    }
}

impl Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.capture.write(buf)?;
        for &byte in buf {
            if byte == b'\n' || self.partial.len() >= LINE_MAX {
                let line = String::from_utf8_lossy(&self.partial);
                (self.on_line)(line.trim_end_matches('\r'), crate::monotonic_ns());
                self.partial.clear();
                if byte == b'\n' {
                    continue;
                }
            }
            self.partial.push(byte);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The serial device on the bus: polled (micro guests) or with an interrupt line (Linux),
/// writing into a capture or a [`LineSink`].
pub struct Console<T: Trigger = NoInterrupt, W: Write = Sink> {
    serial: Serial<T, vm_superio::serial::NoEvents, W>,
}

impl Console {
    /// A polled console and a handle on its captured output.
    pub fn new() -> (Self, Arc<Mutex<Capture>>) {
        let capture = Arc::new(Mutex::new(Capture::default()));
        let serial = Serial::new(NoInterrupt, Sink(Arc::clone(&capture)));
        (Console { serial }, capture)
    }
}

impl Console<IrqLine, LineSink> {
    /// A console that raises `irq` and hands each line of output to `on_line`, and a handle
    /// on its captured output.
    pub fn with_interrupt(irq: IrqLine, on_line: LineHandler) -> (Self, Arc<Mutex<Capture>>) {
        let capture = Arc::new(Mutex::new(Capture::default()));
        let serial = Serial::new(irq, LineSink::new(&capture, on_line));
        (Console { serial }, capture)
    }
}

impl Console<IrqLine, LineSink> {
    /// Like [`Console::with_interrupt`], with the UART's registers and receive buffer as a
    /// snapshot saved them (an interrupt they show pending is raised again). `None` when
    /// the state holds more received bytes than the UART's FIFO.
    pub fn with_interrupt_from(
        state: &vm_superio::serial::SerialState,
        irq: IrqLine,
        on_line: LineHandler,
    ) -> Option<(Self, Arc<Mutex<Capture>>)> {
        let capture = Arc::new(Mutex::new(Capture::default()));
        let sink = LineSink::new(&capture, on_line);
        let serial = Serial::from_state(state, irq, vm_superio::serial::NoEvents, sink).ok()?;
        Some((Console { serial }, capture))
    }
}

impl<T: Trigger, W: Write> Console<T, W> {
    /// The UART's registers and receive buffer, for a snapshot.
    pub fn state(&self) -> vm_superio::serial::SerialState {
        self.serial.state()
    }
}

impl<T: Trigger + Send, W: Write + Send> BusDevice for Console<T, W> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value = self.serial.read(u8::try_from(offset).unwrap_or(0));
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Action {
        if let Some(&value) = data.first() {
            // The only error is a failed interrupt trigger: an eventfd write, which fails
            // only when its counter would overflow, i.e. never with one interrupt pending.
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

    #[test]
    fn lines_are_handed_over_whole_and_stamped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&seen);
        let capture = Arc::new(Mutex::new(Capture::default()));
        let mut sink = LineSink::new(
            &capture,
            Box::new(move |line, at| into.lock().unwrap().push((line.to_owned(), at))),
        );
        sink.write_all(b"boot\r\n@vcbench {\"a\"").unwrap();
        sink.write_all(b":1}\r\npartial").unwrap();
        let seen = seen.lock().unwrap();
        let lines: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(lines, ["boot", "@vcbench {\"a\":1}"]);
        assert!(seen[0].1 <= seen[1].1 && seen[0].1 > 0);
        assert_eq!(
            capture.lock().unwrap().bytes,
            b"boot\r\n@vcbench {\"a\":1}\r\npartial"
        );
    }
}
