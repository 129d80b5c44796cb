//! Building and running a microVM: a short linear recipe from a validated [`Config`].
//!
//! 0. check the configuration ([`crate::config::Valid`]);
//! 1. open /dev/kvm, check the API version and the capabilities used;
//! 2. create the VM (`vm_created`);
//! 3. map guest memory (anonymous, private, `MAP_NORESERVE`: pages cost nothing until the
//!    guest touches them) and register it (`memory_registered`);
//! 4. create the vCPU and set its mode (`vcpus_created`);
//! 5. register the devices and load the payload (`payload_loaded`);
//! 6. run until the guest halts, resets, fails or outlives its timeout (`halted`);
//! 7. tear everything down (`torn_down`).
//!
//! Each step is stamped on the host's `CLOCK_MONOTONIC`, and so is every marker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use kvm_ioctls::{Cap, Kvm};
use vm_memory::{Bytes, GuestAddress};

use crate::bus::Buses;
use crate::devices::{
    marker::Marker, marker::Markers, serial::Capture, serial::Console, shutdown::I8042,
};
use crate::exit::{self, ExitCounts, Outcome};
use crate::layout;
use crate::memory::GuestRam;
use crate::vcpu;

pub use crate::config::Config;
use crate::config::{Error as ConfigError, Valid};

/// The KVM API version this monitor speaks (stable since Linux 2.6.22).
const KVM_API_VERSION: i32 = 12;

/// Errors that stop a VM from being built (a guest's own failure is an [`End`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error("bad microVM configuration")]
    Config(#[from] ConfigError),
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
    /// Guest memory could not be mapped or registered.
    #[error("guest memory")]
    Memory(#[from] crate::memory::Error),
    /// Guest memory could not be written (tables or payload).
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
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
    move |source| Error::Kvm { what, source }
}

fn write_memory(what: &'static str) -> impl FnOnce(vm_memory::GuestMemoryError) -> Error {
    move |source| Error::WriteMemory { what, source }
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

/// Everything a run observed.
#[derive(Debug, Clone)]
pub struct Report {
    /// Build and run phases with their CLOCK_MONOTONIC stamps (ns), in order.
    pub phases: Vec<(&'static str, u64)>,
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
}

/// Builds the VM described by `config`, runs it to its end and tears it down.
pub fn run(config: &Config) -> Result<Report, Error> {
    run_with(config, |_| {})
}

/// Like [`run`], calling `before_teardown` with the report so far (no `torn_down` phase
/// yet) while the VM and its memory still exist, e.g. to have its footprint measured.
pub fn run_with(config: &Config, before_teardown: impl FnOnce(&Report)) -> Result<Report, Error> {
    let valid = Valid::try_from(config)?;
    let mut phases = Vec::new();
    let stamp =
        |phases: &mut Vec<(&'static str, u64)>, name| phases.push((name, crate::monotonic_ns()));

    let kvm_fd = Kvm::new().map_err(kvm("open /dev/kvm"))?;
    let version = kvm_fd.get_api_version();
    if version != KVM_API_VERSION {
        return Err(Error::ApiVersion(version));
    }
    for (cap, name) in [
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
    ] {
        if !kvm_fd.check_extension(cap) {
            return Err(Error::Capability(name));
        }
    }
    let vm = kvm_fd.create_vm().map_err(kvm("create a VM"))?;
    stamp(&mut phases, "vm_created");

    let ram = GuestRam::map(valid.memory_bytes() as u64)?;
    ram.register(&vm)?;
    let memory = &ram.memory;
    stamp(&mut phases, "memory_registered");

    if config.payload.mode == crate::guest::Mode::Long {
        for (address, bytes) in vcpu::long_mode_tables() {
            memory
                .write_slice(&bytes, GuestAddress(address))
                .map_err(write_memory("long-mode GDT and page tables"))?;
        }
    }
    let max_vcpus = kvm_fd.get_max_vcpus();
    if usize::from(config.vcpus) > max_vcpus {
        return Err(ConfigError::TooManyVcpus {
            asked: config.vcpus,
            max: max_vcpus,
        }
        .into());
    }
    let mut vcpu = vm.create_vcpu(0).map_err(kvm("create a vCPU"))?;
    let waiting: Vec<_> = (1..config.vcpus)
        .map(|id| vm.create_vcpu(u64::from(id)).map_err(kvm("create a vCPU")))
        .collect::<Result<_, _>>()?;
    let mut sregs = vcpu
        .get_sregs()
        .map_err(kvm("read the vCPU's special registers"))?;
    vcpu::setup_sregs(&mut sregs, config.payload.mode);
    vcpu.set_sregs(&sregs)
        .map_err(kvm("set the vCPU's special registers"))?;
    vcpu.set_regs(&vcpu::entry_regs())
        .map_err(kvm("set the vCPU's registers"))?;
    stamp(&mut phases, "vcpus_created");

    let mut bus = Buses::default();
    let (marker, markers) = Marker::new();
    let (console, serial) = Console::new();
    bus.pio
        .register(u64::from(layout::MARKER_PORT), 1, Box::new(marker))?;
    bus.mmio
        .register(layout::MARKER_MMIO, 1, Box::new(Marker::sharing(&markers)))?;
    bus.pio
        .register(u64::from(layout::I8042_COMMAND_PORT), 1, Box::new(I8042))?;
    if config.devices.serial {
        bus.pio.register(
            u64::from(layout::SERIAL_PORT),
            u64::from(layout::SERIAL_PORTS),
            Box::new(console),
        )?;
    }
    memory
        .write_slice(&config.payload.code, GuestAddress(layout::PAYLOAD_START))
        .map_err(write_memory("payload"))?;
    stamp(&mut phases, "payload_loaded");

    let mut counts = ExitCounts::default();
    let watchdog = Watchdog::start(config.timeout);
    let end = loop {
        let outcome = match vcpu.run() {
            Ok(exit) => match exit::translate(exit) {
                Some(exit) => exit::handle(exit, &mut bus, &mut counts),
                None => Outcome::Continue,
            },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                if watchdog.fired() {
                    break End::TimedOut;
                }
                vcpu.set_kvm_immediate_exit(0);
                Outcome::Continue
            }
            Err(e) => Outcome::Failed(format!("KVM_RUN failed: {e}")),
        };
        match outcome {
            Outcome::Continue => {}
            Outcome::Halted => break End::Halted,
            Outcome::Reset => break End::Reset,
            Outcome::Failed(reason) => {
                let registers = match (vcpu.get_regs(), vcpu.get_sregs()) {
                    (Ok(r), Ok(s)) => vcpu::describe(&r, &s),
                    _ => "registers unreadable".to_owned(),
                };
                break End::Failed { reason, registers };
            }
        }
    };
    watchdog.stop();
    stamp(&mut phases, "halted");
    let markers = markers.lock().map(|m| m.clone()).unwrap_or_default();
    if let Some(&(_, first)) = markers.stamps.first() {
        // The first marker comes before the halt.
        let at = phases.len() - 1;
        phases.insert(at, ("first_marker", first));
    }
    let serial = serial.lock().map(|c| c.clone()).unwrap_or_default();
    let mut report = Report {
        phases,
        markers,
        exits: counts,
        serial,
        end,
        guest_touched_kib: ram.resident_kib(),
        kernel: None,
    };
    before_teardown(&report);
    drop(vcpu);
    drop(waiting);
    drop(vm);
    drop(ram);
    report.phases.push(("torn_down", crate::monotonic_ns()));
    Ok(report)
}

/// Stops a guest that runs past its time: a thread waits for the deadline, then signals
/// the vCPU thread (repeatedly, since a signal that lands just before KVM_RUN is entered
/// would be lost) until the loop notices.
struct Watchdog {
    fired: Arc<AtomicBool>,
    cancel: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(timeout: Duration) -> Self {
        crate::kick::install();
        let vcpu_thread = crate::kick::this_thread();
        let fired = Arc::new(AtomicBool::new(false));
        let (cancel, cancelled) = mpsc::channel::<()>();
        let flag = Arc::clone(&fired);
        let thread = std::thread::spawn(move || {
            if cancelled.recv_timeout(timeout) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            flag.store(true, Ordering::SeqCst);
            while cancelled.recv_timeout(Duration::from_millis(1))
                == Err(mpsc::RecvTimeoutError::Timeout)
            {
                // The vCPU thread is alive until it cancels this watchdog.
                crate::kick::kick(vcpu_thread);
            }
        });
        Watchdog {
            fired,
            cancel,
            thread: Some(thread),
        }
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    fn stop(mut self) {
        let _ = self.cancel.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Shared output of a device, for tests that want it while a run goes on.
pub type Shared<T> = Arc<Mutex<T>>;
