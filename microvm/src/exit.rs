//! VM exits: a plain function from an exit to what the vCPU loop does next, so it can be
//! fed synthetic exits in tests. Every exit is counted by kind: each one is the guest
//! reaching into the host.

use crate::bus::{Action, Buses, MmioPolicy};

/// An exit, in the monitor's own terms (decoupled from the KVM crate's borrowed type).
#[derive(Debug)]
pub enum Exit<'a> {
    /// The guest wrote to an I/O port.
    IoOut {
        /// Port.
        port: u16,
        /// Bytes written.
        data: &'a [u8],
    },
    /// The guest read an I/O port.
    IoIn {
        /// Port.
        port: u16,
        /// Where the answer goes.
        data: &'a mut [u8],
    },
    /// The guest read guest-physical memory that is not RAM.
    MmioRead {
        /// Guest-physical address.
        address: u64,
        /// Where the answer goes.
        data: &'a mut [u8],
    },
    /// The guest wrote guest-physical memory that is not RAM.
    MmioWrite {
        /// Guest-physical address.
        address: u64,
        /// Bytes written.
        data: &'a [u8],
    },
    /// HLT.
    Hlt,
    /// The vCPU shut down: a triple fault.
    Shutdown,
    /// KVM could not enter the guest: the hardware's entry failure reason, and the CPU.
    FailEntry(u64, u32),
    /// KVM failed internally: its suberror and the data it gave (on software KVM often an
    /// instruction it cannot emulate).
    InternalError {
        /// `KVM_INTERNAL_ERROR_*`.
        suberror: u32,
        /// Up to 16 words of detail, as KVM gave them.
        data: Vec<u64>,
    },
    /// An exit the monitor does not handle: its name, and KVM's exit reason number.
    Other(&'static str, u32),
}

/// What a `KVM_INTERNAL_ERROR_*` suberror means.
pub fn internal_error_name(suberror: u32) -> &'static str {
    match suberror {
        1 => "an instruction KVM could not emulate",
        2 => "a fault while delivering an event (an exception within an exception)",
        3 => "a failed delivery of an event to the guest",
        4 => "an exit the hardware gave and KVM does not know",
        _ => "an unknown internal error",
    }
}

/// KVM's exit in the monitor's terms, the same for micro and Linux guests; `None` for
/// exits that need nothing done and are not counted (a signal or an open interrupt
/// window: the vCPU simply runs again).
pub fn translate(exit: kvm_ioctls::VcpuExit<'_>) -> Option<Exit<'_>> {
    use kvm_ioctls::VcpuExit;
    Some(match exit {
        VcpuExit::IoOut(port, data) => Exit::IoOut { port, data },
        VcpuExit::IoIn(port, data) => Exit::IoIn { port, data },
        VcpuExit::MmioRead(address, data) => Exit::MmioRead { address, data },
        VcpuExit::MmioWrite(address, data) => Exit::MmioWrite { address, data },
        VcpuExit::Hlt => Exit::Hlt,
        VcpuExit::Shutdown => Exit::Shutdown,
        VcpuExit::FailEntry(reason, cpu) => Exit::FailEntry(reason, cpu),
        // Its detail is in the vCPU's run structure: the caller reads it.
        VcpuExit::InternalError => Exit::InternalError {
            suberror: 0,
            data: Vec::new(),
        },
        VcpuExit::Intr | VcpuExit::IrqWindowOpen => return None,
        VcpuExit::SystemEvent(kind, _) => Exit::Other("system event", kind),
        VcpuExit::Exception => Exit::Other("exception", kvm_bindings::KVM_EXIT_EXCEPTION),
        VcpuExit::Debug(_) => Exit::Other("debug", kvm_bindings::KVM_EXIT_DEBUG),
        VcpuExit::Unsupported(reason) => Exit::Other("unsupported", reason),
        _ => Exit::Other("unknown", 0),
    })
}

/// What the vCPU loop does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Run the guest again.
    Continue,
    /// The guest halted with interrupts off: a micro guest's normal end.
    Halted,
    /// The guest asked for a reset (i8042): the machine's clean end.
    Reset,
    /// The guest failed; why.
    Failed(String),
}

/// Exits by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExitCounts {
    /// Port writes.
    pub io_out: u64,
    /// Port reads.
    pub io_in: u64,
    /// Port or MMIO accesses no device answered (writes ignored, reads all ones).
    pub io_unhandled: u64,
    /// MMIO accesses.
    pub mmio: u64,
    /// HLT.
    pub hlt: u64,
    /// Shutdowns (triple faults).
    pub shutdown: u64,
    /// Everything else.
    pub other: u64,
}

impl ExitCounts {
    /// Every exit.
    pub fn total(&self) -> u64 {
        self.io_out + self.io_in + self.mmio + self.hlt + self.shutdown + self.other
    }

    /// (name, count) pairs, for results.
    pub fn pairs(&self) -> [(&'static str, u64); 7] {
        [
            ("exits_io_out", self.io_out),
            ("exits_io_in", self.io_in),
            ("exits_io_unhandled", self.io_unhandled),
            ("exits_mmio", self.mmio),
            ("exits_hlt", self.hlt),
            ("exits_shutdown", self.shutdown),
            ("exits_other", self.other),
        ]
    }
}

/// Handles one exit.
pub fn handle(exit: Exit<'_>, buses: &mut Buses, counts: &mut ExitCounts) -> Outcome {
    match exit {
        Exit::IoOut { port, data } => {
            counts.io_out += 1;
            match buses.pio.write(u64::from(port), data) {
                Some(Action::Shutdown) => Outcome::Reset,
                Some(Action::None) => Outcome::Continue,
                None => {
                    counts.io_unhandled += 1;
                    Outcome::Continue
                }
            }
        }
        Exit::IoIn { port, data } => {
            counts.io_in += 1;
            if !buses.pio.read(u64::from(port), data) {
                counts.io_unhandled += 1;
            }
            Outcome::Continue
        }
        Exit::MmioRead { address, data } => {
            counts.mmio += 1;
            if buses.mmio.read(address, data) {
                Outcome::Continue
            } else {
                counts.io_unhandled += 1;
                nothing_at(address, buses.mmio_policy)
            }
        }
        Exit::MmioWrite { address, data } => {
            counts.mmio += 1;
            match buses.mmio.write(address, data) {
                Some(Action::None) => Outcome::Continue,
                Some(Action::Shutdown) => Outcome::Reset,
                None => {
                    counts.io_unhandled += 1;
                    nothing_at(address, buses.mmio_policy)
                }
            }
        }
        Exit::Hlt => {
            counts.hlt += 1;
            Outcome::Halted
        }
        Exit::Shutdown => {
            counts.shutdown += 1;
            Outcome::Failed("the guest triple-faulted (shutdown exit)".to_owned())
        }
        Exit::FailEntry(reason, cpu) => {
            counts.other += 1;
            Outcome::Failed(format!(
                "KVM could not enter the guest: hardware entry failure reason {reason:#x} \
                 on host CPU {cpu} (a VMX/SVM entry check the vCPU's state failed)"
            ))
        }
        Exit::InternalError { suberror, data } => {
            counts.other += 1;
            let words: Vec<String> = data.iter().map(|w| format!("{w:#x}")).collect();
            Outcome::Failed(format!(
                "KVM internal error {suberror} ({}), data [{}]",
                internal_error_name(suberror),
                words.join(", ")
            ))
        }
        Exit::Other(name, reason) => {
            counts.other += 1;
            Outcome::Failed(format!("unhandled exit: {name} (KVM exit reason {reason})"))
        }
    }
}

fn nothing_at(address: u64, policy: MmioPolicy) -> Outcome {
    match policy {
        MmioPolicy::Fail => Outcome::Failed(format!(
            "MMIO access to {address:#x}, where no memory or device is"
        )),
        MmioPolicy::Ignore => Outcome::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{marker::Marker, shutdown::I8042};
    use crate::layout::{I8042_COMMAND_PORT, I8042_RESET, MARKER_PORT};

    fn bus() -> (
        Buses,
        std::sync::Arc<std::sync::Mutex<crate::devices::marker::Markers>>,
    ) {
        let mut buses = Buses::default();
        let (marker, seen) = Marker::new();
        buses
            .pio
            .register(u64::from(MARKER_PORT), 1, Box::new(marker))
            .unwrap();
        buses
            .pio
            .register(u64::from(I8042_COMMAND_PORT), 1, Box::new(I8042))
            .unwrap();
        let (mmio_marker, _) = Marker::new();
        buses
            .mmio
            .register(0xd000_0000, 1, Box::new(mmio_marker))
            .unwrap();
        (buses, seen)
    }

    #[test]
    fn synthetic_exits_map_to_outcomes_and_counts() {
        let (mut bus, seen) = bus();
        let mut counts = ExitCounts::default();
        let out = handle(
            Exit::IoOut {
                port: MARKER_PORT,
                data: &[1],
            },
            &mut bus,
            &mut counts,
        );
        assert_eq!(out, Outcome::Continue);
        assert_eq!(seen.lock().unwrap().stamps[0].0, 1);
        let mut data = [0u8; 1];
        assert_eq!(
            handle(
                Exit::IoIn {
                    port: 0x1234,
                    data: &mut data
                },
                &mut bus,
                &mut counts
            ),
            Outcome::Continue
        );
        assert_eq!(data, [0xff]);
        assert_eq!(handle(Exit::Hlt, &mut bus, &mut counts), Outcome::Halted);
        let reset = handle(
            Exit::IoOut {
                port: I8042_COMMAND_PORT,
                data: &[I8042_RESET],
            },
            &mut bus,
            &mut counts,
        );
        assert_eq!(reset, Outcome::Reset);
        assert!(
            matches!(handle(Exit::Shutdown, &mut bus, &mut counts), Outcome::Failed(r) if r.contains("triple"))
        );
        let marked = handle(
            Exit::MmioWrite {
                address: 0xd000_0000,
                data: &[2],
            },
            &mut bus,
            &mut counts,
        );
        assert_eq!(marked, Outcome::Continue);
        assert!(
            matches!(handle(Exit::MmioWrite { address: 0xe000_0000, data: &[1] }, &mut bus, &mut counts), Outcome::Failed(r) if r.contains("0xe0000000"))
        );
        assert_eq!(
            counts,
            ExitCounts {
                io_out: 2,
                io_in: 1,
                io_unhandled: 2,
                mmio: 2,
                hlt: 1,
                shutdown: 1,
                other: 0
            }
        );
        assert_eq!(counts.total(), 7);
    }

    #[test]
    fn unclaimed_mmio_is_ignored_when_the_policy_says_so() {
        let (mut bus, _) = bus();
        bus.mmio_policy = MmioPolicy::Ignore;
        let mut counts = ExitCounts::default();
        let mut data = [0u8; 4];
        let read = Exit::MmioRead {
            address: 0xfed0_0000,
            data: &mut data,
        };
        assert_eq!(handle(read, &mut bus, &mut counts), Outcome::Continue);
        assert_eq!(data, [0xff; 4]);
        let write = Exit::MmioWrite {
            address: 0xfed0_0000,
            data: &[1],
        };
        assert_eq!(handle(write, &mut bus, &mut counts), Outcome::Continue);
        assert_eq!((counts.mmio, counts.io_unhandled), (2, 2));
    }
}
