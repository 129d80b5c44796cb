//! "Read me first", the part every report opens with: this run on one page (a table of
//! what each backend is and what it cost, and the lessons its numbers hold, each claim
//! backed by the run's statistics), how to read the rest, the words it uses, and how the
//! run was set up (the plan's backends, settings and scenarios, and the host).

use crate::derived::{self, Measure};
use crate::document::{Backend, Figure, Metric, Results, Scenario};
use crate::family::{self, Family};
use crate::figure_text::{self, number};
use crate::matrix::{self, Concern};
use crate::notes;
use crate::sections;
use crate::table::Table;

/// The words a report uses, each with what it means here.
pub const GLOSSARY: [(&str, &str); 16] = [
    (
        "namespace",
        "the kernel's way of giving a process its own view of one kind of thing: its own \
         process numbers (pid), mounts (mnt), network (net), hostname (uts), IPC objects (ipc), \
         user ids (user) or cgroup tree (cgroup). The thing itself stays in the one kernel.",
    ),
    (
        "cgroup",
        "a group of processes the kernel accounts for and can limit (CPU, memory, process \
         count). A container's cgroup is how its memory is counted and a noisy neighbour held \
         back.",
    ),
    (
        "capability",
        "one slice of root's power (to mount, to set the clock, to open raw sockets...). A \
         process holds a set of them; the probe reads the effective set.",
    ),
    (
        "user namespace, uid map",
        "a user namespace maps user ids inside to others outside: with the map \"0 100000 \
         65536\", root (uid 0) inside is uid 100000 on the host, an ordinary user there. \
         Capabilities held inside reach only what that namespace owns.",
    ),
    (
        "container",
        "an ordinary process the host kernel fences off with namespaces and a cgroup. It \
         boots nothing: its system calls are served by the host kernel.",
    ),
    (
        "monitor",
        "the host process that creates a VM, gives it memory and vCPUs, and handles the exits \
         KVM passes on to it (its devices). Here: vcbench-vmm (microvm) or QEMU (qemu).",
    ),
    (
        "KVM",
        "the part of the Linux kernel that runs a guest's instructions on the CPU and keeps \
         the guest in its own memory; the monitor drives it through /dev/kvm.",
    ),
    (
        "VM exit",
        "the CPU leaving the guest for the host: for an I/O access, a halt, a page fault KVM \
         must fill. KVM handles many exits inside the host kernel; the rest go to the monitor \
         and back (a round trip).",
    ),
    (
        "micro guest",
        "a guest of a few instructions with no guest OS: it writes a marker, touches memory \
         or exits, and halts. It measures what creating and entering a VM costs, and nothing a \
         program does; it is never set against a process.",
    ),
    (
        "Linux guest",
        "a guest that boots a Linux kernel of its own and runs the workload as its init: what \
         a VM normally is, and where its weight comes from.",
    ),
    (
        "hardware vs software KVM",
        "hardware KVM runs guest instructions on the CPU itself (Intel VT-x, AMD-V). Software \
         KVM (kvm_pvm) emulates them: it runs where the CPU's virtualization is not offered, \
         such as inside a cloud VM, but VM timings then measure the emulation, and an \
         unmodified Linux cannot boot.",
    ),
    ("RSS, PSS, USS", notes::MEASURES),
    (
        "median, interval",
        "the median is the middle run: half took less, half more. Its 95% interval comes from \
         the runs' order statistics and assumes nothing of their distribution; with 5 runs it \
         is the whole range.",
    ),
    (
        "p95",
        "the time 95% of the runs stayed under: the slow tail.",
    ),
    (
        "cv",
        "the coefficient of variation, standard deviation over mean: how much the runs \
         spread. Above 10% a figure is called noisy.",
    ),
    (
        "n, ratio, *",
        "n is the number of measured runs. A ratio is a median over the baseline's, with a \
         bootstrap 95% interval; * marks an interval that excludes 1, a significant \
         difference. Without *, there is no significant difference.",
    ),
];

/// A short phrase for a figure against the baseline: "3.761x native [2.446, 6.240]" or
/// "no significant difference from native".
fn against(figure: &Figure) -> Option<String> {
    let r = figure.vs_baseline.as_ref()?;
    let e = &r.estimate;
    Some(if r.differs() {
        format!(
            "{}x {} [{}, {}]",
            number(e.value),
            r.baseline,
            number(e.ci.low),
            number(e.ci.high)
        )
    } else {
        format!("no significant difference from {}", r.baseline)
    })
}

/// The one-page summary's table: a row per backend that ran.
pub fn summary_table(doc: &Results) -> Option<Table> {
    let backends = family::ran(doc);
    if backends.is_empty() {
        return None;
    }
    let memory = derived::memory(doc);
    let m = matrix::matrix(doc);
    // From the least fenced to the most, as the spectrum runs.
    let mut placed: Vec<(&str, family::Place)> = backends
        .iter()
        .filter_map(|b| Some((*b, family::place(doc, b)?)))
        .collect();
    placed.sort_by_key(|(_, p)| (p.family, p.micro));
    let rows = placed
        .into_iter()
        .map(|(b, place)| {
            let figure = |s: Scenario, metric: Metric| doc.figure(b, s.name(), metric.name());
            let start = match figure(Scenario::Startup, Metric::TimeToStart) {
                Some(f) if place.micro => format!(
                    "{} ms: creating a VM only, no OS boots",
                    number(f.summary.median)
                ),
                Some(f) => match against(f) {
                    Some(words) => format!("{} ms, {words}", number(f.summary.median)),
                    None => format!("{} ms", number(f.summary.median)),
                },
                None => String::new(),
            };
            let mem = match memory.iter().find(|m| m.backend == b) {
                Some(m) if place.family == Family::Vm => format!(
                    "its monitor: {} MiB{}",
                    number(m.added),
                    if place.micro { "; no guest OS" } else { "" }
                ),
                Some(m) if place.family == Family::Process => {
                    format!("{} MiB: the program's own", number(m.beyond()))
                }
                Some(m) => {
                    let metric = match m.measure {
                        Measure::Pss => Metric::Pss,
                        Measure::Rss => Metric::OverheadRss,
                    };
                    match figure(Scenario::Footprint, metric).and_then(against) {
                        Some(words) => format!("{} MiB, {words}", number(m.beyond())),
                        None => format!("{} MiB", number(m.beyond())),
                    }
                }
                None => String::new(),
            };
            let syscall = match figure(Scenario::Syscall, Metric::Syscall) {
                Some(f) => match against(f) {
                    Some(words) => format!("{} ns, {words}", number(f.summary.median)),
                    None => format!("{} ns", number(f.summary.median)),
                },
                None if place.micro => "none: no OS to call".to_owned(),
                None => String::new(),
            };
            let isolation = match &m {
                Some(m) if place.micro && m.backends.iter().any(|x| x == b) => {
                    "no guest OS to probe".to_owned()
                }
                Some(m) if place.family == Family::Process && m.backends.iter().any(|x| x == b) => {
                    "none: it is the host".to_owned()
                }
                Some(m) => {
                    let parts: Vec<String> = m
                        .concerns()
                        .into_iter()
                        .filter_map(|c| {
                            let t = m.tally(b, c)?;
                            (t.judged() > 0).then(|| {
                                let short = match c {
                                    Concern::Sees => "sees",
                                    Concern::MayDo => "may do",
                                    Concern::Kernel => "kernel",
                                    Concern::Other => "other",
                                };
                                format!("{short} {}/{}", t.isolated, t.judged())
                            })
                        })
                        .collect();
                    parts.join(", ")
                }
                None => String::new(),
            };
            vec![
                b.to_owned(),
                place.label(),
                place.serves().to_owned(),
                start,
                mem,
                syscall,
                isolation,
            ]
        })
        .collect();
    let measure = memory.first().map_or("PSS", |m| m.measure.name());
    Some(Table::new(
        format!(
            "This run at a glance: medians; a ratio is against the baseline, given only where \
             its 95% interval excludes 1; memory is what an instance holds beyond what its \
             workload touched ({measure}); isolation counts the checks isolated of those \
             judged, per concern"
        ),
        [
            "backend",
            "what it is",
            "what serves its system calls",
            "start",
            "memory beyond its workload",
            "one system call",
            "isolation",
        ]
        .map(str::to_owned)
        .to_vec(),
        vec![false; 7],
        rows,
    ))
}

/// The lessons of this run, one short paragraph each, every claimed difference backed by
/// its interval.
pub fn lessons(doc: &Results) -> Vec<String> {
    let mut out = Vec::new();
    let native = Backend::Native.name();
    let start = |b: &str| doc.figure(b, Scenario::Startup.name(), Metric::TimeToStart.name());
    // Startup: the containers against the plain process.
    if let Some(n) = start(native) {
        let containers: Vec<String> = family::ran(doc)
            .into_iter()
            .filter(|b| family::family(doc, b) == Some(Family::Container))
            .filter_map(|b| {
                let f = start(b)?;
                Some(format!(
                    "{} {} ms ({})",
                    b,
                    number(f.summary.median),
                    figure_text::ratio_words(f)?
                ))
            })
            .collect();
        if !containers.is_empty() {
            out.push(format!(
                "Starting a container is building namespaces and a cgroup around a process: \
                 the plain process started in {} ms, {}.",
                number(n.summary.median),
                notes::list(&containers)
            ));
        }
    }
    if let Some(lesson) = notes::micro_guest_lesson(doc) {
        out.push(lesson);
    }
    // The startup goals, each judged by its whole interval.
    let goals: Vec<String> = figure_text::goals(doc)
        .into_iter()
        .map(|(f, words)| format!("{} {} {words}", f.backend, f.metric))
        .collect();
    if !goals.is_empty() {
        out.push(format!(
            "The startup goals (the container's start over native's, the micro VM's over \
             the raw KVM floor timed in the same rounds), each met only when its whole 95% \
             interval is within it: {}.",
            goals.join("; ")
        ));
    }
    // Memory by PSS.
    let memory = derived::memory(doc);
    let containers: Vec<String> = memory
        .iter()
        .filter(|m| m.place.family == Family::Container)
        .filter_map(|m| {
            let metric = match m.measure {
                Measure::Pss => Metric::Pss,
                Measure::Rss => Metric::OverheadRss,
            };
            let f = doc.figure(&m.backend, Scenario::Footprint.name(), metric.name())?;
            Some(match derived::significant(f) {
                Some(_) => format!(
                    "the {}'s processes held {} MiB more than the plain process ({})",
                    m.backend,
                    number(m.added),
                    figure_text::ratio_words(f)?
                ),
                None => format!(
                    "the {}'s processes held {} MiB beyond what their workload touched, {}",
                    m.backend,
                    number(m.beyond()),
                    figure_text::ratio_words(f)?
                ),
            })
        })
        .collect();
    if let (Some(first), false) = (memory.first(), containers.is_empty()) {
        out.push(format!(
            "Memory by {}: {}. A plain process's own pages are not a sandbox's cost, and it \
             is never shown as one.",
            first.measure.name(),
            notes::list(&containers)
        ));
    }
    // Runtime.
    let slowdowns = derived::slowdowns(doc);
    if !slowdowns.is_empty() {
        let differing: Vec<String> = slowdowns
            .iter()
            .filter(|s| s.significant)
            .map(|s| {
                format!(
                    "{} {} {}x [{}, {}]",
                    s.backend,
                    s.what,
                    number(s.value),
                    number(s.low),
                    number(s.high)
                )
            })
            .collect();
        out.push(if differing.is_empty() {
            "Once started, a container's program ran as fast as the plain process: no \
             workload's figure differed significantly (its system calls go to the same kernel)."
                .to_owned()
        } else {
            format!(
                "Once started, {} of {} workload figures differed significantly from the plain \
                 process's ({}, as a slowdown); the rest showed no significant difference.",
                differing.len(),
                slowdowns.len(),
                notes::list(&differing)
            )
        });
    }
    // Isolation: which kernel serves each.
    if let Some(m) = matrix::matrix(doc) {
        let shared_kernel: Vec<&str> = m
            .backends
            .iter()
            .filter(|b| family::family(doc, b) == Some(Family::Container))
            .filter(|b| m.tally(b, Concern::Kernel).is_some_and(|t| t.shared > 0))
            .map(String::as_str)
            .collect();
        if !shared_kernel.is_empty() {
            out.push(format!(
                "Isolation: the {} {} what {} sees and may do, but not which kernel serves {}: \
                 the host's, reached by every system call. A VM's Linux guest has a kernel of \
                 its own (a micro guest has none); a VM reaches the host's kernel through VM \
                 exits, handled by KVM in it or by the monitor, whose system calls it serves.",
                shared_kernel.join(" and "),
                if shared_kernel.len() == 1 {
                    "fences"
                } else {
                    "fence"
                },
                if shared_kernel.len() == 1 {
                    "it"
                } else {
                    "they"
                },
                if shared_kernel.len() == 1 {
                    "it"
                } else {
                    "them"
                },
            ));
        }
    }
    out
}

/// How the run was set up: its backends and their settings, its scenarios, its order,
/// and what native itself ran on; then the environment.
pub fn settings(doc: &Results) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for b in family::ran(doc) {
        let place = family::place(doc, b);
        let setting = doc.plan.settings.get(b).cloned().unwrap_or_default();
        let what = match place {
            Some(p) if p.family == Family::Process => {
                "a plain process on this host, with nothing around it".to_owned()
            }
            Some(p) if p.micro => format!("{setting} (no guest OS)"),
            _ if setting.is_empty() => "its defaults".to_owned(),
            _ => setting,
        };
        rows.push((format!("backend {b}"), what));
    }
    for s in &doc.plan.scenarios {
        rows.push((
            format!("scenario {}", s.name),
            format!(
                "workload `{}`, {} measured run{} after {} warmup{}, each stopped after {} s",
                s.workload.join(" "),
                s.runs,
                if s.runs == 1 { "" } else { "s" },
                s.warmup,
                if s.warmup == 1 { "" } else { "s" },
                number(s.timeout_s)
            ),
        ));
    }
    rows.push((
        "order and seed".to_owned(),
        format!("{}, seed {}", doc.plan.order, doc.plan.seed),
    ));
    if let Some(b) = doc.baseline() {
        rows.push(("baseline".to_owned(), b.to_owned()));
    }
    if let Some(budget) = doc.plan.max_time_s {
        rows.push((
            "time budget".to_owned(),
            format!(
                "{} s (--max-time): each scenario's measured runs stopped when its share was \
                 spent, so a figure's n may be below the runs planned",
                number(budget)
            ),
        ));
    }
    if let Some(cpus) = &doc.plan.cpus {
        rows.push((
            "CPUs".to_owned(),
            format!("held to {cpus} (--cpus-set): the harness and every instance"),
        ));
    }
    let h = &doc.host;
    let native_on = if h.emulated {
        "a CPU emulated by QEMU TCG: every figure, native's included, is an emulation figure"
            .to_owned()
    } else if h.virtualized {
        format!(
            "a virtual machine ({}): \"native\" is itself a process in a VM{}",
            h.hypervisor.as_deref().unwrap_or("its hypervisor unknown"),
            if family::vm_backends(doc).is_empty() {
                ""
            } else {
                ", and the VMs here are nested inside it"
            }
        )
    } else {
        "bare metal".to_owned()
    };
    rows.push(("native runs on".to_owned(), native_on));
    // What native runs on says what "runs on" would.
    rows.extend(
        sections::environment(doc)
            .into_iter()
            .filter(|(k, _)| *k != "runs on")
            .map(|(k, v)| (k.to_owned(), v)),
    );
    rows
}

/// How to read the rest of the report, a point each.
pub fn how_to_read(doc: &Results) -> Vec<String> {
    let mut out = vec![
        "Each section (startup, memory, runtime overhead, isolation, density) opens with a note \
         written from this run's numbers, then its charts, then its headline figures; every \
         figure is in the appendix."
            .to_owned(),
        figure_text::reading(doc),
    ];
    if !family::micro_backends(doc).is_empty() {
        out.push(
            "Rows marked raw cost and bars labelled \"no guest OS\" are micro guests: what \
             creating and entering a VM costs, never a VM with its OS, and never set against a \
             process."
                .to_owned(),
        );
    }
    let noisy = figure_text::warnings(doc).len();
    if noisy > 0 {
        out.push(format!(
            "The samples gave {noisy} warning{} (a high spread, outliers, too few runs): they \
             are listed in the appendix. Read small differences only where the interval \
             excludes 1.",
            if noisy == 1 { "" } else { "s" }
        ));
    }
    out
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
    fn the_summary_has_a_row_per_backend_and_names_micro_guests() {
        let t = summary_table(&fixture()).unwrap();
        assert_eq!(t.rows.len(), 3);
        let vm = &t.rows[2];
        assert!(vm[1].contains("no guest OS"), "{vm:?}");
        assert!(vm[3].contains("creating a VM only"), "{vm:?}");
        assert!(
            t.rows[0][4].contains("the program's own"),
            "{:?}",
            t.rows[0]
        );
    }

    #[test]
    fn settings_say_what_native_runs_on() {
        let rows = settings(&fixture());
        let native = rows.iter().find(|(k, _)| k == "native runs on").unwrap();
        assert!(native.1.contains("itself a process in a VM"), "{native:?}");
        assert!(rows
            .iter()
            .any(|(k, v)| k == "backend microvm" && v.ends_with("(no guest OS)")));
    }

    #[test]
    fn the_lessons_judge_each_goal_by_its_interval() {
        let mut doc = fixture();
        assert!(!lessons(&doc).iter().any(|l| l.contains("startup goals")));
        let mut goal = crate::document::Figure::value(
            "container",
            "startup",
            "over_native",
            "ms",
            crate::document::Better::Lower,
            1.2,
        )
        .unwrap()
        .held_to(1.5);
        goal.summary.ci = Some(crate::document::Interval {
            low: 1.1,
            high: 1.6,
            level: 0.95,
            coverage: 0.95,
        });
        doc.figures.push(goal);
        let lessons = lessons(&doc);
        let lesson = lessons
            .iter()
            .find(|l| l.contains("startup goals"))
            .unwrap();
        assert!(
            lesson.contains("container over_native undecided (1.200 ms [1.100, 1.600]"),
            "{lesson}"
        );
    }

    #[test]
    fn every_glossary_term_is_defined_once() {
        let mut terms: Vec<&str> = GLOSSARY.iter().map(|(t, _)| *t).collect();
        terms.sort_unstable();
        terms.dedup();
        assert_eq!(terms.len(), GLOSSARY.len());
    }
}
