//! Guest memory: mapped as the layout's RAM ranges ([`crate::layout::ram_ranges`]),
//! described as KVM memory slots, one per range (the [`crate::machine::Machine`] that owns
//! the memory registers them), and accounted: how much of it is resident,
//! i.e. what the guest has touched. Counted page by page with mincore(2) over exactly the
//! guest's ranges, so a neighbouring mapping the kernel merged with them is never counted.

use kvm_bindings::kvm_userspace_memory_region;
use std::fs::File;
use std::io::{Seek, SeekFrom};

use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{
    FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestRegionMmap, WriteVolatile,
};

/// Errors mapping guest memory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The memory could not be mapped.
    #[error("cannot map {bytes} bytes of guest memory")]
    Map {
        /// Bytes asked.
        bytes: u64,
        /// Why.
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
    /// A range is larger than this host can address.
    #[error("{bytes} bytes of guest memory do not fit this host's address space")]
    TooLarge {
        /// Bytes asked.
        bytes: u64,
    },
    /// Guest memory could not be mapped from a snapshot file.
    #[error("cannot map guest memory from the snapshot at offset {offset}")]
    MapFile {
        /// Where in the file.
        offset: u64,
        /// Why.
        #[source]
        source: vm_memory::mmap::MmapRegionError,
    },
    /// Guest memory could not be written to a snapshot file.
    #[error("cannot write guest memory to the snapshot")]
    Save(#[source] std::io::Error),
}

/// Guest RAM: the mapping, and each range's guest-physical start, host address and size.
#[derive(Debug)]
pub struct GuestRam {
    /// The memory, for reads and writes by guest address.
    pub memory: GuestMemoryMmap,
    /// (guest-physical start, host address, bytes) of each range.
    ranges: Vec<(u64, usize, usize)>,
}

impl GuestRam {
    /// Maps `size` bytes of guest memory (anonymous, private, `MAP_NORESERVE`: pages cost
    /// nothing until the guest touches them) as the layout's RAM ranges.
    pub fn map(size: u64) -> Result<Self, Error> {
        let ranges = crate::layout::ram_ranges(size)
            .into_iter()
            .map(|(start, len)| {
                usize::try_from(len)
                    .map(|len| (GuestAddress(start), len))
                    .map_err(|_| Error::TooLarge { bytes: size })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let memory = GuestMemoryMmap::from_ranges(&ranges).map_err(|source| Error::Map {
            bytes: size,
            source,
        })?;
        let ranges = ranges
            .iter()
            .map(|(start, len)| {
                // Every range was just mapped, so its start has a host address.
                let host = memory.get_host_address(*start).map_or(0, |p| p as usize);
                (start.0, host, *len)
            })
            .collect::<Vec<(u64, usize, usize)>>();
        for &(_, host, len) in &ranges {
            // Kernels without transparent huge pages refuse the advice, and then there is
            // nothing to opt out of: small pages are all they have.
            let _ = small_pages_only(host as *mut u8, len);
        }
        Ok(GuestRam { memory, ranges })
    }

    /// Maps `size` bytes of guest memory as the layout's RAM ranges from `file`, the ranges
    /// one after another from `offset` (page-aligned), privately: a page is read from the
    /// file when the guest first touches it, and what the guest writes stays in this
    /// process, never reaching the file.
    pub fn map_private_file(file: &File, offset: u64, size: u64) -> Result<Self, Error> {
        let mut regions = Vec::new();
        let mut at = offset;
        for (start, len) in crate::layout::ram_ranges(size) {
            let bytes = usize::try_from(len).map_err(|_| Error::TooLarge { bytes: size })?;
            let handle = file.try_clone().map_err(|e| Error::MapFile {
                offset: at,
                source: vm_memory::mmap::MmapRegionError::Mmap(e),
            })?;
            let region = MmapRegionBuilder::new(bytes)
                .with_file_offset(FileOffset::new(handle, at))
                .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
                .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_NORESERVE)
                .build()
                .map_err(|source| Error::MapFile { offset: at, source })?;
            regions.push(
                GuestRegionMmap::new(region, GuestAddress(start))
                    .ok_or(Error::TooLarge { bytes: size })?,
            );
            at += len;
        }
        let memory = GuestMemoryMmap::from_regions(regions).map_err(|e| Error::Map {
            bytes: size,
            source: e.into(),
        })?;
        Ok(Self::described(memory))
    }

    /// The ranges of `memory`: guest start, host address, length.
    fn described(memory: GuestMemoryMmap) -> Self {
        let ranges = memory
            .iter()
            .map(|r| {
                use vm_memory::GuestMemoryRegion;
                let host = memory
                    .get_host_address(r.start_addr())
                    .map_or(0, |p| p as usize);
                (r.start_addr().0, host, r.len() as usize)
            })
            .collect();
        GuestRam { memory, ranges }
    }

    /// Writes the pages the guest has touched to `file`, the ranges one after another
    /// from `offset`, leaving the rest as holes (which read as zeroes, as untouched guest
    /// memory does). Returns the bytes written.
    pub fn save_resident(&self, file: &mut File, offset: u64) -> Result<u64, Error> {
        let page = page_size();
        let mut at = offset;
        let mut written = 0;
        for &(guest, host, len) in &self.ranges {
            let resident = resident_pages(host as *mut u8, len).ok_or_else(|| {
                Error::Save(std::io::Error::other("mincore refused the guest's memory"))
            })?;
            // Runs of resident pages, each written with one call.
            let mut i = 0;
            while i < resident.len() {
                if !resident[i] {
                    i += 1;
                    continue;
                }
                let first = i;
                while i < resident.len() && resident[i] {
                    i += 1;
                }
                let (from, bytes) = ((first * page) as u64, (i - first) * page);
                let slice = self
                    .memory
                    .get_slice(GuestAddress(guest + from), bytes)
                    .map_err(|e| Error::Save(std::io::Error::other(e)))?;
                file.seek(SeekFrom::Start(at + from)).map_err(Error::Save)?;
                file.write_all_volatile(&slice)
                    .map_err(|e| Error::Save(std::io::Error::other(e)))?;
                written += bytes as u64;
            }
            at += len as u64;
        }
        Ok(written)
    }

    /// The KVM memory slots that describe this memory, one per range, from slot 0. They are
    /// only descriptions: registering them ([`crate::machine::Machine`] does) is what ties
    /// the mapping's lifetime to the VM's.
    pub fn regions(&self) -> impl Iterator<Item = kvm_userspace_memory_region> + '_ {
        (0u32..)
            .zip(&self.ranges)
            .map(|(slot, &(guest, host, len))| kvm_userspace_memory_region {
                slot,
                flags: 0,
                guest_phys_addr: guest,
                memory_size: len as u64,
                userspace_addr: host as u64,
            })
    }

    /// Guest memory resident now (pages the guest touched), KiB.
    pub fn resident_kib(&self) -> Option<u64> {
        self.ranges
            .iter()
            .map(|&(_, host, len)| resident_kib(host as *mut u8, len))
            .sum()
    }
}

/// The host's page size, bytes.
fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// Which pages of the `len` bytes of this process's memory at `start` (page-aligned) are
/// resident, one flag a page.
fn resident_pages(start: *mut u8, len: usize) -> Option<Vec<bool>> {
    let pages = len.div_ceil(page_size());
    let mut vec = vec![0u8; pages];
    // SAFETY: `start..start + len` is a mapping of this process (the caller's guest
    // memory, alive for the call); `vec` has one byte per page of it.
    let rc = unsafe { libc::mincore(start.cast(), len, vec.as_mut_ptr()) };
    (rc == 0).then(|| vec.iter().map(|b| *b & 1 == 1).collect())
}

/// Resident KiB of the `len` bytes of this process's memory at `start` (page-aligned).
pub fn resident_kib(start: *mut u8, len: usize) -> Option<u64> {
    let resident = resident_pages(start, len)?.iter().filter(|r| **r).count();
    Some(u64::try_from(resident * page_size() / 1024).unwrap_or(u64::MAX))
}

/// Asks the kernel to back the `len` bytes at `start` with small pages only
/// (`MADV_NOHUGEPAGE`). With transparent huge pages set to `always`, as in many
/// distributions' kernels, one byte a guest touches would otherwise make a whole 2 MiB
/// resident, and a guest's footprint would measure the host's page policy rather than the
/// guest. Returns the error when the kernel refuses (it has no THP support at all, say).
pub fn small_pages_only(start: *mut u8, len: usize) -> std::io::Result<()> {
    // SAFETY: madvise only changes how the kernel backs the pages of `start..start + len`,
    // a mapping of this process that the caller owns; it reads or writes no memory.
    let rc = unsafe { libc::madvise(start.cast(), len, libc::MADV_NOHUGEPAGE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_range_is_one_slot_at_its_own_host_address() {
        // Past the 32-bit hole: two ranges, the second at 4 GiB (mapped, never touched).
        let size = crate::layout::MMIO_GAP_START + (16 << 20);
        let ram = GuestRam::map(size).unwrap();
        let regions: Vec<_> = ram.regions().collect();
        let at = |guest: u64| ram.memory.get_host_address(GuestAddress(guest)).unwrap() as u64;
        assert_eq!(regions.len(), 2);
        assert_eq!(
            (
                regions[0].slot,
                regions[0].guest_phys_addr,
                regions[0].memory_size
            ),
            (0, 0, crate::layout::MMIO_GAP_START)
        );
        assert_eq!(regions[0].userspace_addr, at(0));
        assert_eq!(
            (
                regions[1].slot,
                regions[1].guest_phys_addr,
                regions[1].memory_size
            ),
            (1, crate::layout::MMIO_GAP_END, 16 << 20)
        );
        assert_eq!(regions[1].userspace_addr, at(crate::layout::MMIO_GAP_END));
        assert!(regions.iter().all(|r| r.flags == 0));
    }

    #[test]
    fn touched_pages_are_counted_and_untouched_are_not() {
        let len = 64 * 4096;
        // SAFETY: an anonymous private mapping with no address hint.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        let base = map.cast::<u8>();
        assert_eq!(resident_kib(base, len), Some(0));
        for i in 0..10 {
            // SAFETY: the byte lies inside the mapping made above, so the offset pointer
            // stays in bounds and is valid for a write.
            let byte = unsafe { base.add(i * 4096) };
            // SAFETY: as above.
            unsafe { byte.write(1) };
        }
        assert_eq!(resident_kib(base, len), Some(40));
        // SAFETY: unmapping exactly the mapping made above.
        unsafe { libc::munmap(map, len) };
    }
}
