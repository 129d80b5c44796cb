//! Choosing and setting up backends: each one built once, from one [`Setup`], with the
//! guest kernel found once for both VM backends; what a host cannot give (more memory or
//! vCPUs than it has, too little memory for a Linux guest, a file that is no kernel) is
//! refused here with the option to change.

use std::path::PathBuf;
use std::time::Duration;

use reports::document::Backend as Name;

use super::container::Container;
use super::gvisor::Gvisor;
use super::microvm::{GuestKernel, Guests, MicroVm, GUEST_MIB};
use super::oci::{Oci, Runtime};
use super::podman::Podman;
use super::protocol::{Availability, Backend};
use super::qemu::Qemu;

/// How the backends are set up.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    /// The container backend's namespaces; `None` for all seven.
    pub namespaces: Option<container::Namespaces>,
    /// The container backend's system call filter.
    pub seccomp: container::Seccomp,
    /// The platform gVisor intercepts system calls with.
    pub gvisor_platform: super::gvisor::Platform,
    /// Guest memory of the VM backends, MiB.
    pub vm_memory_mib: u64,
    /// vCPUs of the VM backends' Linux guests.
    pub vm_vcpus: u8,
    /// The guest kernel; `None` for the one `vcbench kernel build` made last, if any.
    pub kernel: Option<PathBuf>,
    /// Whether the Linux guest's kernel log goes to its console.
    pub console: bool,
    /// The time limit of one run, seconds: a guest is stopped a little before it.
    pub timeout_s: f64,
    /// Whether crun runs with the host's cgroup v2 tree hidden (hybrid hosts).
    pub crun_hide_unified_cgroup: bool,
    /// Limits on each instance of the container, runc and crun backends (the VM backends
    /// take `--memory` and `--cpus` as guest memory and vCPUs instead).
    pub limits: container::Limits,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            namespaces: None,
            seccomp: container::Seccomp::Default,
            gvisor_platform: super::gvisor::Platform::default(),
            vm_memory_mib: GUEST_MIB,
            vm_vcpus: 1,
            kernel: None,
            console: false,
            timeout_s: 60.0,
            crun_hide_unified_cgroup: false,
            limits: container::Limits::default(),
        }
    }
}

/// A setup this host cannot give.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `--kernel` file is not a kernel vcbench can boot.
    #[error("--kernel")]
    Kernel(#[source] microvm::linux::image::Error),
    /// Less memory than a Linux guest boots in.
    #[error("--vm-memory-mib {given} is too little for a Linux guest: at least {least} MiB")]
    TooLittleMemory {
        /// Asked for.
        given: u64,
        /// The least a Linux guest needs.
        least: u64,
    },
    /// More memory than the host has.
    #[error(
        "--vm-memory-mib {given} is more than this host's memory ({host} MiB); give a guest \
         less, e.g. the default {GUEST_MIB}"
    )]
    TooMuchMemory {
        /// Asked for.
        given: u64,
        /// The host's memory, MiB.
        host: u64,
    },
    /// More vCPUs than the host's KVM allows.
    #[error("--vm-vcpus {given} is more than this host's KVM allows ({max}); give at most {max}")]
    TooManyVcpus {
        /// Asked for.
        given: u8,
        /// KVM's limit.
        max: usize,
    },
}

/// The backends `names` asks for, in the order they run (the default set when `names` is
/// empty), each set up as `setup` says.
pub fn select(setup: &Setup, names: &[Name]) -> Result<Vec<Box<dyn Backend>>, Error> {
    let kernel = match &setup.kernel {
        Some(path) => Some(GuestKernel::open(path).map_err(Error::Kernel)?),
        None => None,
    };
    let guests = MicroVm::guests_for(kernel);
    let chosen: Vec<Box<dyn Backend>> = Name::ALL
        .iter()
        .map(|&name| build(name, setup, &guests))
        .filter(|b| match names.is_empty() {
            true => b.in_default_set(),
            false => names.iter().any(|n| n.name() == b.name()),
        })
        .collect();
    if chosen
        .iter()
        .any(|b| b.name() == Name::Microvm.name() || b.name() == Name::Qemu.name())
    {
        let least = microvm::linux::machine::MIN_MEMORY_MIB;
        if matches!(guests, Guests::Linux(_)) && setup.vm_memory_mib < least {
            return Err(Error::TooLittleMemory {
                given: setup.vm_memory_mib,
                least,
            });
        }
        check_vm_size(setup.vm_memory_mib, setup.vm_vcpus)?;
    }
    Ok(chosen)
}

/// Every backend this build has, each with its defaults (for listing them and what this
/// host can run).
pub fn all() -> Vec<Box<dyn Backend>> {
    let guests = MicroVm::guests_for(None);
    Name::ALL
        .iter()
        .map(|&name| build(name, &Setup::default(), &guests))
        .collect()
}

fn build(name: Name, setup: &Setup, guests: &Guests) -> Box<dyn Backend> {
    match name {
        Name::Native => Box::new(super::native::Native),
        Name::Container => Box::new(Container {
            namespaces: setup.namespaces.unwrap_or(container::Namespaces::ALL),
            seccomp: setup.seccomp,
            limits: setup.limits,
        }),
        Name::Microvm => Box::new(MicroVm {
            memory_mib: setup.vm_memory_mib,
            vcpus: setup.vm_vcpus,
            guests: guests.clone(),
            console: setup.console,
            guest_timeout: guest_timeout(setup.timeout_s),
            seccomp: setup.seccomp != container::Seccomp::Off,
            tap: None,
            vsock_cid: None,
        }),
        Name::Runc => Box::new(Oci {
            limits: setup.limits,
            ..Oci::new(Runtime::Runc)
        }),
        Name::Crun => Box::new(Oci {
            hide_unified_cgroup: setup.crun_hide_unified_cgroup,
            limits: setup.limits,
            ..Oci::new(Runtime::Crun)
        }),
        Name::Podman => Box::new(Podman::default()),
        // On runsc's default platform; another is chosen by building `Gvisor` with it.
        Name::Gvisor => Box::new(Gvisor {
            platform: setup.gvisor_platform,
        }),
        Name::Qemu => Box::new(Qemu {
            memory_mib: setup.vm_memory_mib,
            vcpus: setup.vm_vcpus,
            guests: guests.clone(),
            console: setup.console,
            tap: None,
            vsock_cid: None,
        }),
    }
}

/// Whether each of `backends` can run here, asked of all at once (each asks a program
/// or a device, and some take tens of milliseconds), in the same order.
pub fn availability_of(backends: &[Box<dyn Backend>]) -> Vec<Availability> {
    std::thread::scope(|scope| {
        let asked: Vec<_> = backends
            .iter()
            .map(|b| scope.spawn(|| b.availability()))
            .collect();
        asked
            .into_iter()
            .map(|answer| {
                answer.join().unwrap_or_else(|_| {
                    Availability::Unavailable("its availability check failed".to_owned())
                })
            })
            .collect()
    })
}

/// The monitor stops a guest a little before the run's own deadline, so its console can
/// be reported.
fn guest_timeout(timeout_s: f64) -> Duration {
    Duration::from_secs_f64((timeout_s * 0.9).max(timeout_s - 2.0).max(0.1))
}

/// Refuses a guest larger than the host: more memory than it has, more vCPUs than its
/// KVM allows. Where /dev/kvm cannot be opened, the VM backends say so themselves.
fn check_vm_size(memory_mib: u64, vcpus: u8) -> Result<(), Error> {
    let host_mib = crate::host::meminfo_kib("MemTotal").map_or(u64::MAX, |kib| kib / 1024);
    if memory_mib > host_mib {
        return Err(Error::TooMuchMemory {
            given: memory_mib,
            host: host_mib,
        });
    }
    if let Some(max) = microvm::host::max_vcpus() {
        if usize::from(vcpus) > max {
            return Err(Error::TooManyVcpus { given: vcpus, max });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_the_backends_names() {
        let names: Vec<&str> = all().iter().map(|b| b.name()).collect();
        assert_eq!(names, Name::NAMES);
    }

    #[test]
    fn each_backend_is_built_once_with_the_setup() {
        let setup = Setup {
            namespaces: Some(container::Namespaces {
                net: false,
                ..container::Namespaces::ALL
            }),
            ..Setup::default()
        };
        let chosen = select(&setup, &[Name::Container, Name::Native]).unwrap();
        // In the order they run, not the order asked.
        let names: Vec<&str> = chosen.iter().map(|b| b.name()).collect();
        assert_eq!(names, ["native", "container"]);
        assert_eq!(
            chosen[1].settings(),
            "namespaces: user,mount,uts,ipc,cgroup,pid; seccomp: default"
        );
    }

    #[test]
    fn the_default_set_leaves_out_the_peers() {
        let chosen = select(&Setup::default(), &[]).unwrap();
        let names: Vec<&str> = chosen.iter().map(|b| b.name()).collect();
        assert_eq!(names, ["native", "container", "microvm"]);
    }

    #[test]
    fn a_guest_larger_than_the_host_is_refused() {
        let setup = Setup {
            vm_memory_mib: 1 << 40,
            ..Setup::default()
        };
        let Err(err) = select(&setup, &[Name::Microvm]) else {
            panic!("a guest of 2^40 MiB was accepted");
        };
        assert!(matches!(err, Error::TooMuchMemory { .. }), "{err}");
        // Without a VM backend, the guest's size does not matter.
        assert!(select(&setup, &[Name::Native]).is_ok());
    }
}
