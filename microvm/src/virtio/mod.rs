//! Virtio devices on the virtio-mmio transport (virtio 1.x, "modern" devices only).
//!
//! A virtio device and its driver in the guest share rings in guest memory
//! ([`virtio_queue`]): the driver puts a chain of buffer descriptors on the available
//! ring and tells the device ("notifies") by writing the queue's index to a register; the
//! device takes the chain, does the work, puts the chain's head on the used ring and
//! interrupts the guest. Everything the guest wrote into the rings is untrusted input: a
//! descriptor that points outside guest memory, a chain that loops, one longer than the
//! device allows or buffers the wrong way round get a device error for the guest (or, when
//! not even that can be written, the chain back with nothing written), never a panic of
//! the monitor.
//!
//! - [`mmio`]: the transport, a [`crate::bus::BusDevice`] of [`mmio::MMIO_SIZE`] bytes
//!   of registers in the 32-bit hole, announced to Linux on its command line
//!   ([`mmio::cmdline_entry`]);
//! - [`request`]: a virtio-blk request read from a descriptor chain, checked;
//! - [`block`]: the virtio-blk device, backed by a raw image file on the host;
//! - [`net`]: the virtio-net device, on a [`tap`] interface of the host;
//! - [`vsock`]: the virtio-vsock device, its data path in the host kernel (vhost-vsock).

pub mod block;
pub mod mmio;
pub mod net;
pub mod request;
pub mod tap;
pub mod vsock;

use std::os::fd::RawFd;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

/// What a device behind the [`mmio::Transport`] does; the transport keeps the registers,
/// the feature negotiation and the queues.
pub trait Device: Send {
    /// The virtio device ID (`VIRTIO_ID_*`).
    fn device_id(&self) -> u32;
    /// The feature bits the device offers (`VIRTIO_F_VERSION_1` among them).
    fn features(&self) -> u64;
    /// The largest size of each of its queues, by index.
    fn queue_max_sizes(&self) -> &[u16];
    /// Reads the device's configuration space at `offset`; bytes past its end read as
    /// zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// The driver acknowledged `features` (a subset of [`Device::features`]).
    fn set_driver_features(&mut self, features: u64);
    /// The driver wants the chains on `queue` served: the device takes every available
    /// chain and returns whether the guest is to be interrupted.
    fn process(&mut self, index: usize, queue: &mut Queue, memory: &GuestMemoryMmap) -> bool;
    /// The driver reset the device.
    fn reset(&mut self);
    /// The driver set `DRIVER_OK` with `queues` set up: a device whose queues are served
    /// elsewhere (in the host kernel) hands them over here. `false` means it could not,
    /// and the transport asks the driver for a reset.
    fn activate(&mut self, _queues: &[Queue], _memory: &GuestMemoryMmap) -> bool {
        true
    }
    /// Whether something other than the transport interrupts the guest for this device
    /// (the host kernel, through the same eventfd): the transport cannot then mark the
    /// interrupt's cause first, so it always reports used buffers as a possible cause.
    fn interrupts_by_itself(&self) -> bool {
        false
    }
    /// A host descriptor whose readiness to be read means the device has work of its own
    /// for a queue (a frame arrived on its tap): the descriptor and the queue's index.
    /// The [`mmio::Notifier`] watches it, edge-triggered, beside the queues'
    /// notifications. Devices fed only by the guest have none.
    fn source(&self) -> Option<(RawFd, usize)> {
        None
    }
    /// Whether the device ended its last turn with work left, on its [`Device::source`]
    /// or a queue (it serves a bounded amount at a time, so that its other queue waits no
    /// longer): the [`mmio::Notifier`] then serves all its queues again at once, whichever
    /// thread served the turn.
    fn source_pending(&self) -> bool {
        false
    }
}
