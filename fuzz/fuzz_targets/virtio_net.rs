//! Fuzz target `virtio_net`: the virtio-net device and its virtio-mmio transport, on
//! queues a guest laid out, with frames waiting on the host side.
//!
//! The input's first byte chooses the features (bit 0: event index) and whether the
//! driver resets the device at the end and notifies it again (bit 1), the second the
//! size of both queues (a power of two up to 256), the third how many frames (0 to 4)
//! wait on the host side before the guest starts; each frame's length follows as two
//! bytes (up to 2 KiB, a header's worth at least). The rest is the first 64 KiB of guest
//! memory, where the queues lie at fixed addresses (receive: descriptors at 0, available
//! ring at 0x800, used ring at 0x1000; transmit: 0x1800, 0x2000, 0x2800). The driver brings
//! the device up through its registers as Linux does, notifies both queues, the host side
//! becomes readable, and both queues are notified again. The device may refuse any chain,
//! but it must never panic or hang, never hand the host more than a whole frame at a
//! time, never pass on an offload request, and count every frame it sent.

#![no_main]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;

use libfuzzer_sys::fuzz_target;
use microvm::virtio::mmio::Transport;
use microvm::virtio::net::{Mac, Net, MAX_PACKET, RX_QUEUE, TX_QUEUE};
use microvm::virtio::tap::VNET_HEADER_SIZE;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Guest memory, bytes.
const MEMORY: usize = 64 * 1024;

// virtio-mmio register offsets and status bits (virtio 1.2, 4.2.2 and 2.1).
const DRIVER_FEATURES: u64 = 0x20;
const DRIVER_FEATURES_SEL: u64 = 0x24;
const QUEUE_SEL: u64 = 0x30;
const QUEUE_NUM: u64 = 0x38;
const QUEUE_READY: u64 = 0x44;
const QUEUE_NOTIFY: u64 = 0x50;
const STATUS: u64 = 0x70;
const QUEUE_DESC_LOW: u64 = 0x80;
const QUEUE_AVAIL_LOW: u64 = 0x90;
const QUEUE_USED_LOW: u64 = 0xa0;
const ACKNOWLEDGE: u32 = 1;
const DRIVER: u32 = 2;
const DRIVER_OK: u32 = 4;
const FEATURES_OK: u32 = 8;
const VERSION_1: u64 = 1 << 32;
const EVENT_IDX: u64 = 1 << 29;
const MAC: u64 = 1 << 5;

/// A datagram socket pair's end as a `File`, read and written as the device does a tap.
fn end(socket: UnixDatagram) -> File {
    socket.set_nonblocking(true).expect("non-blocking");
    File::from(OwnedFd::from(socket))
}

fuzz_target!(|data: &[u8]| {
    let [options, size, frames, rest @ ..] = data else {
        return;
    };
    let frames = usize::from(frames % 5);
    let Some((lengths, rest)) = rest.split_at_checked(2 * frames) else {
        return;
    };
    let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY)]).expect("memory");
    let len = rest.len().min(MEMORY);
    memory
        .write_slice(&rest[..len], GuestAddress(0))
        .expect("guest memory holds the input");
    let (device_end, host_end) = UnixDatagram::pair().expect("a socket pair");
    let mut host = end(host_end);
    for (i, pair) in lengths.chunks(2).enumerate() {
        let len = usize::from(u16::from_le_bytes([pair[0], pair[1]]) % 2048).max(VNET_HEADER_SIZE);
        let frame: Vec<u8> = (0..len).map(|b| (b + i) as u8).collect();
        host.write_all(&frame).expect("a frame waits");
    }
    let interrupt = EventFd::new(EFD_NONBLOCK).expect("eventfd");
    let device = Net::new(end(device_end), Mac::DEFAULT);
    let mut transport = Transport::new(device, memory, interrupt);
    let set = |transport: &mut Transport<Net<File>>, offset: u64, value: u32| {
        transport.write(offset, &value.to_le_bytes())
    };

    let mut features = VERSION_1 | MAC;
    if options & 1 != 0 {
        features |= EVENT_IDX;
    }
    let t = &mut transport;
    set(t, STATUS, 0);
    set(t, STATUS, ACKNOWLEDGE | DRIVER);
    set(t, DRIVER_FEATURES_SEL, 0);
    set(t, DRIVER_FEATURES, features as u32);
    set(t, DRIVER_FEATURES_SEL, 1);
    set(t, DRIVER_FEATURES, (features >> 32) as u32);
    set(t, STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    for (queue, base) in [(0, 0), (1, 0x1800)] {
        set(t, QUEUE_SEL, queue);
        set(t, QUEUE_NUM, 1 << (size % 9));
        set(t, QUEUE_DESC_LOW, base);
        set(t, QUEUE_AVAIL_LOW, base + 0x800);
        set(t, QUEUE_USED_LOW, base + 0x1000);
        set(t, QUEUE_READY, 1);
    }
    set(t, STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    set(t, QUEUE_NOTIFY, RX_QUEUE as u32);
    set(t, QUEUE_NOTIFY, TX_QUEUE as u32);
    t.serve_source(RX_QUEUE);
    set(t, QUEUE_NOTIFY, TX_QUEUE as u32);
    set(t, QUEUE_NOTIFY, RX_QUEUE as u32);
    if options & 2 != 0 {
        // A reset drops the frame that waited, if any; a reset device serves nothing.
        set(t, STATUS, 0);
        set(t, QUEUE_NOTIFY, RX_QUEUE as u32);
        t.serve_all();
        assert!(t.device().counters().rx_dropped_reset <= 1);
    }

    let counters = transport.device().counters();
    assert!(counters.rx_frames <= frames as u64);
    let mut sent = 0u64;
    let mut packet = vec![0u8; 2 * MAX_PACKET];
    while let Ok(n) = host.read(&mut packet) {
        assert!(n <= MAX_PACKET, "a packet of {n} bytes reached the host");
        assert!(n >= VNET_HEADER_SIZE);
        assert!(
            packet[..VNET_HEADER_SIZE].iter().all(|&b| b == 0),
            "an offload request reached the host"
        );
        sent += 1;
    }
    assert_eq!(sent, counters.tx_frames, "every frame sent is counted");
});
