//! The few rtnetlink requests the run's network needs, written as raw `NETLINK_ROUTE`
//! messages (netlink(7), rtnetlink(7)): make a veth pair, find a link's index, move a
//! link into another network namespace (renamed on the way), give it an IPv4 address,
//! bring it up, delete it.
//!
//! A socket works on the network namespace it was opened in, whatever thread uses it
//! later. Every request asks for an acknowledgement, and the kernel's error code comes
//! back as the request's error, naming what was asked. Messages are built by [`Message`]
//! and replies read by [`replies`], both plain functions of bytes, tested without a
//! kernel.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Message types and flags (`linux/netlink.h`, `linux/rtnetlink.h`).
mod uapi {
    pub const NLMSG_ERROR: u16 = 2;
    pub const NLMSG_DONE: u16 = 3;
    pub const NLM_F_REQUEST: u16 = 0x1;
    pub const NLM_F_ACK: u16 = 0x4;
    pub const NLM_F_EXCL: u16 = 0x200;
    pub const NLM_F_CREATE: u16 = 0x400;
    pub const RTM_NEWLINK: u16 = 16;
    pub const RTM_DELLINK: u16 = 17;
    pub const RTM_GETLINK: u16 = 18;
    pub const RTM_NEWADDR: u16 = 20;
    /// Link attributes (`linux/if_link.h`).
    pub const IFLA_IFNAME: u16 = 3;
    pub const IFLA_LINKINFO: u16 = 18;
    pub const IFLA_NET_NS_FD: u16 = 28;
    pub const IFLA_INFO_KIND: u16 = 1;
    pub const IFLA_INFO_DATA: u16 = 2;
    /// The peer of a veth (`linux/veth.h`): an `ifinfomsg` and its attributes.
    pub const VETH_INFO_PEER: u16 = 1;
    /// Address attributes (`linux/if_addr.h`).
    pub const IFA_ADDRESS: u16 = 1;
    pub const IFA_LOCAL: u16 = 2;
    /// A nested attribute's type bit.
    pub const NLA_F_NESTED: u16 = 0x8000;
    pub const IFF_UP: u32 = 1;
    pub const AF_UNSPEC: u8 = 0;
    pub const AF_INET: u8 = 2;
    pub const RT_SCOPE_UNIVERSE: u8 = 0;
}

/// The size of a netlink message header.
const HEADER: usize = 16;
/// The size of an `ifinfomsg`.
const IFINFOMSG: usize = 16;
/// The size of an `ifaddrmsg`.
const IFADDRMSG: usize = 8;
/// The longest interface name the kernel takes (`IFNAMSIZ` less its NUL).
pub const MAX_NAME: usize = 15;

/// Errors from rtnetlink.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The netlink socket could not be opened.
    #[error("cannot open a NETLINK_ROUTE socket")]
    Socket(#[source] std::io::Error),
    /// A request could not be sent or its reply read.
    #[error("rtnetlink: {what}")]
    Io {
        /// The request.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a request.
    #[error("rtnetlink refused to {what}")]
    Refused {
        /// The request.
        what: String,
        /// The kernel's error code.
        #[source]
        source: std::io::Error,
    },
    /// A reply that is not a netlink message.
    #[error("rtnetlink: a malformed reply to {0}")]
    Malformed(String),
    /// An interface name the kernel cannot take.
    #[error("{0:?} is not an interface name: 1 to {MAX_NAME} bytes, no NUL or '/'")]
    Name(String),
}

/// A netlink message being built: a header, a fixed part and attributes, each padded to
/// four bytes, the header's length set when it is finished.
#[derive(Debug, Clone)]
pub struct Message {
    bytes: Vec<u8>,
    /// Where each open nested attribute starts.
    open: Vec<usize>,
}

/// `n` rounded up to netlink's alignment of four bytes.
fn align(n: usize) -> usize {
    (n + 3) & !3
}

impl Message {
    /// A request of type `kind` with `flags` (`NLM_F_REQUEST` and `NLM_F_ACK` added).
    pub fn new(kind: u16, flags: u16) -> Self {
        let mut bytes = vec![0u8; HEADER];
        bytes[4..6].copy_from_slice(&kind.to_ne_bytes());
        let flags = flags | uapi::NLM_F_REQUEST | uapi::NLM_F_ACK;
        bytes[6..8].copy_from_slice(&flags.to_ne_bytes());
        Message {
            bytes,
            open: Vec::new(),
        }
    }

    /// Appends an `ifinfomsg`: the link `index` (0 for none), its `flags` and which of
    /// them to `change`.
    pub fn ifinfo(mut self, index: u32, flags: u32, change: u32) -> Self {
        let mut fixed = [0u8; IFINFOMSG];
        fixed[0] = uapi::AF_UNSPEC;
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        fixed[8..12].copy_from_slice(&flags.to_ne_bytes());
        fixed[12..16].copy_from_slice(&change.to_ne_bytes());
        self.bytes.extend_from_slice(&fixed);
        self
    }

    /// Appends an `ifaddrmsg` for an IPv4 address of `prefix` bits on link `index`.
    pub fn ifaddr(mut self, index: u32, prefix: u8) -> Self {
        let mut fixed = [0u8; IFADDRMSG];
        fixed[0] = uapi::AF_INET;
        fixed[1] = prefix;
        fixed[3] = uapi::RT_SCOPE_UNIVERSE;
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        self.bytes.extend_from_slice(&fixed);
        self
    }

    /// Appends an attribute of type `kind` holding `payload`, padded.
    pub fn attr(mut self, kind: u16, payload: &[u8]) -> Self {
        let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
        self.bytes.extend_from_slice(&len.to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(payload);
        self.bytes.resize(align(self.bytes.len()), 0);
        self
    }

    /// Appends a string attribute, NUL-terminated as the kernel's `NLA_STRING`s are.
    pub fn string(self, kind: u16, text: &str) -> Self {
        let mut payload = text.as_bytes().to_vec();
        payload.push(0);
        self.attr(kind, &payload)
    }

    /// Opens a nested attribute of type `kind`; what follows goes inside until
    /// [`Message::end`].
    pub fn begin(mut self, kind: u16) -> Self {
        self.open.push(self.bytes.len());
        self.bytes.extend_from_slice(&[0, 0]);
        self.bytes
            .extend_from_slice(&(kind | uapi::NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Closes the nested attribute opened last.
    pub fn end(mut self) -> Self {
        if let Some(start) = self.open.pop() {
            let len = u16::try_from(self.bytes.len() - start).unwrap_or(u16::MAX);
            self.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The finished message, numbered `seq`.
    pub fn finish(mut self, seq: u32) -> Vec<u8> {
        while !self.open.is_empty() {
            self = self.end();
        }
        let len = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        self.bytes[0..4].copy_from_slice(&len.to_ne_bytes());
        self.bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.bytes
    }
}

/// One message of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An acknowledgement: 0, or the negated error code of a refusal.
    Ack(i32),
    /// A link (a reply to `RTM_GETLINK`): its index.
    Link(u32),
    /// Another kind of message, or the end of a dump.
    Other(u16),
}

/// The messages in `bytes` that answer request `seq`.
pub fn replies(bytes: &[u8], seq: u32) -> Option<Vec<Reply>> {
    let mut out = Vec::new();
    let mut at = 0;
    let word = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    while at + HEADER <= bytes.len() {
        let len = usize::try_from(word(bytes, at)?).ok()?;
        if len < HEADER || at + len > bytes.len() {
            return None;
        }
        let kind = u16::from_ne_bytes(bytes[at + 4..at + 6].try_into().ok()?);
        let their_seq = word(bytes, at + 8)?;
        let body = &bytes[at + HEADER..at + len];
        if their_seq == seq {
            out.push(match kind {
                uapi::NLMSG_ERROR => {
                    Reply::Ack(i32::from_ne_bytes(body.get(..4)?.try_into().ok()?))
                }
                uapi::RTM_NEWLINK => Reply::Link(word(body, 4)?),
                other => Reply::Other(other),
            });
        }
        at += align(len);
    }
    Some(out)
}

/// Checks an interface name the kernel would take.
pub fn check_name(name: &str) -> Result<(), Error> {
    match name.is_empty() || name.len() > MAX_NAME || name.contains(['\0', '/']) {
        true => Err(Error::Name(name.to_owned())),
        false => Ok(()),
    }
}

/// A `NETLINK_ROUTE` socket on the network namespace it was opened in.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    /// Opens a socket on the calling thread's network namespace.
    pub fn open() -> Result<Self, Error> {
        // SAFETY: socket takes integers and returns a new descriptor or -1.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(Error::Socket(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just returned by socket and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // A kernel that never answers does not hang the run.
        let timeout = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: SO_RCVTIMEO reads one timeval, which `timeout` is, for the call.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::from_ref(&timeout).cast(),
                libc::socklen_t::try_from(std::mem::size_of::<libc::timeval>()).unwrap_or(0),
            )
        };
        if rc != 0 {
            return Err(Error::Socket(std::io::Error::last_os_error()));
        }
        Ok(Socket { fd, seq: 0 })
    }

    /// Sends `message` and reads its replies up to the acknowledgement; a refusal is an
    /// error naming `what`.
    fn request(&mut self, what: &str, message: Message) -> Result<Vec<Reply>, Error> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = message.finish(self.seq);
        let io = |source| Error::Io {
            what: what.to_owned(),
            source,
        };
        // SAFETY: `bytes` is valid for reading its length for the call; a netlink socket
        // with no address given sends to the kernel.
        let sent =
            unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if usize::try_from(sent).ok() != Some(bytes.len()) {
            return Err(io(std::io::Error::last_os_error()));
        }
        let mut got = Vec::new();
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: `buffer` is valid for writing its length for the call.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    0,
                )
            };
            let Ok(n) = usize::try_from(n) else {
                return Err(io(std::io::Error::last_os_error()));
            };
            let replies =
                replies(&buffer[..n], self.seq).ok_or_else(|| Error::Malformed(what.to_owned()))?;
            for reply in replies {
                match reply {
                    Reply::Ack(0) => return Ok(got),
                    Reply::Ack(code) => {
                        return Err(Error::Refused {
                            what: what.to_owned(),
                            source: std::io::Error::from_raw_os_error(code.saturating_neg()),
                        })
                    }
                    Reply::Other(uapi::NLMSG_DONE) => return Ok(got),
                    other => got.push(other),
                }
            }
        }
    }

    /// Makes a veth pair, `name` and `peer`, both down, in this socket's namespace.
    pub fn create_veth(&mut self, name: &str, peer: &str) -> Result<(), Error> {
        check_name(name)?;
        check_name(peer)?;
        let message = Message::new(uapi::RTM_NEWLINK, uapi::NLM_F_CREATE | uapi::NLM_F_EXCL)
            .ifinfo(0, 0, 0)
            .string(uapi::IFLA_IFNAME, name)
            .begin(uapi::IFLA_LINKINFO)
            .string(uapi::IFLA_INFO_KIND, "veth")
            .begin(uapi::IFLA_INFO_DATA)
            .begin(uapi::VETH_INFO_PEER)
            .ifinfo(0, 0, 0)
            .string(uapi::IFLA_IFNAME, peer)
            .end()
            .end()
            .end();
        self.request(&format!("make the veth pair {name} and {peer}"), message)
            .map(drop)
    }

    /// The index of the link `name`.
    pub fn index(&mut self, name: &str) -> Result<u32, Error> {
        check_name(name)?;
        let message = Message::new(uapi::RTM_GETLINK, 0)
            .ifinfo(0, 0, 0)
            .string(uapi::IFLA_IFNAME, name);
        let what = format!("find the link {name}");
        self.request(&what, message)?
            .into_iter()
            .find_map(|r| match r {
                Reply::Link(index) => Some(index),
                _ => None,
            })
            .ok_or(Error::Malformed(what))
    }

    /// Moves link `index` into the network namespace `namespace`, named `name` there.
    pub fn move_to(
        &mut self,
        index: u32,
        namespace: BorrowedFd<'_>,
        name: &str,
    ) -> Result<(), Error> {
        check_name(name)?;
        let fd = u32::try_from(namespace.as_raw_fd()).unwrap_or(u32::MAX);
        let message = Message::new(uapi::RTM_NEWLINK, 0)
            .ifinfo(index, 0, 0)
            .attr(uapi::IFLA_NET_NS_FD, &fd.to_ne_bytes())
            .string(uapi::IFLA_IFNAME, name);
        self.request(
            &format!("move link {index} into another network namespace as {name}"),
            message,
        )
        .map(drop)
    }

    /// Gives link `index` the address `address`/`prefix`.
    pub fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix: u8) -> Result<(), Error> {
        let octets = address.octets();
        let message = Message::new(uapi::RTM_NEWADDR, uapi::NLM_F_CREATE | uapi::NLM_F_EXCL)
            .ifaddr(index, prefix)
            .attr(uapi::IFA_LOCAL, &octets)
            .attr(uapi::IFA_ADDRESS, &octets);
        self.request(
            &format!("give link {index} the address {address}/{prefix}"),
            message,
        )
        .map(drop)
    }

    /// Brings link `index` up.
    pub fn set_up(&mut self, index: u32) -> Result<(), Error> {
        let message = Message::new(uapi::RTM_NEWLINK, 0).ifinfo(index, uapi::IFF_UP, uapi::IFF_UP);
        self.request(&format!("bring link {index} up"), message)
            .map(drop)
    }

    /// Deletes link `index` (a veth's peer goes with it).
    pub fn delete(&mut self, index: u32) -> Result<(), Error> {
        let message = Message::new(uapi::RTM_DELLINK, 0).ifinfo(index, 0, 0);
        self.request(&format!("delete link {index}"), message)
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes(b[at..at + 2].try_into().unwrap())
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn a_veth_request_nests_its_peer_with_lengths_that_add_up() {
        let bytes = Message::new(uapi::RTM_NEWLINK, uapi::NLM_F_CREATE | uapi::NLM_F_EXCL)
            .ifinfo(0, 0, 0)
            .string(uapi::IFLA_IFNAME, "vcb1h")
            .begin(uapi::IFLA_LINKINFO)
            .string(uapi::IFLA_INFO_KIND, "veth")
            .begin(uapi::IFLA_INFO_DATA)
            .begin(uapi::VETH_INFO_PEER)
            .ifinfo(0, 0, 0)
            .string(uapi::IFLA_IFNAME, "vcb1i")
            .end()
            .end()
            .end()
            .finish(7);
        // Header: length, type, flags (request, ack, create, excl), sequence, port 0.
        assert_eq!(u32_at(&bytes, 0) as usize, bytes.len());
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(u16_at(&bytes, 4), 16);
        assert_eq!(u16_at(&bytes, 6), 0x1 | 0x4 | 0x200 | 0x400);
        assert_eq!(u32_at(&bytes, 8), 7);
        // IFLA_IFNAME "vcb1h\0": 4 + 6 bytes, padded to 12.
        let name = HEADER + IFINFOMSG;
        assert_eq!((u16_at(&bytes, name), u16_at(&bytes, name + 2)), (10, 3));
        assert_eq!(&bytes[name + 4..name + 10], b"vcb1h\0");
        // IFLA_LINKINFO, nested, runs to the end of the message.
        let info = name + 12;
        assert_eq!(u16_at(&bytes, info + 2), 18 | 0x8000);
        assert_eq!(info + usize::from(u16_at(&bytes, info)), bytes.len());
        // Its kind "veth\0" (4 + 5, padded to 12), then IFLA_INFO_DATA to the end.
        assert_eq!(u16_at(&bytes, info + 4), 9);
        assert_eq!(&bytes[info + 8..info + 13], b"veth\0");
        let data = info + 4 + 12;
        assert_eq!(u16_at(&bytes, data + 2), 2 | 0x8000);
        assert_eq!(data + usize::from(u16_at(&bytes, data)), bytes.len());
        // VETH_INFO_PEER holds an ifinfomsg then the peer's name.
        let peer = data + 4;
        assert_eq!(u16_at(&bytes, peer + 2), 1 | 0x8000);
        assert_eq!(usize::from(u16_at(&bytes, peer)), 4 + IFINFOMSG + 12);
        assert_eq!(
            &bytes[peer + 4 + IFINFOMSG + 4..peer + 4 + IFINFOMSG + 10],
            b"vcb1i\0"
        );
    }

    #[test]
    fn an_address_request_has_the_prefix_and_the_link() {
        let bytes = Message::new(uapi::RTM_NEWADDR, uapi::NLM_F_CREATE)
            .ifaddr(5, 30)
            .attr(uapi::IFA_LOCAL, &[10, 200, 1, 1])
            .finish(1);
        assert_eq!(bytes.len(), HEADER + IFADDRMSG + 8);
        assert_eq!(bytes[HEADER], 2);
        assert_eq!(bytes[HEADER + 1], 30);
        assert_eq!(u32_at(&bytes, HEADER + 4), 5);
        assert_eq!(&bytes[HEADER + IFADDRMSG + 4..], &[10, 200, 1, 1]);
    }

    fn reply(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER];
        let len = u32::try_from(HEADER + body.len()).unwrap();
        b[0..4].copy_from_slice(&len.to_ne_bytes());
        b[4..6].copy_from_slice(&kind.to_ne_bytes());
        b[8..12].copy_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(body);
        b.resize(align(b.len()), 0);
        b
    }

    #[test]
    fn replies_are_read_for_their_request_only() {
        let mut link = vec![0u8; IFINFOMSG];
        link[4..8].copy_from_slice(&9u32.to_ne_bytes());
        let mut bytes = reply(uapi::RTM_NEWLINK, 3, &link);
        bytes.extend(reply(uapi::NLMSG_ERROR, 2, &(-1i32).to_ne_bytes()));
        bytes.extend(reply(uapi::NLMSG_ERROR, 3, &0i32.to_ne_bytes()));
        assert_eq!(
            replies(&bytes, 3),
            Some(vec![Reply::Link(9), Reply::Ack(0)])
        );
        let refused = reply(uapi::NLMSG_ERROR, 4, &(-libc::EEXIST).to_ne_bytes());
        assert_eq!(replies(&refused, 4), Some(vec![Reply::Ack(-libc::EEXIST)]));
        // A length past the end, or shorter than a header, is malformed, never a panic.
        let mut cut = reply(uapi::NLMSG_ERROR, 4, &0i32.to_ne_bytes());
        cut.truncate(HEADER + 2);
        assert_eq!(replies(&cut, 4), None);
        let mut short = reply(uapi::NLMSG_ERROR, 4, &0i32.to_ne_bytes());
        short[0..4].copy_from_slice(&4u32.to_ne_bytes());
        assert_eq!(replies(&short, 4), None);
        let empty_error = reply(uapi::NLMSG_ERROR, 4, &[]);
        assert_eq!(replies(&empty_error, 4), None);
    }

    #[test]
    fn a_name_the_kernel_cannot_take_is_refused_before_asking() {
        for bad in ["", "sixteen-chars-xx", "a/b", "nul\0"] {
            assert!(matches!(check_name(bad), Err(Error::Name(_))), "{bad:?}");
        }
        assert!(check_name("vcb1h").is_ok());
    }
}
