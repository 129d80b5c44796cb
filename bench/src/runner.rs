//! The runner: carries out a plan, scenario by scenario, and turns what it observed into
//! a results document.
//!
//! Each kind of scenario has a small runner of its own: repeated runs of one instance
//! ([`repeated`], most scenarios), a series of instances kept alive ([`density`]), a
//! victim beside a neighbour ([`interference`]). Repeated runs go to the backends in the
//! plan's [`Order`] (interleaved by default), so drift on a noisy machine is shared out
//! rather than landing on one backend. One run itself is [`measure::run_once`]. Warmup
//! runs are run and recorded but yield no samples. An interrupted plan keeps every run it
//! completed: their figures are in the results, marked incomplete.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{error_chain, Availability, Backend, Launch};
use crate::host::Host;
use crate::measure;
use crate::order::{self, Order};
use crate::results::{self, Failure, Figure, PlannedScenario, Results, Run, Skip};
use crate::scenario::{Scenario, Step, Value};
use crate::{density, interference, isolation, surface};

/// What to run.
pub struct Plan {
    /// Backends, in order.
    pub backends: Vec<Box<dyn Backend>>,
    /// Scenarios, in order.
    pub steps: Vec<Step>,
    /// How the density scenario runs, when it is one of the steps.
    pub density: density::Options,
    /// How each scenario's runs are ordered among the backends.
    pub order: Order,
    /// The seed of the run's shuffles and bootstrap intervals.
    pub seed: u64,
    /// The backend others are compared with [default: native when it runs, else the
    /// first backend].
    pub baseline: Option<String>,
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
/// current run is killed, nothing more starts, and the results say they are incomplete
/// (with the figures of every run completed before).
pub fn execute(
    plan: &Plan,
    workload: &Path,
    host: Host,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Results {
    let mut results = Results {
        schema_version: results::SCHEMA_VERSION,
        tool: tool(),
        host,
        plan: planned(plan),
        started_at: results::now_rfc3339(),
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
    let mut available: Vec<&dyn Backend> = Vec::new();
    for backend in &plan.backends {
        match backend.availability() {
            Availability::Available => available.push(backend.as_ref()),
            Availability::Unavailable(reason) => results.skipped.push(Skip {
                backend: backend.name().to_owned(),
                scenario: None,
                reason,
            }),
        }
    }
    let mut rng = stats::Rng::new(plan.seed);
    let mut host_answers = None;
    for step in &plan.steps {
        let mut able = Vec::new();
        for &backend in &available {
            match backend.supports(step.scenario) {
                Ok(()) => able.push(backend),
                Err(reason) => results.skipped.push(Skip {
                    backend: backend.name().to_owned(),
                    scenario: Some(step.scenario.name().to_owned()),
                    reason,
                }),
            }
        }
        match step.scenario {
            Scenario::Density => {
                for backend in able {
                    run_density(
                        backend,
                        workload,
                        &plan.density,
                        progress,
                        stop,
                        &mut results,
                    );
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    checkpoint(&mut results, progress);
                }
            }
            Scenario::Interference => {
                for backend in able {
                    run_interference(backend, workload, step, progress, stop, &mut results);
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    checkpoint(&mut results, progress);
                }
            }
            _ => {
                let context = Repeated {
                    workload,
                    step,
                    order: plan.order,
                    progress,
                    stop,
                };
                repeated(&context, &able, &mut rng, &mut host_answers, &mut results);
            }
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        checkpoint(&mut results, progress);
    }
    if stop.load(Ordering::SeqCst) {
        results.complete = false;
    }
    results.attach_ratios();
    results.finished_at = results::now_rfc3339();
    results
}

/// The plan as the results record it.
fn planned(plan: &Plan) -> results::Plan {
    let names: Vec<&str> = plan.backends.iter().map(|b| b.name()).collect();
    results::Plan {
        backends: names.iter().map(|&n| n.to_owned()).collect(),
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
        order: plan.order.name().to_owned(),
        seed: plan.seed,
        baseline: Some(baseline(plan.baseline.as_deref(), &names)),
    }
}

/// The baseline backend: the one asked for, else native when it is in the plan, else the
/// first backend.
pub fn baseline(asked: Option<&str>, backends: &[&str]) -> String {
    asked
        .or_else(|| backends.iter().copied().find(|b| *b == "native"))
        .or_else(|| backends.first().copied())
        .unwrap_or("native")
        .to_owned()
}

/// A density series on one backend.
fn run_density(
    backend: &dyn Backend,
    workload: &Path,
    options: &density::Options,
    progress: &dyn Progress,
    stop: &AtomicBool,
    results: &mut Results,
) {
    let series = density::run(backend, workload, options, &DensityProgress(progress), stop);
    let variant = backend.settings();
    let raw_cost = backend.runs_programs().is_err();
    results.figures.extend(
        density::figures(&series)
            .into_iter()
            .map(|f| f.ran(&variant, raw_cost)),
    );
    if let (true, Some(reason)) = (series.failed, &series.stopped) {
        results.failures.push(Failure {
            backend: backend.name().to_owned(),
            scenario: Scenario::Density.name().to_owned(),
            index: series.reached,
            reason: reason.clone(),
        });
    }
    results.density.push(series);
}

/// The interference scenario on one backend.
fn run_interference(
    backend: &dyn Backend,
    workload: &Path,
    step: &Step,
    progress: &dyn Progress,
    stop: &AtomicBool,
    results: &mut Results,
) {
    progress.run_started(backend.name(), step.scenario.name(), 1, 1, false);
    let outcome = match tempfile::Builder::new()
        .prefix("vcbench-scratch-")
        .tempdir()
    {
        Ok(scratch) => interference::run(backend, workload, step, scratch.path(), stop),
        Err(e) => interference::Outcome {
            failures: vec![Failure {
                backend: backend.name().to_owned(),
                scenario: step.scenario.name().to_owned(),
                index: 0,
                reason: format!("cannot make a scratch directory: {e}"),
            }],
            ..Default::default()
        },
    };
    progress.run_ended(outcome.failures.first().map(|f| f.reason.as_str()));
    let variant = backend.settings();
    results
        .figures
        .extend(outcome.figures.into_iter().map(|f| f.ran(&variant, false)));
    results.failures.extend(outcome.failures);
    results
        .skipped
        .extend(outcome.skipped.into_iter().map(|reason| Skip {
            backend: backend.name().to_owned(),
            scenario: Some("interference (limited neighbour)".to_owned()),
            reason,
        }));
}

/// What every run of a repeated scenario shares.
struct Repeated<'a> {
    workload: &'a Path,
    step: &'a Step,
    order: Order,
    progress: &'a dyn Progress,
    stop: &'a AtomicBool,
}

/// What one backend's runs of a repeated scenario have gathered.
#[derive(Default)]
struct Gathered {
    /// Per metric, in the order the scenario yields them.
    samples: Vec<(Value, Vec<f64>)>,
    /// The isolation probe's answers (from the last measured run).
    facts: Vec<workload::record::Fact>,
}

impl Gathered {
    fn add(&mut self, values: Vec<Value>) {
        for value in values {
            match self
                .samples
                .iter_mut()
                .find(|(v, _)| v.metric == value.metric)
            {
                Some((_, list)) => list.push(value.value),
                None => {
                    let first = value.value;
                    self.samples.push((value, vec![first]));
                }
            }
        }
    }
}

/// Repeated runs of one instance on each of `backends`, in the context's order, then
/// their figures (and, for isolation, the probe's verdicts and the host surface).
fn repeated(
    context: &Repeated,
    backends: &[&dyn Backend],
    rng: &mut stats::Rng,
    host_answers: &mut Option<Result<Vec<workload::record::Fact>, String>>,
    results: &mut Results,
) {
    let step = context.step;
    let scenario = step.scenario;
    let launch = Launch {
        workload: context.workload.to_owned(),
        args: scenario.workload_args(),
    };
    // Micro guests run no program to probe; the host surface is still traced.
    let probes: Vec<bool> = backends
        .iter()
        .map(|b| match (scenario, b.runs_programs()) {
            (Scenario::Isolation, Err(reason)) => {
                results.skipped.push(Skip {
                    backend: b.name().to_owned(),
                    scenario: Some("isolation (probe)".to_owned()),
                    reason,
                });
                false
            }
            _ => true,
        })
        .collect();
    let mut gathered: Vec<Gathered> = backends.iter().map(|_| Gathered::default()).collect();
    let slots = order::schedule(backends.len(), step.warmup, step.runs, context.order, rng);
    for slot in slots.into_iter().filter(|s| probes[s.backend]) {
        if context.stop.load(Ordering::SeqCst) {
            break;
        }
        let backend = backends[slot.backend];
        let (shown, of) = match slot.warmup {
            true => (slot.index, step.warmup),
            false => (slot.index - step.warmup, step.runs),
        };
        context
            .progress
            .run_started(backend.name(), scenario.name(), shown + 1, of, slot.warmup);
        let outcome = measure::run_once(backend, &launch, step, context.stop);
        let mut failure = outcome.failure.clone();
        let values = scenario.values(&outcome.observation);
        if failure.is_none() {
            failure = crate::scenario::check(&values).err();
        }
        context.progress.run_ended(failure.as_deref());
        results.runs.push(Run {
            backend: backend.name().to_owned(),
            scenario: scenario.name().to_owned(),
            index: slot.index,
            warmup: slot.warmup,
            ok: failure.is_none(),
            markers: outcome.observation.markers.clone(),
            exit_status: outcome.exit_status,
            host_maxrss_kib: outcome.observation.host_maxrss_kib,
            sampled_peak: outcome.sampled_peak,
            phases: outcome.phases,
            counters: outcome.counters.into_iter().collect(),
        });
        match failure {
            Some(reason) => results.failures.push(Failure {
                backend: backend.name().to_owned(),
                scenario: scenario.name().to_owned(),
                index: slot.index,
                reason,
            }),
            None if !slot.warmup => {
                let g = &mut gathered[slot.backend];
                g.facts = outcome.observation.facts;
                g.add(values);
            }
            None => {}
        }
    }
    for (backend, g) in backends.iter().zip(gathered) {
        results
            .figures
            .extend(figures(*backend, scenario, g.samples));
        if scenario == Scenario::Isolation {
            isolation_of(*backend, context, &g.facts, host_answers, results);
        }
    }
}

/// The isolation verdicts and the host surface of one backend, after its probe runs.
fn isolation_of(
    backend: &dyn Backend,
    context: &Repeated,
    facts: &[workload::record::Fact],
    host_answers: &mut Option<Result<Vec<workload::record::Fact>, String>>,
    results: &mut Results,
) {
    if !facts.is_empty() {
        let host = host_answers.get_or_insert_with(|| {
            isolation::host_answers(context.workload).map_err(|e| error_chain(&e))
        });
        match host {
            Ok(host) => {
                let matrix = isolation::judge(backend.name(), facts, host);
                let variant = backend.settings();
                results.figures.extend(
                    isolation::figures(&matrix)
                        .into_iter()
                        .map(|f| f.ran(&variant, false)),
                );
                results.isolation.push(matrix);
            }
            Err(reason) => results.failures.push(Failure {
                backend: backend.name().to_owned(),
                scenario: Scenario::Isolation.name().to_owned(),
                index: 0,
                reason: reason.clone(),
            }),
        }
    }
    if context.stop.load(Ordering::SeqCst) {
        return;
    }
    match surface::measure(
        backend,
        context.workload,
        context.step.timeout,
        context.stop,
    ) {
        Ok(traced) => {
            let mut surfaces = Vec::new();
            for t in traced {
                match t {
                    Ok(s) => surfaces.push(s),
                    Err(reason) => results.failures.push(Failure {
                        backend: backend.name().to_owned(),
                        scenario: "isolation (host surface)".to_owned(),
                        index: 0,
                        reason,
                    }),
                }
            }
            let variant = backend.settings();
            results.figures.extend(
                surface::figures(&surfaces)
                    .into_iter()
                    .map(|f| f.ran(&variant, false)),
            );
            results.surface.extend(surfaces);
        }
        Err(reason) => results.skipped.push(Skip {
            backend: backend.name().to_owned(),
            scenario: Some("isolation (host surface)".to_owned()),
            reason,
        }),
    }
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

/// Figures from the samples of one backend × scenario: distributions, each saying what
/// ran (the backend's settings) and which clock timed it. A micro guest's figures, and the
/// exits guest's on any backend, are the hypervisor's raw costs.
fn figures(
    backend: &dyn Backend,
    scenario: Scenario,
    samples: Vec<(Value, Vec<f64>)>,
) -> Vec<Figure> {
    let variant = backend.settings();
    let raw_cost = scenario == Scenario::Exits || backend.runs_programs().is_err();
    samples
        .into_iter()
        .filter_map(|(value, samples)| {
            Figure::distribution(
                backend.name(),
                scenario.name(),
                &value.metric,
                value.unit,
                value.better,
                samples,
            )
            .map(|f| f.timed_by(value.clock).ran(&variant, raw_cost))
        })
        .collect()
}
