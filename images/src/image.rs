//! The workload binary that every sandbox runs, carried inside `vcbench`.
//!
//! The build embeds a statically linked `workload` (see `images/build.rs`); before a run it
//! is installed once into the user's cache directory under a name that includes its
//! hash, so every backend executes byte-identical code and results can name it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The statically linked workload executable.
pub const WORKLOAD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/workload"));
/// FNV-1a hash of [`WORKLOAD`], in hex.
pub const WORKLOAD_FNV: &str = env!("VCBENCH_WORKLOAD_FNV");
/// The statically linked microVM monitor process.
pub const VMM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vcbench-vmm"));
/// FNV-1a hash of [`VMM`], in hex.
pub const VMM_FNV: &str = env!("VCBENCH_VMM_FNV");
/// The C library [`VMM`] is linked with: `musl`, or `glibc` where the build had no musl
/// target (its start-up then costs the CPUID instructions of glibc's; see `build.rs`).
pub const VMM_LIBC: &str = env!("VCBENCH_VMM_LIBC");

/// ELF program header type of the dynamic loader request.
const PT_INTERP: u32 = 3;

/// Errors while installing the workload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cache directory or the file in it could not be written.
    #[error("cannot install the workload binary in {dir}")]
    Install {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The directory vcbench caches files in: `$XDG_CACHE_HOME/vcbench`; else, for root,
/// `/var/cache/vcbench` (which the unprivileged IDs of a user namespace can reach, unlike
/// `/root`); else `$HOME/.cache/vcbench`; else one under the temporary directory.
pub fn cache_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| root.then(|| PathBuf::from("/var/cache")))
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("vcbench")
}

/// Mount points every image has, for the pseudo file systems a sandbox mounts.
pub const IMAGE_DIRS: [&str; 4] = ["proc", "sys", "dev", "tmp"];

/// The files of the image, as (path inside, contents, mode): one list, from which both
/// the container's root file system and the VM's initramfs are made.
pub fn image_files() -> [(&'static str, &'static [u8], u32); 1] {
    [("init", WORKLOAD, 0o755)]
}

/// Makes the image's root file system directory in `dir` (once per build), readable by
/// everyone so user-namespaced containers can use it; returns its path.
pub fn install_rootfs(dir: &Path) -> Result<PathBuf, Error> {
    let path = dir.join(format!("rootfs-{WORKLOAD_FNV}"));
    if path.join("init").is_file() {
        return Ok(path);
    }
    let install_error = |source| Error::Install {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(install_error)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(install_error)?;
    let staging = tempfile::Builder::new()
        .prefix(".rootfs-")
        .tempdir_in(dir)
        .map_err(install_error)?;
    for name in IMAGE_DIRS {
        std::fs::create_dir(staging.path().join(name)).map_err(install_error)?;
    }
    for (name, bytes, mode) in image_files() {
        write_from_child(&staging.path().join(name), bytes, mode).map_err(install_error)?;
    }
    std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(install_error)?;
    // Another vcbench may have finished first; then its copy is as good as ours.
    match std::fs::rename(staging.path(), &path) {
        Ok(()) => {
            // The directory moved away; nothing is left for the guard to remove.
            let _ = staging.keep();
            Ok(path)
        }
        Err(_) if path.join("init").is_file() => Ok(path),
        Err(e) => Err(install_error(e)),
    }
}

/// Installs the workload into `dir` (once per build) and returns its path.
pub fn install_workload(dir: &Path) -> Result<PathBuf, Error> {
    install_executable(dir, "workload", WORKLOAD_FNV, WORKLOAD)
}

/// Installs the monitor into `dir` (once per build) and returns its path.
pub fn install_vmm(dir: &Path) -> Result<PathBuf, Error> {
    install_executable(dir, "vcbench-vmm", VMM_FNV, VMM)
}

/// Installs `bytes` as the executable `<name>-<hash>` in `dir`, unless already there.
fn install_executable(dir: &Path, name: &str, hash: &str, bytes: &[u8]) -> Result<PathBuf, Error> {
    let path = dir.join(format!("{name}-{hash}"));
    let current = std::fs::metadata(&path)
        .is_ok_and(|m| m.len() == bytes.len() as u64 && m.permissions().mode() & 0o111 != 0);
    if current {
        return Ok(path);
    }
    let install_error = |source| Error::Install {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(install_error)?;
    // Another vcbench may be installing the same build: the rename replaces its copy
    // atomically with identical bytes, and a running copy keeps its own inode.
    write_executable(&path, bytes).map_err(install_error)?;
    Ok(path)
}

/// Writes `bytes` as the executable file `path` (mode 0755), replacing any file there
/// atomically, in a way that lets it be executed at once while other threads of this
/// process fork (see [`write_from_child`]).
pub fn write_executable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Staged under a name no other writer uses (tempfile draws another where one is
    // taken), and removed if the rename fails.
    tempfile::Builder::new()
        .prefix(".install-")
        .make_in(dir, |staged| write_from_child(staged, bytes, 0o755))?
        .into_temp_path()
        .persist(path)
        .map_err(|e| e.error)
}

/// Writes `bytes` to the new file `path` with `mode`, from a forked child process.
///
/// A file this process held open for writing would be inherited by every child that
/// another thread forks in that moment, until the child's exec closes it; while any
/// such child lives, executing the file fails with ETXTBSY. Written by a child of its
/// own, the file is never open for writing in this process, so it can be executed at
/// once whatever the other threads do.
fn write_from_child(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: the child calls only async-signal-safe functions (open, fchmod, write,
    // fsync, close, _exit) on memory that was valid before the fork (the path and the
    // bytes), so the locks other threads held at the fork cannot be met in it.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: as above; `write_file` returns, and `_exit` ends the child without
        // running this process's exit handlers or flushing its buffers a second time.
        unsafe { libc::_exit(write_file(&c_path, bytes, mode)) }
    }
    let mut status = 0;
    loop {
        // SAFETY: `pid` is this process's own child, not yet reaped; `status` is a
        // valid place for the kernel to write its status.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        return Ok(());
    }
    // The child exits with the error number of the call that failed. Where that was the
    // open (the file was there already), the file is not this call's to remove.
    let errno = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    if errno != Some(libc::EEXIST) {
        let _ = std::fs::remove_file(path);
    }
    if let Some(errno) = errno {
        return Err(std::io::Error::from_raw_os_error(errno));
    }
    Err(std::io::Error::other(format!(
        "the process writing {} was ended by signal {}",
        path.display(),
        libc::WTERMSIG(status)
    )))
}

/// The forked child's part of [`write_from_child`]: returns 0, or the error number of the
/// call that failed (all of which are below 256).
fn write_file(path: &std::ffi::CStr, bytes: &[u8], mode: u32) -> i32 {
    // Reading errno allocates nothing.
    let errno = || {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
            .clamp(1, 255)
    };
    // SAFETY: `path` is a NUL-terminated string; O_EXCL makes a new file or fails.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return errno();
    }
    // SAFETY: `fd` is the file just opened; fchmod sets the mode whatever the umask.
    if unsafe { libc::fchmod(fd, mode) } != 0 {
        return errno();
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: `rest` is a valid slice of its length; the kernel only reads it.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return errno();
        }
        // `n` is not negative here, and at most the length asked for.
        rest = rest.get(n.cast_unsigned()..).unwrap_or_default();
    }
    // SAFETY: `fd` is open; the data reaches the disk before the file is renamed into place.
    if unsafe { libc::fsync(fd) } != 0 {
        return errno();
    }
    // SAFETY: `fd` is open and closed once.
    if unsafe { libc::close(fd) } != 0 {
        return errno();
    }
    0
}

/// Workload binaries and root file systems in `dir` made by other builds than this one.
pub fn stale_installs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let hash = name
                .strip_prefix("workload-")
                .or_else(|| name.strip_prefix("rootfs-"));
            hash.is_some_and(|h| h != WORKLOAD_FNV)
        })
        .collect()
}

/// Whether an ELF executable is static: it asks for no dynamic loader (no `PT_INTERP`).
/// `None` if the bytes are not a 64-bit little-endian ELF file.
pub fn elf_is_static(elf: &[u8]) -> Option<bool> {
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    let mut has_interp = false;
    for i in 0..phnum {
        has_interp |= u32_at(phoff.checked_add(i.checked_mul(phentsize)?)?)? == PT_INTERP;
    }
    Some(!has_interp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_executables_are_static() {
        assert_eq!(elf_is_static(WORKLOAD), Some(true));
        assert_eq!(elf_is_static(VMM), Some(true));
    }

    #[test]
    fn a_dynamic_executable_is_recognised() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // Test binaries are linked like the host's programs: dynamically.
        assert_eq!(elf_is_static(&me), Some(false));
        assert_eq!(elf_is_static(b"#!/bin/sh\n"), None);
        assert_eq!(elf_is_static(b"\x7fELF\x02\x01\0\0"), None);
    }

    #[test]
    fn the_rootfs_holds_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = install_rootfs(dir.path()).unwrap();
        assert_eq!(std::fs::read(rootfs.join("init")).unwrap(), WORKLOAD);
        for d in IMAGE_DIRS {
            assert!(rootfs.join(d).is_dir(), "{d}");
        }
        assert_eq!(install_rootfs(dir.path()).unwrap(), rootfs);
        let mode = std::fs::metadata(&rootfs).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn other_builds_installs_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let current = install_workload(dir.path()).unwrap();
        std::fs::write(dir.path().join("workload-0123456789abcdef"), "old").unwrap();
        std::fs::create_dir(dir.path().join("rootfs-0123456789abcdef")).unwrap();
        let mut stale = stale_installs(dir.path());
        stale.sort();
        assert_eq!(stale.len(), 2);
        assert!(!stale.contains(&current));
    }

    #[test]
    fn install_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let first = install_workload(dir.path()).unwrap();
        let second = install_workload(dir.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(std::fs::read(&first).unwrap(), WORKLOAD);
        assert!(std::fs::metadata(&first).unwrap().permissions().mode() & 0o111 != 0);
    }
}
