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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::backend::hostnet::RunNet;
use crate::backend::{error_chain, Availability, Backend, Launch};
use crate::figures::{self, Value};
use crate::host::Host;
use crate::measure;
use crate::order::{self, Order};
use crate::results::{self, Failure, Figure, PlannedScenario, Results, Run, Skip};
use crate::scenario::{Run as _, Scenario, Step};
use crate::{density, goals, interference, isolation, surface};

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
    /// The command scenario's workload line: the user's program from the user's image
    /// (`exec --root DIR ... -- PROGRAM ARGS`); empty when there is none.
    pub command: Vec<String>,
    /// A time budget for the whole run: each scenario gets an equal share of what is left
    /// when it starts, and its measured runs stop once the share is spent and every
    /// backend has [`MIN_BUDGET_RUNS`].
    pub max_time: Option<Duration>,
    /// The CPUs the run is held to, as the kernel lists them, for the results.
    pub cpus: Option<String>,
}

/// Measured runs each backend gets in a scenario before a time budget may stop it.
pub const MIN_BUDGET_RUNS: u32 = 3;

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
        tool: results::tool(),
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
        reachable: Vec::new(),
    };
    // Every container instance of the run shares its cgroups' parents: made once, removed
    // when the run ends, rather than with each instance.
    let _parents = container::cgroup::KeptParents::hold();
    let mut available: Vec<&dyn Backend> = Vec::new();
    let found = crate::backend::availability_of(&plan.backends);
    for (backend, availability) in plan.backends.iter().zip(found) {
        match availability {
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
    let mut stopped = Stopped::default();
    let started = Instant::now();
    for (done, step) in plan.steps.iter().enumerate() {
        // This scenario's share of the time budget that is left.
        let deadline = plan.max_time.map(|budget| {
            let left = budget.saturating_sub(started.elapsed());
            let steps_left = u32::try_from(plan.steps.len() - done).unwrap_or(1).max(1);
            Instant::now() + left / steps_left
        });
        let mut able = Vec::new();
        for &backend in available.iter().filter(|b| !stopped.is_stopped(b.name())) {
            let supported = match step.scenario {
                // A user's image needs a backend that takes one and runs programs.
                Scenario::Command => backend
                    .runs_user_images()
                    .and_then(|()| backend.runs_programs())
                    .and_then(|()| backend.supports(step.scenario)),
                // The user's program held N times over: as above, and held once ready.
                Scenario::Density if !plan.command.is_empty() => backend
                    .runs_user_images()
                    .and_then(|()| backend.runs_programs())
                    .and_then(|()| backend.supports(step.scenario))
                    .and_then(|()| density::refuses(backend, &plan.command).map_or(Ok(()), Err)),
                _ => backend.supports(step.scenario),
            };
            match supported {
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
                        &plan.command,
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
                    command: &plan.command,
                    step,
                    order: plan.order,
                    progress,
                    stop,
                    deadline,
                };
                // Warm starts run on what each backend prepared ahead, dropped (and
                // removed) once the scenario is done.
                let warmed: Vec<Box<dyn Backend>> = match step.scenario {
                    Scenario::Warm => able
                        .iter()
                        .filter_map(|backend| match backend.warm() {
                            Ok(warm) => Some(warm),
                            Err(reason) => {
                                results.skipped.push(Skip {
                                    backend: backend.name().to_owned(),
                                    scenario: Some(step.scenario.name().to_owned()),
                                    reason,
                                });
                                None
                            }
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                // The hostnet scenario's instances join the run's own network, made here
                // and removed once the scenario is done (when the last backend joined to
                // it is dropped).
                let networked = match step.scenario {
                    Scenario::Hostnet => networked(&able, &mut results),
                    Scenario::Vsock => over_vsock(&able, &mut results),
                    _ => Vec::new(),
                };
                let able = match step.scenario {
                    Scenario::Warm => warmed.iter().map(AsRef::as_ref).collect(),
                    Scenario::Hostnet | Scenario::Vsock => {
                        networked.iter().map(AsRef::as_ref).collect()
                    }
                    _ => able,
                };
                // The floors the starts are read against, timed in the same rounds as
                // the starts, and the starts set against them.
                let mut floors = (step.scenario == Scenario::Startup).then(goals::Floors::prepare);
                repeated(
                    &context,
                    &able,
                    floors.as_mut(),
                    &mut rng,
                    &mut host_answers,
                    &mut stopped,
                    &mut results,
                );
                if let Some(floors) = floors.filter(|_| !stop.load(Ordering::SeqCst)) {
                    floors.add(plan.seed, &mut results);
                }
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

/// `able` joined to a network of the run's own for the hostnet scenario; a backend that
/// cannot join it, or every backend when it cannot be made, is skipped with the reason.
fn networked(able: &[&dyn Backend], results: &mut Results) -> Vec<Box<dyn Backend>> {
    let skip = |results: &mut Results, backend: &dyn Backend, reason: String| {
        results.skipped.push(Skip {
            backend: backend.name().to_owned(),
            scenario: Some(Scenario::Hostnet.name().to_owned()),
            reason,
        });
    };
    let net = match RunNet::create() {
        Ok(net) => std::sync::Arc::new(net),
        Err(e) => {
            let root = match crate::backend::image::is_root() {
                true => "",
                false => " (making one needs root)",
            };
            let reason = format!(
                "the run's own network namespace could not be made{root}: {}",
                error_chain(&e)
            );
            for &backend in able {
                skip(results, backend, reason.clone());
            }
            return Vec::new();
        }
    };
    able.iter()
        .filter_map(|&backend| match backend.networked(&net) {
            Ok(joined) => Some(joined),
            Err(reason) => {
                skip(results, backend, reason);
                None
            }
        })
        .collect()
}

/// `able` set to reach a vsock peer on the host for the vsock scenario (VM backends
/// only); a backend that cannot, or every backend when the peer cannot listen, is skipped
/// with the reason. The peer stops when the last backend set to reach it is dropped.
fn over_vsock(able: &[&dyn Backend], results: &mut Results) -> Vec<Box<dyn Backend>> {
    let skip = |results: &mut Results, backend: &dyn Backend, reason: String| {
        results.skipped.push(Skip {
            backend: backend.name().to_owned(),
            scenario: Some(Scenario::Vsock.name().to_owned()),
            reason,
        });
    };
    let peer = match crate::backend::hostnet::vsock::VsockPeer::start() {
        Ok(peer) => std::sync::Arc::new(peer),
        Err(e) => {
            let reason = format!("the vsock peer could not listen: {}", error_chain(&e));
            for &backend in able {
                skip(results, backend, reason.clone());
            }
            return Vec::new();
        }
    };
    able.iter()
        .filter_map(|&backend| match backend.over_vsock(&peer) {
            Ok(reaching) => Some(reaching),
            Err(reason) => {
                skip(results, backend, reason);
                None
            }
        })
        .collect()
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
            .chain(
                // How the startup floors were timed, so that `compare` shows a document
                // whose floors were timed otherwise.
                plan.steps
                    .iter()
                    .any(|s| s.scenario == Scenario::Startup)
                    .then(|| (goals::FLOOR.to_owned(), goals::FLOOR_SETTINGS.to_owned())),
            )
            .filter(|(_, s)| !s.is_empty())
            .collect(),
        scenarios: plan
            .steps
            .iter()
            .map(|s| PlannedScenario {
                name: s.scenario.name().to_owned(),
                workload: match s.scenario {
                    Scenario::Density if plan.command.is_empty() => plan.density.workload_args(),
                    Scenario::Interference => interference::workload_args(),
                    Scenario::Density => plan.command.clone(),
                    Scenario::Command => plan.command.clone(),
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
        stamping: plan
            .backends
            .iter()
            .map(|b| (b.name().to_owned(), b.stamping().describe().to_owned()))
            .collect(),
        pipe_stamp_delay_ms: crate::clock::pipe_stamp_delay_ms(50),
        max_time_s: plan.max_time.map(|t| t.as_secs_f64()),
        cpus: plan.cpus.clone(),
    }
}

/// The baseline backend: the one asked for, else native when it is in the plan, else the
/// first backend.
pub fn baseline(asked: Option<&str>, backends: &[&str]) -> String {
    reports::document::choose_baseline(asked, backends)
        .unwrap_or("native")
        .to_owned()
}

/// A density series on one backend.
fn run_density(
    backend: &dyn Backend,
    workload: &Path,
    command: &[String],
    options: &density::Options,
    progress: &dyn Progress,
    stop: &AtomicBool,
    results: &mut Results,
) {
    // The user's program when the run has one, else the built-in `alloc`.
    let args = match command {
        [] => options.workload_args(),
        line => line.to_vec(),
    };
    let series = density::run_with(
        backend,
        workload,
        args,
        options,
        &DensityProgress(progress),
        stop,
    );
    let raw_cost = backend.runs_programs().is_err();
    let figures = density::figures(&series);
    results
        .figures
        .extend(of_backend(&results.plan, backend, figures, raw_cost));
    if let (true, Some(reason)) = (series.failed, &series.stopped) {
        let name = Scenario::Density.name();
        let failure = failed(backend, name, series.reached, reason.clone());
        results.failures.push(failure);
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
            failures: vec![failed(
                backend,
                step.scenario.name(),
                0,
                format!("cannot make a scratch directory: {e}"),
            )],
            ..Default::default()
        },
    };
    progress.run_ended(outcome.failures.first().map(|f| f.reason.as_str()));
    results
        .figures
        .extend(of_backend(&results.plan, backend, outcome.figures, false));
    results.failures.extend(outcome.failures);
    results
        .skipped
        .extend(outcome.skipped.into_iter().map(|reason| Skip {
            backend: backend.name().to_owned(),
            scenario: Some("interference (limited neighbour)".to_owned()),
            reason,
        }));
}

/// How many runs of a backend, failing alike before any succeeded, stop it for the rest
/// of the plan.
const ALIKE_FAILURES: usize = 3;

/// Backends whose first runs all failed for one reason: such a failure is certain (a
/// runtime that refuses this host, say), so the backend is stopped and reported once
/// instead of failing every run of the plan the same way.
#[derive(Debug, Default)]
struct Stopped {
    /// Per backend: whether a run has succeeded, and the failures before one did.
    seen: BTreeMap<String, (bool, Vec<String>)>,
    /// The backends stopped, with the reason.
    stopped: BTreeMap<String, String>,
}

impl Stopped {
    fn is_stopped(&self, backend: &str) -> bool {
        self.stopped.contains_key(backend)
    }

    /// Notes a run's outcome; returns the skip to record when it stops the backend.
    fn note(&mut self, backend: &str, failure: Option<&str>) -> Option<Skip> {
        let (succeeded, failures) = self.seen.entry(backend.to_owned()).or_default();
        match failure {
            None => *succeeded = true,
            Some(_) if *succeeded => {}
            // A run past its time limit may have been only slow: not a certain failure.
            Some(reason) if reason.contains("timed out") => {}
            Some(reason) => failures.push(reason.to_owned()),
        }
        let alike = failures.len() >= ALIKE_FAILURES && failures.iter().all(|f| *f == failures[0]);
        if *succeeded || !alike || self.stopped.contains_key(backend) {
            return None;
        }
        let reason = failures[0].clone();
        self.stopped.insert(backend.to_owned(), reason.clone());
        Some(Skip {
            backend: backend.to_owned(),
            scenario: None,
            reason: format!(
                "stopped for the rest of the run: its first {} runs failed alike ({reason}){}",
                failures.len(),
                hint(&reason)
            ),
        })
    }
}

/// The fix for a failure a backend is known to have on some hosts, if one is known.
fn hint(reason: &str) -> &'static str {
    if reason.contains("hybrid mode not supported") {
        "; crun refuses hosts with both cgroup versions mounted: pass \
         --crun-hide-unified-cgroup to run it with the cgroup v2 tree hidden"
    } else {
        ""
    }
}

/// What every run of a repeated scenario shares.
struct Repeated<'a> {
    workload: &'a Path,
    /// The command scenario's workload line.
    command: &'a [String],
    /// When this scenario's share of the run's time budget is spent.
    deadline: Option<Instant>,
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
    mut floors: Option<&mut goals::Floors>,
    rng: &mut stats::Rng,
    host_answers: &mut Option<Result<Vec<workload::record::Fact>, String>>,
    stopped: &mut Stopped,
    results: &mut Results,
) {
    let step = context.step;
    let scenario = step.scenario;
    let launch = Launch {
        workload: context.workload.to_owned(),
        args: match scenario {
            Scenario::Command => context.command.to_vec(),
            _ => scenario.workload_args(),
        },
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
    // The floors take their turns in the schedule after the backends' indices.
    let floor_count = floors.as_ref().map_or(0, |f| f.count());
    let slots = order::schedule(
        backends.len() + floor_count,
        step.warmup,
        step.runs,
        context.order,
        rng,
    );
    let mut measured = vec![0u32; backends.len()];
    for slot in slots {
        if context.stop.load(Ordering::SeqCst) {
            break;
        }
        if let Some(floor) = slot.backend.checked_sub(backends.len()) {
            if let Some(floors) = floors.as_deref_mut() {
                floors.once(floor, slot.warmup);
            }
            continue;
        }
        if !probes[slot.backend] {
            continue;
        }
        // The time budget stops the measured runs once every backend that runs has
        // enough of them.
        let spent = context.deadline.is_some_and(|d| Instant::now() >= d);
        let enough = (0..backends.len()).all(|b| {
            !probes[b] || stopped.is_stopped(backends[b].name()) || measured[b] >= MIN_BUDGET_RUNS
        });
        if !slot.warmup && spent && enough {
            break;
        }
        if !slot.warmup {
            measured[slot.backend] += 1;
        }
        let backend = backends[slot.backend];
        if stopped.is_stopped(backend.name()) {
            continue;
        }
        let (shown, of) = match slot.warmup {
            true => (slot.index, step.warmup),
            false => (slot.index - step.warmup, step.runs),
        };
        context
            .progress
            .run_started(backend.name(), scenario.name(), shown + 1, of, slot.warmup);
        let outcome = measure::run_once(backend, &launch, step, context.stop);
        let mut failure = outcome.failure.clone();
        let values = figures::values(scenario, &outcome.observation);
        if failure.is_none() {
            failure = figures::check(&values).err();
        }
        context.progress.run_ended(failure.as_deref());
        results
            .skipped
            .extend(stopped.note(backend.name(), failure.as_deref()));
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
            // The probe's facts are the isolation matrix's; other workloads' describe the
            // kernel they ran on.
            facts: match scenario {
                Scenario::Isolation => BTreeMap::new(),
                _ => outcome
                    .observation
                    .facts
                    .iter()
                    .map(|f| (f.name.clone(), f.value.clone()))
                    .collect(),
            },
        });
        match failure {
            Some(reason) => {
                let failure = failed(backend, scenario.name(), slot.index, reason);
                results.failures.push(failure);
            }
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
            .extend(figures(&results.plan, *backend, scenario, g.samples));
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
                let figures = isolation::figures(&matrix);
                let figures = of_backend(&results.plan, backend, figures, false);
                results.figures.extend(figures);
                results.isolation.push(matrix);
            }
            Err(reason) => {
                let name = Scenario::Isolation.name();
                results
                    .failures
                    .push(failed(backend, name, 0, reason.clone()));
            }
        }
    }
    if context.stop.load(Ordering::SeqCst) {
        return;
    }
    let reachable = surface::reachable(backend);
    let figures = surface::reachable_figures(&reachable);
    results
        .figures
        .extend(of_backend(&results.plan, backend, figures, false));
    results.reachable.push(reachable);
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
                    Err(reason) => {
                        let name = "isolation (host surface)";
                        results.failures.push(failed(backend, name, 0, reason));
                    }
                }
            }
            let figures = surface::figures(&surfaces);
            let figures = of_backend(&results.plan, backend, figures, false);
            results.figures.extend(figures);
            results.surface.extend(surfaces);
        }
        Err(reason) => results.skipped.push(Skip {
            backend: backend.name().to_owned(),
            scenario: Some("isolation (host surface)".to_owned()),
            reason,
        }),
    }
}

/// `figures` of `backend`, each saying what ran: the backend's settings, as the plan
/// recorded them (asking the backend again can start a process, QEMU's version probe).
fn of_backend(
    plan: &results::Plan,
    backend: &dyn Backend,
    figures: Vec<Figure>,
    raw_cost: bool,
) -> Vec<Figure> {
    let variant = plan.settings.get(backend.name()).map_or("", String::as_str);
    figures
        .into_iter()
        .map(|f| f.ran(variant, raw_cost))
        .collect()
}

/// A failure of `backend` in `scenario`.
fn failed(backend: &dyn Backend, scenario: &str, index: u32, reason: String) -> Failure {
    Failure {
        backend: backend.name().to_owned(),
        scenario: scenario.to_owned(),
        index,
        reason,
    }
}

/// Hands everything so far, marked incomplete, to the progress's checkpoint.
fn checkpoint(results: &mut Results, progress: &dyn Progress) {
    results.complete = false;
    results.finished_at = results::now_rfc3339();
    progress.checkpoint(results);
    results.complete = true;
}

/// Figures from the samples of one backend × scenario: distributions, each saying what
/// ran (the backend's settings) and which clock timed it. A micro guest's figures, and the
/// exits guest's on any backend, are the hypervisor's raw costs.
fn figures(
    plan: &results::Plan,
    backend: &dyn Backend,
    scenario: Scenario,
    samples: Vec<(Value, Vec<f64>)>,
) -> Vec<Figure> {
    let raw_cost = scenario == Scenario::Exits || backend.runs_programs().is_err();
    let figures: Vec<Figure> = samples
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
            .map(|f| f.timed_by(value.clock))
        })
        .collect();
    // A warm start ran on what the backend prepared for it, set up apart from the plan's
    // backend: its own settings say what was measured.
    if scenario == Scenario::Warm {
        let variant = backend.settings();
        return figures
            .into_iter()
            .map(|f| f.ran(&variant, raw_cost))
            .collect();
    }
    of_backend(plan, backend, figures, raw_cost)
}

#[cfg(test)]
mod tests {
    //! The runner with fake backends: instances whose records, phases and failures are
    //! scripted, so the order of runs, interruption and the figures can be checked
    //! without starting anything.

    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use workload::record::{Metric, Record};

    use super::*;
    use crate::backend::{Error, Event, Exit, Instance};
    use crate::clock::Stamp;
    use crate::results::Kind;

    /// What every fake backend of a test shares: the order instances were launched in,
    /// and a stop flag raised after a number of launches.
    #[derive(Default)]
    struct Script {
        launched: Mutex<Vec<&'static str>>,
        launches: AtomicUsize,
        stop_after: Option<usize>,
        stop: Arc<AtomicBool>,
    }

    struct Fake {
        name: &'static str,
        /// Launch to the workload's first record.
        start_ms: f64,
        /// A micro guest: runs no program.
        micro: bool,
        /// Launches (counted from 1) whose instance exits with status 1.
        failing: Vec<usize>,
        script: Arc<Script>,
    }

    impl Backend for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn describe(&self) -> &'static str {
            "a scripted backend"
        }
        fn availability(&self) -> Availability {
            Availability::Available
        }
        fn settings(&self) -> String {
            if self.micro {
                "micro guests".to_owned()
            } else {
                String::new()
            }
        }
        fn runs_programs(&self) -> Result<(), String> {
            match self.micro {
                true => Err("micro guests run no program".to_owned()),
                false => Ok(()),
            }
        }
        fn launch(&self, _: &Launch) -> Result<Box<dyn Instance>, Error> {
            let n = self.script.launches.fetch_add(1, Ordering::SeqCst) + 1;
            self.script.launched.lock().unwrap().push(self.name);
            if self.script.stop_after.is_some_and(|after| n > after) {
                self.script.stop.store(true, Ordering::SeqCst);
            }
            Ok(Box::new(FakeInstance {
                created: Stamp::now(),
                start_ms: self.start_ms,
                events: 0,
                status: i32::from(self.failing.contains(&n)),
            }))
        }
    }

    struct FakeInstance {
        created: Stamp,
        start_ms: f64,
        events: u32,
        status: i32,
    }

    impl FakeInstance {
        fn at(&self, ms: f64) -> Stamp {
            // Whole nanoseconds of a few milliseconds: exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Stamp(self.created.0 + (ms * 1e6) as u64)
        }
    }

    impl Instance for FakeInstance {
        fn pids(&self) -> Vec<u32> {
            Vec::new()
        }
        fn next_event(&mut self, _: Instant) -> Result<Option<Event>, Error> {
            self.events += 1;
            let workload = "hello".to_owned();
            Ok(Some(match self.events {
                1 => Event::Record {
                    record: Record::Started {
                        workload,
                        pid: 1,
                        pid1: true,
                    },
                    at: self.at(self.start_ms),
                },
                2 => Event::Record {
                    record: Record::Result {
                        workload,
                        metrics: vec![Metric::new("vm_hwm_kib", 1024.0, "KiB")],
                        facts: Vec::new(),
                    },
                    at: self.at(self.start_ms + 0.1),
                },
                _ => Event::Closed {
                    at: self.at(self.start_ms + 0.2),
                },
            }))
        }
        fn release(&mut self) {}
        fn wait(&mut self, _: Instant) -> Result<Exit, Error> {
            Ok(Exit {
                status: self.status,
                at: self.at(self.start_ms + 0.3),
                maxrss_kib: None,
                timed_out: false,
            })
        }
        fn diagnostics(&mut self) -> String {
            String::new()
        }
        fn phases(&mut self) -> Vec<(String, Stamp)> {
            vec![("cloned".to_owned(), self.at(self.start_ms / 2.0))]
        }
        fn teardown(self: Box<Self>) {}
    }

    fn fake(name: &'static str, start_ms: f64, script: &Arc<Script>) -> Box<dyn Backend> {
        Box::new(Fake {
            name,
            start_ms,
            micro: false,
            failing: Vec::new(),
            script: Arc::clone(script),
        })
    }

    fn plan(backends: Vec<Box<dyn Backend>>, runs: u32, warmup: u32, order: Order) -> Plan {
        Plan {
            backends,
            steps: vec![Step::new(
                Scenario::Startup,
                Some(runs),
                Some(warmup),
                Some(Duration::from_secs(5)),
            )],
            density: density::Options {
                instances: vec![1],
                parallel: 1,
                hold_mib: 1,
                floor_kib: 0,
                timeout: Duration::from_secs(5),
            },
            order,
            seed: 11,
            baseline: None,
            command: Vec::new(),
            max_time: None,
            cpus: None,
        }
    }

    fn execute_plan(plan: &Plan, script: &Script) -> Results {
        execute(
            plan,
            Path::new("/nonexistent/workload"),
            crate::host::detect(),
            &Silent,
            &script.stop,
        )
    }

    #[test]
    fn runs_alternate_between_backends_in_shuffled_rounds() {
        let script = Arc::new(Script::default());
        let backends = vec![
            fake("native", 1.0, &script),
            fake("container", 2.0, &script),
        ];
        let plan = plan(backends, 10, 1, Order::Interleaved);
        let results = execute_plan(&plan, &script);
        let launched = script.launched.lock().unwrap().clone();
        assert_eq!(launched.len(), 22);
        // Each backend's warmup first, then rounds of one run of each.
        assert_eq!(launched[..2], ["native", "container"]);
        for round in launched[2..].chunks(2) {
            assert!(
                round.contains(&"native") && round.contains(&"container"),
                "{launched:?}"
            );
        }
        // The shuffle lets either go first.
        assert!(launched[2..].chunks(2).any(|r| r[0] == "native"));
        assert!(launched[2..].chunks(2).any(|r| r[0] == "container"));
        // The results' runs are in the order they ran, and the plan says how.
        let backends: Vec<&str> = results.runs.iter().map(|r| r.backend.as_str()).collect();
        assert_eq!(backends, launched);
        assert_eq!(results.plan.order, "interleaved");
        assert_eq!(results.plan.seed, 11);
        assert_eq!(results.plan.baseline.as_deref(), Some("native"));
        assert!(results.complete);
    }

    #[test]
    fn blocked_order_runs_one_backend_after_the_other() {
        let script = Arc::new(Script::default());
        let backends = vec![
            fake("native", 1.0, &script),
            fake("container", 2.0, &script),
        ];
        execute_plan(&plan(backends, 3, 1, Order::Blocked), &script);
        let launched = script.launched.lock().unwrap().clone();
        assert_eq!(
            launched,
            [
                "native",
                "native",
                "native",
                "native",
                "container",
                "container",
                "container",
                "container"
            ]
        );
    }

    #[test]
    fn every_figure_has_an_interval_and_ratios_pair_like_figures() {
        let script = Arc::new(Script::default());
        let micro = Box::new(Fake {
            name: "microvm",
            start_ms: 0.5,
            micro: true,
            failing: Vec::new(),
            script: Arc::clone(&script),
        });
        let backends = vec![
            fake("native", 1.0, &script),
            fake("container", 2.0, &script),
            micro,
        ];
        let results = execute_plan(&plan(backends, 8, 0, Order::Interleaved), &script);
        for f in &results.figures {
            assert_eq!(
                f.kind == Kind::Value,
                f.variant.starts_with("goal:"),
                "{f:?}"
            );
            assert!(f.summary.ci.is_some(), "{f:?}");
        }
        // The floors were timed in the same rounds, as many times as each backend started
        // (their runs are not the backends'), and the container's start set against
        // native's: 2 ms against 1.
        let spawn = results.figure("floor", "startup", "spawn_exec").unwrap();
        assert_eq!(spawn.samples.len(), 8);
        assert!(results.runs.iter().all(|r| r.backend != "floor"));
        assert_eq!(results.runs.len(), 3 * 8);
        let over = results
            .figure("container", "startup", "over_native")
            .unwrap();
        assert!((over.summary.median - 1.0).abs() < 0.1, "{over:?}");
        let start = |b| results.figure(b, "startup", "time_to_start").unwrap();
        assert_eq!(start("native").clock, Some(crate::results::Clock::Host));
        let ratio = start("container").vs_baseline.as_ref().unwrap();
        assert_eq!(ratio.baseline, "native");
        // Twice native's start, up to the microseconds between launch and the fake's
        // clock: an interval around 2 that excludes 1.
        assert!((ratio.estimate.value - 2.0).abs() < 0.1, "{ratio:?}");
        assert!(ratio.differs());
        // The micro guest's figures are raw costs: no ratio against a process.
        let micro = start("microvm");
        assert!(micro.raw_cost);
        assert!(micro.vs_baseline.is_none());
        assert_eq!(micro.variant, "micro guests");
        // Where startup goes: each run's own stage durations, the clone at half the start.
        let stages = reports::phases::stages(&results);
        let (_, container) = stages.iter().find(|(b, _)| b == "container").unwrap();
        let ms: Vec<(&str, f64)> = container
            .iter()
            .map(|p| (p.stage.label(), (p.ms * 10.0).round() / 10.0))
            .collect();
        assert_eq!(
            ms,
            [
                ("namespaces (clone, uid maps)", 1.0),
                ("to the workload's first record", 1.0)
            ]
        );
    }

    #[test]
    fn a_backend_whose_first_runs_fail_alike_is_stopped_and_reported_once() {
        let script = Arc::new(Script::default());
        let refusing = Box::new(Fake {
            name: "crun",
            start_ms: 1.0,
            micro: false,
            failing: (1..=1000).collect(),
            script: Arc::clone(&script),
        });
        let mut plan = plan(
            vec![fake("native", 1.0, &script), refusing],
            5,
            1,
            Order::Interleaved,
        );
        let second = Step::new(Scenario::Syscall, Some(5), Some(1), None);
        plan.steps.push(second);
        let results = execute_plan(&plan, &script);
        let launched = script.launched.lock().unwrap().clone();
        let of = |name| launched.iter().filter(|b| **b == name).count();
        assert_eq!(of("crun"), ALIKE_FAILURES, "{launched:?}");
        assert_eq!(of("native"), 12, "{launched:?}");
        let skips: Vec<&Skip> = results
            .skipped
            .iter()
            .filter(|s| s.backend == "crun")
            .collect();
        assert_eq!(skips.len(), 1, "{skips:?}");
        assert_eq!(skips[0].scenario, None);
        assert!(
            skips[0].reason.starts_with(
                "stopped for the rest of the run: its first 3 runs failed alike (exited with status 1"
            ),
            "{}",
            skips[0].reason
        );
        assert_eq!(results.failures.len(), ALIKE_FAILURES);
    }

    #[test]
    fn a_backend_that_once_succeeded_is_never_stopped() {
        let mut stopped = Stopped::default();
        assert!(stopped.note("runc", None).is_none());
        for _ in 0..10 {
            assert!(stopped.note("runc", Some("timed out")).is_none());
        }
        assert!(!stopped.is_stopped("runc"));
        // Failures that differ are not certain either.
        for reason in ["a", "b", "a", "c"] {
            assert!(stopped.note("crun", Some(reason)).is_none());
        }
        assert!(!stopped.is_stopped("crun"));
        // Nor are timeouts: the instance may have been only slow.
        for _ in 0..5 {
            assert!(stopped
                .note("qemu", Some("timed out after 5.0 s"))
                .is_none());
        }
        let hybrid = "exited with status 1; cgroups in hybrid mode not supported";
        let mut stopped = Stopped::default();
        let skips: Vec<Skip> = (0..5)
            .filter_map(|_| stopped.note("crun", Some(hybrid)))
            .collect();
        assert_eq!(skips.len(), 1);
        assert!(skips[0].reason.contains("--crun-hide-unified-cgroup"));
    }

    #[test]
    fn an_interrupted_run_keeps_the_figures_of_the_runs_it_completed() {
        let script = Arc::new(Script {
            stop_after: Some(7),
            ..Script::default()
        });
        let backends = vec![
            fake("native", 1.0, &script),
            fake("container", 2.0, &script),
        ];
        let results = execute_plan(&plan(backends, 10, 1, Order::Interleaved), &script);
        assert!(!results.complete);
        // Launch 8 saw the stop and was cut short; nothing started after it.
        assert_eq!(script.launched.lock().unwrap().len(), 8);
        let measured: usize = results
            .figures
            .iter()
            .filter(|f| f.metric == "time_to_start")
            .map(|f| f.summary.n)
            .sum();
        // Two warmups and five measured runs completed.
        assert_eq!(measured, 5);
        assert_eq!(results.failures.len(), 1);
        assert_eq!(results.failures[0].reason, "interrupted");
    }

    #[test]
    fn a_failed_run_is_recorded_and_leaves_the_others_figures() {
        let script = Arc::new(Script::default());
        let failing = Box::new(Fake {
            name: "container",
            start_ms: 2.0,
            micro: false,
            // The container's second run (launches are counted over every backend).
            failing: vec![6],
            script: Arc::clone(&script),
        });
        let backends = vec![fake("native", 1.0, &script), failing];
        let results = execute_plan(&plan(backends, 4, 0, Order::Blocked), &script);
        assert_eq!(results.failures.len(), 1);
        assert_eq!(results.failures[0].backend, "container");
        assert_eq!(results.failures[0].index, 1);
        assert_eq!(results.failures[0].reason, "exited with status 1");
        let n = |b| {
            results
                .figure(b, "startup", "time_to_start")
                .unwrap()
                .summary
                .n
        };
        assert_eq!((n("native"), n("container")), (4, 3));
    }

    #[test]
    fn the_baseline_is_the_one_asked_for_else_native_else_the_first() {
        assert_eq!(baseline(Some("runc"), &["native", "runc"]), "runc");
        assert_eq!(baseline(None, &["container", "native"]), "native");
        assert_eq!(baseline(None, &["container", "microvm"]), "container");
    }
}
