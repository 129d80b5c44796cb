//! The `microvm` backend: this project's KVM monitor, in a process of its own
//! (`vcbench-vmm`, embedded like the workload), running Linux guests or micro guests.
//!
//! **Linux guests** (when a guest kernel is given with `--kernel`, or one was built with
//! `vcbench kernel build`, and KVM is hardware-assisted): the monitor boots the kernel with
//! the image's initramfs ([`images::initramfs`]), whose `/init` is the byte-identical
//! workload binary, for every workload scenario. The workload, as PID 1, writes the marker
//! port first thing (the monitor stamps "init reached"), writes its records on the serial
//! console (the monitor stamps each line as it arrives), and powers the machine off. The
//! run's phases: `vm_created`, `memory_registered`, `kernel_loaded`, `vcpus_created`,
//! `vm_built`, `kernel_entry`, `init_reached`, `workload_started`, `result`,
//! `powered_off`, `torn_down`, all on the host's CLOCK_MONOTONIC.
//!
//! **Micro guests** have no kernel: `startup` boots `hello` (one marker, then halt),
//! `footprint` boots `touch N` and holds the VM so its memory can be split into the
//! monitor's own overhead and the guest memory touched, `exits` times port-I/O exits (in
//! Linux mode too). The guest's first marker becomes the `started` record.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use microvm::host::KvmFlavour;
use microvm::protocol::{Line, WireReport};
use reports::document::Part;
use workload::record::{Metric, Record};

use super::console::Console;
use super::protocol::{
    Availability, Backend, Calls, Error, Event, Exit, Footprint, Instance, Launch, Reach,
};
use super::supervised::Supervised;
use crate::clock::Stamp;
use crate::procfs;
use crate::scenario::Scenario;

/// The program that formats a Linux guest's disk on the host (e2fsprogs).
pub const MKFS: &str = "mkfs.ext4";
/// How [`MKFS`] formats the disk (before the image's path).
pub const MKFS_OPTIONS: [&str; 8] = [
    "-q",
    "-F",
    "-b",
    "4096",
    "-m",
    "0",
    "-E",
    "lazy_itable_init=0,lazy_journal_init=0",
];
/// The size of a Linux guest's disk for the `file` scenario, bytes: a sparse raw image, far
/// more than the scenario's files need, so the file system is never near full.
pub const DISK_BYTES: u64 = 64 << 20;
/// The guest's disk as its kernel names it: the first virtio-blk device.
pub const GUEST_DISK: &str = "/dev/vda";

/// Guest memory of a microVM unless told otherwise, MiB.
pub const GUEST_MIB: u64 = 128;
/// The kernel command line of a Linux guest, before the workload's environment and
/// arguments: the console on COM1 and quiet, reset through the i8042, no I/O delays on
/// port 0x80 (the marker), one UART probed.
pub const BASE_CMDLINE: &str = "console=ttyS0 reboot=k panic=0 io_delay=none 8250.nr_uarts=1";
/// What `--console` removes from the command line: the kernel's silence.
pub const QUIET: &str = "quiet";
/// The kernel parameter that stamps each console line with the kernel's own time.
pub const PRINTK_TIME: &str = "printk.time=1";
/// How long a held Linux guest (`alloc` for `footprint`) keeps its memory before it ends
/// on its own: the host cannot signal a process inside the guest.
pub const LINUX_HOLD_MS: u64 = 1000;

/// Which guests the backend boots.
#[derive(Debug, Clone, PartialEq)]
pub enum Guests {
    /// Linux guests with this kernel.
    Linux(GuestKernel),
    /// Micro guests only; Linux-only scenarios are skipped for this reason.
    Micro(String),
    /// A kernel was asked for but cannot boot here (why): only micro-guest scenarios run.
    Unbootable(String),
}

/// A guest kernel and what identifies it.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestKernel {
    /// The `vmlinux` or `bzImage`.
    pub path: PathBuf,
    /// Its release (`6.1.192`), as the image announces it.
    pub version: String,
    /// SHA-256 of its `.config`, when it was built by `vcbench kernel build`.
    pub config_sha256: Option<String>,
}

impl GuestKernel {
    /// Checks the kernel at `path` (a truncated or non-kernel file is refused) and finds
    /// its identity.
    pub fn open(path: &Path) -> Result<Self, microvm::linux::image::Error> {
        let image = microvm::linux::image::Image::open(path)?;
        let built = images::kernel::identity_of(path);
        Ok(GuestKernel {
            path: path.to_owned(),
            version: image
                .version
                .or_else(|| built.as_ref().map(|b| b.version.clone()))
                .unwrap_or_else(|| "unknown".to_owned()),
            config_sha256: built.map(|b| b.config_sha256),
        })
    }

    /// One phrase: `Linux 6.1.192, config 964fae3de9817cd3`.
    pub fn describe(&self) -> String {
        match &self.config_sha256 {
            Some(hash) => format!(
                "Linux {}, config {}",
                self.version,
                &hash[..16.min(hash.len())]
            ),
            None => format!(
                "Linux {}, config unknown ({})",
                self.version,
                self.path.display()
            ),
        }
    }
}

/// The microVM backend.
#[derive(Debug, Clone)]
pub struct MicroVm {
    /// Guest memory, MiB.
    pub memory_mib: u64,
    /// vCPUs of a Linux guest.
    pub vcpus: u8,
    /// The guests it boots.
    pub guests: Guests,
    /// Show the guest kernel's log (no `quiet`).
    pub console: bool,
    /// How long a guest may run before the monitor stops it (and reports its console).
    pub guest_timeout: Duration,
    /// Whether the monitor runs under its own system call filter once the guest runs
    /// (`microvm::seccomp`); off only to measure what the filter costs.
    pub seccomp: bool,
    /// The tap a Linux guest's network device is attached to (`--tap`), in the network
    /// namespace the monitor is started in; none without a network.
    pub tap: Option<String>,
    /// The context ID of a Linux guest's vsock device (`--vsock-cid`), served by the host
    /// kernel; none without one.
    pub vsock_cid: Option<u32>,
}

impl Default for MicroVm {
    /// Linux guests with the kernel last built by `vcbench kernel build` when there is one
    /// and KVM is hardware-assisted; micro guests otherwise.
    fn default() -> Self {
        Self::with_guests(Self::guests_for(None))
    }
}

impl MicroVm {
    /// The default settings, booting `guests`.
    pub fn with_guests(guests: Guests) -> Self {
        MicroVm {
            memory_mib: GUEST_MIB,
            vcpus: 1,
            guests,
            console: false,
            guest_timeout: Duration::from_secs(55),
            seccomp: true,
            tap: None,
            vsock_cid: None,
        }
    }

    /// The guests for an explicit `kernel` (already checked), or the cached one.
    pub fn guests_for(kernel: Option<GuestKernel>) -> Guests {
        let explicit = kernel.is_some();
        let kernel = kernel.or_else(|| {
            images::kernel::latest(&images::image::cache_dir())
                .ok()
                .flatten()
                .and_then(|built| GuestKernel::open(&built.vmlinux).ok())
        });
        let Some(kernel) = kernel else {
            // Where no Linux guest can boot, a kernel would not help: say so, not how to
            // get one.
            return Guests::Micro(match microvm::host::kvm_flavour() {
                KvmFlavour::Software { module } => format!(
                    "needs a Linux guest, and this host's KVM is software ({module}), which \
                     cannot boot unmodified Linux: only micro guests run here"
                ),
                _ => "needs a Linux guest kernel: run `vcbench kernel build` or pass --kernel PATH"
                    .to_owned(),
            });
        };
        match microvm::host::kvm_flavour() {
            KvmFlavour::Hardware { .. } => Guests::Linux(kernel),
            KvmFlavour::Software { module } => {
                let why = format!(
                    "needs a Linux guest, and this host's KVM is software ({module}), which cannot boot unmodified Linux; {} was not booted",
                    kernel.describe()
                );
                if explicit {
                    Guests::Unbootable(why)
                } else {
                    Guests::Micro(why)
                }
            }
            KvmFlavour::Unavailable { reason } => Guests::Unbootable(reason),
        }
    }

    fn linux(&self) -> Option<&GuestKernel> {
        match &self.guests {
            Guests::Linux(kernel) => Some(kernel),
            _ => None,
        }
    }

    /// How the monitor's filter is set, for the settings line (nothing for the default).
    fn seccomp_setting(&self) -> &'static str {
        match self.seccomp {
            true => "",
            false => ", monitor without its system call filter",
        }
    }

    /// The kernel command line for the workload `args`.
    pub fn cmdline(&self, args: &[String]) -> String {
        linux_cmdline(self.console, args)
    }
}

/// The kernel command line of a Linux guest whose init runs the workload `args`: quiet
/// unless `console` (then each line stamped with the kernel's time), the workload's records on the console, its markers on the marker
/// port, and a power-off at its end.
pub fn linux_cmdline(console: bool, args: &[String]) -> String {
    linux_cmdline_with(console, false, args)
}

/// [`linux_cmdline`], and with `disk` the guest's init told to mount its disk
/// ([`workload::disk::ENV`]).
pub fn linux_cmdline_with(console: bool, disk: bool, args: &[String]) -> String {
    let mut line = BASE_CMDLINE.to_owned();
    line.push(' ');
    // A shown console carries the kernel's own time of each line, read as boot stamps.
    line.push_str(if console { PRINTK_TIME } else { QUIET });
    if disk {
        line.push_str(&format!(" {}={GUEST_DISK}", workload::disk::ENV));
    }
    line.push_str(&format!(
        " {}=poweroff {}=stdout {}={:#x} --",
        INIT_EXIT_ENV,
        workload::channel::ENV,
        workload::marker::ENV,
        microvm::layout::MARKER_PORT
    ));
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    line
}

/// What the workload, as init, does at the end (its `init` module's variable).
const INIT_EXIT_ENV: &str = "VCBENCH_EXIT";

impl Backend for MicroVm {
    fn name(&self) -> &'static str {
        "microvm"
    }

    fn stamping(&self) -> super::protocol::Stamping {
        super::protocol::Stamping::MonitorExit
    }

    fn describe(&self) -> &'static str {
        "this project's KVM monitor in its own process, booting a Linux guest whose init is the workload (micro guests without a kernel)"
    }

    fn warm(&self) -> Result<Box<dyn Backend>, String> {
        match &self.guests {
            Guests::Linux(kernel) => {
                let initrd = images::initramfs::install(
                    &images::image::cache_dir(),
                    images::initramfs::Compression::None,
                )
                .map_err(|e| format!("cannot install the initramfs: {e}"))?;
                // The warm scenario's workload; an instance asked for another is refused.
                let args = vec!["hello".to_owned()];
                let guest = super::restore::LinuxGuest {
                    kernel: kernel.path.clone(),
                    describe: kernel.describe(),
                    initrd,
                    cmdline: linux_cmdline(self.console, &args),
                    args,
                    vcpus: self.vcpus,
                    timeout_ms: self.guest_timeout.as_millis(),
                };
                super::restore::Restored::prepare_linux(
                    guest,
                    self.memory_mib,
                    self.seccomp,
                    linux_instance,
                )
                .map(|r| Box::new(r) as Box<dyn Backend>)
            }
            _ => super::restore::Restored::prepare(self.memory_mib, self.seccomp, micro_instance)
                .map(|r| Box::new(r) as Box<dyn Backend>),
        }
    }

    fn reach(&self) -> Reach {
        use microvm::seccomp::{Only, ALLOWED};
        let vm_exits = vec![
            "port I/O (serial console, marker, power-off)".to_owned(),
            "MMIO (the monitor's MMIO bus)".to_owned(),
            "HLT and shutdown".to_owned(),
        ];
        match self.seccomp {
            true => Reach {
                filter: "the monitor's own allow-list (seccomp) once the guest runs; the \
                         guest's programs reach only the guest's kernel"
                    .to_owned(),
                calls: Calls::Only(ALLOWED.len()),
                conditional: ALLOWED
                    .iter()
                    .filter(|a| !matches!(a.only, Only::Any))
                    .map(|a| format!("allowed {}", a.describe()))
                    .collect(),
                vm_exits,
            },
            false => Reach {
                filter: "none on the monitor (--seccomp off)".to_owned(),
                calls: Calls::All,
                conditional: Vec::new(),
                vm_exits,
            },
        }
    }

    fn availability(&self) -> Availability {
        match crate::host::kvm_access() {
            Ok(()) => Availability::Available,
            Err(why) => Availability::Unavailable(why),
        }
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        let micro = matches!(
            scenario,
            Scenario::Startup
                | Scenario::Warm
                | Scenario::Footprint
                | Scenario::Exits
                | Scenario::Density
                | Scenario::Isolation
        );
        match &self.guests {
            _ if scenario == Scenario::Exits => Ok(()),
            Guests::Linux(_) if scenario == Scenario::File => disk_formatter(),
            Guests::Linux(_) => Ok(()),
            Guests::Micro(_) if micro => Ok(()),
            Guests::Micro(why) | Guests::Unbootable(why) => Err(why.clone()),
        }
    }

    fn runs_programs(&self) -> Result<(), String> {
        match &self.guests {
            Guests::Linux(_) => Ok(()),
            Guests::Micro(why) | Guests::Unbootable(why) => {
                Err(format!("micro guests run no program to probe: {why}"))
            }
        }
    }

    fn networked(
        &self,
        net: &std::sync::Arc<super::hostnet::RunNet>,
    ) -> Result<Box<dyn Backend>, String> {
        // Micro guests have no network: the same reason as every Linux-only scenario.
        self.supports(Scenario::Hostnet)?;
        super::hostnet::joined::over_tap(self, net, |vm, tap| vm.tap = Some(tap))
    }

    fn over_vsock(
        &self,
        peer: &std::sync::Arc<super::hostnet::vsock::VsockPeer>,
    ) -> Result<Box<dyn Backend>, String> {
        // Micro guests have no vsock driver: the same reason as every Linux-only scenario.
        self.supports(Scenario::Vsock)?;
        super::hostnet::over_vsock::reaching(self, peer, 0, |vm, cid| vm.vsock_cid = Some(cid))
    }

    fn runs_user_images(&self) -> Result<(), String> {
        match &self.guests {
            Guests::Linux(_) => Ok(()),
            Guests::Micro(why) | Guests::Unbootable(why) => Err(why.clone()),
        }
    }

    fn prepare(&self, launch: &Launch) -> Result<(), String> {
        match self.linux() {
            Some(_) => super::image::linux_guest(&launch.args, self.memory_mib)
                .map(drop)
                .map_err(|e| super::protocol::error_chain(&e)),
            None => Ok(()),
        }
    }

    fn settings(&self) -> String {
        match &self.guests {
            Guests::Linux(kernel) => format!(
                "Linux guests ({}), {} vCPU{}, {} MiB{}",
                kernel.describe(),
                self.vcpus,
                if self.vcpus == 1 { "" } else { "s" },
                self.memory_mib,
                self.seccomp_setting()
            ),
            _ => format!(
                "1 vCPU, {} MiB, micro guests{}",
                self.memory_mib,
                self.seccomp_setting()
            ),
        }
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        let cache = images::image::cache_dir();
        let vmm = images::image::install_vmm(&cache).map_err(|e| Error::Spawn {
            what: "the monitor".to_owned(),
            source: std::io::Error::other(e),
        })?;
        let mut command = Command::new(&vmm);
        if !self.seccomp {
            command.arg("--no-seccomp");
        }
        let linux = self
            .linux()
            .filter(|_| launch.args.first().map(String::as_str) != Some("exits"));
        let facts = Arc::new(Mutex::new(Facts::default()));
        let shared = Arc::clone(&facts);
        let mut disk = None;
        let handler: super::watch::LineHandler = if let Some(kernel) = linux {
            // A user's image: its own initramfs, and the line its init runs.
            let user = super::image::linux_guest(&launch.args, self.memory_mib)?;
            let initramfs = match &user {
                Some(guest) => guest.initramfs.clone(),
                None => images::initramfs::install(&cache, images::initramfs::Compression::None)
                    .map_err(|e| Error::Spawn {
                        what: "the initramfs".to_owned(),
                        source: std::io::Error::other(e),
                    })?,
            };
            let mut args = user.map_or_else(|| launch.args.clone(), |guest| guest.args);
            if args.first().map(String::as_str) == Some("file") {
                let image = DiskImage::create(&std::env::temp_dir())?;
                // The work writes where init mounted the disk (a `--dir` given last wins).
                args.extend(["--dir".to_owned(), workload::disk::MOUNT.to_owned()]);
                disk = Some(image);
            }
            if args.first().map(String::as_str) == Some("alloc")
                && !args.iter().any(|a| a == "--hold-ms")
            {
                args.extend(["--hold-ms".to_owned(), LINUX_HOLD_MS.to_string()]);
            }
            let cmdline = linux_cmdline_with(self.console, disk.is_some(), &args);
            super::image::check_cmdline(&cmdline)?;
            command
                .arg("linux")
                .arg("--kernel")
                .arg(&kernel.path)
                .arg("--initrd")
                .arg(&initramfs)
                .args(["--cmdline", &cmdline])
                .args(["--vcpus", &self.vcpus.to_string()])
                .args(["--memory-mib", &self.memory_mib.to_string()])
                .args(["--timeout-ms", &self.guest_timeout.as_millis().to_string()]);
            if let Some(image) = &disk {
                command.arg("--disk").arg(image.path());
            }
            if let Some(tap) = &self.tap {
                command.arg("--tap").arg(tap);
            }
            if let Some(cid) = self.vsock_cid {
                command.args(["--vsock-cid", &cid.to_string()]);
            }
            if let Ok(mut f) = facts.lock() {
                f.linux = true;
            }
            Box::new(move |line: &str, _at: Stamp| read_linux_line(line, &shared))
        } else {
            let (guest, hold) = guest_for(&launch.args)?;
            command
                .args(&guest)
                .args(["--memory-mib", &self.memory_mib.to_string()]);
            if hold {
                command.arg("--hold");
            }
            Box::new(move |line: &str, _at: Stamp| read_report(line, &shared))
        };
        Ok(Box::new(VmInstance {
            process: Supervised::spawn_vfork(
                &command,
                handler,
                super::watch::MONITOR_MAX_LINE,
                false,
            )?,
            facts,
            memory_kib: self.memory_mib * 1024,
            _disk: disk,
        }))
    }
}

/// Starts `command`, a monitor running a micro guest of `memory_mib`, as an instance
/// read like every micro guest (its report, then its teardown).
pub(super) fn micro_instance(
    command: &Command,
    memory_mib: u64,
) -> Result<Box<dyn Instance>, Error> {
    let facts = Arc::new(Mutex::new(Facts::default()));
    let shared = Arc::clone(&facts);
    Ok(Box::new(VmInstance {
        process: Supervised::spawn_vfork(
            command,
            Box::new(move |line: &str, _at: Stamp| read_report(line, &shared)),
            super::watch::MONITOR_MAX_LINE,
            false,
        )?,
        facts,
        memory_kib: memory_mib * 1024,
        _disk: None,
    }))
}

/// Starts `command`, a monitor running a Linux guest of `memory_mib`, as an instance read
/// like every Linux guest (its records on the console, its report, its teardown).
pub(super) fn linux_instance(
    command: &Command,
    memory_mib: u64,
) -> Result<Box<dyn Instance>, Error> {
    let facts = Arc::new(Mutex::new(Facts {
        linux: true,
        ..Facts::default()
    }));
    let shared = Arc::clone(&facts);
    Ok(Box::new(VmInstance {
        process: Supervised::spawn_vfork(
            command,
            Box::new(move |line: &str, _at: Stamp| read_linux_line(line, &shared)),
            super::watch::MONITOR_MAX_LINE,
            false,
        )?,
        facts,
        memory_kib: memory_mib * 1024,
        _disk: None,
    }))
}

/// Whether a Linux guest's disk can be formatted here: [`MKFS`] on `PATH` (or in the
/// system directories a non-root `PATH` may lack).
pub fn disk_formatter() -> Result<(), String> {
    match find_mkfs() {
        Some(_) => Ok(()),
        None => Err(format!(
            "{MKFS} (Debian's e2fsprogs) is not installed: the guest's disk for the file \
             scenario is formatted on the host"
        )),
    }
}

fn find_mkfs() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(MKFS))
        .find(|candidate| candidate.is_file())
}

/// A Linux guest's disk for the `file` scenario: a sparse raw image of [`DISK_BYTES`] in
/// the directory where native and container runs write their files (the same host file
/// system), formatted ext4 by [`MKFS`]; removed when dropped, and by `vcbench clean` when
/// the run that made it was killed (its name carries the run's PID).
#[derive(Debug)]
pub struct DiskImage {
    file: tempfile::TempPath,
}

impl DiskImage {
    /// Makes and formats the image in `dir`.
    pub fn create(dir: &Path) -> Result<DiskImage, Error> {
        let spawn = |what: &str| {
            let what = what.to_owned();
            move |source| Error::Spawn { what, source }
        };
        let file = tempfile::Builder::new()
            .prefix(&crate::registry::temp_prefix("disk"))
            .suffix(".img")
            .tempfile_in(dir)
            .map_err(spawn("the guest's disk image"))?;
        file.as_file()
            .set_len(DISK_BYTES)
            .map_err(spawn("the guest's disk image"))?;
        let image = DiskImage {
            file: file.into_temp_path(),
        };
        let mkfs = find_mkfs().ok_or_else(|| Error::Spawn {
            what: format!("{MKFS} for the guest's disk"),
            source: std::io::Error::other(disk_formatter().err().unwrap_or_default()),
        })?;
        // 4 KiB blocks, as a host's file systems have (mkfs would choose 1 KiB for an image
        // this small); every inode table and the journal written now, not by the guest's
        // kernel in the background while the work runs; no blocks reserved for root.
        let output = Command::new(&mkfs)
            .args(MKFS_OPTIONS)
            .arg(image.path())
            .output()
            .map_err(spawn(MKFS))?;
        if !output.status.success() {
            return Err(Error::Spawn {
                what: format!("{MKFS} on {}", image.path().display()),
                source: std::io::Error::other(format!(
                    "{}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                )),
            });
        }
        Ok(image)
    }

    /// Where the image is.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

/// The micro guest for a workload command line, and whether it holds.
fn guest_for(args: &[String]) -> Result<(Vec<String>, bool), Error> {
    let refuse = |why: String| Error::Spawn {
        what: format!("a micro guest for `{}`", args.join(" ")),
        source: std::io::Error::other(why),
    };
    let (workload, options) = args
        .split_first()
        .ok_or_else(|| refuse("no workload".into()))?;
    // The options each micro guest takes, and every one given must be one of them.
    let takes: &[&str] = match workload.as_str() {
        "hello" => &[],
        "alloc" => &["--mib"],
        "exits" => &["--count"],
        "fault" => &["--kind"],
        other => {
            return Err(refuse(format!(
                "micro guests run hello, alloc, exits and fault --kind \
                 triple-fault|unhandled-exit, not {other}; the other workloads need a Linux \
                 guest (`vcbench kernel build`, and a host with hardware KVM)"
            )))
        }
    };
    let mut given: Vec<(&str, &str)> = Vec::new();
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        if !takes.contains(&option.as_str()) {
            return Err(refuse(format!(
                "the {workload} micro guest takes {}, not {option:?}",
                match takes {
                    [] => "no options".to_owned(),
                    takes => takes.join(", "),
                }
            )));
        }
        let value = rest
            .next()
            .ok_or_else(|| refuse(format!("{option} needs a value")))?;
        given.push((option.as_str(), value.as_str()));
    }
    let option = |name: &str, default: &str| -> String {
        given
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(default, |(_, v)| v)
            .to_owned()
    };
    let count = |name: &str, default: &str| -> Result<String, Error> {
        let value = option(name, default);
        match value.parse::<u64>() {
            Ok(n) if n > 0 => Ok(value),
            _ => Err(refuse(format!(
                "{name} must be a positive whole number, not {value:?}"
            ))),
        }
    };
    match workload.as_str() {
        "hello" => Ok((vec!["hello".into()], false)),
        "alloc" => Ok((vec!["touch".into(), count("--mib", "64")?], true)),
        "exits" => Ok((vec!["exits".into(), count("--count", "10000")?], false)),
        // The VM's own faults, which no process can cause.
        _ => match option("--kind", "").as_str() {
            "triple-fault" => Ok((vec!["triple-fault".into()], false)),
            "unhandled-exit" => Ok((vec!["mmio-nowhere".into()], false)),
            kind => Err(refuse(format!(
                "a micro guest can fault only with --kind triple-fault or unhandled-exit, \
                 not {kind:?}; the process faults need a Linux guest"
            ))),
        },
    }
}

/// What the monitor reported, kept for phases, counters and footprint.
#[derive(Debug, Default)]
struct Facts {
    phases: Vec<(String, Stamp)>,
    counters: Vec<(String, u64)>,
    guest_touched_kib: Option<u64>,
    /// A Linux guest: its records come on the console, and it ends on its own.
    linux: bool,
    /// A Linux guest's console.
    console: Console,
}

/// Turns one of the monitor's lines about a Linux guest into events: the workload's
/// records from the console lines, stamped when the monitor received them; the report's
/// phases and counts kept; a guest that did not power off cleanly (timeout, failure) an
/// error record with its console's last lines.
fn read_linux_line(line: &str, facts: &Mutex<Facts>) -> Vec<Result<Event, Error>> {
    let Ok(mut f) = facts.lock() else {
        return Vec::new();
    };
    match Line::parse(line) {
        Ok(Line::Console(line)) => f
            .console
            .line(&line.line, Stamp(line.at))
            .into_iter()
            .collect(),
        Ok(Line::Report(report)) => {
            let events = linux_end(&report, &f);
            let mut phases = Vec::new();
            let mut ended = Vec::new();
            for (name, ns) in report.phases.iter() {
                match name.as_str() {
                    "first_marker" => {}
                    "powered_off" | "stopped" => ended.push((name.clone(), Stamp(*ns))),
                    _ => phases.push((name.clone(), Stamp(*ns))),
                }
            }
            let init = report
                .markers
                .iter()
                .find(|(code, _)| *code == workload::marker::INIT);
            if let Some((_, ns)) = init {
                phases.push(("init_reached".to_owned(), Stamp(*ns)));
            }
            phases.extend(f.console.phases());
            // In the order they happened: the console's kernel steps fall among the
            // monitor's phases.
            phases.sort_by_key(|(_, at)| *at);
            phases.extend(ended);
            f.phases.extend(phases);
            let counters = f.console.counters();
            f.counters.extend(counters);
            let exits: Vec<(String, u64)> = report.exits.clone().into_iter().collect();
            f.counters.extend(exits);
            f.counters.extend(report.cpu.clone());
            f.counters.extend(report.devices.clone());
            f.guest_touched_kib = report.guest_touched_kib;
            events
        }
        Ok(Line::TornDown(ns)) => {
            f.phases.push(("torn_down".to_owned(), Stamp(ns)));
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

/// The error record for a Linux guest that did not end cleanly, or ended before its
/// workload's result.
fn linux_end(report: &WireReport, f: &Facts) -> Vec<Result<Event, Error>> {
    let at = report
        .phase("powered_off")
        .or_else(|| report.phase("stopped"))
        .map_or_else(Stamp::now, Stamp);
    let why = match report.end {
        microvm::protocol::End::TimedOut => match &report.diagnosis {
            Some(where_) => {
                format!("the guest was stopped at its timeout; where it was:\n{where_}\n")
            }
            None => "the guest was stopped at its timeout".to_owned(),
        },
        microvm::protocol::End::Failed => format!(
            "the guest failed: {} {}",
            report.reason.as_deref().unwrap_or_default(),
            report.registers.as_deref().unwrap_or_default()
        ),
        _ if f.console.result.is_none() => {
            let init = report
                .markers
                .iter()
                .any(|(code, _)| *code == workload::marker::INIT);
            if init {
                "the guest powered off before the workload's result".to_owned()
            } else {
                "the guest powered off without reaching init".to_owned()
            }
        }
        _ => return Vec::new(),
    };
    let reached = if report
        .markers
        .iter()
        .any(|(c, _)| *c == workload::marker::INIT)
    {
        "init was reached"
    } else {
        "init was never reached"
    };
    let tail: Vec<String> = f
        .console
        .tail()
        .map(|l| super::protocol::clip(l, 200))
        .collect();
    let console = if tail.is_empty() {
        "(no console output; pass --console for the kernel's log)".to_owned()
    } else {
        tail.join("\n")
    };
    vec![Ok(Event::Record {
        record: Record::Error {
            workload: "linux guest".to_owned(),
            message: format!("{why} ({reached}); its console's last lines:\n{console}"),
        },
        at,
    })]
}

/// Turns one of the monitor's lines ([`microvm::protocol`]) into events, keeping what it
/// reports. A line that is not part of the protocol is ignored.
fn read_report(line: &str, facts: &Mutex<Facts>) -> Vec<Result<Event, Error>> {
    let report = match Line::parse(line) {
        Ok(Line::Report(report)) => report,
        Ok(Line::TornDown(ns)) => {
            if let Ok(mut f) = facts.lock() {
                f.phases.push(("torn_down".to_owned(), Stamp(ns)));
            }
            return Vec::new();
        }
        Ok(Line::Console(_)) | Err(_) => return Vec::new(),
    };
    let mut events = Vec::new();
    let workload = "micro guest".to_owned();
    if let Some(ns) = report.phase("first_marker") {
        let record = Record::Started {
            workload: workload.clone(),
            pid: 0,
            pid1: true,
        };
        events.push(Ok(Event::Record {
            record,
            at: Stamp(ns),
        }));
    }
    let at = report.phase("halted").map_or_else(Stamp::now, Stamp);
    let record = if report.end.is_clean() {
        // For the `exits` guest, the cost of one exit round trip.
        let metrics = report
            .ns_per_round_trip
            .map(|ns| Metric::new("ns_per_exit", ns, "ns"))
            .into_iter()
            .collect();
        Record::Result {
            workload,
            metrics,
            facts: Vec::new(),
        }
    } else {
        let why = report.reason.as_deref().unwrap_or("the guest did not halt");
        let end = serde_json::to_value(report.end)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let registers = report.registers.as_deref().unwrap_or_default();
        Record::Error {
            workload,
            message: format!("{why} ({end}) {registers}").trim_end().to_owned(),
        }
    };
    events.push(Ok(Event::Record { record, at }));
    if let Ok(mut f) = facts.lock() {
        f.counters = report.exits.into_iter().collect();
        f.guest_touched_kib = report.guest_touched_kib;
        f.phases
            .extend(report.phases.into_iter().map(|(n, ns)| (n, Stamp(ns))));
    }
    events
}

/// The monitor process, and what it reported.
struct VmInstance {
    process: Supervised,
    facts: Arc<Mutex<Facts>>,
    /// Guest memory, KiB: the size of the monitor's guest-RAM mapping.
    memory_kib: u64,
    /// The guest's disk, held so that it is removed only once the monitor is gone (fields
    /// drop in order).
    _disk: Option<DiskImage>,
}

impl Instance for VmInstance {
    fn pids(&self) -> Vec<u32> {
        self.process.pids()
    }

    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        self.process.next_event(until)
    }

    fn release(&mut self) {
        // A Linux guest's workload ends its hold on its own; a micro guest's monitor
        // holds the VM until it is told.
        if !self.facts.lock().is_ok_and(|f| f.linux) {
            self.process.release();
        }
    }

    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        self.process.wait(until)
    }

    fn diagnostics(&mut self) -> String {
        self.process.diagnostics()
    }

    /// The monitor process's memory, and its split: guest memory the guest touched, and
    /// the monitor's own overhead (its resident set outside guest memory). A micro guest's
    /// monitor counts the touched pages itself (mincore) before it holds; a running Linux
    /// guest's are read from the guest-RAM mapping's resident size in smaps, as for QEMU.
    fn footprint(&self) -> Footprint {
        let processes = procfs::memory_of(&self.pids());
        let touched = self
            .facts
            .lock()
            .ok()
            .and_then(|f| match f.guest_touched_kib {
                Some(kib) => Some(kib),
                None if f.linux => self
                    .pids()
                    .first()
                    .and_then(|pid| procfs::mapping_rss_kib(*pid, self.memory_kib)),
                None => None,
            });
        let mut parts = Vec::new();
        if let Some(touched) = touched {
            parts.push((Part::GuestTouched, touched));
            if let Some(m) = processes {
                parts.push((Part::MonitorOverhead, m.rss_kib.saturating_sub(touched)));
            }
        }
        Footprint { processes, parts }
    }

    fn phases(&mut self) -> Vec<(String, Stamp)> {
        self.facts
            .lock()
            .map(|f| f.phases.clone())
            .unwrap_or_default()
    }

    fn counters(&mut self) -> Vec<(String, u64)> {
        self.facts
            .lock()
            .map(|f| f.counters.clone())
            .unwrap_or_default()
    }

    fn teardown(self: Box<Self>) {
        Box::new(self.process).teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn micro_guests_take_their_options_and_refuse_the_rest_in_plain_words() {
        let guest = |line: &str| guest_for(&args(line)).map_err(|e| error_text(&e));
        assert_eq!(guest("hello"), Ok((args("hello"), false)));
        assert_eq!(guest("alloc --mib 8"), Ok((args("touch 8"), true)));
        assert_eq!(guest("exits --count 100"), Ok((args("exits 100"), false)));
        assert_eq!(
            guest("fault --kind triple-fault"),
            Ok((args("triple-fault"), false))
        );
        for (line, says) in [
            ("exits 100", "takes --count, not \"100\""),
            ("hello --bogus", "takes no options"),
            ("exits --count", "--count needs a value"),
            ("exits --count 0", "positive whole number"),
            ("fault --kind segv", "need a Linux guest"),
            ("cpu", "not cpu"),
        ] {
            let error = guest(line).unwrap_err();
            assert!(error.contains(says), "{line}: {error}");
            assert!(!error.contains("Some("), "{line}: {error}");
        }
    }

    fn error_text(e: &Error) -> String {
        crate::backend::error_chain(e)
    }

    fn events(line: &str, facts: &Mutex<Facts>) -> Vec<(Record, Stamp)> {
        read_report(line, facts)
            .into_iter()
            .map(|e| match e {
                Ok(Event::Record { record, at }) => (record, at),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_first_marker_starts_and_the_halt_gives_the_per_exit_cost() {
        let facts = Mutex::new(Facts::default());
        let line = r#"{"report":{"phases":[["vm_created",100],["first_marker",150],["halted",400]],
            "markers":[[1,150],[3,200],[2,250]],"marker_writes":3,"last_marker":[2,250],
            "ns_per_round_trip":50.0,"exits":{"exits_io_out":3,"exits_hlt":1},"end":"halted",
            "reason":null,"registers":null,"serial":"","guest_touched_kib":64}}"#
            .replace('\n', "");
        let seen = events(&line, &facts);
        assert_eq!(seen.len(), 2);
        assert!(matches!(seen[0], (Record::Started { .. }, Stamp(150))));
        match &seen[1] {
            (Record::Result { metrics, .. }, Stamp(400)) => {
                assert_eq!(metrics.len(), 1);
                assert_eq!(
                    (metrics[0].name.as_str(), metrics[0].value),
                    ("ns_per_exit", 50.0)
                );
            }
            other => panic!("expected a result at the halt, got {other:?}"),
        }
        assert!(events(r#"{"torn_down":500}"#, &facts).is_empty());
        assert!(events("not the protocol", &facts).is_empty());
        let f = facts.lock().unwrap();
        let names: Vec<&str> = f.phases.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["vm_created", "first_marker", "halted", "torn_down"]);
        assert!(f.counters.contains(&("exits_hlt".to_owned(), 1)));
        assert_eq!(f.guest_touched_kib, Some(64));
    }

    #[test]
    fn a_failed_guest_is_an_error_record_with_its_registers() {
        let facts = Mutex::new(Facts::default());
        let line = r#"{"report":{"phases":[["first_marker",10],["halted",20]],"markers":[[1,10]],
            "marker_writes":1,"last_marker":[1,10],"ns_per_round_trip":null,
            "exits":{"exits_shutdown":1},"end":"failed","reason":"the guest triple-faulted",
            "registers":"rip=0x1004","serial":"","guest_touched_kib":4}}"#
            .replace('\n', "");
        let seen = events(&line, &facts);
        match &seen[1].0 {
            Record::Error { message, .. } => {
                assert!(
                    message.contains("triple-faulted (failed) rip=0x1004"),
                    "{message}"
                );
            }
            other => panic!("expected an error record, got {other:?}"),
        }
    }

    #[test]
    fn workloads_map_to_micro_guests() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            guest_for(&args(&["hello"])).unwrap(),
            (args(&["hello"]), false)
        );
        assert_eq!(
            guest_for(&args(&["alloc", "--mib", "32"])).unwrap(),
            (args(&["touch", "32"]), true)
        );
        assert_eq!(
            guest_for(&args(&["exits", "--count", "500"])).unwrap(),
            (args(&["exits", "500"]), false)
        );
        assert!(guest_for(&args(&["cpu"])).is_err());
    }

    fn console(line: &str, at: u64) -> String {
        serde_json::to_string(&Line::Console(microvm::protocol::ConsoleLine {
            line: line.to_owned(),
            at,
        }))
        .unwrap()
    }

    fn linux_report(end: &str, phases: &str, markers: &str) -> String {
        format!(
            r#"{{"report":{{"phases":{phases},"markers":{markers},"marker_writes":2,"last_marker":null,
            "ns_per_round_trip":null,"exits":{{"exits_io_out":9}},"end":"{end}","reason":null,
            "registers":null,"serial":"","guest_touched_kib":20000,"kernel":"6.1.192",
            "devices":{{"disk_writes":100,"disk_flushes":200}}}}}}"#
        )
        .replace('\n', "")
    }

    fn linux_events(lines: &[String], facts: &Mutex<Facts>) -> Vec<(Record, Stamp)> {
        lines
            .iter()
            .flat_map(|l| read_linux_line(l, facts))
            .map(|e| match e {
                Ok(Event::Record { record, at }) => (record, at),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_linux_guest_s_records_come_from_its_console_with_the_monitor_s_stamps() {
        let facts = Mutex::new(Facts {
            linux: true,
            ..Facts::default()
        });
        let started = Record::Started {
            workload: "hello".into(),
            pid: 1,
            pid1: true,
        };
        let result = Record::Result {
            workload: "hello".into(),
            metrics: vec![Metric::new("cpus_online", 2.0, "CPUs")],
            facts: Vec::new(),
        };
        let lines = [
            console("Run /init as init process", 150),
            console(&format!("\r{}", started.to_line().trim_end()), 200),
            console(result.to_line().trim_end(), 300),
            console("reboot: System halted", 320),
            linux_report(
                "powered_off",
                r#"[["vm_created",10],["memory_registered",20],["kernel_loaded",30],["vcpus_created",40],
                   ["vm_built",50],["kernel_entry",60],["first_marker",180],["powered_off",350]]"#,
                "[[17,180],[18,310]]",
            ),
            r#"{"torn_down":400}"#.to_owned(),
        ];
        let seen = linux_events(&lines, &facts);
        assert_eq!(seen, [(started, Stamp(200)), (result, Stamp(300))]);
        let f = facts.lock().unwrap();
        let phases: Vec<(&str, u64)> = f.phases.iter().map(|(n, s)| (n.as_str(), s.0)).collect();
        assert_eq!(
            phases,
            [
                ("vm_created", 10),
                ("memory_registered", 20),
                ("kernel_loaded", 30),
                ("vcpus_created", 40),
                ("vm_built", 50),
                ("kernel_entry", 60),
                ("kernel_runs_init", 150),
                ("init_reached", 180),
                ("workload_started", 200),
                ("result", 300),
                ("powered_off", 350),
                ("torn_down", 400),
            ]
        );
        assert!(f.counters.contains(&("guest_cpus_online".to_owned(), 2)));
        assert!(f.counters.contains(&("exits_io_out".to_owned(), 9)));
        assert!(f.counters.contains(&("disk_flushes".to_owned(), 200)));
        assert_eq!(
            f.console.tail().collect::<Vec<_>>(),
            ["Run /init as init process", "reboot: System halted"]
        );
    }

    #[test]
    fn a_guests_disk_is_an_ext4_image_in_the_given_directory_removed_with_it() {
        if let Err(why) = disk_formatter() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {why}"
            );
            eprintln!("skipped: {why}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = DiskImage::create(dir.path()).unwrap();
        let path = image.path().to_owned();
        assert_eq!(path.parent(), Some(dir.path()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&crate::registry::temp_prefix("disk")) && name.ends_with(".img"),
            "{name}: vcbench clean finds it by its run's PID"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), DISK_BYTES);
        // The ext4 superblock: 1024 bytes in, its magic 0xef53 at offset 56, and 4 KiB
        // blocks (log2 of the block size over 1 KiB, at offset 24, is 2).
        let bytes = std::fs::read(&path).unwrap();
        let superblock = &bytes[1024..2048];
        assert_eq!(u16::from_le_bytes([superblock[56], superblock[57]]), 0xef53);
        assert_eq!(superblock[24], 2);
        drop(image);
        assert!(!path.exists(), "the image goes with the instance");
        // A directory that cannot hold it is an error naming what was being made.
        let error = DiskImage::create(&dir.path().join("missing")).unwrap_err();
        assert!(error.to_string().contains("disk image"), "{error}");
    }

    #[test]
    fn a_linux_guest_stopped_at_its_timeout_is_an_error_with_its_console_tail() {
        let facts = Mutex::new(Facts::default());
        let mut lines: Vec<String> = (0..50).map(|i| console(&format!("line {i}"), i)).collect();
        lines.push(console(
            "Kernel panic - not syncing: VFS: Unable to mount root fs",
            60,
        ));
        lines.push(linux_report(
            "timed_out",
            r#"[["vm_created",1],["kernel_entry",2],["stopped",900]]"#,
            "[]",
        ));
        let seen = linux_events(&lines, &facts);
        assert_eq!(seen.len(), 1);
        match &seen[0] {
            (Record::Error { message, .. }, Stamp(900)) => {
                assert!(
                    message.starts_with(
                        "the guest was stopped at its timeout (init was never reached)"
                    ),
                    "{message}"
                );
                assert!(
                    message.ends_with("Kernel panic - not syncing: VFS: Unable to mount root fs"),
                    "{message}"
                );
                assert!(
                    !message.contains("line 10\n") && message.contains("line 11\n"),
                    "the last {} lines",
                    crate::backend::console::TAIL
                );
            }
            other => panic!("expected an error record, got {other:?}"),
        }
        // A clean power-off before the result is an error too.
        let facts = Mutex::new(Facts::default());
        let seen = linux_events(
            &[linux_report(
                "powered_off",
                r#"[["powered_off",5]]"#,
                "[[17,3]]",
            )],
            &facts,
        );
        assert!(
            matches!(&seen[0].0, Record::Error { message, .. } if message.starts_with("the guest powered off before the workload's result (init was reached)"))
        );
    }

    #[test]
    fn the_command_line_passes_the_workload_its_environment_and_arguments() {
        let vm = MicroVm {
            guests: Guests::Micro(String::new()),
            ..MicroVm::default()
        };
        let args = ["cpu".to_owned(), "--mib".to_owned(), "64".to_owned()];
        assert_eq!(
            vm.cmdline(&args),
            "console=ttyS0 reboot=k panic=0 io_delay=none 8250.nr_uarts=1 quiet \
             VCBENCH_EXIT=poweroff VCBENCH_CHANNEL=stdout VCBENCH_MARKER=0x80 -- cpu --mib 64"
        );
        let loud = MicroVm {
            console: true,
            ..vm
        };
        assert!(!loud.cmdline(&args).contains(QUIET));
        assert_eq!(workload::marker::POWEROFF, microvm::layout::MARKER_POWEROFF);
        assert_eq!(workload::marker::INIT, microvm::layout::MARKER_INIT);
    }

    #[test]
    fn without_a_kernel_only_micro_guest_scenarios_run_and_the_rest_say_why() {
        let vm = MicroVm {
            guests: Guests::Micro("needs a Linux guest kernel".into()),
            ..MicroVm::default()
        };
        assert!(vm.supports(Scenario::Startup).is_ok());
        assert!(vm.supports(Scenario::Exits).is_ok());
        assert_eq!(
            vm.supports(Scenario::Cpu),
            Err("needs a Linux guest kernel".into())
        );
        let unbootable = MicroVm {
            guests: Guests::Unbootable("software KVM".into()),
            ..MicroVm::default()
        };
        assert!(unbootable.supports(Scenario::Startup).is_err());
        assert!(unbootable.supports(Scenario::Exits).is_ok());
        let linux = MicroVm {
            guests: Guests::Linux(GuestKernel {
                path: "/k".into(),
                version: "6.1.192".into(),
                config_sha256: Some("964fae3de9817cd393f5".into()),
            }),
            vcpus: 2,
            ..MicroVm::default()
        };
        for s in [
            Scenario::Cpu,
            Scenario::Net,
            Scenario::Footprint,
            Scenario::Exits,
        ] {
            assert!(linux.supports(s).is_ok(), "{s:?}");
        }
        assert_eq!(
            linux.settings(),
            "Linux guests (Linux 6.1.192, config 964fae3de9817cd3), 2 vCPUs, 128 MiB"
        );
    }
}
