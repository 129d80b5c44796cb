//! Watching an instance's output: the workload's records on one pipe, its diagnostics on
//! another, each read by a thread started before the instance is, so every record is
//! stamped the moment it arrives.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Instant;

use workload::record;

use super::{Error, Event};
use crate::clock::Stamp;

/// How much of the workload's standard error is kept for failure reports.
pub const DIAGNOSTIC_TAIL: usize = 4096;

/// The write ends, for the instance's standard output and error.
pub struct Outputs {
    /// Where the workload writes its records (`VCBENCH_CHANNEL=stdout`).
    pub stdout: OwnedFd,
    /// Where it writes diagnostics.
    pub stderr: OwnedFd,
}

/// Turns one line of the instance's standard output, read at `at`, into events.
pub type LineHandler = Box<dyn FnMut(&str, Stamp) -> Vec<Result<Event, Error>> + Send>;

/// The workload's own protocol: `@vcbench` record lines, stamped on arrival.
pub fn records() -> LineHandler {
    Box::new(|line, at| match record::parse_line(line) {
        Ok(None) => Vec::new(),
        Ok(Some(record)) => vec![Ok(Event::Record { record, at })],
        Err(e) => vec![Err(e.into())],
    })
}

/// The read side: events as they arrive, and the tail of the diagnostics.
pub struct Watch {
    events: Receiver<Result<Event, Error>>,
    records: Option<JoinHandle<()>>,
    diagnostics: Option<JoinHandle<String>>,
    closed: bool,
}

/// Makes the pipes and starts the reader threads; `handler` reads standard output.
pub fn watch(mut handler: LineHandler) -> Result<(Outputs, Watch), Error> {
    let pipe_error = |source| Error::Spawn {
        what: "the output pipes".to_owned(),
        source,
    };
    let (out_read, out_write) = std::io::pipe().map_err(pipe_error)?;
    let (err_read, err_write) = std::io::pipe().map_err(pipe_error)?;
    let (sender, events) = mpsc::channel();
    let records = std::thread::spawn(move || {
        let mut lines = BufReader::new(out_read);
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let at = Stamp::now();
                    for event in handler(&line, at) {
                        drop(sender.send(event));
                    }
                }
            }
        }
        drop(sender.send(Ok(Event::Closed { at: Stamp::now() })));
    });
    let diagnostics = std::thread::spawn(move || tail(err_read, DIAGNOSTIC_TAIL));
    Ok((
        Outputs {
            stdout: out_write.into(),
            stderr: err_write.into(),
        },
        Watch {
            events,
            records: Some(records),
            diagnostics: Some(diagnostics),
            closed: false,
        },
    ))
}

impl Watch {
    /// The next event, waiting no later than `until`; `Ok(None)` when `until` passed first
    /// or the stream has ended.
    pub fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        if self.closed {
            return Ok(None);
        }
        let timeout = until.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(timeout) {
            Ok(event) => {
                let event = event?;
                self.closed = matches!(event, Event::Closed { .. });
                Ok(Some(event))
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Ok(None),
        }
    }

    /// The last lines of diagnostics. Waits for the stream to end: call it after the
    /// instance has been reaped.
    pub fn diagnostics(&mut self) -> String {
        self.diagnostics
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    /// Waits for both reader threads (the instance must be gone).
    pub fn join(&mut self) {
        if let Some(records) = self.records.take() {
            drop(records.join());
        }
        drop(self.diagnostics());
    }
}

/// Reads `stream` to its end, keeping the last `keep` bytes as text.
pub fn tail(mut stream: impl Read, keep: usize) -> String {
    let mut kept: Vec<u8> = Vec::with_capacity(keep);
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > keep {
            kept.drain(..kept.len() - keep);
        }
    }
    String::from_utf8_lossy(&kept).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end() {
        let data = "x".repeat(10_000) + "the end";
        let kept = tail(data.as_bytes(), 100);
        assert_eq!(kept.len(), 100);
        assert!(kept.ends_with("the end"));
    }
}
