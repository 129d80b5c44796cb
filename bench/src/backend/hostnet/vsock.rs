//! The host-side peer over vsock, for the `vsock` scenario: a VM's guest reaches its host
//! at CID 2 through the guest's virtio-vsock device, whose data path the host kernel
//! serves (vhost-vsock). The peer listens on an `AF_VSOCK` port the kernel picks, and
//! serves each connection as the TCP peer does ([`super::peer`]): the same bytes, the same
//! answers, so the two figures differ only in the channel.
//!
//! vsock is a channel between a host and its own VMs, addressed by context ID, not a
//! network: nothing on it leaves the machine, and a connection can only come from a guest
//! of this host.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::peer::{serve_stream, POLL};

/// The device through which the host kernel serves guests' vsock devices.
pub const VHOST_VSOCK: &str = "/dev/vhost-vsock";

/// Errors starting the vsock peer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket call failed.
    #[error("the vsock peer cannot {what}")]
    Socket {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The accepting thread could not be started.
    #[error("cannot start the vsock peer's thread")]
    Thread(#[source] std::io::Error),
}

fn last(what: &'static str) -> Error {
    Error::Socket {
        what,
        source: std::io::Error::last_os_error(),
    }
}

/// Whether this host serves guests' vsock devices to this user: `Err` says why not.
pub fn available() -> Result<(), String> {
    if !std::path::Path::new(VHOST_VSOCK).exists() {
        return Err(format!(
            "this host has no {VHOST_VSOCK} (the vhost_vsock module is not loaded), so a \
             guest's vsock device has no host side"
        ));
    }
    let path = std::ffi::CString::new(VHOST_VSOCK).map_err(|e| e.to_string())?;
    // SAFETY: access reads a NUL-terminated path, valid for the call.
    match unsafe { libc::access(path.as_ptr(), libc::R_OK | libc::W_OK) } {
        0 => Ok(()),
        _ => Err(format!(
            "this user may not open {VHOST_VSOCK} ({}): a guest's vsock device needs it",
            std::io::Error::last_os_error()
        )),
    }
}

/// The peer, serving until dropped.
#[derive(Debug)]
pub struct VsockPeer {
    port: u32,
    stop: Arc<AtomicBool>,
    accepting: Option<JoinHandle<()>>,
    /// The CID and port of each connection so far, in order.
    seen: Arc<Mutex<Vec<(u32, u32)>>>,
}

/// `size_of::<T>()` as a socket address length.
fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

/// A zeroed vsock address with `cid` and `port`.
fn address(cid: u32, port: u32) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain data; all zero bytes is a valid value.
    let mut a: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    a.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    a.svm_cid = cid;
    a.svm_port = port;
    a
}

impl VsockPeer {
    /// Listens on a free vsock port of the host (any CID: a guest reaches it at CID 2)
    /// and serves connections until dropped.
    pub fn start() -> Result<Self, Error> {
        // SAFETY: socket takes integers and returns a new descriptor or -1.
        let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(last("open an AF_VSOCK socket"));
        }
        // SAFETY: `fd` is a descriptor just returned by socket and owned by nothing else.
        let listener = unsafe { OwnedFd::from_raw_fd(fd) };
        let any = address(libc::VMADDR_CID_ANY, libc::VMADDR_PORT_ANY);
        // SAFETY: `any` is an initialised sockaddr_vm of the length given; the descriptor
        // is the socket made above.
        let rc = unsafe {
            libc::bind(
                listener.as_raw_fd(),
                (&raw const any).cast::<libc::sockaddr>(),
                socklen::<libc::sockaddr_vm>(),
            )
        };
        if rc != 0 {
            return Err(last("bind a port"));
        }
        // SAFETY: listen takes the socket's descriptor and a backlog.
        if unsafe { libc::listen(listener.as_raw_fd(), 16) } != 0 {
            return Err(last("listen"));
        }
        let mut bound = address(0, 0);
        let mut len = socklen::<libc::sockaddr_vm>();
        // SAFETY: `bound` is a writable sockaddr_vm of `len` bytes, both valid for the
        // call; the descriptor is the listening socket.
        let rc = unsafe {
            libc::getsockname(
                listener.as_raw_fd(),
                (&raw mut bound).cast::<libc::sockaddr>(),
                &raw mut len,
            )
        };
        if rc != 0 {
            return Err(last("read its port"));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepting = {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            std::thread::Builder::new()
                .name("vsock-peer".to_owned())
                .spawn(move || accept(&listener, &stop, &seen))
                .map_err(Error::Thread)?
        };
        Ok(VsockPeer {
            port: bound.svm_port,
            stop,
            accepting: Some(accepting),
            seen,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The CID and port each connection so far came from.
    pub fn seen(&self) -> Vec<(u32, u32)> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for VsockPeer {
    fn drop(&mut self) {
        // The accepting thread polls, and sees the stop within one POLL.
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.accepting.take() {
            drop(thread.join());
        }
    }
}

/// Accepts connections until `stop` (looking every [`POLL`]), each served on a thread of
/// its own; waits for them.
fn accept(listener: &OwnedFd, stop: &Arc<AtomicBool>, seen: &Mutex<Vec<(u32, u32)>>) {
    let mut serving: Vec<JoinHandle<()>> = Vec::new();
    let poll_ms = i32::try_from(POLL.as_millis()).unwrap_or(200);
    while !stop.load(Ordering::SeqCst) {
        let mut ready = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, exclusively borrowed for the call.
        if unsafe { libc::poll(&raw mut ready, 1, poll_ms) } <= 0 {
            continue;
        }
        let mut from = address(0, 0);
        let mut len = socklen::<libc::sockaddr_vm>();
        // SAFETY: `from` is a writable sockaddr_vm of `len` bytes, both valid for the
        // call; the descriptor is the listening socket.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                (&raw mut from).cast::<libc::sockaddr>(),
                &raw mut len,
                libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            continue;
        }
        // SAFETY: `fd` is a descriptor just returned by accept4 and owned by nothing else.
        let connection = unsafe { OwnedFd::from_raw_fd(fd) };
        if let Ok(mut s) = seen.lock() {
            s.push((from.svm_cid, from.svm_port));
        }
        serving.retain(|t| !t.is_finished());
        let stop = Arc::clone(stop);
        // A connection whose thread cannot start is dropped: closed, and its work fails.
        let handle = std::thread::Builder::new()
            .name("vsock-conn".to_owned())
            .spawn(move || drop(serve(connection, &stop)));
        serving.extend(handle.ok());
    }
    for t in serving {
        drop(t.join());
    }
}

/// Serves one connection: reads time out every [`POLL`], as the TCP peer's do.
fn serve(connection: OwnedFd, stop: &AtomicBool) -> std::io::Result<()> {
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: libc::suseconds_t::try_from(POLL.as_micros()).unwrap_or(200_000),
    };
    // SAFETY: SO_RCVTIMEO reads one timeval, valid for the call; the descriptor is the
    // connection's.
    let rc = unsafe {
        libc::setsockopt(
            connection.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast::<libc::c_void>(),
            socklen::<libc::timeval>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    serve_stream(&mut std::fs::File::from(connection), stop)
}

/// A guest CID of this process's own for the backend in `slot` (0 to 7): CIDs are
/// host-wide, so two runs on one host must not pick the same; one built from the process
/// ID keeps them apart.
pub fn guest_cid(slot: u32) -> u32 {
    // Process IDs are below 2^22; the result stays far below u32::MAX (VMADDR_CID_ANY).
    let pid = std::process::id() % (1 << 22);
    3 + pid * 8 + slot % 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_cids_are_guests_and_differ_by_slot() {
        let cids: Vec<u32> = (0..8).map(guest_cid).collect();
        for &cid in &cids {
            assert!((3..u32::MAX).contains(&cid), "{cid}");
        }
        let mut unique = cids.clone();
        unique.dedup();
        assert_eq!(unique.len(), 8);
    }

    #[test]
    fn a_host_without_vhost_vsock_says_so() {
        match available() {
            Ok(()) => assert!(std::path::Path::new(VHOST_VSOCK).exists()),
            Err(why) => assert!(why.contains(VHOST_VSOCK), "{why}"),
        }
    }

    #[test]
    fn the_peer_listens_on_a_port_of_its_own_and_stops_when_dropped() {
        let Ok(peer) = VsockPeer::start() else {
            eprintln!("skipped: this kernel has no AF_VSOCK");
            return;
        };
        let other = VsockPeer::start().unwrap();
        assert_ne!(peer.port(), other.port());
        assert_ne!(peer.port(), libc::VMADDR_PORT_ANY);
        let started = std::time::Instant::now();
        drop(peer);
        drop(other);
        assert!(started.elapsed() < POLL * 4);
    }
}
