//! What the `hostnet` work and its peer on the host agree on: the first byte of each
//! connection, which says what the peer does with it, and how an interface address is
//! written on the command line (`eth0=10.200.1.2/30`).
//!
//! The work opens two connections to the peer. On an [`ECHO`] connection the peer writes
//! back every byte it reads, at once (the round trips). On a [`SINK`] connection it reads
//! until the work shuts its side down, then writes the number of bytes it read as eight
//! bytes, little-endian, and closes (the bulk transfer: the work's clock stops when the
//! peer has every byte).
//!
//! The peer is reached over TCP (`ADDR:PORT`) or, from a VM's guest, over vsock
//! (`vsock:CID:PORT`, CID 2 being the host): the same two connections either way.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The first byte of a connection whose bytes the peer echoes.
pub const ECHO: u8 = b'E';
/// The first byte of a connection whose bytes the peer counts and acknowledges at its end.
pub const SINK: u8 = b'S';
/// The bytes of one write of the bulk transfer.
pub const BULK_WRITE: usize = 64 * 1024;

/// A bad interface address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not `NAME=ADDR/PREFIX`.
    #[error("{0:?} is not NAME=ADDR/PREFIX (e.g. eth0=10.200.1.2/30)")]
    Form(String),
    /// The interface name is empty, too long for the kernel (15 bytes) or not plain.
    #[error("{0:?} is not an interface name: 1 to 15 letters, digits, '.', '-' or '_'")]
    Name(String),
    /// The address is not an IPv4 address.
    #[error("{0:?} is not an IPv4 address")]
    Address(String),
    /// The prefix is not 1 to 32.
    #[error("{0:?} is not a prefix length from 1 to 32")]
    Prefix(String),
}

/// Where the peer listens: an IPv4 address and TCP port, or a vsock CID and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// TCP to `ADDR:PORT`.
    Tcp(std::net::SocketAddrV4),
    /// vsock (`AF_VSOCK`) to `vsock:CID:PORT`.
    Vsock {
        /// The context ID: 2 is the host.
        cid: u32,
        /// The port.
        port: u32,
    },
}

/// The vsock CID of the host, as a guest reaches it.
pub const HOST_CID: u32 = 2;

/// A peer that is neither form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither an IPv4 ADDR:PORT (e.g. 10.200.1.1:7000) nor vsock:CID:PORT (e.g. vsock:2:7000)")]
pub struct PeerError(pub String);

impl FromStr for Peer {
    type Err = PeerError;

    fn from_str(text: &str) -> Result<Self, PeerError> {
        let bad = || PeerError(text.to_owned());
        match text.strip_prefix("vsock:") {
            Some(rest) => {
                let (cid, port) = rest.split_once(':').ok_or_else(bad)?;
                let number = |t: &str| {
                    (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| t.parse::<u32>().ok())
                        .flatten()
                        .ok_or_else(bad)
                };
                Ok(Peer::Vsock {
                    cid: number(cid)?,
                    port: number(port)?,
                })
            }
            None => text.parse().map(Peer::Tcp).map_err(|_| bad()),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(address) => write!(f, "{address}"),
            Peer::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
        }
    }
}

/// An IPv4 address with its prefix on a named interface: `eth0=10.200.1.2/30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    name: [u8; 16],
    len: usize,
    /// The address.
    pub address: Ipv4Addr,
    /// The prefix length, 1 to 32.
    pub prefix: u8,
}

impl IfAddr {
    /// The interface's name.
    pub fn name(&self) -> &str {
        // Only ASCII was accepted.
        std::str::from_utf8(&self.name[..self.len]).unwrap_or_default()
    }

    /// The interface's name as the kernel's `ifr_name` holds it: NUL-padded to 16 bytes.
    pub fn name_bytes(&self) -> [u8; 16] {
        self.name
    }

    /// The network mask of the prefix.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX << (32 - u32::from(self.prefix)))
    }
}

impl FromStr for IfAddr {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let form = || Error::Form(text.to_owned());
        let (name, rest) = text.split_once('=').ok_or_else(form)?;
        let (address, prefix) = rest.split_once('/').ok_or_else(form)?;
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if name.is_empty() || name.len() > 15 || !name.chars().all(plain) {
            return Err(Error::Name(name.to_owned()));
        }
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| Error::Address(address.to_owned()))?;
        let prefix_error = || Error::Prefix(prefix.to_owned());
        let digits = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
        let prefix: u8 = digits
            .then(|| prefix.parse().ok())
            .flatten()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(prefix_error)?;
        let mut bytes = [0u8; 16];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(IfAddr {
            name: bytes,
            len: name.len(),
            address,
            prefix,
        })
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}/{}", self.name(), self.address, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_tcp_or_vsock_and_round_trips() {
        for text in ["10.200.1.1:7000", "vsock:2:7000", "vsock:4294967295:1"] {
            assert_eq!(text.parse::<Peer>().unwrap().to_string(), text);
        }
        assert_eq!(
            "vsock:2:7000".parse::<Peer>().unwrap(),
            Peer::Vsock {
                cid: HOST_CID,
                port: 7000
            }
        );
        for bad in [
            "vsock:2",
            "vsock::1",
            "vsock:x:1",
            "vsock:2:-1",
            "vsock:2:99999999999",
            "host:1",
            "1.2.3.4",
        ] {
            let e = bad.parse::<Peer>().unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn an_interface_address_round_trips_and_has_its_mask() {
        let a: IfAddr = "eth0=10.200.1.2/30".parse().unwrap();
        assert_eq!(a.name(), "eth0");
        assert_eq!(a.address, Ipv4Addr::new(10, 200, 1, 2));
        assert_eq!(a.netmask(), Ipv4Addr::new(255, 255, 255, 252));
        assert_eq!(a.to_string(), "eth0=10.200.1.2/30");
        assert_eq!(&a.name_bytes()[..5], b"eth0\0");
        let lo: IfAddr = "lo=127.0.0.1/8".parse().unwrap();
        assert_eq!(lo.netmask(), Ipv4Addr::new(255, 0, 0, 0));
    }

    #[test]
    fn a_bad_interface_address_says_which_part_is_wrong() {
        for (text, want) in [
            ("eth0", Error::Form("eth0".into())),
            ("eth0=10.0.0.1", Error::Form("eth0=10.0.0.1".into())),
            ("=10.0.0.1/30", Error::Name(String::new())),
            (
                "a-name-far-too-long=10.0.0.1/30",
                Error::Name("a-name-far-too-long".into()),
            ),
            ("eth/0=10.0.0.1/30", Error::Name("eth/0".into())),
            ("eth 0=10.0.0.1/30", Error::Name("eth 0".into())),
            ("eth0=10.0.0.300/30", Error::Address("10.0.0.300".into())),
            ("eth0=::1/30", Error::Address("::1".into())),
            ("eth0=10.0.0.1/0", Error::Prefix("0".into())),
            ("eth0=10.0.0.1/33", Error::Prefix("33".into())),
            ("eth0=10.0.0.1/+3", Error::Prefix("+3".into())),
        ] {
            assert_eq!(text.parse::<IfAddr>(), Err(want), "{text}");
        }
    }
}
