//! Bootstrap confidence intervals for the ratio of two medians, and for their difference.
//!
//! The bootstrap treats each set of samples as a stand-in for everything the measurement
//! could have produced. It draws a new set of the same size from each, with replacement
//! and independently of the other, and takes the ratio of the two new medians; doing so
//! many times shows how much that ratio moves by chance alone. The interval is the
//! middle `level` of those ratios (the percentile bootstrap): for 95%, from the 2.5th to
//! the 97.5th percentile. Draws come from [`Rng`] seeded by the caller, so the interval
//! is reproducible from the seed; each round resamples the baseline, then the other set.
//! A round whose baseline median is 0 has no ratio and is skipped. The difference of the
//! medians (`median(other) - median(baseline)`, in the samples' unit) is bootstrapped the
//! same way.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::interval::Interval;
use crate::rng::Rng;
use crate::summary::{median, percentile};

/// How many resampling rounds to use unless there is a reason to choose otherwise.
pub const DEFAULT_RESAMPLES: usize = 2000;

/// A ratio (or a difference) estimated from the data, with its bootstrap confidence
/// interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Estimate {
    /// `median(other) / median(baseline)` (or `median(other) - median(baseline)`) of the
    /// data as measured.
    pub value: f64,
    /// The percentile bootstrap interval of that value (its coverage is its level).
    pub ci: Interval,
}

/// The ratio `median(other) / median(baseline)` with a percentile bootstrap interval at
/// confidence `level` from `resamples` rounds drawn with `seed`.
///
/// `None` when either set is empty, a value is not finite, the baseline median is 0, the
/// ratio or its interval overflows,
/// `level` is not strictly between 0 and 1, `resamples` is 0, or more than half the
/// rounds had a baseline median of 0.
pub fn ratio_of_medians(
    baseline: &[f64],
    other: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<Estimate> {
    if !(level > 0.0 && level < 1.0) || resamples == 0 {
        return None;
    }
    let base_median = median(baseline)?;
    let other_median = median(other)?;
    if base_median == 0.0 {
        return None;
    }
    let ratios: Vec<f64> = resampled_medians(baseline, other, resamples, seed)
        .filter(|(b, _)| *b != 0.0)
        .map(|(b, o)| o / b)
        .collect();
    if ratios.len() * 2 < resamples {
        return None;
    }
    // Medians far apart in magnitude overflow the ratio: no estimate rather than an
    // infinity.
    percentile_estimate(other_median / base_median, ratios, level)
}

/// The difference `median(other) - median(baseline)` with a percentile bootstrap interval
/// at confidence `level` from `resamples` rounds drawn with `seed`.
///
/// `None` when either set is empty, a value is not finite, the difference or its interval
/// overflows, `level` is not strictly between 0 and 1, or `resamples` is 0.
pub fn difference_of_medians(
    baseline: &[f64],
    other: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<Estimate> {
    if !(level > 0.0 && level < 1.0) || resamples == 0 {
        return None;
    }
    let value = median(other)? - median(baseline)?;
    let differences = resampled_medians(baseline, other, resamples, seed)
        .map(|(b, o)| o - b)
        .collect();
    percentile_estimate(value, differences, level)
}

/// `value` with the middle `level` of the resampled `draws` as its interval; `None` when
/// any of the three is not finite.
fn percentile_estimate(value: f64, mut draws: Vec<f64>, level: f64) -> Option<Estimate> {
    draws.sort_by(f64::total_cmp);
    let estimate = Estimate {
        value,
        ci: Interval {
            low: percentile(&draws, (1.0 - level) / 2.0 * 100.0),
            high: percentile(&draws, (1.0 + level) / 2.0 * 100.0),
            level,
            coverage: level,
        },
    };
    [estimate.value, estimate.ci.low, estimate.ci.high]
        .iter()
        .all(|x| x.is_finite())
        .then_some(estimate)
}

/// `resamples` rounds of the two sets' medians `(baseline, other)`, each round drawing
/// both sets with replacement, the baseline first, from one generator seeded with `seed`.
fn resampled_medians<'a>(
    baseline: &'a [f64],
    other: &'a [f64],
    resamples: usize,
    seed: u64,
) -> impl Iterator<Item = (f64, f64)> + 'a {
    let mut rng = Rng::new(seed);
    let mut base_draw = vec![0.0; baseline.len()];
    let mut other_draw = vec![0.0; other.len()];
    (0..resamples).map(move |_| {
        let b = resampled_median(baseline, &mut base_draw, &mut rng);
        (b, resampled_median(other, &mut other_draw, &mut rng))
    })
}

/// Fills `draw` (as long as `data`) with values of `data` drawn with replacement and
/// returns their median.
fn resampled_median(data: &[f64], draw: &mut [f64], rng: &mut Rng) -> f64 {
    for slot in draw.iter_mut() {
        *slot = data.get(rng.below(data.len())).copied().unwrap_or(0.0);
    }
    draw.sort_by(f64::total_cmp);
    percentile(draw, 50.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100, 103, ..., 157: a spread of about 15% around the median.
    fn baseline() -> Vec<f64> {
        (0..20).map(|i| 100.0 + 3.0 * f64::from(i)).collect()
    }

    #[test]
    fn a_difference_of_medians_has_an_interval_around_it() {
        let a = baseline();
        let b: Vec<f64> = a.iter().map(|x| x + 20.0).collect();
        let e = difference_of_medians(&a, &b, 0.95, DEFAULT_RESAMPLES, 7).unwrap();
        assert!((e.value - 20.0).abs() < 1e-9, "{e:?}");
        assert!(e.ci.contains(20.0) && !e.ci.contains(0.0), "{e:?}");
        let same = difference_of_medians(&a, &a, 0.95, DEFAULT_RESAMPLES, 7).unwrap();
        assert!(same.ci.contains(0.0), "{same:?}");
        assert_eq!(difference_of_medians(&[], &b, 0.95, 100, 1), None);
        assert_eq!(difference_of_medians(&a, &[f64::NAN], 0.95, 100, 1), None);
        assert_eq!(difference_of_medians(&a, &b, 1.0, 100, 1), None);
    }

    #[test]
    fn a_ratio_that_overflows_has_no_estimate() {
        assert!(ratio_of_medians(&[1e-300, 2e-300], &[1e300, 2e300], 0.95, 100, 1).is_none());
    }

    #[test]
    fn identical_sets_contain_one() {
        let a = baseline();
        let e = ratio_of_medians(&a, &a, 0.95, DEFAULT_RESAMPLES, 1).unwrap();
        assert_eq!(e.value, 1.0);
        assert!(e.ci.contains(1.0), "{e:?}");
        assert_eq!((e.ci.level, e.ci.coverage), (0.95, 0.95));
    }

    #[test]
    fn a_quarter_more_is_found() {
        let a = baseline();
        let b: Vec<f64> = a.iter().map(|x| x * 1.25).collect();
        let e = ratio_of_medians(&a, &b, 0.95, DEFAULT_RESAMPLES, 1).unwrap();
        assert!((e.value - 1.25).abs() < 1e-12);
        assert!(e.ci.contains(1.25) && !e.ci.contains(1.0), "{e:?}");
    }

    #[test]
    fn seeds_decide_the_draws() {
        let a = baseline();
        let b: Vec<f64> = a.iter().rev().map(|x| x * 1.1 + 2.0).collect();
        let first = ratio_of_medians(&a, &b, 0.95, DEFAULT_RESAMPLES, 7).unwrap();
        assert_eq!(
            first,
            ratio_of_medians(&a, &b, 0.95, DEFAULT_RESAMPLES, 7).unwrap()
        );
        let other = ratio_of_medians(&a, &b, 0.95, DEFAULT_RESAMPLES, 8).unwrap();
        assert_ne!(first.ci, other.ci);
        assert!(
            (first.ci.low - other.ci.low).abs() < 0.02,
            "{first:?} {other:?}"
        );
        assert!(
            (first.ci.high - other.ci.high).abs() < 0.02,
            "{first:?} {other:?}"
        );
    }

    #[test]
    fn nothing_to_estimate() {
        let a = [1.0, 2.0, 3.0];
        assert_eq!(ratio_of_medians(&[], &a, 0.95, 100, 1), None);
        assert_eq!(ratio_of_medians(&a, &[], 0.95, 100, 1), None);
        assert_eq!(ratio_of_medians(&a, &[1.0, f64::NAN], 0.95, 100, 1), None);
        assert_eq!(ratio_of_medians(&[0.0, 0.0, 1.0], &a, 0.95, 100, 1), None);
        assert_eq!(ratio_of_medians(&a, &a, 1.0, 100, 1), None);
        assert_eq!(ratio_of_medians(&a, &a, 0.95, 0, 1), None);
        // About a third of the resampled baselines have median 0: skipped, not fatal.
        let zeros = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        assert!(ratio_of_medians(&zeros, &a, 0.95, 200, 1).is_some());
    }
}
