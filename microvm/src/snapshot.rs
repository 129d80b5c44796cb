//! Snapshots of guests: a stopped guest's vCPU state and the memory it touched, in one
//! file, restored in a fresh monitor process with the memory mapped privately from the
//! file, so a page is read only when the restored guest touches it (as Firecracker does).
//! Two kinds: a micro guest stopped at a `hlt` (its one vCPU's registers), and a Linux
//! guest paused when its init wrote its first marker ([`LinuxState`]: every vCPU's state,
//! the interrupt controllers, PIT, KVM clock and serial console).
//!
//! The file: the magic `VCBSNAP\0`, the header's length (u32, little-endian), the
//! SHA-256 of the header, the header (JSON: format, tool, host CPU, kind, memory size,
//! vCPUs, registers, and a Linux guest's state), then from the next 4 KiB boundary the
//! guest's RAM ranges one after another, the pages the guest never touched left as holes.
//! It is written under a temporary name and renamed into place, so a snapshot is whole or
//! absent.
//!
//! A snapshot is refused, with the reason, when it is not one, is cut short, comes from
//! another format or monitor version, from a CPU of another model, has a header that does
//! not match its hash, or does not match the memory size asked for. The memory itself is
//! not hashed: hashing it would read every page at restore, which is what restoring from
//! a file avoids; it is the guest's own memory, which the guest could have written anyway.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kvm_bindings::{kvm_regs, kvm_sregs};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::linux::state::LinuxState;

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"VCBSNAP\0";
/// The layout of the header and file this monitor writes and reads (2: the kind, and
/// Linux guests).
pub const FORMAT: u32 = 2;
/// Guest memory starts at a multiple of this in the file.
const ALIGN: u64 = 4096;
/// The longest header read (a header is a few KiB).
const MAX_HEADER: u32 = 1 << 20;

/// Errors writing or reading a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or written.
    #[error("snapshot {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the magic.
    #[error("{0} is not a vcbench snapshot")]
    NotASnapshot(PathBuf),
    /// The file is shorter than its header says.
    #[error("snapshot {path} is cut short: {found} bytes where its header says {expected}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes there are.
        found: u64,
        /// Bytes the header promises.
        expected: u64,
    },
    /// The header does not match its hash.
    #[error("snapshot {0}'s header does not match its SHA-256: it was altered or damaged")]
    Tampered(PathBuf),
    /// The header is not what this monitor writes.
    #[error("snapshot {path}'s header is unreadable: {reason}")]
    Header {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Another format or monitor version wrote it.
    #[error("snapshot {path} was written by {found}; this is {expected}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Who wrote it.
        found: String,
        /// This monitor.
        expected: String,
    },
    /// It was taken on a CPU of another model.
    #[error(
        "snapshot {path} was taken on {found}, and this host is {here}: a guest restored on \
         another CPU model may find instructions and features gone"
    )]
    Cpu {
        /// The file.
        path: PathBuf,
        /// Its CPU.
        found: String,
        /// This host's.
        here: String,
    },
    /// Its guest has another memory size than the one asked for.
    #[error("snapshot {path} holds a guest of {found} MiB, not the {asked} MiB asked for")]
    MemorySize {
        /// The file.
        path: PathBuf,
        /// Its guest's memory, MiB.
        found: u64,
        /// Asked for, MiB.
        asked: u64,
    },
}

/// The kind of guest a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A micro guest stopped at a `hlt` (only its first vCPU ran).
    Micro,
    /// A Linux guest paused at its init's first marker.
    Linux,
}

/// What a snapshot's header holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT`].
    pub format: u32,
    /// The monitor that wrote it ([`tool`]).
    pub tool: String,
    /// The host CPU it was taken on ([`host_cpu`]).
    pub cpu: String,
    /// The kind of guest.
    pub kind: Kind,
    /// Guest memory, bytes.
    pub memory_bytes: u64,
    /// vCPUs (a micro guest ran only the first).
    pub vcpus: u8,
    /// The first vCPU's registers.
    pub regs: kvm_regs,
    /// Its segment and control registers.
    pub sregs: kvm_sregs,
    /// A Linux guest's state (for [`Kind::Linux`] only).
    pub linux: Option<Box<LinuxState>>,
    /// Where guest memory starts in the file.
    pub memory_offset: u64,
    /// Bytes of guest memory written (the pages the guest had touched).
    pub memory_saved: u64,
}

/// Who wrote a header: the part every format has.
#[derive(Deserialize)]
struct Writer {
    format: u32,
    tool: String,
}

/// This monitor, as a snapshot names its writer.
pub fn tool() -> String {
    format!(
        "vcbench-vmm {} (format {FORMAT})",
        env!("CARGO_PKG_VERSION")
    )
}

/// This host's CPU: vendor, family, model and stepping, and its name, from /proc/cpuinfo.
pub fn host_cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .take_while(|l| !l.trim().is_empty())
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "?".to_owned())
    };
    format!(
        "{} family {} model {} stepping {} ({})",
        field("vendor_id"),
        field("cpu family"),
        field("model"),
        field("stepping"),
        field("model name")
    )
}

/// The header's length rounded up to where memory starts.
fn memory_offset(header_len: usize) -> u64 {
    let prefix = (MAGIC.len() + 4 + 32 + header_len) as u64;
    prefix.div_ceil(ALIGN) * ALIGN
}

/// Writes a snapshot to `path`: the header for the given state, then the guest memory
/// that `save_memory` writes at the offset it is given (returning the bytes written).
/// Written as `path` + `.partial`, then renamed. Returns the header written.
pub fn write(
    path: &Path,
    vcpus: u8,
    memory_bytes: u64,
    regs: kvm_regs,
    sregs: kvm_sregs,
    save_memory: impl FnOnce(&mut File, u64) -> std::io::Result<u64>,
) -> Result<Header, Error> {
    let header = Header {
        format: FORMAT,
        tool: tool(),
        cpu: host_cpu(),
        kind: Kind::Micro,
        memory_bytes,
        vcpus,
        regs,
        sregs,
        linux: None,
        memory_offset: 0,
        memory_saved: 0,
    };
    write_header(path, header, save_memory)
}

/// Writes a snapshot of a Linux guest of `memory_bytes` in the state `linux` to `path`, as
/// [`write`] does.
pub fn write_linux(
    path: &Path,
    memory_bytes: u64,
    linux: LinuxState,
    save_memory: impl FnOnce(&mut File, u64) -> std::io::Result<u64>,
) -> Result<Header, Error> {
    let first = linux.vcpus.first();
    let header = Header {
        format: FORMAT,
        tool: tool(),
        cpu: host_cpu(),
        kind: Kind::Linux,
        memory_bytes,
        vcpus: u8::try_from(linux.vcpus.len()).unwrap_or(u8::MAX),
        regs: first.map(|v| v.regs).unwrap_or_default(),
        sregs: first.map(|v| v.sregs).unwrap_or_default(),
        linux: Some(Box::new(linux)),
        memory_offset: 0,
        memory_saved: 0,
    };
    write_header(path, header, save_memory)
}

fn write_header(
    path: &Path,
    mut header: Header,
    save_memory: impl FnOnce(&mut File, u64) -> std::io::Result<u64>,
) -> Result<Header, Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let memory_bytes = header.memory_bytes;
    // Room for the header with the widest numbers it can hold: its length does not
    // depend on the offset or the bytes saved, which are known only later.
    let widest = Header {
        memory_offset: u64::MAX,
        memory_saved: u64::MAX,
        ..header.clone()
    };
    header.memory_offset = memory_offset(encode(&widest).len());
    let partial = path.with_extension("partial");
    let mut file = File::create(&partial).map_err(io)?;
    let result = (|| {
        file.set_len(header.memory_offset + memory_bytes)?;
        header.memory_saved = save_memory(&mut file, header.memory_offset)?;
        let json = encode(&header);
        let mut prefix = Vec::with_capacity(MAGIC.len() + 36 + json.len());
        prefix.extend_from_slice(MAGIC);
        prefix.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_le_bytes());
        prefix.extend_from_slice(&Sha256::digest(json.as_bytes()));
        prefix.extend_from_slice(json.as_bytes());
        if prefix.len() as u64 > header.memory_offset {
            return Err(std::io::Error::other("the header outgrew its space"));
        }
        use std::os::unix::fs::FileExt;
        file.write_all_at(&prefix, 0)?;
        file.flush()
    })();
    match result.and_then(|()| std::fs::rename(&partial, path)) {
        Ok(()) => Ok(header),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(io(e))
        }
    }
}

fn encode(header: &Header) -> String {
    serde_json::to_string(header).unwrap_or_default()
}

/// Reads and checks the snapshot at `path`: its magic, header hash, format and writer,
/// CPU and size, and, when `memory_mib` is given, that its guest has that much memory.
/// Returns its header and the open file to map guest memory from.
pub fn read(path: &Path, memory_mib: Option<u64>) -> Result<(Header, File), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let length = file.metadata().map_err(io)?.len();
    let mut prefix = [0u8; 44];
    if file.read_exact(&mut prefix).is_err() || &prefix[..8] != MAGIC {
        return Err(Error::NotASnapshot(path.to_owned()));
    }
    let header_len = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    if header_len > MAX_HEADER {
        return Err(Error::Header {
            path: path.to_owned(),
            reason: format!("a header of {header_len} bytes"),
        });
    }
    let mut json = vec![0u8; header_len as usize];
    if file.read_exact(&mut json).is_err() {
        return Err(Error::Truncated {
            path: path.to_owned(),
            found: length,
            expected: 44 + u64::from(header_len),
        });
    }
    if Sha256::digest(&json)[..] != prefix[12..44] {
        return Err(Error::Tampered(path.to_owned()));
    }
    let unreadable = |e: serde_json::Error| Error::Header {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    // The writer first: another version's header may not parse as this one's.
    let writer: Writer = serde_json::from_slice(&json).map_err(unreadable)?;
    if writer.format != FORMAT || writer.tool != tool() {
        return Err(Error::Version {
            path: path.to_owned(),
            found: writer.tool,
            expected: tool(),
        });
    }
    let header: Header = serde_json::from_slice(&json).map_err(unreadable)?;
    let vcpus_saved = header.linux.as_ref().map(|l| l.vcpus.len());
    let consistent = match header.kind {
        Kind::Micro => vcpus_saved.is_none(),
        Kind::Linux => vcpus_saved.is_some_and(|n| n >= 1 && n == usize::from(header.vcpus)),
    };
    if !consistent {
        return Err(Error::Header {
            path: path.to_owned(),
            reason: format!(
                "a {:?} guest's header with {} vCPUs and {} vCPU states",
                header.kind,
                header.vcpus,
                vcpus_saved.map_or("no".to_owned(), |n| n.to_string())
            ),
        });
    }
    let here = host_cpu();
    if header.cpu != here {
        return Err(Error::Cpu {
            path: path.to_owned(),
            found: header.cpu,
            here,
        });
    }
    let expected = header.memory_offset.saturating_add(header.memory_bytes);
    if length < expected || !header.memory_offset.is_multiple_of(ALIGN) {
        return Err(Error::Truncated {
            path: path.to_owned(),
            found: length,
            expected,
        });
    }
    if let Some(asked) = memory_mib.filter(|mib| mib << 20 != header.memory_bytes) {
        return Err(Error::MemorySize {
            path: path.to_owned(),
            found: header.memory_bytes >> 20,
            asked,
        });
    }
    Ok((header, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs() -> (kvm_regs, kvm_sregs) {
        let regs = kvm_regs {
            rip: 0x1234,
            rflags: 2,
            rax: 7,
            ..Default::default()
        };
        let mut sregs = kvm_sregs {
            cr0: 0x11,
            ..Default::default()
        };
        sregs.cs.base = 0x1000;
        (regs, sregs)
    }

    /// A snapshot of a 2 MiB guest with one written page.
    fn write_one(path: &Path) -> Header {
        let (regs, sregs) = regs();
        write(path, 1, 2 << 20, regs, sregs, |file, offset| {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(offset + 8192))?;
            file.write_all(&[0xab; 4096])?;
            Ok(4096)
        })
        .unwrap()
    }

    #[test]
    fn a_snapshot_reads_back_as_written_with_its_memory_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let written = write_one(&path);
        assert!(!dir.path().join("s.partial").exists());
        let (header, file) = read(&path, Some(2)).unwrap();
        assert_eq!(header, written);
        assert_eq!(header.memory_saved, 4096);
        assert_eq!(header.regs.rip, 0x1234);
        assert_eq!(header.sregs.cs.base, 0x1000);
        assert_eq!(header.memory_offset % ALIGN, 0);
        use std::os::unix::fs::FileExt;
        let mut page = [0u8; 4096];
        file.read_exact_at(&mut page, header.memory_offset + 8192)
            .unwrap();
        assert_eq!(page, [0xab; 4096]);
        file.read_exact_at(&mut page, header.memory_offset).unwrap();
        assert_eq!(page, [0; 4096], "untouched memory reads as zeroes");
    }

    /// A snapshot of a 2 MiB Linux guest of two vCPUs with one written page.
    fn write_linux_one(path: &Path) -> Header {
        let state = crate::linux::state::tests::sample(2);
        write_linux(path, 2 << 20, state, |file, offset| {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(offset + 8192))?;
            file.write_all(&[0xab; 4096])?;
            Ok(4096)
        })
        .unwrap()
    }

    #[test]
    fn a_linux_snapshot_reads_back_as_written_with_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.snap");
        let written = write_linux_one(&path);
        let (header, file) = read(&path, Some(2)).unwrap();
        assert_eq!(header, written);
        assert_eq!(header.kind, Kind::Linux);
        assert_eq!(header.vcpus, 2);
        let linux = header.linux.as_ref().unwrap();
        assert_eq!(**linux, crate::linux::state::tests::sample(2));
        assert_eq!(header.regs, linux.vcpus[0].regs);
        assert_eq!(header.memory_offset % ALIGN, 0);
        use std::os::unix::fs::FileExt;
        let mut page = [0u8; 4096];
        file.read_exact_at(&mut page, header.memory_offset + 8192)
            .unwrap();
        assert_eq!(page, [0xab; 4096]);
    }

    #[test]
    fn damaged_foreign_and_mismatched_snapshots_are_refused_with_the_reason() {
        refused_when_damaged_foreign_or_mismatched(write_one);
    }

    #[test]
    fn damaged_foreign_and_mismatched_linux_snapshots_are_refused_with_the_reason() {
        refused_when_damaged_foreign_or_mismatched(write_linux_one);
    }

    fn refused_when_damaged_foreign_or_mismatched(write_one: fn(&Path) -> Header) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let header = write_one(&path);
        let bytes = std::fs::read(&path).unwrap();
        let put = |b: &[u8]| std::fs::write(&path, b).unwrap();

        put(b"random bytes, not a snapshot at all, more than 44 of them here");
        assert!(matches!(read(&path, None), Err(Error::NotASnapshot(_))));
        put(&bytes[..30]);
        assert!(matches!(read(&path, None), Err(Error::NotASnapshot(_))));
        put(&bytes[..200]);
        assert!(matches!(read(&path, None), Err(Error::Truncated { .. })));
        put(&bytes[..usize::try_from(header.memory_offset).unwrap() + 100]);
        assert!(matches!(read(&path, None), Err(Error::Truncated { .. })));

        // A register changed in the header: the hash no longer matches.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let at = text.find("\"memory_bytes\":").unwrap();
        let mut tampered = bytes.clone();
        tampered[at + 15] = b'9';
        put(&tampered);
        assert!(matches!(read(&path, None), Err(Error::Tampered(_))));

        // Another writer, another CPU: rewritten with a matching hash, still refused.
        let rewrite = |edit: &dyn Fn(&mut Header)| {
            let mut h = header.clone();
            edit(&mut h);
            let json = encode(&h);
            let mut out = Vec::new();
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&u32::try_from(json.len()).unwrap().to_le_bytes());
            out.extend_from_slice(&Sha256::digest(json.as_bytes()));
            out.extend_from_slice(json.as_bytes());
            out.resize(bytes.len(), 0);
            put(&out);
        };
        rewrite(&|h| h.tool = "vcbench-vmm 0.0.1 (format 1)".to_owned());
        let e = read(&path, None).unwrap_err();
        assert!(
            e.to_string().contains("written by vcbench-vmm 0.0.1"),
            "{e}"
        );
        rewrite(&|h| h.format = 1);
        let e = read(&path, None).unwrap_err();
        assert!(matches!(e, Error::Version { .. }), "{e}");
        // A header of the first format, which had no kind: refused as another version,
        // not as unreadable.
        let first_format = |h: &Header| {
            let mut value = serde_json::to_value(h).unwrap();
            let object = value.as_object_mut().unwrap();
            object.remove("kind");
            object.remove("linux");
            object.insert("format".to_owned(), 1.into());
            object.insert("tool".to_owned(), "vcbench-vmm 0.1.0 (format 1)".into());
            value.to_string()
        };
        let json = first_format(&header);
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&u32::try_from(json.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&Sha256::digest(json.as_bytes()));
        out.extend_from_slice(json.as_bytes());
        out.resize(bytes.len(), 0);
        put(&out);
        let e = read(&path, None).unwrap_err();
        assert!(
            e.to_string()
                .contains("written by vcbench-vmm 0.1.0 (format 1)"),
            "{e}"
        );
        // A kind that does not match the state held.
        rewrite(&|h| {
            h.kind = match h.kind {
                Kind::Micro => Kind::Linux,
                Kind::Linux => Kind::Micro,
            }
        });
        let e = read(&path, None).unwrap_err();
        assert!(matches!(e, Error::Header { .. }), "{e}");
        if header.kind == Kind::Linux {
            // More vCPUs than states.
            rewrite(&|h| h.vcpus = 3);
            let e = read(&path, None).unwrap_err();
            assert!(matches!(e, Error::Header { .. }), "{e}");
        }
        rewrite(&|h| h.cpu = "GenuineIntel family 6 model 85 stepping 7 (Xeon)".to_owned());
        let e = read(&path, None).unwrap_err();
        assert!(matches!(e, Error::Cpu { .. }), "{e}");
        rewrite(&|_| {});
        read(&path, Some(2)).unwrap();
        let e = read(&path, Some(128)).unwrap_err();
        assert!(
            e.to_string()
                .contains("holds a guest of 2 MiB, not the 128 MiB"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(read(&path, None), Err(Error::Io { .. })));
    }
}
