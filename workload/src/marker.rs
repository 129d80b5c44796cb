//! The host's marker port, for a workload that is the init of a microVM.
//!
//! When the host sets `VCBENCH_MARKER` to an I/O port (`0x80`), the workload, as PID 1,
//! asks the kernel for access to that port (ioperm(2)) and writes one byte code to it at
//! two moments; the monitor stamps each write with the host's clock when it traps:
//!
//! | code   | when                                                              |
//! | ------ | ----------------------------------------------------------------- |
//! | `0x11` | [`INIT`]: the very first thing init does ("guest init reached")    |
//! | `0x12` | [`POWEROFF`]: just before init asks the kernel to power off        |
//!
//! Without the variable, or outside a VM, nothing is written.

/// The environment variable naming the marker port.
pub const ENV: &str = "VCBENCH_MARKER";
/// Code written when init starts.
pub const INIT: u8 = 0x11;
/// Code written just before power-off.
pub const POWEROFF: u8 = 0x12;

/// Errors in the marker's setup.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The variable is not a port number.
    #[error("{ENV}={0:?} is not an I/O port number (e.g. 0x80)")]
    BadPort(String),
    /// The kernel refused access to the port.
    #[error("ioperm({port:#x}) failed: {reason}")]
    Denied {
        /// The port.
        port: u16,
        /// errno's text.
        reason: String,
    },
}

/// Parses a port number: `0x80` or `128`.
pub fn parse_port(text: &str) -> Result<u16, Error> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| Error::BadPort(text.to_owned()))
}

/// An I/O port this process may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerPort(u16);

impl MarkerPort {
    /// The port named by [`ENV`], opened; `None` when the variable is not set.
    pub fn from_env() -> Option<Result<Self, Error>> {
        let text = std::env::var(ENV).ok()?;
        Some(parse_port(&text).and_then(Self::open))
    }

    /// Asks the kernel for access to `port`.
    pub fn open(port: u16) -> Result<Self, Error> {
        // SAFETY: ioperm only changes this thread's I/O permission bitmap.
        let rc = unsafe { libc::ioperm(libc::c_ulong::from(port), 1, 1) };
        if rc != 0 {
            return Err(Error::Denied {
                port,
                reason: std::io::Error::last_os_error().to_string(),
            });
        }
        Ok(MarkerPort(port))
    }

    /// Writes `code` to the port.
    pub fn write(self, code: u8) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `open` obtained access to this one port with ioperm, so the instruction
        // cannot fault; an `out` touches no memory, stack or flags.
        unsafe {
            std::arch::asm!("out dx, al", in("dx") self.0, in("al") code, options(nomem, nostack, preserves_flags));
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = code;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_in_hex_and_decimal() {
        assert_eq!(parse_port("0x80"), Ok(0x80));
        assert_eq!(parse_port("128"), Ok(128));
        assert!(matches!(parse_port("port"), Err(Error::BadPort(_))));
        assert!(matches!(parse_port("0x10000"), Err(Error::BadPort(_))));
    }
}
