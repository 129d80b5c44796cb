//! The i8042 controller's reset line: the guest's way to end the machine cleanly.

use crate::bus::{Action, BusDevice};
use crate::layout::I8042_RESET;

/// Answers the i8042 command port: 0xFE resets (here: ends) the VM.
#[derive(Debug, Default)]
pub struct I8042;

impl BusDevice for I8042 {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Status: output buffer empty, input buffer empty.
        data.fill(0);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) -> Action {
        if data.first() == Some(&I8042_RESET) {
            Action::Shutdown
        } else {
            Action::None
        }
    }
}
