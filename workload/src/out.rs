//! The open record channel.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

use workload::channel::{self, Channel};
use workload::record::Record;

/// Errors while opening the record channel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `VCBENCH_CHANNEL` does not parse.
    #[error(transparent)]
    Channel(#[from] channel::Error),
    /// The descriptor named by `fd:N` is not open.
    #[error("record channel fd:{0} is not an open file descriptor")]
    FdNotOpen(i32),
    /// The channel could not be opened or duplicated.
    #[error("cannot open record channel {channel}")]
    Open {
        /// The channel.
        channel: Channel,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where records go.
pub struct Output {
    file: File,
}

impl Output {
    /// Opens the channel named by `VCBENCH_CHANNEL` (standard output if unset).
    ///
    /// As PID 1 a device path may not exist yet: `mount_first`, when given, mounts the
    /// pseudo file systems, and the open is tried again.
    pub fn open_from_env(mount_first: Option<fn()>) -> Result<Self, Error> {
        let channel: Channel = std::env::var(channel::ENV).unwrap_or_default().parse()?;
        match (Self::open(&channel), mount_first) {
            (Err(Error::Open { .. }), Some(mount)) if matches!(channel, Channel::Path(_)) => {
                mount();
                Self::open(&channel)
            }
            (other, _) => other,
        }
    }

    fn open(channel: &Channel) -> Result<Self, Error> {
        let open_error = |source| Error::Open {
            channel: channel.clone(),
            source,
        };
        let file = match channel {
            Channel::Stdout => dup(std::io::stdout().as_fd()).map_err(open_error)?,
            Channel::Stderr => dup(std::io::stderr().as_fd()).map_err(open_error)?,
            Channel::Fd(fd) => {
                // SAFETY: F_GETFD only reads the descriptor flags; it is defined for any
                // integer and fails with EBADF when the descriptor is not open.
                if unsafe { libc::fcntl(*fd, libc::F_GETFD) } < 0 {
                    return Err(Error::FdNotOpen(*fd));
                }
                // SAFETY: the descriptor was just checked to be open, and nothing in this
                // single-threaded program closes it while the borrow (this statement) lasts.
                let borrowed = unsafe { BorrowedFd::borrow_raw(*fd) };
                dup(borrowed).map_err(open_error)?
            }
            Channel::Path(path) => OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(path)
                .map_err(open_error)?,
        };
        Ok(Output { file })
    }

    /// Writes one record in a single write; a failure is reported on standard error only,
    /// since a host that stopped listening cannot be told anything.
    pub fn emit(&mut self, record: &Record) {
        if let Err(e) = self.file.write_all(record.to_line().as_bytes()) {
            eprintln!("workload: cannot write record: {e}");
        }
    }
}

fn dup(fd: BorrowedFd<'_>) -> std::io::Result<File> {
    fd.try_clone_to_owned().map(File::from)
}
