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

mod driver;

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
    let mut features = driver::VERSION_1 | MAC;
    if options & 1 != 0 {
        features |= driver::EVENT_IDX;
    }
    let queue = |base: u32| driver::Queue {
        size: 1 << (size % 9),
        desc: base,
        avail: base + 0x800,
        used: base + 0x1000,
    };
    let t = &mut transport;
    driver::bring_up(t, features, &[queue(0), queue(0x1800)]);
    driver::set(t, driver::QUEUE_NOTIFY, RX_QUEUE as u32);
    driver::set(t, driver::QUEUE_NOTIFY, TX_QUEUE as u32);
    t.serve_source(RX_QUEUE);
    driver::set(t, driver::QUEUE_NOTIFY, TX_QUEUE as u32);
    driver::set(t, driver::QUEUE_NOTIFY, RX_QUEUE as u32);
    if options & 2 != 0 {
        // A reset drops the frame that waited, if any; a reset device serves nothing.
        driver::set(t, driver::STATUS, 0);
        driver::set(t, driver::QUEUE_NOTIFY, RX_QUEUE as u32);
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
