//! What a microVM is built from: a [`Config`] as asked for, and the [`Valid`] one the
//! builder accepts, made by `Valid::try_from(&config)`. Every check that needs no KVM
//! happens here, before anything is created; the one that does (how many vCPUs this KVM
//! allows) is made by the builder with [`Error::TooManyVcpus`].

use std::time::Duration;

use crate::guest::Payload;
use crate::layout;

/// The most guest memory accepted, MiB (1 TiB).
pub const MAX_MEMORY_MIB: u64 = 1 << 20;

/// A configuration the monitor cannot build, naming the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer than one vCPU.
    #[error("a VM needs at least one vCPU, 0 were asked")]
    NoVcpus,
    /// More vCPUs than this KVM allows.
    #[error("{asked} vCPUs asked, this KVM allows {max}")]
    TooManyVcpus {
        /// vCPUs asked.
        asked: u8,
        /// KVM's limit.
        max: usize,
    },
    /// Too little memory for the payload and the touch area.
    #[error("{mib} MiB of guest memory is too little: at least {min} MiB", min = layout::MIN_MEMORY >> 20)]
    MemoryTooSmall {
        /// MiB asked.
        mib: u64,
    },
    /// More memory than the monitor accepts or this host can address.
    #[error("{mib} MiB of guest memory is more than {MAX_MEMORY_MIB} MiB")]
    MemoryTooLarge {
        /// MiB asked.
        mib: u64,
    },
    /// A payload that is empty or does not fit below the touch area.
    #[error("payload {name:?} is {len} bytes: it must be 1..={max} bytes", max = layout::PAYLOAD_MAX)]
    PayloadSize {
        /// The payload's name.
        name: String,
        /// Its size.
        len: usize,
    },
    /// A zero timeout would stop the guest before its first instruction.
    #[error("the guest's timeout is zero")]
    ZeroTimeout,
}

/// The devices besides the marker and the i8042 reset line, which every VM has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Devices {
    /// A 16550 serial console on COM1 with its output captured. Without it the console's
    /// ports answer nothing (writes are counted as unhandled port I/O).
    pub serial: bool,
}

impl Default for Devices {
    fn default() -> Self {
        Devices { serial: true }
    }
}

/// What to build and run, as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// vCPUs. The first runs the payload; the others are created and wait, as a real
    /// machine's application processors wait for their start-up IPI.
    pub vcpus: u8,
    /// Guest memory, MiB.
    pub memory_mib: u64,
    /// The guest.
    pub payload: Payload,
    /// Optional devices.
    pub devices: Devices,
    /// How long the guest may run before it is stopped.
    pub timeout: Duration,
}

impl Config {
    /// One vCPU, 128 MiB, every device, a 60 s timeout: the defaults for `payload`.
    pub fn new(payload: Payload) -> Self {
        Config {
            vcpus: 1,
            memory_mib: 128,
            payload,
            devices: Devices::default(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A checked [`Config`]: the only thing the builder takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    config: Config,
    memory_bytes: usize,
}

impl TryFrom<&Config> for Valid {
    type Error = Error;

    fn try_from(config: &Config) -> Result<Self, Error> {
        if config.vcpus == 0 {
            return Err(Error::NoVcpus);
        }
        let mib = config.memory_mib;
        if mib > MAX_MEMORY_MIB {
            return Err(Error::MemoryTooLarge { mib });
        }
        let memory_bytes = usize::try_from(mib << 20).map_err(|_| Error::MemoryTooLarge { mib })?;
        if (mib << 20) < layout::MIN_MEMORY {
            return Err(Error::MemoryTooSmall { mib });
        }
        let len = config.payload.code.len();
        if len == 0 || len > layout::PAYLOAD_MAX {
            return Err(Error::PayloadSize {
                name: config.payload.name.clone(),
                len,
            });
        }
        if config.timeout.is_zero() {
            return Err(Error::ZeroTimeout);
        }
        Ok(Valid {
            config: config.clone(),
            memory_bytes,
        })
    }
}

impl Valid {
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Guest memory, bytes (it fits the host's address space).
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest;

    #[test]
    fn a_sensible_config_is_valid() {
        let valid = Valid::try_from(&Config::new(guest::hello())).unwrap();
        assert_eq!(valid.memory_bytes(), 128 << 20);
        assert_eq!(valid.config().vcpus, 1);
    }

    #[test]
    fn each_bad_value_is_named() {
        let base = Config::new(guest::hello());
        let cases = [
            (
                Config {
                    vcpus: 0,
                    ..base.clone()
                },
                Error::NoVcpus,
            ),
            (
                Config {
                    memory_mib: 1,
                    ..base.clone()
                },
                Error::MemoryTooSmall { mib: 1 },
            ),
            (
                Config {
                    memory_mib: u64::MAX,
                    ..base.clone()
                },
                Error::MemoryTooLarge { mib: u64::MAX },
            ),
            (
                Config {
                    memory_mib: MAX_MEMORY_MIB + 1,
                    ..base.clone()
                },
                Error::MemoryTooLarge {
                    mib: MAX_MEMORY_MIB + 1,
                },
            ),
            (
                Config {
                    payload: guest::Payload {
                        code: vec![0x90; layout::PAYLOAD_MAX + 1],
                        ..guest::hello()
                    },
                    ..base.clone()
                },
                Error::PayloadSize {
                    name: "hello".into(),
                    len: layout::PAYLOAD_MAX + 1,
                },
            ),
            (
                Config {
                    payload: guest::Payload {
                        code: vec![],
                        ..guest::hello()
                    },
                    ..base.clone()
                },
                Error::PayloadSize {
                    name: "hello".into(),
                    len: 0,
                },
            ),
            (
                Config {
                    timeout: Duration::ZERO,
                    ..base.clone()
                },
                Error::ZeroTimeout,
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(Valid::try_from(&config), Err(expected));
        }
    }
}
