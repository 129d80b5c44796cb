//! The teaching note that opens each section: a few sentences for a student, on what the
//! figures show and why, written from this run's numbers.
//!
//! A note claims a difference only where the run's statistics support it: the figure's
//! ratio against the baseline has an interval that excludes 1. Otherwise it says "no
//! significant difference". A micro guest (no guest OS) is never set against a program:
//! its figures are what creating and entering a VM costs, and the note says so beside
//! them, with the lesson they hold (a VM is heavy because of the OS it carries).

use std::fmt::Write;

use crate::derived::{self, Measure};
use crate::document::{Backend, Figure, Metric, Results, Scenario};
use crate::family::{self, Family};
use crate::figure_text::{self, number, times};
use crate::matrix::{self, Concern};
use crate::phases;

/// The teaching note of a section, from the numbers measured.
pub fn note(doc: &Results, id: &str) -> String {
    let mut text = String::new();
    match id {
        "startup" => startup(doc, &mut text),
        "memory" => memory(doc, &mut text),
        "overhead" => overhead(doc, &mut text),
        "isolation" => isolation(doc, &mut text),
        "density" => density(doc, &mut text),
        _ => {}
    }
    text.trim_end().to_owned()
}

/// Joins phrases as "a, b and c".
pub fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
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

/// ", on software KVM, where even that is emulated", or nothing.
fn emulated(doc: &Results) -> &'static str {
    if doc.host.kvm.flavour == "software" || doc.host.emulated {
        ", on a KVM that emulates the guest's instructions"
    } else {
        ""
    }
}

/// What creating a VM cost in this run, from its micro guests: "2.351 ms from launch to
/// the guest's first marker, and 1.457 MiB for its monitor".
pub fn vm_creation(doc: &Results, backend: &str) -> Option<String> {
    let start = median(doc, backend, Scenario::Startup, Metric::TimeToStart.name());
    let monitor = derived::memory(doc)
        .into_iter()
        .find(|m| m.backend == backend)
        .map(|m| m.added);
    match (start, monitor) {
        (Some(s), Some(m)) => Some(format!(
            "{} ms from launch to the guest's first marker, and {} MiB for its monitor process",
            number(s),
            number(m)
        )),
        (Some(s), None) => Some(format!(
            "{} ms from launch to the guest's first marker",
            number(s)
        )),
        (None, Some(m)) => Some(format!("{} MiB for its monitor process", number(m))),
        (None, None) => None,
    }
}

/// The lesson of micro guests, with this run's numbers: what creating a VM costs, and
/// where a VM's weight really is.
pub fn micro_guest_lesson(doc: &Results) -> Option<String> {
    let micro = family::micro_backends(doc);
    let backend = *micro.first()?;
    let cost = vm_creation(doc, backend)?;
    Some(format!(
        "The {} figures come from micro guests: no guest OS, a few instructions that write a \
         marker and halt. They measure what creating and entering a VM costs, and nothing \
         else: {cost} here{}. So they can come out faster or smaller than a container; that \
         does not make a VM lighter than a container. A VM is heavy because of the operating \
         system it carries: a Linux guest adds its kernel's boot and memory on top, which \
         this run did not measure (it needs a guest kernel, from `vcbench kernel build`, and a \
         KVM that can boot it).",
        list(&micro.iter().map(|b| (*b).to_owned()).collect::<Vec<_>>()),
        emulated(doc)
    ))
}

fn startup(doc: &Results, text: &mut String) {
    text.push_str(
        "A container is an ordinary process that the host kernel fences off with namespaces \
         and a cgroup: starting one costs the kernel's work of building those, and nothing \
         boots. Starting a VM has two parts: creating the virtual machine (its memory, its \
         vCPUs, the monitor process that runs it), which is cheap, and booting the operating \
         system it carries, which is what makes a VM slow to start. ",
    );
    let Some(native) = median(
        doc,
        Backend::Native.name(),
        Scenario::Startup,
        Metric::TimeToStart.name(),
    ) else {
        if let Some(lesson) = micro_guest_lesson(doc) {
            let _ = write!(text, "{lesson} ");
        }
        return;
    };
    let programs: Vec<String> = others(doc, Scenario::Startup, Metric::TimeToStart.name())
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
    if programs.is_empty() {
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
            list(&programs)
        );
    }
    if let Some(lesson) = micro_guest_lesson(doc) {
        let _ = write!(text, "{lesson} ");
    }
    if let Some(lesson) = warm_lesson(doc) {
        let _ = write!(text, "{lesson} ");
    }
    let stages = phases::stages(doc);
    let boot_label = phases::stage_of("init_reached");
    for backend in family::vm_backends(doc) {
        if !family::linux_guest_ran(doc, backend) {
            continue;
        }
        let boot = stages
            .iter()
            .find(|(b, _)| b == backend)
            .and_then(|(_, parts)| parts.iter().find(|p| p.stage == boot_label));
        if let Some(boot) = boot {
            let _ = write!(
                text,
                "The {backend} booted a Linux guest: {} ms of its start was the guest kernel's \
                 boot, to init{}: the part of a VM's start that its OS costs. ",
                number(boot.ms),
                emulated(doc)
            );
        }
        if let Some(clock) = guest_clock(doc, backend) {
            let _ = write!(text, "{clock} ");
        }
    }
    for (backend, stages) in stages {
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

/// What the warm starts measured show, and what keeping sandboxes warm costs.
fn warm_lesson(doc: &Results) -> Option<String> {
    let warm: Vec<&Figure> = doc
        .figures
        .iter()
        .filter(|f| f.scenario == Scenario::Warm.name() && f.metric == Metric::WarmStart.name())
        .collect();
    if warm.is_empty() {
        return None;
    }
    let mut text = String::from(
        "Platforms hide start time by preparing sandboxes ahead: a pool of containers \
         whose namespaces and cgroup are made, or a VM snapshot restored instead of booted. ",
    );
    for f in warm {
        let cold = doc
            .figure(
                &f.backend,
                Scenario::Startup.name(),
                Metric::TimeToStart.name(),
            )
            .map(|c| {
                format!(
                    ", against {} from a cold start in this run",
                    figure_text::median(c)
                )
            })
            .unwrap_or_default();
        let _ = write!(
            text,
            "The {} started warm ({}) in {} from launch to the first instruction{cold}. ",
            f.backend,
            f.variant,
            figure_text::median(f)
        );
        if place_is_micro(doc, &f.backend) {
            text.push_str(
                "A micro guest has no OS to boot, so its restore (reading the snapshot, \
                 mapping guest memory from the file, faulting the pages in) skips nothing and \
                 shows what restoring itself costs; what a snapshot saves is a guest \
                 kernel's boot, which it skips whole. ",
            );
        }
    }
    text.push_str(
        "Warm sandboxes have costs of their own: the memory an idle pool holds, the snapshot \
         file (the guest's memory), and identical state in every copy restored from one \
         snapshot, such as random seeds and clock readings, until each copy refreshes them.",
    );
    Some(text)
}

/// Whether `backend`'s figures come from micro guests.
fn place_is_micro(doc: &Results, backend: &str) -> bool {
    family::place(doc, backend).is_some_and(|p| p.micro)
}

/// How a backend's Linux guests kept time, from what their workload read of the kernel:
/// the clocksource most of its startup runs reported, and its timer device.
fn guest_clock(doc: &Results, backend: &str) -> Option<String> {
    let most = |fact: &str| {
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for run in doc
            .runs
            .iter()
            .filter(|r| r.backend == backend && r.ok && r.scenario == Scenario::Startup.name())
        {
            if let Some(value) = run.facts.get(fact) {
                match seen.iter_mut().find(|(v, _)| v == value) {
                    Some((_, n)) => *n += 1,
                    None => seen.push((value, 1)),
                }
            }
        }
        seen.into_iter().max_by_key(|(_, n)| *n).map(|(v, _)| v)
    };
    let clocksource = most("clocksource")?;
    let timer = match most("clock_event_device") {
        Some("lapic-deadline") => " and took its timer interrupts from the local APIC in \
             TSC-deadline mode (lapic-deadline), which needs no calibration at boot"
            .to_owned(),
        Some("lapic") => " and took its timer interrupts from the local APIC counting down \
             at a rate it had to calibrate at boot against the PIT (lapic), which costs \
             boot time"
            .to_owned(),
        Some(other) => format!(" and took its timer interrupts from {other}"),
        None => String::new(),
    };
    Some(format!(
        "Its guest kernel kept time with the {clocksource} clocksource{timer}."
    ))
}

/// One line on each measure of memory, for notes and the glossary.
pub const MEASURES: &str = "Memory is counted three ways, which differ in how they count \
     the pages several processes share (a program's code, its libraries): RSS counts every \
     page a process has in memory, a shared one in full in each process that maps it; PSS \
     divides each shared page among the processes sharing it, so the PSS of all processes \
     adds up to what the machine really spends; USS counts only the pages no other process \
     maps, what ending the instance would give back.";

fn memory(doc: &Results, text: &mut String) {
    let _ = write!(text, "{MEASURES} ");
    let split = derived::memory(doc);
    let Some(first) = split.first() else {
        return;
    };
    let measure = first.measure;
    let mut parts = Vec::new();
    for m in &split {
        let ratio_of = |metric: &str| {
            doc.figure(&m.backend, Scenario::Footprint.name(), metric)
                .and_then(figure_text::ratio_words)
        };
        match m.place.family {
            Family::Process => parts.push(format!(
                "the plain process held {} MiB beyond the {} MiB its workload touched: its own \
                 code, libraries and stack, which any process has; it has no sandbox to add \
                 anything",
                number(m.beyond()),
                number(m.touched)
            )),
            Family::Container | Family::UserKernel => {
                let metric = match m.measure {
                    Measure::Pss => Metric::Pss.name(),
                    Measure::Rss => Metric::OverheadRss.name(),
                };
                let differs = doc
                    .figure(&m.backend, Scenario::Footprint.name(), metric)
                    .and_then(derived::significant)
                    .is_some();
                let against = match (ratio_of(metric), differs, m.split) {
                    (Some(words), true, true) => format!(
                        ", {} MiB more than the plain process ({words})",
                        number(m.added)
                    ),
                    (Some(words), false, _) => format!(": {words}"),
                    _ => String::new(),
                };
                parts.push(format!(
                    "the {}'s processes held {} MiB beyond the {} MiB its workload \
                     touched{against}",
                    m.backend,
                    number(m.beyond()),
                    number(m.touched)
                ));
            }
            Family::Vm => parts.push(format!(
                "the {} monitor held {} MiB beside the {} MiB of guest memory its guest \
                 touched{}",
                m.backend,
                number(m.added),
                number(m.touched),
                if m.place.micro {
                    " (a micro guest, with no guest OS: a Linux guest adds its kernel and its \
                     caches inside guest memory, not measured here)"
                } else {
                    ""
                }
            )),
        }
    }
    let _ = write!(text, "Here, by {}, {}. ", measure.name(), parts.join("; "));
    // What RSS would have said instead, where the two measures disagree.
    if measure == Measure::Pss {
        for m in split.iter().filter(|m| m.place.family == Family::Container) {
            let rss = doc.figure(&m.backend, Scenario::Footprint.name(), Metric::Rss.name());
            let pss = doc.figure(&m.backend, Scenario::Footprint.name(), Metric::Pss.name());
            let native_rss = median(
                doc,
                Backend::Native.name(),
                Scenario::Footprint,
                Metric::Rss.name(),
            );
            if let (Some(rss), Some(pss), Some(native_rss)) = (rss, pss, native_rss) {
                let rss_differs = derived::significant(rss).is_some();
                let pss_differs = derived::significant(pss).is_some();
                if rss_differs && !pss_differs {
                    let _ = write!(
                        text,
                        "By RSS the {} would look {} MiB heavier than the plain process ({}): \
                         its PID 1 and its workload are one program, forked, and RSS counts \
                         the pages they share in each of them. ",
                        m.backend,
                        number(rss.summary.median - native_rss),
                        figure_text::ratio_words(rss).unwrap_or_default()
                    );
                }
            }
        }
    }
}

fn overhead(doc: &Results, text: &mut String) {
    text.push_str(
        "Once started, a container's program runs on the host kernel exactly as a native one \
         does: namespaces change what it sees, not how its system calls run. A VM's guest runs \
         on the CPU too, but each access to a device leaves the guest (a VM exit), to be \
         handled by KVM in the host kernel or passed on to the monitor, and back. ",
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
    let slowdowns = derived::slowdowns(doc);
    let mut differing: Vec<&derived::Slowdown> =
        slowdowns.iter().filter(|s| s.significant).collect();
    differing.sort_by(|a, b| b.value.total_cmp(&a.value));
    if !slowdowns.is_empty() {
        let baseline = doc.baseline().unwrap_or(Backend::Native.name());
        if differing.is_empty() {
            let _ = write!(
                text,
                "No workload's figure differed significantly from {baseline}'s here: every \
                 ratio's interval holds 1. "
            );
        } else {
            let said: Vec<String> = differing
                .iter()
                .take(3)
                .map(|s| {
                    format!(
                        "{}, {}, {} [{}, {}] ({})",
                        s.backend,
                        s.what,
                        times(s.value),
                        number(s.low),
                        number(s.high),
                        if s.value > 1.0 { "slower" } else { "faster" }
                    )
                })
                .collect();
            let _ = write!(
                text,
                "Against {baseline}, beyond what the runs vary by ({} of {} figures; the \
                 others show no significant difference): {}. ",
                differing.len(),
                slowdowns.len(),
                list(&said)
            );
        }
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
        text.push_str(". ");
    }
    let micro = family::micro_backends(doc);
    if !micro.is_empty() {
        let _ = write!(
            text,
            "No program ran in the {} (micro guests: no guest OS), so nothing here compares a \
             VM's program with a process's.",
            list(&micro.iter().map(|b| (*b).to_owned()).collect::<Vec<_>>())
        );
    }
}

fn isolation(doc: &Results, text: &mut String) {
    text.push_str(
        "A container shares the host's kernel: namespaces hide the host's processes, files and \
         network from it, and every system call it makes is served by that one kernel. A VM's \
         guest runs on a kernel of its own and reaches the host through two doors: the VM \
         exits KVM handles inside the host kernel itself, and those it passes on to the \
         monitor, a host process whose own system calls the host kernel serves. ",
    );
    if let Some(m) = matrix::matrix(doc) {
        let mut said = Vec::new();
        for backend in &m.backends {
            let concerns: Vec<String> = m
                .concerns()
                .into_iter()
                .filter_map(|c| Some((c, m.tally(backend, c)?)))
                .filter(|(_, t)| t.judged() > 0)
                .map(|(c, t)| {
                    let mut more = Vec::new();
                    if t.partly > 0 {
                        more.push(format!("partly on {}", t.partly));
                    }
                    if t.shared > 0 {
                        more.push(format!("shared on {}", t.shared));
                    }
                    let more = if more.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", more.join(", "))
                    };
                    format!(
                        "{}: isolated on {} of {}{more}",
                        c.title(),
                        t.isolated,
                        t.judged()
                    )
                })
                .collect();
            if concerns.is_empty() {
                continue;
            }
            let who = match family::family(doc, backend) {
                Some(Family::Process) => format!("{backend} (the host itself, no sandbox)"),
                _ => backend.clone(),
            };
            said.push(format!("{who}: {}", concerns.join("; ")));
        }
        if !said.is_empty() {
            let _ = write!(
                text,
                "Here, concern by concern (the seven namespaces counted as one check, and a \
                 power the host is refused too left out): {}. ",
                said.join(". ")
            );
        }
        if m.rows.iter().any(|r| r.concern == Concern::Kernel) {
            text.push_str(
                "The kernel rows weigh most: a process that shares the host's kernel reaches \
                 it with every system call, so one kernel bug can cross every fence above. ",
            );
        }
    }
    surface(doc, text);
}

/// The host-surface sentence: what reached the host kernel for the same small program,
/// each backend read for what it is.
fn surface(doc: &Results, text: &mut String) {
    let hello: Vec<&crate::document::surface::Surface> = doc
        .surface
        .iter()
        .filter(|s| s.workload.first().is_some_and(|w| w == "hello"))
        .collect();
    if hello.is_empty() {
        return;
    }
    let parts: Vec<String> = hello
        .iter()
        .map(|s| match family::place(doc, &s.backend) {
            Some(p) if p.family == Family::Process => format!(
                "{} {}, a plain process's own calls: the reference for what the program asks \
                 of a kernel, not a smaller surface, for nothing stands between it and the \
                 host kernel",
                s.backend, s.distinct_syscalls
            ),
            Some(p) if p.family == Family::UserKernel => {
                let calls = crate::derived::host_calls(doc, &s.backend);
                format!(
                    "{} {}, its kernel in user space's own calls{}: the workload's calls are \
                     served by that kernel, not the host's",
                    s.backend,
                    calls.as_ref().map_or(s.distinct_syscalls, |c| c.distinct),
                    if calls.is_some_and(|c| c.as_setup) {
                        " (counted as the setup's: the workload is never exec'd on the host, \
                         so the trace counts everything before an exec it never sees)"
                    } else {
                        ""
                    }
                )
            }
            Some(p) if p.family == Family::Vm => {
                let handled: u64 = s.vm_exits.iter().map(|(_, n)| n).sum();
                let in_kernel = if s.kvm_exits.is_empty() {
                    "the exits KVM handled inside the host kernel were not counted (this host's \
                     KVM has no kvm_exit tracepoint)"
                        .to_owned()
                } else {
                    format!(
                        "{} exits in all by the kernel's own count, those KVM handled inside the \
                         host kernel included",
                        s.kvm_exits.iter().map(|(_, n)| n).sum::<u64>()
                    )
                };
                format!(
                    "{} {}, its monitor's, once the guest{} ran, for {handled} VM exit{} the \
                     monitor handled; {in_kernel}",
                    s.backend,
                    s.distinct_syscalls,
                    if p.micro { " (a micro guest)" } else { "" },
                    if handled == 1 { "" } else { "s" }
                )
            }
            _ => format!(
                "{} {}, the workload's own calls, each served by the host kernel \
                 (namespaces narrow what a call reaches, not which kernel serves it)",
                s.backend, s.distinct_syscalls
            ),
        })
        .collect();
    let _ = write!(
        text,
        "Starting and ending the same small program (hello), the host kernel served these \
         distinct system calls: {}. A count is the width of a door into the host kernel, not \
         a ranking of safety.",
        parts.join("; ")
    );
}

fn density(doc: &Results, text: &mut String) {
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
        if let Some(last) = d.steps.last() {
            let p = &last.per_instance;
            if p.pss_kib > 0 && p.pss_kib < p.rss_kib {
                let _ = write!(
                    text,
                    "With {} alive, each instance's PSS was {} MiB against an RSS of {} MiB: \
                     instances of one program share its pages, and PSS gives each its share. ",
                    last.instances,
                    number(crate::sections::kib_to_mib(p.pss_kib)),
                    number(crate::sections::kib_to_mib(p.rss_kib))
                );
            }
        }
        // The first step with a few starts: a lone first start is often a cold one.
        let first = d
            .steps
            .iter()
            .find(|s| s.start_ms.len() >= 5)
            .or(d.steps.first());
        let (Some(first), Some(last)) = (first, d.steps.last()) else {
            continue;
        };
        if last.instances <= first.instances {
            continue;
        }
        let (a, b) = (
            stats::median(&first.start_ms).unwrap_or(0.0),
            stats::median(&last.start_ms).unwrap_or(0.0),
        );
        let ratio = stats::ratio_of_medians(
            &first.start_ms,
            &last.start_ms,
            stats::LEVEL,
            stats::DEFAULT_RESAMPLES,
            doc.plan.seed,
        );
        let _ = write!(
            text,
            "Its start took {} ms with {} alive and {} ms with {}",
            number(a),
            first.instances,
            number(b),
            last.instances
        );
        match ratio {
            Some(r) if !r.ci.contains(1.0) => {
                let _ = write!(
                    text,
                    " ({} [{}, {}], a significant difference). ",
                    times(r.value),
                    number(r.ci.low),
                    number(r.ci.high)
                );
                if family::family(doc, &d.backend) == Some(Family::Container) && r.value > 1.0 {
                    text.push_str(
                        "The one host kernel keeps every live container's namespaces and \
                         cgroup, so each new one is set up beside all the others: a likely \
                         reason its start slows as they add up, which these figures show but \
                         do not prove. ",
                    );
                }
            }
            Some(r) => {
                let _ = write!(
                    text,
                    ": no significant difference ({} [{}, {}]). ",
                    times(r.value),
                    number(r.ci.low),
                    number(r.ci.high)
                );
            }
            None => text.push_str(". "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linux_guests_clock_is_told_from_what_its_runs_read() {
        let mut doc = Results::parse(
            include_str!("../tests/data/results.json"),
            std::path::Path::new("results.json"),
        )
        .unwrap();
        assert_eq!(guest_clock(&doc, "microvm"), None);
        let mut marked = 0;
        for run in doc
            .runs
            .iter_mut()
            .filter(|r| r.backend == "microvm" && r.ok && r.scenario == "startup")
        {
            run.facts
                .insert("clocksource".to_owned(), "kvm-clock".to_owned());
            run.facts
                .insert("clock_event_device".to_owned(), "lapic".to_owned());
            marked += 1;
        }
        assert!(marked > 0, "the fixture has microvm startup runs");
        let clock = guest_clock(&doc, "microvm").unwrap();
        assert!(clock.contains("kvm-clock clocksource"), "{clock}");
        assert!(
            clock.contains("calibrate at boot against the PIT"),
            "{clock}"
        );
    }
}
