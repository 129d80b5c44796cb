//! What a report says, independent of its format: the sections, each with a teaching note
//! drawn from the measured numbers and the figures it shows, the environment banner, and
//! the failures and skips. Markdown and HTML both render this.

use crate::document::{Figure, Results};

/// One concern of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Its title.
    pub title: &'static str,
    /// Anchor name (HTML) and chart prefix.
    pub id: &'static str,
    /// Two or three sentences for a student: what the figures show and why.
    pub note: String,
    /// The figures it tabulates.
    pub figures: Vec<Figure>,
}

/// The concerns, each with the scenarios whose figures it shows.
const CONCERNS: [(&str, &str, &[&str]); 5] = [
    ("Startup", "startup", &["startup"]),
    ("Memory", "memory", &["footprint"]),
    (
        "Runtime overhead",
        "overhead",
        &["cpu", "mem", "syscall", "fork", "file", "net", "exits"],
    ),
    ("Isolation", "isolation", &["isolation", "interference"]),
    ("Density", "density", &["density"]),
];

/// Formats a value to about three significant digits.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else if a >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

/// The report's sections, in order.
pub fn sections(doc: &Results) -> Vec<Section> {
    CONCERNS
        .iter()
        .map(|(title, id, scenarios)| Section {
            title,
            id,
            note: note(doc, id),
            figures: doc
                .figures
                .iter()
                .filter(|f| scenarios.contains(&f.scenario.as_str()))
                .cloned()
                .collect(),
        })
        .collect()
}

/// The host in one line.
pub fn host_line(doc: &Results) -> String {
    let h = &doc.host;
    let kvm = match &h.kvm.module {
        Some(m) => format!("{} ({m})", h.kvm.flavour),
        None => h.kvm.flavour.clone(),
    };
    format!(
        "{}: {}, {} CPUs, {} MiB, Linux {}, {}; KVM {kvm}; cgroups {}; vcbench {} ({}), {}",
        h.hostname,
        h.cpu_model,
        h.cpus,
        h.memory_mib,
        h.kernel,
        h.os,
        h.cgroup,
        doc.tool.version,
        doc.tool.git_revision,
        doc.started_at
    )
}

/// The warnings every reader must see before any VM figure.
pub fn warnings(doc: &Results) -> Vec<String> {
    let mut w = Vec::new();
    if doc.host.emulated {
        w.push(
            "This run was taken on a CPU emulated by QEMU TCG (the test rig): every instruction \
             was emulated, so these results test correctness and their timings describe no \
             real machine."
                .to_owned(),
        );
    }
    if doc.host.kvm.flavour == "software" {
        w.push(format!(
            "KVM on this host is software ({}): guest instructions are emulated, so the \
             microVM timings are emulation figures, far slower than hardware virtualization.",
            doc.host
                .kvm
                .module
                .as_deref()
                .unwrap_or("no hardware module")
        ));
    }
    if !doc.complete {
        w.push("The run was interrupted: figures are missing for what had not run yet.".to_owned());
    }
    w
}

/// Failures and skips, one line each.
pub fn problems(doc: &Results) -> Vec<String> {
    let mut lines: Vec<String> = doc
        .failures
        .iter()
        .map(|f| format!("failed: {} {}: {}", f.backend, f.scenario, f.reason))
        .collect();
    lines.extend(doc.skipped.iter().map(|s| match &s.scenario {
        Some(sc) => format!("skipped: {} {sc}: {}", s.backend, s.reason),
        None => format!("skipped: {}: {}", s.backend, s.reason),
    }));
    lines
}

fn median(doc: &Results, backend: &str, scenario: &str, metric: &str) -> Option<f64> {
    doc.figure(backend, scenario, metric)
        .map(|f| f.summary.median)
}

/// The teaching note of a section, from the numbers measured.
fn note(doc: &Results, id: &str) -> String {
    let m = |b: &str, s: &str, k: &str| median(doc, b, s, k);
    let mut text = String::new();
    match id {
        "startup" => {
            text.push_str(
                "A container is an ordinary process that the host kernel fences off with \
                 namespaces and a cgroup, so it starts as fast as the kernel can build those; \
                 a virtual machine must first be built (memory, vCPUs) and then boot a kernel \
                 of its own before the first instruction of the workload runs. ",
            );
            if let (Some(n), Some(c)) = (
                m("native", "startup", "time_to_start"),
                m("container", "startup", "time_to_start"),
            ) {
                text.push_str(&format!(
                    "Here a plain process started in {} ms and a container in {} ms: {} ms \
                     more, spent on namespaces, mounts and the cgroup. ",
                    number(n),
                    number(c),
                    number(c - n)
                ));
            }
            if let Some(v) = m("microvm", "startup", "time_to_start") {
                text.push_str(&format!(
                    "The microVM reached its guest's first instruction of work in {} ms; its \
                     guest here is a micro guest with no kernel to boot, so a Linux guest adds \
                     its kernel's boot on top.",
                    number(v)
                ));
            }
        }
        "memory" => {
            text.push_str(
                "Every instance costs memory beyond what its workload touches: a container's \
                 is a little kernel bookkeeping and its runtime processes, a VM's is its \
                 monitor plus the guest memory it touches (and a guest kernel's, when it boots \
                 one). ",
            );
            if let Some(c) = m("container", "footprint", "overhead_rss") {
                text.push_str(&format!(
                    "Here the container's processes held {} MiB beyond the 64 MiB touched. ",
                    number(c)
                ));
            }
            if let Some(v) = m("microvm", "footprint", "monitor_overhead") {
                text.push_str(&format!(
                    "The microVM's monitor held {} MiB outside guest memory.",
                    number(v)
                ));
            }
        }
        "overhead" => {
            text.push_str(
                "Once running, a container's workload runs on the host kernel directly: a \
                 system call costs what it costs natively. A VM's guest runs on the CPU too, \
                 but every access to a device leaves the guest (a VM exit) for the monitor \
                 and back. ",
            );
            if let (Some(n), Some(c)) = (
                m("native", "syscall", "syscall"),
                m("container", "syscall", "syscall"),
            ) {
                text.push_str(&format!(
                    "Here one getppid(2) took {} ns natively and {} ns in a container. ",
                    number(n),
                    number(c)
                ));
            }
            if let Some(e) = m("microvm", "exits", "exit_round_trip") {
                text.push_str(&format!(
                    "One VM exit round trip took {} µs: about {:.0} times a system call.",
                    number(e / 1000.0),
                    m("native", "syscall", "syscall").map_or(0.0, |s| e / s.max(1e-9))
                ));
            }
        }
        "isolation" => {
            text.push_str(
                "A container shares the host's kernel: the namespaces hide the host's \
                 processes, files and network from it, but every system call it makes runs in \
                 that one kernel. A VM has a kernel of its own, and reaches the host only \
                 through its monitor. ",
            );
            for matrix in &doc.isolation {
                let count = |v: &str| matrix.rows.iter().filter(|r| r.verdict == v).count();
                text.push_str(&format!(
                    "{}: isolated on {} of {} checks, partly on {}, shared on {}. ",
                    matrix.backend,
                    count("isolated"),
                    matrix.rows.len(),
                    count("partly"),
                    count("shared")
                ));
            }
            let hello = |b: &str| {
                doc.surface
                    .iter()
                    .find(|s| s.backend == b && s.workload.first().is_some_and(|w| w == "hello"))
                    .map(|s| s.distinct_syscalls)
            };
            if let (Some(c), Some(v)) = (hello("container"), hello("microvm")) {
                text.push_str(&format!(
                    "Starting and ending its workload, the container's processes made {c} \
                     distinct system calls into the host kernel, the microVM's monitor {v}."
                ));
            }
        }
        "density" => {
            text.push_str(
                "Many instances at once: what each one more costs shows in the host's \
                 memory, including what the kernel keeps for namespaces, cgroups and VMs. ",
            );
            for d in &doc.density {
                text.push_str(&format!(
                    "{}: {} instances alive at most",
                    d.backend, d.reached
                ));
                if let Some(m) = m(&d.backend, "density", "marginal_host_memory") {
                    text.push_str(&format!(
                        ", each one more taking {} MiB of the host's available memory",
                        number(m)
                    ));
                }
                text.push_str(match &d.stopped {
                    Some(_) => " before it stopped. ",
                    None => ". ",
                });
                // The first step with a few starts: a lone first start is often a cold one.
                let first = d
                    .steps
                    .iter()
                    .find(|s| s.start_ms.len() >= 5)
                    .or(d.steps.first());
                if let (Some(first), Some(last)) = (first, d.steps.last()) {
                    if last.instances > first.instances {
                        let start = |s: &crate::document::density::Step| {
                            let mut v = s.start_ms.clone();
                            v.sort_by(f64::total_cmp);
                            v.get(v.len() / 2).copied().unwrap_or(0.0)
                        };
                        text.push_str(&format!(
                            "Its start took {} ms with {} alive and {} ms with {}. ",
                            number(start(first)),
                            first.instances,
                            number(start(last)),
                            last.instances
                        ));
                        if d.backend == "container" && start(last) > 1.5 * start(first) {
                            text.push_str(
                                "Each container adds namespaces and a cgroup that the one \
                                 kernel keeps for all of them, so the next one's setup has more \
                                 to go through; a VM's monitor is a process of its own, whose \
                                 work does not grow with its neighbours. ",
                            );
                        }
                    }
                }
            }
        }
        _ => {}
    }
    text.trim_end().to_owned()
}
