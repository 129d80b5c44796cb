//! `hostnet`: TCP across the sandbox's boundary, against a peer on the host side (see
//! `workload::hostnet` for what the two agree on): `--count` round trips of `--size`
//! bytes, then `--bulk-mib` MiB sent in one stream.
//!
//! With `--ifaddr`, the work first configures its interface the way any program does, by
//! ioctl on a datagram socket: the address (`SIOCSIFADDR`), the mask (`SIOCSIFNETMASK`)
//! and the up flag (`SIOCSIFFLAGS`), on loopback too. Where the interface is configured
//! from outside (a container's), the first connection is retried until the peer is
//! reachable or `--wait-ms` passes; nothing is timed before it succeeds.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use workload::hostnet::{IfAddr, Peer, BULK_WRITE, ECHO, SINK};
use workload::record::{Fact, Metric};

use super::{as_f64, mib_to_bytes, seconds, Done, Error};

/// What the work is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The peer on the host side.
    pub peer: Peer,
    /// Round trips.
    pub count: u64,
    /// Bytes per round-trip message.
    pub size: u64,
    /// MiB of the bulk transfer.
    pub bulk_mib: u64,
    /// The interface to configure first, if any.
    pub ifaddr: Option<IfAddr>,
    /// How long the peer may take to become reachable, ms.
    pub wait_ms: u64,
}

/// Runs the round trips and the bulk transfer against the peer.
pub fn run(options: &Options) -> Result<Done, Error> {
    let len = usize::try_from(options.size).map_err(|_| Error::TooLarge("--size"))?;
    let bulk = mib_to_bytes(options.bulk_mib, "--bulk-mib")?;
    if let Some(ifaddr) = &options.ifaddr {
        configure(ifaddr)?;
    }
    // Each connection may wait as long for the peer: the round trips before the second
    // can take longer than the wait itself (in an emulated machine, say).
    let wait = Duration::from_millis(options.wait_ms);
    let mut echo = connect(options.peer, ECHO, Instant::now() + wait)?;
    let local = echo.local()?;
    let mut message = vec![0x42u8; len];
    let start = Instant::now();
    for _ in 0..options.count {
        echo.write_all(&message)
            .and_then(|()| echo.read_exact(&mut message))
            .map_err(|e| Error::io("round trip", e))?;
    }
    let rtt = seconds(start.elapsed());
    drop(echo);

    let mut sink = connect(options.peer, SINK, Instant::now() + wait)?;
    let chunk = vec![0x5au8; BULK_WRITE];
    let mut writes = 0u64;
    let start = Instant::now();
    let mut left = bulk;
    while left > 0 {
        let n = left.min(BULK_WRITE);
        sink.write_all(&chunk[..n])
            .map_err(|e| Error::io("bulk write", e))?;
        left -= n;
        writes += 1;
    }
    sink.shut_write()
        .map_err(|e| Error::io("bulk shutdown", e))?;
    let mut ack = [0u8; 8];
    sink.read_exact(&mut ack)
        .map_err(|e| Error::io("the peer's count of the bulk bytes", e))?;
    let bulk_s = seconds(start.elapsed());
    let counted = u64::from_le_bytes(ack);
    if usize::try_from(counted).ok() != Some(bulk) {
        return Err(Error::io(
            "the bulk transfer",
            std::io::Error::other(format!("sent {bulk} bytes, the peer counted {counted}")),
        ));
    }
    let mib = as_f64(options.bulk_mib);
    Ok(Done {
        metrics: vec![
            Metric::new("rtt_us", rtt * 1e6 / as_f64(options.count), "µs"),
            Metric::new(
                "round_trips_per_s",
                as_f64(options.count) / rtt,
                "round trips/s",
            ),
            Metric::new("bulk_mib_per_s", mib / bulk_s, "MiB/s"),
            // Each round trip and each bulk write is one operation.
            Metric::new("operations", as_f64(options.count + writes), "operations"),
        ],
        held: None,
        facts: vec![
            Fact::new("local_addr", local),
            Fact::new("peer_addr", options.peer.to_string()),
        ],
    })
}

/// A connection to the peer, over TCP or vsock.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    /// A connected `AF_VSOCK` stream socket.
    Vsock(std::fs::File),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Vsock(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Vsock(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Stream {
    /// This end's address, for the record.
    fn local(&self) -> Result<String, Error> {
        match self {
            Stream::Tcp(s) => s
                .local_addr()
                .map(|a| a.to_string())
                .map_err(|e| Error::io("getsockname", e)),
            Stream::Vsock(s) => {
                // SAFETY: sockaddr_vm is plain data; all zero bytes is a valid value.
                let mut address: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
                let mut len = socklen::<libc::sockaddr_vm>();
                // SAFETY: `address` is a writable sockaddr_vm of `len` bytes, both valid
                // for the call; the descriptor is the open socket `s` owns.
                let rc = unsafe {
                    libc::getsockname(
                        s.as_raw_fd(),
                        (&raw mut address).cast::<libc::sockaddr>(),
                        &raw mut len,
                    )
                };
                match rc {
                    0 => Ok(format!("vsock:{}:{}", address.svm_cid, address.svm_port)),
                    _ => Err(Error::last_os("getsockname of the vsock socket")),
                }
            }
        }
    }

    /// Shuts the sending side down: the peer reads the end of the stream.
    fn shut_write(&self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            // SAFETY: shutdown takes a descriptor (the open socket `s` owns) and a flag.
            Stream::Vsock(s) => match unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_WR) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            },
        }
    }
}

/// `size_of::<T>()` as a socket address length.
fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

/// Connects to `peer` and says what the connection is for, retrying while the peer is
/// not yet reachable (no route, no address, nothing listening) until `deadline`.
fn connect(peer: Peer, purpose: u8, deadline: Instant) -> Result<Stream, Error> {
    let what = || format!("connect to the peer at {peer}");
    let mut stream = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = match peer {
            Peer::Tcp(address) => TcpStream::connect_timeout(
                &SocketAddr::V4(address),
                left.max(Duration::from_millis(1)),
            )
            .map(Stream::Tcp),
            Peer::Vsock { cid, port } => connect_vsock(cid, port).map(Stream::Vsock),
        };
        match attempt {
            Ok(stream) => break stream,
            Err(e) if retry(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(Error::io(what(), e)),
        }
    };
    if let Stream::Tcp(s) = &stream {
        s.set_nodelay(true)
            .map_err(|e| Error::io("set TCP_NODELAY", e))?;
    }
    stream
        .write_all(&[purpose])
        .map_err(|e| Error::io(what(), e))?;
    Ok(stream)
}

/// A stream socket connected to vsock `cid` at `port`.
fn connect_vsock(cid: u32, port: u32) -> std::io::Result<std::fs::File> {
    // SAFETY: socket takes integers and returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor just returned by socket and owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_vm is plain data; all zero bytes is a valid value.
    let mut address: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    address.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    address.svm_cid = cid;
    address.svm_port = port;
    // SAFETY: `address` is an initialised sockaddr_vm of the length given, valid for the
    // call; the descriptor is the socket made above.
    let rc = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&raw const address).cast::<libc::sockaddr>(),
            socklen::<libc::sockaddr_vm>(),
        )
    };
    match rc {
        0 => Ok(std::fs::File::from(socket)),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Whether a failed connect may succeed later: the interface or the peer not there yet.
fn retry(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable
    ) || matches!(
        e.raw_os_error(),
        // ENODEV: a guest whose vsock device the driver has not brought up yet.
        Some(libc::EADDRNOTAVAIL | libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENODEV)
    )
}

/// Configures `ifaddr` and brings it and loopback up, by ioctl.
fn configure(ifaddr: &IfAddr) -> Result<(), Error> {
    // SAFETY: socket takes integers and returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::last_os("socket(AF_INET) for the interface ioctls"));
    }
    // SAFETY: `fd` is a descriptor just returned by socket and owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = ifaddr.name();
    let what = |step: &str| format!("{step} of {name} ({ifaddr})");
    let mut request = ifreq(ifaddr.name_bytes());
    set_address(&mut request, ifaddr.address);
    ioctl(&socket, libc::SIOCSIFADDR, &mut request)
        .map_err(|e| Error::io(what("SIOCSIFADDR"), e))?;
    let mut request = ifreq(ifaddr.name_bytes());
    set_address(&mut request, ifaddr.netmask());
    ioctl(&socket, libc::SIOCSIFNETMASK, &mut request)
        .map_err(|e| Error::io(what("SIOCSIFNETMASK"), e))?;
    up(&socket, ifaddr.name_bytes()).map_err(|e| Error::io(what("SIOCSIFFLAGS"), e))?;
    let mut lo = [0u8; 16];
    lo[..2].copy_from_slice(b"lo");
    up(&socket, lo).map_err(|e| Error::io("SIOCSIFFLAGS of lo", e))
}

/// A zeroed request for the interface `name`.
fn ifreq(name: [u8; 16]) -> libc::ifreq {
    // SAFETY: ifreq is plain data (a name and a union of integers and addresses), for
    // which all zero bytes are a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in request.ifr_name.iter_mut().zip(name) {
        *to = libc::c_char::from_ne_bytes([from]);
    }
    request
}

/// Puts `address` in the request's address, as an AF_INET socket address.
fn set_address(request: &mut libc::ifreq, address: Ipv4Addr) {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(address).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: the union's address member is a sockaddr, which a sockaddr_in fits in
    // (both 16 bytes); writing a union member is a plain store.
    unsafe {
        std::ptr::write(
            (&raw mut request.ifr_ifru.ifru_addr).cast::<libc::sockaddr_in>(),
            sin,
        );
    }
}

/// Sets the up flag of interface `name`, keeping its other flags.
fn up(socket: &OwnedFd, name: [u8; 16]) -> std::io::Result<()> {
    let mut request = ifreq(name);
    ioctl(socket, libc::SIOCGIFFLAGS, &mut request)?;
    // SAFETY: SIOCGIFFLAGS filled the union's flags member.
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    request.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    ioctl(socket, libc::SIOCSIFFLAGS, &mut request)
}

/// One interface ioctl.
fn ioctl(socket: &OwnedFd, request: libc::Ioctl, data: &mut libc::ifreq) -> std::io::Result<()> {
    // SAFETY: the SIOC[GS]IF* requests read and write one `ifreq`, which `data` is,
    // valid and exclusively borrowed for the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), request, std::ptr::from_mut(data)) };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV4;

    #[test]
    fn a_peer_that_is_not_there_yet_is_retried_and_a_refusal_at_the_deadline_is_an_error() {
        // Nothing listens on this loopback port (bound, then closed).
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let peer = Peer::Tcp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let started = Instant::now();
        let e = connect(peer, ECHO, Instant::now() + Duration::from_millis(50)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(
            e.to_string()
                .contains(&format!("connect to the peer at {peer}")),
            "{e}"
        );
    }

    #[test]
    fn the_work_runs_against_a_peer_and_counts_what_it_sent() {
        use std::net::TcpListener;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let std::net::SocketAddr::V4(peer) = listener.local_addr().unwrap() else {
            unreachable!()
        };
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut c, _) = listener.accept().unwrap();
                let mut purpose = [0u8];
                c.read_exact(&mut purpose).unwrap();
                let mut buf = vec![0u8; 65536];
                let mut total = 0u64;
                loop {
                    let n = c.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                    if purpose[0] == ECHO {
                        c.write_all(&buf[..n]).unwrap();
                    }
                }
                if purpose[0] == SINK {
                    c.write_all(&total.to_le_bytes()).unwrap();
                }
            }
        });
        let done = run(&Options {
            peer: Peer::Tcp(peer),
            count: 100,
            size: 64,
            bulk_mib: 2,
            ifaddr: None,
            wait_ms: 1000,
        })
        .unwrap();
        server.join().unwrap();
        let metric = |name| done.metrics.iter().find(|m| m.name == name).unwrap().value;
        assert!(metric("rtt_us") > 0.0);
        assert!(metric("bulk_mib_per_s") > 0.0);
        // 100 round trips and 2 MiB in 64 KiB writes.
        assert_eq!(metric("operations"), 132.0);
        assert!(done
            .facts
            .iter()
            .any(|f| f.name == "local_addr" && f.value.starts_with("127.0.0.1:")));
    }
}
