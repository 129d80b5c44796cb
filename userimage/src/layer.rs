//! Applying one tar stream (a root file system tarball, or one OCI layer) to a directory,
//! safely: no entry may reach outside the directory, by its name, through a symbolic link
//! on its way, or as a link pointing out of it.
//!
//! Rules, checked on every entry before anything is written:
//! - a name must be relative and must not contain `..` (`./a/b` and `a/b` are the same);
//! - every directory on the way to an entry must be a real directory in the tree, never a
//!   symbolic link (so nothing is ever written through a link);
//! - a symbolic link's relative target must not climb above the root (an absolute target is
//!   kept: it is resolved inside the image by whatever runs it);
//! - a hard link must name an existing file in the tree, not a directory;
//! - device nodes, FIFOs and sockets are skipped, each with its reason (the sandboxes
//!   mount their own `/dev`); sparse and unknown entries are refused.
//!
//! With whiteouts on (OCI layers), `.wh.NAME` removes `NAME` from the layers below and
//! `.wh..wh..opq` empties its directory of what the layers below put there.
//!
//! Directory modes are applied at the end ([`Tree::finish`]), so a read-only directory can
//! still be filled while unpacking. Owners are kept when running as root, modification
//! times always.

use std::collections::HashSet;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The name of an opaque whiteout.
const OPAQUE: &str = ".wh..wh..opq";
/// The prefix of a whiteout.
const WHITEOUT: &str = ".wh.";

/// Errors while applying a layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream is not a tar archive, or is damaged.
    #[error("not a readable tar archive: {0}")]
    Tar(#[source] std::io::Error),
    /// The archive ends without its end-of-archive blocks: it was cut short.
    #[error("the archive is truncated: it ends without its end-of-archive marker")]
    Truncated,
    /// An entry's name is absolute.
    #[error("entry '{0}' has an absolute path")]
    Absolute(String),
    /// An entry's name contains `..`.
    #[error("entry '{0}' contains '..'")]
    DotDot(String),
    /// A directory on the way to an entry is a symbolic link.
    #[error("entry '{entry}' would be written through the symbolic link '{link}'")]
    ThroughSymlink {
        /// The entry.
        entry: String,
        /// The link on its way.
        link: String,
    },
    /// A directory on the way to an entry is a file.
    #[error("entry '{entry}' is below '{parent}', which is not a directory")]
    NotADirectory {
        /// The entry.
        entry: String,
        /// The file on its way.
        parent: String,
    },
    /// A symbolic link's relative target climbs above the root.
    #[error("symbolic link '{entry}' points out of the root ('{target}')")]
    SymlinkEscapes {
        /// The link.
        entry: String,
        /// Its target.
        target: String,
    },
    /// A hard link's target is outside the tree, missing or a directory.
    #[error("hard link '{entry}' points at '{target}': {why}")]
    BadHardlink {
        /// The link.
        entry: String,
        /// Its target.
        target: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// An entry of a kind that cannot be unpacked safely.
    #[error("entry '{entry}' is a {kind} entry, which is not supported")]
    Unsupported {
        /// The entry.
        entry: String,
        /// Its kind.
        kind: String,
    },
    /// A file could not be written.
    #[error("cannot write '{entry}'")]
    Write {
        /// The entry.
        entry: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// An entry left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    /// The entry's name in the archive.
    pub path: String,
    /// Why it was left out.
    pub reason: String,
}

/// A directory being filled from one or more layers.
pub struct Tree {
    root: PathBuf,
    /// Directories and their modes and times, applied at the end.
    directories: Vec<(PathBuf, u32, u64)>,
    /// Entries left out.
    skipped: Vec<Skipped>,
    /// Whether owners are kept (running as root).
    owners: bool,
}

impl Tree {
    /// A tree rooted at `root`, an existing empty directory.
    pub fn new(root: &Path) -> Tree {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let owners = unsafe { libc::geteuid() } == 0;
        Tree {
            root: root.to_owned(),
            directories: Vec::new(),
            skipped: Vec::new(),
            owners,
        }
    }

    /// Applies one tar stream; `whiteouts` turns on the OCI whiteout files.
    pub fn apply<R: Read>(&mut self, input: R, whiteouts: bool) -> Result<(), Error> {
        let mut input = EndReader {
            inner: input,
            ended: false,
        };
        let mut archive = tar::Archive::new(&mut input);
        // Paths written by this layer (with their parents), which an opaque whiteout keeps.
        let mut written: HashSet<PathBuf> = HashSet::new();
        for entry in archive.entries().map_err(Error::Tar)? {
            let entry = entry.map_err(Error::Tar)?;
            self.entry(entry, whiteouts, &mut written)?;
        }
        // The tar reader stops at the first zero block; reaching the end of the input first
        // means that block was never there (an empty input included).
        if input.ended {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Applies the directory modes and times; returns what was left out.
    pub fn finish(mut self) -> Result<Vec<Skipped>, Error> {
        // Deepest first, so a directory's time is set after its children's changes.
        self.directories
            .sort_by_key(|(path, _, _)| std::cmp::Reverse(path.components().count()));
        for (path, mode, mtime) in &self.directories {
            let full = self.root.join(path);
            let write_error = |source| Error::Write {
                entry: path.display().to_string(),
                source,
            };
            match std::fs::symlink_metadata(&full) {
                Ok(meta) if meta.is_dir() => {}
                // Replaced or removed by a later layer.
                _ => continue,
            }
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode))
                .map_err(write_error)?;
            set_mtime(&full, *mtime).map_err(write_error)?;
        }
        Ok(self.skipped)
    }

    /// Applies one entry.
    fn entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        whiteouts: bool,
        written: &mut HashSet<PathBuf>,
    ) -> Result<(), Error> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let relative = normalise(Path::new(std::ffi::OsStr::from_bytes(&raw)), &name)?;
        let kind = entry.header().entry_type();
        if relative.as_os_str().is_empty() {
            // The root itself ("./"): its mode is the staging directory's.
            return Ok(());
        }
        let file_name = relative
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = relative.parent().unwrap_or(Path::new("")).to_owned();
        if whiteouts && file_name.starts_with(WHITEOUT) {
            self.parents(&parent, &name)?;
            if file_name == OPAQUE {
                return self.opaque(&parent, written, &name);
            }
            let hidden = parent.join(&file_name[WHITEOUT.len()..]);
            return remove(&self.root.join(&hidden)).map_err(|source| Error::Write {
                entry: name,
                source,
            });
        }
        self.parents(&parent, &name)?;
        let full = self.root.join(&relative);
        let write_error = |source| Error::Write {
            entry: name.clone(),
            source,
        };
        let header = entry.header();
        let mode = header.mode().map_err(Error::Tar)? & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let owner = (
            header.uid().unwrap_or(0) as libc::uid_t,
            header.gid().unwrap_or(0) as libc::gid_t,
        );
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous => {
                let existing = std::fs::symlink_metadata(&full);
                if existing.is_ok() {
                    remove(&full).map_err(write_error)?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&full)
                    .map_err(write_error)?;
                std::io::copy(&mut entry, &mut file).map_err(Error::Tar)?;
                drop(file);
                self.chown(&full, owner).map_err(write_error)?;
                std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode))
                    .map_err(write_error)?;
                set_mtime(&full, mtime).map_err(write_error)?;
            }
            T::Directory => {
                match std::fs::symlink_metadata(&full) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => {
                        remove(&full).map_err(write_error)?;
                        std::fs::create_dir(&full).map_err(write_error)?;
                    }
                    Err(_) => std::fs::create_dir(&full).map_err(write_error)?,
                }
                std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755 | mode))
                    .map_err(write_error)?;
                self.chown(&full, owner).map_err(write_error)?;
                self.directories.push((relative.clone(), mode, mtime));
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target = Path::new(std::ffi::OsStr::from_bytes(&target)).to_owned();
                if target.as_os_str().is_empty() || climbs_out(&parent, &target) {
                    return Err(Error::SymlinkEscapes {
                        entry: name,
                        target: target.display().to_string(),
                    });
                }
                if std::fs::symlink_metadata(&full).is_ok() {
                    remove(&full).map_err(write_error)?;
                }
                std::os::unix::fs::symlink(&target, &full).map_err(write_error)?;
                self.chown(&full, owner).map_err(write_error)?;
                set_mtime(&full, mtime).map_err(write_error)?;
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target_name = String::from_utf8_lossy(&target).into_owned();
                let bad = |why| Error::BadHardlink {
                    entry: name.clone(),
                    target: target_name.clone(),
                    why,
                };
                let target = normalise(Path::new(std::ffi::OsStr::from_bytes(&target)), &name)
                    .map_err(|_| bad("the target is not a relative path inside the root"))?;
                if target.as_os_str().is_empty() {
                    return Err(bad("the target is the root"));
                }
                let target_parent = target.parent().unwrap_or(Path::new(""));
                self.check_parents(target_parent, &name)
                    .map_err(|_| bad("the way to the target is not plain directories"))?;
                let target_full = self.root.join(&target);
                match std::fs::symlink_metadata(&target_full) {
                    Ok(meta) if meta.is_dir() => return Err(bad("the target is a directory")),
                    Ok(_) => {}
                    Err(_) => return Err(bad("the target does not exist")),
                }
                if target_full == full {
                    return Ok(());
                }
                if std::fs::symlink_metadata(&full).is_ok() {
                    remove(&full).map_err(write_error)?;
                }
                std::fs::hard_link(&target_full, &full).map_err(write_error)?;
            }
            T::Char | T::Block | T::Fifo => {
                let what = match kind {
                    T::Char => "a character device",
                    T::Block => "a block device",
                    _ => "a FIFO",
                };
                self.skipped.push(Skipped {
                    path: name,
                    reason: format!(
                        "{what}: not made in the cache; the sandboxes mount their own /dev"
                    ),
                });
                return Ok(());
            }
            T::XGlobalHeader => return Ok(()),
            other => {
                return Err(Error::Unsupported {
                    entry: name,
                    kind: format!("{other:?}"),
                })
            }
        }
        let mut path = relative;
        while written.insert(path.clone()) {
            if !path.pop() {
                break;
            }
        }
        Ok(())
    }

    /// Empties `dir` of what earlier layers put there (an opaque whiteout).
    fn opaque(&mut self, dir: &Path, written: &HashSet<PathBuf>, name: &str) -> Result<(), Error> {
        let full = self.root.join(dir);
        let write_error = |source| Error::Write {
            entry: name.to_owned(),
            source,
        };
        let entries = match std::fs::read_dir(&full) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(write_error(e)),
        };
        for child in entries {
            let child = child.map_err(write_error)?;
            let relative = dir.join(child.file_name());
            if !written.contains(&relative) {
                remove(&child.path()).map_err(write_error)?;
            }
        }
        Ok(())
    }

    /// Makes every directory on the way to `parent` (relative), refusing links and files.
    fn parents(&mut self, parent: &Path, entry: &str) -> Result<(), Error> {
        let mut path = self.root.clone();
        let mut relative = PathBuf::new();
        for part in parent.components() {
            path.push(part);
            relative.push(part);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::ThroughSymlink {
                        entry: entry.to_owned(),
                        link: relative.display().to_string(),
                    })
                }
                Ok(_) => {
                    return Err(Error::NotADirectory {
                        entry: entry.to_owned(),
                        parent: relative.display().to_string(),
                    })
                }
                Err(_) => {
                    std::fs::create_dir(&path).map_err(|source| Error::Write {
                        entry: entry.to_owned(),
                        source,
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Checks that every directory on the way to `parent` (relative) is a real directory.
    fn check_parents(&self, parent: &Path, entry: &str) -> Result<(), Error> {
        let mut path = self.root.clone();
        for part in parent.components() {
            path.push(part);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                _ => {
                    return Err(Error::NotADirectory {
                        entry: entry.to_owned(),
                        parent: path.display().to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Sets `path`'s owner (not following a link) when owners are kept.
    fn chown(&self, path: &Path, (uid, gid): (libc::uid_t, libc::gid_t)) -> std::io::Result<()> {
        if !self.owners {
            return Ok(());
        }
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
    }
}

/// `name` as a relative path of plain components, or why not.
pub(crate) fn normalise(path: &Path, name: &str) -> Result<PathBuf, Error> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::Normal(p) => out.push(p),
            Component::ParentDir => return Err(Error::DotDot(name.to_owned())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(Error::Absolute(name.to_owned()))
            }
        }
    }
    Ok(out)
}

/// Whether a link in `dir` (relative to the root) with the relative `target` climbs above
/// the root. An absolute target never does: it is the image's own root.
fn climbs_out(dir: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth = dir.components().count();
    for part in target.components() {
        match part {
            Component::ParentDir => {
                if depth == 0 {
                    return true;
                }
                depth -= 1;
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

/// Removes whatever is at `path` (a directory with its contents), if anything.
fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            // A read-only directory from an earlier layer must be writable to be emptied.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
            for child in std::fs::read_dir(path)? {
                remove(&child?.path())?;
            }
            std::fs::remove_dir(path)
        }
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets `path`'s modification (and access) time, not following a link.
fn set_mtime(path: &Path, seconds: u64) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let time = libc::timespec {
        tv_sec: libc::time_t::try_from(seconds).unwrap_or(libc::time_t::MAX),
        tv_nsec: 0,
    };
    let times = [time, time];
    // SAFETY: `c` is a NUL-terminated path that outlives the call, and `times` points at
    // the two timespecs utimensat reads.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A reader that notes whether the input ran out.
struct EndReader<R> {
    inner: R,
    ended: bool,
}

impl<R: Read> Read for EndReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended = true;
        }
        Ok(n)
    }
}
