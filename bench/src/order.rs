//! The order in which a scenario's runs go to the backends.
//!
//! On a shared, noisy machine the conditions drift: another job starts, the CPU warms,
//! the page cache fills. When every run of one backend finishes before the next backend
//! starts (`blocked`), that drift lands on one backend and reads as its cost. By default
//! the runs are `interleaved`: each backend's warmups first, then rounds of one measured
//! run per backend, each round in an order shuffled from the plan's seed, so drift is
//! shared out evenly and no backend always runs first. `random` shuffles all measured runs
//! at once. The seed is recorded in the results, so the order can be replayed.

use clap::ValueEnum;

/// How runs are ordered within a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Order {
    /// Rounds of one run per backend, each round shuffled.
    #[default]
    Interleaved,
    /// Every measured run of every backend in one shuffled sequence.
    Random,
    /// All runs of one backend, then the next backend's.
    Blocked,
}

impl Order {
    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Order::Interleaved => "interleaved",
            Order::Random => "random",
            Order::Blocked => "blocked",
        }
    }
}

/// One run of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Index of the backend (into the list the schedule was made for).
    pub backend: usize,
    /// Position among this backend's runs, warmups first, from 0.
    pub index: u32,
    /// A warmup run.
    pub warmup: bool,
}

/// The runs of one scenario on `backends` backends, each with `warmup` warmups and `runs`
/// measured runs, in `order`; shuffles draw from `rng`. Warmups always come first, each
/// backend's together, so that every backend is warm before any measured run.
pub fn schedule(
    backends: usize,
    warmup: u32,
    runs: u32,
    order: Order,
    rng: &mut stats::Rng,
) -> Vec<Slot> {
    let measured = |backend: usize, run: u32| Slot {
        backend,
        index: warmup + run,
        warmup: false,
    };
    if order == Order::Blocked {
        return (0..backends)
            .flat_map(|b| {
                (0..warmup)
                    .map(move |index| Slot {
                        backend: b,
                        index,
                        warmup: true,
                    })
                    .chain((0..runs).map(move |run| measured(b, run)))
            })
            .collect();
    }
    let mut slots: Vec<Slot> = (0..backends)
        .flat_map(|b| {
            (0..warmup).map(move |index| Slot {
                backend: b,
                index,
                warmup: true,
            })
        })
        .collect();
    match order {
        Order::Interleaved => {
            let mut round: Vec<usize> = (0..backends).collect();
            for run in 0..runs {
                rng.shuffle(&mut round);
                slots.extend(round.iter().map(|&b| measured(b, run)));
            }
        }
        Order::Random => {
            let mut all: Vec<(usize, u32)> = (0..backends)
                .flat_map(|b| (0..runs).map(move |run| (b, run)))
                .collect();
            rng.shuffle(&mut all);
            // Each backend's runs keep their indices in the order they run.
            let mut next = vec![0u32; backends];
            for (b, _) in all {
                slots.push(measured(b, next[b]));
                next[b] += 1;
            }
        }
        Order::Blocked => unreachable!("handled above"),
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> stats::Rng {
        stats::Rng::new(7)
    }

    #[test]
    fn blocked_runs_one_backend_after_another() {
        let s = schedule(2, 1, 2, Order::Blocked, &mut rng());
        let got: Vec<(usize, u32, bool)> =
            s.iter().map(|s| (s.backend, s.index, s.warmup)).collect();
        assert_eq!(
            got,
            [
                (0, 0, true),
                (0, 1, false),
                (0, 2, false),
                (1, 0, true),
                (1, 1, false),
                (1, 2, false)
            ]
        );
    }

    #[test]
    fn interleaved_rounds_hold_one_run_of_each_backend() {
        let s = schedule(3, 2, 20, Order::Interleaved, &mut rng());
        assert_eq!(s.len(), 3 * 22);
        // Warmups first, each backend's together.
        assert!(s[..6].iter().all(|s| s.warmup));
        assert_eq!(
            s[..6].iter().map(|s| s.backend).collect::<Vec<_>>(),
            [0, 0, 1, 1, 2, 2]
        );
        let mut firsts = [0; 3];
        for (round, chunk) in s[6..].chunks(3).enumerate() {
            let mut backends: Vec<usize> = chunk.iter().map(|s| s.backend).collect();
            firsts[backends[0]] += 1;
            backends.sort_unstable();
            assert_eq!(backends, [0, 1, 2], "round {round}");
            let index = u32::try_from(round).unwrap() + 2;
            assert!(chunk.iter().all(|s| s.index == index && !s.warmup));
        }
        // The shuffle lets every backend go first in some round.
        assert!(firsts.iter().all(|&n| n > 0), "{firsts:?}");
    }

    #[test]
    fn random_order_is_a_permutation_replayed_by_its_seed() {
        let a = schedule(2, 0, 10, Order::Random, &mut rng());
        let b = schedule(2, 0, 10, Order::Random, &mut rng());
        assert_eq!(a, b);
        for backend in 0..2 {
            let indices: Vec<u32> = a
                .iter()
                .filter(|s| s.backend == backend)
                .map(|s| s.index)
                .collect();
            assert_eq!(indices, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(a, schedule(2, 0, 10, Order::Blocked, &mut rng()));
    }

    #[test]
    fn one_backend_runs_in_order_whatever_the_order() {
        for order in [Order::Interleaved, Order::Random, Order::Blocked] {
            let s = schedule(1, 1, 3, order, &mut rng());
            let indices: Vec<u32> = s.iter().map(|s| s.index).collect();
            assert_eq!(indices, [0, 1, 2, 3], "{order:?}");
        }
    }
}
