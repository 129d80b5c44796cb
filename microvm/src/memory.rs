//! Memory accounting: how much of the guest's memory is resident, i.e. what the guest
//! has touched. Counted page by page with mincore(2) over exactly the guest's range, so a
//! neighbouring mapping the kernel merged with it is never counted.

/// Resident KiB of the `len` bytes of this process's memory at `start` (page-aligned).
pub fn resident_kib(start: *mut u8, len: usize) -> Option<u64> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: `start..start + len` is a mapping of this process (the caller's guest
    // memory, alive for the call); `vec` has one byte per page of it.
    let rc = unsafe { libc::mincore(start.cast(), len, vec.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    let resident = vec.iter().filter(|b| *b & 1 == 1).count();
    Some(u64::try_from(resident * page / 1024).unwrap_or(u64::MAX))
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
