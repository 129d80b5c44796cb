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

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::image::{self, WORKLOAD_FNV};

/// File type bits of `mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

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
}
