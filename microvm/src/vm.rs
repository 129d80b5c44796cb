//! Micro guests: building and running one is a short linear recipe from a validated
//! [`Config`], on the VM core every guest shares ([`crate::machine`]).
//!
//! 0. check the configuration ([`crate::config::Valid`]);
//! 1. open /dev/kvm, check the API version, the capabilities used and the vCPU count;
//! 2. create the VM (`vm_created`);
//! 3. map guest memory (anonymous, private, `MAP_NORESERVE`: pages cost nothing until the
//!    guest touches them) and register it (`memory_registered`);
//! 4. create the vCPUs and set the first one's mode (`vcpus_created`);
//! 5. register the devices and load the payload (`payload_loaded`);
//! 6. run the first vCPU on this thread until the guest halts, resets, fails or outlives
//!    its timeout (`halted`); the others wait, never started;
//! 7. tear everything down (`torn_down`).
//!
//! Each step is stamped on the host's `CLOCK_MONOTONIC`, and so is every marker. [`End`]
//! and [`Report`] are the machine's, named here too for this module's callers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::bus::MmioPolicy;
use crate::devices::serial::Console;
use crate::exit::{self, ExitCounts};
use crate::guest::Mode;
use crate::layout;
use crate::machine::{self, stamp, Interrupts, Machine, Phases, Spec, Step};
use crate::snapshot;
use crate::vcpu;

pub use crate::config::Config;
use crate::config::{Error as ConfigError, Valid};
pub use crate::machine::{End, Report};

/// Errors that stop a VM from being built (a guest's own failure is an [`End`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable (including more vCPUs than this KVM allows).
    #[error("bad microVM configuration")]
    Config(#[from] ConfigError),
    /// The machine could not be built.
    #[error(transparent)]
    Machine(machine::Error),
    /// The monitor's system call filter could not be installed.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::Error),
    /// A snapshot could not be written or read.
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
    /// The guest did not stop where a snapshot can be taken.
    #[error("the guest did not stop at a hlt where a snapshot can be taken; it ended: {0}")]
    NoSnapshotPoint(String),
    /// A KVM call on a vCPU failed.
    #[error("KVM: cannot {0}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// The guest's timeout could not be armed.
    #[error("cannot arm the guest's timeout")]
    Timeout(#[source] std::io::Error),
    /// The snapshot is of a Linux guest.
    #[error("{0} holds a Linux guest; restore it as one")]
    NotMicro(std::path::PathBuf),
}

impl From<machine::Error> for Error {
    fn from(e: machine::Error) -> Self {
        match e {
            // The one check of the configuration that needs KVM.
            machine::Error::TooManyVcpus { asked, max } => {
                Error::Config(ConfigError::TooManyVcpus { asked, max })
            }
            other => Error::Machine(other),
        }
    }
}

/// Builds the VM described by `config`, runs it to its end and tears it down.
pub fn run(config: &Config) -> Result<Report, Error> {
    run_with(config, |_| {})
}

/// Like [`run`], calling `before_teardown` with the report so far (no `torn_down` phase
/// yet) while the VM and its memory still exist, e.g. to have its footprint measured.
pub fn run_with(config: &Config, before_teardown: impl FnOnce(&Report)) -> Result<Report, Error> {
    run_keeping(config, |report, _| {
        before_teardown(report);
        Ok(())
    })
}

/// Runs `config`'s guest to its end, then, where it stopped at a `hlt` (the snapshot point
/// of [`crate::guest::ready`]), writes a snapshot of it to `path` ([`crate::snapshot`])
/// before teardown (phase `snapshot_saved`), and calls `before_teardown` with the report.
/// Returns the report and the snapshot's header. The monitor's process writes a file
/// here, so a monitor that snapshots does not run under its system call filter.
pub fn snapshot_to(
    config: &Config,
    path: &std::path::Path,
    before_teardown: impl FnOnce(&Report),
) -> Result<(Report, snapshot::Header), Error> {
    let mut saved = None;
    let report = run_keeping(config, |report, machine| {
        if report.end != End::Halted {
            let how = match &report.end {
                End::Halted => "halted",
                End::Reset => "with a reset",
                End::PoweredOff => "powered off",
                End::TimedOut => "at its timeout",
                End::Failed { reason, .. } => reason,
            };
            return Err(Error::NoSnapshotPoint(how.to_owned()));
        }
        let vcpu = &machine.vcpus_mut()[0];
        let regs = vcpu
            .get_regs()
            .map_err(|e| Error::Kvm("read the registers", e))?;
        let sregs = vcpu
            .get_sregs()
            .map_err(|e| Error::Kvm("read the special registers", e))?;
        let memory_bytes = config.memory_mib << 20;
        let header = snapshot::write(path, config.vcpus, memory_bytes, regs, sregs, |file, at| {
            machine.save_memory(file, at).map_err(std::io::Error::other)
        })?;
        report
            .phases
            .push(("snapshot_saved", crate::monotonic_ns()));
        report.cpu.extend([
            (
                "snapshot_memory_saved_kib".to_owned(),
                header.memory_saved / 1024,
            ),
            (
                "snapshot_file_kib".to_owned(),
                (header.memory_offset + memory_bytes) / 1024,
            ),
        ]);
        saved = Some(header);
        before_teardown(report);
        Ok(())
    })?;
    let header = saved.ok_or_else(|| Error::NoSnapshotPoint("without a snapshot".to_owned()))?;
    Ok((report, header))
}

/// Restores the micro guest snapshotted at `path` in a new VM and runs it on to its end:
/// its memory mapped privately from the file (a page is read when the guest first
/// touches it), its vCPU's registers as they were. `memory_mib`, when given, must match
/// the snapshot's. Phases: `snapshot_read` (checked), `vm_created`, `memory_registered`,
/// `state_restored`, then as a cold run (`first_marker`, `halted`). What the restored
/// guest read of its memory is what the monitor's process has resident of the mapping
/// (its footprint), not `guest_touched_kib`: for a mapping of a file, mincore(2) tells
/// which pages are in the page cache, touched or not.
pub fn restore(
    path: &std::path::Path,
    memory_mib: Option<u64>,
    devices: crate::config::Devices,
    timeout: std::time::Duration,
    before_teardown: impl FnOnce(&Report),
) -> Result<Report, Error> {
    let (header, file) = snapshot::read(path, memory_mib)?;
    restore_read(path, header, &file, devices, timeout, before_teardown)
}

/// Like [`restore`], for a snapshot at `path` already read and checked
/// ([`snapshot::read`]): its `header` and open `file`.
pub fn restore_read(
    path: &std::path::Path,
    header: snapshot::Header,
    file: &std::fs::File,
    devices: crate::config::Devices,
    timeout: std::time::Duration,
    before_teardown: impl FnOnce(&Report),
) -> Result<Report, Error> {
    let mut phases = Phases::new();
    stamp(&mut phases, "snapshot_read");
    if header.kind != snapshot::Kind::Micro {
        return Err(Error::NotMicro(path.to_owned()));
    }
    let spec = Spec {
        vcpus: header.vcpus,
        memory_bytes: header.memory_bytes,
        interrupts: Interrupts::None,
        capabilities: &[],
    };
    let mut machine = Machine::restore(spec, &mut phases, file, header.memory_offset)?;
    machine.create_vcpus(|index, vcpu| match index {
        0 => vcpu
            .set_sregs(&header.sregs)
            .and_then(|()| vcpu.set_regs(&header.regs))
            .map_err(|e| Error::Kvm("restore the vCPU's registers", e)),
        _ => Ok(()),
    })?;
    stamp(&mut phases, "state_restored");
    let (console, serial) = Console::new();
    let console = devices
        .serial
        .then(|| Box::new(console) as Box<dyn crate::bus::BusDevice>);
    let (buses, markers) = machine::buses(MmioPolicy::Fail, console)?;
    let mut report = run_to_end(&mut machine, phases, buses, &markers, &serial, timeout)?;
    report.guest_touched_kib = None;
    before_teardown(&report);
    drop(machine);
    report.phases.push(("torn_down", crate::monotonic_ns()));
    Ok(report)
}

/// Builds `config`'s VM and runs it to its end, then calls `at_end` with the report and
/// the machine, still built, before tearing it down.
fn run_keeping(
    config: &Config,
    at_end: impl FnOnce(&mut Report, &mut Machine) -> Result<(), Error>,
) -> Result<Report, Error> {
    let valid = Valid::try_from(config)?;
    let mut phases = Phases::new();

    // 1-3. KVM, the VM, its memory.
    let spec = Spec {
        vcpus: config.vcpus,
        memory_bytes: valid.memory_bytes() as u64,
        interrupts: Interrupts::None,
        capabilities: &[],
    };
    let mut machine = Machine::new(spec, &mut phases)?;

    // 4. vCPUs: the first enters the payload, the others wait.
    let mode = config.payload.mode;
    if mode == Mode::Long {
        machine.write_long_mode_tables()?;
    }
    machine.create_vcpus(|index, vcpu| match index {
        0 => machine::enter_at(vcpu, mode, &vcpu::entry_regs()).map_err(Error::from),
        _ => Ok(()),
    })?;
    stamp(&mut phases, "vcpus_created");

    // 5. Devices and payload.
    let (console, serial) = Console::new();
    let console = config
        .devices
        .serial
        .then(|| Box::new(console) as Box<dyn crate::bus::BusDevice>);
    let (buses, markers) = machine::buses(MmioPolicy::Fail, console)?;
    machine.write("payload", &config.payload.code, layout::PAYLOAD_START)?;
    stamp(&mut phases, "payload_loaded");

    // 6. Run.
    let mut report = run_to_end(
        &mut machine,
        phases,
        buses,
        &markers,
        &serial,
        config.timeout,
    )?;
    at_end(&mut report, &mut machine)?;

    // 7. Teardown: the machine (its vCPUs, the VM, then its memory).
    drop(machine);
    report.phases.push(("torn_down", crate::monotonic_ns()));
    Ok(report)
}

/// Runs the first vCPU of `machine` until the guest halts, resets, fails or outlives
/// `timeout` (phase `halted`, and `first_marker` before it), and reports.
fn run_to_end(
    machine: &mut Machine,
    mut phases: Phases,
    mut buses: crate::bus::Buses,
    markers: &Shared<crate::devices::marker::Markers>,
    serial: &Shared<crate::devices::serial::Capture>,
    timeout: Duration,
) -> Result<Report, Error> {
    let mut counts = ExitCounts::default();
    let watchdog = Watchdog::start(timeout)?;
    // From here on, the monitor's thread makes only the calls running the guest needs.
    if let Err(e) = crate::seccomp::on_guest_threads() {
        watchdog.stop();
        return Err(e.into());
    }
    let vcpu = &mut machine.vcpus_mut()[0];
    let end = loop {
        match machine::enter(vcpu, |exit| exit::handle(exit, &mut buses, &mut counts)) {
            Step::Kicked if watchdog.fired() => break End::TimedOut,
            Step::Kicked => {}
            Step::Exit(outcome) => {
                let registers = || {
                    machine::registers(vcpu).unwrap_or_else(|| "registers unreadable".to_owned())
                };
                if let Some(end) = End::of(outcome, registers) {
                    break end;
                }
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
    Ok(Report {
        diagnosis: None,
        cpu: Vec::new(),
        devices: Vec::new(),
        phases,
        markers,
        exits: counts,
        serial,
        end,
        guest_touched_kib: machine.guest_touched_kib(),
        kernel: None,
    })
}

/// Stops a guest that runs past its time: a kernel timer kicks the vCPU thread out of
/// `KVM_RUN` at the deadline, and every millisecond after it (a kick that lands just before
/// `KVM_RUN` is entered would be lost) until the loop notices and stops it.
struct Watchdog {
    /// `CLOCK_MONOTONIC` nanoseconds at which the guest's time is up.
    deadline_ns: u64,
    alarm: crate::kick::Alarm,
}

impl Watchdog {
    /// Arms the timer for the calling thread, which runs the vCPU.
    fn start(timeout: Duration) -> Result<Self, Error> {
        let deadline_ns = crate::monotonic_ns()
            .saturating_add(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
        let alarm = crate::kick::Alarm::start(
            crate::kick::this_thread(),
            timeout,
            Duration::from_millis(1),
        )
        .map_err(Error::Timeout)?;
        Ok(Watchdog { deadline_ns, alarm })
    }

    /// Whether the guest's time is up (a kick before it came from elsewhere).
    fn fired(&self) -> bool {
        crate::monotonic_ns() >= self.deadline_ns
    }

    /// Disarms the timer: no kick comes after this.
    fn stop(self) {
        drop(self.alarm);
    }
}

/// Shared output of a device, for tests that want it while a run goes on.
pub type Shared<T> = Arc<Mutex<T>>;
