//! Buses: devices register the port-I/O ports or guest-physical MMIO ranges they answer,
//! and the exit handler looks the address up. No port or address appears in the vCPU loop.

use std::fmt;

/// What a device asks of the machine after an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Carry on.
    None,
    /// The guest asked to power off or reset.
    Shutdown,
}

/// A device on a bus.
pub trait BusDevice: Send {
    /// A guest read of `data.len()` bytes at `offset` from the device's first address.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// A guest write at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]) -> Action;
}

/// Errors registering a device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The range is already taken.
    #[error("addresses {base:#x}..{end:#x} overlap a registered device")]
    Overlap {
        /// First address.
        base: u64,
        /// One past the last.
        end: u128,
    },
}

/// A bus: port I/O (addresses are ports) or MMIO (guest-physical addresses).
#[derive(Default)]
pub struct Bus {
    devices: Vec<(u64, u64, Box<dyn BusDevice>)>,
}

/// What an MMIO access that no device claims means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MmioPolicy {
    /// The guest failed: a micro guest that touches such an address has a bug.
    #[default]
    Fail,
    /// Reads give all ones and writes are dropped, as on a PC's bus (a kernel probes).
    Ignore,
}

/// The machine's two buses.
#[derive(Debug, Default)]
pub struct Buses {
    /// Port I/O.
    pub pio: Bus,
    /// Memory-mapped I/O.
    pub mmio: Bus,
    /// What an unclaimed MMIO access means.
    pub mmio_policy: MmioPolicy,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<String> = self
            .devices
            .iter()
            .map(|(b, n, _)| format!("{b:#x}+{n}"))
            .collect();
        f.debug_struct("Bus").field("devices", &ranges).finish()
    }
}

impl Bus {
    /// Registers `device` on addresses `base..base + count`.
    pub fn register(
        &mut self,
        base: u64,
        count: u64,
        device: Box<dyn BusDevice>,
    ) -> Result<(), Error> {
        let end = u128::from(base) + u128::from(count);
        let overlaps = self.devices.iter().any(|(b, n, _)| {
            u128::from(base) < u128::from(*b) + u128::from(*n) && u128::from(*b) < end
        });
        if overlaps {
            return Err(Error::Overlap { base, end });
        }
        self.devices.push((base, count, device));
        Ok(())
    }

    fn find(&mut self, address: u64) -> Option<(u64, &mut Box<dyn BusDevice>)> {
        self.devices
            .iter_mut()
            .find(|(b, n, _)| {
                address >= *b && u128::from(address) < u128::from(*b) + u128::from(*n)
            })
            .map(|(b, _, d)| (address - *b, d))
    }

    /// A read; false when no device answers the address (the data reads as all ones).
    pub fn read(&mut self, address: u64, data: &mut [u8]) -> bool {
        match self.find(address) {
            Some((offset, device)) => {
                device.read(offset, data);
                true
            }
            None => {
                data.fill(0xff);
                false
            }
        }
    }

    /// A write; `None` when no device answers the address.
    pub fn write(&mut self, address: u64, data: &[u8]) -> Option<Action> {
        self.find(address)
            .map(|(offset, device)| device.write(offset, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Probe(Vec<(u64, u8)>);
    impl BusDevice for Probe {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(u8::try_from(offset).unwrap_or(0));
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> Action {
            self.0.push((offset, data[0]));
            Action::None
        }
    }

    #[test]
    fn ports_route_to_their_device_with_offsets() {
        let mut bus = Bus::default();
        bus.register(0x3f8, 8, Box::new(Probe(Vec::new()))).unwrap();
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fa, &mut b));
        assert_eq!(b, [2]);
        assert_eq!(bus.write(0x3f8, &[7]), Some(Action::None));
        assert!(!bus.read(0x400, &mut b));
        assert_eq!(b, [0xff]);
        assert_eq!(bus.write(0x3f7, &[1]), None);
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let mut bus = Bus::default();
        bus.register(0x60, 5, Box::new(Probe(Vec::new()))).unwrap();
        assert!(bus.register(0x64, 1, Box::new(Probe(Vec::new()))).is_err());
        assert!(bus.register(0x65, 1, Box::new(Probe(Vec::new()))).is_ok());
    }
}
