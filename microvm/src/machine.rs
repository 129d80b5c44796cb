//! The one VM setup path, shared by micro guests ([`crate::vm`]) and Linux guests
//! ([`crate::linux::machine`]): a [`Machine`] opens /dev/kvm and checks it, creates the VM
//! (with the in-kernel interrupt controllers and PIT when asked), maps guest memory and
//! registers it as KVM memory slots, and creates the vCPUs. It owns all of them, so guest
//! memory is unmapped only after every KVM object that can reach it is gone.
//!
//! Also here, because both kinds of guest use them alike: the devices every machine has
//! ([`buses`]), one entry into the guest with its exit handled ([`enter`]), how a guest
//! ended ([`End`]) and what a run observed ([`Report`]). What differs (the boot protocol,
//! CPUID, MSRs, the MP table, entry registers, one thread or one per vCPU) stays with the
//! callers.

use std::sync::{Arc, Mutex};

use kvm_bindings::{kvm_pit_config, kvm_regs, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, IoEventAddress, Kvm, NoDatamatch, VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::bus::{BusDevice, Buses, MmioPolicy};
use crate::devices::marker::{Marker, Markers};
use crate::devices::serial::{Capture, IrqLine};
use crate::devices::shutdown::I8042;
use crate::exit::{self, Exit, ExitCounts, Outcome};
use crate::guest::Mode;
use crate::layout;
use crate::memory::GuestRam;

/// The KVM API version this monitor speaks (stable since Linux 2.6.22).
pub const KVM_API_VERSION: i32 = 12;

/// The capabilities every machine uses.
const BASE_CAPABILITIES: [(Cap, &str); 2] = [
    (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
    (Cap::ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
];

/// The capabilities a machine with in-kernel interrupt controllers uses besides.
const INTERRUPT_CAPABILITIES: [(Cap, &str); 3] = [
    (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
    (Cap::Pit2, "KVM_CAP_PIT2"),
    (Cap::Irqfd, "KVM_CAP_IRQFD"),
];

/// Errors building a machine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A KVM call failed.
    #[error("KVM: cannot {what}")]
    Kvm {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The KVM in the kernel is not one this monitor can drive.
    #[error("KVM API version {0} (this monitor needs {KVM_API_VERSION})")]
    ApiVersion(i32),
    /// A capability the monitor needs is missing.
    #[error("KVM lacks the capability {0}")]
    Capability(&'static str),
    /// More vCPUs than this KVM allows.
    #[error("{asked} vCPUs asked, this KVM allows {max}")]
    TooManyVcpus {
        /// Asked.
        asked: u8,
        /// KVM's limit.
        max: usize,
    },
    /// Guest memory could not be mapped.
    #[error("guest memory")]
    Memory(#[from] crate::memory::Error),
    /// KVM refused a memory slot.
    #[error("KVM refused guest memory slot {slot} at {guest:#x}")]
    Register {
        /// The slot.
        slot: u32,
        /// Its guest-physical start.
        guest: u64,
        /// Why.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be written.
    #[error("cannot write the {what} into guest memory")]
    WriteMemory {
        /// What was being written.
        what: &'static str,
        /// Why.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
    /// Two devices claim the same addresses.
    #[error("cannot register a device")]
    Device(#[from] crate::bus::Error),
    /// An interrupt line's eventfd could not be made.
    #[error("cannot create the {what}")]
    Host {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
    move |source| Error::Kvm { what, source }
}

/// Build and run phases with their CLOCK_MONOTONIC stamps (ns), in order.
pub type Phases = Vec<(&'static str, u64)>;

/// Records phase `name` as reached now.
pub fn stamp(phases: &mut Phases, name: &'static str) {
    phases.push((name, crate::monotonic_ns()));
}

/// How the guest is interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupts {
    /// Not at all: the guest polls (micro guests).
    None,
    /// By KVM's in-kernel PIC, IOAPIC, local APICs and PIT, with interrupt lines raised
    /// through eventfds (Linux guests).
    InKernel,
}

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// vCPUs (checked against this KVM's limit).
    pub vcpus: u8,
    /// Guest memory, bytes, laid out as [`crate::layout::ram_ranges`].
    pub memory_bytes: u64,
    /// The interrupt controllers.
    pub interrupts: Interrupts,
    /// Capabilities the caller uses besides those the machine itself needs, with their names.
    pub capabilities: &'static [(Cap, &'static str)],
}

/// A VM with its guest memory and vCPUs.
///
/// The fields are dropped in the order they are declared, and that order is what makes
/// guest memory safe to hand to KVM: the vCPUs and the VM (each vCPU's file keeps the VM
/// alive in the kernel) go before the memory their slots point into is unmapped. Nothing
/// here gives the VM or a vCPU away by value: a vCPU is only lent (see
/// [`Machine::vcpus_mut`]), so no caller can keep one past the machine.
#[derive(Debug)]
pub struct Machine {
    /// The vCPUs, by index; dropped first.
    vcpus: Vec<VcpuFd>,
    /// KVM's handle on the VM; dropped once no vCPU is left.
    vm: VmFd,
    /// Guest memory, registered with `vm`; dropped (unmapped) last.
    ram: GuestRam,
    /// /dev/kvm, for system-wide queries (supported CPUID).
    kvm: Kvm,
    /// What was asked.
    spec: Spec,
}

impl Machine {
    /// Opens /dev/kvm and checks it (API version, capabilities, vCPU limit), creates the VM
    /// with the interrupt controllers `spec` asks for (phase `vm_created`), then maps and
    /// registers its guest memory (`memory_registered`). The vCPUs come later, from
    /// [`Machine::create_vcpus`].
    pub fn new(spec: Spec, phases: &mut Phases) -> Result<Self, Error> {
        Self::build(spec, phases, || GuestRam::map(spec.memory_bytes))
    }

    /// Like [`Machine::new`], with guest memory mapped privately from a snapshot's `file`
    /// at `offset` ([`GuestRam::map_private_file`]): the guest finds the memory it had.
    pub fn restore(
        spec: Spec,
        phases: &mut Phases,
        file: &std::fs::File,
        offset: u64,
    ) -> Result<Self, Error> {
        Self::build(spec, phases, || {
            GuestRam::map_private_file(file, offset, spec.memory_bytes)
        })
    }

    fn build(
        spec: Spec,
        phases: &mut Phases,
        ram: impl FnOnce() -> Result<GuestRam, crate::memory::Error>,
    ) -> Result<Self, Error> {
        let kvm_fd = Kvm::new().map_err(kvm("open /dev/kvm"))?;
        let version = kvm_fd.get_api_version();
        if version != KVM_API_VERSION {
            return Err(Error::ApiVersion(version));
        }
        let interrupt_capabilities: &[(Cap, &'static str)] = match spec.interrupts {
            Interrupts::None => &[],
            Interrupts::InKernel => &INTERRUPT_CAPABILITIES,
        };
        for &(cap, name) in BASE_CAPABILITIES
            .iter()
            .chain(interrupt_capabilities)
            .chain(spec.capabilities)
        {
            if !kvm_fd.check_extension(cap) {
                return Err(Error::Capability(name));
            }
        }
        let max = kvm_fd.get_max_vcpus();
        if usize::from(spec.vcpus) > max {
            return Err(Error::TooManyVcpus {
                asked: spec.vcpus,
                max,
            });
        }

        let vm = kvm_fd.create_vm().map_err(kvm("create a VM"))?;
        // Every VM: on Intel hosts without unrestricted guests, KVM needs three pages for
        // the real-mode TSS (above any guest's memory here) to run a guest in real mode.
        vm.set_tss_address(usize::try_from(layout::KVM_TSS_START).unwrap_or(0))
            .map_err(kvm("set the TSS address"))?;
        if spec.interrupts == Interrupts::InKernel {
            vm.create_irq_chip()
                .map_err(kvm("create the in-kernel interrupt controllers"))?;
            vm.create_pit2(kvm_pit_config {
                flags: KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            })
            .map_err(kvm("create the in-kernel PIT"))?;
        }
        stamp(phases, "vm_created");

        let machine = Machine {
            vcpus: Vec::with_capacity(usize::from(spec.vcpus)),
            vm,
            ram: ram()?,
            kvm: kvm_fd,
            spec,
        };
        machine.register_memory()?;
        stamp(phases, "memory_registered");
        Ok(machine)
    }

    /// Registers every range of guest memory with the VM, one memory slot each.
    fn register_memory(&self) -> Result<(), Error> {
        for region in self.ram.regions() {
            // SAFETY: the region describes a live mapping owned by `self.ram`, and the
            // layout's ranges do not overlap, so neither do the slots. `self` owns both the
            // VM and that mapping and never gives either away, and its fields drop the vCPUs
            // and the VM before `ram`: no KVM object that can reach the slot outlives the
            // mapping, so the guest can never read or write host memory that is not its own.
            unsafe { self.vm.set_user_memory_region(region) }.map_err(|source| {
                Error::Register {
                    slot: region.slot,
                    guest: region.guest_phys_addr,
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// Creates the vCPUs `spec` asked for, in index order, each set up by `setup` with its
    /// index before the next is created.
    pub fn create_vcpus<E: From<Error>>(
        &mut self,
        mut setup: impl FnMut(u8, &VcpuFd) -> Result<(), E>,
    ) -> Result<(), E> {
        for index in 0..self.spec.vcpus {
            let vcpu = self
                .vm
                .create_vcpu(u64::from(index))
                .map_err(kvm("create a vCPU"))?;
            setup(index, &vcpu)?;
            self.vcpus.push(vcpu);
        }
        Ok(())
    }

    /// Writes the pages the guest touched to a snapshot's `file` at `offset`
    /// ([`GuestRam::save_resident`]); returns the bytes written.
    pub fn save_memory(&self, file: &mut std::fs::File, offset: u64) -> Result<u64, Error> {
        Ok(self.ram.save_resident(file, offset)?)
    }

    /// The vCPUs, by index, lent for running.
    pub fn vcpus_mut(&mut self) -> &mut [VcpuFd] {
        &mut self.vcpus
    }

    /// The VM, lent for reading and setting its state (snapshots).
    pub fn vm(&self) -> &VmFd {
        &self.vm
    }

    /// The vCPUs lent for running, beside the VM and guest memory, which a snapshot taken
    /// while the vCPUs' threads are paused reads.
    pub fn running_parts(&mut self) -> (&mut [VcpuFd], &VmFd, &GuestRam) {
        (&mut self.vcpus, &self.vm, &self.ram)
    }

    /// Guest memory, for reads and writes by guest address.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.ram.memory
    }

    /// Writes `bytes` into guest memory at `address`; `what` names them in the error.
    pub fn write(&self, what: &'static str, bytes: &[u8], address: u64) -> Result<(), Error> {
        self.ram
            .memory
            .write_slice(bytes, GuestAddress(address))
            .map_err(|source| Error::WriteMemory { what, source })
    }

    /// Writes the GDT and the identity-mapping page tables a vCPU in long mode starts with
    /// ([`crate::vcpu::long_mode_tables`]).
    pub fn write_long_mode_tables(&self) -> Result<(), Error> {
        for (address, bytes) in crate::vcpu::long_mode_tables() {
            self.write("long-mode GDT and page tables", &bytes, address)?;
        }
        Ok(())
    }

    /// Guest memory resident now (pages the guest touched), KiB.
    pub fn guest_touched_kib(&self) -> Option<u64> {
        self.ram.resident_kib()
    }

    /// /dev/kvm, for system-wide queries.
    pub fn kvm(&self) -> &Kvm {
        &self.kvm
    }

    /// Whether KVM can signal an eventfd for a guest write to an address
    /// (`KVM_CAP_IOEVENTFD`) instead of exiting to the monitor.
    pub fn has_ioeventfd(&self) -> bool {
        self.kvm.check_extension(Cap::Ioeventfd)
    }

    /// An eventfd KVM signals whenever the guest writes to guest-physical `address`
    /// (`KVM_IOEVENTFD`, any value): the write completes inside KVM, with no exit to the
    /// monitor.
    pub fn mmio_write_event(&self, address: u64) -> Result<EventFd, Error> {
        let event = EventFd::new(EFD_NONBLOCK).map_err(|source| Error::Host {
            what: "notification eventfd",
            source,
        })?;
        self.vm
            .register_ioevent(&event, &IoEventAddress::Mmio(address), NoDatamatch)
            .map_err(kvm("register a notification eventfd"))?;
        Ok(event)
    }

    /// An eventfd KVM signals whenever the guest writes the 32-bit `value` to
    /// guest-physical `address` (`KVM_IOEVENTFD` with a data match): one per virtio queue
    /// at the same `QueueNotify` register. Other values still exit to the monitor.
    pub fn mmio_write_event_matching(&self, address: u64, value: u32) -> Result<EventFd, Error> {
        let event = EventFd::new(EFD_NONBLOCK).map_err(|source| Error::Host {
            what: "notification eventfd",
            source,
        })?;
        self.vm
            .register_ioevent(&event, &IoEventAddress::Mmio(address), value)
            .map_err(kvm("register a notification eventfd"))?;
        Ok(event)
    }

    /// An interrupt line into the in-kernel interrupt controllers at `gsi`: an eventfd
    /// registered with `KVM_IRQFD`.
    pub fn irq_line(&self, gsi: u32) -> Result<IrqLine, Error> {
        let host = |source| Error::Host {
            what: "interrupt line's eventfd",
            source,
        };
        let irq = EventFd::new(EFD_NONBLOCK).map_err(host)?;
        self.vm
            .register_irqfd(&irq, gsi)
            .map_err(kvm("wire an interrupt line"))?;
        Ok(IrqLine(irq))
    }
}

/// Sets a vCPU up to start in `mode` (from its reset state) with `regs`.
pub fn enter_at(vcpu: &VcpuFd, mode: Mode, regs: &kvm_regs) -> Result<(), Error> {
    let mut sregs = vcpu
        .get_sregs()
        .map_err(kvm("read the vCPU's special registers"))?;
    crate::vcpu::setup_sregs(&mut sregs, mode);
    vcpu.set_sregs(&sregs)
        .map_err(kvm("set the vCPU's special registers"))?;
    vcpu.set_regs(regs).map_err(kvm("set the vCPU's registers"))
}

/// The devices every machine has on its buses: the marker on its port and at its MMIO
/// address, the i8042 reset line, and `console` (a 16550) on COM1's ports if given; an
/// MMIO access no device claims is treated as `policy` says. Returns the buses and the
/// marker's record.
pub fn buses(
    policy: MmioPolicy,
    console: Option<Box<dyn BusDevice>>,
) -> Result<(Buses, Arc<Mutex<Markers>>), Error> {
    let mut buses = Buses {
        mmio_policy: policy,
        ..Buses::default()
    };
    let (marker, markers) = Marker::new();
    buses
        .pio
        .register(u64::from(layout::MARKER_PORT), 1, Box::new(marker))?;
    buses
        .mmio
        .register(layout::MARKER_MMIO, 1, Box::new(Marker::sharing(&markers)))?;
    buses
        .pio
        .register(u64::from(layout::I8042_COMMAND_PORT), 1, Box::new(I8042))?;
    if let Some(console) = console {
        buses.pio.register(
            u64::from(layout::SERIAL_PORT),
            u64::from(layout::SERIAL_PORTS),
            console,
        )?;
    }
    Ok((buses, markers))
}

/// What one entry into the guest came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The guest exited, and this is what the exit means.
    Exit(Outcome),
    /// The vCPU thread was kicked out of `KVM_RUN` ([`crate::kick`]) before or while the
    /// guest ran; the caller looks at why.
    Kicked,
}

/// Runs `vcpu` until its next exit and hands that exit, in the monitor's terms
/// ([`exit::translate`]), to `handle`. Exits that need nothing done are
/// [`Outcome::Continue`] without `handle` being called.
pub fn enter(vcpu: &mut VcpuFd, handle: impl FnOnce(Exit<'_>) -> Outcome) -> Step {
    match vcpu.run() {
        Ok(kvm_ioctls::VcpuExit::InternalError) => {
            // The detail KVM left in the run structure for this exit.
            // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the
            // union member KVM filled in; it is plain integers.
            let internal = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal };
            let n = usize::try_from(internal.ndata).map_or(0, |n| n.min(internal.data.len()));
            Step::Exit(handle(Exit::InternalError {
                suberror: internal.suberror,
                data: internal.data[..n].to_vec(),
            }))
        }
        Ok(exit) => Step::Exit(exit::translate(exit).map_or(Outcome::Continue, handle)),
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
            vcpu.set_kvm_immediate_exit(0);
            Step::Kicked
        }
        Err(e) => Step::Exit(Outcome::Failed(format!("KVM_RUN failed: {e}"))),
    }
}

/// The registers worth reporting when a guest fails ([`crate::vcpu::describe`]), or
/// `None` when KVM cannot read them.
pub fn registers(vcpu: &VcpuFd) -> Option<String> {
    match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(r), Ok(s)) => Some(crate::vcpu::describe(&r, &s)),
        _ => None,
    }
}

/// How the guest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// It halted (a micro guest's normal end).
    Halted,
    /// It reset the machine through the i8042.
    Reset,
    /// It powered off: every vCPU halted with interrupts off (Linux without ACPI).
    PoweredOff,
    /// It outlived its timeout and was stopped.
    TimedOut,
    /// It failed: why, and the vCPU's registers then.
    Failed {
        /// The reason.
        reason: String,
        /// Register dump.
        registers: String,
    },
}

impl End {
    /// The end an exit's outcome means, if any; a failure's registers come from
    /// `registers`, called only then.
    pub fn of(outcome: Outcome, registers: impl FnOnce() -> String) -> Option<End> {
        match outcome {
            Outcome::Continue => None,
            Outcome::Halted => Some(End::Halted),
            Outcome::Reset => Some(End::Reset),
            Outcome::Failed(reason) => Some(End::Failed {
                reason,
                registers: registers(),
            }),
        }
    }
}

/// Everything a run observed.
#[derive(Debug, Clone)]
pub struct Report {
    /// Build and run phases with their CLOCK_MONOTONIC stamps (ns), in order.
    pub phases: Phases,
    /// The marker device's record.
    pub markers: Markers,
    /// Exits by kind.
    pub exits: ExitCounts,
    /// Console output.
    pub serial: Capture,
    /// How it ended.
    pub end: End,
    /// Guest memory resident when the guest stopped (pages it touched), KiB.
    pub guest_touched_kib: Option<u64>,
    /// The release of the Linux kernel that ran, as its image announces it.
    pub kernel: Option<String>,
    /// Where every vCPU was when a Linux guest was stopped at its timeout: registers, the
    /// function it was in, its state and its local APIC timer.
    pub diagnosis: Option<String>,
    /// The choices made in a Linux guest's CPUID that depend on the host, as counts (1 for
    /// yes): whether the TSC-deadline timer was offered.
    pub cpu: Vec<(String, u64)>,
    /// What the virtio devices served, as counts: a Linux guest's disk's requests by kind,
    /// bytes, queue notifications, interrupts and errors (`disk_*`); its network device's
    /// frames and bytes each way, notifications, interrupts and drops by reason (`net_*`).
    pub devices: Vec<(String, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Action;

    #[test]
    fn outcomes_map_to_ends_and_only_failures_read_registers() {
        let never = || -> String { panic!("registers read for a clean outcome") };
        assert_eq!(End::of(Outcome::Continue, never), None);
        assert_eq!(End::of(Outcome::Halted, never), Some(End::Halted));
        assert_eq!(End::of(Outcome::Reset, never), Some(End::Reset));
        assert_eq!(
            End::of(Outcome::Failed("why".into()), || "rip=0x1".into()),
            Some(End::Failed {
                reason: "why".into(),
                registers: "rip=0x1".into()
            })
        );
    }

    struct Probe;
    impl BusDevice for Probe {
        fn read(&mut self, _offset: u64, data: &mut [u8]) {
            data.fill(7);
        }
        fn write(&mut self, _offset: u64, _data: &[u8]) -> Action {
            Action::None
        }
    }

    #[test]
    fn every_machine_has_the_marker_and_the_reset_line_and_the_console_when_given() {
        let (mut without, markers) = buses(MmioPolicy::Fail, None).unwrap();
        assert_eq!(without.mmio_policy, MmioPolicy::Fail);
        assert_eq!(
            without.pio.write(u64::from(layout::MARKER_PORT), &[3]),
            Some(Action::None)
        );
        assert_eq!(
            without.mmio.write(layout::MARKER_MMIO, &[4]),
            Some(Action::None)
        );
        let codes: Vec<u8> = markers.lock().unwrap().stamps.iter().map(|s| s.0).collect();
        assert_eq!(codes, [3, 4]);
        assert_eq!(
            without.pio.write(
                u64::from(layout::I8042_COMMAND_PORT),
                &[layout::I8042_RESET]
            ),
            Some(Action::Shutdown)
        );
        let mut byte = [0u8];
        assert!(!without.pio.read(u64::from(layout::SERIAL_PORT), &mut byte));

        let (mut with, _) = buses(MmioPolicy::Ignore, Some(Box::new(Probe))).unwrap();
        assert_eq!(with.mmio_policy, MmioPolicy::Ignore);
        let last = u64::from(layout::SERIAL_PORT) + u64::from(layout::SERIAL_PORTS) - 1;
        assert!(with.pio.read(last, &mut byte));
        assert_eq!(byte, [7]);
    }
}
