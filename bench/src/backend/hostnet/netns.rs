//! The run's own network namespace: made by a thread of its own with unshare(2), held by
//! a bind mount of that thread's `/proc/thread-self/ns/net` on a file in the run's
//! directory (as `ip netns add` does), so it outlives the thread, and removed (unmounted,
//! the file deleted) when dropped. The kernel destroys the namespace, and every link in
//! it, once nothing holds it.
//!
//! The file is named `<pid>-<start>-<n>` after the process that made it and its start
//! time, so [`remove_stale`] finds what a killed run left and never touches a live run's.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Errors making, entering or removing a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory or the file that holds it could not be made.
    #[error("cannot make {0}")]
    File(String, #[source] std::io::Error),
    /// The namespace could not be made (unshare needs CAP_SYS_ADMIN).
    #[error("cannot make a network namespace")]
    Unshare(#[source] std::io::Error),
    /// The namespace could not be bind-mounted on its file.
    #[error("cannot hold the network namespace at {0}")]
    Mount(String, #[source] std::io::Error),
    /// A network namespace could not be opened.
    #[error("cannot open the network namespace {0}")]
    Open(String, #[source] std::io::Error),
    /// A thread could not enter the namespace.
    #[error("cannot enter the network namespace")]
    Enter(#[source] std::io::Error),
    /// The thread that makes or enters the namespace panicked.
    #[error("the thread in the network namespace panicked")]
    Panicked,
}

/// A network namespace of the run's own, held until dropped.
#[derive(Debug)]
pub struct Namespace {
    path: PathBuf,
    fd: OwnedFd,
}

/// What the process making a namespace calls itself in the file's name.
fn owner() -> Option<(u32, u64)> {
    let pid = std::process::id();
    crate::registry::start_time(pid).map(|start| (pid, start))
}

impl Namespace {
    /// Makes a network namespace, held by a file in `dir`.
    pub fn create(dir: &Path) -> Result<Self, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let file_error = |what: &Path| {
            let what = what.display().to_string();
            move |e| Error::File(what, e)
        };
        std::fs::create_dir_all(dir).map_err(file_error(dir))?;
        let (pid, start) = owner().ok_or_else(|| {
            Error::File(
                "the namespace's name".to_owned(),
                std::io::Error::other("this process's start time cannot be read"),
            )
        })?;
        let path = dir.join(format!(
            "{pid}-{start}-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(file_error(&path))?;
        // From here on, a failure removes the file (and the mount, if it was made).
        let made = std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<(), Error> {
                    // SAFETY: unshare takes a flag; it changes only this thread's
                    // namespace, and this thread ends right after.
                    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                        return Err(Error::Unshare(std::io::Error::last_os_error()));
                    }
                    bind_mount(Path::new("/proc/thread-self/ns/net"), &path)
                })
                .join()
                .unwrap_or(Err(Error::Panicked))
        });
        let opened = made.and_then(|()| {
            std::fs::File::open(&path)
                .map(OwnedFd::from)
                .map_err(|e| Error::Open(path.display().to_string(), e))
        });
        match opened {
            Ok(fd) => Ok(Namespace { path, fd }),
            Err(e) => {
                drop(remove(&path));
                Err(e)
            }
        }
    }

    /// The file that holds it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A descriptor of the namespace.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Runs `f` on a thread inside the namespace: what it opens or starts (sockets,
    /// processes) belongs to the namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        enter(self.fd(), f)
    }
}

/// Runs `f` on a thread inside the network namespace `namespace`.
pub fn enter<T: Send>(namespace: BorrowedFd<'_>, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns takes a descriptor, borrowed for the call, and a flag; it
                // changes only this thread's network namespace, and the thread ends with f.
                if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(Error::Enter(std::io::Error::last_os_error()));
                }
                Ok(f())
            })
            .join()
            .unwrap_or(Err(Error::Panicked))
    })
}

impl Drop for Namespace {
    fn drop(&mut self) {
        drop(remove(&self.path));
    }
}

fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other(format!("{} holds a NUL byte", path.display())))
}

fn bind_mount(from: &Path, to: &Path) -> Result<(), Error> {
    let mount_error = |e| Error::Mount(to.display().to_string(), e);
    let (from_c, to_c) = (
        c_path(from).map_err(mount_error)?,
        c_path(to).map_err(mount_error)?,
    );
    // SAFETY: both paths are NUL-terminated strings valid for the call; a bind mount
    // takes no file system type or data.
    let rc = unsafe {
        libc::mount(
            from_c.as_ptr(),
            to_c.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(mount_error(std::io::Error::last_os_error())),
    }
}

/// Unmounts (lazily: a process inside keeps its namespace until it ends) and deletes the
/// file that holds a namespace.
pub fn remove(path: &Path) -> std::io::Result<()> {
    let c = c_path(path)?;
    // SAFETY: a NUL-terminated path valid for the call.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = std::io::Error::last_os_error();
        // EINVAL: nothing is mounted there. EPERM: this user cannot unmount, so it could
        // not have mounted one either (each user's runtime directory is its own). Either
        // way only the file is left to delete.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EPERM)) {
            return Err(e);
        }
    }
    std::fs::remove_file(path)
}

/// The namespaces in `dir` whose process is gone, each removed, with the outcome.
pub fn remove_stale(dir: &Path) -> Vec<(PathBuf, std::io::Result<()>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let mut parts = name.split('-').map(str::parse::<u64>);
            match (parts.next(), parts.next()) {
                (Some(Ok(pid)), Some(Ok(start))) => u32::try_from(pid)
                    .map_or(true, |pid| crate::registry::start_time(pid) != Some(start)),
                _ => false,
            }
        })
        .map(|path| {
            let result = remove(&path);
            (path, result)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn a_namespace_is_held_by_its_file_and_gone_when_dropped() {
        if !is_root() {
            eprintln!("skipped: making a network namespace needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ns = Namespace::create(dir.path()).unwrap();
        let inode = |fd: BorrowedFd| {
            let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            std::fs::metadata(path)
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .unwrap()
        };
        let host = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
        assert_ne!(inode(ns.fd()), std::os::unix::fs::MetadataExt::ino(&host));
        // A socket opened inside works on the namespace's links: a fresh loopback.
        let lo = ns
            .enter(|| super::super::netlink::Socket::open().and_then(|mut s| s.index("lo")))
            .unwrap()
            .unwrap();
        assert_eq!(lo, 1);
        let path = ns.path().to_owned();
        drop(ns);
        assert!(!path.exists());
    }

    #[test]
    fn a_namespace_that_cannot_be_made_leaves_no_file() {
        if is_root() {
            // Root can make one; the refusal is a user's.
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Namespace::create(dir.path()),
            Err(Error::Unshare(_))
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn only_a_gone_processs_namespace_file_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let (pid, start) = owner().unwrap();
        let live = dir.path().join(format!("{pid}-{start}-0"));
        let gone = dir.path().join(format!("{pid}-{}-0", start + 1));
        let other = dir.path().join("notes");
        for f in [&live, &gone, &other] {
            std::fs::write(f, "").unwrap();
        }
        let removed = remove_stale(dir.path());
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].0, gone);
        assert!(removed[0].1.is_ok());
        assert!(live.exists() && other.exists() && !gone.exists());
    }
}
