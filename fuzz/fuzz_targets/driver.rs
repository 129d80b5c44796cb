//! What the virtio fuzz targets share: a guest driver bringing a device up through its
//! virtio-mmio registers as Linux does (virtio 1.2, 4.2.2 and 2.1), with the queues where
//! the target laid them out in guest memory.

use microvm::virtio::mmio::Transport;
use microvm::virtio::Device;

// virtio-mmio register offsets and status bits.
const DRIVER_FEATURES: u64 = 0x20;
const DRIVER_FEATURES_SEL: u64 = 0x24;
const QUEUE_SEL: u64 = 0x30;
const QUEUE_NUM: u64 = 0x38;
const QUEUE_READY: u64 = 0x44;
/// `QueueNotify`: the driver writes a queue's index here.
pub const QUEUE_NOTIFY: u64 = 0x50;
/// `Status`: 0 resets the device.
pub const STATUS: u64 = 0x70;
const QUEUE_DESC_LOW: u64 = 0x80;
const QUEUE_AVAIL_LOW: u64 = 0x90;
const QUEUE_USED_LOW: u64 = 0xa0;
const ACKNOWLEDGE: u32 = 1;
const DRIVER: u32 = 2;
const DRIVER_OK: u32 = 4;
const FEATURES_OK: u32 = 8;
/// `VIRTIO_F_VERSION_1`.
pub const VERSION_1: u64 = 1 << 32;
/// `VIRTIO_RING_F_EVENT_IDX`.
pub const EVENT_IDX: u64 = 1 << 29;

/// One queue as the driver places it: its size and the guest addresses of its
/// descriptor table, available ring and used ring.
pub struct Queue {
    /// Entries (the device refuses a size that is not a power of two it allows).
    pub size: u32,
    /// The descriptor table.
    pub desc: u32,
    /// The available ring.
    pub avail: u32,
    /// The used ring.
    pub used: u32,
}

/// Writes `value` to the register at `offset`.
pub fn set<D: Device>(transport: &mut Transport<D>, offset: u64, value: u32) {
    transport.write(offset, &value.to_le_bytes());
}

/// Resets the device, negotiates `features`, places `queues` (by index) and sets
/// `DRIVER_OK`.
pub fn bring_up<D: Device>(transport: &mut Transport<D>, features: u64, queues: &[Queue]) {
    set(transport, STATUS, 0);
    set(transport, STATUS, ACKNOWLEDGE | DRIVER);
    set(transport, DRIVER_FEATURES_SEL, 0);
    set(transport, DRIVER_FEATURES, features as u32);
    set(transport, DRIVER_FEATURES_SEL, 1);
    set(transport, DRIVER_FEATURES, (features >> 32) as u32);
    set(transport, STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    for (index, queue) in queues.iter().enumerate() {
        set(transport, QUEUE_SEL, index as u32);
        set(transport, QUEUE_NUM, queue.size);
        set(transport, QUEUE_DESC_LOW, queue.desc);
        set(transport, QUEUE_AVAIL_LOW, queue.avail);
        set(transport, QUEUE_USED_LOW, queue.used);
        set(transport, QUEUE_READY, 1);
    }
    set(
        transport,
        STATUS,
        ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
    );
}
