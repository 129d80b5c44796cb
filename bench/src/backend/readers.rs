//! One thread reads the output pipes of every instance, through epoll(7): the harness's
//! own size then stays constant as instances pile up (a thread per pipe made two threads
//! per instance, thousands of them at a thousand instances, each with a stack the kernel
//! had to map and schedule), and a read is stamped the moment it returns, as before.
//!
//! A [`Stream`] gets each read and the end of its pipe. One that cannot hand its events on
//! (its consumer's queue is full) says so, and its pipe is not read again until the
//! events have gone: the writer then waits on its pipe instead of the host's memory
//! growing. Stalled streams are retried every [`RETRY`].

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::clock::Stamp;

/// How often a stalled stream tries again to hand its events on.
pub const RETRY: Duration = Duration::from_millis(10);

/// Bytes taken from a pipe in one read.
const READ: usize = 8192;

/// Whether a stream takes more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read on.
    Go,
    /// Events are waiting to be handed on: do not read until [`Stream::flush`] says so.
    Stall,
}

/// What reads one pipe.
pub trait Stream: Send {
    /// `bytes` were read at `at`.
    fn data(&mut self, bytes: &[u8], at: Stamp) -> Flow;
    /// The pipe ended (every writer closed it, or reading failed) at `at`.
    fn end(&mut self, at: Stamp) -> Flow;
    /// Tries again to hand on waiting events; [`Flow::Go`] once none wait.
    fn flush(&mut self) -> Flow;
}

struct Entry {
    fd: OwnedFd,
    stream: Box<dyn Stream>,
    ended: bool,
}

struct Reactor {
    epoll: OwnedFd,
    entries: Mutex<HashMap<u64, Entry>>,
    next: std::sync::atomic::AtomicU64,
}

fn reactor() -> std::io::Result<&'static Reactor> {
    static REACTOR: OnceLock<Result<Reactor, i32>> = OnceLock::new();
    let made = REACTOR.get_or_init(|| {
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        // SAFETY: the descriptor was just made and is owned by nothing else.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Reactor {
            epoll,
            entries: Mutex::new(HashMap::new()),
            next: std::sync::atomic::AtomicU64::new(0),
        })
    });
    match made {
        Ok(reactor) => {
            static STARTED: OnceLock<std::io::Result<()>> = OnceLock::new();
            let started = STARTED.get_or_init(|| {
                std::thread::Builder::new()
                    .name("readers".to_owned())
                    .spawn(move || reactor.run())
                    .map(drop)
            });
            match started {
                Ok(()) => Ok(reactor),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            }
        }
        Err(errno) => Err(std::io::Error::from_raw_os_error(*errno)),
    }
}

/// Reads `fd` (a pipe's read end) into `stream` until it ends.
pub fn add(fd: OwnedFd, stream: Box<dyn Stream>) -> std::io::Result<()> {
    let reactor = reactor()?;
    // SAFETY: F_GETFL on a descriptor this function owns.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: F_SETFL on a descriptor this function owns.
    let set = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    if set < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let token = reactor
        .next
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let raw = fd.as_raw_fd();
    let mut entries = reactor.entries.lock().unwrap_or_else(|e| e.into_inner());
    entries.insert(
        token,
        Entry {
            fd,
            stream,
            ended: false,
        },
    );
    if let Err(e) = reactor.control(libc::EPOLL_CTL_ADD, raw, token, libc::EPOLLIN as u32) {
        entries.remove(&token);
        return Err(e);
    }
    Ok(())
}

impl Reactor {
    fn control(
        &self,
        op: libc::c_int,
        fd: libc::c_int,
        token: u64,
        events: u32,
    ) -> std::io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: a valid epoll descriptor, an open descriptor and a valid event.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops reading `token`'s pipe and drops it (closing the pipe) with its stream.
    fn remove(&self, entries: &mut HashMap<u64, Entry>, token: u64) {
        if let Some(entry) = entries.remove(&token) {
            drop(self.control(libc::EPOLL_CTL_DEL, entry.fd.as_raw_fd(), token, 0));
        }
    }

    fn run(&self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
        let mut stalled: BTreeSet<u64> = BTreeSet::new();
        let mut buf = vec![0u8; READ];
        loop {
            let timeout = if stalled.is_empty() {
                -1
            } else {
                i32::try_from(RETRY.as_millis()).unwrap_or(10)
            };
            // SAFETY: `events` has room for its length of entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    i32::try_from(events.len()).unwrap_or(64),
                    timeout,
                )
            };
            let ready = usize::try_from(n).unwrap_or(0);
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            stalled.retain(|&token| {
                let Some(entry) = entries.get_mut(&token) else {
                    return false;
                };
                if entry.stream.flush() == Flow::Stall {
                    return true;
                }
                if entry.ended {
                    self.remove(&mut entries, token);
                } else {
                    let fd = entry.fd.as_raw_fd();
                    drop(self.control(libc::EPOLL_CTL_MOD, fd, token, libc::EPOLLIN as u32));
                }
                false
            });
            for event in &events[..ready] {
                let token = event.u64;
                let Some(entry) = entries.get_mut(&token) else {
                    continue;
                };
                if entry.ended || stalled.contains(&token) {
                    continue;
                }
                let fd = entry.fd.as_raw_fd();
                // SAFETY: `buf` is valid for its length; `fd` is open while its entry is.
                let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                let at = Stamp::now();
                let flow = match usize::try_from(got) {
                    Ok(0) => {
                        entry.ended = true;
                        entry.stream.end(at)
                    }
                    Ok(n) => entry.stream.data(&buf[..n], at),
                    Err(_) => match std::io::Error::last_os_error().kind() {
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => {
                            continue
                        }
                        _ => {
                            entry.ended = true;
                            entry.stream.end(at)
                        }
                    },
                };
                match (flow, entry.ended) {
                    (Flow::Go, true) => self.remove(&mut entries, token),
                    (Flow::Go, false) => {}
                    (Flow::Stall, _) => {
                        drop(self.control(libc::EPOLL_CTL_MOD, fd, token, 0));
                        stalled.insert(token);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::mpsc;

    /// Collects what it reads, hands it over at the end.
    struct Collect {
        got: Vec<u8>,
        done: mpsc::Sender<Vec<u8>>,
    }

    impl Stream for Collect {
        fn data(&mut self, bytes: &[u8], _at: Stamp) -> Flow {
            self.got.extend_from_slice(bytes);
            Flow::Go
        }
        fn end(&mut self, _at: Stamp) -> Flow {
            drop(self.done.send(std::mem::take(&mut self.got)));
            Flow::Go
        }
        fn flush(&mut self) -> Flow {
            Flow::Go
        }
    }

    #[test]
    fn many_pipes_are_read_to_their_end_by_one_thread() {
        let (done, results) = mpsc::channel();
        let mut writers = Vec::new();
        for _ in 0..50 {
            let (read, write) = std::io::pipe().expect("pipe");
            add(
                read.into(),
                Box::new(Collect {
                    got: Vec::new(),
                    done: done.clone(),
                }),
            )
            .expect("add");
            writers.push(write);
        }
        for (i, w) in writers.iter_mut().enumerate() {
            w.write_all(format!("pipe {i}\n").repeat(1000).as_bytes())
                .expect("write");
        }
        drop(writers);
        let mut all: Vec<Vec<u8>> = (0..50)
            .map(|_| {
                results
                    .recv_timeout(Duration::from_secs(10))
                    .expect("ended")
            })
            .collect();
        all.sort();
        let mut want: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("pipe {i}\n").repeat(1000).into_bytes())
            .collect();
        want.sort();
        assert_eq!(all, want);
    }
}
