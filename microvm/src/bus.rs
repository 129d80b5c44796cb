//! The port-I/O bus: devices register the ports they answer, the exit handler looks the
//! port up. No port number appears in the vCPU loop.

use std::fmt;

/// What a device asks of the machine after an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Carry on.
    None,
    /// The guest asked to power off or reset.
    Shutdown,
}

/// A device on the port-I/O bus.
pub trait PioDevice: Send {
    /// A guest read of `data.len()` bytes at `offset` from the device's first port.
    fn read(&mut self, offset: u16, data: &mut [u8]);
    /// A guest write at `offset`.
    fn write(&mut self, offset: u16, data: &[u8]) -> Action;
}

/// Errors registering a device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The ports are already taken.
    #[error("ports {base:#x}..{end:#x} overlap a registered device")]
    Overlap {
        /// First port.
        base: u16,
        /// One past the last.
        end: u32,
    },
}

/// The port-I/O bus.
#[derive(Default)]
pub struct PioBus {
    devices: Vec<(u16, u16, Box<dyn PioDevice>)>,
}

impl fmt::Debug for PioBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<String> = self
            .devices
            .iter()
            .map(|(b, n, _)| format!("{b:#x}+{n}"))
            .collect();
        f.debug_struct("PioBus").field("devices", &ranges).finish()
    }
}

impl PioBus {
    /// Registers `device` on ports `base..base + count`.
    pub fn register(
        &mut self,
        base: u16,
        count: u16,
        device: Box<dyn PioDevice>,
    ) -> Result<(), Error> {
        let end = u32::from(base) + u32::from(count);
        let overlaps = self.devices.iter().any(|(b, n, _)| {
            u32::from(base) < u32::from(*b) + u32::from(*n) && u32::from(*b) < end
        });
        if overlaps {
            return Err(Error::Overlap { base, end });
        }
        self.devices.push((base, count, device));
        Ok(())
    }

    fn find(&mut self, port: u16) -> Option<(u16, &mut Box<dyn PioDevice>)> {
        self.devices
            .iter_mut()
            .find(|(b, n, _)| port >= *b && u32::from(port) < u32::from(*b) + u32::from(*n))
            .map(|(b, _, d)| (port - *b, d))
    }

    /// A read; false when no device answers the port (the data reads as all ones).
    pub fn read(&mut self, port: u16, data: &mut [u8]) -> bool {
        match self.find(port) {
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

    /// A write; `None` when no device answers the port.
    pub fn write(&mut self, port: u16, data: &[u8]) -> Option<Action> {
        self.find(port)
            .map(|(offset, device)| device.write(offset, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Probe(Vec<(u16, u8)>);
    impl PioDevice for Probe {
        fn read(&mut self, offset: u16, data: &mut [u8]) {
            data.fill(u8::try_from(offset).unwrap_or(0));
        }
        fn write(&mut self, offset: u16, data: &[u8]) -> Action {
            self.0.push((offset, data[0]));
            Action::None
        }
    }

    #[test]
    fn ports_route_to_their_device_with_offsets() {
        let mut bus = PioBus::default();
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
        let mut bus = PioBus::default();
        bus.register(0x60, 5, Box::new(Probe(Vec::new()))).unwrap();
        assert!(bus.register(0x64, 1, Box::new(Probe(Vec::new()))).is_err());
        assert!(bus.register(0x65, 1, Box::new(Probe(Vec::new()))).is_ok());
    }
}
