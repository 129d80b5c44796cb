//! virtio-net (virtio 1.2, 5.1) on a host [`tap`](super::tap): one receive queue (0) and
//! one transmit queue (1), the MAC address in the configuration space
//! (`VIRTIO_NET_F_MAC`), no offloads, no control queue. Each buffer the guest hands over
//! starts with a 12-byte `struct virtio_net_hdr_v1`, and so does each frame the tap gives
//! and takes (`IFF_VNET_HDR`), so a frame crosses as it is, with one copy each way
//! through a buffer of the monitor's.
//!
//! - **transmit**: the guest's chain (device-readable buffers: the header, then the
//!   Ethernet frame) is gathered and written to the tap with one `write(2)`. The header's
//!   fields are cleared first: no offload was negotiated, so the host is never asked to
//!   checksum or segment on the guest's word.
//! - **receive**: a frame read from the tap (one `read(2)`) is scattered into the next
//!   chain of device-writable buffers, its header rewritten (no flags, `num_buffers` 1).
//!   With no buffer from the guest the frame is kept, and the device waits for the
//!   guest's notification of new buffers; only a frame larger than the guest's buffers is
//!   dropped, and counted.
//!
//! A chain that loops, leaves guest memory, or has buffers the wrong way round never
//! reaches the tap and never gets a frame: it goes back with nothing written, counted.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;

use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};

use super::tap::{Backend, VNET_HEADER_SIZE};
use super::Device;

/// The receive queue's index.
pub const RX_QUEUE: usize = 0;
/// The transmit queue's index.
pub const TX_QUEUE: usize = 1;
/// The size of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// The largest Ethernet frame either way: the largest MTU (65535), the Ethernet header
/// and a VLAN tag.
pub const MAX_FRAME: usize = 65_535 + 14 + 4;
/// The largest packet either way: the header and [`MAX_FRAME`].
pub const MAX_PACKET: usize = VNET_HEADER_SIZE + MAX_FRAME;
/// The Ethernet header: the least a transmitted frame holds.
const ETHERNET_HEADER: usize = 14;
/// Where `num_buffers` lies in the header.
const NUM_BUFFERS_AT: usize = 10;

/// Errors reading a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not six hexadecimal bytes separated by colons, or an address a device cannot have.
    #[error("{given:?} is not a usable MAC address: {why}")]
    Mac {
        /// What was given.
        given: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The guest's address unless another is given: a locally administered one in the
    /// range QEMU and others use for guests.
    pub const DEFAULT: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
}

impl FromStr for Mac {
    type Err = Error;

    /// `52:54:00:12:34:56`: six bytes in hexadecimal; not a group address (the first
    /// byte's lowest bit) and not all zeros.
    fn from_str(given: &str) -> Result<Mac, Error> {
        let bad = |why| Error::Mac {
            given: given.to_owned(),
            why,
        };
        let mut mac = [0u8; 6];
        let mut parts = given.split(':');
        for byte in &mut mac {
            let part = parts.next().ok_or(bad("it needs six bytes"))?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad("each byte is one or two hexadecimal digits"));
            }
            *byte = u8::from_str_radix(part, 16)
                .map_err(|_| bad("each byte is one or two hexadecimal digits"))?;
        }
        if parts.next().is_some() {
            return Err(bad("it needs six bytes"));
        }
        if mac[0] & 1 != 0 {
            return Err(bad("it is a multicast (group) address"));
        }
        if mac == [0; 6] {
            return Err(bad("it is all zeros"));
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// What a network device has carried and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to the guest.
    pub rx_frames: u64,
    /// Their bytes, Ethernet header included, the virtio-net header not.
    pub rx_bytes: u64,
    /// Frames the guest sent out through the tap.
    pub tx_frames: u64,
    /// Their bytes, Ethernet header included, the virtio-net header not.
    pub tx_bytes: u64,
    /// Times the guest was interrupted for used buffers (either queue).
    pub interrupts: u64,
    /// Times a frame had to wait for the guest to give receive buffers.
    pub rx_waits: u64,
    /// Frames from the host dropped because they were larger than the guest's buffer.
    pub rx_dropped_too_big: u64,
    /// Frames from the host dropped because the guest reset the device while they waited.
    pub rx_dropped_reset: u64,
    /// Receive chains given back unused: a device-readable buffer, outside guest memory,
    /// looping, or shorter than the header.
    pub rx_bad_chains: u64,
    /// Reads from the tap that failed, or gave less than a header.
    pub rx_host_errors: u64,
    /// `read(2)` calls on the tap, those that found nothing included.
    pub tap_reads: u64,
    /// `write(2)` calls on the tap, those it refused included.
    pub tap_writes: u64,
    /// Frames from the guest dropped because their chain was malformed: a device-writable
    /// buffer, outside guest memory, looping, larger than [`MAX_PACKET`], or shorter than
    /// the headers.
    pub tx_dropped_malformed: u64,
    /// Frames from the guest the tap refused.
    pub tx_dropped_host: u64,
    /// Queues found unusable (a ring outside memory, a runaway available index) and used
    /// entries that could not be written.
    pub queue_errors: u64,
}

/// Why a receive chain could not take the frame.
enum Refused {
    /// The chain is malformed: it goes back with nothing written.
    Bad,
    /// The chain is sound but smaller than the frame.
    TooSmall,
}

/// Why the device stopped receiving.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// Nothing left to read on the tap.
    NoFrames,
    /// A frame waits and the guest has given no buffer.
    NoBuffers,
    /// The turn's budget is spent with frames perhaps left.
    Budget,
    /// The queue is unusable.
    Broken,
}

/// A virtio-net device on a [`Backend`].
pub struct Net<B: Backend> {
    backend: B,
    mac: Mac,
    driver_features: u64,
    queue_sizes: [u16; 2],
    /// The frame read from the backend and not yet delivered: its bytes are
    /// `rx_buffer[..len]`.
    rx_pending: Option<usize>,
    rx_buffer: Vec<u8>,
    /// Whether the last receive turn stopped with frames perhaps left on the backend.
    rx_more: bool,
    /// Whether the last transmit turn stopped with chains left on the ring.
    tx_more: bool,
    /// Whether a frame is waiting for receive buffers (counted once per wait).
    rx_waiting: bool,
    tx_buffer: Vec<u8>,
    /// Reused for the buffers of each receive chain.
    segments: Vec<(GuestAddress, usize)>,
    counters: Counters,
    /// Each queue, once found unusable; cleared by a reset.
    broken: [bool; 2],
}

impl<B: Backend> fmt::Debug for Net<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Net")
            .field("mac", &self.mac)
            .field("counters", &self.counters)
            .finish()
    }
}

impl<B: Backend> Net<B> {
    /// A device with address `mac` on `backend`.
    pub fn new(backend: B, mac: Mac) -> Self {
        Net {
            backend,
            mac,
            driver_features: 0,
            queue_sizes: [QUEUE_SIZE; 2],
            rx_pending: None,
            rx_buffer: vec![0; MAX_PACKET],
            rx_more: false,
            tx_more: false,
            rx_waiting: false,
            tx_buffer: vec![0; MAX_PACKET],
            segments: Vec::new(),
            counters: Counters::default(),
            broken: [false; 2],
        }
    }

    /// What it has carried so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Its back end.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The features the driver accepted.
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// Writes the pending frame into `chain`'s buffers: the used length.
    fn fill(
        &mut self,
        chain: DescriptorChain<&GuestMemoryMmap>,
        memory: &GuestMemoryMmap,
        len: usize,
    ) -> Result<u32, Refused> {
        self.segments.clear();
        let mut capacity = 0usize;
        let mut ends = true;
        for descriptor in chain {
            let size = usize::try_from(descriptor.len()).map_err(|_| Refused::Bad)?;
            if !descriptor.is_write_only()
                || (size > 0 && !memory.check_range(descriptor.addr(), size, Permissions::Write))
            {
                return Err(Refused::Bad);
            }
            capacity = capacity.saturating_add(size);
            ends = !descriptor.has_next();
            self.segments.push((descriptor.addr(), size));
        }
        if self.segments.is_empty() || !ends || capacity < VNET_HEADER_SIZE {
            return Err(Refused::Bad);
        }
        if capacity < len {
            return Err(Refused::TooSmall);
        }
        // The header: nothing offloaded, the frame in this one chain.
        let header = &mut self.rx_buffer[..VNET_HEADER_SIZE];
        header.fill(0);
        header[NUM_BUFFERS_AT..].copy_from_slice(&1u16.to_le_bytes());
        let mut done = 0;
        for &(address, size) in &self.segments {
            let n = size.min(len - done);
            if n == 0 {
                break;
            }
            memory
                .write_slice(&self.rx_buffer[done..done + n], address)
                .map_err(|_| Refused::Bad)?;
            done += n;
        }
        u32::try_from(len).map_err(|_| Refused::Bad)
    }

    /// Delivers frames from the backend until it has none, the guest has no buffer, or
    /// `budget` (frames read and chains taken) is spent.
    fn receive_frames(
        &mut self,
        queue: &mut Queue,
        memory: &GuestMemoryMmap,
        budget: &mut usize,
        used: &mut bool,
    ) -> Stop {
        loop {
            if *budget == 0 {
                return Stop::Budget;
            }
            let len = match self.rx_pending {
                Some(len) => len,
                None => match self.read_backend() {
                    // End of file: a back end that went away (a tap never does).
                    Ok(0) => return Stop::NoFrames,
                    Ok(len) if len < VNET_HEADER_SIZE => {
                        self.counters.rx_host_errors += 1;
                        *budget -= 1;
                        continue;
                    }
                    Ok(len) => {
                        *budget -= 1;
                        self.rx_pending = Some(len);
                        len
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Stop::NoFrames,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.counters.rx_host_errors += 1;
                        return Stop::NoFrames;
                    }
                },
            };
            let chain = match queue.iter(memory) {
                Ok(mut available) => available.next(),
                // The available index is more than a queue ahead: the ring is garbage.
                Err(_) => return Stop::Broken,
            };
            let Some(chain) = chain else {
                if !self.rx_waiting {
                    self.rx_waiting = true;
                    self.counters.rx_waits += 1;
                }
                return Stop::NoBuffers;
            };
            *budget -= 1;
            let head = chain.head_index();
            match self.fill(chain, memory, len) {
                Ok(written) => {
                    self.rx_pending = None;
                    self.rx_waiting = false;
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += (len - VNET_HEADER_SIZE) as u64;
                    self.add_used(queue, memory, head, written, used);
                }
                Err(Refused::TooSmall) => {
                    // The chain stays the guest's, for the next frame.
                    queue.go_to_previous_position();
                    self.rx_pending = None;
                    self.counters.rx_dropped_too_big += 1;
                }
                Err(Refused::Bad) => {
                    // The frame stays, for the next chain.
                    self.counters.rx_bad_chains += 1;
                    self.add_used(queue, memory, head, 0, used);
                }
            }
        }
    }

    fn read_backend(&mut self) -> io::Result<usize> {
        self.counters.tap_reads += 1;
        self.backend.recv(&mut self.rx_buffer)
    }

    fn add_used(
        &mut self,
        queue: &mut Queue,
        memory: &GuestMemoryMmap,
        head: u16,
        len: u32,
        used: &mut bool,
    ) {
        // A head outside the table cannot go back on the used ring.
        match queue.add_used(memory, head, len) {
            Ok(()) => *used = true,
            Err(_) => self.counters.queue_errors += 1,
        }
    }

    /// Serves the receive queue; whether to interrupt the guest.
    fn receive(&mut self, queue: &mut Queue, memory: &GuestMemoryMmap) -> bool {
        let mut budget = 2 * usize::from(queue.size().max(1));
        let mut used = false;
        let mut idle_rounds = 0;
        let stop = loop {
            // With EVENT_IDX: no notifications while the device works through the ring.
            if queue.disable_notification(memory).is_err() {
                break Stop::Broken;
            }
            let before = budget;
            let stop = self.receive_frames(queue, memory, &mut budget, &mut used);
            // Notifications on again; buffers that came meanwhile are served at once.
            let more = match queue.enable_notification(memory) {
                Ok(more) => more,
                Err(_) => break Stop::Broken,
            };
            if before == budget {
                idle_rounds += 1;
            }
            if stop != Stop::NoBuffers || !more || idle_rounds > 1 {
                break stop;
            }
        };
        self.rx_more = stop == Stop::Budget;
        if stop == Stop::Broken {
            self.broken[RX_QUEUE] = true;
            self.counters.queue_errors += 1;
        }
        used
    }

    /// Gathers a transmit chain into the transmit buffer: the packet's length, or `None`
    /// for a malformed chain.
    fn gather(
        &mut self,
        chain: DescriptorChain<&GuestMemoryMmap>,
        memory: &GuestMemoryMmap,
    ) -> Option<usize> {
        let mut len = 0usize;
        let mut ends = true;
        let mut any = false;
        for descriptor in chain {
            let size = usize::try_from(descriptor.len()).ok()?;
            let end = len.checked_add(size).filter(|&end| end <= MAX_PACKET)?;
            if descriptor.is_write_only() {
                return None;
            }
            memory
                .read_slice(&mut self.tx_buffer[len..end], descriptor.addr())
                .ok()?;
            len = end;
            ends = !descriptor.has_next();
            any = true;
        }
        (any && ends && len >= VNET_HEADER_SIZE + ETHERNET_HEADER).then_some(len)
    }

    /// Sends one gathered packet of `len` bytes to the backend.
    fn send(&mut self, len: usize) {
        // No offload was negotiated: whatever the guest put in the header, the host is
        // asked for nothing.
        self.tx_buffer[..VNET_HEADER_SIZE].fill(0);
        let packet = &self.tx_buffer[..len];
        self.counters.tap_writes += 1;
        let sent = match self.backend.send(packet) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                self.counters.tap_writes += 1;
                self.backend.send(packet)
            }
            other => other,
        };
        match sent {
            Ok(n) if n == len => {
                self.counters.tx_frames += 1;
                self.counters.tx_bytes += (len - VNET_HEADER_SIZE) as u64;
            }
            _ => self.counters.tx_dropped_host += 1,
        }
    }

    /// Serves the transmit queue; whether to interrupt the guest.
    fn transmit(&mut self, queue: &mut Queue, memory: &GuestMemoryMmap) -> bool {
        let mut used = false;
        // A ring's worth of chains a turn.
        let mut budget = usize::from(queue.size().max(1));
        loop {
            if queue.disable_notification(memory).is_err() {
                self.broken[TX_QUEUE] = true;
                break;
            }
            let mut served = 0u32;
            while budget > 0 {
                let chain = match queue.iter(memory) {
                    Ok(mut available) => available.next(),
                    Err(_) => {
                        self.broken[TX_QUEUE] = true;
                        None
                    }
                };
                let Some(chain) = chain else { break };
                budget -= 1;
                served += 1;
                let head = chain.head_index();
                match self.gather(chain, memory) {
                    Some(len) => self.send(len),
                    None => self.counters.tx_dropped_malformed += 1,
                }
                self.add_used(queue, memory, head, 0, &mut used);
            }
            let more = queue.enable_notification(memory).unwrap_or(false);
            if self.broken[TX_QUEUE] || served == 0 || !more || budget == 0 {
                break;
            }
        }
        self.tx_more = budget == 0 && !self.broken[TX_QUEUE];
        if self.broken[TX_QUEUE] {
            self.counters.queue_errors += 1;
        }
        used
    }
}

impl<B: Backend> Device for Net<B> {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn features(&self) -> u64 {
        (1u64 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_RING_F_EVENT_IDX) | (1 << VIRTIO_NET_F_MAC)
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    /// `struct virtio_net_config`: the MAC address; the rest (status, queue pairs, MTU)
    /// belongs to features not offered and reads as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|at| self.mac.0.get(at).copied())
                .unwrap_or(0);
        }
    }

    fn set_driver_features(&mut self, features: u64) {
        self.driver_features = features;
    }

    fn process(&mut self, index: usize, queue: &mut Queue, memory: &GuestMemoryMmap) -> bool {
        let Some(broken) = self.broken.get(index).copied() else {
            return false;
        };
        match index {
            RX_QUEUE => self.rx_more = false,
            _ => self.tx_more = false,
        }
        if broken || !queue.is_valid(memory) {
            if !broken {
                self.broken[index] = true;
                self.counters.queue_errors += 1;
            }
            return false;
        }
        let used = match index {
            RX_QUEUE => self.receive(queue, memory),
            _ => self.transmit(queue, memory),
        };
        let interrupt = used && queue.needs_notification(memory).unwrap_or(true);
        if interrupt {
            self.counters.interrupts += 1;
        }
        interrupt
    }

    fn reset(&mut self) {
        self.driver_features = 0;
        self.broken = [false; 2];
        if self.rx_pending.take().is_some() {
            self.counters.rx_dropped_reset += 1;
        }
        self.rx_more = false;
        self.tx_more = false;
        self.rx_waiting = false;
    }

    fn source(&self) -> Option<(RawFd, usize)> {
        Some((self.backend.as_raw_fd(), RX_QUEUE))
    }

    fn source_pending(&self) -> bool {
        self.rx_more || self.tx_more
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mmio::{Notifier, Transport};
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use virtio_bindings::virtio_config::{
        VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
        VIRTIO_CONFIG_S_FEATURES_OK,
    };
    use virtio_bindings::virtio_mmio::{
        VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_DRIVER_FEATURES,
        VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_DESC_LOW,
        VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL,
        VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_STATUS,
    };
    use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

    const MEMORY: usize = 1 << 20;
    /// The receive ring's descriptors; its available ring and used ring follow a page
    /// apart each. The transmit ring is laid out the same from [`TX_RING`].
    const RX_RING: u64 = 0x1000;
    const TX_RING: u64 = 0x4000;
    /// Buffers go from here.
    const BUFFERS: u64 = 0x1_0000;
    /// The queues' size in these tests.
    const SIZE: u16 = 16;
    const NEXT: u16 = VRING_DESC_F_NEXT as u16;
    const WRITE: u16 = VRING_DESC_F_WRITE as u16;

    /// One queue as a guest driver lays it out, by hand, in guest memory.
    struct Ring {
        base: u64,
        published: u16,
        queue: Queue,
    }

    impl Ring {
        fn new(base: u64) -> Ring {
            let mut queue = Queue::new(QUEUE_SIZE).unwrap();
            queue.set_size(SIZE);
            queue.set_desc_table_address(Some(base as u32), Some(0));
            queue.set_avail_ring_address(Some((base + 0x1000) as u32), Some(0));
            queue.set_used_ring_address(Some((base + 0x2000) as u32), Some(0));
            queue.set_ready(true);
            Ring {
                base,
                published: 0,
                queue,
            }
        }

        fn descriptor(
            &self,
            m: &GuestMemoryMmap,
            index: u16,
            addr: u64,
            len: u32,
            flags: u16,
            next: u16,
        ) {
            let mut bytes = [0u8; 16];
            bytes[0..8].copy_from_slice(&addr.to_le_bytes());
            bytes[8..12].copy_from_slice(&len.to_le_bytes());
            bytes[12..14].copy_from_slice(&flags.to_le_bytes());
            bytes[14..16].copy_from_slice(&next.to_le_bytes());
            m.write_slice(&bytes, GuestAddress(self.base + 16 * u64::from(index)))
                .unwrap();
        }

        /// A chain of (address, length, device-writable) buffers from descriptor `first`,
        /// published.
        fn offer(&mut self, m: &GuestMemoryMmap, first: u16, buffers: &[(u64, u32, bool)]) {
            for (i, &(addr, len, writable)) in buffers.iter().enumerate() {
                let index = first + i as u16;
                let mut flags = if writable { WRITE } else { 0 };
                if i + 1 < buffers.len() {
                    flags |= NEXT;
                }
                self.descriptor(m, index, addr, len, flags, index + 1);
            }
            self.publish(m, first);
        }

        fn publish(&mut self, m: &GuestMemoryMmap, head: u16) {
            let avail = self.base + 0x1000;
            let slot = avail + 4 + 2 * u64::from(self.published % SIZE);
            m.write_obj(head, GuestAddress(slot)).unwrap();
            self.published = self.published.wrapping_add(1);
            m.write_obj(self.published, GuestAddress(avail + 2))
                .unwrap();
        }

        /// The used ring's index.
        fn used_idx(&self, m: &GuestMemoryMmap) -> u16 {
            m.read_obj(GuestAddress(self.base + 0x2002)).unwrap()
        }

        /// Used entry `n`: the head and the length written.
        fn used(&self, m: &GuestMemoryMmap, n: u16) -> (u32, u32) {
            let at = self.base + 0x2004 + 8 * u64::from(n % SIZE);
            (
                m.read_obj(GuestAddress(at)).unwrap(),
                m.read_obj(GuestAddress(at + 4)).unwrap(),
            )
        }
    }

    /// Two ends of a socket pair that keeps datagrams apart, like a tap: the device's
    /// and the host's.
    fn pair() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two descriptors for socketpair to fill.
        let made = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(made, 0, "{}", io::Error::last_os_error());
        // SAFETY: socketpair gave two open descriptors that nothing else owns.
        let device = unsafe { OwnedFd::from_raw_fd(fds[0]) };
        // SAFETY: as above, the second.
        let host = unsafe { OwnedFd::from_raw_fd(fds[1]) };
        (File::from(device), File::from(host))
    }

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY)]).unwrap()
    }

    /// A packet: a header with every offload field set (which the device must clear),
    /// then a frame of `len` bytes counting from `seed`.
    fn packet(len: usize, seed: u8) -> Vec<u8> {
        let mut p = vec![0xffu8; VNET_HEADER_SIZE];
        p.extend((0..len).map(|i| seed.wrapping_add(i as u8)));
        p
    }

    fn clean_header() -> [u8; VNET_HEADER_SIZE] {
        let mut h = [0u8; VNET_HEADER_SIZE];
        h[NUM_BUFFERS_AT] = 1;
        h
    }

    fn read_guest(m: &GuestMemoryMmap, at: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        m.read_slice(&mut bytes, GuestAddress(at)).unwrap();
        bytes
    }

    #[test]
    fn a_frame_from_the_host_lands_in_the_guests_buffers_with_a_clean_header() {
        let (device_end, mut host) = pair();
        let mut net = Net::new(device_end, Mac::DEFAULT);
        let m = memory();
        let mut rx = Ring::new(RX_RING);
        // Two buffers: the header and a little, then the rest.
        rx.offer(
            &m,
            0,
            &[(BUFFERS, 20, true), (BUFFERS + 0x1000, 1518, true)],
        );
        let sent = packet(100, 7);
        host.write_all(&sent).unwrap();
        assert!(
            net.process(RX_QUEUE, &mut rx.queue, &m),
            "the guest is interrupted"
        );
        assert_eq!(rx.used_idx(&m), 1);
        assert_eq!(rx.used(&m, 0), (0, 112));
        let mut got = read_guest(&m, BUFFERS, 20);
        got.extend(read_guest(&m, BUFFERS + 0x1000, 92));
        assert_eq!(&got[..VNET_HEADER_SIZE], &clean_header());
        assert_eq!(&got[VNET_HEADER_SIZE..], &sent[VNET_HEADER_SIZE..]);
        let c = net.counters();
        assert_eq!((c.rx_frames, c.rx_bytes, c.interrupts), (1, 100, 1));
        assert_eq!(c.tap_reads, 2, "the frame, then the read that found none");
        assert!(!net.source_pending());
        // Nothing more on the tap: nothing more used, no interrupt.
        assert!(!net.process(RX_QUEUE, &mut rx.queue, &m));
    }

    #[test]
    fn a_frame_from_the_guest_reaches_the_host_with_the_offload_fields_cleared() {
        let (device_end, mut host) = pair();
        let mut net = Net::new(device_end, Mac::DEFAULT);
        let m = memory();
        let mut tx = Ring::new(TX_RING);
        let sent = packet(60, 3);
        m.write_slice(&sent[..VNET_HEADER_SIZE], GuestAddress(BUFFERS))
            .unwrap();
        m.write_slice(&sent[VNET_HEADER_SIZE..40], GuestAddress(BUFFERS + 0x100))
            .unwrap();
        m.write_slice(&sent[40..], GuestAddress(BUFFERS + 0x200))
            .unwrap();
        tx.offer(
            &m,
            0,
            &[
                (BUFFERS, VNET_HEADER_SIZE as u32, false),
                (BUFFERS + 0x100, 28, false),
                (BUFFERS + 0x200, 32, false),
            ],
        );
        assert!(net.process(TX_QUEUE, &mut tx.queue, &m));
        assert_eq!(tx.used(&m, 0), (0, 0));
        let mut got = vec![0u8; 2 * MAX_PACKET];
        let n = host.read(&mut got).unwrap();
        assert_eq!(n, sent.len(), "one datagram, the whole packet");
        assert_eq!(&got[..VNET_HEADER_SIZE], &[0u8; VNET_HEADER_SIZE]);
        assert_eq!(&got[VNET_HEADER_SIZE..n], &sent[VNET_HEADER_SIZE..]);
        let c = net.counters();
        assert_eq!((c.tx_frames, c.tx_bytes, c.tap_writes), (1, 60, 1));
    }

    #[test]
    fn without_buffers_frames_wait_for_the_guest_and_none_is_dropped() {
        let (device_end, mut host) = pair();
        let mut net = Net::new(device_end, Mac::DEFAULT);
        let m = memory();
        let mut rx = Ring::new(RX_RING);
        for seed in [1, 2, 3] {
            host.write_all(&packet(64, seed)).unwrap();
        }
        // The frames arrive before the guest gave any buffer.
        assert!(!net.process(RX_QUEUE, &mut rx.queue, &m));
        assert!(!net.process(RX_QUEUE, &mut rx.queue, &m));
        assert_eq!(net.counters().rx_waits, 1, "one wait, however often woken");
        assert!(
            !net.source_pending(),
            "waiting for the guest, not for the tap"
        );
        for i in 0..3u16 {
            rx.offer(&m, i, &[(BUFFERS + 0x1000 * u64::from(i), 1530, true)]);
        }
        assert!(net.process(RX_QUEUE, &mut rx.queue, &m));
        assert_eq!(rx.used_idx(&m), 3);
        for i in 0..3u16 {
            let frame = read_guest(&m, BUFFERS + 0x1000 * u64::from(i) + 12, 64);
            assert_eq!(
                frame,
                packet(64, i as u8 + 1)[VNET_HEADER_SIZE..],
                "in order"
            );
        }
        let c = net.counters();
        assert_eq!((c.rx_frames, c.rx_dropped_too_big, c.rx_waits), (3, 0, 1));
    }

    #[test]
    fn a_frame_larger_than_the_guests_buffer_is_dropped_counted_and_the_buffer_kept() {
        let (device_end, mut host) = pair();
        let mut net = Net::new(device_end, Mac::DEFAULT);
        let m = memory();
        let mut rx = Ring::new(RX_RING);
        rx.offer(&m, 0, &[(BUFFERS, 100, true)]);
        host.write_all(&packet(200, 1)).unwrap();
        host.write_all(&packet(50, 9)).unwrap();
        assert!(net.process(RX_QUEUE, &mut rx.queue, &m));
        assert_eq!(rx.used_idx(&m), 1, "the small frame took the buffer");
        assert_eq!(rx.used(&m, 0), (0, 62));
        assert_eq!(read_guest(&m, BUFFERS + 12, 50), packet(50, 9)[12..]);
        let c = net.counters();
        assert_eq!((c.rx_frames, c.rx_dropped_too_big), (1, 1));
    }

    #[test]
    fn malformed_receive_chains_go_back_empty_and_the_frame_waits_for_a_good_one() {
        let (device_end, mut host) = pair();
        let mut net = Net::new(device_end, Mac::DEFAULT);
        let m = memory();
        let mut rx = Ring::new(RX_RING);
        // A buffer the device may only read.
        rx.offer(&m, 0, &[(BUFFERS, 1530, false)]);
        // Half outside guest memory.
        rx.offer(&m, 1, &[(MEMORY as u64 - 100, 1530, true)]);
        // Far outside, where the address wraps.
        rx.offer(&m, 2, &[(u64::MAX - 10, 1530, true)]);
        // A loop.
        rx.descriptor(&m, 3, BUFFERS, 700, WRITE | NEXT, 4);
        rx.descriptor(&m, 4, BUFFERS + 700, 700, WRITE | NEXT, 3);
        rx.publish(&m, 3);
        // A next index outside the table.
        rx.descriptor(&m, 5, BUFFERS, 1530, WRITE | NEXT, SIZE + 3);
        rx.publish(&m, 5);
        // Shorter than the header.
        rx.offer(&m, 6, &[(BUFFERS, 8, true)]);
        // A head outside the table (it cannot go back on the used ring either).
        rx.publish(&m, SIZE + 1);
        // At last a good one.
        rx.offer(&m, 7, &[(BUFFERS + 0x8000, 1530, true)]);
        m.write_slice(&[0xaa; 1530], GuestAddress(BUFFERS)).unwrap();
        host.write_all(&packet(80, 4)).unwrap();
        assert!(net.process(RX_QUEUE, &mut rx.queue, &m));
        assert_eq!(rx.used_idx(&m), 7);
        for n in 0..6 {
            assert_eq!(rx.used(&m, n).1, 0, "chain {n} went back empty");
        }
        assert_eq!(rx.used(&m, 6), (7, 92));
        assert_eq!(
            read_guest(&m, BUFFERS + 0x8000 + 12, 80),
            packet(80, 4)[12..]
        );
        assert_eq!(
            read_guest(&m, BUFFERS, 1530),
            vec![0xaa; 1530],
            "nothing written"
        );
        let c = net.counters();
        assert_eq!((c.rx_bad_chains, c.rx_frames, c.queue_errors), (7, 1, 1));
    }

    #[test]
    fn malformed_transmit_chains_never_reach_the_host() {
        let (device_end, mut host) = pair();
        let mut net = Net::new(device_end, Mac::DEFAULT);
        let m = memory();
        let mut tx = Ring::new(TX_RING);
        // A buffer the device may write.
        tx.offer(&m, 0, &[(BUFFERS, 100, true)]);
        // Outside guest memory.
        tx.offer(&m, 1, &[(MEMORY as u64 - 10, 100, false)]);
        // A loop.
        tx.descriptor(&m, 2, BUFFERS, 100, NEXT, 3);
        tx.descriptor(&m, 3, BUFFERS, 100, NEXT, 2);
        tx.publish(&m, 2);
        // Larger than any frame.
        tx.offer(&m, 4, &[(BUFFERS, MAX_PACKET as u32 + 1, false)]);
        // Shorter than the two headers.
        tx.offer(&m, 5, &[(BUFFERS, 20, false)]);
        // Nothing at all in it (a zero-length buffer).
        tx.offer(&m, 6, &[(BUFFERS, 0, false)]);
        assert!(net.process(TX_QUEUE, &mut tx.queue, &m));
        assert_eq!(tx.used_idx(&m), 6);
        let mut got = [0u8; 64];
        assert_eq!(
            host.read(&mut got).unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "nothing reached the host"
        );
        let c = net.counters();
        assert_eq!((c.tx_dropped_malformed, c.tx_frames), (6, 0));
    }

    #[test]
    fn a_host_that_refuses_a_frame_is_counted() {
        let (device_end, host) = pair();
        drop(host);
        let mut net = Net::new(device_end, Mac::DEFAULT);
        let m = memory();
        let mut tx = Ring::new(TX_RING);
        tx.offer(&m, 0, &[(BUFFERS, 60, false)]);
        assert!(net.process(TX_QUEUE, &mut tx.queue, &m));
        assert_eq!(net.counters().tx_dropped_host, 1);
    }

    #[test]
    fn a_queue_outside_memory_or_a_runaway_index_is_never_served() {
        let (device_end, mut host) = pair();
        let mut net = Net::new(device_end, Mac::DEFAULT);
        let m = memory();
        let mut rx = Ring::new(RX_RING);
        rx.queue.set_ready(false);
        rx.queue
            .set_desc_table_address(Some(0xffff_f000), Some(0xffff));
        rx.queue.set_ready(true);
        host.write_all(&packet(64, 0)).unwrap();
        assert!(!net.process(RX_QUEUE, &mut rx.queue, &m));
        assert_eq!(net.counters().queue_errors, 1);
        // The available index more than a queue ahead of the device.
        let mut tx = Ring::new(TX_RING);
        m.write_obj(SIZE + 7, GuestAddress(TX_RING + 0x1002))
            .unwrap();
        assert!(!net.process(TX_QUEUE, &mut tx.queue, &m));
        assert!(!net.process(TX_QUEUE, &mut tx.queue, &m));
        assert_eq!(net.counters().queue_errors, 2);
        // A reset makes the queues usable again; the frame that waited is dropped, counted.
        let mut rx = Ring::new(RX_RING);
        assert!(!net.process(RX_QUEUE, &mut rx.queue, &m));
        net.reset();
        assert_eq!(
            net.counters().rx_dropped_reset,
            0,
            "the broken queue read nothing"
        );
        rx.offer(&m, 0, &[(BUFFERS, 1530, true)]);
        assert!(net.process(RX_QUEUE, &mut rx.queue, &m));
        assert_eq!(net.counters().rx_frames, 1);
    }

    #[test]
    fn a_reset_drops_a_waiting_frame_and_counts_it() {
        let (device_end, mut host) = pair();
        let mut net = Net::new(device_end, Mac::DEFAULT);
        let m = memory();
        let mut rx = Ring::new(RX_RING);
        host.write_all(&packet(64, 0)).unwrap();
        assert!(!net.process(RX_QUEUE, &mut rx.queue, &m));
        net.reset();
        let c = net.counters();
        assert_eq!((c.rx_waits, c.rx_dropped_reset), (1, 1));
    }

    #[test]
    fn a_turn_serves_a_bounded_number_of_frames_and_asks_for_another() {
        let (device_end, mut host) = pair();
        let mut net = Net::new(device_end, Mac::DEFAULT);
        let m = memory();
        let mut rx = Ring::new(RX_RING);
        // More frames than a turn's budget (two steps per frame: its read and its chain).
        for i in 0..SIZE {
            host.write_all(&packet(64, i as u8)).unwrap();
            rx.offer(&m, i, &[(BUFFERS + 0x800 * u64::from(i), 1530, true)]);
        }
        for i in 0..4 {
            host.write_all(&packet(64, i)).unwrap();
        }
        assert!(net.process(RX_QUEUE, &mut rx.queue, &m));
        assert_eq!(net.counters().rx_frames, u64::from(SIZE));
        assert!(net.source_pending(), "frames left on the tap");

        // A ring's worth of chains to send is a whole turn: another is asked for.
        let (device_end, _host) = pair();
        let mut net = Net::new(device_end, Mac::DEFAULT);
        let mut tx = Ring::new(TX_RING);
        for i in 0..SIZE {
            tx.offer(&m, i, &[(BUFFERS, 60, false)]);
        }
        assert!(net.process(TX_QUEUE, &mut tx.queue, &m));
        assert_eq!(net.counters().tx_frames, u64::from(SIZE));
        assert!(net.source_pending(), "a turn's budget spent");
        assert!(!net.process(TX_QUEUE, &mut tx.queue, &m));
        assert!(!net.source_pending(), "nothing left");
    }

    #[test]
    fn the_configuration_space_holds_the_mac_and_the_features_offer_it() {
        let (device_end, _host) = pair();
        let net = Net::new(device_end, "52:54:00:ab:cd:ef".parse().unwrap());
        let mut config = [0xffu8; 8];
        net.read_config(0, &mut config);
        assert_eq!(config, [0x52, 0x54, 0, 0xab, 0xcd, 0xef, 0, 0]);
        let mut tail = [0xffu8; 2];
        net.read_config(4, &mut tail);
        assert_eq!(tail, [0xcd, 0xef]);
        net.read_config(u64::MAX, &mut tail);
        assert_eq!(tail, [0, 0]);
        assert_ne!(net.features() & (1 << VIRTIO_NET_F_MAC), 0);
        assert_ne!(net.features() & (1 << VIRTIO_F_VERSION_1), 0);
        assert_eq!(net.device_id(), VIRTIO_ID_NET);
        assert_eq!(net.queue_max_sizes(), &[QUEUE_SIZE, QUEUE_SIZE]);
    }

    #[test]
    fn mac_addresses_are_read_and_bad_ones_refused_with_the_reason() {
        let mac: Mac = "52:54:00:0a:0B:c".parse().unwrap();
        assert_eq!(mac.0, [0x52, 0x54, 0, 0x0a, 0x0b, 0x0c]);
        assert_eq!(mac.to_string(), "52:54:00:0a:0b:0c");
        assert_eq!(Mac::DEFAULT.to_string(), "52:54:00:12:34:56");
        for (given, why) in [
            ("52:54:00:12:34", "six bytes"),
            ("52:54:00:12:34:56:78", "six bytes"),
            ("52:54:00:12:34:xyz", "hexadecimal"),
            ("52:54::12:34:56", "hexadecimal"),
            ("01:00:5e:00:00:01", "multicast"),
            ("00:00:00:00:00:00", "zeros"),
            ("", "hexadecimal"),
        ] {
            let text = given.parse::<Mac>().unwrap_err().to_string();
            assert!(
                text.contains(&format!("{given:?}")) && text.contains(why),
                "{text}"
            );
        }
    }

    /// A transport with the device behind it, brought up through its registers as Linux
    /// does, its queues where [`Ring`] lays them out.
    /// Also returns the interrupt's eventfd and the guest memory (shared with the
    /// transport's).
    fn transport(backend: File) -> (Transport<Net<File>>, EventFd, GuestMemoryMmap) {
        let interrupt = EventFd::new(EFD_NONBLOCK).unwrap();
        let seen = interrupt.try_clone().unwrap();
        let guest = memory();
        let mut t = Transport::new(Net::new(backend, Mac::DEFAULT), guest.clone(), interrupt);
        let mut set = |offset: u32, value: u32| t.write(u64::from(offset), &value.to_le_bytes());
        let features = (1u64 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_NET_F_MAC);
        let driver = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
        set(VIRTIO_MMIO_STATUS, driver);
        set(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        set(VIRTIO_MMIO_DRIVER_FEATURES, features as u32);
        set(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        set(VIRTIO_MMIO_DRIVER_FEATURES, (features >> 32) as u32);
        set(VIRTIO_MMIO_STATUS, driver | VIRTIO_CONFIG_S_FEATURES_OK);
        for (index, base) in [(0, RX_RING), (1, TX_RING)] {
            set(VIRTIO_MMIO_QUEUE_SEL, index);
            set(VIRTIO_MMIO_QUEUE_NUM, u32::from(SIZE));
            set(VIRTIO_MMIO_QUEUE_DESC_LOW, base as u32);
            set(VIRTIO_MMIO_QUEUE_AVAIL_LOW, (base + 0x1000) as u32);
            set(VIRTIO_MMIO_QUEUE_USED_LOW, (base + 0x2000) as u32);
            set(VIRTIO_MMIO_QUEUE_READY, 1);
        }
        set(
            VIRTIO_MMIO_STATUS,
            driver | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK,
        );
        let mut id = [0u8; 4];
        t.read(u64::from(VIRTIO_MMIO_DEVICE_ID), &mut id);
        assert_eq!(u32::from_le_bytes(id), VIRTIO_ID_NET);
        let mut mac = [0u8; 6];
        t.read(u64::from(VIRTIO_MMIO_CONFIG), &mut mac);
        assert_eq!(mac, Mac::DEFAULT.0);
        (t, seen, guest)
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_notifier_thread_serves_the_tap_and_each_queues_own_notification() {
        let (device_end, mut host) = pair();
        let (t, interrupt, guest) = transport(device_end);
        let shared = Arc::new(Mutex::new(t));
        let rx_kick = EventFd::new(EFD_NONBLOCK).unwrap();
        let tx_kick = EventFd::new(EFD_NONBLOCK).unwrap();
        let notifier = Notifier::spawn_queues(
            Arc::clone(&shared),
            vec![
                (rx_kick.try_clone().unwrap(), RX_QUEUE as u32),
                (tx_kick.try_clone().unwrap(), TX_QUEUE as u32),
            ],
        )
        .unwrap();
        let mut rx = Ring::new(RX_RING);
        let mut tx = Ring::new(TX_RING);

        // A frame before any buffer: it waits; the guest's buffers and notification
        // bring it in.
        host.write_all(&packet(70, 1)).unwrap();
        wait_until("the wait for buffers", || {
            shared.lock().unwrap().device().counters().rx_waits == 1
        });
        rx.offer(&guest, 0, &[(BUFFERS, 1530, true)]);
        rx_kick.write(1).unwrap();
        wait_until("the frame in the guest", || rx.used_idx(&guest) == 1);
        assert_eq!(interrupt.read().unwrap(), 1);

        // With a buffer waiting, a frame comes in through the tap's readiness alone.
        rx.offer(&guest, 1, &[(BUFFERS + 0x1000, 1530, true)]);
        rx_kick.write(1).unwrap();
        wait_until("the notification served", || {
            shared.lock().unwrap().queue_notifications(RX_QUEUE) == 2
        });
        host.write_all(&packet(80, 2)).unwrap();
        wait_until("the second frame in the guest", || rx.used_idx(&guest) == 2);
        assert_eq!(rx.used(&guest, 1), (1, 92));

        // The guest transmits.
        guest
            .write_slice(&packet(60, 5), GuestAddress(BUFFERS + 0x8000))
            .unwrap();
        tx.offer(&guest, 0, &[(BUFFERS + 0x8000, 72, false)]);
        tx_kick.write(1).unwrap();
        wait_until("the frame on the host", || tx.used_idx(&guest) == 1);
        let mut got = [0u8; 128];
        assert_eq!(host.read(&mut got).unwrap(), 72);
        assert_eq!(&got[12..72], &packet(60, 5)[12..]);

        let t = shared.lock().unwrap();
        assert_eq!(
            (
                t.queue_notifications(RX_QUEUE),
                t.queue_notifications(TX_QUEUE)
            ),
            (2, 1)
        );
        let c = t.device().counters();
        assert_eq!((c.rx_frames, c.tx_frames, c.rx_waits), (2, 1, 1));
        drop(t);
        assert!(notifier.wakeups() >= 4, "{}", notifier.wakeups());
        drop(notifier);
        assert_eq!(
            Arc::strong_count(&shared),
            1,
            "the thread let the transport go"
        );
    }

    /// The device's work, both ways, on a thread under the monitor's system call filter:
    /// a call outside the allow-list would end the test binary with the call's number.
    #[test]
    fn a_round_both_ways_makes_only_calls_the_monitors_filter_allows() {
        let (device_end, mut host) = pair();
        let (t, interrupt, guest) = transport(device_end);
        let mut rx = Ring::new(RX_RING);
        let mut tx = Ring::new(TX_RING);
        rx.offer(&guest, 0, &[(BUFFERS, 1530, true)]);
        guest
            .write_slice(&packet(60, 5), GuestAddress(BUFFERS + 0x8000))
            .unwrap();
        tx.offer(&guest, 0, &[(BUFFERS + 0x8000, 72, false)]);
        host.write_all(&packet(64, 1)).unwrap();
        let filter = crate::seccomp::Filter::built();
        let t = std::thread::spawn(move || {
            let mut t = t;
            filter.apply().unwrap();
            t.serve_source(RX_QUEUE);
            t.notify(RX_QUEUE as u32);
            t.notify(TX_QUEUE as u32);
            t
        })
        .join()
        .unwrap();
        let c = t.device().counters();
        assert_eq!((c.rx_frames, c.tx_frames), (1, 1));
        assert!(interrupt.read().unwrap() >= 1);
        let mut got = [0u8; 128];
        assert_eq!(host.read(&mut got).unwrap(), 72);
    }

    /// Runs `f` on a thread of its own in a new network namespace, so nothing it does
    /// touches the host's network; the namespace goes with the thread and its
    /// descriptors. `None`, with the reason printed, where this cannot be done (not
    /// root); a failure under CI=true.
    fn in_new_network_namespace<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
        let skip = |why: String| {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true needs this test to run: {why}"
            );
            eprintln!("skipped: {why}");
            None
        };
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return skip("a tap in a network namespace of its own needs root".to_owned());
        }
        if !std::path::Path::new(crate::virtio::tap::TUN_DEVICE).exists() {
            return skip(format!("{} is missing", crate::virtio::tap::TUN_DEVICE));
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: unshare has no memory preconditions; it moves only this
                    // thread into a new network namespace.
                    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(f())
                })
                .join()
                .unwrap()
        })
        .map_or_else(
            |e| skip(format!("cannot make a network namespace: {e}")),
            Some,
        )
    }

    /// `ioctl(2)` on an interface through a datagram socket: `request` with the ifreq
    /// for `name`, prepared by `set`.
    fn interface_ioctl(
        name: &str,
        request: libc::Ioctl,
        set: impl FnOnce(&mut libc::ifreq),
    ) -> libc::ifreq {
        // SAFETY: socket has no memory preconditions.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "{}", io::Error::last_os_error());
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is plain data; all-zero is valid.
        let mut ifreq: libc::ifreq = unsafe { std::mem::zeroed() };
        for (to, from) in ifreq.ifr_name.iter_mut().zip(name.bytes()) {
            *to = libc::c_char::from_ne_bytes([from]);
        }
        set(&mut ifreq);
        // SAFETY: every request used here reads or writes one ifreq, which `ifreq` is.
        let done = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                request,
                &mut ifreq,
            )
        };
        assert_eq!(
            done,
            0,
            "ioctl {request:#x} on {name}: {}",
            io::Error::last_os_error()
        );
        ifreq
    }

    fn sockaddr_in(address: [u8; 4]) -> libc::sockaddr {
        let inet = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(address),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sockaddr_in and sockaddr are both 16 bytes of plain data, and the kernel
        // reads the one as the other (that is how the interface ioctls take addresses).
        unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(inet) }
    }

    /// An Ethernet frame with the virtio-net header before it.
    fn ethernet(dst: [u8; 6], src: [u8; 6], kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; VNET_HEADER_SIZE];
        p.extend_from_slice(&dst);
        p.extend_from_slice(&src);
        p.extend_from_slice(&kind.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// An IPv4 UDP datagram (no UDP checksum, which IPv4 allows).
    fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        let total = (20 + 8 + data.len()) as u16;
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let folded = (sum & 0xffff) + (sum >> 16);
        let checksum = !(((folded & 0xffff) + (folded >> 16)) as u16);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        ip.extend_from_slice(&sport.to_be_bytes());
        ip.extend_from_slice(&dport.to_be_bytes());
        ip.extend_from_slice(&(8 + data.len() as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(data);
        ip
    }

    /// A real tap, in a network namespace of the test's own: a UDP datagram from the
    /// "guest" reaches a socket on the host side; the host's answer makes its kernel ask
    /// for the guest's address (ARP), which the guest answers, and the answer comes in.
    #[test]
    fn frames_cross_a_real_tap_both_ways() {
        const HOST: [u8; 4] = [10, 200, 0, 1];
        const GUEST: [u8; 4] = [10, 200, 0, 2];
        const NAME: &str = "vcbnet-test0";
        let ran = in_new_network_namespace(|| {
            let tap = crate::virtio::tap::Tap::open(NAME).unwrap();
            assert_eq!(tap.name(), NAME);
            interface_ioctl(NAME, libc::SIOCSIFADDR, |r| {
                r.ifr_ifru.ifru_addr = sockaddr_in(HOST)
            });
            interface_ioctl(NAME, libc::SIOCSIFNETMASK, |r| {
                r.ifr_ifru.ifru_netmask = sockaddr_in([255, 255, 255, 0])
            });
            interface_ioctl(NAME, libc::SIOCSIFFLAGS, |r| {
                r.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short
            });
            let hw = interface_ioctl(NAME, libc::SIOCGIFHWADDR, |_| {});
            // SAFETY: SIOCGIFHWADDR filled the address member of the union.
            let data = unsafe { hw.ifr_ifru.ifru_hwaddr.sa_data };
            let host_mac: [u8; 6] = std::array::from_fn(|i| data[i].to_ne_bytes()[0]);
            let socket = std::net::UdpSocket::bind((std::net::Ipv4Addr::from(HOST), 0)).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let port = socket.local_addr().unwrap().port();

            let mut net = Net::new(tap, Mac::DEFAULT);
            let m = memory();
            let mut tx = Ring::new(TX_RING);
            let mut rx = Ring::new(RX_RING);
            let mut send = |net: &mut Net<crate::virtio::tap::Tap>, packet: &[u8], at: u64| {
                m.write_slice(packet, GuestAddress(at)).unwrap();
                let head = tx.published % SIZE;
                tx.offer(&m, head, &[(at, packet.len() as u32, false)]);
                net.process(TX_QUEUE, &mut tx.queue, &m);
            };
            let ping = udp(GUEST, HOST, 4000, port, b"ping");
            send(
                &mut net,
                &ethernet(host_mac, Mac::DEFAULT.0, 0x0800, &ping),
                BUFFERS,
            );
            let mut got = [0u8; 16];
            let (n, from) = socket.recv_from(&mut got).expect("the guest's datagram");
            assert_eq!(&got[..n], b"ping");
            assert_eq!(from, (std::net::Ipv4Addr::from(GUEST), 4000).into());

            // The answer: first the host's kernel asks who has the guest's address.
            socket.send_to(b"pong", from).unwrap();
            let mut receive = |net: &mut Net<crate::virtio::tap::Tap>,
                               wanted: &dyn Fn(&[u8]) -> bool| {
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    assert!(Instant::now() < deadline, "no such frame within 5 s");
                    let head = rx.published % SIZE;
                    let at = BUFFERS + 0x1_0000;
                    rx.offer(&m, head, &[(at, 1530, true)]);
                    let used = rx.used_idx(&m);
                    net.process(RX_QUEUE, &mut rx.queue, &m);
                    if rx.used_idx(&m) == used {
                        // Not yet arrived: the buffer stays offered; take it back.
                        rx.published = rx.published.wrapping_sub(1);
                        m.write_obj(rx.published, GuestAddress(RX_RING + 0x1002))
                            .unwrap();
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    let (_, len) = rx.used(&m, used);
                    let frame = read_guest(&m, at, len as usize);
                    assert_eq!(&frame[..VNET_HEADER_SIZE], &clean_header());
                    if wanted(&frame[VNET_HEADER_SIZE..]) {
                        return frame[VNET_HEADER_SIZE..].to_vec();
                    }
                }
            };
            // Ethernet type ARP, operation request, target the guest's address.
            let arp = receive(&mut net, &|f| {
                f[12..14] == [8, 6] && f[20..22] == [0, 1] && f[38..42] == GUEST
            });
            assert_eq!(&arp[6..12], &host_mac);
            let mut reply = vec![0, 1, 8, 0, 6, 4, 0, 2];
            reply.extend_from_slice(&Mac::DEFAULT.0);
            reply.extend_from_slice(&GUEST);
            reply.extend_from_slice(&host_mac);
            reply.extend_from_slice(&HOST);
            send(
                &mut net,
                &ethernet(host_mac, Mac::DEFAULT.0, 0x0806, &reply),
                BUFFERS + 0x800,
            );
            let pong = receive(&mut net, &|f| f[12..14] == [8, 0] && f[23] == 17);
            assert_eq!(&pong[..6], &Mac::DEFAULT.0);
            assert_eq!(&pong[14 + 20 + 8..], b"pong");
            net.counters()
        });
        if let Some(c) = ran {
            assert_eq!(c.tx_frames, 2);
            assert!(c.rx_frames >= 2, "{c:?}");
            assert_eq!((c.tx_dropped_host, c.rx_dropped_too_big), (0, 0));
        }
    }
}
