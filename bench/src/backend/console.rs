//! A Linux guest's console as both VM backends read it: the workload's records among the
//! kernel's lines, when its `started` and `result` records arrived, how many CPUs the
//! guest had online, and the last lines that were not records, for failure reports.

use std::collections::VecDeque;

use workload::record::{self, Record};

use super::protocol::{Error, Event};
use crate::clock::Stamp;

/// Console lines kept for failure reports.
pub const TAIL: usize = 40;

/// What a Linux guest's console has told so far.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Console {
    tail: VecDeque<String>,
    /// When the workload's first `started` record arrived.
    pub started: Option<Stamp>,
    /// When the workload's first `result` record arrived.
    pub result: Option<Stamp>,
    /// The CPUs the guest had online, as its workload counted them.
    pub cpus_online: Option<u64>,
    /// Boot steps the kernel's own lines showed (a shown console): each step's name, when
    /// its line arrived, and the kernel's own time of it, µs.
    pub kernel_steps: Vec<(&'static str, Stamp, Option<u64>)>,
}

/// Kernel lines that mark a step of boot: the text a line contains, and the step's name.
/// The last line of each kind wins (the kernel switches clocksources more than once).
const KERNEL_STEPS: [(&str, &str); 4] = [
    ("Linux version ", "kernel_banner"),
    ("TSC deadline timer available", "kernel_tsc_deadline_timer"),
    ("Switched to clocksource ", "kernel_clocksource_switched"),
    (" as init process", "kernel_runs_init"),
];

/// The kernel's own time of a line stamped `[   1.234567] ...`, µs.
fn kernel_time_us(line: &str) -> Option<u64> {
    let inner = line.trim_start().strip_prefix('[')?;
    let (stamp, _) = inner.split_once(']')?;
    let (secs, fraction) = stamp.trim().split_once('.')?;
    let secs: u64 = secs.parse().ok()?;
    // The kernel prints six digits; fewer are tenths, hundredths...
    if fraction.is_empty() || fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros: u64 = format!("{fraction:0<6}").parse().ok()?;
    Some(secs * 1_000_000 + micros)
}

impl Console {
    /// One console line, ended at `at`: a workload record becomes its event, a malformed
    /// record an error, and any other line joins the tail.
    pub fn line(&mut self, text: &str, at: Stamp) -> Option<Result<Event, Error>> {
        match record::parse_line(text) {
            Ok(Some(record)) => {
                match &record {
                    Record::Started { .. } => self.started = self.started.or(Some(at)),
                    Record::Result { metrics, .. } => {
                        self.result = self.result.or(Some(at));
                        self.cpus_online = metrics
                            .iter()
                            .find(|m| m.name == "cpus_online")
                            .map(|m| m.value)
                            .filter(|v| v.is_finite() && *v >= 0.0)
                            .map(|v| {
                                // A finite, non-negative count of CPUs.
                                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                                let cpus = v as u64;
                                cpus
                            });
                    }
                    Record::Error { .. } => {}
                }
                Some(Ok(Event::Record { record, at }))
            }
            Ok(None) => {
                if let Some((_, step)) = KERNEL_STEPS
                    .iter()
                    .find(|(needle, _)| text.contains(needle))
                {
                    self.kernel_steps.retain(|(name, ..)| name != step);
                    self.kernel_steps.push((step, at, kernel_time_us(text)));
                }
                if self.tail.len() == TAIL {
                    self.tail.pop_front();
                }
                self.tail.push_back(text.to_owned());
                None
            }
            Err(e) => Some(Err(e.into())),
        }
    }

    /// The last lines that were not records, oldest first.
    pub fn tail(&self) -> impl Iterator<Item = &str> {
        self.tail.iter().map(String::as_str)
    }

    /// The phases the console showed: the kernel's boot steps when its lines were shown,
    /// then the workload's start and its result, each when its line arrived.
    pub fn phases(&self) -> Vec<(String, Stamp)> {
        let mut phases: Vec<(String, Stamp)> = self
            .kernel_steps
            .iter()
            .map(|(name, at, _)| ((*name).to_owned(), *at))
            .collect();
        phases.sort_by_key(|(_, at)| *at);
        phases.extend(
            [("workload_started", self.started), ("result", self.result)]
                .into_iter()
                .filter_map(|(name, at)| Some((name.to_owned(), at?))),
        );
        phases
    }

    /// What the console counted: the guest's online CPUs, and the kernel's own time of
    /// each boot step it showed (`<step>_us`, from the kernel's start).
    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut counters: Vec<(String, u64)> = self
            .cpus_online
            .map(|cpus| ("guest_cpus_online".to_owned(), cpus))
            .into_iter()
            .collect();
        counters.extend(
            self.kernel_steps
                .iter()
                .filter_map(|(name, _, us)| Some((format!("{name}_us"), (*us)?))),
        );
        counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_events_and_other_lines_the_tail() {
        let mut console = Console::default();
        assert!(console
            .line("[    0.1] Linux version 6.1", Stamp(1))
            .is_none());
        let started = Record::Started {
            workload: "hello".into(),
            pid: 1,
            pid1: true,
        };
        let started = console.line(started.to_line().trim_end(), Stamp(5));
        assert!(matches!(
            started,
            Some(Ok(Event::Record { at: Stamp(5), .. }))
        ));
        let result = Record::Result {
            workload: "hello".into(),
            metrics: vec![record::Metric::new("cpus_online", 2.0, "cpus")],
            facts: Vec::new(),
        };
        let result = console.line(result.to_line().trim_end(), Stamp(9));
        assert!(matches!(result, Some(Ok(_))), "{result:?}");
        assert!(matches!(
            console.line("@vcbench {", Stamp(10)),
            Some(Err(_))
        ));
        assert_eq!(
            console.phases(),
            [
                ("kernel_banner".to_owned(), Stamp(1)),
                ("workload_started".to_owned(), Stamp(5)),
                ("result".to_owned(), Stamp(9))
            ]
        );
        assert_eq!(
            console.counters(),
            [
                ("guest_cpus_online".to_owned(), 2),
                ("kernel_banner_us".to_owned(), 100_000)
            ]
        );
        assert_eq!(
            console.tail().collect::<Vec<_>>(),
            ["[    0.1] Linux version 6.1"]
        );
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let mut console = Console::default();
        for i in 0..TAIL + 5 {
            console.line(&format!("line {i}"), Stamp(0));
        }
        let tail: Vec<&str> = console.tail().collect();
        assert_eq!(tail.len(), TAIL);
        assert_eq!(tail[0], "line 5");
    }

    #[test]
    fn a_shown_console_gives_the_kernels_boot_steps_with_its_own_times() {
        let mut console = Console::default();
        for (line, at) in [
            (
                "[    0.000000] Linux version 6.1.192 (root@build) #1 SMP",
                10,
            ),
            ("[    0.052311] TSC deadline timer available", 12),
            (
                "[    0.101000] clocksource: Switched to clocksource kvm-clock",
                15,
            ),
            (
                "[    0.180002] clocksource: Switched to clocksource tsc",
                18,
            ),
            ("[    0.201500] Run /init as init process", 20),
        ] {
            assert!(console.line(line, Stamp(at)).is_none());
        }
        assert_eq!(
            console.phases(),
            vec![
                ("kernel_banner".to_owned(), Stamp(10)),
                ("kernel_tsc_deadline_timer".to_owned(), Stamp(12)),
                ("kernel_clocksource_switched".to_owned(), Stamp(18)),
                ("kernel_runs_init".to_owned(), Stamp(20)),
            ]
        );
        let counters = console.counters();
        assert!(counters.contains(&("kernel_runs_init_us".to_owned(), 201_500)));
        assert!(counters.contains(&("kernel_clocksource_switched_us".to_owned(), 180_002)));
        // Lines without the kernel's time (a quiet console's warnings) still mark the step.
        let mut quiet = Console::default();
        quiet.line("Run /init as init process", Stamp(3));
        assert_eq!(
            quiet.phases(),
            vec![("kernel_runs_init".to_owned(), Stamp(3))]
        );
        assert!(quiet.counters().is_empty());
    }
}
