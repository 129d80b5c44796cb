//! Describing the machine a run is taken on.
//!
//! Every results document carries a [`Host`], so figures from different hosts are never
//! compared blind: a VM timing on software KVM is an emulation figure, and a container
//! on cgroup v1 is accounted differently from one on v2.

use std::path::Path;

use microvm::host::KvmFlavour;

pub use reports::document::host::{Host, Kvm};

/// Describes this machine. Facts that cannot be read are recorded as `unknown`.
pub fn detect() -> Host {
    let cpuinfo = read("/proc/cpuinfo");
    let hypervisor = microvm::host::hypervisor_vendor();
    let cgroup = container::cgroup::Layout::detect()
        .map(|l| l.version().to_string())
        .unwrap_or_else(|_| "unknown".to_owned());
    Host {
        hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
        cpu_model: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".to_owned()),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        memory_mib: meminfo_kib("MemTotal").map_or(0, |kib| kib / 1024),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        os: os_release(),
        virtualized: cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "hypervisor")),
        emulated: hypervisor.as_deref() == Some(microvm::host::TCG_VENDOR),
        hypervisor,
        kvm: kvm(&microvm::host::kvm_flavour()),
        cgroup,
        user_namespaces: user_namespaces_enabled(),
        // SAFETY: geteuid has no preconditions and cannot fail.
        root: unsafe { libc::geteuid() } == 0,
        peers: ["runc", "crun", "runsc", "podman", "qemu-system-x86_64"]
            .into_iter()
            .filter_map(|tool| {
                let version = tool_version(tool).ok()?;
                Some((tool.to_owned(), version))
            })
            .collect(),
        cpu_frequency: cpu_frequency(Path::new(CPU_SYSFS)).map(|f| f.describe()),
    }
}

/// Where the kernel describes the CPUs.
pub const CPU_SYSFS: &str = "/sys/devices/system/cpu";

/// How the CPUs' clock speed is governed (cpufreq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frequency {
    /// The scaling governors in use, each once (`performance`, `powersave`, `schedutil`).
    pub governors: Vec<String>,
    /// Whether boost (turbo) is on, where the kernel says: `cpufreq/boost` (1: on), or
    /// intel_pstate's `no_turbo` (0: on).
    pub boost: Option<bool>,
}

impl Frequency {
    /// Whether timings can drift with load or temperature: a governor other than
    /// `performance`, or boost on.
    pub fn can_skew(&self) -> bool {
        self.governors.iter().any(|g| g != "performance") || self.boost == Some(true)
    }

    /// One line: `governor performance, boost off`.
    pub fn describe(&self) -> String {
        let boost = match self.boost {
            Some(true) => ", boost on",
            Some(false) => ", boost off",
            None => "",
        };
        format!("governor {}{boost}", self.governors.join("/"))
    }
}

/// The CPUs' frequency governing under `sysfs` (`/sys/devices/system/cpu`); `None` where
/// the kernel exposes no cpufreq.
pub fn cpu_frequency(sysfs: &Path) -> Option<Frequency> {
    let mut governors: Vec<String> = std::fs::read_dir(sysfs)
        .ok()?
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("cpufreq/scaling_governor")).ok())
        .map(|g| g.trim().to_owned())
        .collect();
    governors.sort();
    governors.dedup();
    if governors.is_empty() {
        return None;
    }
    let flag = |path: &str| {
        std::fs::read_to_string(sysfs.join(path))
            .ok()
            .map(|v| v.trim() == "1")
    };
    let boost = flag("cpufreq/boost").or_else(|| flag("intel_pstate/no_turbo").map(|no| !no));
    Some(Frequency { governors, boost })
}

/// The KVM flavour as the results document records it.
pub fn kvm(flavour: &KvmFlavour) -> Kvm {
    match flavour {
        KvmFlavour::Hardware { module } => Kvm {
            flavour: "hardware".into(),
            module: Some(module.clone()),
            reason: None,
        },
        KvmFlavour::Software { module } => Kvm {
            flavour: "software".into(),
            module: Some(module.clone()),
            reason: None,
        },
        KvmFlavour::Unavailable { reason } => Kvm {
            flavour: "unavailable".into(),
            module: None,
            reason: Some(reason.clone()),
        },
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The value of the first `key : value` line in a /proc text.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_owned())
}

/// A `/proc/meminfo` field in KiB.
pub fn meminfo_kib(key: &str) -> Option<u64> {
    field(&read("/proc/meminfo"), key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn os_release() -> String {
    read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or_else(|| "unknown".to_owned(), |v| v.trim_matches('"').to_owned())
}

/// Whether an unprivileged process may create a user namespace here.
pub fn user_namespaces_enabled() -> bool {
    user_namespaces_blocker().is_none()
}

/// The sysctl that keeps unprivileged users from making user namespaces here, with the
/// command that lifts it; `None` when they may.
pub fn user_namespaces_blocker() -> Option<String> {
    user_namespaces_blocker_in(Path::new("/proc/sys"))
}

/// [`user_namespaces_blocker`] with the sysctls read under `sys` (`/proc/sys`).
fn user_namespaces_blocker_in(sys: &Path) -> Option<String> {
    let sysctl = |name: &str| {
        let path = sys.join(name.replace('.', "/"));
        std::fs::read_to_string(path)
            .ok()
            .map(|v| v.trim().to_owned())
    };
    match sysctl("user.max_user_namespaces") {
        None => {
            return Some(
                "this kernel has no user namespaces (built without CONFIG_USER_NS)".to_owned(),
            )
        }
        Some(max) if max.parse::<u64>().unwrap_or(0) == 0 => {
            return Some(
                "user.max_user_namespaces is 0: `sysctl -w user.max_user_namespaces=15000`"
                    .to_owned(),
            )
        }
        Some(_) => {}
    }
    // Debian's and Ubuntu's kernels have a switch of their own, and Ubuntu's AppArmor one.
    if sysctl("kernel.unprivileged_userns_clone").is_some_and(|v| v == "0") {
        return Some(
            "kernel.unprivileged_userns_clone is 0: `sysctl -w kernel.unprivileged_userns_clone=1`"
                .to_owned(),
        );
    }
    if sysctl("kernel.apparmor_restrict_unprivileged_userns").is_some_and(|v| v == "1") {
        return Some(
            "AppArmor restricts unprivileged user namespaces: \
             `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, or a profile for vcbench"
                .to_owned(),
        );
    }
    None
}

/// Whether this process can open /dev/kvm read-write; `Err` says exactly what is missing
/// (the module, the device's group or mode, this user's membership) and how to fix it.
pub fn kvm_access() -> Result<(), String> {
    let path = Path::new("/dev/kvm");
    let error = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    match error.kind() {
        std::io::ErrorKind::NotFound => Err(
            "there is no /dev/kvm: KVM is not loaded or the CPU has no virtualization \
             extensions here; `modprobe kvm_intel` (or kvm_amd), and inside a VM enable nested \
             virtualization"
                .to_owned(),
        ),
        std::io::ErrorKind::PermissionDenied => Err(kvm_permission_fix(path)),
        _ => Err(format!("/dev/kvm cannot be opened read-write: {error}")),
    }
}

/// Why this user may not open `device`, from its owner, group and mode, and the fix.
fn kvm_permission_fix(device: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(device) else {
        return format!(
            "{} cannot be opened read-write: permission denied",
            device.display()
        );
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let user = name_of("/etc/passwd", uid).unwrap_or_else(|| uid.to_string());
    let group = name_of("/etc/group", meta.gid()).unwrap_or_else(|| meta.gid().to_string());
    let mode = meta.mode() & 0o777;
    let shown = format!(
        "{} is {}:{} mode {mode:03o}",
        device.display(),
        name_of("/etc/passwd", meta.uid()).unwrap_or_else(|| meta.uid().to_string()),
        group
    );
    if mode & 0o060 == 0o060 && meta.gid() != 0 {
        format!(
            "{shown} and user {user} (uid {uid}) is not in group {group}: \
             `usermod -aG {group} {user}` and log in again, or run as root"
        )
    } else {
        format!(
            "{shown}: only its owner may use it; give it a group with read-write access \
             (`chgrp kvm {0} && chmod 660 {0}`, kept by a udev rule) and join that group \
             (`usermod -aG kvm {user}`), or run as root",
            device.display()
        )
    }
}

/// The name of ID `id` in a passwd-style file (`name:x:id:...`).
fn name_of(file: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == id).then(|| name.to_owned())
    })
}

/// The first line of a tool's `--version` (a peer runtime, QEMU), or why it cannot be run.
pub fn tool_version(binary: &str) -> Result<String, String> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|e| match e.kind() {
            // execvp says "permission denied" when it met a PATH directory it may not
            // search or a file it may not run, and found nothing it could.
            std::io::ErrorKind::PermissionDenied => format!(
                "{binary} cannot be run by this user ({e}): it is not on PATH where this user \
                 may search, or not executable; install it (apt-get install {binary}) or fix \
                 PATH"
            ),
            _ => format!("{binary} not found ({e}): apt-get install {binary}"),
        })?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_owned)
        .filter(|l| out.status.success() && !l.is_empty())
        .ok_or_else(|| format!("{binary} --version failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n";
        assert_eq!(field(text, "model name").as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(field(text, "nope"), None);
    }

    #[test]
    fn this_host_is_described() {
        let host = detect();
        assert!(host.cpus >= 1);
        assert!(host.memory_mib > 0);
        assert!(!host.kernel.is_empty());
        assert!(["v1", "v2", "hybrid", "none"].contains(&host.cgroup.as_str()));
        assert!(["hardware", "software", "unavailable"].contains(&host.kvm.flavour.as_str()));
    }

    #[test]
    fn the_sysctl_that_blocks_user_namespaces_is_named() {
        let sys = tempfile::tempdir().unwrap();
        assert!(super::user_namespaces_blocker_in(sys.path())
            .is_some_and(|why| why.contains("CONFIG_USER_NS")));
        let set = |name: &str, value: &str| {
            let path = sys.path().join(name.replace('.', "/"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("{value}\n")).unwrap();
        };
        set("user.max_user_namespaces", "15000");
        assert_eq!(super::user_namespaces_blocker_in(sys.path()), None);
        set("kernel.unprivileged_userns_clone", "0");
        let why = super::user_namespaces_blocker_in(sys.path()).unwrap();
        assert!(
            why.contains("sysctl -w kernel.unprivileged_userns_clone=1"),
            "{why}"
        );
        set("user.max_user_namespaces", "0");
        let why = super::user_namespaces_blocker_in(sys.path()).unwrap();
        assert!(why.contains("user.max_user_namespaces is 0"), "{why}");
    }

    #[test]
    fn the_frequency_governors_and_boost_are_read_and_judged() {
        let sys = tempfile::tempdir().unwrap();
        assert_eq!(
            super::cpu_frequency(sys.path()),
            None,
            "no cpufreq: nothing to say"
        );
        let set = |path: &str, value: &str| {
            let path = sys.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("{value}\n")).unwrap();
        };
        set("cpu0/cpufreq/scaling_governor", "performance");
        set("cpu1/cpufreq/scaling_governor", "performance");
        std::fs::create_dir_all(sys.path().join("cpuidle")).unwrap();
        let f = super::cpu_frequency(sys.path()).unwrap();
        assert_eq!(f.describe(), "governor performance");
        assert!(!f.can_skew());
        set("intel_pstate/no_turbo", "0");
        let f = super::cpu_frequency(sys.path()).unwrap();
        assert_eq!(f.describe(), "governor performance, boost on");
        assert!(f.can_skew());
        set("cpufreq/boost", "0");
        set("cpu1/cpufreq/scaling_governor", "powersave");
        let f = super::cpu_frequency(sys.path()).unwrap();
        assert_eq!(f.describe(), "governor performance/powersave, boost off");
        assert!(f.can_skew());
    }
}
