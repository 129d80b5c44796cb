//! virtio-blk (virtio 1.2, 5.2) backed by a raw image file on the host: sector `n` of the
//! guest's disk is bytes `n * 512..` of the file. Reads and writes go to the file at once
//! (no cache in the monitor); a flush becomes `fdatasync(2)` on it, so a guest's `fsync`
//! reaches the host disk. A read-only image is offered read-only (`VIRTIO_BLK_F_RO`), and
//! a write that comes anyway gets `VIRTIO_BLK_S_IOERR`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX,
    VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};

use super::request::{self, Kind, Request, SECTOR_SIZE};
use super::Device;

/// The size of the device's one queue.
pub const QUEUE_SIZE: u16 = 256;

/// Errors opening a disk image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image cannot be opened (missing, no permission).
    #[error("cannot open the disk image {path}")]
    Open {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The image is not a regular file.
    #[error("the disk image {path} is not a regular file (it is {kind})")]
    NotAFile {
        /// The image.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The image is smaller than one sector.
    #[error("the disk image {path} is {len} bytes: a disk needs at least one sector of {SECTOR_SIZE} bytes")]
    TooSmall {
        /// The image.
        path: PathBuf,
        /// Its size.
        len: u64,
    },
    /// A read-write image cannot be written.
    #[error("the disk image {path} is read-only on the host; offer it read-only")]
    ReadOnly {
        /// The image.
        path: PathBuf,
    },
}

/// Where a block device's sectors live.
pub trait Disk: Send {
    /// Fills `buf` from byte `offset`.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes `buf` at byte `offset`.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> io::Result<()>;
}

impl Disk for File {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write_all_at(buf, offset)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// A raw disk image, opened and checked.
#[derive(Debug)]
pub struct Image {
    /// The open file.
    pub file: File,
    /// Its size, bytes.
    pub len: u64,
    /// Whether the guest may only read it.
    pub read_only: bool,
}

impl Image {
    /// Opens the raw image at `path`, for reading and writing unless `read_only`. A path
    /// that is missing, not a regular file, smaller than a sector, or read-only on the
    /// host when asked read-write is refused with the reason.
    pub fn open(path: &Path, read_only: bool) -> Result<Image, Error> {
        let metadata = std::fs::metadata(path).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        let kind = metadata.file_type();
        if !kind.is_file() {
            let kind = if kind.is_dir() {
                "a directory"
            } else if kind.is_block_device() {
                "a block device"
            } else if kind.is_char_device() {
                "a character device"
            } else if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "not a file"
            };
            return Err(Error::NotAFile {
                path: path.to_owned(),
                kind,
            });
        }
        // Root may open a file without write permission for writing; the image's own
        // mode still says it is not to be written.
        if !read_only && metadata.permissions().readonly() {
            return Err(Error::ReadOnly {
                path: path.to_owned(),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| match source.raw_os_error() {
                Some(libc::EACCES | libc::EROFS | libc::EPERM) if !read_only => Error::ReadOnly {
                    path: path.to_owned(),
                },
                _ => Error::Open {
                    path: path.to_owned(),
                    source,
                },
            })?;
        let len = metadata.len();
        if len < SECTOR_SIZE {
            return Err(Error::TooSmall {
                path: path.to_owned(),
                len,
            });
        }
        Ok(Image {
            file,
            len,
            read_only,
        })
    }
}

/// What a block device has served, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Read requests served.
    pub reads: u64,
    /// Write requests served.
    pub writes: u64,
    /// Flush requests served.
    pub flushes: u64,
    /// Bytes read from the disk.
    pub bytes_read: u64,
    /// Bytes written to the disk.
    pub bytes_written: u64,
    /// Requests that got a device error or were refused, and queue faults.
    pub errors: u64,
    /// Times the guest was interrupted for used buffers.
    pub interrupts: u64,
}

/// A virtio-blk device over a [`Disk`].
pub struct Block<D: Disk> {
    disk: D,
    /// Whole sectors of the disk.
    sectors: u64,
    read_only: bool,
    id: [u8; VIRTIO_BLK_ID_BYTES as usize],
    driver_features: u64,
    queue_sizes: [u16; 1],
    /// Reused for every transfer between guest memory and the disk.
    bounce: Vec<u8>,
    counters: Counters,
    /// Set when the queue was found unusable; cleared by a reset.
    broken: bool,
}

impl<D: Disk> std::fmt::Debug for Block<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("sectors", &self.sectors)
            .field("read_only", &self.read_only)
            .field("counters", &self.counters)
            .finish()
    }
}

impl<D: Disk> Block<D> {
    /// A device of `len` bytes (whole sectors; a partial last sector is not offered) on
    /// `disk`, answering `GET_ID` with `id` (at most 20 bytes kept).
    pub fn new(disk: D, len: u64, read_only: bool, id: &str) -> Self {
        let mut id_bytes = [0u8; VIRTIO_BLK_ID_BYTES as usize];
        let n = id.len().min(id_bytes.len());
        id_bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
        Block {
            disk,
            sectors: len / SECTOR_SIZE,
            read_only,
            id: id_bytes,
            driver_features: 0,
            queue_sizes: [QUEUE_SIZE],
            bounce: Vec::new(),
            counters: Counters::default(),
            broken: false,
        }
    }

    /// What it has served so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The configuration space (`struct virtio_blk_config`) up to `blk_size`: capacity in
    /// sectors, `size_max`, `seg_max`, the geometry (unused) and the block size.
    fn config(&self) -> [u8; 24] {
        let mut config = [0u8; 24];
        config[0..8].copy_from_slice(&self.sectors.to_le_bytes());
        config[8..12].copy_from_slice(&request::MAX_SEGMENT_BYTES.to_le_bytes());
        let seg_max = u32::try_from(request::MAX_SEGMENTS).unwrap_or(u32::MAX);
        config[12..16].copy_from_slice(&seg_max.to_le_bytes());
        let block = u32::try_from(SECTOR_SIZE).unwrap_or(512);
        config[20..24].copy_from_slice(&block.to_le_bytes());
        config
    }

    /// Whether `request`'s sectors lie on the disk; the byte offset where they start.
    fn span(&self, request: &Request) -> Option<u64> {
        let sectors = request.data_len() / SECTOR_SIZE;
        let end = request.sector.checked_add(sectors)?;
        (end <= self.sectors).then(|| request.sector * SECTOR_SIZE)
    }

    /// Does what `request` asks; its status and the bytes written into guest memory
    /// besides the status byte.
    fn execute(&mut self, request: &Request, memory: &GuestMemoryMmap) -> (u32, u32) {
        match request.kind {
            Kind::In => {
                let Some(mut offset) = self.span(request) else {
                    return (VIRTIO_BLK_S_IOERR, 0);
                };
                let mut written = 0u32;
                for &(address, len) in &request.data {
                    self.bounce.resize(len as usize, 0);
                    if self.disk.read_at(&mut self.bounce, offset).is_err()
                        || memory.write_slice(&self.bounce, address).is_err()
                    {
                        return (VIRTIO_BLK_S_IOERR, written);
                    }
                    offset += u64::from(len);
                    written = written.saturating_add(len);
                }
                self.counters.reads += 1;
                self.counters.bytes_read += u64::from(written);
                (VIRTIO_BLK_S_OK, written)
            }
            Kind::Out => {
                let Some(mut offset) = self.span(request).filter(|_| !self.read_only) else {
                    return (VIRTIO_BLK_S_IOERR, 0);
                };
                for &(address, len) in &request.data {
                    self.bounce.resize(len as usize, 0);
                    if memory.read_slice(&mut self.bounce, address).is_err()
                        || self.disk.write_at(&self.bounce, offset).is_err()
                    {
                        return (VIRTIO_BLK_S_IOERR, 0);
                    }
                    offset += u64::from(len);
                }
                self.counters.writes += 1;
                self.counters.bytes_written += request.data_len();
                (VIRTIO_BLK_S_OK, 0)
            }
            Kind::Flush => {
                if self.disk.flush().is_err() {
                    return (VIRTIO_BLK_S_IOERR, 0);
                }
                self.counters.flushes += 1;
                (VIRTIO_BLK_S_OK, 0)
            }
            Kind::GetId => {
                let mut id: &[u8] = &self.id;
                let mut written = 0u32;
                for &(address, len) in &request.data {
                    let n = id.len().min(len as usize);
                    if memory.write_slice(&id[..n], address).is_err() {
                        return (VIRTIO_BLK_S_IOERR, written);
                    }
                    id = &id[n..];
                    written += n as u32;
                }
                (VIRTIO_BLK_S_OK, written)
            }
            Kind::Unsupported(_) => (VIRTIO_BLK_S_UNSUPP, 0),
        }
    }

    /// Serves one chain; the bytes written into its buffers (the used length).
    fn serve(
        &mut self,
        chain: virtio_queue::DescriptorChain<&GuestMemoryMmap>,
        memory: &GuestMemoryMmap,
    ) -> u32 {
        let (status, at, written) = match request::parse(chain, memory) {
            Ok(request) => {
                let (status, written) = self.execute(&request, memory);
                (status, request.status, written)
            }
            Err(rejected) => match rejected.status {
                Some(at) => (VIRTIO_BLK_S_IOERR, at, 0),
                None => {
                    self.counters.errors += 1;
                    return 0;
                }
            },
        };
        if status != VIRTIO_BLK_S_OK {
            self.counters.errors += 1;
        }
        // The status byte lies in guest memory (`parse` checked it).
        let status = u8::try_from(status).unwrap_or(u8::MAX);
        match memory.write_obj(status, at) {
            Ok(()) => written.saturating_add(1),
            Err(_) => written,
        }
    }
}

impl<D: Disk> Device for Block<D> {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn features(&self) -> u64 {
        let mut features = (1u64 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | (1 << VIRTIO_BLK_F_SEG_MAX)
            | (1 << VIRTIO_BLK_F_SIZE_MAX)
            | (1 << VIRTIO_BLK_F_FLUSH);
        if self.read_only {
            features |= 1 << VIRTIO_BLK_F_RO;
        }
        features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let config = self.config();
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|at| config.get(at).copied())
                .unwrap_or(0);
        }
    }

    fn set_driver_features(&mut self, features: u64) {
        self.driver_features = features;
    }

    fn process(&mut self, _index: usize, queue: &mut Queue, memory: &GuestMemoryMmap) -> bool {
        if self.broken || !queue.is_valid(memory) {
            self.broken = true;
            self.counters.errors += 1;
            return false;
        }
        let mut used = false;
        loop {
            // With EVENT_IDX: no notifications while the device works through the ring.
            if queue.disable_notification(memory).is_err() {
                self.broken = true;
                break;
            }
            let mut served = 0u32;
            loop {
                let chain = match queue.iter(memory) {
                    Ok(mut available) => available.next(),
                    // The available index is more than a queue ahead: the ring is garbage.
                    Err(_) => {
                        self.broken = true;
                        None
                    }
                };
                let Some(chain) = chain else { break };
                let head = chain.head_index();
                let len = self.serve(chain, memory);
                served += 1;
                // A head outside the table cannot go back on the used ring.
                match queue.add_used(memory, head, len) {
                    Ok(()) => used = true,
                    Err(_) => self.counters.errors += 1,
                }
            }
            // More chains may have come while notifications were off; a round that served
            // nothing ends the loop however the ring reads.
            let more = queue.enable_notification(memory).unwrap_or(false);
            if self.broken || served == 0 || !more {
                break;
            }
        }
        if self.broken {
            self.counters.errors += 1;
        }
        let interrupt = used && queue.needs_notification(memory).unwrap_or(true);
        if interrupt {
            self.counters.interrupts += 1;
        }
        interrupt
    }

    fn reset(&mut self) {
        self.driver_features = 0;
        self.broken = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::request::{HEADER_SIZE, MAX_DESCRIPTORS, MAX_SEGMENT_BYTES};
    use virtio_bindings::virtio_blk::{
        VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
    };
    use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use vm_memory::GuestAddress;

    /// Where the test lays its queue out in a 1 MiB guest memory.
    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x2000;
    const USED: u64 = 0x3000;
    /// Request headers, status bytes and data go from here.
    const HEADER: u64 = 0x8000;
    const STATUS: u64 = 0x9000;
    const DATA: u64 = 0x1_0000;
    const MEMORY: usize = 1 << 20;
    const NEXT: u16 = VRING_DESC_F_NEXT as u16;
    const WRITE: u16 = VRING_DESC_F_WRITE as u16;

    /// A guest driver's side of one queue, written by hand into guest memory.
    struct Driver {
        memory: GuestMemoryMmap,
        queue: Queue,
        published: u16,
    }

    impl Driver {
        fn new() -> Self {
            let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY)]).unwrap();
            let mut queue = Queue::new(QUEUE_SIZE).unwrap();
            queue.set_size(QUEUE_SIZE);
            queue.set_desc_table_address(Some(DESC as u32), Some(0));
            queue.set_avail_ring_address(Some(AVAIL as u32), Some(0));
            queue.set_used_ring_address(Some(USED as u32), Some(0));
            queue.set_ready(true);
            Driver {
                memory,
                queue,
                published: 0,
            }
        }

        /// Writes descriptor `index`.
        fn descriptor(&self, index: u16, address: u64, len: u32, flags: u16, next: u16) {
            let at = GuestAddress(DESC + 16 * u64::from(index));
            let mut bytes = [0u8; 16];
            bytes[0..8].copy_from_slice(&address.to_le_bytes());
            bytes[8..12].copy_from_slice(&len.to_le_bytes());
            bytes[12..14].copy_from_slice(&flags.to_le_bytes());
            bytes[14..16].copy_from_slice(&next.to_le_bytes());
            self.memory.write_slice(&bytes, at).unwrap();
        }

        /// Writes a chain of (address, len, write-only) buffers from descriptor `first`.
        fn chain(&self, first: u16, buffers: &[(u64, u32, bool)]) {
            for (i, &(address, len, writable)) in buffers.iter().enumerate() {
                let index = first + i as u16;
                let last = i + 1 == buffers.len();
                let mut flags = if writable { WRITE } else { 0 };
                if !last {
                    flags |= NEXT;
                }
                self.descriptor(index, address, len, flags, index + 1);
            }
        }

        fn header(&self, kind: u32, sector: u64) {
            let mut bytes = [0u8; 16];
            bytes[0..4].copy_from_slice(&kind.to_le_bytes());
            bytes[8..16].copy_from_slice(&sector.to_le_bytes());
            self.memory
                .write_slice(&bytes, GuestAddress(HEADER))
                .unwrap();
            self.memory.write_obj(0xaau8, GuestAddress(STATUS)).unwrap();
        }

        /// Puts `head` on the available ring.
        fn publish(&mut self, head: u16) {
            let slot = AVAIL + 4 + 2 * u64::from(self.published % QUEUE_SIZE);
            self.memory.write_obj(head, GuestAddress(slot)).unwrap();
            self.published = self.published.wrapping_add(1);
            self.memory
                .write_obj(self.published, GuestAddress(AVAIL + 2))
                .unwrap();
        }

        /// The used ring's index and entry `n`: (head, length).
        fn used(&self, n: u16) -> (u16, u32, u32) {
            let idx: u16 = self.memory.read_obj(GuestAddress(USED + 2)).unwrap();
            let at = USED + 4 + 8 * u64::from(n);
            let id: u32 = self.memory.read_obj(GuestAddress(at)).unwrap();
            let len: u32 = self.memory.read_obj(GuestAddress(at + 4)).unwrap();
            (idx, id, len)
        }

        fn status(&self) -> u8 {
            self.memory.read_obj(GuestAddress(STATUS)).unwrap()
        }

        /// One request: header, the data buffers, the status; served by `device`. Returns
        /// the status byte and the used length.
        fn request<D: Disk>(
            &mut self,
            device: &mut Block<D>,
            kind: u32,
            sector: u64,
            data: &[(u64, u32, bool)],
        ) -> (u8, u32) {
            self.header(kind, sector);
            let mut buffers = vec![(HEADER, HEADER_SIZE, false)];
            buffers.extend_from_slice(data);
            buffers.push((STATUS, 1, true));
            self.chain(0, &buffers);
            self.publish(0);
            let n = self.published - 1;
            device.process(0, &mut self.queue, &self.memory);
            let (idx, id, len) = self.used(n);
            assert_eq!((idx, id), (self.published, 0), "the chain went back used");
            (self.status(), len)
        }
    }

    fn disk(len: usize) -> (tempfile::NamedTempFile, File) {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(len as u64).unwrap();
        let open = file.reopen().unwrap();
        (file, open)
    }

    const OK: u8 = VIRTIO_BLK_S_OK as u8;
    const IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;

    #[test]
    fn writes_reach_the_file_and_read_back_and_a_flush_syncs() {
        let (path, file) = disk(8 * 512);
        let mut device = Block::new(file, 8 * 512, false, "disk0");
        let mut driver = Driver::new();
        let pattern: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
        driver
            .memory
            .write_slice(&pattern, GuestAddress(DATA))
            .unwrap();
        // Two buffers, one request: sectors 2 and 3.
        let out = [(DATA, 512, false), (DATA + 512, 512, false)];
        assert_eq!(
            driver.request(&mut device, VIRTIO_BLK_T_OUT, 2, &out),
            (OK, 1)
        );
        let on_host = std::fs::read(path.path()).unwrap();
        assert_eq!(&on_host[1024..2048], &pattern[..]);
        assert!(on_host[..1024].iter().all(|&b| b == 0));

        assert_eq!(
            driver.request(&mut device, VIRTIO_BLK_T_FLUSH, 0, &[]),
            (OK, 1)
        );
        let back = DATA + 0x1000;
        let read = [(back, 1024, true)];
        assert_eq!(
            driver.request(&mut device, VIRTIO_BLK_T_IN, 2, &read),
            (OK, 1025)
        );
        let mut got = vec![0u8; 1024];
        driver
            .memory
            .read_slice(&mut got, GuestAddress(back))
            .unwrap();
        assert_eq!(got, pattern);
        let counters = device.counters();
        assert_eq!(
            (
                counters.reads,
                counters.writes,
                counters.flushes,
                counters.errors
            ),
            (1, 1, 1, 0)
        );
        assert_eq!((counters.bytes_read, counters.bytes_written), (1024, 1024));
    }

    #[test]
    fn get_id_writes_the_id() {
        let (_path, file) = disk(512);
        let mut device = Block::new(file, 512, false, "vcbench-disk");
        let mut driver = Driver::new();
        let id = [(DATA, VIRTIO_BLK_ID_BYTES, true)];
        let (status, len) = driver.request(&mut device, VIRTIO_BLK_T_GET_ID, 0, &id);
        assert_eq!((status, len), (OK, 21));
        let mut got = [0u8; 20];
        driver
            .memory
            .read_slice(&mut got, GuestAddress(DATA))
            .unwrap();
        assert_eq!(&got[..12], b"vcbench-disk");
        assert!(got[12..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_read_only_disk_refuses_writes_with_an_io_error() {
        let (path, file) = disk(4 * 512);
        let mut device = Block::new(file, 4 * 512, true, "ro");
        assert_ne!(device.features() & (1 << VIRTIO_BLK_F_RO), 0);
        let mut driver = Driver::new();
        driver
            .memory
            .write_slice(&[7u8; 512], GuestAddress(DATA))
            .unwrap();
        let out = [(DATA, 512, false)];
        assert_eq!(
            driver.request(&mut device, VIRTIO_BLK_T_OUT, 0, &out),
            (IOERR, 1)
        );
        assert!(std::fs::read(path.path()).unwrap().iter().all(|&b| b == 0));
        assert_eq!(device.counters().errors, 1);
    }

    #[test]
    fn requests_past_the_end_or_of_partial_sectors_are_io_errors() {
        let (_path, file) = disk(4 * 512 + 100);
        let mut device = Block::new(file, 4 * 512 + 100, false, "d");
        let mut config = [0u8; 8];
        device.read_config(0, &mut config);
        assert_eq!(
            u64::from_le_bytes(config),
            4,
            "a partial sector is not offered"
        );
        let mut driver = Driver::new();
        let one = [(DATA, 512, true)];
        assert_eq!(driver.request(&mut device, VIRTIO_BLK_T_IN, 3, &one).0, OK);
        assert_eq!(
            driver.request(&mut device, VIRTIO_BLK_T_IN, 4, &one).0,
            IOERR
        );
        assert_eq!(
            driver
                .request(&mut device, VIRTIO_BLK_T_IN, u64::MAX, &one)
                .0,
            IOERR
        );
        let partial = [(DATA, 100, true)];
        assert_eq!(
            driver.request(&mut device, VIRTIO_BLK_T_IN, 0, &partial).0,
            IOERR
        );
        assert_eq!(
            driver.request(&mut device, VIRTIO_BLK_T_IN, 0, &[]).0,
            IOERR
        );
    }

    #[test]
    fn an_unknown_request_type_is_unsupported() {
        let (_path, file) = disk(512);
        let mut device = Block::new(file, 512, false, "d");
        let mut driver = Driver::new();
        let (status, _) = driver.request(&mut device, 99, 0, &[(DATA, 8, true)]);
        assert_eq!(u32::from(status), VIRTIO_BLK_S_UNSUPP);
    }

    #[test]
    fn buffers_outside_guest_memory_zero_length_oversized_or_the_wrong_way_are_io_errors() {
        let (path, file) = disk(64 * 512);
        let mut device = Block::new(file, 64 * 512, false, "d");
        let mut driver = Driver::new();
        let beyond = MEMORY as u64 - 256;
        let cases: [&[(u64, u32, bool)]; 5] = [
            // Half outside guest memory.
            &[(beyond, 512, true)],
            // Far outside, where the address wraps.
            &[(u64::MAX - 100, 512, false)],
            // Zero length.
            &[(DATA, 0, true), (DATA, 512, true)],
            // Larger than size_max.
            &[(DATA, MAX_SEGMENT_BYTES + 512, true)],
            // A read into a buffer the device may only read.
            &[(DATA, 512, false)],
        ];
        driver
            .memory
            .write_slice(&[5u8; 512], GuestAddress(DATA))
            .unwrap();
        for (i, data) in cases.iter().enumerate() {
            assert_eq!(
                driver.request(&mut device, VIRTIO_BLK_T_IN, 0, data).0,
                IOERR,
                "case {i}"
            );
        }
        // The wrong way round for a write, too: nothing reaches the disk.
        let writable = [(DATA, 512, true)];
        assert_eq!(
            driver
                .request(&mut device, VIRTIO_BLK_T_OUT, 0, &writable)
                .0,
            IOERR
        );
        assert!(std::fs::read(path.path()).unwrap().iter().all(|&b| b == 0));
        let mut untouched = [0u8; 512];
        driver
            .memory
            .read_slice(&mut untouched, GuestAddress(DATA))
            .unwrap();
        assert_eq!(untouched, [5u8; 512], "a refused read wrote nothing");
        assert_eq!(device.counters().errors, 6);
    }

    #[test]
    fn a_loop_of_descriptors_goes_back_with_nothing_written() {
        let (_path, file) = disk(512);
        let mut device = Block::new(file, 512, false, "d");
        let mut driver = Driver::new();
        driver.header(VIRTIO_BLK_T_IN, 0);
        driver.descriptor(0, HEADER, HEADER_SIZE, NEXT, 1);
        driver.descriptor(1, DATA, 512, NEXT | WRITE, 2);
        driver.descriptor(2, STATUS, 1, NEXT | WRITE, 0);
        driver.publish(0);
        device.process(0, &mut driver.queue, &driver.memory);
        assert_eq!(driver.used(0), (1, 0, 0));
        assert_eq!(
            driver.status(),
            0xaa,
            "no status for a chain that does not end"
        );
        assert_eq!(device.counters().errors, 1);
    }

    #[test]
    fn a_next_index_outside_the_table_and_an_oversized_chain_go_back_unserved() {
        let (_path, file) = disk(512);
        let mut device = Block::new(file, 512, false, "d");
        let mut driver = Driver::new();
        driver.header(VIRTIO_BLK_T_IN, 0);
        driver.descriptor(0, HEADER, HEADER_SIZE, NEXT, QUEUE_SIZE + 5);
        driver.publish(0);
        device.process(0, &mut driver.queue, &driver.memory);
        assert_eq!(driver.used(0), (1, 0, 0));

        // One descriptor more than a request may have, each a sector of its own.
        let mut buffers = vec![(HEADER, HEADER_SIZE, false)];
        buffers.extend((0..MAX_DESCRIPTORS - 1).map(|i| (DATA + 512 * i as u64, 512, true)));
        buffers.push((STATUS, 1, true));
        assert_eq!(buffers.len(), MAX_DESCRIPTORS + 1);
        driver.chain(0, &buffers);
        driver.publish(0);
        device.process(0, &mut driver.queue, &driver.memory);
        assert_eq!(driver.used(1), (2, 0, 0));
        assert_eq!(driver.status(), 0xaa);
        assert_eq!(device.counters().errors, 2);
    }

    #[test]
    fn a_head_outside_the_table_and_a_runaway_available_index_do_not_hang() {
        let (_path, file) = disk(512);
        let mut device = Block::new(file, 512, false, "d");
        let mut driver = Driver::new();
        driver.publish(QUEUE_SIZE + 1);
        device.process(0, &mut driver.queue, &driver.memory);
        // The available index more than a queue ahead of the device.
        driver
            .memory
            .write_obj(
                driver.published.wrapping_add(QUEUE_SIZE + 7),
                GuestAddress(AVAIL + 2),
            )
            .unwrap();
        assert!(!device.process(0, &mut driver.queue, &driver.memory));
        assert!(device.counters().errors >= 2);
        // A reset makes the device usable again.
        device.reset();
        assert!(!device.broken);
    }

    #[test]
    fn a_queue_outside_guest_memory_is_never_served() {
        let (_path, file) = disk(512);
        let mut device = Block::new(file, 512, false, "d");
        let mut driver = Driver::new();
        driver.queue.set_ready(false);
        driver
            .queue
            .set_desc_table_address(Some(0xffff_f000), Some(0xffff));
        driver.queue.set_ready(true);
        assert!(!device.process(0, &mut driver.queue, &driver.memory));
        assert_eq!(device.counters().errors, 1);
    }

    #[test]
    fn images_that_are_missing_not_files_too_small_or_read_only_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.img");
        assert!(matches!(
            Image::open(&missing, false),
            Err(Error::Open { .. })
        ));
        assert!(matches!(
            Image::open(dir.path(), false),
            Err(Error::NotAFile {
                kind: "a directory",
                ..
            })
        ));
        assert!(matches!(
            Image::open(Path::new("/dev/null"), true),
            Err(Error::NotAFile {
                kind: "a character device",
                ..
            })
        ));
        let small = dir.path().join("small.img");
        std::fs::write(&small, [0u8; 100]).unwrap();
        assert!(matches!(
            Image::open(&small, false),
            Err(Error::TooSmall { len: 100, .. })
        ));
        let ro = dir.path().join("ro.img");
        std::fs::write(&ro, [0u8; 1024]).unwrap();
        let mut perms = std::fs::metadata(&ro).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&ro, perms).unwrap();
        assert!(matches!(
            Image::open(&ro, false),
            Err(Error::ReadOnly { .. })
        ));
        let image = Image::open(&ro, true).unwrap();
        assert_eq!((image.len, image.read_only), (1024, true));
        // Each error names the image.
        let text = Image::open(&missing, false).unwrap_err().to_string();
        assert!(text.contains("missing.img"), "{text}");
    }
}
