//! A virtio-blk request as the guest laid it out in a descriptor chain (virtio 1.2,
//! 5.2.6): a 16-byte header the device reads (type, reserved, sector), the data buffers,
//! and one status byte the device writes last. [`parse`] checks the chain's shape before
//! any byte of the disk is touched; what it refuses becomes a device error for the guest.

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, Permissions};

/// Bytes in a sector, the unit of the header's `sector` field.
pub const SECTOR_SIZE: u64 = 512;
/// Bytes of the request header (`struct virtio_blk_outhdr`).
pub const HEADER_SIZE: u32 = 16;
/// The most data buffers one request may have: offered to the driver as `seg_max`.
pub const MAX_SEGMENTS: usize = 126;
/// The most bytes one data buffer may have: offered to the driver as `size_max`.
pub const MAX_SEGMENT_BYTES: u32 = 1 << 16;
/// The most descriptors a chain may have: the header, [`MAX_SEGMENTS`] buffers and the
/// status.
pub const MAX_DESCRIPTORS: usize = MAX_SEGMENTS + 2;

/// What the guest asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Read sectors into the data buffers.
    In,
    /// Write the data buffers to sectors.
    Out,
    /// Make every completed write durable.
    Flush,
    /// Write the device's ID string into the data buffer.
    GetId,
    /// A request type this device does not implement, as the guest gave it.
    Unsupported(u32),
}

impl Kind {
    fn from_type(value: u32) -> Kind {
        match value {
            VIRTIO_BLK_T_IN => Kind::In,
            VIRTIO_BLK_T_OUT => Kind::Out,
            VIRTIO_BLK_T_FLUSH => Kind::Flush,
            VIRTIO_BLK_T_GET_ID => Kind::GetId,
            other => Kind::Unsupported(other),
        }
    }

    /// Whether the device writes the data buffers (so the guest must mark them
    /// write-only), reads them, or has no use for them (`None`).
    fn device_writes(self) -> Option<bool> {
        match self {
            Kind::In | Kind::GetId => Some(true),
            Kind::Out => Some(false),
            Kind::Flush | Kind::Unsupported(_) => None,
        }
    }
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What is asked.
    pub kind: Kind,
    /// The first sector (for [`Kind::In`] and [`Kind::Out`]).
    pub sector: u64,
    /// The data buffers, in order: guest address and length, each inside guest memory.
    pub data: Vec<(GuestAddress, u32)>,
    /// Where the status byte goes (inside guest memory).
    pub status: GuestAddress,
}

impl Request {
    /// The bytes of all data buffers together.
    pub fn data_len(&self) -> u64 {
        self.data.iter().map(|&(_, len)| u64::from(len)).sum()
    }
}

/// What is wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The chain has no descriptor at all (its head is outside the table, or the table
    /// cannot be read).
    #[error("the chain is empty")]
    Empty,
    /// The chain does not end: a loop of descriptors, a next index past the table, or a
    /// table that cannot be read.
    #[error("the chain does not end: a loop of descriptors or a next index outside the table")]
    Unterminated,
    /// More descriptors than a request may have.
    #[error("the chain has more than {MAX_DESCRIPTORS} descriptors")]
    TooManyDescriptors,
    /// The header is not a readable buffer of at least [`HEADER_SIZE`] bytes.
    #[error("the header is {len} bytes{}, it must be {HEADER_SIZE} readable bytes", if *.writable { " and write-only" } else { "" })]
    BadHeader {
        /// Its length.
        len: u32,
        /// Whether it was marked write-only.
        writable: bool,
    },
    /// The last descriptor is not a write-only buffer of at least one byte.
    #[error("the last descriptor is not a write-only status byte")]
    BadStatus,
    /// A buffer lies (partly) outside guest memory.
    #[error("the buffer at {address:#x} of {len} bytes lies outside guest memory")]
    OutsideMemory {
        /// Its guest address.
        address: u64,
        /// Its length.
        len: u32,
    },
    /// A data buffer is empty.
    #[error("a data buffer is empty")]
    EmptyBuffer,
    /// A data buffer is larger than [`MAX_SEGMENT_BYTES`].
    #[error("a data buffer of {len} bytes is larger than {MAX_SEGMENT_BYTES}")]
    BufferTooLarge {
        /// Its length.
        len: u32,
    },
    /// A data buffer goes the wrong way for the request (a read into a buffer the device
    /// may only read, a write from one it may only write).
    #[error("a data buffer goes the wrong way for a {kind:?} request")]
    WrongDirection {
        /// The request.
        kind: Kind,
    },
    /// A read or write without data, or with data that is not whole sectors.
    #[error("a {kind:?} request of {len} bytes: it must be whole sectors, at least one")]
    NotSectors {
        /// The request.
        kind: Kind,
        /// Its data length.
        len: u64,
    },
}

/// A chain that was refused: why, and where its status byte goes when it has a usable
/// one (then the guest gets `VIRTIO_BLK_S_IOERR`; without one the chain goes back with
/// nothing written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Why.
    pub error: Error,
    /// The status byte's address, if the chain has a usable one.
    pub status: Option<GuestAddress>,
}

/// Whether `len` bytes at `address` lie in guest memory, and may be accessed as `access`
/// asks.
fn inside<M: GuestMemory + ?Sized>(
    memory: &M,
    address: GuestAddress,
    len: u32,
    access: Permissions,
) -> bool {
    let Ok(len) = usize::try_from(len) else {
        return false;
    };
    len == 0 || memory.check_range(address, len, access)
}

/// Reads and checks the request a chain of `descriptors` holds.
///
/// `descriptors` is the chain as [`virtio_queue::DescriptorChain`] yields it: it stops at
/// a loop or a bad index without saying so, so a chain whose last descriptor still points
/// on is one that does not end.
pub fn parse<M: GuestMemory + ?Sized>(
    descriptors: impl Iterator<Item = Descriptor>,
    memory: &M,
) -> Result<Request, Rejected> {
    let refuse = |error| Rejected {
        error,
        status: None,
    };
    let mut chain = Vec::new();
    for descriptor in descriptors {
        if chain.len() == MAX_DESCRIPTORS {
            return Err(refuse(Error::TooManyDescriptors));
        }
        chain.push(descriptor);
    }
    let (Some(first), Some(last)) = (chain.first().copied(), chain.last().copied()) else {
        return Err(refuse(Error::Empty));
    };
    if last.has_next() {
        return Err(refuse(Error::Unterminated));
    }
    if chain.len() < 2 || !last.is_write_only() || last.len() == 0 {
        return Err(refuse(Error::BadStatus));
    }
    if !inside(memory, last.addr(), 1, Permissions::Write) {
        return Err(refuse(Error::OutsideMemory {
            address: last.addr().raw_value(),
            len: 1,
        }));
    }
    let status = last.addr();
    let refuse = |error| Rejected {
        error,
        status: Some(status),
    };
    if first.is_write_only() || first.len() < HEADER_SIZE {
        return Err(refuse(Error::BadHeader {
            len: first.len(),
            writable: first.is_write_only(),
        }));
    }
    let mut header = [0u8; HEADER_SIZE as usize];
    memory.read_slice(&mut header, first.addr()).map_err(|_| {
        refuse(Error::OutsideMemory {
            address: first.addr().raw_value(),
            len: HEADER_SIZE,
        })
    })?;
    let [t0, t1, t2, t3, _, _, _, _, s0, s1, s2, s3, s4, s5, s6, s7] = header;
    let kind = Kind::from_type(u32::from_le_bytes([t0, t1, t2, t3]));
    let sector = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);

    let mut data = Vec::with_capacity(chain.len() - 2);
    for descriptor in &chain[1..chain.len() - 1] {
        let len = descriptor.len();
        if len == 0 {
            return Err(refuse(Error::EmptyBuffer));
        }
        if len > MAX_SEGMENT_BYTES {
            return Err(refuse(Error::BufferTooLarge { len }));
        }
        let access = match descriptor.is_write_only() {
            true => Permissions::Write,
            false => Permissions::Read,
        };
        if !inside(memory, descriptor.addr(), len, access) {
            return Err(refuse(Error::OutsideMemory {
                address: descriptor.addr().raw_value(),
                len,
            }));
        }
        if kind
            .device_writes()
            .is_some_and(|writes| writes != descriptor.is_write_only())
        {
            return Err(refuse(Error::WrongDirection { kind }));
        }
        data.push((descriptor.addr(), len));
    }
    let request = Request {
        kind,
        sector,
        data,
        status,
    };
    if matches!(kind, Kind::In | Kind::Out) {
        let len = request.data_len();
        if len == 0 || !len.is_multiple_of(SECTOR_SIZE) {
            return Err(refuse(Error::NotSectors { kind, len }));
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use vm_memory::GuestMemoryMmap;

    const NEXT: u16 = VRING_DESC_F_NEXT as u16;
    const WRITE: u16 = VRING_DESC_F_WRITE as u16;

    fn memory() -> GuestMemoryMmap {
        let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        // A write of sector 3.
        memory
            .write_obj(VIRTIO_BLK_T_OUT, GuestAddress(0x100))
            .unwrap();
        memory.write_obj(3u64, GuestAddress(0x108)).unwrap();
        memory
    }

    fn error(chain: &[Descriptor]) -> Rejected {
        parse(chain.iter().copied(), &memory()).unwrap_err()
    }

    #[test]
    fn a_well_formed_write_reads_back_its_parts() {
        let chain = [
            Descriptor::new(0x100, 16, NEXT, 1),
            Descriptor::new(0x1000, 512, NEXT, 2),
            Descriptor::new(0x1200, 1024, NEXT, 3),
            Descriptor::new(0x200, 1, WRITE, 0),
        ];
        let request = parse(chain.into_iter(), &memory()).unwrap();
        assert_eq!(request.kind, Kind::Out);
        assert_eq!(request.sector, 3);
        assert_eq!(request.data_len(), 1536);
        assert_eq!(request.status, GuestAddress(0x200));
    }

    #[test]
    fn each_malformed_chain_is_named_and_keeps_its_status_when_it_has_one() {
        let status = Descriptor::new(0x200, 1, WRITE, 0);
        assert_eq!(error(&[]).error, Error::Empty);
        let open_end = error(&[Descriptor::new(0x100, 16, NEXT, 1)]);
        assert_eq!(
            (open_end.error, open_end.status),
            (Error::Unterminated, None)
        );
        assert_eq!(
            error(&[
                Descriptor::new(0x100, 16, 0, 0),
                Descriptor::new(0x200, 1, 0, 0)
            ])
            .error,
            Error::BadStatus
        );
        assert_eq!(error(&[status]).error, Error::BadStatus, "a status alone");
        let short = error(&[Descriptor::new(0x100, 8, NEXT, 1), status]);
        assert_eq!(
            short.error,
            Error::BadHeader {
                len: 8,
                writable: false
            }
        );
        assert_eq!(short.status, Some(GuestAddress(0x200)));
        let writable = error(&[Descriptor::new(0x100, 16, NEXT | WRITE, 1), status]);
        assert_eq!(
            writable.error,
            Error::BadHeader {
                len: 16,
                writable: true
            }
        );
        let outside = error(&[Descriptor::new(0xfff8, 16, NEXT, 1), status]);
        assert!(matches!(
            outside.error,
            Error::OutsideMemory {
                address: 0xfff8,
                ..
            }
        ));
        let status_outside = error(&[
            Descriptor::new(0x100, 16, NEXT, 1),
            Descriptor::new(0x10000, 1, WRITE, 0),
        ]);
        assert_eq!(status_outside.status, None);
        let long: Vec<Descriptor> = (0..=MAX_DESCRIPTORS)
            .map(|i| Descriptor::new(0x1000, 512, NEXT, i as u16))
            .collect();
        assert_eq!(error(&long).error, Error::TooManyDescriptors);
        let no_data = error(&[Descriptor::new(0x100, 16, NEXT, 1), status]);
        assert_eq!(
            no_data.error,
            Error::NotSectors {
                kind: Kind::Out,
                len: 0
            }
        );
    }
}
