//! The boot parameters ("zero page", `struct boot_params` of the x86 boot protocol,
//! Documentation/arch/x86/boot.rst and zero-page.rst) and the e820 memory map in them.
//!
//! Offsets in the zero page that this monitor fills:
//!
//! | offset | field              | value                                               |
//! | ------ | ------------------ | --------------------------------------------------- |
//! | 0x1e8  | `e820_entries`     | number of e820 entries                              |
//! | 0x1f1  | `hdr`              | the bzImage's setup header, or a fresh one (vmlinux)|
//! | 0x1fe  | `hdr.boot_flag`    | 0xaa55                                              |
//! | 0x202  | `hdr.header`       | "HdrS"                                              |
//! | 0x210  | `hdr.type_of_loader` | 0xff (a loader without an assigned ID)            |
//! | 0x218  | `hdr.ramdisk_image`| the initrd's guest-physical address                 |
//! | 0x21c  | `hdr.ramdisk_size` | its size                                            |
//! | 0x228  | `hdr.cmd_line_ptr` | [`CMDLINE_START`]                                   |
//! | 0x230  | `hdr.kernel_alignment` | 16 MiB (vmlinux)                                |
//! | 0x238  | `hdr.cmdline_size` | the command line's length, without its NUL          |
//! | 0x2d0  | `e820_table`       | entries of 20 bytes: address u64, size u64, type u32|

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};

use crate::layout::{CMDLINE_START, EBDA_START, HIGH_MEMORY_START, MMIO_GAP_START, RAM_START};

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type of reserved memory.
pub const E820_RESERVED: u32 = 2;
/// The boot sector's signature, kept in `boot_flag`.
const BOOT_FLAG: u16 = 0xaa55;
/// "HdrS", the setup header's magic.
const HDRS: u32 = 0x5372_6448;
/// The loader type of a boot loader without an assigned ID.
const LOADER_UNDEFINED: u8 = 0xff;
/// The alignment a relocatable kernel keeps (CONFIG_PHYSICAL_ALIGN's default).
const KERNEL_ALIGNMENT: u32 = 0x100_0000;
/// The highest address an initrd may end at when the header does not say (boot.rst).
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;

/// Errors building the boot parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The initrd does not fit between the kernel and the highest address it may use.
    #[error("the initrd ({size} bytes) does not fit in guest memory between the kernel's end at {kernel_end:#x} and {limit:#x}: give the guest more memory")]
    InitrdDoesNotFit {
        /// Its size.
        size: u64,
        /// Where the kernel ends.
        kernel_end: u64,
        /// The highest address it may end at.
        limit: u64,
    },
}

/// One e820 entry: (address, size, type).
pub type E820Entry = (u64, u64, u32);

/// The e820 map of `memory` bytes of guest RAM laid out as [`crate::layout::ram_ranges`]:
/// RAM below the EBDA, the legacy area reserved, RAM from 1 MiB to the 32-bit hole, and
/// any RAM above 4 GiB.
pub fn e820_map(memory: u64) -> Vec<E820Entry> {
    let mut map = vec![
        (RAM_START, EBDA_START - RAM_START, E820_RAM),
        (EBDA_START, HIGH_MEMORY_START - EBDA_START, E820_RESERVED),
    ];
    for (start, size) in crate::layout::ram_ranges(memory) {
        if start == RAM_START {
            if size > HIGH_MEMORY_START {
                map.push((HIGH_MEMORY_START, size - HIGH_MEMORY_START, E820_RAM));
            }
        } else {
            map.push((start, size, E820_RAM));
        }
    }
    map
}

/// Where the initrd of `size` bytes goes: page-aligned at the top of RAM below both the
/// 32-bit hole and the kernel's `initrd_addr_max`, above the kernel's end.
pub fn initrd_address(
    memory: u64,
    size: u64,
    kernel_end: u64,
    header: Option<&setup_header>,
) -> Result<u64, Error> {
    let addr_max = header
        .map(|h| u64::from(h.initrd_addr_max))
        .filter(|&m| m != 0)
        .unwrap_or(DEFAULT_INITRD_ADDR_MAX);
    let limit = memory.min(MMIO_GAP_START).min(addr_max + 1);
    let misfit = Error::InitrdDoesNotFit {
        size,
        kernel_end,
        limit,
    };
    let start = limit.checked_sub(size).ok_or(misfit.clone())? & !0xfff;
    if start < kernel_end.max(HIGH_MEMORY_START) {
        return Err(misfit);
    }
    Ok(start)
}

/// The boot parameters for a kernel with setup header `header` (a bzImage's, or `None`
/// for a vmlinux), a command line of `cmdline_len` bytes at [`CMDLINE_START`], the initrd
/// (address, size) and `memory` bytes of RAM.
pub fn boot_params(
    header: Option<setup_header>,
    cmdline_len: usize,
    initrd: Option<(u64, u64)>,
    memory: u64,
) -> boot_params {
    let mut params = boot_params::default();
    if let Some(header) = header {
        params.hdr = header;
    } else {
        params.hdr.boot_flag = BOOT_FLAG;
        params.hdr.header = HDRS;
        params.hdr.kernel_alignment = KERNEL_ALIGNMENT;
    }
    params.hdr.type_of_loader = LOADER_UNDEFINED;
    params.hdr.cmd_line_ptr = u32::try_from(CMDLINE_START).unwrap_or(0);
    params.hdr.cmdline_size = u32::try_from(cmdline_len).unwrap_or(u32::MAX);
    if let Some((address, size)) = initrd {
        params.hdr.ramdisk_image = u32::try_from(address).unwrap_or(0);
        params.hdr.ramdisk_size = u32::try_from(size).unwrap_or(0);
    }
    let map = e820_map(memory);
    for (slot, &(addr, size, kind)) in params.e820_table.iter_mut().zip(&map) {
        *slot = boot_e820_entry {
            addr,
            size,
            r#type: kind,
        };
    }
    params.e820_entries = u8::try_from(map.len()).unwrap_or(0);
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::ByteValued;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn the_e820_map_of_128_mib_and_of_5_gib() {
        assert_eq!(
            e820_map(128 << 20),
            [
                (0, 0x9_fc00, E820_RAM),
                (0x9_fc00, 0x6_0400, E820_RESERVED),
                (0x10_0000, (128 << 20) - 0x10_0000, E820_RAM),
            ]
        );
        assert_eq!(
            e820_map(5 << 30),
            [
                (0, 0x9_fc00, E820_RAM),
                (0x9_fc00, 0x6_0400, E820_RESERVED),
                (0x10_0000, 0xc000_0000 - 0x10_0000, E820_RAM),
                (1 << 32, (5 << 30) - 0xc000_0000, E820_RAM),
            ]
        );
    }

    #[test]
    fn the_zero_page_is_laid_out_as_documented() {
        let params = boot_params(None, 42, Some((0x7f0_0000, 0x10_0000)), 128 << 20);
        let b = params.as_slice();
        assert_eq!(b.len(), 4096);
        assert_eq!(b[0x1e8], 3, "e820_entries");
        assert_eq!(u16_at(b, 0x1fe), 0xaa55, "boot_flag");
        assert_eq!(&b[0x202..0x206], b"HdrS");
        assert_eq!(b[0x210], 0xff, "type_of_loader");
        assert_eq!(u32_at(b, 0x218), 0x7f0_0000, "ramdisk_image");
        assert_eq!(u32_at(b, 0x21c), 0x10_0000, "ramdisk_size");
        assert_eq!(u32_at(b, 0x228), 0x2_0000, "cmd_line_ptr");
        assert_eq!(u32_at(b, 0x230), 0x100_0000, "kernel_alignment");
        assert_eq!(u32_at(b, 0x238), 42, "cmdline_size");
        let entry = |i: usize| {
            let at = 0x2d0 + i * 20;
            (u64_at(b, at), u64_at(b, at + 8), u32_at(b, at + 16))
        };
        assert_eq!(entry(0), (0, 0x9_fc00, 1));
        assert_eq!(entry(1), (0x9_fc00, 0x6_0400, 2));
        assert_eq!(entry(2), (0x10_0000, (128 << 20) - 0x10_0000, 1));
        assert_eq!(entry(3), (0, 0, 0));
        // Nothing else is set: every other byte is zero.
        let mut rest = b.to_vec();
        for (at, len) in [
            (0x1e8, 1),
            (0x1fe, 2),
            (0x202, 4),
            (0x210, 1),
            (0x218, 8),
            (0x228, 4),
            (0x230, 4),
            (0x238, 4),
            (0x2d0, 60),
        ] {
            rest[at..at + len].fill(0);
        }
        assert!(rest.iter().all(|&x| x == 0));
    }

    #[test]
    fn a_bzimage_header_is_kept_and_completed() {
        let header = setup_header {
            setup_sects: 30,
            boot_flag: 0xaa55,
            header: 0x5372_6448,
            version: 0x020f,
            loadflags: 1,
            code32_start: 0x10_0000,
            initrd_addr_max: 0x7fff_ffff,
            kernel_alignment: 0x20_0000,
            ..setup_header::default()
        };
        let params = boot_params(Some(header), 5, None, 64 << 20);
        let b = params.as_slice();
        assert_eq!(b[0x1f1], 30, "setup_sects kept");
        assert_eq!(u16_at(b, 0x206), 0x020f, "version kept");
        assert_eq!(u32_at(b, 0x214), 0x10_0000, "code32_start kept");
        assert_eq!(u32_at(b, 0x230), 0x20_0000, "the image's alignment kept");
        assert_eq!(b[0x210], 0xff);
        assert_eq!(u32_at(b, 0x218), 0, "no initrd");
    }

    #[test]
    fn the_initrd_goes_to_the_top_of_low_memory() {
        assert_eq!(
            initrd_address(128 << 20, 0x1800, 0x200_0000, None).unwrap(),
            (128 << 20) - 0x2000
        );
        // Capped by the 32-bit hole and by initrd_addr_max.
        assert_eq!(
            initrd_address(5 << 30, 0x1000, 0x200_0000, None).unwrap(),
            DEFAULT_INITRD_ADDR_MAX + 1 - 0x1000
        );
        let header = setup_header {
            initrd_addr_max: 0x7fff_ffff,
            ..setup_header::default()
        };
        assert_eq!(
            initrd_address(5 << 30, 0x1000, 0x200_0000, Some(&header)).unwrap(),
            0x8000_0000 - 0x1000
        );
        assert!(matches!(
            initrd_address(32 << 20, 20 << 20, 0x200_0000, None),
            Err(Error::InitrdDoesNotFit { .. })
        ));
    }
}
