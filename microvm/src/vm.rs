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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::bus::MmioPolicy;
use crate::devices::serial::Console;
use crate::exit::{self, ExitCounts};
use crate::guest::Mode;
use crate::layout;
use crate::machine::{self, stamp, Interrupts, Machine, Phases, Spec, Step};
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
    let (mut buses, markers) = machine::buses(MmioPolicy::Fail, console)?;
    machine.write("payload", &config.payload.code, layout::PAYLOAD_START)?;
    stamp(&mut phases, "payload_loaded");

    // 6. Run.
    let mut counts = ExitCounts::default();
    let watchdog = Watchdog::start(config.timeout);
    // From here on, the monitor's threads (this one and the watchdog) make only the
    // calls running the guest needs.
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
    let mut report = Report {
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
    };
    before_teardown(&report);

    // 7. Teardown: the machine (its vCPUs, the VM, then its memory).
    drop(machine);
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
