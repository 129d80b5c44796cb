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

    /// The workload's phases the console showed: its start and its result.
    pub fn phases(&self) -> Vec<(String, Stamp)> {
        [("workload_started", self.started), ("result", self.result)]
            .into_iter()
            .filter_map(|(name, at)| Some((name.to_owned(), at?)))
            .collect()
    }

    /// What the console counted: the guest's online CPUs.
    pub fn counters(&self) -> Vec<(String, u64)> {
        self.cpus_online
            .map(|cpus| ("guest_cpus_online".to_owned(), cpus))
            .into_iter()
            .collect()
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
                ("workload_started".to_owned(), Stamp(5)),
                ("result".to_owned(), Stamp(9))
            ]
        );
        assert_eq!(console.counters(), [("guest_cpus_online".to_owned(), 2)]);
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
}
