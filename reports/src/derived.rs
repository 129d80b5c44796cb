//! Quantities a report derives from the figures, shared by its notes, its summary and its
//! charts so that they say the same thing: each instance's memory split into what its
//! workload touched, what any process of that program holds, and what its sandbox adds
//! (by PSS where the document has it); the runtime slowdowns against the baseline; the
//! headline metric of each scenario; and each backend's place on the spectrum from a
//! plain process to a VM with the start time, memory and system-call cost measured there.

use crate::document::{Better, Figure, Metric, Part, Ratio, Results, Scenario};
use crate::family::{self, Family, Place};

/// Which measure a memory split was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Proportional set size: shared pages divided among their sharers.
    Pss,
    /// Resident set size: shared pages counted in full in every process (documents
    /// without PSS figures).
    Rss,
}

impl Measure {
    /// Its short name.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Pss => "PSS",
            Measure::Rss => "RSS",
        }
    }
}

/// One instance's memory (footprint scenario, medians, MiB), split three ways.
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySplit {
    /// The backend.
    pub backend: String,
    /// Where it stands.
    pub place: Place,
    /// What its workload touched (a VM: the guest memory its guest touched).
    pub touched: f64,
    /// What any process of this program holds besides: its code, libraries and stack, as
    /// the plain process shows them; never a sandbox's cost. 0 for a VM, whose program
    /// (if any) lives in guest memory.
    pub own: f64,
    /// What the sandbox adds beyond that: a container's beyond the plain process's, a VM's
    /// monitor process. 0 for the plain process.
    pub added: f64,
    /// The measure it was read from.
    pub measure: Measure,
    /// Whether `own` could be told apart from `added` (the plain process ran too); when
    /// not, `added` holds both.
    pub split: bool,
}

impl MemorySplit {
    /// Everything beyond what the workload touched.
    pub fn beyond(&self) -> f64 {
        self.own + self.added
    }
}

fn footprint(doc: &Results, backend: &str, metric: &str) -> Option<f64> {
    doc.figure(backend, Scenario::Footprint.name(), metric)
        .map(|f| f.summary.median)
}

/// Each backend's memory split, in the order the backends ran; a backend without
/// footprint figures is left out.
pub fn memory(doc: &Results) -> Vec<MemorySplit> {
    let native = crate::document::Backend::Native.name();
    // What the program holds beyond what it touched, as a plain process.
    let program_own = beyond_touched(doc, native).map(|(beyond, _)| beyond);
    let mut out = Vec::new();
    for backend in family::ran(doc) {
        let Some(place) = family::place(doc, backend) else {
            continue;
        };
        if place.family == Family::Vm {
            let Some(guest) = footprint(doc, backend, Part::GuestTouched.name()) else {
                continue;
            };
            let (monitor, measure) = match footprint(doc, backend, Metric::Pss.name()) {
                Some(pss) => ((pss - guest).max(0.0), Measure::Pss),
                None => match footprint(doc, backend, Part::MonitorOverhead.name()) {
                    Some(m) => (m, Measure::Rss),
                    None => continue,
                },
            };
            out.push(MemorySplit {
                backend: backend.to_owned(),
                place,
                touched: guest,
                own: 0.0,
                added: monitor,
                measure,
                split: true,
            });
            continue;
        }
        let Some((beyond, measure)) = beyond_touched(doc, backend) else {
            continue;
        };
        let touched = footprint(doc, backend, Metric::Rss.name()).unwrap_or(0.0)
            - footprint(doc, backend, Metric::OverheadRss.name()).unwrap_or(0.0);
        let (own, added, split) = match (place.family, program_own) {
            (Family::Process, _) => (beyond, 0.0, true),
            (_, Some(own)) => (own.min(beyond), (beyond - own).max(0.0), true),
            (_, None) => (0.0, beyond, false),
        };
        out.push(MemorySplit {
            backend: backend.to_owned(),
            place,
            touched: touched.max(0.0),
            own,
            added,
            measure,
            split,
        });
    }
    out
}

/// A process backend's memory beyond what its workload touched, by PSS where measured
/// (RSS otherwise), MiB.
fn beyond_touched(doc: &Results, backend: &str) -> Option<(f64, Measure)> {
    let rss = footprint(doc, backend, Metric::Rss.name())?;
    let over = footprint(doc, backend, Metric::OverheadRss.name())?;
    let touched = rss - over;
    Some(match footprint(doc, backend, Metric::Pss.name()) {
        Some(pss) => ((pss - touched).max(0.0), Measure::Pss),
        None => (over, Measure::Rss),
    })
}

/// A figure's ratio against the baseline when its interval excludes 1: a difference the
/// run's statistics support.
pub fn significant(figure: &Figure) -> Option<&Ratio> {
    figure.vs_baseline.as_ref().filter(|r| r.differs())
}

/// Slowdown against the baseline (above 1 is slower), per backend and workload metric:
/// the ratio of medians, only between like figures, with whether its interval excludes 1.
pub fn slowdowns(doc: &Results) -> Vec<Slowdown> {
    doc.figures
        .iter()
        .filter(|f| f.scenario.parse().is_ok_and(Scenario::is_program))
        .filter(|f| f.metric != Metric::Wall && f.metric != Metric::PeakRss)
        .filter_map(|f| {
            let ratio = f.vs_baseline.as_ref()?;
            let slower = |r: f64| {
                if f.better == Better::Higher {
                    1.0 / r
                } else {
                    r
                }
            };
            let (a, b) = (
                slower(ratio.estimate.ci.low),
                slower(ratio.estimate.ci.high),
            );
            Some(Slowdown {
                backend: f.backend.clone(),
                what: if f.metric == f.scenario {
                    f.scenario.clone()
                } else {
                    format!("{} {}", f.scenario, f.metric)
                },
                value: slower(ratio.estimate.value),
                low: a.min(b),
                high: a.max(b),
                significant: ratio.differs(),
            })
        })
        .collect()
}

/// A workload's slowdown on one backend against the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Slowdown {
    /// The backend.
    pub backend: String,
    /// The workload and metric, e.g. `syscall` or `mem triad`.
    pub what: String,
    /// Its time over the baseline's (a rate: the baseline's over its), above 1 slower.
    pub value: f64,
    /// The interval's lower end, as a slowdown.
    pub low: f64,
    /// The interval's upper end, as a slowdown.
    pub high: f64,
    /// Whether the interval excludes 1.
    pub significant: bool,
}

/// The metric a scenario is read by first: what its section's table shows (the rest are in
/// the appendix).
pub fn headline(scenario: &str, metric: &str) -> bool {
    let Ok(scenario) = scenario.parse::<Scenario>() else {
        return metric != Metric::Wall && metric != Metric::PeakRss;
    };
    let fixed = |m: Metric| metric == m;
    match scenario {
        Scenario::Startup => fixed(Metric::TimeToStart) || fixed(Metric::TimeToExit),
        Scenario::Cpu => fixed(Metric::Throughput),
        Scenario::Mem => fixed(Metric::Triad),
        Scenario::Syscall => fixed(Metric::Syscall),
        Scenario::Fork => fixed(Metric::Fork),
        Scenario::File => fixed(Metric::FsyncWrites),
        Scenario::Net => fixed(Metric::TcpRtt),
        Scenario::Hostnet => fixed(Metric::HostTcpRtt) || fixed(Metric::HostTcpBulk),
        Scenario::Vsock => fixed(Metric::HostVsockRtt) || fixed(Metric::HostVsockBulk),
        Scenario::Exits => fixed(Metric::ExitRoundTrip),
        Scenario::Footprint => metric != Metric::Wall && metric != Metric::PeakRss,
        // Counts of checks weigh every check alike: the grouped matrix is the headline.
        Scenario::Isolation => false,
        Scenario::Interference => true,
        Scenario::Density => true,
        Scenario::Command => fixed(Metric::TimeToReady) || fixed(Metric::TimeToExit),
        Scenario::Warm => fixed(Metric::WarmStart),
    }
}

/// What the host kernel served for one traced run, as a reader should take it: the
/// distinct system calls counted, and whose they were.
#[derive(Debug, Clone, PartialEq)]
pub struct HostCalls {
    /// Distinct system calls.
    pub distinct: u32,
    /// Whose they were: "its own", "its monitor's", "its kernel in user space's".
    pub whose: &'static str,
    /// Whether they were counted as the setup's: a kernel in user space serves the
    /// workload without an exec on the host, so the trace counts its every call before
    /// the workload's (never seen) exec.
    pub as_setup: bool,
}

/// What the host kernel served for `backend`'s traced `hello`, if traced.
pub fn host_calls(doc: &Results, backend: &str) -> Option<HostCalls> {
    let s = doc
        .surface
        .iter()
        .find(|s| s.backend == backend && s.workload.first().is_some_and(|w| w == "hello"))?;
    let place = family::place(doc, backend)?;
    Some(match place.family {
        Family::UserKernel if s.distinct_syscalls == 0 && !s.setup_syscalls.is_empty() => {
            HostCalls {
                distinct: u32::try_from(s.setup_syscalls.len()).unwrap_or(u32::MAX),
                whose: "its kernel in user space's",
                as_setup: true,
            }
        }
        Family::UserKernel => HostCalls {
            distinct: s.distinct_syscalls,
            whose: "its kernel in user space's",
            as_setup: false,
        },
        Family::Vm => HostCalls {
            distinct: s.distinct_syscalls,
            whose: "its monitor's",
            as_setup: false,
        },
        Family::Process | Family::Container => HostCalls {
            distinct: s.distinct_syscalls,
            whose: "its own",
            as_setup: false,
        },
    })
}

/// A median with its interval, for a chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The median (or the value).
    pub median: f64,
    /// The interval's ends, where the figure has one.
    pub ci: Option<(f64, f64)>,
}

impl Point {
    fn of(figure: &Figure) -> Point {
        Point {
            median: figure.summary.median,
            ci: figure.summary.ci.map(|ci| (ci.low, ci.high)),
        }
    }
}

/// One backend on the spectrum from a plain process to a VM.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum {
    /// The backend.
    pub backend: String,
    /// Where it stands.
    pub place: Place,
    /// Launch to the workload's first record (a micro guest: to its first marker), ms.
    pub start_ms: Option<Point>,
    /// Memory beyond what the workload touched, MiB (see [`MemorySplit::beyond`]).
    pub memory_mib: Option<f64>,
    /// One system call, ns (none for micro guests, which make none).
    pub syscall_ns: Option<Point>,
}

/// Every backend that ran, ordered from the least fenced to the most (a plain process, the
/// containers, the VMs), with what was measured of it.
pub fn spectrum(doc: &Results) -> Vec<Spectrum> {
    let memory = memory(doc);
    let mut out: Vec<Spectrum> = family::ran(doc)
        .into_iter()
        .filter_map(|backend| {
            let place = family::place(doc, backend)?;
            let point = |scenario: Scenario, metric: Metric| {
                doc.figure(backend, scenario.name(), metric.name())
                    .map(Point::of)
            };
            let item = Spectrum {
                backend: backend.to_owned(),
                place,
                start_ms: point(Scenario::Startup, Metric::TimeToStart),
                memory_mib: memory
                    .iter()
                    .find(|m| m.backend == backend)
                    .map(MemorySplit::beyond),
                syscall_ns: point(Scenario::Syscall, Metric::Syscall),
            };
            let any =
                item.start_ms.is_some() || item.memory_mib.is_some() || item.syscall_ns.is_some();
            any.then_some(item)
        })
        .collect();
    out.sort_by_key(|s| (s.place.family, s.place.micro));
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
    fn native_adds_nothing_and_the_container_only_what_is_beyond_native() {
        let doc = fixture();
        let split = memory(&doc);
        let get = |b: &str| split.iter().find(|m| m.backend == b).unwrap();
        let native = get("native");
        assert_eq!(native.added, 0.0);
        assert!((native.own - 1.4).abs() < 1e-9, "{native:?}");
        let container = get("container");
        // The fixture has no PSS: RSS, 2.5 beyond the touched 64, 1.4 of it native's own.
        assert_eq!(container.measure, Measure::Rss);
        assert!((container.own - 1.4).abs() < 1e-9 && (container.added - 1.1).abs() < 1e-9);
        let vm = get("microvm");
        assert!(vm.place.micro && vm.own == 0.0 && (vm.added - 1.38).abs() < 1e-9);
    }

    #[test]
    fn the_spectrum_runs_from_the_plain_process_to_the_vm() {
        let doc = fixture();
        let order: Vec<String> = spectrum(&doc).into_iter().map(|s| s.backend).collect();
        assert_eq!(order, ["native", "container", "microvm"]);
    }

    #[test]
    fn headlines_leave_wall_and_peak_rss_to_the_appendix() {
        assert!(headline("syscall", "syscall"));
        assert!(!headline("syscall", "wall"));
        assert!(headline("mem", "triad") && !headline("mem", "copy"));
        assert!(headline("footprint", "pss") && !headline("footprint", "peak_rss"));
        assert!(headline("someday", "metric") && !headline("someday", "wall"));
        assert!(!headline("isolation", "isolated_checks"));
    }
}
