//! Where the workload writes its records, as chosen by the host.
//!
//! The host names the channel in the `VCBENCH_CHANNEL` environment variable:
//!
//! | value | meaning |
//! | --- | --- |
//! | `stdout` (default) | standard output |
//! | `stderr` | standard error |
//! | `fd:N` | an inherited file descriptor, e.g. the write end of a pipe |
//! | `path:/dev/ttyS0` | a file or device opened for writing, e.g. a serial console |
//!
//! Each record is written with a single `write(2)` so records from one process never
//! interleave on a pipe (they are shorter than `PIPE_BUF`).

use std::fmt;
use std::str::FromStr;

/// The environment variable that names the channel.
pub const ENV: &str = "VCBENCH_CHANNEL";

/// Errors in a channel description.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The text is none of the known forms.
    #[error("unknown record channel {0:?}: expected stdout, stderr, fd:N or path:FILE")]
    Unknown(String),
    /// `fd:` was not followed by a non-negative number.
    #[error("bad file descriptor in record channel {0:?}")]
    BadFd(String),
}

/// A record channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// An inherited file descriptor.
    Fd(i32),
    /// A file or device path.
    Path(String),
}

impl FromStr for Channel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "stdout" | "" => Ok(Channel::Stdout),
            "stderr" => Ok(Channel::Stderr),
            _ => {
                if let Some(fd) = s.strip_prefix("fd:") {
                    fd.parse::<i32>()
                        .ok()
                        .filter(|fd| *fd >= 0)
                        .map(Channel::Fd)
                        .ok_or_else(|| Error::BadFd(s.to_owned()))
                } else if let Some(path) = s.strip_prefix("path:").filter(|p| !p.is_empty()) {
                    Ok(Channel::Path(path.to_owned()))
                } else {
                    Err(Error::Unknown(s.to_owned()))
                }
            }
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Stdout => f.write_str("stdout"),
            Channel::Stderr => f.write_str("stderr"),
            Channel::Fd(fd) => write!(f, "fd:{fd}"),
            Channel::Path(p) => write!(f, "path:{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_parse_and_print() {
        for text in ["stdout", "stderr", "fd:3", "path:/dev/ttyS0"] {
            let channel: Channel = text.parse().unwrap();
            assert_eq!(channel.to_string(), text);
        }
        assert_eq!("".parse::<Channel>(), Ok(Channel::Stdout));
    }

    #[test]
    fn bad_channels_are_rejected() {
        assert!(matches!("fd:-1".parse::<Channel>(), Err(Error::BadFd(_))));
        assert!(matches!("fd:x".parse::<Channel>(), Err(Error::BadFd(_))));
        assert!(matches!("path:".parse::<Channel>(), Err(Error::Unknown(_))));
        assert!(matches!(
            "serial".parse::<Channel>(),
            Err(Error::Unknown(_))
        ));
    }
}
