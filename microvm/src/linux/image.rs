//! Kernel images: a `vmlinux` ELF or a `bzImage`, recognised and checked before anything
//! is built, then loaded into guest memory with linux-loader.
//!
//! A file that is neither, or whose headers promise more bytes than it has, is refused
//! with an error naming the file and what is wrong with it, so a truncated download or a
//! wrong path never turns into a guest that dies without a word.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::layout::HIGH_MEMORY_START;

/// ELF machine number of x86-64.
const EM_X86_64: u16 = 62;
/// ELF file type of an executable with fixed addresses, as `vmlinux` is.
const ET_EXEC: u16 = 2;
/// ELF program header type of a loadable segment.
const PT_LOAD: u32 = 1;
/// Where the setup header's "HdrS" magic lies in a bzImage.
const HDRS_OFFSET: usize = 0x202;
/// `xloadflags` bit: the kernel has a 64-bit entry point at 0x200 past its load address.
const XLF_KERNEL_64: u16 = 1;
/// `loadflags` bit: the protected-mode kernel is loaded at 1 MiB.
const LOADED_HIGH: u8 = 1;
/// The 64-bit entry point's offset from a bzImage's load address.
const BZIMAGE_ENTRY_64: u64 = 0x200;

/// Errors about a kernel image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read the kernel {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The path is not a regular file (a directory, a device, a pipe...).
    #[error("{path} is not a file but {what}: give the kernel's file (a vmlinux or a bzImage)")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// The file is larger than any kernel.
    #[error("{path} is {bytes} bytes, more than any kernel ({MAX_KERNEL_BYTES} at most): is it the kernel?")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// The file is not a kernel this monitor boots.
    #[error("{path} is not a Linux kernel: {why}")]
    NotAKernel {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        why: String,
    },
    /// The headers promise more bytes than the file has.
    #[error("the kernel {path} is truncated: its headers need {needed} bytes, the file has {has}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the headers need.
        needed: u64,
        /// Bytes the file has.
        has: u64,
    },
    /// linux-loader could not load it.
    #[error("cannot load the kernel {path} into guest memory")]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: linux_loader::loader::Error,
    },
}

/// The kernel's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An uncompressed `vmlinux` ELF, entered at its ELF entry point in 64-bit mode.
    Elf,
    /// A compressed `bzImage`, entered at its 64-bit entry point (load address + 0x200).
    BzImage,
}

/// A checked kernel image, in memory.
#[derive(Debug, Clone)]
pub struct Image {
    /// Where it came from.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// The kernel release it announces (`6.1.158`), when it can be read from the image.
    pub version: Option<String>,
    bytes: Vec<u8>,
}

/// A kernel loaded into guest memory.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    /// Where the boot vCPU starts, in 64-bit mode.
    pub entry: u64,
    /// The first guest-physical address past the kernel.
    pub end: u64,
    /// The bzImage's setup header, to be copied into the boot parameters.
    pub header: Option<setup_header>,
}

/// The largest kernel file read: a vmlinux with full debug information stays below it.
pub const MAX_KERNEL_BYTES: u64 = 1 << 30;

/// What a path that is not a regular file is, in words.
fn file_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a pipe"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

impl Image {
    /// Reads and checks the kernel at `path`: a regular file of at most
    /// [`MAX_KERNEL_BYTES`] (a device such as /dev/zero would never end).
    pub fn open(path: &Path) -> Result<Self, Error> {
        use std::io::Read;
        let read_error = |source| Error::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_error)?;
        if !meta.is_file() {
            return Err(Error::NotAFile {
                path: path.to_owned(),
                what: file_kind(&meta.file_type()),
            });
        }
        if meta.len() > MAX_KERNEL_BYTES {
            return Err(Error::TooLarge {
                path: path.to_owned(),
                bytes: meta.len(),
            });
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_KERNEL_BYTES).read_to_end(&mut bytes))
            .map_err(read_error)?;
        Self::from_bytes(path, bytes)
    }

    /// Checks `bytes` as the kernel named `path`.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, Error> {
        let not_a_kernel = |why: &str| Error::NotAKernel {
            path: path.to_owned(),
            why: why.to_owned(),
        };
        let truncated = |needed: u64| Error::Truncated {
            path: path.to_owned(),
            needed,
            has: bytes.len() as u64,
        };
        let format = if bytes.starts_with(b"\x7fELF") {
            check_elf(&bytes).map_err(|e| match e {
                Bad::Not(why) => not_a_kernel(why),
                Bad::Short(needed) => truncated(needed),
            })?;
            Format::Elf
        } else if bytes.get(HDRS_OFFSET..HDRS_OFFSET + 4) == Some(b"HdrS") {
            check_bzimage(&bytes).map_err(|e| match e {
                Bad::Not(why) => not_a_kernel(why),
                Bad::Short(needed) => truncated(needed),
            })?;
            Format::BzImage
        } else if bytes.is_empty() {
            return Err(not_a_kernel("the file is empty"));
        } else if bytes.len() < HDRS_OFFSET + 4
            && b"\x7fELF".starts_with(&bytes[..bytes.len().min(4)])
        {
            return Err(truncated(64));
        } else {
            return Err(not_a_kernel(
                "neither an ELF vmlinux (no \\x7fELF magic) nor a bzImage (no \"HdrS\" at 0x202)",
            ));
        };
        let version = match format {
            Format::Elf => version_in_banner(&bytes),
            Format::BzImage => version_in_header(&bytes),
        };
        Ok(Image {
            path: path.to_owned(),
            format,
            version,
            bytes,
        })
    }

    /// The image's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Loads the kernel into `memory` at the address it asks for (at or above 1 MiB).
    pub fn load(&self, memory: &GuestMemoryMmap) -> Result<Loaded, Error> {
        let mut file = Cursor::new(self.bytes.as_slice());
        let load_error = |source| Error::Load {
            path: self.path.clone(),
            source,
        };
        let high = Some(GuestAddress(HIGH_MEMORY_START));
        match self.format {
            Format::Elf => {
                let result = Elf::load(memory, None, &mut file, high).map_err(load_error)?;
                Ok(Loaded {
                    entry: result.kernel_load.0,
                    end: result.kernel_end,
                    header: None,
                })
            }
            Format::BzImage => {
                let result = BzImage::load(memory, None, &mut file, high).map_err(load_error)?;
                // The decompressor unpacks the kernel to init_size bytes from its load
                // address: nothing else may lie there.
                let init_size = result.setup_header.map_or(0, |h| u64::from(h.init_size));
                Ok(Loaded {
                    entry: result.kernel_load.0 + BZIMAGE_ENTRY_64,
                    end: result.kernel_end.max(result.kernel_load.0 + init_size),
                    header: result.setup_header,
                })
            }
        }
    }
}

/// What is wrong with an image.
enum Bad {
    Not(&'static str),
    Short(u64),
}

fn check_elf(bytes: &[u8]) -> Result<(), Bad> {
    let need = |n: usize| {
        if bytes.len() < n {
            Err(Bad::Short(n as u64))
        } else {
            Ok(())
        }
    };
    need(64)?;
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(Bad::Not("an ELF file, but not 64-bit little-endian"));
    }
    if u16_at(bytes, 0x12) != Some(EM_X86_64) {
        return Err(Bad::Not("an ELF file, but not for x86-64"));
    }
    if u16_at(bytes, 0x10) != Some(ET_EXEC) {
        return Err(Bad::Not(
            "an ELF file, but a program or library (not an executable with fixed addresses, as vmlinux is)",
        ));
    }
    let phoff = u64_at(bytes, 0x20).unwrap_or(0);
    let phentsize = u64::from(u16_at(bytes, 0x36).unwrap_or(0));
    let phnum = u64::from(u16_at(bytes, 0x38).unwrap_or(0));
    if phnum == 0 || phentsize < 56 {
        return Err(Bad::Not("an ELF file without program headers to load"));
    }
    let headers_end = phoff.saturating_add(phentsize.saturating_mul(phnum));
    need(usize::try_from(headers_end).unwrap_or(usize::MAX))?;
    let mut loadable = false;
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phentsize).unwrap_or(usize::MAX);
        if u32_at(bytes, at) != Some(PT_LOAD) {
            continue;
        }
        loadable = true;
        let offset = u64_at(bytes, at + 8).unwrap_or(0);
        let filesz = u64_at(bytes, at + 32).unwrap_or(0);
        let end = offset.saturating_add(filesz);
        if end > bytes.len() as u64 {
            return Err(Bad::Short(end));
        }
    }
    if !loadable {
        return Err(Bad::Not("an ELF file without loadable segments"));
    }
    Ok(())
}

fn check_bzimage(bytes: &[u8]) -> Result<(), Bad> {
    let version = u16_at(bytes, 0x206).unwrap_or(0);
    let loadflags = bytes.get(0x211).copied().unwrap_or(0);
    if version < 0x0206 || loadflags & LOADED_HIGH == 0 {
        return Err(Bad::Not(
            "a zImage or a bzImage older than boot protocol 2.06",
        ));
    }
    if u16_at(bytes, 0x236).unwrap_or(0) & XLF_KERNEL_64 == 0 {
        return Err(Bad::Not("a bzImage without a 64-bit entry point"));
    }
    let setup_sects = match bytes.get(0x1f1).copied().unwrap_or(0) {
        0 => 4,
        n => u64::from(n),
    };
    let syssize = u64::from(u32_at(bytes, 0x1f4).unwrap_or(0));
    let needed = (setup_sects + 1) * 512 + syssize * 16;
    if needed > bytes.len() as u64 {
        return Err(Bad::Short(needed));
    }
    Ok(())
}

/// The release in a `Linux version 6.1.158 (...)` banner inside an uncompressed kernel.
fn version_in_banner(bytes: &[u8]) -> Option<String> {
    const BANNER: &[u8] = b"Linux version ";
    let at = bytes.windows(BANNER.len()).position(|w| w == BANNER)? + BANNER.len();
    release_at(&bytes[at..])
}

/// The release a bzImage's setup header points to (`kernel_version`, at 0x20e).
fn version_in_header(bytes: &[u8]) -> Option<String> {
    let offset = usize::from(u16_at(bytes, 0x20e)?);
    if offset == 0 {
        return None;
    }
    release_at(bytes.get(0x200 + offset..)?)
}

/// The release string at the start of `bytes`: up to 64 printable characters, none when
/// there are none.
fn release_at(bytes: &[u8]) -> Option<String> {
    let token: Vec<u8> = bytes
        .iter()
        .take(64)
        .take_while(|b| b.is_ascii_graphic())
        .copied()
        .collect();
    (!token.is_empty()).then(|| String::from_utf8_lossy(&token).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal x86-64 ELF with one PT_LOAD segment of `filesz` bytes at offset 0x1000.
    fn elf(filesz: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x10..0x12].copy_from_slice(&ET_EXEC.to_le_bytes());
        b[0x12..0x14].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[0x18..0x20].copy_from_slice(&0x100_0000u64.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[64 + 8..64 + 16].copy_from_slice(&0x1000u64.to_le_bytes());
        b[64 + 24..64 + 32].copy_from_slice(&0x100_0000u64.to_le_bytes());
        b[64 + 32..64 + 40].copy_from_slice(&filesz.to_le_bytes());
        b[64 + 40..64 + 48].copy_from_slice(&filesz.to_le_bytes());
        b
    }

    fn open(bytes: Vec<u8>) -> Result<Image, Error> {
        Image::from_bytes(Path::new("k"), bytes)
    }

    #[test]
    fn an_elf_kernel_is_recognised_with_its_banner() {
        let mut b = elf(0x100, 0x1100);
        b[0x1010..0x1010 + 30].copy_from_slice(b"Linux version 6.1.158 (vcb) #1");
        let image = open(b).unwrap();
        assert_eq!(image.format, Format::Elf);
        assert_eq!(image.version.as_deref(), Some("6.1.158"));
    }

    #[test]
    fn a_truncated_elf_names_the_bytes_it_lacks() {
        match open(elf(0x100, 0x1080)) {
            Err(Error::Truncated { needed, has, .. }) => {
                assert_eq!((needed, has), (0x1100, 0x1080))
            }
            other => panic!("expected truncated, got {other:?}"),
        }
        assert!(matches!(
            open(b"\x7fELF\x02\x01".to_vec()),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            open(b"\x7fEL".to_vec()),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn other_files_are_not_kernels() {
        for (bytes, why) in [
            (b"#!/bin/sh\necho hi\n".to_vec(), "neither"),
            (Vec::new(), "empty"),
            (
                {
                    let mut b = elf(0x100, 0x1100);
                    b[0x12] = 183;
                    b
                },
                "not for x86-64",
            ),
            (
                {
                    let mut b = elf(0x100, 0x1100);
                    b[4] = 1;
                    b
                },
                "not 64-bit",
            ),
        ] {
            match open(bytes) {
                Err(Error::NotAKernel { why: found, .. }) => {
                    assert!(found.contains(why), "{found}")
                }
                other => panic!("expected not a kernel ({why}), got {other:?}"),
            }
        }
    }

    fn bzimage(len: usize, syssize: u32) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[0x1f1] = 1;
        b[0x1f4..0x1f8].copy_from_slice(&syssize.to_le_bytes());
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        b[0x211] = LOADED_HIGH;
        b[0x236..0x238].copy_from_slice(&XLF_KERNEL_64.to_le_bytes());
        b[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        b[0x300..0x30c].copy_from_slice(b"6.1.0-9 (x)\0");
        b
    }

    #[test]
    fn a_bzimage_is_recognised_checked_and_versioned() {
        let image = open(bzimage(1024 + 64, 4)).unwrap();
        assert_eq!(image.format, Format::BzImage);
        assert_eq!(image.version.as_deref(), Some("6.1.0-9"));
        match open(bzimage(1024 + 32, 4)) {
            Err(Error::Truncated { needed, .. }) => assert_eq!(needed, 1024 + 64),
            other => panic!("expected truncated, got {other:?}"),
        }
        let mut old = bzimage(2048, 1);
        old[0x236] = 0;
        assert!(matches!(open(old), Err(Error::NotAKernel { why, .. }) if why.contains("64-bit")));
    }
}
