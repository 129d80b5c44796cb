//! The startup scenario's floors and goals, as figures of the run that measured the
//! starts: each [`floor`](crate::floor) timed as backend `floor` (metrics `spawn_exec`,
//! `namespaces_exec`, `kvm_first_exit`, ms) in the same rounds as the backends' starts
//! ([`Floors`]), then the starts set against them:
//!
//! - `container startup over_native`: the container's median `time_to_start` minus
//!   native's (ms), with a bootstrap interval; the goal is at most [`CONTAINER_GOAL_MS`];
//! - `microvm startup over_kvm_floor`: the micro VM's median `time_to_start` over the raw
//!   KVM floor's (a ratio), with a bootstrap interval; the goal is at most
//!   [`MICROVM_GOAL_RATIO`].
//!
//! Each goal figure is one derived value (kind `value`) whose summary carries the
//! interval, and whose variant names the goal.

use crate::floor::{self, Floor};
use crate::results::{Better, Clock, Figure, Results, Skip};
use crate::scenario::Scenario;

/// The backend name the floors are recorded under.
pub const FLOOR: &str = "floor";

/// How the floors are timed, as the results' plan records it under backend [`FLOOR`].
pub const FLOOR_SETTINGS: &str = "one sample of each floor per round of the backends' starts";

/// The container's goal: its start within this much of native's, ms.
pub const CONTAINER_GOAL_MS: f64 = 1.5;

/// The micro VM's goal: launch to its first marker within this many times the raw KVM
/// floor.
pub const MICROVM_GOAL_RATIO: f64 = 2.0;

/// The startup scenario's floors, timed one sample at a time in the rounds of the
/// backends' starts (see [`crate::order`]), so that the floors and the starts set
/// against them ran under the same conditions: the same drift, and the same mix of work
/// just before. (Timed back to back, a floor runs warm, its code and the kernel's paths
/// fresh from the sample before, while each start follows another backend's.)
#[derive(Debug)]
pub struct Floors {
    /// Holds the smallest program while the floors are timed.
    _dir: Option<tempfile::TempDir>,
    sampler: floor::Sampler,
}

impl Floors {
    /// Writes the smallest program and readies every floor; one that cannot run here
    /// will be a skip with its reason.
    pub fn prepare() -> Self {
        match tempfile::Builder::new()
            .prefix(&crate::registry::temp_prefix("floor"))
            .tempdir()
        {
            Ok(dir) => Floors {
                sampler: floor::Sampler::new(dir.path()),
                _dir: Some(dir),
            },
            Err(e) => Floors {
                sampler: floor::Sampler::unable(&format!(
                    "no temporary directory for the smallest program: {e}"
                )),
                _dir: None,
            },
        }
    }

    /// How many floors take part in the schedule.
    pub fn count(&self) -> usize {
        Floor::ALL.len()
    }

    /// Times the floor at `index` once (see [`floor::Sampler::once`]).
    pub fn once(&mut self, index: usize, warmup: bool) {
        self.sampler.once(index, warmup);
    }

    /// Adds every floor's figure (or a skip with its reason) and the goals' figures to
    /// `results`.
    pub fn add(self, seed: u64, results: &mut Results) {
        let scenario = Scenario::Startup.name();
        for m in self.sampler.finish() {
            match m.samples {
                Ok(samples) => results.figures.extend(
                    Figure::distribution(
                        FLOOR,
                        scenario,
                        m.floor.metric(),
                        "ms",
                        Better::Lower,
                        samples,
                    )
                    .map(|f| f.timed_by(Some(Clock::Host))),
                ),
                Err(reason) => results.skipped.push(Skip {
                    backend: FLOOR.to_owned(),
                    scenario: Some(scenario.to_owned()),
                    reason: format!("{}: {reason}", m.floor.metric()),
                }),
            }
        }
        let goals = goals(&results.figures, seed);
        results.figures.extend(goals);
    }
}

/// The samples of `backend`'s startup figure `metric`, when the run has it.
fn samples<'a>(figures: &'a [Figure], backend: &str, metric: &str) -> Option<&'a [f64]> {
    figures
        .iter()
        .find(|f| {
            f.backend == backend
                && f.scenario == Scenario::Startup.name()
                && f.metric == metric
                && f.samples.len() > 1
        })
        .map(|f| f.samples.as_slice())
}

/// The goal figures the startup figures in `figures` allow.
pub fn goals(figures: &[Figure], seed: u64) -> Vec<Figure> {
    let start = "time_to_start";
    let mut goals = Vec::new();
    if let (Some(native), Some(container)) = (
        samples(figures, "native", start),
        samples(figures, "container", start),
    ) {
        let difference = stats::difference_of_medians(
            native,
            container,
            stats::LEVEL,
            stats::DEFAULT_RESAMPLES,
            seed,
        );
        if let Some(estimate) = difference {
            goals.extend(derived(
                "container",
                "over_native",
                "ms",
                estimate,
                CONTAINER_GOAL_MS,
                false,
            ));
        }
    }
    if let (Some(kvm), Some(microvm)) = (
        samples(figures, FLOOR, Floor::Kvm.metric()),
        samples(figures, "microvm", start),
    ) {
        if let Some(estimate) =
            stats::ratio_of_medians(kvm, microvm, stats::LEVEL, stats::DEFAULT_RESAMPLES, seed)
        {
            goals.extend(derived(
                "microvm",
                "over_kvm_floor",
                "x",
                estimate,
                MICROVM_GOAL_RATIO,
                true,
            ));
        }
    }
    goals
}

/// A derived figure: one value with its bootstrap interval, held to be at most `at_most`
/// (which its variant names: `goal: at most 1.5 ms`, `goal: at most 2x`).
fn derived(
    backend: &str,
    metric: &str,
    unit: &str,
    estimate: stats::Estimate,
    at_most: f64,
    raw_cost: bool,
) -> Option<Figure> {
    let goal = match unit {
        "x" => format!("goal: at most {at_most}x"),
        _ => format!("goal: at most {at_most} {unit}"),
    };
    let mut figure = Figure::value(
        backend,
        Scenario::Startup.name(),
        metric,
        unit,
        Better::Lower,
        estimate.value,
    )?
    .timed_by(Some(Clock::Host))
    .ran(&goal, raw_cost)
    .held_to(at_most);
    figure.summary.ci = Some(estimate.ci);
    Some(figure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(backend: &str, metric: &str, samples: Vec<f64>) -> Figure {
        Figure::distribution(backend, "startup", metric, "ms", Better::Lower, samples).unwrap()
    }

    #[test]
    fn the_goals_are_derived_from_the_runs_figures() {
        let n = |base: f64| (0..20).map(|i| base + 0.001 * f64::from(i)).collect();
        let figures = vec![
            figure("native", "time_to_start", n(1.0)),
            figure("container", "time_to_start", n(2.2)),
            figure("microvm", "time_to_start", n(2.4)),
            figure(FLOOR, "kvm_first_exit", n(0.6)),
        ];
        let goals = goals(&figures, 1);
        assert_eq!(goals.len(), 2);
        let over_native = &goals[0];
        assert_eq!(
            (over_native.backend.as_str(), over_native.metric.as_str()),
            ("container", "over_native")
        );
        assert!((over_native.summary.median - 1.2).abs() < 1e-6);
        assert!(over_native.summary.ci.is_some());
        assert!(over_native.variant.contains("1.5 ms"));
        assert_eq!(over_native.goal.map(|g| g.at_most), Some(CONTAINER_GOAL_MS));
        assert!(over_native.verdict().is_some());
        let over_floor = &goals[1];
        assert_eq!(over_floor.metric, "over_kvm_floor");
        assert!(
            (over_floor.summary.median - 2.4095 / 0.6095).abs() < 1e-6,
            "{over_floor:?}"
        );
        assert!(over_floor.raw_cost);
        assert_eq!(over_floor.variant, "goal: at most 2x");
        assert_eq!(over_floor.goal.map(|g| g.at_most), Some(MICROVM_GOAL_RATIO));
        // Without the floor, no ratio to it.
        assert_eq!(super::goals(&figures[..3], 1).len(), 1);
    }
}
