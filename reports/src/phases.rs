//! Where startup time goes: each backend's startup phases, as the medians of the times
//! its runs reached them, grouped into stages a reader knows (namespaces, mounts, the
//! cgroup; VM build, guest kernel boot, the guest's run to its first marker).
//!
//! A phase is stamped when it is reached, so the stage that ends at a phase is the time
//! since the phase before it. Medians keep the order of the phases: when every run reaches
//! one phase before another, the median times are ordered the same way.

use crate::document::Results;

/// A stage of startup: one or more consecutive phases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Its place in the list of known stages (the chart's colour); unknown phases come last.
    pub key: usize,
    /// What happens in it.
    pub label: String,
}

impl Stage {
    /// What happens in it.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// The known stages, with the phases that end in each.
const STAGES: [(&str, &[&str]); 10] = [
    ("runtime preparation", &["prepared"]),
    ("cgroup", &["cgroup_created", "cgroup_attached"]),
    (
        "namespaces (clone, uid maps)",
        &["cloned", "idmaps_written"],
    ),
    ("mounts and pivot_root", &["mounts_done", "pivot_root_done"]),
    ("hostname, loopback, privileges", &["exec"]),
    ("monitor start and VM creation", &["vm_created"]),
    (
        "VM build (memory, vCPUs, guest image)",
        &[
            "memory_registered",
            "vcpus_created",
            "payload_loaded",
            "kernel_loaded",
            "vm_built",
            "kernel_entry",
        ],
    ),
    ("guest kernel boot, to init", &["init_reached"]),
    ("guest run to its first marker", &["first_marker"]),
    (
        "to the workload's first record",
        &["workload_started", STARTED],
    ),
];

/// The name given to the last phase: the workload's first record reached the host.
pub const STARTED: &str = "workload started";

/// The stage a phase ends.
pub fn stage_of(phase: &str) -> Stage {
    STAGES
        .iter()
        .position(|(_, phases)| phases.contains(&phase))
        .map_or_else(
            || Stage {
                key: STAGES.len(),
                label: phase.replace('_', " "),
            },
            |key| Stage {
                key,
                label: STAGES[key].0.to_owned(),
            },
        )
}

/// Every known stage's label, in order (for legends).
pub fn known_stages() -> impl Iterator<Item = Stage> {
    (0..STAGES.len()).map(|key| Stage {
        key,
        label: STAGES[key].0.to_owned(),
    })
}

/// The median of unsorted values (0 for none), interpolating between the middle two.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Per backend, its startup phases as (name, median ms after launch), ending with the
/// workload's first record ([`STARTED`]). Only measured, successful startup runs count.
pub fn phase_medians(doc: &Results) -> Vec<(String, Vec<(String, f64)>)> {
    let mut out = Vec::new();
    for backend in doc.backends() {
        let runs: Vec<_> = doc
            .runs
            .iter()
            .filter(|r| r.backend == backend && r.scenario == "startup" && r.ok && !r.warmup)
            .collect();
        let started: Vec<f64> = runs.iter().filter_map(|r| r.markers.started_ms).collect();
        let (Some(first), false) = (runs.first(), started.is_empty()) else {
            continue;
        };
        let start = median(&started);
        let mut phases: Vec<(String, f64)> = first
            .phases
            .iter()
            .map(|phase| {
                let at: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r.phases.iter().find(|p| p.name == phase.name).map(|p| p.ms))
                    .collect();
                (phase.name.clone(), median(&at))
            })
            // Phases after the first record (a VM's halt and teardown) belong to its end.
            .filter(|(_, ms)| *ms <= start)
            .collect();
        phases.push((STARTED.to_owned(), start));
        out.push((backend.to_owned(), phases));
    }
    out
}

/// One stage of one backend's startup.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The stage.
    pub stage: Stage,
    /// Where it starts, ms after launch.
    pub from: f64,
    /// How long it took, ms.
    pub ms: f64,
}

/// Per backend, its startup split into stages, in time order; consecutive phases of one
/// stage are merged.
pub fn stages(doc: &Results) -> Vec<(String, Vec<Part>)> {
    phase_medians(doc)
        .into_iter()
        .map(|(backend, phases)| {
            let mut parts: Vec<Part> = Vec::new();
            let mut from = 0.0;
            for (name, at) in phases {
                let stage = stage_of(&name);
                let ms = (at - from).max(0.0);
                match parts.last_mut() {
                    Some(last) if last.stage == stage => last.ms += ms,
                    _ => parts.push(Part { stage, from, ms }),
                }
                from = at;
            }
            (backend, parts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_fall_into_stages() {
        assert_eq!(stage_of("cloned"), stage_of("idmaps_written"));
        assert_eq!(stage_of("mounts_done").label, "mounts and pivot_root");
        let unknown = stage_of("firmware_done");
        assert_eq!(unknown.label, "firmware done");
        assert_eq!(unknown.key, STAGES.len());
    }

    #[test]
    fn a_linux_guest_s_phases_split_into_vm_build_kernel_boot_and_init() {
        let build = stage_of("memory_registered");
        for phase in ["kernel_loaded", "vcpus_created", "vm_built", "kernel_entry"] {
            assert_eq!(stage_of(phase), build, "{phase}");
        }
        assert_eq!(stage_of("init_reached").label, "guest kernel boot, to init");
        assert_eq!(stage_of("workload_started"), stage_of(STARTED));
    }

    #[test]
    fn medians_interpolate() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
