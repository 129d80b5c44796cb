//! `net`: TCP ping-pong over loopback, one connection, `TCP_NODELAY`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use workload::record::Metric;

use super::{as_f64, seconds, Error};

/// Sends `count` messages of `size` bytes to an echo thread and times the round trips.
pub fn run(count: u64, size: u64) -> Result<Vec<Metric>, Error> {
    let len = usize::try_from(size).map_err(|_| Error::TooLarge("--size"))?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("bind 127.0.0.1 (is loopback up?)", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("getsockname", e))?;
    let echo = thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        conn.set_nodelay(true)?;
        let mut buf = vec![0u8; len];
        loop {
            match conn.read_exact(&mut buf) {
                Ok(()) => conn.write_all(&buf)?,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let mut client =
        TcpStream::connect(addr).map_err(|e| Error::io(format!("connect {addr}"), e))?;
    client
        .set_nodelay(true)
        .map_err(|e| Error::io("set TCP_NODELAY", e))?;
    let mut message = vec![0x42u8; len];
    let start = Instant::now();
    for _ in 0..count {
        client
            .write_all(&message)
            .and_then(|()| client.read_exact(&mut message))
            .map_err(|e| Error::io("round trip", e))?;
    }
    let elapsed = seconds(start.elapsed());
    drop(client);
    match echo.join() {
        Ok(result) => result.map_err(|e| Error::io("echo thread", e))?,
        Err(_) => return Err(Error::io("echo thread", std::io::Error::other("panicked"))),
    }
    Ok(vec![
        Metric::new("rtt_us", elapsed * 1e6 / as_f64(count), "µs"),
        Metric::new(
            "round_trips_per_s",
            as_f64(count) / elapsed,
            "round trips/s",
        ),
    ])
}
