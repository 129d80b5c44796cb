//! The runner: carries out a plan, backend by backend and scenario by scenario, and
//! turns what it observed into a results document.
//!
//! One run is: stamp the launch, launch, read events until the channel closes (sampling
//! the instance's memory every [`SAMPLE_INTERVAL`] meanwhile), wait for the exit, tear
//! down. All stamps are taken on the host's monotonic clock; the guest's clock is never
//! used. Warmup runs are run and recorded but yield no samples.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use workload::record::Record;

use crate::backend::{error_chain, Availability, Backend, Event, Launch};
use crate::clock::Stamp;
use crate::host::Host;
use crate::procfs::{self, Memory};
use crate::results::{self, Figure, Phase, PlannedScenario, Results, Run, Skip};
use crate::scenario::{Observation, Scenario, Value};
use crate::stats::summarise;
use crate::{density, interference, isolation, surface};

/// How often a live instance's memory is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// One scenario of a plan, with its run counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The scenario.
    pub scenario: Scenario,
    /// Measured runs per backend.
    pub runs: u32,
    /// Warmup runs per backend.
    pub warmup: u32,
    /// Time limit of one run.
    pub timeout: Duration,
}

impl Step {
    /// The scenario with its default counts, overridden where given.
    pub fn new(
        scenario: Scenario,
        runs: Option<u32>,
        warmup: Option<u32>,
        timeout: Option<Duration>,
    ) -> Self {
        Step {
            scenario,
            runs: runs.unwrap_or_else(|| scenario.default_runs()),
            warmup: warmup.unwrap_or_else(|| scenario.default_warmup()),
            timeout: timeout.unwrap_or_else(|| scenario.default_timeout()),
        }
    }
}

/// What to run.
pub struct Plan {
    /// Backends, in order.
    pub backends: Vec<Box<dyn Backend>>,
    /// Scenarios, in order.
    pub steps: Vec<Step>,
    /// How the density scenario runs, when it is one of the steps.
    pub density: density::Options,
}

impl Plan {
    /// Runs in the plan, warmups included, for backends that are available.
    pub fn total_runs(&self) -> u64 {
        self.backends
            .iter()
            .filter(|b| b.availability() == Availability::Available)
            .flat_map(|b| self.steps.iter().filter(|s| b.supports(s.scenario).is_ok()))
            .map(|s| match s.scenario {
                Scenario::Interference => 1,
                Scenario::Density => {
                    u64::from(self.density.instances.iter().copied().max().unwrap_or(0))
                }
                _ => u64::from(s.runs + s.warmup),
            })
            .sum()
    }
}

/// Receives progress as the runner goes.
pub trait Progress {
    /// A run is about to start.
    fn run_started(&self, backend: &str, scenario: &str, index: u32, of: u32, warmup: bool);
    /// A run has ended.
    fn run_ended(&self, failure: Option<&str>);
    /// A backend × scenario is done; `partial` holds everything so far (marked incomplete),
    /// for a caller that keeps a checkpoint.
    fn checkpoint(&self, partial: &Results) {
        let _ = partial;
    }
}

/// Density progress as runs: instance `alive` of `target` counts as run `alive`.
struct DensityProgress<'a>(&'a dyn Progress);

impl density::Progress for DensityProgress<'_> {
    fn alive(&self, backend: &str, alive: u32, target: u32) {
        self.0.run_started(backend, "density", alive, target, false);
        self.0.run_ended(None);
    }
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {
    fn run_started(&self, _: &str, _: &str, _: u32, _: u32, _: bool) {}
    fn run_ended(&self, _: Option<&str>) {}
}

/// Carries out `plan` with the workload at `workload`. When `stop` becomes true the
/// current run is killed, nothing more starts, and the results say they are incomplete.
pub fn execute(
    plan: &Plan,
    workload: &Path,
    host: Host,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Results {
    let started_at = results::now_rfc3339();
    let mut results = Results {
        schema_version: results::SCHEMA_VERSION,
        tool: tool(),
        host,
        plan: results::Plan {
            backends: plan.backends.iter().map(|b| b.name().to_owned()).collect(),
            settings: plan
                .backends
                .iter()
                .map(|b| (b.name().to_owned(), b.settings()))
                .filter(|(_, s)| !s.is_empty())
                .collect(),
            scenarios: plan
                .steps
                .iter()
                .map(|s| PlannedScenario {
                    name: s.scenario.name().to_owned(),
                    workload: match s.scenario {
                        Scenario::Density => plan.density.workload_args(),
                        Scenario::Interference => interference::workload_args(),
                        _ => s.scenario.workload_args(),
                    },
                    runs: s.runs,
                    warmup: s.warmup,
                    timeout_s: s.timeout.as_secs_f64(),
                })
                .collect(),
        },
        started_at,
        finished_at: String::new(),
        complete: true,
        figures: Vec::new(),
        runs: Vec::new(),
        failures: Vec::new(),
        skipped: Vec::new(),
        density: Vec::new(),
        isolation: Vec::new(),
        surface: Vec::new(),
    };
    // The probe's answers on the host, taken once when the isolation scenario runs.
    let mut host_answers: Option<Result<Vec<workload::record::Fact>, String>> = None;
    'plan: for backend in &plan.backends {
        if let Availability::Unavailable(reason) = backend.availability() {
            results.skipped.push(Skip {
                backend: backend.name().to_owned(),
                scenario: None,
                reason,
            });
            continue;
        }
        for step in &plan.steps {
            if let Err(reason) = backend.supports(step.scenario) {
                results.skipped.push(Skip {
                    backend: backend.name().to_owned(),
                    scenario: Some(step.scenario.name().to_owned()),
                    reason,
                });
                continue;
            }
            if step.scenario == Scenario::Density {
                let series = density::run(
                    backend.as_ref(),
                    workload,
                    &plan.density,
                    &DensityProgress(progress),
                    stop,
                );
                results.figures.extend(density::figures(&series));
                if let (true, Some(reason)) = (series.failed, &series.stopped) {
                    results.failures.push(results::Failure {
                        backend: backend.name().to_owned(),
                        scenario: step.scenario.name().to_owned(),
                        index: series.reached,
                        reason: reason.clone(),
                    });
                }
                results.density.push(series);
                if stop.load(Ordering::SeqCst) {
                    results.complete = false;
                    break 'plan;
                }
                checkpoint(&mut results, progress);
                continue;
            }
            if step.scenario == Scenario::Interference {
                progress.run_started(backend.name(), step.scenario.name(), 1, 1, false);
                let outcome = match tempfile::Builder::new()
                    .prefix("vcbench-scratch-")
                    .tempdir()
                {
                    Ok(scratch) => {
                        interference::run(backend.as_ref(), workload, step, scratch.path(), stop)
                    }
                    Err(e) => interference::Outcome {
                        failures: vec![results::Failure {
                            backend: backend.name().to_owned(),
                            scenario: step.scenario.name().to_owned(),
                            index: 0,
                            reason: format!("cannot make a scratch directory: {e}"),
                        }],
                        ..Default::default()
                    },
                };
                progress.run_ended(outcome.failures.first().map(|f| f.reason.as_str()));
                results.figures.extend(outcome.figures);
                results.failures.extend(outcome.failures);
                results
                    .skipped
                    .extend(outcome.skipped.into_iter().map(|reason| Skip {
                        backend: backend.name().to_owned(),
                        scenario: Some("interference (limited neighbour)".to_owned()),
                        reason,
                    }));
                if stop.load(Ordering::SeqCst) {
                    results.complete = false;
                    break 'plan;
                }
                checkpoint(&mut results, progress);
                continue;
            }
            // Per metric, in the order the scenario yields them.
            let mut samples: Vec<(Value, Vec<f64>)> = Vec::new();
            let mut facts = Vec::new();
            let launch = Launch {
                workload: workload.to_owned(),
                args: step.scenario.workload_args(),
            };
            // Micro guests run no program to probe; the host surface is still traced.
            let mut runs = 0..step.warmup + step.runs;
            if step.scenario == Scenario::Isolation {
                if let Err(reason) = backend.runs_programs() {
                    results.skipped.push(Skip {
                        backend: backend.name().to_owned(),
                        scenario: Some("isolation (probe)".to_owned()),
                        reason,
                    });
                    runs = 0..0;
                }
            }
            for index in runs {
                if stop.load(Ordering::SeqCst) {
                    results.complete = false;
                    break 'plan;
                }
                let warmup = index < step.warmup;
                let of = if warmup { step.warmup } else { step.runs };
                let shown = if warmup { index } else { index - step.warmup };
                progress.run_started(backend.name(), step.scenario.name(), shown + 1, of, warmup);
                let outcome = run_once(backend.as_ref(), &launch, step, stop);
                progress.run_ended(outcome.failure.as_deref());
                results.runs.push(Run {
                    backend: backend.name().to_owned(),
                    scenario: step.scenario.name().to_owned(),
                    index,
                    warmup,
                    ok: outcome.failure.is_none(),
                    markers: outcome.observation.markers.clone(),
                    exit_status: outcome.exit_status,
                    host_maxrss_kib: outcome.observation.host_maxrss_kib,
                    sampled_peak: outcome.sampled_peak,
                    phases: outcome.phases,
                    counters: outcome.counters.into_iter().collect(),
                });
                match outcome.failure {
                    Some(reason) => results.failures.push(results::Failure {
                        backend: backend.name().to_owned(),
                        scenario: step.scenario.name().to_owned(),
                        index,
                        reason,
                    }),
                    None if !warmup => {
                        facts = outcome.observation.facts.clone();
                        for value in step.scenario.values(&outcome.observation) {
                            match samples.iter_mut().find(|(v, _)| v.metric == value.metric) {
                                Some((_, list)) => list.push(value.value),
                                None => samples.push((value.clone(), vec![value.value])),
                            }
                        }
                    }
                    None => {}
                }
            }
            results
                .figures
                .extend(figures(backend.name(), step.scenario, samples));
            if step.scenario == Scenario::Isolation && !facts.is_empty() {
                let host = host_answers.get_or_insert_with(|| {
                    isolation::host_answers(workload).map_err(|e| error_chain(&e))
                });
                match host {
                    Ok(host) => {
                        let matrix = isolation::judge(backend.name(), &facts, host);
                        results.figures.extend(isolation::figures(&matrix));
                        results.isolation.push(matrix);
                    }
                    Err(reason) => results.failures.push(results::Failure {
                        backend: backend.name().to_owned(),
                        scenario: step.scenario.name().to_owned(),
                        index: 0,
                        reason: reason.clone(),
                    }),
                }
            }
            if step.scenario == Scenario::Isolation {
                match surface::measure(backend.as_ref(), workload, step.timeout, stop) {
                    Ok(traced) => {
                        let mut surfaces = Vec::new();
                        for t in traced {
                            match t {
                                Ok(s) => surfaces.push(s),
                                Err(reason) => results.failures.push(results::Failure {
                                    backend: backend.name().to_owned(),
                                    scenario: "isolation (host surface)".to_owned(),
                                    index: 0,
                                    reason,
                                }),
                            }
                        }
                        results.figures.extend(surface::figures(&surfaces));
                        results.surface.extend(surfaces);
                    }
                    Err(reason) => results.skipped.push(Skip {
                        backend: backend.name().to_owned(),
                        scenario: Some("isolation (host surface)".to_owned()),
                        reason,
                    }),
                }
            }
            checkpoint(&mut results, progress);
        }
    }
    if stop.load(Ordering::SeqCst) {
        results.complete = false;
    }
    results.finished_at = results::now_rfc3339();
    results
}

/// Hands everything so far, marked incomplete, to the progress's checkpoint.
fn checkpoint(results: &mut Results, progress: &dyn Progress) {
    results.complete = false;
    results.finished_at = results::now_rfc3339();
    progress.checkpoint(results);
    results.complete = true;
}

/// The tool's identity for results.
pub fn tool() -> results::Tool {
    results::Tool {
        name: "vcbench".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_revision: env!("VCBENCH_GIT_REVISION").to_owned(),
        workload_fnv: crate::image::WORKLOAD_FNV.to_owned(),
    }
}

/// Figures from the samples of one backend × scenario.
fn figures(backend: &str, scenario: Scenario, samples: Vec<(Value, Vec<f64>)>) -> Vec<Figure> {
    samples
        .into_iter()
        .filter_map(|(value, samples)| {
            Some(Figure {
                backend: backend.to_owned(),
                scenario: scenario.name().to_owned(),
                metric: value.metric.to_owned(),
                unit: value.unit.to_owned(),
                better: value.better,
                summary: summarise(&samples)?,
                samples,
            })
        })
        .collect()
}

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
    let mut instance = match crate::registry::launch(backend, launch) {
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
                    if step.scenario.holds() {
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
            format!("{p}; workload said: {}", last.join(" | "))
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
