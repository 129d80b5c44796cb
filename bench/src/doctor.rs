//! `vcbench doctor`: what this machine can do, and the command that fixes what it cannot.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::backend::gvisor::{self, Platform};
use crate::backend::podman::Podman;
use crate::backend::{Availability, Backend};
use crate::host::Host;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Works with a caveat the user should know.
    Warn,
    /// Absent or unusable.
    Missing,
}

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// The command or step that fixes it, when it is not `Ok`.
    pub fix: Option<String>,
}

fn check(name: &str, status: Status, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check {
        name: name.to_owned(),
        status,
        detail: detail.into(),
        fix: fix.map(str::to_owned),
    }
}

/// Tools looked for on `PATH`: name, what vcbench uses it for, the Debian package, whether Debian packages it.
const TOOLS: [(&str, &str, &str, bool); 8] = [
    ("runc", "peer OCI runtime", "runc", true),
    ("crun", "peer OCI runtime", "crun", true),
    (
        "runsc",
        "peer runtime: gVisor, a kernel in user space",
        "runsc",
        true,
    ),
    ("podman", "peer container engine", "podman", true),
    (
        "qemu-system-x86_64",
        "peer VMM (-M microvm) and the TCG test rig",
        "qemu-system-x86",
        true,
    ),
    (
        "busybox",
        "the test rig's outer Linux",
        "busybox-static",
        true,
    ),
    ("cpio", "reading guest images back", "cpio", true),
    ("firecracker", "peer VMM", "", false),
];

/// Runs every check.
pub fn run(host: &Host) -> Vec<Check> {
    let mut checks = vec![
        kvm(host),
        cpu_frequency(),
        cgroups(host),
        privileges(host),
        user_namespaces(host),
        embedded(
            "workload",
            images::image::WORKLOAD,
            images::image::WORKLOAD_FNV,
        ),
        embedded("vcbench-vmm", images::image::VMM, images::image::VMM_FNV),
        monitor_libc(images::image::VMM_LIBC),
    ];
    for (tool, purpose, package, packaged) in TOOLS {
        checks.push(match which(tool) {
            Some(path) => check(
                tool,
                Status::Ok,
                format!("{} ({purpose})", version_of(&path)),
                None,
            ),
            None if packaged => check(
                tool,
                Status::Missing,
                format!("not on PATH ({purpose})"),
                Some(&format!("apt-get install -y {package}")),
            ),
            None => check(
                tool,
                Status::Warn,
                format!("not on PATH ({purpose}; optional, not packaged by Debian)"),
                Some(
                    "listed for reference only: vcbench has no firecracker backend yet, so \
                     nothing here needs it",
                ),
            ),
        });
    }
    checks.extend(peers());
    checks.push(file_check(
        "linux source",
        Path::new("/usr/src/linux-source-6.1.tar.xz"),
        "building the guest kernel",
        "apt-get install -y linux-source-6.1",
    ));
    checks.push(match cloud_kernel() {
        Some(path) => check(
            "cloud kernel",
            Status::Ok,
            format!("{} (the test rig's outer Linux)", path.display()),
            None,
        ),
        None => check(
            "cloud kernel",
            Status::Missing,
            "no /boot/vmlinuz-*-cloud-amd64 (the test rig's outer Linux)",
            Some("apt-get install -y linux-image-cloud-amd64"),
        ),
    });
    checks
}

/// Whether the CPUs' clock speed can skew timings: a governor other than `performance`,
/// or boost. vcbench never changes it; the fix is the user's to apply.
fn cpu_frequency() -> Check {
    let name = "cpu frequency";
    match crate::host::cpu_frequency(Path::new(crate::host::CPU_SYSFS)) {
        None => check(
            name,
            Status::Ok,
            "no frequency scaling exposed here (in a VM its host decides the clock speed, \
             so timings can still drift with the host's load)",
            None,
        ),
        Some(f) if !f.can_skew() => check(name, Status::Ok, f.describe(), None),
        Some(f) => check(
            name,
            Status::Warn,
            format!(
                "{}: the clock speed follows load and temperature, so timings drift between \
                 runs",
                f.describe()
            ),
            Some(
                "for steadier timings, as root: cpupower frequency-set -g performance, and \
                 turn boost off (echo 0 > /sys/devices/system/cpu/cpufreq/boost, or echo 1 > \
                 /sys/devices/system/cpu/intel_pstate/no_turbo); vcbench never changes them",
            ),
        ),
    }
}

/// Whether each peer backend that needs more than its program can run here: gVisor on
/// each of its platforms, and podman on the runtime it would use.
fn peers() -> Vec<Check> {
    let mut checks: Vec<Check> = Platform::ALL
        .iter()
        .map(|&platform| {
            let name = format!("gvisor ({platform})");
            match gvisor::platform_availability(platform) {
                Ok(version) => check(
                    &name,
                    Status::Ok,
                    format!("{version}: the gvisor backend can run on the {platform} platform"),
                    None,
                ),
                Err(why) => {
                    let (status, fix) = gvisor_fix(platform, &why);
                    check(&name, status, why, Some(fix))
                }
            }
        })
        .collect();
    let podman = Podman::default();
    checks.push(match podman.availability() {
        Availability::Available => check("podman backend", Status::Ok, podman.settings(), None),
        Availability::Unavailable(why) => {
            let fix = match which("podman") {
                None => "apt-get install -y podman",
                Some(_) if which("runc").is_none() => "apt-get install -y runc",
                Some(_) => "run vcbench as root",
            };
            check("podman backend", Status::Missing, why, Some(fix))
        }
    });
    checks
}

/// How bad it is that gVisor cannot run on `platform` for reason `why`, and the fix.
fn gvisor_fix(platform: Platform, why: &str) -> (Status, &'static str) {
    if which("runsc").is_none() {
        return (Status::Missing, "apt-get install -y runsc");
    }
    if why.contains("needs root") {
        return (Status::Missing, "run vcbench as root");
    }
    match platform {
        Platform::Ptrace => (
            Status::Missing,
            "reinstall runsc (apt-get install --reinstall -y runsc)",
        ),
        Platform::Systrap => (
            Status::Warn,
            "gVisor releases from mid-2023 on have systrap (gVisor's own apt repository or \
             release binaries); the ptrace platform works with this one",
        ),
        Platform::Kvm => (
            Status::Warn,
            "run on a host with VT-x/AMD-V (or nested virtualization enabled) and a read-write \
             /dev/kvm; the ptrace platform works here",
        ),
    }
}

fn kvm(host: &Host) -> Check {
    match host.kvm.flavour.as_str() {
        "hardware" if host.emulated => check(
            "kvm",
            Status::Warn,
            format!(
                "{} on a CPU emulated by QEMU TCG (nested, as in the test rig): guests run as on \
                 hardware virtualization, but every timing is an emulation figure",
                host.kvm.label()
            ),
            None,
        ),
        "hardware" => check("kvm", Status::Ok, host.kvm.label(), None),
        "software" => check(
            "kvm",
            Status::Warn,
            format!(
                "{}: no hardware virtualization; micro guests run but VM timings are emulation \
                 figures, and an unmodified Linux guest cannot boot",
                host.kvm.label()
            ),
            Some(
                "run on a host with VT-x/AMD-V (or nested virtualization enabled); for hardware-style \
                 KVM here, tests/rig/rig boots a throwaway Linux with kvm_amd under QEMU TCG \
                 (tests/rig/rig -- COMMAND)",
            ),
        ),
        _ => check(
            "kvm",
            Status::Missing,
            host.kvm.reason.clone().unwrap_or_else(|| "unavailable".to_owned()),
            Some(&crate::host::kvm_access().err().unwrap_or_else(|| {
                "modprobe kvm_intel (or kvm_amd), and give this user read-write access to /dev/kvm".to_owned()
            })),
        ),
    }
}

fn cgroups(host: &Host) -> Check {
    match host.cgroup.as_str() {
        "v2" => check("cgroups", Status::Ok, "v2 (unified)", None),
        "hybrid" => check(
            "cgroups",
            Status::Ok,
            "hybrid: v1 controllers with an empty v2 tree beside them (some runtimes, e.g. crun 1.8, refuse this)",
            None,
        ),
        "v1" => check("cgroups", Status::Ok, "v1", None),
        _ => check(
            "cgroups",
            Status::Missing,
            "no cgroup file system mounted: container limits and accounting are unavailable",
            Some("mount -t cgroup2 none /sys/fs/cgroup"),
        ),
    }
}

fn privileges(host: &Host) -> Check {
    if host.root {
        check("privileges", Status::Ok, "root", None)
    } else {
        check(
            "privileges",
            Status::Warn,
            "not root: containers run rootless in a user namespace; cgroup limits need delegation",
            Some("run as root for rootful containers and full cgroup accounting"),
        )
    }
}

fn user_namespaces(host: &Host) -> Check {
    if host.user_namespaces {
        check(
            "user namespaces",
            Status::Ok,
            "unprivileged user namespaces allowed",
            None,
        )
    } else {
        check(
            "user namespaces",
            Status::Missing,
            "unprivileged user namespaces are disabled: rootless containers cannot run",
            Some(&crate::host::user_namespaces_blocker().unwrap_or_else(|| {
                "sysctl -w user.max_user_namespaces=15000 kernel.unprivileged_userns_clone=1"
                    .to_owned()
            })),
        )
    }
}

/// Checks that an embedded executable is static (it runs as PID 1 in an empty root, or
/// beside nothing but the kernel).
fn embedded(name: &str, bytes: &[u8], hash: &str) -> Check {
    match images::image::elf_is_static(bytes) {
        Some(true) => check(name, Status::Ok, format!("static, {} KiB, fnv {hash}", bytes.len() / 1024), None),
        _ => check(
            name,
            Status::Missing,
            format!("the embedded {name} is not a static executable"),
            Some("rebuild vcbench (cargo build --release -p vcbench); the build links it with +crt-static"),
        ),
    }
}

/// The C library the embedded monitor is linked with: glibc's start-up is slower (see
/// `images/build.rs`), which every micro VM's start figure then carries.
fn monitor_libc(libc: &str) -> Check {
    if libc == "musl" {
        check(
            "vmm C library",
            Status::Ok,
            "musl (no CPUID at start-up)".to_owned(),
            None,
        )
    } else {
        check(
            "vmm C library",
            Status::Warn,
            format!(
                "{libc}: its start-up runs dozens of CPUID instructions, a trap each on a \
                 host that is itself a VM, in every micro VM start"
            ),
            Some(
                "rustup target add x86_64-unknown-linux-musl, then rebuild vcbench \
                 (cargo build --release -p vcbench)",
            ),
        )
    }
}

fn file_check(name: &str, path: &Path, purpose: &str, fix: &str) -> Check {
    if path.exists() {
        check(
            name,
            Status::Ok,
            format!("{} ({purpose})", path.display()),
            None,
        )
    } else {
        check(
            name,
            Status::Missing,
            format!("no {} ({purpose})", path.display()),
            Some(fix),
        )
    }
}

fn cloud_kernel() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-") && n.ends_with("-cloud-amd64"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// The first executable called `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The first line a tool prints for `--version`, or its path if it prints nothing.
pub fn version_of(path: &Path) -> String {
    // `--version` first; a program that refuses it (busybox: "--version: applet not
    // found") names itself when run with no arguments.
    [&["--version"][..], &[]]
        .iter()
        .find_map(|args| {
            let out = Command::new(path).args(*args).output().ok()?;
            if !out.status.success() {
                return None;
            }
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
        })
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_that_fails_says_how_to_fix_it() {
        let host = crate::host::detect();
        for c in run(&host) {
            assert!(
                c.status == Status::Ok || c.fix.is_some(),
                "{} has no fix",
                c.name
            );
        }
    }

    #[test]
    fn versions_come_from_the_program_or_its_path() {
        // busybox refuses --version ("applet not found") but names itself without
        // arguments.
        if let Some(busybox) = which("busybox") {
            let version = version_of(&busybox);
            assert!(version.starts_with("BusyBox v"), "{version}");
        }
        // A program that says nothing either way is named by its path.
        let false_ = which("false").unwrap();
        assert_eq!(version_of(&false_), false_.display().to_string());
    }

    #[test]
    fn which_finds_a_shell() {
        assert!(which("sh").is_some());
        assert!(which("surely-no-such-tool-here").is_none());
    }
}
