//! One measured run: launch an instance, read its events until the channel closes
//! (sampling its memory every [`SAMPLE_INTERVAL`] meanwhile), wait for its exit, tear it
//! down, and say what was observed and whether it failed.
//!
//! All stamps are taken on the host's monotonic clock; the guest's clock is never used.
//! This module knows one run only: the order of runs, their figures and the results
//! document are the runner's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use workload::record::Record;

use crate::backend::{error_chain, Backend, Event, Launch};
use crate::clock::Stamp;
use crate::figures::Observation;
use crate::procfs::{self, Memory};
use crate::results::Phase;
use crate::scenario::{Run as _, Step};

/// How often a live instance's memory is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// Why an instance that ended this way failed, if it did: the memory limit's OOM killer
/// (which explains whatever followed it), a timeout (before or after the workload
/// started), a signal, or a non-zero status.
fn exit_problem(
    exit: &crate::backend::Exit,
    counters: &[(String, u64)],
    started: bool,
    timeout: Duration,
) -> Option<String> {
    let oom_kills = oom_kills(counters);
    let signal = workload::signal::of_status(exit.status);
    if oom_kills > 0 {
        Some(format!(
            "killed by the out-of-memory killer at the instance's memory limit \
             ({oom_kills} OOM kill{} in its cgroup, status {})",
            if oom_kills == 1 { "" } else { "s" },
            exit.status
        ))
    } else if exit.timed_out {
        Some(match started {
            true => format!("timed out after {:.1} s", timeout.as_secs_f64()),
            false => format!(
                "timed out after {:.1} s without the workload starting (no record arrived)",
                timeout.as_secs_f64()
            ),
        })
    } else if let Some(signal) = signal {
        Some(format!(
            "killed by signal {} (status {})",
            workload::signal::name(signal),
            exit.status
        ))
    } else if exit.status != 0 {
        Some(format!("exited with status {}", exit.status))
    } else {
        None
    }
}

/// Whether a workload line asks the workload to hold once ready (`exec --hold`, a user's
/// service), to be released once its memory is taken, as `alloc` is for the footprint.
fn held(args: &[String]) -> bool {
    args.first().is_some_and(|a| a == "exec")
        && args
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a == "--hold")
}

/// The OOM kills an instance's cgroup counted (0 without a cgroup).
fn oom_kills(counters: &[(String, u64)]) -> u64 {
    counters
        .iter()
        .find(|(name, _)| name == "cgroup_oom_kills")
        .map_or(0, |(_, n)| *n)
}

/// What one run gave.
#[derive(Debug)]
pub struct Outcome {
    /// What was observed (markers, the workload's figures).
    pub observation: Observation,
    /// How the instance ended: its exit status, or 128 + the signal that killed it.
    pub exit_status: Option<i32>,
    /// The largest memory sample taken while it ran.
    pub sampled_peak: Option<Memory>,
    /// The backend's phases, in ms from launch.
    pub phases: Vec<Phase>,
    /// The backend's counters (VM exits, OOM kills, ...).
    pub counters: Vec<(String, u64)>,
    /// Why the run failed, in one line; `None` when it succeeded.
    pub failure: Option<String>,
}

/// Runs one instance of `launch` on `backend` from launch to teardown, within
/// `step.timeout`, and says how it went; a failure is the outcome's reason, never a panic.
/// Everything the instance used is released before it returns.
pub fn run_once(backend: &dyn Backend, launch: &Launch, step: &Step, stop: &AtomicBool) -> Outcome {
    let mut observation = Observation::default();
    let launched = Stamp::now();
    let deadline = Instant::now() + step.timeout;
    let mut instance = match crate::backend::launch(backend, launch) {
        Ok(i) => i,
        Err(e) => {
            return Outcome {
                observation,
                exit_status: None,
                sampled_peak: None,
                phases: Vec::new(),
                counters: Vec::new(),
                failure: Some(error_chain(&e)),
            }
        }
    };
    let mut problem: Option<String> = None;
    let mut got_result = false;
    let mut peak: Option<Memory> = None;
    loop {
        if stop.load(Ordering::SeqCst) {
            problem.get_or_insert_with(|| "interrupted".to_owned());
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match instance.next_event((now + SAMPLE_INTERVAL).min(deadline)) {
            Ok(Some(Event::Record { record, at })) => match record {
                Record::Started { .. } => {
                    observation.markers.started_ms = Some(at.ms_since(launched))
                }
                Record::Result { metrics, facts, .. } => {
                    observation.markers.result_ms = Some(at.ms_since(launched));
                    observation.metrics = metrics;
                    observation.facts = facts;
                    got_result = true;
                    if step.scenario.holds() || held(&launch.args) {
                        observation.memory_at_result = Some(instance.footprint());
                        instance.release();
                    }
                }
                Record::Error { workload, message } => {
                    problem.get_or_insert_with(|| format!("{workload} failed: {message}"));
                }
            },
            Ok(Some(Event::Closed { .. })) => break,
            Ok(None) => {
                if let Some(m) = procfs::memory_of(&instance.pids()) {
                    peak = Some(peak.map_or(m, |p| procfs::peak(p, m)));
                }
            }
            Err(e) => {
                // A flood or garbage on the record stream: stop reading and end it.
                problem.get_or_insert_with(|| error_chain(&e));
                break;
            }
        }
    }
    let wait_until = if problem.is_some() {
        Instant::now()
    } else {
        deadline
    };
    let exit = instance.wait(wait_until);
    let diagnostics = instance.diagnostics();
    let phases = instance
        .phases()
        .into_iter()
        .map(|(name, at)| Phase {
            name,
            ms: at.ms_since(launched),
        })
        .collect();
    let counters = instance.counters();
    observation.counters = counters.clone();
    instance.teardown();
    observation.markers.gone_ms = Some(Stamp::now().ms_since(launched));
    let mut exit_status = None;
    match exit {
        Ok(exit) => {
            observation.markers.exited_ms = Some(exit.at.ms_since(launched));
            observation.host_maxrss_kib = exit.maxrss_kib;
            exit_status = Some(exit.status);
            // The OOM killer explains everything after it (a work process killed, an
            // error record about it): it comes first.
            if problem.is_none() || oom_kills(&counters) > 0 {
                problem = exit_problem(
                    &exit,
                    &counters,
                    observation.markers.started_ms.is_some(),
                    step.timeout,
                );
            }
        }
        Err(e) => {
            problem.get_or_insert_with(|| error_chain(&e));
        }
    }
    if problem.is_none() && !got_result {
        problem = Some("the workload wrote no result record".to_owned());
    }
    let failure = problem.map(|p| {
        let last_line = diagnostics.lines().last().unwrap_or_default();
        if diagnostics.is_empty() || p.contains(last_line.trim_start_matches("workload: ")) {
            p
        } else {
            // At most three lines of 200 characters: a flood stays out of the reason.
            let last: Vec<String> = diagnostics
                .lines()
                .rev()
                .take(3)
                .map(|line| crate::backend::clip(line, 200))
                .collect();
            let last: Vec<String> = last.into_iter().rev().collect();
            format!("{p}; its standard error said: {}", last.join(" | "))
        }
    });
    Outcome {
        observation,
        exit_status,
        sampled_peak: peak,
        phases,
        counters,
        failure,
    }
}
