//! The noisy-neighbour scenario: a victim workload alone, then beside a neighbour instance
//! of the same backend running a stressor, then beside the same neighbour held by the
//! backend's limits. The victim's slowdown is its figure against its own median alone.
//!
//! Pairs: `cpu` beside a CPU spin, `mem` beside a memory-bandwidth hog, `syscall` beside a
//! fork storm, `file` beside a writer of fsync'ed files. The neighbour is started before the victim's
//! runs and stopped after them; its limits are half of one CPU and 256 MiB.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::backend::{error_chain, Backend, Event, Instance, Launch};
use crate::measure::run_once;
use crate::results::{Better, Failure, Figure};
use crate::scenario::{Run as _, Scenario, Step};

/// The neighbour's CPU limit, percent of one CPU.
pub const NEIGHBOUR_CPU_PERCENT: u32 = 50;
/// The neighbour's memory limit, MiB.
pub const NEIGHBOUR_MEMORY_MIB: u64 = 256;

/// A victim and the stressor beside it.
struct Pair {
    victim: Scenario,
    stressor: &'static str,
    /// The neighbour's workload: long enough to outlast the victim's runs.
    args: &'static [&'static str],
}

const PAIRS: [Pair; 4] = [
    Pair {
        victim: Scenario::Cpu,
        stressor: "cpu_spin",
        args: &["cpu", "--mib", "100000000"],
    },
    Pair {
        victim: Scenario::Mem,
        stressor: "memory_bandwidth",
        args: &["mem", "--mib", "64", "--iterations", "100000000"],
    },
    Pair {
        victim: Scenario::Syscall,
        stressor: "fork_storm",
        args: &["fork", "--count", "100000000000"],
    },
    Pair {
        victim: Scenario::File,
        stressor: "file_churn",
        args: &["file", "--count", "100000000000", "--size", "65536"],
    },
];

/// The workload command lines, for the results' plan.
pub fn workload_args() -> Vec<String> {
    PAIRS
        .iter()
        .map(|p| format!("{} beside {}", p.victim.name(), p.args.join(" ")))
        .collect()
}

/// What the scenario gave for one backend.
#[derive(Default)]
pub struct Outcome {
    /// Slowdown figures.
    pub figures: Vec<Figure>,
    /// Runs or neighbours that failed.
    pub failures: Vec<Failure>,
    /// Variants that could not run here, with why.
    pub skipped: Vec<String>,
}

/// Runs every pair on `backend`, `runs` victim runs per variant.
pub fn run(
    backend: &dyn Backend,
    workload: &Path,
    step: &Step,
    scratch: &Path,
    stop: &AtomicBool,
) -> Outcome {
    let mut outcome = Outcome::default();
    let limited = backend.limited(NEIGHBOUR_CPU_PERCENT, NEIGHBOUR_MEMORY_MIB);
    if limited.is_none() {
        outcome.skipped.push(format!(
            "{} has no limits to hold a neighbour to, so only the unlimited variant runs",
            backend.name()
        ));
    }
    for pair in &PAIRS {
        if backend.supports(pair.victim).is_err() {
            continue;
        }
        let victim = Launch {
            workload: workload.to_owned(),
            args: pair.victim.workload_args(),
        };
        let victim_step = Step {
            scenario: pair.victim,
            ..step.clone()
        };
        let alone = victim_values(backend, &victim, &victim_step, stop, &mut outcome);
        let Some((metric, better, alone_median)) = alone else {
            continue;
        };
        let mut neighbour_args: Vec<String> = pair.args.iter().map(|s| (*s).to_owned()).collect();
        if backend.name() == "native" && pair.victim == Scenario::File {
            // A killed native neighbour cannot clean its scratch files: they go where
            // the runner removes them.
            neighbour_args.extend(["--dir".to_owned(), scratch.display().to_string()]);
        }
        let neighbour = Launch {
            workload: workload.to_owned(),
            args: neighbour_args,
        };
        let variants: [(&dyn Backend, &str); 2] = [
            (backend, ""),
            (limited.as_deref().unwrap_or(backend), "_limited"),
        ];
        for (neighbour_backend, suffix) in variants {
            if suffix == "_limited" && limited.is_none() {
                continue;
            }
            if stop.load(Ordering::SeqCst) {
                return outcome;
            }
            let mut instance = match start_neighbour(neighbour_backend, &neighbour) {
                Ok(i) => i,
                Err(reason) => {
                    outcome.failures.push(failure(backend, pair, &reason));
                    continue;
                }
            };
            let beside = victim_samples(
                backend,
                &victim,
                &victim_step,
                instance.as_ref(),
                stop,
                &mut outcome,
            );
            instance.release();
            drop(instance.wait(Instant::now() + Duration::from_secs(2)));
            instance.teardown();
            let slowdown: Vec<f64> = beside
                .iter()
                .filter(|v| **v > 0.0)
                .map(|v| match better {
                    Better::Lower => v / alone_median,
                    Better::Higher => alone_median / v,
                })
                .collect();
            outcome.figures.extend(Figure::distribution(
                backend.name(),
                "interference",
                &format!(
                    "{}_{metric}_beside_{}{suffix}",
                    pair.victim.name(),
                    pair.stressor
                ),
                "x",
                Better::Lower,
                slowdown,
            ));
        }
    }
    outcome
}

fn failure(backend: &dyn Backend, pair: &Pair, reason: &str) -> Failure {
    Failure {
        backend: backend.name().to_owned(),
        scenario: "interference".to_owned(),
        index: 0,
        reason: format!("{} beside {}: {reason}", pair.victim.name(), pair.stressor),
    }
}

/// The victim's first figure over its runs alone: its metric, direction and median.
fn victim_values(
    backend: &dyn Backend,
    victim: &Launch,
    step: &Step,
    stop: &AtomicBool,
    outcome: &mut Outcome,
) -> Option<(String, Better, f64)> {
    let mut metric = None;
    let mut samples = Vec::new();
    for _ in 0..step.runs {
        let run = run_once(backend, victim, step, stop);
        if let Some(reason) = run.failure {
            outcome.failures.push(Failure {
                backend: backend.name().to_owned(),
                scenario: "interference".to_owned(),
                index: 0,
                reason: format!("{} alone: {reason}", step.scenario.name()),
            });
            continue;
        }
        if let Some(value) = crate::figures::values(step.scenario, &run.observation)
            .into_iter()
            .next()
        {
            metric.get_or_insert((value.metric.clone(), value.better));
            samples.push(value.value);
        }
    }
    let (name, better) = metric?;
    Some((name, better, stats::median(&samples)?))
}

/// The least CPU time the neighbour must use beside the victim, as a share of the victim
/// runs' wall time, to count as busy beside it. A spinning or forking neighbour uses
/// nearly a whole CPU (half when limited); a writer of fsync'ed files waits on the disk,
/// but still far more than this.
pub const NEIGHBOUR_BUSY_SHARE: f64 = 0.01;

/// Why a victim run does not count when the neighbour's processes were gone after it.
pub const NEIGHBOUR_GONE: &str = "the neighbour had exited: the victim ran beside nothing";

/// Why the neighbour was not working beside the victim, if it was not: it used (almost)
/// no CPU, `cpu_ns` over the victim runs' `wall_ns`. The share is taken over the
/// whole series, never one run: a neighbour held to half a CPU spends its quota and then
/// waits out the rest of each 100 ms period, so a victim run shorter than that can fall
/// wholly in the wait, and the limit working would read as an idle neighbour.
pub fn neighbour_idle(cpu_ns: u64, wall_ns: u64) -> Option<String> {
    #[allow(
        clippy::cast_precision_loss,
        reason = "nanoseconds of a run, far below 2^52"
    )]
    let share = cpu_ns as f64 / wall_ns.max(1) as f64;
    if share < NEIGHBOUR_BUSY_SHARE {
        Some(format!(
            "the neighbour was not busy while the victim ran (it used {:.2}% of a CPU over \
             the victim's runs, under {:.0}%): the slowdown would be measured beside an idle \
             neighbour",
            share * 100.0,
            NEIGHBOUR_BUSY_SHARE * 100.0
        ))
    } else {
        None
    }
}

/// The victim's first figure over its runs, beside a neighbour. A run counts only when
/// the neighbour was alive after it, and the series only when the neighbour used CPU time
/// while the victim ran (`neighbour_idle`); otherwise each run fails with the reason.
fn victim_samples(
    backend: &dyn Backend,
    victim: &Launch,
    step: &Step,
    neighbour: &dyn Instance,
    stop: &AtomicBool,
    outcome: &mut Outcome,
) -> Vec<f64> {
    let fail = |outcome: &mut Outcome, reason: String| {
        outcome.failures.push(Failure {
            backend: backend.name().to_owned(),
            scenario: "interference".to_owned(),
            index: 0,
            reason: format!("{} beside a neighbour: {reason}", step.scenario.name()),
        });
    };
    let mut samples = Vec::new();
    let (mut used, mut wall) = (0u64, 0u64);
    for _ in 0..step.runs {
        let pids = neighbour.pids();
        let before = crate::procfs::cpu_ns(&pids);
        let started = Instant::now();
        let run = run_once(backend, victim, step, stop);
        wall = wall.saturating_add(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        let alive = !pids.is_empty()
            && pids
                .iter()
                .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        used = used.saturating_add(crate::procfs::cpu_ns(&pids).saturating_sub(before));
        let failure = run
            .failure
            .or_else(|| (!alive).then(|| NEIGHBOUR_GONE.to_owned()));
        match failure {
            Some(reason) => fail(outcome, reason),
            None => samples.extend(
                crate::figures::values(step.scenario, &run.observation)
                    .into_iter()
                    .next()
                    .map(|v| v.value),
            ),
        }
    }
    if !samples.is_empty() {
        if let Some(reason) = neighbour_idle(used, wall) {
            for _ in samples.drain(..) {
                fail(outcome, reason.clone());
            }
        }
    }
    samples
}

/// Starts the neighbour and waits until its workload has started its work.
fn start_neighbour(backend: &dyn Backend, launch: &Launch) -> Result<Box<dyn Instance>, String> {
    let mut instance = crate::backend::launch(backend, launch).map_err(|e| error_chain(&e))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match instance.next_event(deadline) {
            Ok(Some(Event::Record { record, .. })) => {
                if matches!(record, workload::record::Record::Started { .. }) {
                    return Ok(instance);
                }
            }
            Ok(Some(Event::Closed { .. })) | Ok(None) | Err(_) => {
                let why = instance.diagnostics();
                drop(instance.wait(Instant::now()));
                instance.teardown();
                return Err(format!("the neighbour did not start: {why}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command};

    use workload::record::{Metric, Record};

    use super::*;
    use crate::backend::{Availability, Error, Exit};
    use crate::clock::Stamp;

    /// A backend whose victims are scripted (a CPU figure after 50 ms) and whose
    /// neighbour is a real host process: a shell spinning, or one asleep.
    struct Scripted {
        neighbour: &'static str,
    }

    impl Backend for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn describe(&self) -> &'static str {
            "scripted victims beside a real neighbour process"
        }
        fn availability(&self) -> Availability {
            Availability::Available
        }
        fn supports(&self, scenario: Scenario) -> Result<(), String> {
            match scenario {
                Scenario::Cpu => Ok(()),
                _ => Err("only the cpu victim".to_owned()),
            }
        }
        fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
            // The neighbour's workload is the long one.
            let neighbour = launch.args.iter().any(|a| a == "100000000");
            let child = match neighbour {
                true => Some(
                    Command::new("sh")
                        .args(["-c", self.neighbour])
                        .spawn()
                        .map_err(|source| Error::Spawn {
                            what: "sh".to_owned(),
                            source,
                        })?,
                ),
                false => None,
            };
            if child.is_some() {
                // Past the shell's start and exec: an idle neighbour is idle from here.
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(Box::new(ScriptedInstance { child, events: 0 }))
        }
    }

    struct ScriptedInstance {
        child: Option<Child>,
        events: u32,
    }

    impl Instance for ScriptedInstance {
        fn pids(&self) -> Vec<u32> {
            self.child.iter().map(Child::id).collect()
        }
        fn next_event(&mut self, _: Instant) -> Result<Option<Event>, Error> {
            self.events += 1;
            let workload = "cpu".to_owned();
            let at = Stamp::now();
            Ok(Some(match self.events {
                1 => Event::Record {
                    record: Record::Started {
                        workload,
                        pid: 1,
                        pid1: false,
                    },
                    at,
                },
                2 => {
                    std::thread::sleep(Duration::from_millis(50));
                    Event::Record {
                        record: Record::Result {
                            workload,
                            metrics: vec![Metric::new("throughput", 100.0, "MiB/s")],
                            facts: Vec::new(),
                        },
                        at: Stamp::now(),
                    }
                }
                _ => Event::Closed { at },
            }))
        }
        fn release(&mut self) {
            if let Some(child) = &mut self.child {
                let _ = child.kill();
            }
        }
        fn wait(&mut self, _: Instant) -> Result<Exit, Error> {
            self.release();
            if let Some(child) = &mut self.child {
                let _ = child.wait();
            }
            Ok(Exit::now(0))
        }
        fn diagnostics(&mut self) -> String {
            String::new()
        }
        fn teardown(self: Box<Self>) {}
    }

    fn beside(neighbour: &'static str) -> Outcome {
        let scratch = tempfile::tempdir().unwrap();
        let step = Step::new(
            Scenario::Cpu,
            Some(3),
            Some(0),
            Some(Duration::from_secs(10)),
        );
        run(
            &Scripted { neighbour },
            Path::new("/nonexistent/workload"),
            &step,
            scratch.path(),
            &AtomicBool::new(false),
        )
    }

    #[test]
    fn a_busy_neighbour_gives_a_figure_and_an_idle_one_fails_each_run() {
        let busy = beside("while :; do :; done");
        assert!(busy.failures.is_empty(), "{:?}", busy.failures);
        let figure = &busy.figures[0];
        assert_eq!(figure.metric, "cpu_throughput_beside_cpu_spin");
        assert_eq!(figure.samples.len(), 3);

        let idle = beside("exec sleep 60");
        assert!(idle.figures.is_empty(), "{:?}", idle.figures);
        assert_eq!(idle.failures.len(), 3, "{:?}", idle.failures);
        assert!(
            idle.failures
                .iter()
                .all(|f| f.reason.contains("the neighbour was not busy")),
            "{:?}",
            idle.failures
        );
    }

    #[test]
    fn a_victim_series_counts_only_beside_a_busy_neighbour() {
        use super::neighbour_idle;
        // 80 ms of CPU in 100 ms of victim runs: busy.
        assert_eq!(neighbour_idle(80_000_000, 100_000_000), None);
        // A neighbour held to half a CPU, waiting out its period through one 40 ms run
        // and spending its 50 ms quota over the next two: busy over the series.
        assert_eq!(neighbour_idle(50_000_000, 120_000_000), None);
        let idle = neighbour_idle(100_000, 100_000_000).unwrap();
        assert!(
            idle.contains("not busy") && idle.contains("0.10% of a CPU"),
            "{idle}"
        );
    }
}
