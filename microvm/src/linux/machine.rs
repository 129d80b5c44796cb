//! Booting a Linux guest: a short linear recipe from a checked [`Config`] on the VM core
//! every guest shares ([`crate::machine`]), then one thread per vCPU until the guest powers
//! off, resets, fails or outlives its timeout. What is Linux's own is here: the boot
//! protocol, CPUID, MSRs, local APIC and FPU state, the MP table, and the power-off watch.
//!
//! 0. check the configuration, read and check the kernel and the initrd, open the disk
//!    image and the tap (bad input is refused before KVM is touched);
//! 1. open /dev/kvm, check the capabilities used and the vCPU count;
//! 2. create the VM with its in-kernel interrupt controllers (PIC, IOAPIC, local APICs) and
//!    PIT (`vm_created`);
//! 3. map and register guest memory (`memory_registered`);
//! 4. load the kernel, the initrd, the command line, the boot parameters with the e820
//!    map, the MP table, the boot GDT and page tables (`kernel_loaded`);
//! 5. create the vCPUs: CPUID, MSRs, local APIC, FPU; the boot vCPU in 64-bit mode at the
//!    kernel's entry (`vcpus_created`);
//! 6. register the devices: marker, i8042, the serial console on IRQ 4, and, when a disk
//!    is given, a virtio-blk device on virtio-mmio at [`layout::VIRTIO_MMIO_START`] on
//!    IRQ 5, announced on the command line; its interrupt goes through `KVM_IRQFD`, and its
//!    queue notifications through `KVM_IOEVENTFD` to a thread of its own where KVM offers
//!    that, through MMIO exits otherwise; when a tap is given, a virtio-net device at
//!    [`layout::NET_MMIO_START`] on IRQ 6 the same way, whose thread also reads the tap
//!    (`vm_built`);
//! 7. start one thread per vCPU; the boot vCPU's stamps `kernel_entry` just before it
//!    first enters the guest; the others wait in KVM for their start-up IPI;
//! 8. supervise: the guest ends by an i8042 reset, or by powering off, which without ACPI
//!    means every vCPU halted with interrupts off (Linux's "System halted"); a halt runs
//!    inside KVM with an in-kernel irqchip, so once the guest has written
//!    [`MARKER_POWEROFF`] the monitor asks the vCPUs for their state every 1 ms. Before
//!    that nothing interrupts a running guest: the supervisor sleeps until a vCPU thread
//!    ends, the power-off marker, a `Kernel panic - not syncing` console line, or the
//!    timeout, where it records where every vCPU was (`powered_off`, or `stopped` for a
//!    timeout or failure);
//! 9. tear everything down (`torn_down`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_bindings::{
    Msrs, KVM_MAX_CPUID_ENTRIES, KVM_MP_STATE_HALTED, KVM_MP_STATE_INIT_RECEIVED,
    KVM_MP_STATE_UNINITIALIZED,
};
use kvm_ioctls::{Cap, VcpuFd};
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use vm_memory::GuestAddress;

use super::pause::Pause;
use super::state::{self, VcpuState};
use super::{boot_params, cpu_state, cpuid, image, mptable, symbols};
use crate::bus::{Action, BusDevice, Buses, MmioPolicy};
use crate::devices::marker::Markers;
use crate::devices::serial::{Console, IrqLine, LineHandler, LineSink};
use crate::exit::{self, ExitCounts, Outcome};
use crate::guest::Mode;
use crate::layout::{
    self, CMDLINE_MAX, CMDLINE_START, MARKER_POWEROFF, MPTABLE_START, ZERO_PAGE_START,
};
use crate::machine::{self, stamp, End, Interrupts, Machine, Phases, Report, Spec, Step};
use crate::snapshot;
use crate::virtio;

/// The least guest memory a Linux guest gets, MiB: the kernel loads at 16 MiB.
pub const MIN_MEMORY_MIB: u64 = 32;
/// The most guest memory accepted, MiB (1 TiB).
pub const MAX_MEMORY_MIB: u64 = crate::config::MAX_MEMORY_MIB;
/// How often the vCPUs are kicked until each has paused for a snapshot.
const PAUSE_KICK: Duration = Duration::from_micros(200);
/// How often the vCPUs are asked whether the guest has stopped, once it has announced its
/// power-off.
const STATE_CHECK_POWERING_OFF: Duration = Duration::from_millis(1);
/// The line with which Linux gives up.
pub(super) const KERNEL_PANIC: &str = "Kernel panic - not syncing";

/// What wakes the supervisor.
#[derive(Debug)]
pub(super) enum Note {
    /// A vCPU thread left its loop (the guest reset or failed, or it was stopped).
    Ended,
    /// The guest wrote its power-off marker.
    PoweringOff,
    /// The guest's kernel panicked: its line.
    Panicked(String),
    /// The guest reached its snapshot point: every vCPU is to pause.
    Pausing,
}
/// RFLAGS interrupt flag.
const RFLAGS_IF: u64 = 1 << 9;

/// What to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// vCPUs, 1..=[`mptable::MAX_VCPUS`].
    pub vcpus: u8,
    /// Guest memory, MiB.
    pub memory_mib: u64,
    /// The kernel: a `vmlinux` ELF or a `bzImage`.
    pub kernel: PathBuf,
    /// The initramfs, if any.
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub cmdline: String,
    /// How long the guest may run before it is stopped.
    pub timeout: Duration,
    /// A raw disk image offered to the guest as a virtio-blk device (`/dev/vda`).
    pub disk: Option<DiskConfig>,
    /// The guest's context ID on a virtio-vsock device served by the host kernel
    /// (vhost-vsock), if it gets one.
    pub vsock_cid: Option<u64>,
    /// A network device on a tap of the host, `eth0` in the guest.
    pub net: Option<NetConfig>,
}

/// A network device for the guest: virtio-net on a tap of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The tap's name, in the network namespace the monitor runs in (created when there
    /// is no interface of that name).
    pub tap: String,
    /// The guest's MAC address.
    pub mac: virtio::net::Mac,
}

/// A disk for the guest: a raw image file on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// The image.
    pub path: PathBuf,
    /// Whether the guest may only read it.
    pub read_only: bool,
}

/// The `GET_ID` answer of the guest's disk.
const DISK_ID: &str = "vcbench-disk0";

/// Errors that stop a Linux guest from being built (the guest's own failure is an [`End`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Too little memory.
    #[error(
        "{0} MiB of guest memory is too little for a Linux guest: at least {MIN_MEMORY_MIB} MiB"
    )]
    MemoryTooSmall(u64),
    /// Too much memory.
    #[error("{0} MiB of guest memory is more than {MAX_MEMORY_MIB} MiB")]
    MemoryTooLarge(u64),
    /// A vCPU count the MP table cannot describe.
    #[error("bad vCPU count")]
    Vcpus(#[from] mptable::Error),
    /// The command line is too long or holds a NUL byte.
    #[error("the kernel command line must be under {CMDLINE_MAX} bytes without NUL bytes ({len} bytes given)")]
    Cmdline {
        /// Its length.
        len: usize,
    },
    /// A zero timeout.
    #[error("the guest's timeout is zero")]
    ZeroTimeout,
    /// The kernel is unusable.
    #[error(transparent)]
    Kernel(#[from] image::Error),
    /// The initrd could not be read.
    #[error("cannot read the initrd {path}")]
    Initrd {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The boot parameters could not be laid out.
    #[error(transparent)]
    BootParams(#[from] boot_params::Error),
    /// A KVM call setting a vCPU up failed.
    #[error("KVM: cannot {what}")]
    Kvm {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// KVM took only some of the MSRs.
    #[error("KVM accepted {set} of the {asked} boot MSRs")]
    Msrs {
        /// Set.
        set: usize,
        /// Asked.
        asked: usize,
    },
    /// The zero page could not be written.
    #[error("cannot write the boot parameters into guest memory")]
    Configure(#[source] linux_loader::configurator::Error),
    /// The VM, its memory, its vCPUs or its devices could not be built.
    #[error(transparent)]
    Machine(#[from] machine::Error),
    /// The disk image is unusable.
    #[error(transparent)]
    Disk(#[from] virtio::block::Error),
    /// A snapshot could not be written or read.
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
    /// A guest's state could not be saved or restored.
    #[error("cannot save or restore the guest's state")]
    State(#[from] state::Error),
    /// The guest has a device whose state a snapshot does not hold.
    #[error(
        "a guest with {0} cannot be snapshotted: its state lives outside guest memory (queues \
         in flight, the host's file or socket), and a restored copy would share it"
    )]
    SnapshotDevice(&'static str),
    /// The guest ended before its snapshot point, or could not be paused there.
    #[error("no snapshot was taken: {0}")]
    NoSnapshot(String),
    /// The snapshot is of another kind of guest.
    #[error("{0} holds a micro guest; restore it as one")]
    NotLinux(PathBuf),
    /// The saved serial console state does not fit the UART.
    #[error("the snapshot's serial console state holds more bytes than the UART's FIFO")]
    SerialState,
    /// The disk's notification thread could not be started.
    #[error("cannot start a virtio device's notification thread")]
    Notifier(#[from] virtio::mmio::Error),
    /// The vsock device could not be set up.
    #[error(transparent)]
    Vsock(#[from] virtio::vsock::Error),
    /// The tap cannot be opened.
    #[error(transparent)]
    Tap(#[from] virtio::tap::Error),
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
    move |source| Error::Kvm { what, source }
}

impl Config {
    /// The command line the kernel gets: the one given, with the disk's device announced
    /// among the kernel's parameters (before init's `--`).
    pub fn full_cmdline(&self) -> String {
        let mut line = match &self.disk {
            Some(_) => {
                let device =
                    virtio::mmio::cmdline_entry(layout::VIRTIO_MMIO_START, layout::VIRTIO_IRQ);
                super::cmdline::with_kernel_param(&self.cmdline, &device)
            }
            None => self.cmdline.clone(),
        };
        if self.net.is_some() {
            let device = virtio::mmio::cmdline_entry(layout::NET_MMIO_START, layout::NET_IRQ);
            line = super::cmdline::with_kernel_param(&line, &device);
        }
        if self.vsock_cid.is_some() {
            let device = virtio::mmio::cmdline_entry(layout::VSOCK_MMIO_START, layout::VSOCK_IRQ);
            line = super::cmdline::with_kernel_param(&line, &device);
        }
        line
    }

    /// Checks everything that needs no KVM.
    pub fn check(&self) -> Result<(), Error> {
        if self.memory_mib < MIN_MEMORY_MIB {
            return Err(Error::MemoryTooSmall(self.memory_mib));
        }
        if self.memory_mib > MAX_MEMORY_MIB {
            return Err(Error::MemoryTooLarge(self.memory_mib));
        }
        mptable::mptable(self.vcpus)?;
        let cmdline = self.full_cmdline();
        if cmdline.len() >= CMDLINE_MAX || cmdline.contains('\0') {
            return Err(Error::Cmdline { len: cmdline.len() });
        }
        if self.timeout.is_zero() {
            return Err(Error::ZeroTimeout);
        }
        if let Some(cid) = self.vsock_cid {
            virtio::vsock::check_cid(cid)?;
        }
        if let Some(net) = &self.net {
            virtio::tap::check_name(&net.tap)?;
        }
        Ok(())
    }
}

/// Boots the guest `config` describes, hands each console line to `on_line` as it comes,
/// runs the guest to its end, calls `before_teardown` with the report while the VM still
/// exists, and tears it down.
pub fn run(
    config: &Config,
    on_line: LineHandler,
    before_teardown: impl FnOnce(&Report),
) -> Result<Report, Error> {
    run_saving(config, None, on_line, before_teardown).map(|(report, _)| report)
}

/// Like [`run`], pausing the guest when its init writes its first marker
/// ([`layout::MARKER_INIT`]) to save a snapshot of it to `path` ([`crate::snapshot`],
/// [`state`]), then letting it run on to its end (phase `snapshot_saved`). Returns the
/// report and the snapshot's header. A guest with a virtio device (disk, vsock, network)
/// is refused: the device's queues in flight and its back end (the disk's image, the
/// host's socket or tap) live outside guest memory, and the guest and every restored copy
/// would share them (two guests writing one disk image). The monitor's process writes a
/// file here, so a monitor that snapshots does not run under its system call filter.
pub fn snapshot_to(
    config: &Config,
    path: &std::path::Path,
    on_line: LineHandler,
    before_teardown: impl FnOnce(&Report),
) -> Result<(Report, snapshot::Header), Error> {
    if config.disk.is_some() {
        return Err(Error::SnapshotDevice("a disk"));
    }
    if config.vsock_cid.is_some() {
        return Err(Error::SnapshotDevice("a vsock device"));
    }
    if config.net.is_some() {
        return Err(Error::SnapshotDevice("a network device"));
    }
    let (report, header) = run_saving(config, Some(path), on_line, before_teardown)?;
    let header = header.ok_or_else(|| Error::NoSnapshot("the guest never paused".to_owned()))?;
    Ok((report, header))
}

fn run_saving(
    config: &Config,
    snapshot_path: Option<&std::path::Path>,
    on_line: LineHandler,
    before_teardown: impl FnOnce(&Report),
) -> Result<(Report, Option<snapshot::Header>), Error> {
    config.check()?;
    let kernel = image::Image::open(&config.kernel)?;
    let initrd = match &config.initrd {
        Some(path) => Some(std::fs::read(path).map_err(|source| Error::Initrd {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let disk = match &config.disk {
        Some(disk) => Some(virtio::block::Image::open(&disk.path, disk.read_only)?),
        None => None,
    };
    let tap = match &config.net {
        Some(net) => Some(virtio::tap::Tap::open(&net.tap)?),
        None => None,
    };
    let memory_bytes = config.memory_mib << 20;
    let mut phases = Phases::new();

    // 1-3. KVM, the VM with its interrupt controllers, its memory.
    let spec = Spec {
        vcpus: config.vcpus,
        memory_bytes,
        interrupts: Interrupts::InKernel,
        capabilities: &[
            (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
            (Cap::MpState, "KVM_CAP_MP_STATE"),
        ],
    };
    let mut machine = Machine::new(spec, &mut phases)?;

    // 4. Kernel, initrd, command line, boot parameters, MP table, boot page tables.
    let loaded = kernel.load(machine.memory())?;
    let initrd_span = match &initrd {
        Some(bytes) => {
            let size = bytes.len() as u64;
            let at = boot_params::initrd_address(
                memory_bytes,
                size,
                loaded.end,
                loaded.header.as_ref(),
            )?;
            machine.write("initrd", bytes, at)?;
            Some((at, size))
        }
        None => None,
    };
    let full_cmdline = config.full_cmdline();
    let mut cmdline = full_cmdline.clone().into_bytes();
    cmdline.push(0);
    machine.write("command line", &cmdline, CMDLINE_START)?;
    let params =
        boot_params::boot_params(loaded.header, full_cmdline.len(), initrd_span, memory_bytes);
    LinuxBootConfigurator::write_bootparams::<vm_memory::GuestMemoryMmap>(
        &BootParams::new(&params, GuestAddress(ZERO_PAGE_START)),
        machine.memory(),
    )
    .map_err(Error::Configure)?;
    machine.write("MP table", &mptable::mptable(config.vcpus)?, MPTABLE_START)?;
    machine.write_long_mode_tables()?;
    // The images are in guest memory now: their copies in the monitor would only count
    // as its own overhead for the rest of the run.
    let kernel_version = kernel.version.clone();
    drop(kernel);
    drop(initrd);
    stamp(&mut phases, "kernel_loaded");

    // 5. vCPUs.
    let supported = machine
        .kvm()
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm("read the supported CPUID"))?;
    let msrs = cpu_state::boot_msrs();
    let msr_list = Msrs::from_entries(&msrs).map_err(|_| Error::Msrs {
        set: 0,
        asked: msrs.len(),
    })?;
    let host = cpuid::Host {
        tsc_deadline: machine.kvm().check_extension(Cap::TscDeadlineTimer),
    };
    machine.create_vcpus(|index, vcpu| {
        let mut cpuid = supported.clone();
        cpuid::filter(cpuid.as_mut_slice(), index, config.vcpus, host);
        vcpu.set_cpuid2(&cpuid)
            .map_err(kvm("set the vCPU's CPUID"))?;
        let set = vcpu
            .set_msrs(&msr_list)
            .map_err(kvm("set the vCPU's MSRs"))?;
        if set != msrs.len() {
            return Err(Error::Msrs {
                set,
                asked: msrs.len(),
            });
        }
        let mut lapic = vcpu.get_lapic().map_err(kvm("read the local APIC"))?;
        cpu_state::wire_lint_pins(&mut lapic);
        vcpu.set_lapic(&lapic).map_err(kvm("set the local APIC"))?;
        vcpu.set_fpu(&cpu_state::boot_fpu())
            .map_err(kvm("set the vCPU's FPU"))?;
        if index == 0 {
            machine::enter_at(vcpu, Mode::Long, &cpu_state::boot_regs(loaded.entry))?;
        }
        Ok(())
    })?;
    stamp(&mut phases, "vcpus_created");

    // 6. Devices. A kernel panic on the console wakes the supervisor at once.
    let notes = mpsc::channel::<Note>();
    let on_line = watching_panics(on_line, notes.0.clone());
    let irq = machine.irq_line(layout::SERIAL_IRQ)?;
    let (console, serial) = Console::with_interrupt(irq, on_line);
    // Shared with the bus, so a snapshot can read its registers.
    let console = Arc::new(Mutex::new(console));
    let (mut buses, markers) = machine::buses(
        MmioPolicy::Ignore,
        Some(Box::new(SharedConsole(Arc::clone(&console)))),
    )?;
    let disk = match disk {
        Some(image) => Some(attach_disk(&machine, &mut buses, image)?),
        None => None,
    };
    let vsock = match config.vsock_cid {
        Some(cid) => Some(attach_vsock(&machine, &mut buses, cid)?),
        None => None,
    };
    let net = match (tap, &config.net) {
        (Some(tap), Some(net)) => Some(attach_net(&machine, &mut buses, tap, net.mac)?),
        _ => None,
    };
    stamp(&mut phases, "vm_built");

    // 7-8. Run.
    let symbols = symbols::Symbols::beside(&config.kernel);
    let shared = Shared::new(
        buses,
        Arc::clone(&markers),
        usize::from(config.vcpus),
        symbols,
    );
    let shared = match snapshot_path {
        Some(_) => shared.pausing(state::msr_indices(machine.kvm())?),
        None => shared,
    };
    let entry = Mutex::new(None);
    let saved = std::cell::RefCell::new(None);
    let (vcpus, vm, ram) = machine.running_parts();
    let mut take = |states: Result<Vec<VcpuState>, String>| {
        if let Some(path) = snapshot_path {
            let linux = |vcpus| -> Result<state::LinuxState, String> {
                let serial = console
                    .lock()
                    .map_err(|_| "the console panicked".to_owned())?
                    .state();
                Ok(state::LinuxState {
                    kernel: kernel_version.clone(),
                    vcpus,
                    vm: state::VmState::save(vm).map_err(|e| error_chain(&e))?,
                    serial: state::SerialState::from(&serial),
                })
            };
            let header = states.and_then(linux).and_then(|linux| {
                snapshot::write_linux(path, memory_bytes, linux, |file, at| {
                    ram.save_resident(file, at).map_err(std::io::Error::other)
                })
                .map_err(|e| error_chain(&e))
            });
            *saved.borrow_mut() = Some((header, crate::monotonic_ns()));
        }
    };
    let counts = run_vcpus(vcpus, &shared, &entry, config.timeout, notes, &mut take);
    if let Some(at) = entry.lock().ok().and_then(|e| *e) {
        phases.push(("kernel_entry", at));
    }
    let (end, ended_at, diagnosis) = shared.ending();
    let markers = markers.lock().map(|m| m.clone()).unwrap_or_default();
    if let Some(&(_, first)) = markers.stamps.first() {
        phases.push(("first_marker", first));
    }
    let saved = match (snapshot_path, saved.into_inner()) {
        (None, _) => None,
        (Some(_), Some((Ok(header), at))) => {
            phases.push(("snapshot_saved", at));
            Some(header)
        }
        (Some(_), Some((Err(why), _))) => return Err(Error::NoSnapshot(why)),
        (Some(_), None) => {
            return Err(Error::NoSnapshot(format!(
                "the guest ended before its init's first marker: {}",
                describe_end(&end)
            )))
        }
    };
    let clean = matches!(end, End::PoweredOff | End::Reset | End::Halted);
    phases.push((if clean { "powered_off" } else { "stopped" }, ended_at));
    let serial = serial.lock().map(|c| c.clone()).unwrap_or_default();
    let mut cpu = vec![(
        "guest_tsc_deadline_offered".to_owned(),
        u64::from(host.tsc_deadline),
    )];
    if let Some(header) = &saved {
        cpu.extend(snapshot_figures(header));
    }
    let mut report = Report {
        diagnosis,
        cpu,
        phases,
        markers,
        exits: counts,
        serial,
        end,
        guest_touched_kib: machine.guest_touched_kib(),
        kernel: kernel_version,
        devices: disk
            .as_ref()
            .map(GuestDisk::counters)
            .unwrap_or_default()
            .into_iter()
            .chain(vsock.as_ref().map(vsock_counters).unwrap_or_default())
            .chain(net.as_ref().map(GuestNet::counters).unwrap_or_default())
            .collect(),
    };
    before_teardown(&report);

    // 9. Teardown: the disk's notification thread, the devices with the interrupt lines,
    // then the machine (its vCPUs, the VM, then its memory).
    drop(disk);
    drop(vsock);
    drop(net);
    drop(shared);
    drop(machine);
    report.phases.push(("torn_down", crate::monotonic_ns()));
    Ok((report, saved))
}

/// The guest's disk: its transport, shared with the MMIO bus, and the thread that serves
/// its notifications when KVM catches them (dropping it stops the thread).
struct GuestDisk {
    transport: Arc<Mutex<virtio::mmio::Transport<virtio::block::Block<std::fs::File>>>>,
    _notifier: Option<virtio::mmio::Notifier>,
}

impl GuestDisk {
    /// What the disk served, as the report's `disk_*` counts.
    fn counters(&self) -> Vec<(String, u64)> {
        let Ok(transport) = self.transport.lock() else {
            return Vec::new();
        };
        let c = transport.device().counters();
        [
            ("disk_reads", c.reads),
            ("disk_writes", c.writes),
            ("disk_flushes", c.flushes),
            ("disk_bytes_read", c.bytes_read),
            ("disk_bytes_written", c.bytes_written),
            ("disk_errors", c.errors),
            ("disk_interrupts", c.interrupts),
            ("disk_notifications", transport.notifications()),
        ]
        .into_iter()
        .map(|(name, n)| (name.to_owned(), n))
        .collect()
    }
}

/// Puts a virtio-blk device on `image` on the MMIO bus at [`layout::VIRTIO_MMIO_START`],
/// interrupting on [`layout::VIRTIO_IRQ`] through `KVM_IRQFD`. Where KVM offers
/// `KVM_CAP_IOEVENTFD`, the guest's queue notifications are caught by KVM and served by a
/// thread of their own; otherwise they are MMIO exits and served on the vCPU's thread.
fn attach_disk(
    machine: &Machine,
    buses: &mut Buses,
    image: virtio::block::Image,
) -> Result<GuestDisk, Error> {
    let device = virtio::block::Block::new(image.file, image.len, image.read_only, DISK_ID);
    let irq = machine.irq_line(layout::VIRTIO_IRQ)?;
    let transport = virtio::mmio::Transport::new(device, machine.memory().clone(), irq.0);
    let transport = Arc::new(Mutex::new(transport));
    buses
        .mmio
        .register(
            layout::VIRTIO_MMIO_START,
            virtio::mmio::MMIO_SIZE,
            Box::new(virtio::mmio::Shared(Arc::clone(&transport))),
        )
        .map_err(machine::Error::from)?;
    let notifier = match machine.has_ioeventfd() {
        true => {
            let notify =
                machine.mmio_write_event(layout::VIRTIO_MMIO_START + virtio::mmio::QUEUE_NOTIFY)?;
            Some(virtio::mmio::Notifier::spawn(
                Arc::clone(&transport),
                notify,
            )?)
        }
        false => None,
    };
    Ok(GuestDisk {
        transport,
        _notifier: notifier,
    })
}

/// The guest's vsock device, shared with the MMIO bus.
type GuestVsock = Arc<Mutex<virtio::mmio::Transport<virtio::vsock::Vsock>>>;

/// What the vsock device did, as the report's `vsock_*` counts.
fn vsock_counters(transport: &GuestVsock) -> Vec<(String, u64)> {
    let Ok(transport) = transport.lock() else {
        return Vec::new();
    };
    let c = transport.device().counters();
    [
        ("vsock_activations", c.activations),
        ("vsock_activation_errors", c.activation_errors),
        ("vsock_kicks_passed_on", c.kicks_passed_on),
        ("vsock_notifications", transport.notifications()),
    ]
    .into_iter()
    .map(|(name, n)| (name.to_owned(), n))
    .collect()
}

/// Puts a virtio-vsock device for CID `cid` on the MMIO bus at
/// [`layout::VSOCK_MMIO_START`], interrupting on [`layout::VSOCK_IRQ`]. Its data queues
/// are served by the host kernel (vhost-vsock): where KVM offers `KVM_CAP_IOEVENTFD`,
/// the guest's notification of each data queue signals the kernel directly; otherwise it
/// is an MMIO exit that the monitor passes on.
fn attach_vsock(machine: &Machine, buses: &mut Buses, cid: u64) -> Result<GuestVsock, Error> {
    let notify = layout::VSOCK_MMIO_START + virtio::mmio::QUEUE_NOTIFY;
    let kick = |queue: u32| -> Result<vmm_sys_util::eventfd::EventFd, Error> {
        match machine.has_ioeventfd() {
            true => Ok(machine.mmio_write_event_matching(notify, queue)?),
            false => vmm_sys_util::eventfd::EventFd::new(vmm_sys_util::eventfd::EFD_NONBLOCK)
                .map_err(|source| {
                    Error::Machine(machine::Error::Host {
                        what: "vsock notification eventfd",
                        source,
                    })
                }),
        }
    };
    let irq = machine.irq_line(layout::VSOCK_IRQ)?;
    let interrupt = irq.0.try_clone().map_err(|source| {
        Error::Machine(machine::Error::Host {
            what: "vsock interrupt eventfd",
            source,
        })
    })?;
    let device = virtio::vsock::Vsock::new(cid, machine.memory(), [kick(0)?, kick(1)?], interrupt)?;
    let transport = Arc::new(Mutex::new(virtio::mmio::Transport::new(
        device,
        machine.memory().clone(),
        irq.0,
    )));
    buses
        .mmio
        .register(
            layout::VSOCK_MMIO_START,
            virtio::mmio::MMIO_SIZE,
            Box::new(virtio::mmio::Shared(Arc::clone(&transport))),
        )
        .map_err(machine::Error::from)?;
    Ok(transport)
}

/// The guest's network device: its transport, shared with the MMIO bus, and the thread
/// that serves its queues' notifications and its tap (dropping it stops the thread).
struct GuestNet {
    transport: Arc<Mutex<virtio::mmio::Transport<virtio::net::Net<virtio::tap::Tap>>>>,
    notifier: virtio::mmio::Notifier,
}

impl GuestNet {
    /// What the network device carried, as the report's `net_*` counts.
    fn counters(&self) -> Vec<(String, u64)> {
        let Ok(transport) = self.transport.lock() else {
            return Vec::new();
        };
        let c = transport.device().counters();
        [
            ("net_rx_frames", c.rx_frames),
            ("net_rx_bytes", c.rx_bytes),
            ("net_tx_frames", c.tx_frames),
            ("net_tx_bytes", c.tx_bytes),
            (
                "net_rx_notifications",
                transport.queue_notifications(virtio::net::RX_QUEUE),
            ),
            (
                "net_tx_notifications",
                transport.queue_notifications(virtio::net::TX_QUEUE),
            ),
            ("net_notifications", transport.notifications()),
            ("net_interrupts", c.interrupts),
            ("net_rx_waits", c.rx_waits),
            ("net_rx_dropped_too_big", c.rx_dropped_too_big),
            ("net_rx_dropped_reset", c.rx_dropped_reset),
            ("net_rx_bad_chains", c.rx_bad_chains),
            ("net_rx_host_errors", c.rx_host_errors),
            ("net_tx_dropped_malformed", c.tx_dropped_malformed),
            ("net_tx_dropped_host", c.tx_dropped_host),
            ("net_queue_errors", c.queue_errors),
            ("net_tap_reads", c.tap_reads),
            ("net_tap_writes", c.tap_writes),
            ("net_thread_wakeups", self.notifier.wakeups()),
        ]
        .into_iter()
        .map(|(name, n)| (name.to_owned(), n))
        .collect()
    }
}

/// Puts a virtio-net device on `tap` on the MMIO bus at [`layout::NET_MMIO_START`],
/// interrupting on [`layout::NET_IRQ`] through `KVM_IRQFD`. A thread of its own serves
/// the tap's frames; where KVM offers `KVM_CAP_IOEVENTFD`, it also serves the guest's
/// notifications of each queue (one eventfd per queue, matched on the queue's index);
/// otherwise they are MMIO exits served on the vCPU's thread.
fn attach_net(
    machine: &Machine,
    buses: &mut Buses,
    tap: virtio::tap::Tap,
    mac: virtio::net::Mac,
) -> Result<GuestNet, Error> {
    let device = virtio::net::Net::new(tap, mac);
    let irq = machine.irq_line(layout::NET_IRQ)?;
    let transport = virtio::mmio::Transport::new(device, machine.memory().clone(), irq.0);
    let transport = Arc::new(Mutex::new(transport));
    buses
        .mmio
        .register(
            layout::NET_MMIO_START,
            virtio::mmio::MMIO_SIZE,
            Box::new(virtio::mmio::Shared(Arc::clone(&transport))),
        )
        .map_err(machine::Error::from)?;
    let mut notify = Vec::new();
    if machine.has_ioeventfd() {
        let register = layout::NET_MMIO_START + virtio::mmio::QUEUE_NOTIFY;
        for queue in [virtio::net::RX_QUEUE, virtio::net::TX_QUEUE] {
            let index = queue as u32;
            notify.push((machine.mmio_write_event_matching(register, index)?, index));
        }
    }
    let notifier = virtio::mmio::Notifier::spawn_queues(Arc::clone(&transport), notify)?;
    Ok(GuestNet {
        transport,
        notifier,
    })
}

/// `on_line`, with a kernel panic's line also sent to the supervisor, which it wakes at
/// once.
pub(super) fn watching_panics(on_line: LineHandler, notes: mpsc::Sender<Note>) -> LineHandler {
    let mut on_line = on_line;
    Box::new(move |line: &str, at: u64| {
        if line.contains(KERNEL_PANIC) {
            let _ = notes.send(Note::Panicked(line.to_owned()));
        }
        on_line(line, at);
    })
}

/// What the vCPU threads and the supervisor share.
pub(super) struct Shared {
    buses: Mutex<Buses>,
    markers: Arc<Mutex<Markers>>,
    /// Set when the guest has ended; every thread leaves its loop.
    stop: AtomicBool,
    /// How it ended, and when the monitor saw it.
    pub(super) end: Mutex<Option<(End, u64)>>,
    /// Each vCPU thread, once it runs, for kicks.
    threads: Mutex<Vec<Option<crate::kick::Thread>>>,
    /// The current state-check round.
    round: AtomicU64,
    /// Each vCPU's answer: round << 2 | halted with interrupts off << 1 | stopped.
    states: Vec<AtomicU64>,
    /// When each vCPU gave its answer.
    answered_at: Vec<AtomicU64>,
    /// Whether the power-off marker was announced to the supervisor.
    announced: AtomicBool,
    /// Where each vCPU was when the guest was stopped at its timeout.
    pub(super) stuck: Mutex<Vec<String>>,
    /// The kernel's symbols, to name where a vCPU was.
    symbols: Option<symbols::Symbols>,
    /// Set for a run that snapshots its guest: the pause, each vCPU leaving its state.
    pause: Option<Pause<Result<VcpuState, String>>>,
    /// The MSRs a snapshot saves ([`state::msr_indices`]).
    msr_indices: Vec<u32>,
}

impl Shared {
    /// How the guest ended and when (its timeout, when nothing ended it sooner), and at a
    /// timeout where each vCPU was.
    pub(super) fn ending(&self) -> (End, u64, Option<String>) {
        let (end, at) = self
            .end
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or((End::TimedOut, crate::monotonic_ns()));
        let diagnosis = match end {
            End::TimedOut => self.stuck.lock().ok().map(|s| s.join("\n")),
            _ => None,
        };
        (end, at, diagnosis)
    }
}

impl Shared {
    pub(super) fn new(
        buses: Buses,
        markers: Arc<Mutex<Markers>>,
        vcpus: usize,
        symbols: Option<symbols::Symbols>,
    ) -> Self {
        Shared {
            buses: Mutex::new(buses),
            markers,
            stop: AtomicBool::new(false),
            end: Mutex::new(None),
            threads: Mutex::new(vec![None; vcpus]),
            round: AtomicU64::new(0),
            states: (0..vcpus).map(|_| AtomicU64::new(0)).collect(),
            answered_at: (0..vcpus).map(|_| AtomicU64::new(0)).collect(),
            announced: AtomicBool::new(false),
            stuck: Mutex::new(vec![String::new(); vcpus]),
            symbols,
            pause: None,
            msr_indices: Vec::new(),
        }
    }

    /// The same, for a run that pauses its guest at its snapshot point to save the MSRs
    /// of `msr_indices` and the rest of each vCPU's state.
    fn pausing(mut self, msr_indices: Vec<u32>) -> Self {
        self.pause = Some(Pause::new(self.states.len()));
        self.msr_indices = msr_indices;
        self
    }

    /// Whether the guest just reached its snapshot point: its init's first marker.
    fn at_snapshot_point(&self) -> bool {
        self.markers
            .lock()
            .is_ok_and(|m| m.last.is_some_and(|(code, _)| code == layout::MARKER_INIT))
    }

    /// Whether the guest ended by its timeout.
    fn timed_out(&self) -> bool {
        self.end
            .lock()
            .is_ok_and(|e| matches!(*e, Some((End::TimedOut, _))))
    }

    /// Records the end (the first one wins) and stops every vCPU.
    fn finish(&self, end: End, at: u64) {
        if let Ok(mut slot) = self.end.lock() {
            if slot.is_none() {
                *slot = Some((end, at));
            }
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    fn kick_all(&self) {
        if let Ok(threads) = self.threads.lock() {
            for thread in threads.iter().flatten() {
                crate::kick::kick(*thread);
            }
        }
    }

    /// Whether the guest announced its power-off.
    fn powering_off(&self) -> bool {
        self.markers
            .lock()
            .is_ok_and(|m| m.last.is_some_and(|(code, _)| code == MARKER_POWEROFF))
    }

    /// The time the guest was seen stopped in `round`, if every vCPU answered that it is
    /// stopped and at least one halted with interrupts off.
    fn stopped_in(&self, round: u64) -> Option<u64> {
        let mut halted = false;
        for state in &self.states {
            let s = state.load(Ordering::SeqCst);
            if s >> 2 != round || s & 1 == 0 {
                return None;
            }
            halted |= s & 2 != 0;
        }
        halted.then(|| {
            self.answered_at
                .iter()
                .map(|a| a.load(Ordering::SeqCst))
                .max()
                .unwrap_or(0)
        })
    }
}

/// Runs each vCPU on its own thread and supervises them; returns the exits they counted.
pub(super) fn run_vcpus(
    vcpus: &mut [VcpuFd],
    shared: &Shared,
    entry: &Mutex<Option<u64>>,
    timeout: Duration,
    (done_tx, done_rx): (mpsc::Sender<Note>, mpsc::Receiver<Note>),
    take: &mut dyn FnMut(Result<Vec<VcpuState>, String>),
) -> ExitCounts {
    crate::kick::install();
    let deadline = Instant::now() + timeout;
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (index, vcpu) in vcpus.iter_mut().enumerate() {
            let done = done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("vcpu{index}"))
                .spawn_scoped(scope, move || {
                    let first = (index == 0).then_some(entry);
                    let counts = vcpu_loop(index, vcpu, shared, first, &done);
                    let _ = done.send(Note::Ended);
                    counts
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(source) => {
                    shared.finish(
                        End::Failed {
                            reason: format!("cannot start a vCPU thread: {source}"),
                            registers: String::new(),
                        },
                        crate::monotonic_ns(),
                    );
                    break;
                }
            }
        }
        drop(done_tx);
        // The supervisor, too, runs under the filter once the vCPUs run.
        match crate::seccomp::on_guest_thread() {
            Ok(()) => supervise(shared, &done_rx, deadline, take),
            Err(e) => shared.finish(
                End::Failed {
                    reason: error_chain(&e),
                    registers: String::new(),
                },
                crate::monotonic_ns(),
            ),
        }
        // A vCPU that paused after the supervisor stopped waiting goes on, and ends.
        if let Some(pause) = &shared.pause {
            pause.release();
        }
        // Stop every thread: kick until each has left its loop (a kick that lands outside
        // KVM_RUN is lost, so once is not enough).
        while !handles.iter().all(|h| h.is_finished()) {
            shared.kick_all();
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut total = ExitCounts::default();
        for handle in handles {
            if let Ok(c) = handle.join() {
                total.io_out += c.io_out;
                total.io_in += c.io_in;
                total.io_unhandled += c.io_unhandled;
                total.mmio += c.mmio;
                total.hlt += c.hlt;
                total.shutdown += c.shutdown;
                total.other += c.other;
            }
        }
        total
    })
}

/// Waits for the guest's end: a vCPU thread's own (reset, failure), a kernel panic, the
/// timeout, or, once the guest has announced its power-off, all vCPUs found stopped by a
/// state check. Nothing interrupts the guest before its power-off marker.
///
/// When a vCPU announces the snapshot point, every vCPU is kicked until it has paused,
/// `take` is handed their states (or why they could not all pause), and they go on.
fn supervise(
    shared: &Shared,
    notes: &mpsc::Receiver<Note>,
    deadline: Instant,
    take: &mut dyn FnMut(Result<Vec<VcpuState>, String>),
) {
    loop {
        let powering_off = shared.powering_off();
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = match powering_off {
            true => STATE_CHECK_POWERING_OFF.min(left),
            false => left,
        };
        match notes.recv_timeout(wait) {
            // A vCPU thread ended: it has recorded why.
            Ok(Note::Ended) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                shared.stop.store(true, Ordering::SeqCst);
                return;
            }
            Ok(Note::Panicked(line)) => {
                let reason = format!("the guest's kernel panicked: {}", line.trim());
                shared.finish(
                    End::Failed {
                        reason,
                        registers: String::new(),
                    },
                    crate::monotonic_ns(),
                );
                return;
            }
            Ok(Note::PoweringOff) => continue,
            Ok(Note::Pausing) => {
                if let Some(pause) = &shared.pause {
                    let states = pause.wait_all(
                        PAUSE_KICK,
                        deadline,
                        || shared.kick_all(),
                        || shared.stop.load(Ordering::SeqCst),
                    );
                    let states = match states {
                        Some(states) => states.into_iter().collect(),
                        None => Err("not every vCPU paused before the guest ended".to_owned()),
                    };
                    take(states);
                    pause.release();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let round = shared.round.load(Ordering::SeqCst);
        if powering_off {
            if let Some(at) = shared.stopped_in(round) {
                shared.finish(End::PoweredOff, at);
                return;
            }
        }
        if Instant::now() >= deadline {
            shared.finish(End::TimedOut, crate::monotonic_ns());
            return;
        }
        if powering_off {
            shared.round.store(round + 1, Ordering::SeqCst);
            shared.kick_all();
        }
    }
}

/// One vCPU's loop. The boot vCPU stamps `entry` just before it first enters the guest.
fn vcpu_loop(
    index: usize,
    vcpu: &mut VcpuFd,
    shared: &Shared,
    entry: Option<&Mutex<Option<u64>>>,
    notes: &mpsc::Sender<Note>,
) -> ExitCounts {
    if let Ok(mut threads) = shared.threads.lock() {
        threads[index] = Some(crate::kick::this_thread());
    }
    let mut counts = ExitCounts::default();
    // From here on this thread makes only the calls running the guest needs.
    if let Err(e) = crate::seccomp::on_guest_thread() {
        shared.finish(
            End::Failed {
                reason: error_chain(&e),
                registers: String::new(),
            },
            crate::monotonic_ns(),
        );
        return counts;
    }
    if let Some(entry) = entry {
        if let Ok(mut e) = entry.lock() {
            *e = Some(crate::monotonic_ns());
        }
    }
    while !shared.stop.load(Ordering::SeqCst) {
        if let Some(pause) = shared.pause.as_ref().filter(|p| p.wanted()) {
            let saved = complete_exit(vcpu, shared, &mut counts).and_then(|()| {
                VcpuState::save(vcpu, &shared.msr_indices).map_err(|e| error_chain(&e))
            });
            pause.park(index, saved);
            continue;
        }
        let handle = |exit: exit::Exit<'_>| match shared.buses.lock() {
            Ok(mut buses) => exit::handle(exit, &mut buses, &mut counts),
            Err(_) => Outcome::Failed("a device panicked".to_owned()),
        };
        let outcome = match machine::enter(vcpu, handle) {
            Step::Exit(outcome) => outcome,
            Step::Kicked => {
                answer_state_check(index, vcpu, shared);
                Outcome::Continue
            }
        };
        // The snapshot point pauses every vCPU, once.
        if let Some(pause) = &shared.pause {
            if shared.at_snapshot_point() && pause.request() {
                let _ = notes.send(Note::Pausing);
            }
        }
        // The power-off marker wakes the supervisor, once.
        if !shared.announced.load(Ordering::SeqCst)
            && shared.powering_off()
            && !shared.announced.swap(true, Ordering::SeqCst)
        {
            let _ = notes.send(Note::PoweringOff);
        }
        let at = crate::monotonic_ns();
        let registers = || match machine::registers(vcpu) {
            Some(registers) => format!("vcpu{index}: {registers}"),
            None => "registers unreadable".to_owned(),
        };
        if let Some(end) = End::of(outcome, registers) {
            shared.finish(end, at);
            break;
        }
    }
    if shared.timed_out() {
        let state = where_it_was(index, vcpu, shared.symbols.as_ref());
        if let Ok(mut stuck) = shared.stuck.lock() {
            stuck[index] = state;
        }
    }
    counts
}

/// Where a vCPU stopped at the timeout was: its registers, the kernel function it was in,
/// its run state, and its local APIC timer (a timer that no longer fires leaves a guest
/// halted forever).
fn where_it_was(index: usize, vcpu: &VcpuFd, symbols: Option<&symbols::Symbols>) -> String {
    let mut text = format!("vcpu{index}:");
    match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(regs), Ok(sregs)) => {
            text.push_str(&format!(" {}", crate::vcpu::describe(&regs, &sregs)));
            if let Some(function) = symbols.and_then(|s| s.name(regs.rip)) {
                text.push_str(&format!(" in {function}"));
            }
        }
        _ => text.push_str(" registers unreadable"),
    }
    if let Ok(mp) = vcpu.get_mp_state() {
        let state = match mp.mp_state {
            KVM_MP_STATE_HALTED => "halted",
            KVM_MP_STATE_UNINITIALIZED => "never started",
            KVM_MP_STATE_INIT_RECEIVED => "waiting for its start-up IPI",
            0 => "runnable",
            _ => "other",
        };
        text.push_str(&format!("; {state}"));
    }
    if let Ok(lapic) = vcpu.get_lapic() {
        text.push_str(&format!("; {}", cpu_state::lapic_timer(&lapic)));
    }
    text
}

/// Tells the supervisor whether this vCPU is stopped: halted with interrupts off (Linux's
/// end after "System halted"), or never started (waiting for its start-up IPI).
fn answer_state_check(index: usize, vcpu: &VcpuFd, shared: &Shared) {
    let round = shared.round.load(Ordering::SeqCst);
    let (stopped, halted) = match (vcpu.get_mp_state(), vcpu.get_regs()) {
        (Ok(mp), Ok(regs)) => match mp.mp_state {
            KVM_MP_STATE_HALTED => {
                let off = regs.rflags & RFLAGS_IF == 0;
                (off, off)
            }
            KVM_MP_STATE_UNINITIALIZED | KVM_MP_STATE_INIT_RECEIVED => (true, false),
            _ => (false, false),
        },
        _ => (false, false),
    };
    shared.answered_at[index].store(crate::monotonic_ns(), Ordering::SeqCst);
    shared.states[index].store(
        (round << 2) | (u64::from(halted) << 1) | u64::from(stopped),
        Ordering::SeqCst,
    );
}

/// Completes the vCPU's last exit, so that its registers are those after the
/// instruction it was emulating: KVM finishes an I/O exit only when `KVM_RUN` is entered
/// again, which with `immediate_exit` set returns at once with `EINTR` (an instruction
/// that needs another exit, such as a string I/O, is served on the way).
fn complete_exit(
    vcpu: &mut VcpuFd,
    shared: &Shared,
    counts: &mut ExitCounts,
) -> Result<(), String> {
    for _ in 0..64 {
        vcpu.set_kvm_immediate_exit(1);
        let handle = |exit: exit::Exit<'_>| match shared.buses.lock() {
            Ok(mut buses) => exit::handle(exit, &mut buses, counts),
            Err(_) => Outcome::Failed("a device panicked".to_owned()),
        };
        match machine::enter(vcpu, handle) {
            Step::Kicked => return Ok(()),
            Step::Exit(Outcome::Continue) => {}
            Step::Exit(other) => return Err(format!("the guest ended while pausing: {other:?}")),
        }
    }
    vcpu.set_kvm_immediate_exit(0);
    Err("the vCPU's last exit never completed".to_owned())
}

/// The serial console on the bus, shared with the snapshot that reads its registers.
pub(super) struct SharedConsole(pub(super) Arc<Mutex<Console<IrqLine, LineSink>>>);

impl BusDevice for SharedConsole {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match self.0.lock() {
            Ok(mut console) => console.read(offset, data),
            Err(_) => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Action {
        match self.0.lock() {
            Ok(mut console) => console.write(offset, data),
            Err(_) => Action::None,
        }
    }
}

/// How a guest ended, in words.
fn describe_end(end: &End) -> String {
    match end {
        End::Halted => "it halted".to_owned(),
        End::Reset => "it reset".to_owned(),
        End::PoweredOff => "it powered off".to_owned(),
        End::TimedOut => "at its timeout".to_owned(),
        End::Failed { reason, .. } => reason.clone(),
    }
}

/// A snapshot's sizes, as the report's counts: guest memory saved (the pages the guest
/// had touched) and the file's apparent size, KiB.
fn snapshot_figures(header: &snapshot::Header) -> [(String, u64); 2] {
    [
        (
            "snapshot_memory_saved_kib".to_owned(),
            header.memory_saved / 1024,
        ),
        (
            "snapshot_file_kib".to_owned(),
            (header.memory_offset + header.memory_bytes) / 1024,
        ),
    ]
}

/// An error and its causes, as one line.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
