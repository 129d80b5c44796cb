//! The devices of a microVM: marker port, serial console, i8042 reset.

pub mod marker;
pub mod serial;
pub mod shutdown;
