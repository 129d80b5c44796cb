//! Fuzz target `virtio_mmio`: the virtio-mmio transport's registers, driven in any order.
//!
//! A guest may read and write the device's registers in any order and at any width:
//! reset it halfway, move a queue after it was made ready, notify before the driver is
//! ready, acknowledge interrupts that never came. The input's first byte chooses a
//! read-only disk (bit 0) and how many of the following bytes are register accesses
//! (7 bytes each: the kind and width, a 16-bit offset, a 32-bit value); the rest is the
//! start of guest memory, where the queue and its buffers may lie. The transport must
//! never panic or hang, must always identify itself, and a read-only disk must take no
//! write.

#![no_main]

use libfuzzer_sys::fuzz_target;
use microvm::virtio::block::{Block, Disk};
use microvm::virtio::mmio::{Transport, MAGIC, MMIO_SIZE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Guest memory, bytes.
const MEMORY: usize = 64 * 1024;
/// The disk, bytes: 64 sectors.
const DISK: usize = 64 * 512;

/// A disk in memory that counts the writes it took.
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
    let [options, rest @ ..] = data else {
        return;
    };
    let read_only = options & 1 != 0;
    let ops_len = (usize::from(options >> 1) * 7).min(rest.len());
    let (ops, memory_bytes) = rest.split_at(ops_len);
    let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY)]).expect("memory");
    let len = memory_bytes.len().min(MEMORY);
    memory
        .write_slice(&memory_bytes[..len], GuestAddress(0))
        .expect("guest memory holds the input");
    let device = Block::new(MemoryDisk(vec![0; DISK]), DISK as u64, read_only, "fuzz");
    let interrupt = EventFd::new(EFD_NONBLOCK).expect("eventfd");
    let mut transport = Transport::new(device, memory, interrupt);

    for op in ops.chunks_exact(7) {
        let offset = u64::from(u16::from_le_bytes([op[1], op[2]])) % MMIO_SIZE;
        let value = [op[3], op[4], op[5], op[6]];
        let width = [1usize, 2, 4, 8][usize::from(op[0] >> 1) % 4];
        if op[0] & 1 == 0 {
            let mut bytes = [0u8; 8];
            bytes[..4].copy_from_slice(&value);
            transport.write(offset, &bytes[..width]);
        } else {
            let mut bytes = [0u8; 8];
            transport.read(offset, &mut bytes[..width]);
        }
    }

    let mut magic = [0u8; 4];
    transport.read(0, &mut magic);
    assert_eq!(
        u32::from_le_bytes(magic),
        MAGIC,
        "the transport forgot what it is"
    );
    if read_only {
        let counters = transport.device().counters();
        assert_eq!(counters.writes, 0, "a read-only disk took a write");
        assert_eq!(counters.bytes_written, 0);
    }
});
