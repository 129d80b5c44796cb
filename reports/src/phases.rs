//! Where startup time goes: each backend's startup phases, as the medians of the times
//! its runs reached them, grouped into stages a reader knows (namespaces, mounts, the
//! cgroup; VM build, guest kernel boot, the guest's run to its first marker).
//!
//! A phase is stamped when it is reached, so the stage that ends at a phase is the time
//! since the phase before it. Medians keep the order of the phases: when every run reaches
//! one phase before another, the median times are ordered the same way.

use crate::document::{Phase, Results, Scenario};

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
const STAGES: [(&str, &[&str]); 13] = [
    ("runtime preparation", &["prepared"]),
    ("cgroup", &["cgroup_created", "cgroup_attached"]),
    ("device allow-list", &["devices_restricted"]),
    (
        "namespaces (clone, uid maps)",
        &["cloned", "idmaps_written"],
    ),
    ("mounts and pivot_root", &["mounts_done", "pivot_root_done"]),
    ("kernel paths masked", &["paths_masked"]),
    ("hostname, loopback, privileges", &["privileges_dropped"]),
    ("system call filter", &["exec"]),
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
    (
        "guest kernel boot, to init",
        &[
            "kernel_banner",
            "kernel_tsc_deadline_timer",
            "kernel_clocksource_switched",
            "kernel_runs_init",
            "init_reached",
        ],
    ),
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

/// One stage of one backend's startup.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The stage.
    pub stage: Stage,
    /// Where it starts, ms after launch: the sum of the stages before it.
    pub from: f64,
    /// How long it took, ms: the median over the runs of this stage's duration in each run.
    pub ms: f64,
}

/// One run's startup as stages and their durations, in time order: each phase ends the
/// stage it belongs to, consecutive phases of one stage merge, and the last stage ends at
/// the workload's first record. Phases after the first record (a VM's halt) belong to its
/// end and are left out.
pub fn run_stages(phases: &[Phase], started_ms: f64) -> Vec<(Stage, f64)> {
    let mut parts: Vec<(Stage, f64)> = Vec::new();
    let mut from = 0.0;
    let ends = phases
        .iter()
        .filter(|p| p.ms <= started_ms)
        .map(|p| (p.name.as_str(), p.ms))
        .chain([(STARTED, started_ms)]);
    for (name, at) in ends {
        let stage = stage_of(name);
        let ms = (at - from).max(0.0);
        match parts.last_mut() {
            Some(last) if last.0 == stage => last.1 += ms,
            _ => parts.push((stage, ms)),
        }
        from = from.max(at);
    }
    parts
}

/// Per backend, its startup split into stages, in time order: each stage's duration is
/// the median of that stage's duration in each measured, successful startup run (not a
/// difference of medians, which can come out negative or hide a stage).
pub fn stages(doc: &Results) -> Vec<(String, Vec<Part>)> {
    let mut out = Vec::new();
    for backend in doc.backends() {
        let runs: Vec<Vec<(Stage, f64)>> = doc
            .runs
            .iter()
            .filter(|r| {
                r.backend == backend && r.scenario == Scenario::Startup && r.ok && !r.warmup
            })
            .filter_map(|r| Some(run_stages(&r.phases, r.markers.started_ms?)))
            .collect();
        let Some(first) = runs.first() else {
            continue;
        };
        let mut parts = Vec::new();
        let mut from = 0.0;
        for (stage, _) in first {
            let durations: Vec<f64> = runs
                .iter()
                .filter_map(|run| run.iter().find(|(s, _)| s == stage).map(|(_, ms)| *ms))
                .collect();
            let ms = stats::median(&durations).unwrap_or(0.0);
            parts.push(Part {
                stage: stage.clone(),
                from,
                ms,
            });
            from += ms;
        }
        out.push((backend.to_owned(), parts));
    }
    out
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

    fn phase(name: &str, ms: f64) -> Phase {
        Phase {
            name: name.to_owned(),
            ms,
        }
    }

    #[test]
    fn a_run_s_stages_are_its_own_durations() {
        let phases = [
            phase("prepared", 0.5),
            phase("cgroup_created", 0.75),
            phase("cgroup_attached", 1.0),
            phase("cloned", 2.0),
            phase("vm_halted", 9.0),
        ];
        let stages = run_stages(&phases, 3.5);
        let got: Vec<(&str, f64)> = stages.iter().map(|(s, ms)| (s.label(), *ms)).collect();
        assert_eq!(
            got,
            [
                ("runtime preparation", 0.5),
                ("cgroup", 0.5),
                ("namespaces (clone, uid maps)", 1.0),
                ("to the workload's first record", 1.5)
            ]
        );
    }

    #[test]
    fn stages_are_medians_of_each_run_s_durations() {
        // Two runs whose phase times' medians would give a negative stage: in run a the
        // clone comes late and the first record early, in run b the other way round.
        let text = include_str!("../tests/data/results.json");
        let mut doc = Results::parse(text, std::path::Path::new("results.json")).unwrap();
        doc.runs
            .retain(|r| r.backend == "container" && r.scenario == "startup");
        let template = doc.runs[0].clone();
        doc.runs.clear();
        for (clone, first, started) in [(1.0, 4.0, 4.5), (2.0, 2.5, 3.0), (3.0, 3.2, 9.0)] {
            let mut run = template.clone();
            run.ok = true;
            run.warmup = false;
            run.phases = vec![phase("cloned", clone), phase("exec", first)];
            run.markers.started_ms = Some(started);
            doc.runs.push(run);
        }
        let (backend, parts) = &stages(&doc)[0];
        assert_eq!(backend, "container");
        let ms: Vec<f64> = parts.iter().map(|p| p.ms).collect();
        // Clone: 1, 2, 3 -> 2. Exec after the clone: 3, 0.5, 0.2 -> 0.5. To the first
        // record: 0.5, 0.5, 5.8 -> 0.5.
        assert_eq!(ms, [2.0, 0.5, 0.5]);
        let from: Vec<f64> = parts.iter().map(|p| p.from).collect();
        assert_eq!(from, [0.0, 2.0, 2.5]);
    }
}
