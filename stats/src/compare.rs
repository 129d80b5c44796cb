//! The decision whether a figure changed between two sets of samples.
//!
//! A change counts as significant only when three checks agree: the Mann-Whitney rank
//! test gives a p-value below 0.05, the 95% bootstrap confidence interval of the change
//! in the median excludes zero, and the median moved by at least 2%. The first two guard
//! against differences that chance alone could produce; the third ignores shifts too small
//! to matter, which the machine's own drift can cause. With a single sample on either
//! side nothing is significant, because one value says nothing about the spread.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bootstrap::{ratio_of_medians, DEFAULT_RESAMPLES};
use crate::interval::Interval;
use crate::rank_test::mann_whitney;

/// The p-value below which the rank test counts as a difference.
pub const ALPHA: f64 = 0.05;
/// The smallest relative change in the median that can be significant (2%).
pub const MIN_EFFECT: f64 = 0.02;
/// The confidence level of the interval of the change.
pub const LEVEL: f64 = 0.95;

/// How `after` differs from `before`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Comparison {
    /// Relative change of the median: `median(after) / median(before) - 1`.
    pub change: f64,
    /// The bootstrap interval of `change` at [`LEVEL`] (the ratio interval minus 1).
    pub ci: Interval,
    /// Two-sided Mann-Whitney p-value (1 when the test cannot tell).
    pub p: f64,
    /// Whether the change counts, by the rule in the module documentation.
    pub significant: bool,
}

/// Compares `after` with `before`, drawing the bootstrap with `seed`.
///
/// `None` when either set is empty, a value is not finite, or the median of `before` is 0.
pub fn compare(before: &[f64], after: &[f64], seed: u64) -> Option<Comparison> {
    let ratio = ratio_of_medians(before, after, LEVEL, DEFAULT_RESAMPLES, seed)?;
    let p = mann_whitney(before, after).map_or(1.0, |test| test.p);
    let change = ratio.value - 1.0;
    let ci = Interval {
        low: ratio.ci.low - 1.0,
        high: ratio.ci.high - 1.0,
        ..ratio.ci
    };
    let significant = before.len() > 1
        && after.len() > 1
        && p < ALPHA
        && !ci.contains(0.0)
        && change.abs() >= MIN_EFFECT;
    Some(Comparison {
        change,
        ci,
        p,
        significant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100, 103, ..., 157.
    fn samples() -> Vec<f64> {
        (0..20).map(|i| 100.0 + 3.0 * f64::from(i)).collect()
    }

    fn scaled(factor: f64) -> Vec<f64> {
        samples().iter().map(|x| x * factor).collect()
    }

    #[test]
    fn same_samples_do_not_differ() {
        let c = compare(&samples(), &samples(), 1).unwrap();
        assert!(!c.significant);
        assert_eq!(c.change, 0.0);
        assert!(c.ci.contains(0.0));
        assert_eq!(c.p, 1.0);
    }

    #[test]
    fn a_quarter_slower_is_significant() {
        let c = compare(&samples(), &scaled(1.25), 1).unwrap();
        assert!(c.significant, "{c:?}");
        assert!((c.change - 0.25).abs() < 1e-12);
        assert!(c.ci.contains(0.25) && c.ci.low > 0.0, "{c:?}");
        assert!(c.p < ALPHA);
        // Faster is significant too, with a negative change.
        let c = compare(&scaled(1.25), &samples(), 1).unwrap();
        assert!(c.significant && (c.change + 0.2).abs() < 1e-12, "{c:?}");
    }

    #[test]
    fn one_percent_is_below_the_minimum_effect() {
        let c = compare(&samples(), &scaled(1.01), 1).unwrap();
        assert!(!c.significant);
        assert!((c.change - 0.01).abs() < 1e-12);
        // Tight sets 1% apart: the test and the interval both see it, the size does not.
        let before: Vec<f64> = (0..20).map(|i| 100.0 + 0.01 * f64::from(i)).collect();
        let after: Vec<f64> = before.iter().map(|x| x * 1.01).collect();
        let c = compare(&before, &after, 1).unwrap();
        assert!(
            c.p < ALPHA && !c.ci.contains(0.0) && !c.significant,
            "{c:?}"
        );
    }

    #[test]
    fn single_samples_are_never_significant() {
        let c = compare(&[100.0], &[200.0], 1).unwrap();
        assert!(!c.significant);
        assert_eq!(c.change, 1.0);
        assert_eq!(c.p, 1.0);
        assert!(compare(&[100.0], &scaled(2.0), 1).is_some_and(|c| !c.significant));
    }

    #[test]
    fn nothing_to_compare() {
        assert_eq!(compare(&[], &[1.0], 1), None);
        assert_eq!(compare(&[0.0], &[1.0], 1), None);
        assert_eq!(compare(&[1.0], &[f64::INFINITY], 1), None);
    }
}
