//! A tap interface of the host, the back end of the guest's network device: the monitor
//! opens `/dev/net/tun` and attaches the descriptor to the tap `IFNAME` of the network
//! namespace it runs in (creating it when no interface has that name), as a tap
//! (`IFF_TAP`: Ethernet frames), without the packet-information prefix (`IFF_NO_PI`), and
//! with a virtio-net header before each frame (`IFF_VNET_HDR`, `TUNSETVNETHDRSZ` of 12
//! bytes, the `struct virtio_net_hdr_v1` of a virtio 1.x device), so a frame crosses
//! between the guest's buffers and the tap as it is. No offload is turned on
//! (`TUNSETOFFLOAD` 0): the host hands over whole, checksummed frames.
//!
//! The descriptor is non-blocking: a read with no frame waiting fails with `EAGAIN`, and
//! the monitor's notifier waits for it with epoll.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// The tun/tap control device.
pub const TUN_DEVICE: &str = "/dev/net/tun";
/// Bytes of the header before each frame: `struct virtio_net_hdr_v1` (what
/// `TUNSETVNETHDRSZ` is given).
pub const VNET_HEADER_SIZE: usize = 12;

/// Errors opening a tap.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The name cannot be an interface's.
    #[error("the tap name {name:?} is not an interface name: {why}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `/dev/net/tun` cannot be opened.
    #[error("cannot open {TUN_DEVICE} for the tap {name}{}", hint(.source))]
    Open {
        /// The tap's name.
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The kernel refused to attach to (or create) the tap.
    #[error("cannot attach to the tap {name}{}", attach_hint(.source))]
    Attach {
        /// The tap's name.
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The tap refused a setting.
    #[error("cannot set up the tap {name}: {what}")]
    Configure {
        /// The tap's name.
        name: String,
        /// Which setting.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn hint(source: &io::Error) -> &'static str {
    match source.raw_os_error() {
        Some(libc::ENOENT) => " (the host has no tun device: load the tun module)",
        Some(libc::EACCES | libc::EPERM) => " (no permission)",
        _ => "",
    }
}

fn attach_hint(source: &io::Error) -> &'static str {
    match source.raw_os_error() {
        Some(libc::EPERM) => {
            " (creating or attaching to a tap needs CAP_NET_ADMIN, or a tap made for this user)"
        }
        Some(libc::EBUSY) => " (another process has it open)",
        Some(libc::EINVAL) => " (an interface of that name exists and is not a tap)",
        _ => "",
    }
}

/// Checks that `name` can be an interface's name (what the kernel's `dev_valid_name`
/// accepts): 1 to 15 bytes, not `.` or `..`, without `/`, `:`, white space or NUL.
pub fn check_name(name: &str) -> Result<(), Error> {
    let bad = |why| {
        Err(Error::BadName {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() >= libc::IFNAMSIZ {
        return bad("it is longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("it is . or ..");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return bad("it holds a '/', ':', white space or NUL");
    }
    Ok(())
}

/// An open tap.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Opens the tap `name` as the module describes, non-blocking.
    pub fn open(name: &str) -> Result<Tap, Error> {
        check_name(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(TUN_DEVICE)
            .map_err(|source| Error::Open {
                name: name.to_owned(),
                source,
            })?;
        // SAFETY: ifreq is plain data (a name and a union of plain fields); all-zero is a
        // valid value.
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        for (to, from) in request.ifr_name.iter_mut().zip(name.bytes()) {
            *to = libc::c_char::from_ne_bytes([from]);
        }
        request.ifr_ifru.ifru_flags =
            (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which `request` is, and the
        // descriptor is the open tun device.
        let attached = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request) };
        if attached < 0 {
            return Err(Error::Attach {
                name: name.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        let header_size: libc::c_int = 12;
        // SAFETY: TUNSETVNETHDRSZ reads one int, which the pointer points to.
        let set = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &header_size) };
        if set < 0 {
            return Err(Error::Configure {
                name: name.to_owned(),
                what: "the virtio-net header size (TUNSETVNETHDRSZ)",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: TUNSETOFFLOAD takes its argument by value: no offloads.
        let set = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETOFFLOAD, 0 as libc::c_ulong) };
        if set < 0 {
            return Err(Error::Configure {
                name: name.to_owned(),
                what: "the offloads (TUNSETOFFLOAD)",
                source: io::Error::last_os_error(),
            });
        }
        Ok(Tap {
            file,
            name: name.to_owned(),
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Where a network device's frames go and come from: a datagram each, the virtio-net
/// header first. Reads do not block: with nothing waiting they fail with
/// [`io::ErrorKind::WouldBlock`].
pub trait Backend: Send + AsRawFd {
    /// Reads one frame into `buf`: its length.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes one frame.
    fn send(&mut self, frame: &[u8]) -> io::Result<usize>;
}

impl Backend for Tap {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<usize> {
        self.file.write(frame)
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Any descriptor that keeps datagrams apart (a `SOCK_SEQPACKET` socket pair's end, in
/// the tests and the fuzz target), read and written with `read(2)` and `write(2)` as a
/// tap is.
impl Backend for File {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read(buf)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<usize> {
        self.write(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_interfaces_are_refused_with_the_name() {
        for (name, why) in [
            ("", "empty"),
            ("a-very-long-name-x", "longer"),
            ("..", ". or .."),
            ("tap/0", "'/'"),
            ("tap 0", "white space"),
            ("tap:0", "':'"),
        ] {
            let text = check_name(name).unwrap_err().to_string();
            assert!(text.contains(&format!("{name:?}")), "{text}");
            assert!(text.contains(why), "{text}");
            // Open refuses it before /dev/net/tun is touched.
            assert!(matches!(Tap::open(name), Err(Error::BadName { .. })));
        }
        check_name("vcb-tap0").unwrap();
        check_name("123456789012345").unwrap();
    }

    #[test]
    fn the_header_is_the_virtio_1_one() {
        assert_eq!(
            std::mem::size_of::<virtio_bindings::virtio_net::virtio_net_hdr_v1>(),
            VNET_HEADER_SIZE
        );
    }

    #[test]
    fn errors_name_the_tap_and_say_why() {
        let missing = Error::Open {
            name: "tap9".to_owned(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        let text = missing.to_string();
        assert!(
            text.contains("tap9") && text.contains("tun module"),
            "{text}"
        );
        let denied = Error::Attach {
            name: "tap9".to_owned(),
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        let text = denied.to_string();
        assert!(
            text.contains("tap9") && text.contains("CAP_NET_ADMIN"),
            "{text}"
        );
    }
}
