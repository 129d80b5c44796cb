//! The `native` backend: fork/exec of the workload on the host, the baseline.
//!
//! The workload writes its records on standard output (a pipe); a reader thread stamps
//! each line as it arrives. The instance runs in a process group of its own so that
//! everything it starts can be killed together, and it is reaped with wait4(2) for its
//! peak RSS. A pidfd (pidfd_open(2)) gives an exact wait with a timeout; kernels without
//! it fall back to polling every millisecond.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use workload::channel;
use workload::record;

use super::{Availability, Backend, Error, Event, Exit, Instance, Launch};
use crate::clock::Stamp;

/// How much of the workload's standard error is kept for failure reports.
const DIAGNOSTIC_TAIL: usize = 4096;

/// The native backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Native;

impl Backend for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn describe(&self) -> &'static str {
        "fork/exec of the workload on the host: the baseline the others are compared with"
    }

    fn availability(&self) -> Availability {
        Availability::Available
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        let mut child = Command::new(&launch.workload)
            .args(&launch.args)
            .env(channel::ENV, "stdout")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                what: launch.workload.display().to_string(),
                source,
            })?;
        let pid = child.id();
        let pidfd = pidfd_open(pid);
        let (sender, events) = mpsc::channel();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        // The child is reaped by `wait` through its PID; the handle is not needed.
        drop(child);
        let records = stdout.map(|out| {
            std::thread::spawn(move || {
                let mut lines = BufReader::new(out);
                let mut line = String::new();
                loop {
                    line.clear();
                    match lines.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let at = Stamp::now();
                            let event = record::parse_line(&line)
                                .map(|r| r.map(|record| Event::Record { record, at }));
                            match event {
                                Ok(None) => {}
                                Ok(Some(e)) => drop(sender.send(Ok(e))),
                                Err(e) => drop(sender.send(Err(e))),
                            }
                        }
                    }
                }
                drop(sender.send(Ok(Event::Closed { at: Stamp::now() })));
            })
        });
        let diagnostics = stderr.map(|err| std::thread::spawn(move || tail(err, DIAGNOSTIC_TAIL)));
        Ok(Box::new(NativeInstance {
            pid,
            pidfd,
            reaped: false,
            events,
            records,
            diagnostics,
        }))
    }
}

struct NativeInstance {
    pid: u32,
    pidfd: Option<OwnedFd>,
    reaped: bool,
    events: Receiver<Result<Event, record::Error>>,
    records: Option<JoinHandle<()>>,
    diagnostics: Option<JoinHandle<String>>,
}

impl NativeInstance {
    fn pid_t(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.pid).unwrap_or(libc::pid_t::MAX)
    }

    /// Sends `signal` to the instance's whole process group, while the group leader is
    /// still unreaped (so the group ID cannot have been reused).
    fn signal_group(&self, signal: libc::c_int) {
        if !self.reaped {
            // SAFETY: kill has no memory effects; the group ID is our unreaped child's PID.
            unsafe { libc::kill(-self.pid_t(), signal) };
        }
    }

    /// Waits until the child has exited or `until` passes; true if it exited.
    fn exited_by(&self, until: Instant) -> bool {
        match &self.pidfd {
            Some(fd) => {
                let timeout = until.saturating_duration_since(Instant::now());
                let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
                let mut poll = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                loop {
                    // SAFETY: `poll` points to one valid pollfd for the duration of the call.
                    let n = unsafe { libc::poll(&mut poll, 1, ms) };
                    if n >= 0
                        || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                    {
                        return n > 0;
                    }
                }
            }
            None => loop {
                // SAFETY: WNOWAIT leaves the child waitable; `info` is a valid out-pointer.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: waitid with a valid out-pointer; P_PID names our own child.
                let rc = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        self.pid,
                        &mut info,
                        libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                    )
                };
                // SAFETY: si_pid is valid to read after a successful waitid.
                if rc == 0 && unsafe { info.si_pid() } != 0 {
                    return true;
                }
                if Instant::now() >= until {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            },
        }
    }
}

impl Instance for NativeInstance {
    fn pids(&self) -> Vec<u32> {
        if self.reaped {
            Vec::new()
        } else {
            vec![self.pid]
        }
    }

    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        let timeout = until.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(timeout) {
            Ok(event) => Ok(Some(event?)),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Ok(None),
        }
    }

    fn release(&mut self) {
        if !self.reaped {
            // SAFETY: kill has no memory effects; the PID is our unreaped child.
            unsafe { libc::kill(self.pid_t(), libc::SIGTERM) };
        }
    }

    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        let timed_out = !self.exited_by(until);
        // Kill what is left of the group: all of it on a timeout, stragglers otherwise.
        self.signal_group(libc::SIGKILL);
        let mut status = 0;
        // SAFETY: rusage is plain data, filled by wait4 below.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = loop {
            // SAFETY: `status` and `usage` are valid out-pointers; the PID is our child.
            let rc = unsafe { libc::wait4(self.pid_t(), &mut status, 0, &mut usage) };
            if rc >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                break rc;
            }
        };
        let at = Stamp::now();
        if rc < 0 {
            return Err(Error::Wait(std::io::Error::last_os_error()));
        }
        self.reaped = true;
        Ok(Exit {
            status: decode_status(status),
            at,
            maxrss_kib: u64::try_from(usage.ru_maxrss).ok(),
            timed_out,
        })
    }

    fn diagnostics(&mut self) -> String {
        self.diagnostics
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    fn teardown(mut self: Box<Self>) {
        if !self.reaped {
            // Not waited for: kill and reap it so nothing is left behind.
            drop(self.wait(Instant::now()));
        }
        if let Some(records) = self.records.take() {
            drop(records.join());
        }
        drop(self.diagnostics());
    }
}

/// Exit status as a shell reports it: the code, or 128 + signal.
pub fn decode_status(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// A pidfd for `pid`, or `None` on kernels without pidfd_open(2).
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a PID and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::c_long::from(pid), 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads `stream` to its end, keeping the last `keep` bytes as text.
fn tail(mut stream: impl Read, keep: usize) -> String {
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

    #[test]
    fn statuses_decode_like_a_shell() {
        assert_eq!(decode_status(3 << 8), 3);
        assert_eq!(decode_status(libc::SIGKILL), 128 + 9);
    }
}
