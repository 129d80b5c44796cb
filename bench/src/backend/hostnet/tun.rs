//! A persistent tap device, made through `/dev/net/tun` (TUNSETIFF, then TUNSETPERSIST so
//! it outlives the descriptor), in the calling thread's network namespace: the host end of
//! a VM's network, which its monitor attaches to by name.

use std::os::fd::{AsRawFd, OwnedFd};

/// `TUNSETIFF`: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::Ioctl = 0x4004_54ca;
/// `TUNSETPERSIST`: `_IOW('T', 203, int)`.
const TUNSETPERSIST: libc::Ioctl = 0x4004_54cb;
/// A tap (Ethernet frames), without the packet information prefix.
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
/// The virtio-net header before each frame, as a VM's device reads and writes them.
const IFF_VNET_HDR: libc::c_short = 0x4000;

/// Errors making a tap.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/dev/net/tun` could not be opened.
    #[error("cannot open /dev/net/tun")]
    Open(#[source] std::io::Error),
    /// The kernel refused the tap.
    #[error("cannot make the tap {name} ({step})")]
    Refused {
        /// The tap's name.
        name: String,
        /// The ioctl.
        step: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Makes the persistent tap `name` (checked by the caller) in this thread's namespace.
pub fn create(name: &str) -> Result<(), Error> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(Error::Open)?;
    let fd = OwnedFd::from(file);
    // SAFETY: ifreq is plain data, valid as all zero bytes.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in request.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *to = libc::c_char::from_ne_bytes([from]);
    }
    request.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    let refused = |step| {
        let name = name.to_owned();
        move |source| Error::Refused { name, step, source }
    };
    // SAFETY: TUNSETIFF reads and writes one ifreq, which `request` is, exclusively
    // borrowed for the call, on a descriptor of /dev/net/tun alive for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, std::ptr::from_mut(&mut request)) };
    if rc != 0 {
        return Err(refused("TUNSETIFF")(std::io::Error::last_os_error()));
    }
    // SAFETY: TUNSETPERSIST takes an integer argument, on the descriptor attached above.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETPERSIST, 1 as libc::c_ulong) };
    if rc != 0 {
        return Err(refused("TUNSETPERSIST")(std::io::Error::last_os_error()));
    }
    Ok(())
}
