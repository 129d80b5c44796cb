//! The `gvisor` backend: the same image and workload run by runsc, gVisor's runtime,
//! through the OCI path the runc and crun backends share ([`super::oci`]), on one of its
//! platforms. The workload's system calls go to the Sentry, a kernel in user space, and
//! its files come through the Gofer: both are host processes of the instance.
//!
//! The platform (how the Sentry takes the workload's system calls: `ptrace`, `systrap`,
//! `kvm`) is part of what a figure measured, so it is in the backend's settings. One that
//! this runsc does not have, or that this host cannot give (`kvm` on a software KVM), makes
//! the backend unavailable with the reason. The sandbox has no host network (`--network
//! none`): its own network stack, with a loopback of its own.
//!
//! Its memory splits three ways: the workload's memory, which lives in the Sentry's memory
//! file (a memfd whose pages no host process need map, so that no RSS shows them), the
//! Sentry's own resident memory (with its stub processes) and the Gofer's.

use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use container::Namespaces;
use reports::document::Part;

use super::oci::{self, Invocation, OciInstance, Runtime};
use super::protocol::{
    Availability, Backend, Calls, Error, Event, Exit, Footprint, Instance, Launch, Reach,
};
use crate::host::tool_version;
use crate::procfs::{self, Memory};
use crate::scenario::Scenario;

/// The name the Sentry gives its memory file (`/memfd:runsc-memory`).
const MEMORY_FILE: &str = "/memfd:runsc-memory";

/// How the Sentry takes the workload's system calls and page faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Platform {
    /// `PTRACE_SYSEMU` on stub processes: works everywhere, at a context switch per call.
    #[default]
    Ptrace,
    /// seccomp traps in the stub processes, answered through shared memory (newer gVisor).
    Systrap,
    /// The Sentry as a KVM guest: needs hardware virtualization.
    Kvm,
}

impl Platform {
    /// Every platform.
    pub const ALL: [Platform; 3] = [Platform::Ptrace, Platform::Systrap, Platform::Kvm];

    /// Its name, as runsc's `--platform` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Ptrace => "ptrace",
            Platform::Systrap => "systrap",
            Platform::Kvm => "kvm",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not the name of a gVisor platform.
    #[error("gVisor platform {0:?} is not one of ptrace, systrap, kvm")]
    UnknownPlatform(String),
}

impl FromStr for Platform {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        Platform::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| ParseError::UnknownPlatform(text.to_owned()))
    }
}

/// The gVisor backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gvisor {
    /// The platform the Sentry runs on.
    pub platform: Platform,
}

impl Gvisor {
    /// The global options runsc gets: the platform, and no host network.
    fn invocation(&self) -> Invocation {
        Invocation {
            options: vec![
                format!("--platform={}", self.platform),
                "--network=none".to_owned(),
            ],
            ..Invocation::new(Runtime::Runsc)
        }
    }
}

/// Whether runsc can run on `platform` here; `Err` says why not, with the fix. Asks runsc
/// for its version and its platforms (two short runs of it).
pub fn platform_availability(platform: Platform) -> Result<String, String> {
    let version = oci::rootful_peer(Runtime::Runsc.binary())?;
    let platforms = runsc_platforms()?;
    if !platforms.iter().any(|p| p == platform.name()) {
        return Err(format!(
            "{version} has no {platform} platform (it has {}): a newer gVisor release has it; \
             use the ptrace platform with this one",
            platforms.join(", ")
        ));
    }
    if platform == Platform::Kvm {
        kvm_platform_fits()?;
    }
    Ok(version)
}

/// The platforms this runsc has (`runsc help platforms`: one a line).
fn runsc_platforms() -> Result<Vec<String>, String> {
    let out = std::process::Command::new(Runtime::Runsc.binary())
        .args(["help", "platforms"])
        .output()
        .map_err(|e| format!("runsc cannot be run ({e}): apt-get install runsc"))?;
    let platforms: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_owned)
        .collect();
    if platforms.is_empty() {
        return Err("runsc help platforms named no platform".to_owned());
    }
    Ok(platforms)
}

/// Whether runsc's kvm platform can work here: /dev/kvm open read-write, on hardware
/// virtualization.
fn kvm_platform_fits() -> Result<(), String> {
    crate::host::kvm_access().map_err(|why| format!("the kvm platform needs /dev/kvm: {why}"))?;
    match microvm::host::kvm_flavour() {
        microvm::host::KvmFlavour::Hardware { .. } => Ok(()),
        microvm::host::KvmFlavour::Software { module } => Err(format!(
            "the kvm platform runs the Sentry as a KVM guest of its own, which needs hardware \
             virtualization; this host's KVM is software ({module}), where the Sentry spins \
             without ever starting the workload: run on a host with VT-x/AMD-V, or use the \
             ptrace platform"
        )),
        microvm::host::KvmFlavour::Unavailable { reason } => {
            Err(format!("the kvm platform needs KVM: {reason}"))
        }
    }
}

impl Backend for Gvisor {
    fn name(&self) -> &'static str {
        "gvisor"
    }

    fn describe(&self) -> &'static str {
        "gVisor's runsc (peer: a kernel in user space) on the same image, namespaces and workload"
    }

    fn version(&self) -> Option<String> {
        Some(tool_version(Runtime::Runsc.binary()).unwrap_or_else(|why| why))
    }

    fn reach(&self) -> Reach {
        Reach {
            filter: "gVisor's Sentry serves the program's calls; the Sentry and Gofer run \
                     under runsc's own host filter, not counted here"
                .to_owned(),
            calls: Calls::Uncounted,
            conditional: Vec::new(),
            vm_exits: Vec::new(),
        }
    }

    fn availability(&self) -> Availability {
        match platform_availability(self.platform) {
            Ok(_) => Availability::Available,
            Err(why) => Availability::Unavailable(why),
        }
    }

    fn in_default_set(&self) -> bool {
        false
    }

    fn settings(&self) -> String {
        let version = tool_version(Runtime::Runsc.binary()).unwrap_or_default();
        format!(
            "{version}; platform {}; network none (the sandbox's own loopback); namespaces: {}",
            self.platform,
            Namespaces::ALL.names().join(",")
        )
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        match scenario {
            Scenario::Exits => Err("VM exits exist only in a VM".to_owned()),
            _ => Ok(()),
        }
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        let inner = self.invocation().launch(launch, Namespaces::ALL)?;
        Ok(Box::new(GvisorInstance { inner }))
    }
}

/// A gVisor sandbox run by runsc in the foreground.
struct GvisorInstance {
    inner: OciInstance,
}

impl Instance for GvisorInstance {
    /// The Sentry, its stub processes and the Gofer.
    fn pids(&self) -> Vec<u32> {
        self.inner.pids()
    }

    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        self.inner.next_event(until)
    }

    fn release(&mut self) {
        self.inner.release();
    }

    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        self.inner.wait(until)
    }

    fn diagnostics(&mut self) -> String {
        self.inner.diagnostics()
    }

    /// The sandbox's memory with its memory file counted once: the file's allocated pages
    /// are added to RSS, PSS and USS (they belong to this sandbox alone), and the pages of
    /// it that the Sentry or a stub maps are taken out of those processes' figures. The
    /// parts: the memory file, the Sentry's and stubs' own resident memory, the Gofer's,
    /// and the sandbox's cgroup.
    fn footprint(&self) -> Footprint {
        let pids = self.inner.pids();
        let mut sandbox = Split::default();
        for &pid in &pids {
            sandbox.add(pid);
        }
        let mut parts = Vec::new();
        if let Some(file) = sandbox.file_kib {
            parts.push((Part::MemoryFile, file));
        }
        if let Some(sentry) = sandbox.sentry {
            parts.push((
                Part::SentryOverhead,
                sentry.rss_kib.saturating_sub(sandbox.mapped.rss_kib),
            ));
        }
        if let Some(gofer) = sandbox.gofer {
            parts.push((Part::GoferOverhead, gofer.rss_kib));
        }
        if let Some(kib) = pids.first().and_then(|&pid| oci::cgroup_memory_kib(pid)) {
            parts.push((Part::CgroupMemory, kib));
        }
        Footprint {
            processes: sandbox.total(),
            parts,
        }
    }

    fn teardown(self: Box<Self>) {
        Box::new(self.inner).teardown();
    }
}

/// A sandbox's memory as its processes hold it.
#[derive(Debug, Default)]
struct Split {
    /// The Sentry's and its stubs' (and any helper of the sandbox's).
    sentry: Option<Memory>,
    /// The Gofer's.
    gofer: Option<Memory>,
    /// What of those is the memory file, mapped resident.
    mapped: Memory,
    /// The memory file's allocated KiB.
    file_kib: Option<u64>,
}

impl Split {
    /// Adds process `pid` (gone: nothing).
    fn add(&mut self, pid: u32) {
        let Some(memory) = procfs::memory_of_pid(pid) else {
            return;
        };
        if is_gofer(pid) {
            self.gofer = Some(self.gofer.map_or(memory, |g| procfs::sum(g, memory)));
            return;
        }
        self.sentry = Some(self.sentry.map_or(memory, |s| procfs::sum(s, memory)));
        if let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) {
            self.mapped = procfs::sum(self.mapped, mapped_file(&smaps, MEMORY_FILE));
        }
        if self.file_kib.is_none() {
            self.file_kib = memory_file_kib(Path::new(&format!("/proc/{pid}/fd")));
        }
    }

    /// The sandbox's processes with the memory file counted once, as their own.
    fn total(&self) -> Option<Memory> {
        let processes = match (self.sentry, self.gofer) {
            (Some(s), Some(g)) => procfs::sum(s, g),
            (Some(m), None) | (None, Some(m)) => m,
            (None, None) => return None,
        };
        let file = self.file_kib.unwrap_or(0);
        Some(Memory {
            rss_kib: processes.rss_kib.saturating_sub(self.mapped.rss_kib) + file,
            pss_kib: processes.pss_kib.saturating_sub(self.mapped.pss_kib) + file,
            uss_kib: processes.uss_kib.saturating_sub(self.mapped.uss_kib) + file,
        })
    }
}

/// Whether process `pid` is a Gofer (runsc names its processes in their `argv[0]`).
fn is_gofer(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).next() == Some(b"runsc-gofer"))
}

/// The resident, proportional and private KiB of the mappings of `file` in the text of a
/// process's `smaps`.
fn mapped_file(smaps: &str, file: &str) -> Memory {
    let mut total = Memory::default();
    let mut inside = false;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        if !first.ends_with(':') {
            // A mapping's header: `start-end perms offset dev inode [path]`.
            inside = line.split_whitespace().nth(5) == Some(file);
            continue;
        }
        if !inside {
            continue;
        }
        let kib = fields
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        match first {
            "Rss:" => total.rss_kib += kib,
            "Pss:" => total.pss_kib += kib,
            "Private_Clean:" | "Private_Dirty:" => total.uss_kib += kib,
            _ => {}
        }
    }
    total
}

/// The allocated KiB of the memory file among the descriptors in `fds` (a process's
/// `/proc/PID/fd`): the host kernel's own count of its pages, resident or swapped.
fn memory_file_kib(fds: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(fds)
        .ok()?
        .filter_map(Result::ok)
        .find(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with(MEMORY_FILE))
        })
        .and_then(|fd| std::fs::metadata(fd.path()).ok())
        .map(|meta| meta.blocks() * 512 / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_named_as_runsc_takes_them() {
        for p in Platform::ALL {
            assert_eq!(p.name().parse::<Platform>(), Ok(p));
        }
        assert_eq!(Platform::default(), Platform::Ptrace);
        let err = "hvf".parse::<Platform>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "gVisor platform \"hvf\" is not one of ptrace, systrap, kvm"
        );
    }

    #[test]
    fn the_memory_file_s_mappings_are_summed() {
        let smaps = "\
7f64-7f65 rw-p 00000000 00:00 0 
Rss:                 100 kB
Pss:                 100 kB
Private_Dirty:       100 kB
7f65-7f66 rw-s 00000000 00:01 22570                      /memfd:runsc-memory (deleted)
Rss:                 832 kB
Pss:                 524 kB
Shared_Dirty:        616 kB
Private_Clean:        16 kB
Private_Dirty:       200 kB
7f66-7f67 rw-s 00200000 00:01 22568                      /memfd:flipcall_packet_windows (deleted)
Rss:                  40 kB
7f67-7f68 rw-s 00400000 00:01 22570                      /memfd:runsc-memory (deleted)
Rss:                   8 kB
Pss:                   8 kB
Private_Dirty:         8 kB
";
        assert_eq!(
            mapped_file(smaps, MEMORY_FILE),
            Memory {
                rss_kib: 840,
                pss_kib: 532,
                uss_kib: 224
            }
        );
    }

    #[test]
    fn the_memory_file_is_counted_once_as_the_sandbox_s_own() {
        let m = |rss_kib, pss_kib, uss_kib| Memory {
            rss_kib,
            pss_kib,
            uss_kib,
        };
        let split = Split {
            sentry: Some(m(30_000, 20_000, 10_000)),
            gofer: Some(m(19_000, 9_000, 4_000)),
            mapped: m(3_000, 2_000, 1_000),
            file_kib: Some(66_000),
        };
        assert_eq!(
            split.total(),
            Some(m(
                30_000 + 19_000 - 3_000 + 66_000,
                27_000 + 66_000,
                13_000 + 66_000
            ))
        );
        assert_eq!(Split::default().total(), None);
    }

    #[test]
    fn a_memfd_s_allocated_size_is_read_through_its_descriptor() {
        use std::io::Write;
        let name = std::ffi::CString::new("runsc-memory").unwrap();
        // SAFETY: a NUL-terminated name that outlives the call; the descriptor returned is
        // owned by the File below and closed with it.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        // SAFETY: fd was just returned by memfd_create and nothing else owns it.
        let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        file.write_all(&vec![1_u8; 256 * 1024]).unwrap();
        let kib = memory_file_kib(Path::new("/proc/self/fd")).unwrap();
        assert_eq!(kib, 256);
        drop(file);
    }
}
