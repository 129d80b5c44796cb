//! The microvm backend started warm: a micro guest snapshotted once, at its snapshot
//! point, and each instance a new monitor process that restores it
//! (`vcbench-vmm restore`), its guest memory mapped privately from the snapshot file so
//! pages load as the guest touches them. Serverless platforms start microVMs this way to
//! hide the boot: the figure is launch to the restored guest's first instruction.
//!
//! The guest is `ready 16` ([`microvm::guest::ready`]): it writes 16 MiB (its state), stops
//! at a `hlt` where the snapshot is taken, and once restored writes its first marker and
//! reads those pages back. The snapshot lives in a temporary directory of this run, removed
//! when the backend is dropped (or by `vcbench clean` after a crash).

use std::path::PathBuf;
use std::process::Command;

use super::protocol::{Availability, Backend, Error, Instance, Launch, Stamping};
use crate::scenario::Scenario;

/// MiB the snapshotted guest writes before its snapshot point, and reads back after.
pub const STATE_MIB: u32 = 16;

/// Starts a monitor command running a micro guest of the given MiB as an instance (the
/// microvm backend's own reader of micro guests).
pub type Start = fn(&Command, u64) -> Result<Box<dyn Instance>, Error>;

/// The microvm backend restoring a snapshot of a micro guest.
pub struct Restored {
    vmm: PathBuf,
    snapshot: PathBuf,
    memory_mib: u64,
    seccomp: bool,
    /// Guest memory the snapshot holds (the pages the guest had touched), KiB.
    saved_kib: u64,
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
        let out = Command::new(&vmm)
            .args(["ready", &STATE_MIB.to_string()])
            .args(["--memory-mib", &memory_mib.to_string()])
            .arg("--snapshot-to")
            .arg(&snapshot)
            .output()
            .map_err(|e| format!("cannot run the monitor to take the snapshot: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the monitor could not take the snapshot ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let saved_kib = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| match microvm::protocol::Line::parse(l) {
                Ok(microvm::protocol::Line::Report(r)) => {
                    r.cpu.get("snapshot_memory_saved_kib").copied()
                }
                _ => None,
            })
            .unwrap_or(0);
        Ok(Restored {
            vmm,
            snapshot,
            memory_mib,
            seccomp,
            saved_kib,
            start,
            _dir: dir,
        })
    }
}

impl Backend for Restored {
    fn name(&self) -> &'static str {
        "microvm"
    }

    fn describe(&self) -> &'static str {
        "this project's KVM monitor restoring a micro guest from its snapshot, memory mapped \
         from the file on demand"
    }

    fn availability(&self) -> Availability {
        Availability::Available
    }

    fn settings(&self) -> String {
        format!(
            "1 vCPU, {} MiB, micro guest ready {STATE_MIB} restored from its snapshot \
             ({:.1} MiB of guest memory saved){}",
            self.memory_mib,
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
        Err("micro guests run no program to probe".to_owned())
    }

    fn stamping(&self) -> Stamping {
        Stamping::MonitorExit
    }

    fn launch(&self, _launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        let mut command = Command::new(&self.vmm);
        if !self.seccomp {
            command.arg("--no-seccomp");
        }
        command
            .arg("restore")
            .arg(&self.snapshot)
            .args(["--memory-mib", &self.memory_mib.to_string()]);
        (self.start)(&command, self.memory_mib)
    }
}
