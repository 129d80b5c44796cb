//! The microVM's initramfs: the image's file set ([`crate::image::image_files`] and
//! [`crate::image::IMAGE_DIRS`], the same the container's root file system is made from)
//! as a `newc` cpio archive, optionally gzip-compressed, with the workload as `/init`.
//!
//! Besides the image, the archive holds `/dev/console` (character device 5:1), which the
//! kernel opens as init's standard input, output and error before the workload mounts its
//! own `/dev`.
//!
//! The `newc` format (the kernel's Documentation/driver-api/early-userspace/buffer-format.rst):
//! each entry is a 110-byte header of the magic `070701` and thirteen 8-digit hexadecimal
//! fields (ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
//! rdevminor, namesize with its NUL, check = 0), the name and its NUL padded to a multiple
//! of 4 bytes, then the data padded likewise. The archive ends with the entry
//! `TRAILER!!!`. Every entry here has uid and gid 0 and mtime 0, so one build's archive is
//! byte-for-byte the same every time.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::image::{self, WORKLOAD_FNV};

/// File type bits of `mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFIFO: u32 = 0o010_000;
/// The type bits of `mode`.
const S_IFMT: u32 = 0o170_000;

/// Errors writing the initramfs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cache directory or the file in it could not be written.
    #[error("cannot write the initramfs in {dir}")]
    Write {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file of a root file system could not be read.
    #[error("cannot read {path} for the initramfs")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than a `newc` entry can hold (4 GiB).
    #[error("{path} is {size} bytes, more than an initramfs entry holds (4 GiB)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// A file changed while it was archived.
    #[error("{path} changed while it was written into the initramfs")]
    Changed {
        /// The file.
        path: PathBuf,
    },
}

/// Compression of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain cpio archive: the kernel unpacks it without decompressing.
    None,
    /// gzip, as `CONFIG_RD_GZIP` unpacks.
    Gzip,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A directory.
    Dir,
    /// A regular file with these contents.
    File(&'a [u8]),
    /// A character device (major, minor).
    CharDevice(u32, u32),
}

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Its path, relative, without a leading `/`.
    pub path: &'a str,
    /// What it is.
    pub kind: Kind<'a>,
    /// Permission bits.
    pub permissions: u32,
}

/// The entries of the image: its directories, `dev/console`, and its files.
pub fn image_entries() -> Vec<Entry<'static>> {
    let mut entries: Vec<Entry<'static>> = image::IMAGE_DIRS
        .iter()
        .map(|dir| Entry {
            path: dir,
            kind: Kind::Dir,
            permissions: 0o755,
        })
        .collect();
    entries.push(Entry {
        path: "dev/console",
        kind: Kind::CharDevice(5, 1),
        permissions: 0o600,
    });
    entries.extend(
        image::image_files()
            .into_iter()
            .map(|(path, bytes, mode)| Entry {
                path,
                kind: Kind::File(bytes),
                permissions: mode,
            }),
    );
    entries
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn header(out: &mut Vec<u8>, fields: [u32; 13], name: &str) {
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

/// `entries` as a `newc` cpio archive.
pub fn newc(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ino, entry) in (1u32..).zip(entries) {
        let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match entry.kind {
            Kind::Dir => (S_IFDIR, 2, &[], (0, 0)),
            Kind::File(bytes) => (S_IFREG, 1, bytes, (0, 0)),
            Kind::CharDevice(major, minor) => (S_IFCHR, 1, &[], (major, minor)),
        };
        let name_size = u32::try_from(entry.path.len() + 1).unwrap_or(u32::MAX);
        let file_size = u32::try_from(data.len()).unwrap_or(u32::MAX);
        header(
            &mut out,
            [
                ino,
                mode | (entry.permissions & 0o7777),
                0,
                0,
                nlink,
                0,
                file_size,
                0,
                0,
                rdev.0,
                rdev.1,
                name_size,
                0,
            ],
            entry.path,
        );
        out.extend_from_slice(data);
        pad4(&mut out);
    }
    header(
        &mut out,
        [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0],
        "TRAILER!!!",
    );
    out
}

/// The image's archive, compressed as asked.
pub fn image_archive(compression: Compression) -> Vec<u8> {
    let archive = newc(&image_entries());
    match compression {
        Compression::None => archive,
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            // Writing into a Vec cannot fail.
            let _ = encoder.write_all(&archive);
            encoder.finish().unwrap_or_default()
        }
    }
}

/// Writes the image's archive into `dir` (once per build) and returns its path.
pub fn install(dir: &Path, compression: Compression) -> Result<PathBuf, Error> {
    let suffix = match compression {
        Compression::None => "cpio",
        Compression::Gzip => "cpio.gz",
    };
    let path = dir.join(format!("initramfs-{WORKLOAD_FNV}.{suffix}"));
    if path.is_file() {
        return Ok(path);
    }
    let write_error = |source| Error::Write {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let mut file = tempfile::Builder::new()
        .prefix(".initramfs-")
        .tempfile_in(dir)
        .map_err(write_error)?;
    file.write_all(&image_archive(compression))
        .map_err(write_error)?;
    file.persist(&path).map_err(|e| write_error(e.error))?;
    Ok(path)
}

/// One entry's header fields besides its name and size: `mode` holds the type and
/// permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    /// File type and permission bits (`S_IFREG | 0o755`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
    /// A device's major and minor numbers.
    pub rdev: (u32, u32),
}

/// Writes a `newc` archive entry by entry, file contents streamed from their readers, so
/// an archive of a whole root file system is never held in memory.
pub struct Writer<W: Write> {
    out: W,
    /// The next entry's inode number.
    ino: u32,
    /// Bytes written so far (every entry starts at a multiple of 4).
    written: u64,
    /// What the entries so far take once unpacked ([`unpacked_cost`]).
    unpacked: u64,
}

/// The bytes of memory an entry takes once the kernel has unpacked it into its root file
/// system (tmpfs): its data in whole 4 KiB pages (a symbolic link's target too, unless it
/// is short enough to live in the inode), and about 1 KiB of kernel objects (its inode and
/// directory entry) for every entry.
pub fn unpacked_cost(mode: u32, size: u32) -> u64 {
    /// A symbolic link shorter than this lives in its inode (tmpfs's short links).
    const SHORT_LINK: u32 = 128;
    let data = match mode & S_IFMT {
        S_IFREG => u64::from(size).next_multiple_of(4096),
        S_IFLNK if size >= SHORT_LINK => 4096,
        _ => 0,
    };
    data + 1024
}

impl<W: Write> Writer<W> {
    /// An empty archive written to `out`.
    pub fn new(out: W) -> Self {
        Writer {
            out,
            ino: 1,
            written: 0,
            unpacked: 0,
        }
    }

    /// What the entries so far take once the kernel has unpacked them, bytes.
    pub fn unpacked(&self) -> u64 {
        self.unpacked
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> std::io::Result<()> {
        let pad = (4 - self.written % 4) % 4;
        self.put(&[0; 3][..usize::try_from(pad).unwrap_or(0)])
    }

    fn header(&mut self, fields: [u32; 13], name: &[u8]) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(110 + name.len() + 4);
        bytes.extend_from_slice(b"070701");
        for field in fields {
            bytes.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        bytes.extend_from_slice(name);
        bytes.push(0);
        self.put(&bytes)?;
        self.pad()
    }

    /// Adds the entry `path` (relative, no leading `/`) with `size` bytes of contents read
    /// from `data`; fails if `data` gives fewer.
    pub fn entry(
        &mut self,
        path: &[u8],
        stat: &Stat,
        size: u32,
        data: &mut dyn Read,
    ) -> std::io::Result<()> {
        let nlink = if stat.mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        let name_size = u32::try_from(path.len() + 1).unwrap_or(u32::MAX);
        let ino = self.ino;
        self.ino += 1;
        self.unpacked += unpacked_cost(stat.mode, size);
        self.header(
            [
                ino,
                stat.mode,
                stat.uid,
                stat.gid,
                nlink,
                stat.mtime,
                size,
                0,
                0,
                stat.rdev.0,
                stat.rdev.1,
                name_size,
                0,
            ],
            path,
        )?;
        let copied = std::io::copy(&mut data.take(u64::from(size)), &mut self.out)?;
        self.written += copied;
        if copied != u64::from(size) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{copied} bytes of {size}"),
            ));
        }
        self.pad()
    }

    /// Ends the archive with its trailer; returns the output and the archive's size.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        self.header([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0], b"TRAILER!!!")?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

/// Adds `root`'s tree to `writer`: its directories (each before what it holds), regular
/// files, symbolic links and FIFOs with their owners, permissions and times, in name
/// order; device nodes and sockets are left out (init mounts `/dev`), and so is every
/// path `leave_out` says (relative, without a leading `/`). A hard-linked file is written
/// once per name.
pub fn add_tree<W: Write>(
    writer: &mut Writer<W>,
    root: &Path,
    leave_out: &dyn Fn(&[u8]) -> bool,
) -> Result<(), Error> {
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let dir = root.join(&relative);
        let read = |source| Error::Read {
            path: dir.clone(),
            source,
        };
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(read)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read)?;
        names.sort();
        // Directories are walked after their siblings, in name order (a stack, so pushed
        // in reverse).
        let mut below = Vec::new();
        for name in names {
            let inside = relative.join(&name);
            let path = root.join(&inside);
            let name_bytes = inside.as_os_str().as_bytes();
            if leave_out(name_bytes) {
                continue;
            }
            let read = |source| Error::Read {
                path: path.clone(),
                source,
            };
            let meta = std::fs::symlink_metadata(&path).map_err(read)?;
            let kind = meta.file_type();
            let mut stat = Stat {
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: u32::try_from(meta.mtime().max(0)).unwrap_or(u32::MAX),
                rdev: (0, 0),
            };
            let write = |source| Error::Write {
                dir: path.clone(),
                source,
            };
            if kind.is_dir() {
                writer
                    .entry(name_bytes, &stat, 0, &mut std::io::empty())
                    .map_err(write)?;
                below.push(inside);
            } else if kind.is_file() {
                let size = u32::try_from(meta.len()).map_err(|_| Error::TooLarge {
                    path: path.clone(),
                    size: meta.len(),
                })?;
                let mut file = std::fs::File::open(&path).map_err(read)?;
                writer
                    .entry(name_bytes, &stat, size, &mut file)
                    .map_err(|source| match source.kind() {
                        std::io::ErrorKind::UnexpectedEof => Error::Changed { path: path.clone() },
                        _ => Error::Read {
                            path: path.clone(),
                            source,
                        },
                    })?;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).map_err(read)?;
                let target = target.as_os_str().as_bytes();
                stat.mode = S_IFLNK | 0o777;
                let size = u32::try_from(target.len()).unwrap_or(u32::MAX);
                writer
                    .entry(name_bytes, &stat, size, &mut &target[..])
                    .map_err(write)?;
            } else if kind.is_fifo() {
                stat.mode = S_IFIFO | (stat.mode & 0o7777);
                writer
                    .entry(name_bytes, &stat, 0, &mut std::io::empty())
                    .map_err(write)?;
            }
        }
        stack.extend(below.into_iter().rev());
    }
    Ok(())
}

/// The name of a Linux guest's initramfs made from a user's root file system, in the
/// directory that caches it: one per build of the workload.
pub fn image_initramfs_name() -> String {
    format!("initramfs-{WORKLOAD_FNV}.cpio")
}

/// An initramfs made from a root file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    /// Where it is.
    pub path: PathBuf,
    /// Its size, bytes.
    pub bytes: u64,
    /// What its entries take once the kernel has unpacked them ([`unpacked_cost`]), bytes.
    pub unpacked_bytes: u64,
}

/// What the entries of the `newc` archive at `path` take once unpacked
/// ([`unpacked_cost`]), read from their headers alone.
pub fn unpacked_bytes(path: &Path) -> Result<u64, Error> {
    use std::io::{Seek, SeekFrom};
    let read = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let bad = || {
        read(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a newc archive",
        ))
    };
    let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(read)?);
    let mut total = 0;
    let mut at: u64 = 0;
    loop {
        let mut header = [0u8; 110];
        file.read_exact(&mut header).map_err(read)?;
        if &header[..6] != b"070701" {
            return Err(bad());
        }
        let field = |i: usize| -> Result<u32, Error> {
            std::str::from_utf8(&header[6 + i * 8..14 + i * 8])
                .ok()
                .and_then(|text| u32::from_str_radix(text, 16).ok())
                .ok_or_else(bad)
        };
        let (mode, size, name_size) = (field(1)?, field(6)?, field(11)?);
        let mut name = vec![0u8; name_size as usize];
        file.read_exact(&mut name).map_err(read)?;
        if name == b"TRAILER!!!\0" {
            return Ok(total);
        }
        total += unpacked_cost(mode, size);
        let data_at = (at + 110 + u64::from(name_size)).next_multiple_of(4);
        at = (data_at + u64::from(size)).next_multiple_of(4);
        file.seek(SeekFrom::Start(at)).map_err(read)?;
    }
}

/// Writes, unless it is there already, a Linux guest's initramfs made from the root file
/// system `root` into `dir` ([`image_initramfs_name`]): `root`'s tree ([`add_tree`]),
/// then the mount points a sandbox needs that it lacks ([`image::IMAGE_DIRS`]),
/// `dev/console` and the workload as `/init` (the root's own `init` and `dev/console`
/// left out). Written to a temporary file named `<staging prefix>*` in `staging` (on the
/// same file system, where a cleaner finds it if this process is killed) and renamed into
/// place once complete.
pub fn install_root(dir: &Path, root: &Path, staging: (&Path, &str)) -> Result<Made, Error> {
    let path = dir.join(image_initramfs_name());
    if let Ok(meta) = std::fs::metadata(&path) {
        return Ok(Made {
            unpacked_bytes: unpacked_bytes(&path)?,
            path,
            bytes: meta.len(),
        });
    }
    let write_error = |source| Error::Write {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let (staging_dir, prefix) = staging;
    let file = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(staging_dir)
        .map_err(|source| Error::Write {
            dir: staging_dir.to_owned(),
            source,
        })?;
    let mut writer = Writer::new(std::io::BufWriter::new(file));
    let ours = |name: &[u8]| name == b"init" || name == b"dev/console";
    add_tree(&mut writer, root, &ours)?;
    for dir_name in image::IMAGE_DIRS {
        if std::fs::symlink_metadata(root.join(dir_name)).is_err() {
            let stat = Stat {
                mode: S_IFDIR | 0o755,
                ..Stat::default()
            };
            writer
                .entry(dir_name.as_bytes(), &stat, 0, &mut std::io::empty())
                .map_err(write_error)?;
        }
    }
    let console = Stat {
        mode: S_IFCHR | 0o600,
        rdev: (5, 1),
        ..Stat::default()
    };
    writer
        .entry(b"dev/console", &console, 0, &mut std::io::empty())
        .map_err(write_error)?;
    for (name, bytes, mode) in image::image_files() {
        let stat = Stat {
            mode: S_IFREG | mode,
            ..Stat::default()
        };
        let size = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        writer
            .entry(name.as_bytes(), &stat, size, &mut &bytes[..])
            .map_err(write_error)?;
    }
    let unpacked = writer.unpacked();
    let (buffered, size) = writer.finish().map_err(write_error)?;
    let file = buffered
        .into_inner()
        .map_err(|e| write_error(e.into_error()))?;
    file.persist(&path).map_err(|e| write_error(e.error))?;
    Ok(Made {
        path,
        bytes: size,
        unpacked_bytes: unpacked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_archive_byte_for_byte() {
        let entries = [
            Entry {
                path: "dev",
                kind: Kind::Dir,
                permissions: 0o755,
            },
            Entry {
                path: "dev/console",
                kind: Kind::CharDevice(5, 1),
                permissions: 0o600,
            },
            Entry {
                path: "init",
                kind: Kind::File(b"hello"),
                permissions: 0o755,
            },
        ];
        let expected = [
            // "dev": 110 + 4 bytes of name = 114, padded to 116.
            "070701",
            "00000001",
            "000041ED",
            "00000000",
            "00000000",
            "00000002",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000004",
            "00000000",
            "dev\0",
            "\0\0",
            // "dev/console": 110 + 12 = 122, padded to 124.
            "070701",
            "00000002",
            "00002180",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000005",
            "00000001",
            "0000000C",
            "00000000",
            "dev/console\0",
            "\0\0",
            // "init": 110 + 5 = 115, padded to 116; 5 bytes of data padded to 8.
            "070701",
            "00000003",
            "000081ED",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000005",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000005",
            "00000000",
            "init\0",
            "\0",
            "hello",
            "\0\0\0",
            // The trailer: 110 + 11 = 121, padded to 124.
            "070701",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "0000000B",
            "00000000",
            "TRAILER!!!\0",
            "\0\0\0",
        ]
        .concat();
        assert_eq!(newc(&entries), expected.as_bytes());
    }

    #[test]
    fn the_image_holds_init_and_its_directories() {
        let entries = image_entries();
        let paths: Vec<&str> = entries.iter().map(|e| e.path).collect();
        assert_eq!(paths, ["proc", "sys", "dev", "tmp", "dev/console", "init"]);
        assert_eq!(
            entries.last().map(|e| &e.kind),
            Some(&Kind::File(image::WORKLOAD))
        );
        // Reproducible.
        assert_eq!(
            image_archive(Compression::None),
            image_archive(Compression::None)
        );
    }

    #[test]
    fn the_streaming_writer_writes_what_newc_writes() {
        let mut writer = Writer::new(Vec::new());
        let dir = Stat {
            mode: S_IFDIR | 0o755,
            ..Stat::default()
        };
        let file = Stat {
            mode: S_IFREG | 0o755,
            ..Stat::default()
        };
        writer
            .entry(b"dev", &dir, 0, &mut std::io::empty())
            .unwrap();
        writer.entry(b"init", &file, 5, &mut &b"hello"[..]).unwrap();
        let (bytes, size) = writer.finish().unwrap();
        let entries = [
            Entry {
                path: "dev",
                kind: Kind::Dir,
                permissions: 0o755,
            },
            Entry {
                path: "init",
                kind: Kind::File(b"hello"),
                permissions: 0o755,
            },
        ];
        assert_eq!(bytes, newc(&entries));
        assert_eq!(size, bytes.len() as u64);
        // A reader that gives less than the size it was said to have is an error.
        let mut short = Writer::new(Vec::new());
        assert!(short.entry(b"f", &file, 9, &mut &b"abc"[..]).is_err());
    }

    /// The entries of a newc archive: (name, mode, uid, size, data).
    fn entries_of(bytes: &[u8]) -> Vec<(String, u32, u32, Vec<u8>)> {
        let mut at = 0;
        let mut found = Vec::new();
        let field = |at: usize, i: usize| {
            let text = std::str::from_utf8(&bytes[at + 6 + i * 8..at + 14 + i * 8]).unwrap();
            u32::from_str_radix(text, 16).unwrap() as usize
        };
        loop {
            assert_eq!(&bytes[at..at + 6], b"070701");
            let (mode, uid, size, name_size) =
                (field(at, 1), field(at, 2), field(at, 6), field(at, 11));
            let name =
                String::from_utf8(bytes[at + 110..at + 110 + name_size - 1].to_vec()).unwrap();
            let data_at = (at + 110 + name_size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                return found;
            }
            found.push((
                name,
                mode as u32,
                uid as u32,
                bytes[data_at..data_at + size].to_vec(),
            ));
            at = (data_at + size).next_multiple_of(4);
        }
    }

    #[test]
    fn a_root_becomes_an_initramfs_with_the_workload_as_init() {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("root");
        for dir in ["bin", "etc", "dev"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("tool", root.join("bin/sh")).unwrap();
        std::fs::write(root.join("etc/passwd"), b"root:x:0:0::/:/bin/sh\n").unwrap();
        std::fs::write(root.join("init"), b"the image's own init").unwrap();
        std::fs::write(root.join("dev/console"), b"").unwrap();
        let cache = work.path().join("cache");
        let staging = (work.path(), ".staging-");
        let made = install_root(&cache, &root, staging).unwrap();
        let path = made.path.clone();
        assert_eq!(path, cache.join(image_initramfs_name()));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(made.bytes, bytes.len() as u64);
        // Unpacked: each file in whole pages, the workload's too, and 1 KiB for every
        // entry; the same read back from the archive's headers.
        let workload = (image::WORKLOAD.len() as u64).next_multiple_of(4096);
        assert_eq!(made.unpacked_bytes, 2 * 4096 + workload + 11 * 1024);
        assert_eq!(unpacked_bytes(&path).unwrap(), made.unpacked_bytes);
        let entries = entries_of(&bytes);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "dev",
                "etc",
                "bin/sh",
                "bin/tool",
                "etc/passwd",
                "proc",
                "sys",
                "tmp",
                "dev/console",
                "init"
            ]
        );
        let entry = |name: &str| entries.iter().find(|e| e.0 == name).unwrap();
        assert_eq!(entry("bin/sh").1 & S_IFMT, S_IFLNK);
        assert_eq!(entry("bin/sh").3, b"tool");
        assert_eq!(entry("bin/tool").3, b"#!/bin/sh\n");
        assert_eq!(entry("dev/console").1, S_IFCHR | 0o600);
        assert_eq!(entry("init").3, image::WORKLOAD);
        // Built once: a second call finds it.
        std::fs::write(root.join("bin/tool"), b"changed").unwrap();
        assert_eq!(install_root(&cache, &root, staging).unwrap(), made);
        // A root that cannot be read is an error naming it, and leaves nothing behind.
        let other = work.path().join("other");
        let error = install_root(&other, &work.path().join("missing"), staging).unwrap_err();
        assert!(error.to_string().contains("missing"), "{error}");
        assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0);
        let staged = std::fs::read_dir(work.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".staging-")
            })
            .count();
        assert_eq!(staged, 0, "no staging file left");
    }
}
