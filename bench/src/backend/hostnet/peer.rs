//! The host-side peer of the `hostnet` work: a listening socket opened inside the run's
//! network namespace, and threads of the harness that serve each connection as its first
//! byte asks (`workload::hostnet`): echo every byte, or count the bytes to the end and
//! answer with the count. Every backend's instances talk to this one peer, so the host
//! side of each figure is the same code on the same host.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use workload::hostnet::{ECHO, SINK};

use super::netns::Namespace;

/// How often a connection's thread looks whether the peer is stopping.
pub(super) const POLL: Duration = Duration::from_millis(200);

/// Errors starting the peer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be opened in the namespace.
    #[error("cannot listen on port {port} in the run's network namespace")]
    Listen {
        /// The port.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The namespace could not be entered.
    #[error(transparent)]
    Namespace(#[from] super::netns::Error),
    /// The accepting thread could not be started.
    #[error("cannot start the peer's thread")]
    Thread(#[source] std::io::Error),
}

/// The peer, serving until dropped.
#[derive(Debug)]
pub struct Peer {
    port: u16,
    stop: Arc<AtomicBool>,
    listener: Arc<TcpListener>,
    accepting: Option<JoinHandle<()>>,
    /// Where each connection came from, in order.
    seen: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Peer {
    /// Listens on `port` of every address of `namespace` (its loopback and the host ends
    /// of its links: nothing else is there) and serves connections until dropped.
    pub fn start(namespace: &Namespace, port: u16) -> Result<Self, Error> {
        let listen_error = |source| Error::Listen { port, source };
        let listener = namespace
            .enter(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))?
            .map_err(listen_error)?;
        let listener = Arc::new(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepting = {
            let (listener, stop, seen) =
                (Arc::clone(&listener), Arc::clone(&stop), Arc::clone(&seen));
            std::thread::Builder::new()
                .name("hostnet-peer".to_owned())
                .spawn(move || accept(&listener, &stop, &seen))
                .map_err(Error::Thread)?
        };
        Ok(Peer {
            port,
            stop,
            listener,
            accepting: Some(accepting),
            seen,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the connections so far came from.
    pub fn seen(&self) -> Vec<SocketAddr> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // SAFETY: shutdown takes the listener's descriptor, alive while `self.listener`
        // is; on a listening socket it wakes the accepting thread with an error.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(thread) = self.accepting.take() {
            drop(thread.join());
        }
    }
}

/// Accepts connections until `stop`, each served on a thread of its own; waits for them.
fn accept(listener: &TcpListener, stop: &Arc<AtomicBool>, seen: &Mutex<Vec<SocketAddr>>) {
    let mut serving: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let Ok((stream, from)) = listener.accept() else {
            // Out of descriptors, say: try again in a moment (a stop ends the loop).
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if let Ok(mut s) = seen.lock() {
            s.push(from);
        }
        serving.retain(|t| !t.is_finished());
        let stop = Arc::clone(stop);
        // A connection whose thread cannot start is dropped: closed, and its work fails.
        let handle = std::thread::Builder::new()
            .name("hostnet-conn".to_owned())
            .spawn(move || drop(serve(stream, &stop)));
        serving.extend(handle.ok());
    }
    for t in serving {
        drop(t.join());
    }
}

/// Serves one TCP connection as its first byte asks.
fn serve(mut stream: TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL))?;
    serve_stream(&mut stream, stop)
}

/// Serves one connection, TCP or vsock, as its first byte asks; reads must time out
/// every [`POLL`] so that a stop is seen.
pub(super) fn serve_stream<S: Read + Write>(
    stream: &mut S,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut purpose = [0u8];
    read_some(stream, &mut purpose, stop)?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = read_some(stream, &mut buffer, stop)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if purpose[0] == ECHO {
            stream.write_all(&buffer[..n])?;
        }
    }
    if purpose[0] == SINK {
        stream.write_all(&total.to_le_bytes())?;
    }
    Ok(())
}

/// One read, waiting in [`POLL`] steps until bytes come, the end, or `stop`.
fn read_some<S: Read>(
    stream: &mut S,
    buffer: &mut [u8],
    stop: &AtomicBool,
) -> std::io::Result<usize> {
    loop {
        match stream.read(buffer) {
            Ok(n) => return Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if stop.load(Ordering::SeqCst) {
                    return Err(std::io::Error::other("the peer is stopping"));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to a thread serving it as the peer does, over loopback.
    fn served(purpose: u8) -> (TcpStream, JoinHandle<std::io::Result<()>>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept()?;
            serve(stream, &AtomicBool::new(false))
        });
        let mut client = TcpStream::connect(address).unwrap();
        client.write_all(&[purpose]).unwrap();
        (client, server)
    }

    #[test]
    fn an_echo_connection_gets_every_byte_back() {
        let (mut client, server) = served(ECHO);
        for message in [&b"ping"[..], &[7u8; 64][..]] {
            client.write_all(message).unwrap();
            let mut back = vec![0u8; message.len()];
            client.read_exact(&mut back).unwrap();
            assert_eq!(back, message);
        }
        drop(client);
        server.join().unwrap().unwrap();
    }

    #[test]
    fn a_sink_connection_is_answered_with_its_byte_count_at_its_end() {
        let (mut client, server) = served(SINK);
        client.write_all(&vec![1u8; 300_000]).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut count = [0u8; 8];
        client.read_exact(&mut count).unwrap();
        assert_eq!(u64::from_le_bytes(count), 300_000);
        server.join().unwrap().unwrap();
    }

    #[test]
    fn a_silent_connection_ends_when_the_peer_stops() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().unwrap();
        let stop = AtomicBool::new(true);
        let e = serve(stream, &stop).unwrap_err();
        assert_eq!(e.to_string(), "the peer is stopping");
    }
}
