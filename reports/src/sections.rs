//! What a report says, independent of its format: the environment banner and its
//! warnings, then one section per concern with a teaching note drawn from the measured
//! numbers ([`crate::notes`]), its tables (each scenario's headline figures; every figure
//! in the appendix), and a plain statement of what it has no data for, then the failures
//! and skips. Markdown and HTML both render this.

use std::fmt::Write;

use crate::document::{Backend, Figure, Kind, Results, Scenario};
use crate::figure_text::{self, number};
use crate::{derived, family, matrix, notes};

pub use crate::family::vm_backends;
pub use crate::table::Table;

/// One concern of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Its title.
    pub title: &'static str,
    /// Anchor name (HTML) and the key its charts are filed under.
    pub id: &'static str,
    /// A few sentences for a student: what the figures show and why, with the numbers of
    /// this run.
    pub note: String,
    /// Its tables: the headline figures first.
    pub tables: Vec<Table>,
    /// What this concern has no data for in this run, and why: said, never left out.
    pub missing: Vec<String>,
    /// Its long tables, for the appendix: every figure, every check.
    pub appendix: Vec<Table>,
}

/// The concerns, each with the scenarios whose figures it shows.
const CONCERNS: [(&str, &str, &[Scenario]); 5] = [
    (
        "Startup",
        "startup",
        &[Scenario::Startup, Scenario::Warm, Scenario::Command],
    ),
    ("Memory", "memory", &[Scenario::Footprint]),
    (
        "Runtime overhead",
        "overhead",
        &[
            Scenario::Cpu,
            Scenario::Mem,
            Scenario::Syscall,
            Scenario::Fork,
            Scenario::File,
            Scenario::Net,
            Scenario::Hostnet,
            Scenario::Exits,
        ],
    ),
    (
        "Isolation",
        "isolation",
        &[Scenario::Isolation, Scenario::Interference],
    ),
    ("Density", "density", &[Scenario::Density]),
];

/// The report's sections, in order.
pub fn sections(doc: &Results) -> Vec<Section> {
    CONCERNS
        .iter()
        .map(|(title, id, scenarios)| {
            let figures: Vec<Figure> = doc
                .figures
                .iter()
                .filter(|f| scenarios.iter().any(|s| f.scenario == *s))
                .cloned()
                .collect();
            let headline: Vec<Figure> = figures
                .iter()
                .filter(|f| derived::headline(&f.scenario, &f.metric))
                .cloned()
                .collect();
            let mut tables = Vec::new();
            let mut appendix = Vec::new();
            if !headline.is_empty() {
                tables.push(figure_table(
                    doc,
                    &headline,
                    title,
                    headline.len() < figures.len(),
                ));
            }
            if headline.len() < figures.len() {
                appendix.push(figure_table(doc, &figures, title, false));
            }
            match *id {
                "isolation" => {
                    if let Some(m) = matrix::matrix(doc) {
                        if !m.rows.is_empty() || !m.notes.is_empty() {
                            tables.push(matrix::table(&m));
                        }
                    }
                    tables.extend(reachable_table(doc));
                    tables.extend(surface_table(doc));
                    appendix.extend(matrix::full_tables(doc));
                }
                "density" => tables.extend(density_table(doc)),
                _ => {}
            }
            let mut missing = if tables.is_empty() {
                vec![no_data(doc, title, scenarios)]
            } else {
                linux_guest_gap(doc, id).into_iter().collect()
            };
            if *id == "isolation" {
                if let Some(m) = matrix::matrix(doc) {
                    missing.extend(m.notes);
                }
            }
            Section {
                title,
                id,
                note: notes::note(doc, id),
                tables,
                missing,
                appendix,
            }
        })
        .collect()
}

/// Why a concern has no data: its scenarios were not run, or were skipped.
fn no_data(doc: &Results, title: &str, scenarios: &[Scenario]) -> String {
    let names: Vec<&str> = scenarios.iter().map(|s| s.name()).collect();
    let planned: Vec<&str> = doc
        .plan
        .scenarios
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| names.contains(n))
        .collect();
    let mut text = format!("No data for {} in this run: ", title.to_lowercase());
    if planned.is_empty() {
        let _ = write!(
            text,
            "its scenario{} ({}) {} not part of the plan.",
            if scenarios.len() > 1 { "s" } else { "" },
            names.join(", "),
            if scenarios.len() > 1 { "were" } else { "was" }
        );
        return text;
    }
    let reasons: Vec<String> = doc
        .skipped
        .iter()
        .filter(|s| s.scenario.as_deref().is_none_or(|sc| planned.contains(&sc)))
        .map(|s| format!("{} {}", s.backend, s.reason))
        .chain(
            doc.failures
                .iter()
                .filter(|f| planned.contains(&f.scenario.as_str()))
                .map(|f| format!("{} failed: {}", f.backend, f.reason)),
        )
        .collect();
    if reasons.is_empty() {
        let _ = write!(text, "{} ran but gave no figures.", planned.join(", "));
    } else {
        let _ = write!(text, "{}.", dedup(reasons).join("; "));
    }
    text
}

fn dedup(mut items: Vec<String>) -> Vec<String> {
    let mut seen = Vec::new();
    items.retain(|i| {
        let new = !seen.contains(i);
        if new {
            seen.push(i.clone());
        }
        new
    });
    items
}

/// What a section lacks because no Linux guest ran, when VMs ran without one.
fn linux_guest_gap(doc: &Results, id: &str) -> Option<String> {
    let vms = family::micro_backends(doc);
    if vms.is_empty() {
        return None;
    }
    let who = vms.join(", ");
    match id {
        "startup" => Some(format!(
            "No Linux guest was measured: the {who} figures come from micro guests, a few \
             instructions with no guest OS, so they hold no guest kernel boot."
        )),
        "memory" => Some(format!(
            "No guest kernel memory was measured: the {who} guests were micro guests, with no \
             guest OS."
        )),
        "overhead" => Some(format!(
            "No Linux guest was measured: {who} ran none of the workloads above, which are \
             Linux programs; only the exit round trip of a micro guest."
        )),
        _ => None,
    }
}

/// The environment, as (what, value) pairs.
pub fn environment(doc: &Results) -> Vec<(&'static str, String)> {
    let h = &doc.host;
    let mut rows = vec![
        ("host", h.hostname.clone()),
        ("CPU", format!("{} ({} CPUs)", h.cpu_model, h.cpus)),
        ("memory", format!("{} MiB", h.memory_mib)),
        ("kernel", format!("Linux {}, {}", h.kernel, h.os)),
    ];
    let under = match (&h.hypervisor, h.emulated) {
        (_, true) => "a CPU emulated by QEMU TCG".to_owned(),
        (Some(v), false) if !v.is_empty() => format!("a virtual machine ({v})"),
        _ if h.virtualized => "a virtual machine".to_owned(),
        _ => "bare metal".to_owned(),
    };
    rows.push(("runs on", under));
    let kvm = match (h.kvm.flavour.as_str(), &h.kvm.reason) {
        ("software", _) => format!("{}: guest instructions are emulated", h.kvm.label()),
        ("hardware", _) => format!("{}: the CPU's virtualization", h.kvm.label()),
        (_, Some(reason)) => format!("{}: {reason}", h.kvm.label()),
        _ => h.kvm.label(),
    };
    rows.push(("KVM", kvm));
    rows.push(("cgroups", h.cgroup.clone()));
    // Recorded where the kernel exposes it (not in most VMs, nor by older versions).
    if let Some(f) = &h.cpu_frequency {
        rows.push(("CPU frequency", f.clone()));
    }
    rows.push((
        "privileges",
        format!(
            "{}; unprivileged user namespaces {}",
            if h.root { "root" } else { "not root" },
            if h.user_namespaces { "on" } else { "off" }
        ),
    ));
    if !h.peers.is_empty() {
        let peers: Vec<&str> = h.peers.values().map(String::as_str).collect();
        rows.push(("peers", peers.join("; ")));
    }
    rows.push((
        "vcbench",
        format!(
            "{} {} ({}), workload {}",
            doc.tool.name, doc.tool.version, doc.tool.git_revision, doc.tool.workload_fnv
        ),
    ));
    rows.push((
        "run",
        format!(
            "{} to {}{}",
            doc.started_at,
            doc.finished_at,
            if doc.complete { "" } else { " (interrupted)" }
        ),
    ));
    if !doc.plan.stamping.is_empty() {
        // Backends stamped the same way, on one line each way.
        let mut ways: Vec<(&str, Vec<&str>)> = Vec::new();
        for (backend, how) in &doc.plan.stamping {
            match ways.iter_mut().find(|(h, _)| h == how) {
                Some((_, backends)) => backends.push(backend),
                None => ways.push((how, vec![backend])),
            }
        }
        let text: Vec<String> = ways
            .iter()
            .map(|(how, backends)| {
                let delay = match (how.contains("pipe"), doc.plan.pipe_stamp_delay_ms) {
                    (true, Some(ms)) => {
                        format!(" (measured here: {} ms after the write)", number(ms))
                    }
                    _ => String::new(),
                };
                format!("{}: {how}{delay}", backends.join(", "))
            })
            .collect();
        rows.push(("records stamped", text.join("; ")));
    }
    rows
}

/// The warnings every reader must see before any figure.
pub fn warnings(doc: &Results) -> Vec<String> {
    let mut w = Vec::new();
    let vms = !vm_backends(doc).is_empty();
    if doc.host.emulated {
        w.push(
            "This run was taken on a CPU emulated by QEMU TCG (the test rig): every instruction, \
             the host's own included, was emulated, and KVM inside it is nested under the \
             emulation. These results test correctness; their timings describe no real machine."
                .to_owned(),
        );
    } else if doc.host.kvm.flavour == "software" {
        w.push(format!(
            "KVM on this host is {}: guest instructions are emulated, so {} timings are \
             emulation figures, far slower than hardware virtualization{}.",
            doc.host.kvm.label(),
            if vms { "the VM" } else { "any VM" },
            if vms {
                "; compare them with each other, not with containers"
            } else {
                ""
            }
        ));
    } else if doc.host.kvm.flavour == "hardware" && doc.host.virtualized && vms {
        w.push(
            "This host is itself a virtual machine: its VMs are nested, and their exits pass \
             through the outer hypervisor too, so VM timings are higher than on bare metal."
                .to_owned(),
        );
    }
    if !doc.complete {
        w.push("The run was interrupted: figures are missing for what had not run yet.".to_owned());
    }
    w
}

/// Failures and skips, one line each; failures of one backend and scenario with one
/// reason are counted on one line.
pub fn problems(doc: &Results) -> Vec<String> {
    let mut groups: Vec<(String, String, String, Vec<u32>)> = Vec::new();
    for f in &doc.failures {
        match groups
            .iter_mut()
            .find(|g| g.0 == f.backend && g.1 == f.scenario && g.2 == f.reason)
        {
            Some(g) => g.3.push(f.index),
            None => groups.push((
                f.backend.clone(),
                f.scenario.clone(),
                f.reason.clone(),
                vec![f.index],
            )),
        }
    }
    let mut lines: Vec<String> = groups
        .into_iter()
        .map(|(backend, scenario, reason, runs)| {
            let runs: Vec<String> = runs.iter().map(u32::to_string).collect();
            let which = if runs.len() == 1 {
                format!("run {}", runs[0])
            } else {
                format!("{} runs ({})", runs.len(), runs.join(", "))
            };
            format!("failed: {backend} {scenario}, {which}: {reason}")
        })
        .collect();
    lines.extend(doc.skipped.iter().map(|s| match &s.scenario {
        Some(sc) => format!("skipped: {} {sc}: {}", s.backend, s.reason),
        None => format!("skipped: {}: {}", s.backend, s.reason),
    }));
    lines
}

/// A table of figures: median with its interval, p95, cv, n and the ratio to the baseline
/// with its interval; a micro guest's raw costs have no ratio. `more` says the appendix
/// holds the rest of the section's figures.
fn figure_table(doc: &Results, figures: &[Figure], title: &str, more: bool) -> Table {
    let baseline = doc.baseline().unwrap_or(Backend::Native.name());
    Table::new(
        format!(
            "{} (median of the measured runs with its 95% confidence interval; p95; cv is \
             their spread, standard deviation over mean; vs {baseline} is the median over \
             {baseline}'s with a bootstrap 95% interval, * where it excludes 1: a significant \
             difference. A value is one derived number, with no spread. Rows marked raw cost \
             are a micro guest's (no guest OS): the hypervisor's own costs, like nothing a \
             process does{})",
            if more {
                format!("{title}: the headline figures")
            } else {
                format!("{title}: every figure")
            },
            if more {
                "; every figure is in the appendix"
            } else {
                ""
            }
        ),
        vec![
            "backend".to_owned(),
            "scenario".to_owned(),
            "metric".to_owned(),
            "median [95% CI]".to_owned(),
            "p95".to_owned(),
            "cv".to_owned(),
            "n".to_owned(),
            format!("vs {baseline} [95% CI]"),
        ],
        vec![false, false, false, true, true, true, true, true],
        figures
            .iter()
            .map(|f| {
                let s = &f.summary;
                let value = f.kind == Kind::Value;
                vec![
                    if f.raw_cost {
                        format!("{} (raw cost)", f.backend)
                    } else {
                        f.backend.clone()
                    },
                    f.scenario.clone(),
                    figure_text::metric(f),
                    figure_text::median(f),
                    if value {
                        String::new()
                    } else {
                        format!("{} {}", number(s.p95), f.unit)
                    },
                    figure_text::spread(f),
                    if value {
                        "value".to_owned()
                    } else {
                        s.n.to_string()
                    },
                    figure_text::ratio(f),
                ]
            })
            .collect(),
    )
}

/// What each backend lets a hostile program reach of the host kernel: its filter.
fn reachable_table(doc: &Results) -> Option<Table> {
    if doc.reachable.is_empty() {
        return None;
    }
    Some(Table {
        caption: "Reachable host surface: the host system calls a hostile program in the \
                  sandbox could make, whatever the workload happened to call, by the filter \
                  between them (for a VM, the calls of its monitor, which serves the guest), \
                  of those the host's kernel headers name; and for a VM the exits that run \
                  the monitor's own code"
            .to_owned(),
        header: [
            "backend",
            "system calls reachable",
            "filter",
            "only with some arguments",
            "VM exits into the monitor",
        ]
        .map(str::to_owned)
        .to_vec(),
        numeric: vec![false, true, false, false, false],
        verdicts: vec![false; 5],
        rows: doc
            .reachable
            .iter()
            .map(|r| {
                vec![
                    r.backend.clone(),
                    match r.syscalls {
                        Some(n) => format!("{n} of {}", r.of),
                        None => "not counted".to_owned(),
                    },
                    r.filter.clone(),
                    r.conditional.join("; "),
                    r.vm_exits.join("; "),
                ]
            })
            .collect(),
    })
}

/// What reached the host kernel, per backend and traced workload.
fn surface_table(doc: &Results) -> Option<Table> {
    if doc.surface.is_empty() {
        return None;
    }
    Some(Table {
        caption: "Host attack surface: system calls the host kernel served for the workload (a \
                  VM's monitor from the guest's first run), the runtime's or monitor's own \
                  setup before it, and VM exits: those the monitor handled, and all of them \
                  by the kernel's kvm_exit tracepoint, those KVM handled inside the host kernel \
                  included (not traced where the host's KVM has no such tracepoint). A plain \
                  process's calls are the reference, not a smaller surface: it has no sandbox"
            .to_owned(),
        header: [
            "backend",
            "workload",
            "distinct system calls",
            "system calls",
            "per second",
            "setup system calls",
            "VM exits (monitor)",
            "VM exits (kernel)",
        ]
        .map(str::to_owned)
        .to_vec(),
        numeric: vec![false, false, true, true, true, true, true, true],
        verdicts: vec![false; 8],
        rows: doc
            .surface
            .iter()
            .map(|s| {
                let sum = |counts: &[(String, u64)]| match counts {
                    [] => String::new(),
                    _ => counts.iter().map(|(_, n)| n).sum::<u64>().to_string(),
                };
                vec![
                    s.backend.clone(),
                    s.workload.join(" "),
                    s.distinct_syscalls.to_string(),
                    s.total_syscalls.to_string(),
                    number(s.syscalls_per_s),
                    sum(&s.setup_syscalls),
                    sum(&s.vm_exits),
                    match (s.vm_exits.is_empty(), s.kvm_exits.is_empty()) {
                        (false, true) => "not traced here".to_owned(),
                        _ => sum(&s.kvm_exits),
                    },
                ]
            })
            .collect(),
    })
}

/// Each density step: instances alive, start latency, memory per instance, the host.
fn density_table(doc: &Results) -> Option<Table> {
    if doc.density.iter().all(|d| d.steps.is_empty()) {
        return None;
    }
    let mut rows = Vec::new();
    for d in &doc.density {
        for s in &d.steps {
            rows.push(vec![
                d.backend.clone(),
                s.instances.to_string(),
                format!("{} ms", number(stats::median(&s.start_ms).unwrap_or(0.0))),
                format!("{} MiB", number(kib_to_mib(s.per_instance.rss_kib))),
                format!("{} MiB", number(kib_to_mib(s.per_instance.pss_kib))),
                format!("{} MiB", number(kib_to_mib(s.per_instance.uss_kib))),
                format!("{} MiB", number(kib_to_mib(s.host.available_kib))),
            ]);
        }
    }
    Some(Table {
        caption: "Density steps: start latency of the step's instances (median), memory per \
                  instance (RSS counts the pages instances share in each of them, PSS divides \
                  them among the sharers, USS leaves them out), and the host's available \
                  memory after the step"
            .to_owned(),
        header: [
            "backend",
            "instances",
            "start",
            "RSS each",
            "PSS each",
            "USS each",
            "host available",
        ]
        .map(str::to_owned)
        .to_vec(),
        numeric: vec![false, true, true, true, true, true, true],
        verdicts: vec![false; 7],
        rows,
    })
}

/// KiB as MiB.
pub fn kib_to_mib(kib: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "memory sizes far below 2^52")]
    let kib = kib as f64;
    kib / 1024.0
}
