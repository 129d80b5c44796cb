//! Fuzz target `virtio_block`: the virtio-blk device and its virtio-mmio transport, on
//! queues a guest laid out.
//!
//! A guest driver owns the rings: the descriptor table, the available ring and every
//! buffer address are whatever the guest wrote. The input's first byte chooses the
//! features (bit 0: event index; bit 1: a read-only disk), the second the queue size
//! (a power of two up to 256); the rest is the first 64 KiB of guest memory, where the
//! queue lies at fixed addresses (descriptors at 0, available ring at 0x1000, used ring
//! at 0x2000). The driver brings the device up through its registers as Linux does and
//! notifies the queue twice. The device may refuse anything, but it must never panic or
//! hang, never touch memory outside the guest's, and never change a read-only disk.

#![no_main]

mod driver;

use libfuzzer_sys::fuzz_target;
use microvm::virtio::block::{Block, Disk};
use microvm::virtio::mmio::Transport;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Guest memory, bytes.
const MEMORY: usize = 64 * 1024;
/// The disk, bytes: 64 sectors.
const DISK: usize = 64 * 512;

/// A disk in memory.
struct MemoryDisk(Vec<u8>);

impl Disk for MemoryDisk {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let bytes = self
            .0
            .get(start..start.saturating_add(buf.len()))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let bytes = self
            .0
            .get_mut(start..start.saturating_add(buf.len()))
            .ok_or(std::io::ErrorKind::WriteZero)?;
        bytes.copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let [options, size, rest @ ..] = data else {
        return;
    };
    let read_only = options & 2 != 0;
    let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY)]).expect("memory");
    let len = rest.len().min(MEMORY);
    memory
        .write_slice(&rest[..len], GuestAddress(0))
        .expect("guest memory holds the input");
    let disk: Vec<u8> = (0..DISK).map(|i| (i % 253) as u8).collect();
    let device = Block::new(MemoryDisk(disk.clone()), DISK as u64, read_only, "fuzz");
    let interrupt = EventFd::new(EFD_NONBLOCK).expect("eventfd");
    let mut transport = Transport::new(device, memory, interrupt);
    let mut features = driver::VERSION_1;
    if options & 1 != 0 {
        features |= driver::EVENT_IDX;
    }
    let queue = driver::Queue {
        size: 1 << (size % 9),
        desc: 0,
        avail: 0x1000,
        used: 0x2000,
    };
    driver::bring_up(&mut transport, features, &[queue]);
    driver::set(&mut transport, driver::QUEUE_NOTIFY, 0);
    driver::set(&mut transport, driver::QUEUE_NOTIFY, 0);

    let counters = transport.device().counters();
    assert!(counters.bytes_read <= 2 * 256 * DISK as u64);
    if read_only {
        assert_eq!(counters.writes, 0, "a read-only disk took a write");
        assert_eq!(counters.bytes_written, 0);
    }
});
