//! The microvm backend started warm: a guest snapshotted once, at its snapshot point, and
//! each instance a new monitor process that restores it (`vcbench-vmm restore`), its guest
//! memory mapped privately from the snapshot file so pages load as the guest touches them.
//! Serverless platforms start microVMs this way to hide the boot: the figure is launch to
//! the restored guest's first record.
//!
//! A micro guest is `ready 16` ([`microvm::guest::ready`]): it writes 16 MiB (its state),
//! stops at a `hlt` where the snapshot is taken, and once restored writes its first marker
//! and reads those pages back. A Linux guest ([`Restored::prepare_linux`]) is booted with
//! the warm scenario's workload as its init and snapshotted when init writes its first
//! marker, after the kernel's boot; restored, it goes on from there to the workload's
//! first record. The snapshot lives in a temporary directory of this run, removed when the
//! backend is dropped (or by `vcbench clean` after a crash).

use std::path::PathBuf;
use std::process::Command;

use super::protocol::{Availability, Backend, Error, Instance, Launch, Stamping};
use crate::scenario::Scenario;

/// MiB the snapshotted guest writes before its snapshot point, and reads back after.
pub const STATE_MIB: u32 = 16;

/// Starts a monitor command running a micro guest of the given MiB as an instance (the
/// microvm backend's own reader of micro guests).
pub type Start = fn(&Command, u64) -> Result<Box<dyn Instance>, Error>;

/// A Linux guest to snapshot: the monitor's `linux` options but the memory.
#[derive(Debug, Clone)]
pub struct LinuxGuest {
    /// The kernel.
    pub kernel: PathBuf,
    /// The kernel, in one phrase for the settings.
    pub describe: String,
    /// The initramfs whose init is the workload.
    pub initrd: PathBuf,
    /// The kernel command line, with the workload's arguments.
    pub cmdline: String,
    /// The workload's arguments: an instance asked for others is refused.
    pub args: Vec<String>,
    /// vCPUs.
    pub vcpus: u8,
    /// How long a guest may run, milliseconds.
    pub timeout_ms: u128,
}

/// The microvm backend restoring a snapshot of a micro guest or of a Linux guest.
pub struct Restored {
    vmm: PathBuf,
    snapshot: PathBuf,
    memory_mib: u64,
    seccomp: bool,
    /// Guest memory the snapshot holds (the pages the guest had touched), KiB.
    saved_kib: u64,
    /// The Linux guest snapshotted, if not a micro guest.
    linux: Option<LinuxGuest>,
    /// How an instance is started and read.
    start: Start,
    /// The snapshot's directory, removed on drop.
    _dir: tempfile::TempDir,
}

impl Restored {
    /// Takes the snapshot: runs `ready` in a monitor of `memory_mib` that saves it at its
    /// snapshot point; each instance is then started with `start`. `Err` says why it could
    /// not be taken.
    pub fn prepare(memory_mib: u64, seccomp: bool, start: Start) -> Result<Self, String> {
        let cache = images::image::cache_dir();
        let vmm = images::image::install_vmm(&cache)
            .map_err(|e| format!("cannot install the monitor: {e}"))?;
        let dir = tempfile::Builder::new()
            .prefix(&crate::registry::temp_prefix("snapshot"))
            .tempdir()
            .map_err(|e| format!("cannot make a directory for the snapshot: {e}"))?;
        let snapshot = dir.path().join("ready.snap");
        let mut command = Command::new(&vmm);
        command
            .args(["ready", &STATE_MIB.to_string()])
            .args(["--memory-mib", &memory_mib.to_string()]);
        let saved_kib = take(&mut command, &snapshot)?;
        Ok(Restored {
            vmm,
            snapshot,
            memory_mib,
            seccomp,
            saved_kib,
            linux: None,
            start,
            _dir: dir,
        })
    }

    /// Takes the snapshot of a Linux guest: boots `guest` in a monitor of `memory_mib`
    /// that saves it when its init writes its first marker (and lets it run on to its
    /// end); each instance is then started with `start`, which reads a Linux guest's
    /// console. `Err` says why it could not be taken.
    pub fn prepare_linux(
        guest: LinuxGuest,
        memory_mib: u64,
        seccomp: bool,
        start: Start,
    ) -> Result<Self, String> {
        let cache = images::image::cache_dir();
        let vmm = images::image::install_vmm(&cache)
            .map_err(|e| format!("cannot install the monitor: {e}"))?;
        let dir = tempfile::Builder::new()
            .prefix(&crate::registry::temp_prefix("snapshot"))
            .tempdir()
            .map_err(|e| format!("cannot make a directory for the snapshot: {e}"))?;
        let snapshot = dir.path().join("linux.snap");
        let mut command = Command::new(&vmm);
        command
            .arg("linux")
            .arg("--kernel")
            .arg(&guest.kernel)
            .arg("--initrd")
            .arg(&guest.initrd)
            .args(["--cmdline", &guest.cmdline])
            .args(["--vcpus", &guest.vcpus.to_string()])
            .args(["--memory-mib", &memory_mib.to_string()])
            .args(["--timeout-ms", &guest.timeout_ms.to_string()]);
        let saved_kib = take(&mut command, &snapshot)?;
        Ok(Restored {
            vmm,
            snapshot,
            memory_mib,
            seccomp,
            saved_kib,
            linux: Some(guest),
            start,
            _dir: dir,
        })
    }
}

/// Runs the monitor `command` with `--snapshot-to snapshot`; returns the guest memory the
/// snapshot holds, KiB, or why it was not taken.
fn take(command: &mut Command, snapshot: &std::path::Path) -> Result<u64, String> {
    let out = command
        .arg("--snapshot-to")
        .arg(snapshot)
        .output()
        .map_err(|e| format!("cannot run the monitor to take the snapshot: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the monitor could not take the snapshot ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| match microvm::protocol::Line::parse(l) {
            Ok(microvm::protocol::Line::Report(r)) => {
                r.cpu.get("snapshot_memory_saved_kib").copied()
            }
            _ => None,
        })
        .unwrap_or(0))
}

impl Backend for Restored {
    fn name(&self) -> &'static str {
        "microvm"
    }

    fn describe(&self) -> &'static str {
        match self.linux {
            Some(_) => {
                "this project's KVM monitor restoring a Linux guest from its snapshot taken \
                 after init, memory mapped from the file on demand"
            }
            None => {
                "this project's KVM monitor restoring a micro guest from its snapshot, memory \
                 mapped from the file on demand"
            }
        }
    }

    fn availability(&self) -> Availability {
        Availability::Available
    }

    fn settings(&self) -> String {
        let guest = match &self.linux {
            Some(linux) => format!(
                "{} vCPU, {} MiB, Linux guest ({}) restored from its snapshot after init",
                linux.vcpus, self.memory_mib, linux.describe
            ),
            None => format!(
                "1 vCPU, {} MiB, micro guest ready {STATE_MIB} restored from its snapshot",
                self.memory_mib
            ),
        };
        format!(
            "{guest} ({:.1} MiB of guest memory saved){}",
            self.saved_kib as f64 / 1024.0,
            if self.seccomp {
                ""
            } else {
                ", monitor without its system call filter"
            }
        )
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        match scenario {
            Scenario::Warm => Ok(()),
            _ => Err("a restored snapshot runs warm starts only".to_owned()),
        }
    }

    fn runs_programs(&self) -> Result<(), String> {
        Err("a restored guest runs only the workload it was snapshotted with".to_owned())
    }

    fn stamping(&self) -> Stamping {
        Stamping::MonitorExit
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        if let Some(linux) = self.linux.as_ref().filter(|l| l.args != launch.args) {
            return Err(Error::Spawn {
                what: "a restored Linux guest".to_owned(),
                source: std::io::Error::other(format!(
                    "its snapshot runs {:?}, not {:?}",
                    linux.args.join(" "),
                    launch.args.join(" ")
                )),
            });
        }
        let mut command = Command::new(&self.vmm);
        if !self.seccomp {
            command.arg("--no-seccomp");
        }
        command
            .arg("restore")
            .arg(&self.snapshot)
            .args(["--memory-mib", &self.memory_mib.to_string()]);
        if let Some(linux) = &self.linux {
            command.args(["--timeout-ms", &linux.timeout_ms.to_string()]);
        }
        (self.start)(&command, self.memory_mib)
    }
}
