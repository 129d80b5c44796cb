//! What each backend of a run is, for a reader: a plain process, a container (a process
//! the host kernel fences off with namespaces and a cgroup), a container on a kernel in
//! user space (gVisor: its Sentry serves the program's system calls) or a virtual machine
//! (a guest on a monitor on KVM), and, for a VM, whether it ran a Linux guest or micro
//! guests (a few instructions, no guest OS). What serves each one's system calls follows
//! from that.
//!
//! The backends this version knows are placed by name ([`Backend`]); one it does not know
//! (a document from another version) is placed by what the document shows of it: a VM's
//! phases and figures, a container runtime's phases or namespaces.

use crate::document::{Backend, Part, Results, Scenario};

/// The three ways of running a program that a report compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// A plain process on the host: no sandbox.
    Process,
    /// A process the host kernel fences off with namespaces and a cgroup.
    Container,
    /// A fenced process whose system calls a kernel in user space serves (gVisor's
    /// Sentry), which makes its own, fewer, to the host kernel.
    UserKernel,
    /// A guest on a monitor process on KVM.
    Vm,
}

impl Family {
    /// Every family, from the least fenced to the most.
    pub const ALL: [Family; 4] = [
        Family::Process,
        Family::Container,
        Family::UserKernel,
        Family::Vm,
    ];

    /// What it is, in a few words.
    pub fn label(self) -> &'static str {
        match self {
            Family::Process => "a plain process",
            Family::Container => "a container",
            Family::UserKernel => "a container on a kernel in user space",
            Family::Vm => "a virtual machine",
        }
    }

    /// What it is, one line for a student.
    pub fn what(self) -> &'static str {
        match self {
            Family::Process => "a process on the host kernel, with nothing around it",
            Family::Container => {
                "the same process, fenced off by the host kernel with namespaces and a cgroup"
            }
            Family::UserKernel => {
                "the same process, fenced, with its system calls served by a kernel in user \
                 space that makes its own to the host kernel"
            }
            Family::Vm => "a guest on a monitor process, run by KVM inside the host kernel",
        }
    }
}

/// Where a backend stands: its family, and for a VM what kind of guest it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Its family.
    pub family: Family,
    /// A VM that ran micro guests only: no guest OS, no program.
    pub micro: bool,
}

impl Place {
    /// What serves its program's system calls.
    pub fn serves(self) -> &'static str {
        match (self.family, self.micro) {
            (Family::Vm, true) => "nothing: a micro guest has no OS and makes no system calls",
            (Family::Vm, false) => "its own guest kernel",
            (Family::UserKernel, _) => "a kernel in user space (gVisor's Sentry)",
            _ => "the host kernel",
        }
    }

    /// Its family's label, with "(micro guests: no guest OS)" where that applies.
    pub fn label(self) -> String {
        if self.micro {
            format!("{} (micro guests: no guest OS)", self.family.label())
        } else {
            self.family.label().to_owned()
        }
    }
}

/// The backends that ran a virtual machine, by name or by the figures and phases only VMs
/// have, in the order they first appear.
pub fn vm_backends(doc: &Results) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for b in ran(doc) {
        if family(doc, b) == Some(Family::Vm) && !out.contains(&b) {
            out.push(b);
        }
    }
    out
}

/// Whether the document shows VM-only evidence for `backend`: exit figures, guest memory,
/// a VM's phases.
fn vm_evidence(doc: &Results, backend: &str) -> bool {
    doc.figures.iter().any(|f| {
        f.backend == backend
            && (f.scenario == Scenario::Exits
                || f.metric == Part::GuestTouched
                || f.metric == Part::MonitorOverhead)
    }) || doc
        .runs
        .iter()
        .any(|r| r.backend == backend && r.phases.iter().any(|p| p.name == "vm_created"))
}

/// Whether the document shows a container runtime's evidence for `backend`: its
/// namespaces in the plan, or a clone into them among its phases.
fn container_evidence(doc: &Results, backend: &str) -> bool {
    doc.plan
        .settings
        .get(backend)
        .is_some_and(|s| s.contains("namespaces"))
        || doc
            .runs
            .iter()
            .any(|r| r.backend == backend && r.phases.iter().any(|p| p.name == "cloned"))
}

/// The family of `backend`; `None` for a backend this version does not know and the
/// document says nothing of.
pub fn family(doc: &Results, backend: &str) -> Option<Family> {
    match backend.parse::<Backend>() {
        Ok(Backend::Native) => Some(Family::Process),
        Ok(Backend::Container | Backend::Runc | Backend::Crun | Backend::Podman) => {
            Some(Family::Container)
        }
        Ok(Backend::Gvisor) => Some(Family::UserKernel),
        Ok(Backend::Microvm | Backend::Qemu) => Some(Family::Vm),
        _ if vm_evidence(doc, backend) => Some(Family::Vm),
        _ if container_evidence(doc, backend) => Some(Family::Container),
        _ => None,
    }
}

/// Where `backend` stands; `None` when its family is unknown.
pub fn place(doc: &Results, backend: &str) -> Option<Place> {
    let family = family(doc, backend)?;
    Some(Place {
        family,
        micro: family == Family::Vm && !linux_guest_ran(doc, backend),
    })
}

/// Whether a VM backend ran a Linux guest: its settings name one, it has figures from a
/// Linux program, or a phase names a guest kernel or its init.
pub fn linux_guest_ran(doc: &Results, backend: &str) -> bool {
    doc.plan
        .settings
        .get(backend)
        .is_some_and(|s| s.contains("Linux guest"))
        || doc
            .figures
            .iter()
            .any(|f| f.backend == backend && f.scenario.parse().is_ok_and(Scenario::is_program))
        || doc.runs.iter().any(|r| {
            r.backend == backend
                && r.phases
                    .iter()
                    .any(|p| p.name.contains("kernel") || p.name == "init_reached")
        })
}

/// The backends that ran (have figures, runs, a matrix, a trace or a density series), in
/// the plan's order, then any the plan does not list.
pub fn ran(doc: &Results) -> Vec<&str> {
    let has = |b: &str| {
        doc.figures.iter().any(|f| f.backend == b)
            || doc.runs.iter().any(|r| r.backend == b)
            || doc.isolation.iter().any(|m| m.backend == b)
            || doc.surface.iter().any(|s| s.backend == b)
            || doc.density.iter().any(|d| d.backend == b)
    };
    let mut out: Vec<&str> = Vec::new();
    let listed = doc.plan.backends.iter().map(String::as_str);
    let found = doc
        .figures
        .iter()
        .map(|f| f.backend.as_str())
        .chain(doc.runs.iter().map(|r| r.backend.as_str()))
        .chain(doc.isolation.iter().map(|m| m.backend.as_str()))
        .chain(doc.surface.iter().map(|s| s.backend.as_str()))
        .chain(doc.density.iter().map(|d| d.backend.as_str()));
    for b in listed.chain(found) {
        if has(b) && !out.contains(&b) {
            out.push(b);
        }
    }
    out
}

/// The VM backends that ran micro guests only.
pub fn micro_backends(doc: &Results) -> Vec<&str> {
    vm_backends(doc)
        .into_iter()
        .filter(|b| !linux_guest_ran(doc, b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Results {
        Results::parse(
            include_str!("../tests/data/results.json"),
            std::path::Path::new("results.json"),
        )
        .unwrap()
    }

    #[test]
    fn known_backends_are_placed_by_name_and_micro_guests_are_named() {
        let doc = fixture();
        assert_eq!(family(&doc, "native"), Some(Family::Process));
        assert_eq!(family(&doc, "container"), Some(Family::Container));
        assert_eq!(family(&doc, "podman"), Some(Family::Container));
        assert_eq!(family(&doc, "gvisor"), Some(Family::UserKernel));
        assert!(Place {
            family: Family::UserKernel,
            micro: false
        }
        .serves()
        .contains("user space"));
        let vm = place(&doc, "microvm").unwrap();
        assert_eq!(vm.family, Family::Vm);
        assert!(vm.micro);
        assert!(vm.serves().contains("no OS"));
        assert_eq!(ran(&doc), ["native", "container", "microvm"]);
        assert_eq!(micro_backends(&doc), ["microvm"]);
    }

    #[test]
    fn an_unknown_backend_is_placed_by_its_evidence() {
        let mut doc = fixture();
        for f in &mut doc.figures {
            if f.backend == "microvm" {
                f.backend = "othervm".to_owned();
            }
        }
        assert_eq!(family(&doc, "othervm"), Some(Family::Vm));
        assert_eq!(family(&doc, "nothing"), None);
        doc.plan.settings.insert(
            "othervm".to_owned(),
            "Linux guests (6.1.0), 1 vCPU".to_owned(),
        );
        assert!(!place(&doc, "othervm").unwrap().micro);
    }
}
