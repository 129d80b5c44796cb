//! Watching an instance's output: the workload's records on one pipe, its diagnostics on
//! another, both read from before the instance starts by the one thread that reads every
//! instance's pipes ([`readers`](super::readers)), so every record is stamped the moment
//! it arrives. Events wait in a bounded queue: an instance that writes
//! faster than the runner reads waits on its pipe instead of growing the host's memory.
//! Output comes as lines ([`watch`]) or, where marker bytes land among console text, as
//! raw reads ([`watch_bytes`]).

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Instant;

use workload::record;

use super::protocol::{Error, Event};
use super::readers::{self, Flow, Stream};
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
    /// Ends (its sender dropped) once standard output has been read to its end.
    records: Option<Receiver<()>>,
    /// The tail of standard error, once it has ended.
    diagnostics: Option<Receiver<String>>,
    closed: bool,
}

/// Makes the pipes and has them read; `handler` reads standard output, in lines of at
/// most `max_line` bytes.
pub fn watch(handler: LineHandler, max_line: usize) -> Result<(Outputs, Watch), Error> {
    start(move |deliver| {
        Box::new(Lines {
            splitter: Splitter::new(max_line),
            handler,
            deliver,
        })
    })
}

/// Makes the pipes and has them read; `handler` reads standard output as it comes, one
/// read at a time.
pub fn watch_bytes(handler: ByteHandler) -> Result<(Outputs, Watch), Error> {
    start(move |deliver| Box::new(Bytes { handler, deliver }))
}

/// Makes the pipes and hands their read ends to the one reading thread
/// ([`readers`](super::readers)): standard output to the stream `make` builds, standard
/// error to a tail.
fn start(make: impl FnOnce(Deliver) -> Box<dyn Stream>) -> Result<(Outputs, Watch), Error> {
    let pipe_error = |source| Error::Spawn {
        what: "the output pipes".to_owned(),
        source,
    };
    let (out_read, out_write) = std::io::pipe().map_err(pipe_error)?;
    let (err_read, err_write) = std::io::pipe().map_err(pipe_error)?;
    let (sender, events) = mpsc::sync_channel(QUEUE);
    let (records_done, records) = mpsc::channel();
    let (tail_done, diagnostics) = mpsc::channel();
    let deliver = Deliver {
        sender,
        pending: VecDeque::new(),
        listening: true,
        _done: records_done,
    };
    let reader_error = |source| Error::Spawn {
        what: "the output readers".to_owned(),
        source,
    };
    readers::add(out_read.into(), make(deliver)).map_err(reader_error)?;
    readers::add(
        err_read.into(),
        Box::new(Tail {
            kept: Vec::new(),
            keep: DIAGNOSTIC_TAIL,
            done: Some(tail_done),
        }),
    )
    .map_err(reader_error)?;
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
            .and_then(|tail| tail.recv().ok())
            .unwrap_or_default()
    }

    /// Waits for both pipes to be read to their end (the instance must be gone).
    pub fn join(&mut self) {
        // Events nobody will take: the reader drains the pipe without handing them on.
        let (_, gone) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.events, gone));
        if let Some(records) = self.records.take() {
            // Returns once the stream is dropped, at the pipe's end.
            let _ended = records.recv();
        }
        drop(self.diagnostics());
    }
}

/// Hands events on to the watch's queue, keeping those it cannot take yet; once the
/// watch is gone, drops them.
struct Deliver {
    sender: SyncSender<Result<Event, Error>>,
    pending: VecDeque<Result<Event, Error>>,
    listening: bool,
    /// Dropped with the stream, at the end of the pipe: what [`Watch::join`] waits for.
    _done: mpsc::Sender<()>,
}

impl Deliver {
    fn send(&mut self, event: Result<Event, Error>) {
        if self.listening {
            self.pending.push_back(event);
        }
    }

    /// Hands on what waits; [`Flow::Stall`] while the queue is full.
    fn flush(&mut self) -> Flow {
        while let Some(event) = self.pending.pop_front() {
            match self.sender.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.pending.push_front(event);
                    return Flow::Stall;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.listening = false;
                    self.pending.clear();
                }
            }
        }
        Flow::Go
    }
}

/// Standard output as lines.
struct Lines {
    splitter: Splitter,
    handler: LineHandler,
    deliver: Deliver,
}

impl Stream for Lines {
    fn data(&mut self, bytes: &[u8], at: Stamp) -> Flow {
        if self.deliver.listening {
            let (handler, deliver) = (&mut self.handler, &mut self.deliver);
            self.splitter.push(bytes, &mut |line| match line {
                Ok(line) => handler(&String::from_utf8_lossy(line), at)
                    .into_iter()
                    .for_each(|e| deliver.send(e)),
                Err(e) => deliver.send(Err(e)),
            });
        }
        self.deliver.flush()
    }

    fn end(&mut self, at: Stamp) -> Flow {
        self.deliver.send(Ok(Event::Closed { at }));
        self.deliver.flush()
    }

    fn flush(&mut self) -> Flow {
        self.deliver.flush()
    }
}

/// Standard output as it comes.
struct Bytes {
    handler: ByteHandler,
    deliver: Deliver,
}

impl Stream for Bytes {
    fn data(&mut self, bytes: &[u8], at: Stamp) -> Flow {
        if self.deliver.listening {
            for event in (self.handler)(bytes, at) {
                self.deliver.send(event);
            }
        }
        self.deliver.flush()
    }

    fn end(&mut self, at: Stamp) -> Flow {
        self.deliver.send(Ok(Event::Closed { at }));
        self.deliver.flush()
    }

    fn flush(&mut self) -> Flow {
        self.deliver.flush()
    }
}

/// The last `keep` bytes of standard error, handed over at its end.
struct Tail {
    kept: Vec<u8>,
    keep: usize,
    done: Option<mpsc::Sender<String>>,
}

impl Stream for Tail {
    fn data(&mut self, bytes: &[u8], _at: Stamp) -> Flow {
        keep_tail(&mut self.kept, bytes, self.keep);
        Flow::Go
    }

    fn end(&mut self, _at: Stamp) -> Flow {
        if let Some(done) = self.done.take() {
            drop(done.send(String::from_utf8_lossy(&self.kept).trim().to_owned()));
        }
        Flow::Go
    }

    fn flush(&mut self) -> Flow {
        Flow::Go
    }
}

fn keep_tail(kept: &mut Vec<u8>, bytes: &[u8], keep: usize) {
    kept.extend_from_slice(bytes);
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
    }
}

/// A complete line, ending included, or the error of an overlong one.
type Line<'a> = Result<&'a [u8], Error>;

/// Cuts a stream into lines of at most `max_line` bytes; a longer one becomes one error,
/// and the rest of it, up to its line ending, is dropped.
struct Splitter {
    line: Vec<u8>,
    overlong: bool,
    max_line: usize,
}

impl Splitter {
    fn new(max_line: usize) -> Self {
        Splitter {
            line: Vec::new(),
            overlong: false,
            max_line,
        }
    }

    /// Takes `bytes`, handing each complete line (ending included) or overlong error on.
    fn push(&mut self, bytes: &[u8], out: &mut dyn FnMut(Line<'_>)) {
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            let ends = piece.last() == Some(&b'\n');
            if !self.overlong {
                if self.line.len() + piece.len() > self.max_line {
                    self.overlong = true;
                    self.line.clear();
                    out(Err(Error::LineTooLong(self.max_line)));
                } else {
                    self.line.extend_from_slice(piece);
                }
            }
            if ends {
                if !self.overlong {
                    out(Ok(&self.line));
                }
                self.line.clear();
                self.overlong = false;
            }
        }
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
        keep_tail(&mut kept, &buf[..n], keep);
    }
    String::from_utf8_lossy(&kept).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8]) -> Vec<Result<String, String>> {
        let mut splitter = Splitter::new(MAX_LINE);
        let mut lines = Vec::new();
        // In uneven pieces, as reads of a pipe come.
        for chunk in input.chunks(5000) {
            splitter.push(chunk, &mut |line| {
                lines.push(
                    line.map(|l| String::from_utf8_lossy(l).into_owned())
                        .map_err(|e| e.to_string()),
                )
            });
        }
        lines
    }

    #[test]
    fn a_watch_sees_every_record_then_the_end_and_the_tail_of_its_errors() {
        let (outputs, mut watch) = watch(records(), MAX_LINE).expect("watch");
        let mut out = std::fs::File::from(outputs.stdout);
        let mut err = std::fs::File::from(outputs.stderr);
        let line =
            "@vcbench {\"record\":\"started\",\"workload\":\"w\",\"pid\":1,\"pid1\":false}\n";
        // More than the queue and the pipe hold: the writer waits while the watch is
        // not taking them, and nothing is lost.
        let writer = std::thread::spawn(move || {
            for _ in 0..QUEUE * 2 {
                std::io::Write::write_all(&mut out, line.as_bytes()).expect("write");
            }
            std::io::Write::write_all(&mut err, b"last words").expect("write");
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        let until = Instant::now() + std::time::Duration::from_secs(20);
        let mut records = 0;
        loop {
            match watch.next_event(until).expect("an event") {
                Some(Event::Record { .. }) => records += 1,
                Some(Event::Closed { .. }) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(records, QUEUE * 2);
        writer.join().expect("the writer");
        assert_eq!(watch.diagnostics(), "last words");
        watch.join();
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
