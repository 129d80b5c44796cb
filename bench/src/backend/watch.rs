//! Watching an instance's output: the workload's records on one pipe, its diagnostics on
//! another, each read by a thread started before the instance is, so every record is
//! stamped the moment it arrives. Events wait in a bounded queue: an instance that writes
//! faster than the runner reads waits on its pipe instead of growing the host's memory.
//! Output comes as lines ([`watch`]) or, where marker bytes land among console text, as
//! raw reads ([`watch_bytes`]).

use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Instant;

use workload::record;

use super::protocol::{Error, Event};
use crate::clock::Stamp;

/// How much of the workload's standard error is kept for failure reports.
pub const DIAGNOSTIC_TAIL: usize = 4096;

/// The longest line of a workload's standard output read as one; a longer one is an
/// error, and the rest of it, up to its line ending, is dropped. A workload cannot make
/// the host buffer without end.
pub const MAX_LINE: usize = 64 * 1024;

/// The longest line of the microVM monitor's output: its report, which carries every
/// exit's timing, can be long.
pub const MONITOR_MAX_LINE: usize = 16 << 20;

/// Events read but not yet taken: a workload that writes faster than the runner reads
/// waits on its pipe instead of growing the host's memory.
const QUEUE: usize = 1024;

/// The write ends, for the instance's standard output and error.
pub struct Outputs {
    /// Where the workload writes its records (`VCBENCH_CHANNEL=stdout`).
    pub stdout: OwnedFd,
    /// Where it writes diagnostics.
    pub stderr: OwnedFd,
}

/// Turns one line of the instance's standard output, read at `at`, into events.
pub type LineHandler = Box<dyn FnMut(&str, Stamp) -> Vec<Result<Event, Error>> + Send>;

/// Turns one read of the instance's standard output, made at `at`, into events: for a
/// stream that is not lines (a guest's marker bytes among its console's text).
pub type ByteHandler = Box<dyn FnMut(&[u8], Stamp) -> Vec<Result<Event, Error>> + Send>;

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

/// Makes the pipes and starts the reader threads; `handler` reads standard output, in
/// lines of at most `max_line` bytes.
pub fn watch(mut handler: LineHandler, max_line: usize) -> Result<(Outputs, Watch), Error> {
    start(move |stdout, sender| read_lines(stdout, &mut handler, max_line, sender))
}

/// Makes the pipes and starts the reader threads; `handler` reads standard output as it
/// comes, one read at a time.
pub fn watch_bytes(mut handler: ByteHandler) -> Result<(Outputs, Watch), Error> {
    start(move |stdout, sender| read_bytes(stdout, &mut handler, sender))
}

/// Makes the pipes and starts the threads: `read` on standard output, a tail of standard
/// error.
fn start(
    read: impl FnOnce(std::io::PipeReader, &SyncSender<Result<Event, Error>>) + Send + 'static,
) -> Result<(Outputs, Watch), Error> {
    let pipe_error = |source| Error::Spawn {
        what: "the output pipes".to_owned(),
        source,
    };
    let (out_read, out_write) = std::io::pipe().map_err(pipe_error)?;
    let (err_read, err_write) = std::io::pipe().map_err(pipe_error)?;
    let (sender, events) = mpsc::sync_channel(QUEUE);
    let records = std::thread::spawn(move || read(out_read, &sender));
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
        // Events nobody will take: let the reader finish even if the queue is full.
        let (_, gone) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.events, gone));
        if let Some(records) = self.records.take() {
            drop(records.join());
        }
        drop(self.diagnostics());
    }
}

/// Reads `stream` to its end, handing each line to `handler` and its events to `sender`;
/// a line longer than `max_line` becomes one error. Once the receiver is gone, reads on
/// to the end without handling, so the writer never blocks.
fn read_lines(
    mut stream: impl Read,
    handler: &mut LineHandler,
    max_line: usize,
    sender: &SyncSender<Result<Event, Error>>,
) {
    let mut buf = [0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let mut overlong = false;
    let mut listening = true;
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        if !listening {
            continue;
        }
        let at = Stamp::now();
        for piece in buf[..n].split_inclusive(|b| *b == b'\n') {
            let ends = piece.last() == Some(&b'\n');
            if !overlong {
                if line.len() + piece.len() > max_line {
                    overlong = true;
                    line.clear();
                    listening &= sender.send(Err(Error::LineTooLong(max_line))).is_ok();
                } else {
                    line.extend_from_slice(piece);
                }
            }
            if ends {
                if !overlong {
                    for event in handler(&String::from_utf8_lossy(&line), at) {
                        listening &= sender.send(event).is_ok();
                    }
                }
                line.clear();
                overlong = false;
            }
        }
    }
    drop(sender.send(Ok(Event::Closed { at: Stamp::now() })));
}

/// Reads `stream` to its end, handing each read to `handler` and its events to `sender`.
/// Once the receiver is gone, reads on to the end without handling, so the writer never
/// blocks.
fn read_bytes(
    mut stream: impl Read,
    handler: &mut ByteHandler,
    sender: &SyncSender<Result<Event, Error>>,
) {
    let mut buf = [0u8; 4096];
    let mut listening = true;
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        if listening {
            for event in handler(&buf[..n], Stamp::now()) {
                listening &= sender.send(event).is_ok();
            }
        }
    }
    drop(sender.send(Ok(Event::Closed { at: Stamp::now() })));
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

    fn lines_of(input: &[u8]) -> Vec<Result<String, String>> {
        let mut handler: LineHandler = Box::new(|line, at| {
            vec![Ok(Event::Record {
                record: workload::record::Record::Error {
                    workload: "w".into(),
                    message: line.to_owned(),
                },
                at,
            })]
        });
        let (sender, events) = mpsc::sync_channel(QUEUE);
        read_lines(input, &mut handler, MAX_LINE, &sender);
        drop(sender);
        events
            .iter()
            .filter_map(|e| match e {
                Ok(Event::Record {
                    record: workload::record::Record::Error { message, .. },
                    ..
                }) => Some(Ok(message)),
                Ok(_) => None,
                Err(e) => Some(Err(e.to_string())),
            })
            .collect()
    }

    #[test]
    fn lines_are_split_and_an_overlong_one_is_one_error() {
        let mut input = b"one\ntwo\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE));
        input.extend(b"\nthree\npartial");
        let lines = lines_of(&input);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[0], Ok("one\n".to_owned()));
        assert_eq!(lines[1], Ok("two\n".to_owned()));
        assert!(lines[2].as_ref().is_err_and(|e| e.contains("65536")));
        assert_eq!(lines[3], Ok("three\n".to_owned()));
    }

    #[test]
    fn tail_keeps_the_end() {
        let data = "x".repeat(10_000) + "the end";
        let kept = tail(data.as_bytes(), 100);
        assert_eq!(kept.len(), 100);
        assert!(kept.ends_with("the end"));
    }
}
