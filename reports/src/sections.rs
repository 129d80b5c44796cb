//! What a report says, independent of its format: the environment banner and its
//! warnings, then one section per concern with a teaching note drawn from the measured
//! numbers, its tables, and a plain statement of what it has no data for, then the
//! failures and skips. Markdown and HTML both render this.

use std::fmt::Write;

use crate::document::{Backend, Figure, Kind, Metric, Part, Results, Scenario};
use crate::figure_text::{self, number, times};
use crate::phases;

/// One concern of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Its title.
    pub title: &'static str,
    /// Anchor name (HTML) and the key its charts are filed under.
    pub id: &'static str,
    /// Two or three sentences for a student: what the figures show and why, with the
    /// numbers of this run.
    pub note: String,
    /// Its tables, figures first.
    pub tables: Vec<Table>,
    /// What this concern has no data for in this run, and why: said, never left out.
    pub missing: Vec<String>,
}

/// A table, for any output format.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// What it shows, in a few words.
    pub caption: String,
    /// Column names.
    pub header: Vec<String>,
    /// Which columns hold numbers (right-aligned).
    pub numeric: Vec<bool>,
    /// The rows, as text.
    pub rows: Vec<Vec<String>>,
}

/// The concerns, each with the scenarios whose figures it shows.
const CONCERNS: [(&str, &str, &[Scenario]); 5] = [
    ("Startup", "startup", &[Scenario::Startup]),
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
            let mut tables = Vec::new();
            if !figures.is_empty() {
                tables.push(figure_table(doc, &figures));
            }
            match *id {
                "isolation" => {
                    tables.extend(matrix_table(doc));
                    tables.extend(surface_table(doc));
                }
                "density" => tables.extend(density_table(doc)),
                _ => {}
            }
            let missing = if tables.is_empty() {
                vec![no_data(doc, title, scenarios)]
            } else {
                linux_guest_gap(doc, id).into_iter().collect()
            };
            Section {
                title,
                id,
                note: note(doc, id),
                tables,
                missing,
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

/// The backends that ran a virtual machine, by the figures and phases only VMs have.
pub fn vm_backends(doc: &Results) -> Vec<&str> {
    let from_figures = doc
        .figures
        .iter()
        .filter(|f| {
            f.scenario == Scenario::Exits
                || f.metric == Part::GuestTouched
                || f.metric == Part::MonitorOverhead
        })
        .map(|f| f.backend.as_str());
    let from_runs = doc
        .runs
        .iter()
        .filter(|r| r.phases.iter().any(|p| p.name == "vm_created"))
        .map(|r| r.backend.as_str());
    let mut out: Vec<&str> = Vec::new();
    for b in from_figures.chain(from_runs) {
        if !out.contains(&b) {
            out.push(b);
        }
    }
    out
}

/// Whether a VM backend ran a Linux guest: figures from a Linux program, or a phase that
/// names a guest kernel or its init.
fn linux_guest_ran(doc: &Results, backend: &str) -> bool {
    doc.figures
        .iter()
        .any(|f| f.backend == backend && f.scenario.parse().is_ok_and(Scenario::is_program))
        || doc.runs.iter().any(|r| {
            r.backend == backend
                && r.phases
                    .iter()
                    .any(|p| p.name.contains("kernel") || p.name == "init_reached")
        })
}

/// What a section lacks because no Linux guest ran, when VMs ran without one.
fn linux_guest_gap(doc: &Results, id: &str) -> Option<String> {
    let vms: Vec<&str> = vm_backends(doc)
        .into_iter()
        .filter(|b| !linux_guest_ran(doc, b))
        .collect();
    if vms.is_empty() {
        return None;
    }
    let who = vms.join(", ");
    match id {
        "startup" => Some(format!(
            "No Linux guest was measured: the {who} figures come from micro guests, a few \
             instructions with no kernel, so they hold no guest kernel boot."
        )),
        "memory" => Some(format!(
            "No guest kernel memory was measured: the {who} guests were micro guests, with no \
             kernel."
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

/// The figures of a concern: median with its interval, p95, cv, n and the ratio to the
/// baseline with its interval; a micro guest's raw costs have no ratio.
fn figure_table(doc: &Results, figures: &[Figure]) -> Table {
    let baseline = doc.baseline().unwrap_or(Backend::Native.name());
    Table {
        caption: format!(
            "Figures (median of the measured runs with its 95% confidence interval; p95; cv is \
             their spread, standard deviation over mean; vs {baseline} is the median over \
             {baseline}'s with a bootstrap 95% interval, * where it excludes 1: a significant \
             difference. A value is one derived number, with no spread. Rows marked raw cost \
             are a micro guest's: the hypervisor's own costs, like nothing a process does)"
        ),
        header: vec![
            "backend".to_owned(),
            "scenario".to_owned(),
            "metric".to_owned(),
            "median [95% CI]".to_owned(),
            "p95".to_owned(),
            "cv".to_owned(),
            "n".to_owned(),
            format!("vs {baseline} [95% CI]"),
        ],
        numeric: vec![false, false, false, true, true, true, true, true],
        rows: figures
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
                    f.metric.clone(),
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
    }
}

/// The isolation matrix: a row per check, a column per backend, and why.
fn matrix_table(doc: &Results) -> Option<Table> {
    let first = doc.isolation.first()?;
    let mut header = vec!["check".to_owned()];
    header.extend(doc.isolation.iter().map(|m| m.backend.clone()));
    header.push(format!(
        "why ({})",
        doc.isolation.last().map_or("", |m| m.backend.as_str())
    ));
    let rows = first
        .rows
        .iter()
        .map(|row| {
            let mut cells = vec![row.check.clone()];
            let mut why = String::new();
            for m in &doc.isolation {
                let cell = m.rows.iter().find(|r| r.check == row.check);
                cells.push(cell.map_or_else(|| "not probed".to_owned(), |r| r.verdict.clone()));
                why = cell.map(|r| r.why.clone()).unwrap_or_default();
            }
            cells.push(why);
            cells
        })
        .collect();
    Some(Table {
        caption: "Isolation matrix: each check judged against the same probe on the host"
            .to_owned(),
        numeric: vec![false; header.len()],
        header,
        rows,
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
                  by the kernel's kvm_exit tracepoint"
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
                    sum(&s.kvm_exits),
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
                format!("{} MiB", number(kib_to_mib(s.per_instance.pss_kib))),
                format!("{} MiB", number(kib_to_mib(s.per_instance.uss_kib))),
                format!("{} MiB", number(kib_to_mib(s.host.available_kib))),
            ]);
        }
    }
    Some(Table {
        caption: "Density steps: start latency of the step's instances (median), memory per \
                  instance, and the host's available memory after the step"
            .to_owned(),
        header: [
            "backend",
            "instances",
            "start",
            "PSS each",
            "USS each",
            "host available",
        ]
        .map(str::to_owned)
        .to_vec(),
        numeric: vec![false, true, true, true, true, true],
        rows,
    })
}

/// KiB as MiB.
pub fn kib_to_mib(kib: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "memory sizes far below 2^52")]
    let kib = kib as f64;
    kib / 1024.0
}

fn median(doc: &Results, backend: &str, scenario: Scenario, metric: &str) -> Option<f64> {
    doc.figure(backend, scenario.name(), metric)
        .map(|f| f.summary.median)
}

/// The other backends with a figure, in document order.
fn others<'a>(doc: &'a Results, scenario: Scenario, metric: &str) -> Vec<&'a Figure> {
    doc.figures
        .iter()
        .filter(|f| f.backend != Backend::Native && f.scenario == scenario && f.metric == metric)
        .collect()
}

/// Joins phrases as "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The teaching note of a section, from the numbers measured.
fn note(doc: &Results, id: &str) -> String {
    let mut text = String::new();
    match id {
        "startup" => startup_note(doc, &mut text),
        "memory" => memory_note(doc, &mut text),
        "overhead" => overhead_note(doc, &mut text),
        "isolation" => isolation_note(doc, &mut text),
        "density" => density_note(doc, &mut text),
        _ => {}
    }
    text.trim_end().to_owned()
}

fn startup_note(doc: &Results, text: &mut String) {
    text.push_str(
        "A container is an ordinary process that the host kernel fences off with namespaces \
         and a cgroup, so it starts as fast as the kernel builds those. A virtual machine must \
         first be built (memory, vCPUs, a guest image) and then boot a kernel of its own \
         before the workload's first instruction runs. ",
    );
    let Some(native) = median(
        doc,
        Backend::Native.name(),
        Scenario::Startup,
        Metric::TimeToStart.name(),
    ) else {
        return;
    };
    let raw: Vec<String> = others(doc, Scenario::Startup, Metric::TimeToStart.name())
        .iter()
        .filter(|f| f.raw_cost)
        .map(|f| format!("{} {} ms", f.backend, number(f.summary.median)))
        .collect();
    let others: Vec<String> = others(doc, Scenario::Startup, Metric::TimeToStart.name())
        .iter()
        .filter(|f| !f.raw_cost)
        .map(|f| {
            format!(
                "{} {} ms ({})",
                f.backend,
                number(f.summary.median),
                figure_text::ratio_words(f).unwrap_or_else(|| "no like native figure".to_owned())
            )
        })
        .collect();

    if others.is_empty() {
        let _ = write!(
            text,
            "Here a plain process started in {} ms. ",
            number(native)
        );
    } else {
        let _ = write!(
            text,
            "Here, from launch to the workload's first record, a plain process took {} ms, {}. ",
            number(native),
            list(&others)
        );
    }
    if !raw.is_empty() {
        let _ = write!(
            text,
            "The micro guests ({}) boot no kernel and run no program: theirs are the \
             hypervisor's raw costs (creating a VM, entering it, its first exit), not a VM's \
             start, and they are set against nothing a process does. A VM is heavy because of \
             the operating system it carries, which a micro guest leaves out. ",
            list(&raw)
        );
    }
    for (backend, stages) in phases::stages(doc) {
        if backend == Backend::Native || stages.len() < 2 {
            continue;
        }
        let total: f64 = stages.iter().map(|s| s.ms).sum();
        let mut largest = stages.clone();
        largest.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        let parts: Vec<String> = largest
            .iter()
            .take(3)
            .map(|s| {
                if s.stage == phases::stage_of(phases::STARTED) {
                    format!(
                        "{} ms from its last phase to the workload's first record",
                        number(s.ms)
                    )
                } else {
                    format!("{} ms in {}", number(s.ms), s.stage.label())
                }
            })
            .collect();
        let _ = write!(
            text,
            "Of the {backend}'s start ({} ms as the sum of its stages, each the median of \
             that stage's time in every run), the largest parts were {}. ",
            number(total),
            list(&parts)
        );
    }
}

fn memory_note(doc: &Results, text: &mut String) {
    text.push_str(
        "Every instance costs memory beyond what its workload touches: a container adds its \
         runtime's processes and the kernel's bookkeeping for its namespaces and cgroup; a VM \
         adds its monitor process, holds every page of guest memory the guest touches, and, \
         when it boots one, a guest kernel. ",
    );
    let mut parts = Vec::new();
    for backend in doc.backends() {
        let m = |metric: &str| median(doc, backend, Scenario::Footprint, metric);
        let who = if backend == Backend::Native {
            "the native process".to_owned()
        } else {
            format!("the {backend}'s processes")
        };
        if let (Some(rss), Some(over)) = (m(Metric::Rss.name()), m(Metric::OverheadRss.name())) {
            parts.push(format!(
                "{who} held {} MiB, {} MiB beyond the {} MiB its workload touched",
                number(rss),
                number(over),
                number(rss - over)
            ));
        } else if let (Some(guest), Some(monitor)) = (
            m(Part::GuestTouched.name()),
            m(Part::MonitorOverhead.name()),
        ) {
            parts.push(format!(
                "the {backend} monitor held {} MiB outside its {} MiB of touched guest memory",
                number(monitor),
                number(guest)
            ));
        }
    }
    if !parts.is_empty() {
        let _ = write!(text, "Here {}.", parts.join("; "));
    }
}

fn overhead_note(doc: &Results, text: &mut String) {
    text.push_str(
        "Once started, a container's program runs on the host kernel exactly as a native one \
         does: namespaces change what it sees, not how its system calls run. A VM's guest runs \
         on the CPU too, but each access to a device leaves the guest (a VM exit) for the \
         monitor and back. ",
    );
    let native_syscall = doc.figure(
        Backend::Native.name(),
        Scenario::Syscall.name(),
        Metric::Syscall.name(),
    );
    if let (Some(n), Some(c)) = (
        native_syscall,
        doc.figure(
            Backend::Container.name(),
            Scenario::Syscall.name(),
            Metric::Syscall.name(),
        ),
    ) {
        let _ = write!(
            text,
            "Here one getppid(2) took {} ns natively and {} ns in the container",
            number(n.summary.median),
            number(c.summary.median)
        );
        match c.vs_baseline.as_ref().filter(|r| r.baseline == n.backend) {
            Some(r) if r.differs() => {
                let e = &r.estimate;
                let _ = write!(
                    text,
                    ", {:.1}% {} [{:+.1}%, {:+.1}%]: the interval excludes no difference, so \
                     something on the container's path differed on this run; run it again to \
                     see if it stays. ",
                    (e.value - 1.0).abs() * 100.0,
                    if e.value > 1.0 { "more" } else { "less" },
                    (e.ci.low - 1.0) * 100.0,
                    (e.ci.high - 1.0) * 100.0
                );
            }
            Some(r) => {
                let e = &r.estimate;
                let _ = write!(
                    text,
                    ": no significant difference (ratio {} [{}, {}]). ",
                    times(e.value),
                    number(e.ci.low),
                    number(e.ci.high)
                );
            }
            None => text.push_str(". "),
        }
    }
    let slowest = crate::charts::slowdowns(doc)
        .into_iter()
        .max_by(|a, b| a.2.total_cmp(&b.2));
    if let Some((backend, what, s)) = slowest.filter(|s| s.2 > 1.0) {
        let _ = write!(
            text,
            "The largest slowdown against native: {backend}, {what}, {}. ",
            times(s)
        );
    }
    if let Some(exit) = median(
        doc,
        Backend::Microvm.name(),
        Scenario::Exits,
        Metric::ExitRoundTrip.name(),
    ) {
        let _ = write!(
            text,
            "One VM exit round trip of the microVM took {} µs",
            number(exit / 1000.0)
        );
        match native_syscall {
            Some(s) if s.summary.median > 0.0 => {
                let _ = write!(
                    text,
                    ", the time of about {:.0} system calls",
                    exit / s.summary.median
                );
            }
            _ => {}
        }
        if doc.host.kvm.flavour == "software" {
            text.push_str(" (on software KVM, where the exit itself is emulated)");
        }
        text.push('.');
    }
}

fn isolation_note(doc: &Results, text: &mut String) {
    text.push_str(
        "A container shares the host's kernel: namespaces hide the host's processes, files and \
         network from it, but every system call it makes runs in that one kernel. A VM has a \
         kernel of its own and reaches the host only through its monitor, whose own system \
         calls are what the host kernel sees. ",
    );
    let counts: Vec<String> = doc
        .isolation
        .iter()
        .map(|m| {
            let count = |v: &str| m.rows.iter().filter(|r| r.verdict == v).count();
            let untested = match count("untested") {
                0 => String::new(),
                n => format!("; {n} untested"),
            };
            format!(
                "{} was isolated on {} of {} checks (partly on {}, shared on {}{untested})",
                m.backend,
                count("isolated"),
                m.rows.len(),
                count("partly"),
                count("shared")
            )
        })
        .collect();
    if !counts.is_empty() {
        let _ = write!(text, "Here {}. ", list(&counts));
    }
    let hello: Vec<String> = doc
        .surface
        .iter()
        .filter(|s| s.workload.first().is_some_and(|w| w == "hello"))
        .map(|s| format!("{} {}", s.backend, s.distinct_syscalls))
        .collect();
    if hello.len() > 1 {
        let _ = write!(
            text,
            "Starting and ending the same small program, the distinct system calls the host \
             kernel served were: {}.",
            list(&hello)
        );
    }
}

fn density_note(doc: &Results, text: &mut String) {
    text.push_str(
        "Many instances at once: what one more costs shows in the host's memory, including \
         what the kernel keeps for namespaces, cgroups and VMs. ",
    );
    for d in &doc.density {
        let _ = write!(text, "{}: {} instances alive at most", d.backend, d.reached);
        if let Some(m) = median(
            doc,
            &d.backend,
            Scenario::Density,
            Metric::MarginalHostMemory.name(),
        ) {
            let _ = write!(
                text,
                ", each one more taking {} MiB of the host's available memory",
                number(m)
            );
        }
        text.push_str(match &d.stopped {
            Some(why) if !why.is_empty() => " before it stopped early. ",
            _ => ". ",
        });
        // The first step with a few starts: a lone first start is often a cold one.
        let first = d
            .steps
            .iter()
            .find(|s| s.start_ms.len() >= 5)
            .or(d.steps.first());
        if let (Some(first), Some(last)) = (first, d.steps.last()) {
            if last.instances > first.instances {
                let (a, b) = (
                    stats::median(&first.start_ms).unwrap_or(0.0),
                    stats::median(&last.start_ms).unwrap_or(0.0),
                );
                let _ = write!(
                    text,
                    "Its start took {} ms with {} alive and {} ms with {}. ",
                    number(a),
                    first.instances,
                    number(b),
                    last.instances
                );
                if d.backend == Backend::Container && b > 1.5 * a {
                    text.push_str(
                        "The one host kernel keeps every live container's namespaces and \
                         cgroup, so each new one is set up beside all the others: a likely \
                         reason its start slows as they add up, which these figures show but \
                         do not prove. ",
                    );
                }
            }
        }
    }
}
