//! Confidence intervals, and the distribution-free interval of a median.
//!
//! Whatever the distribution of the samples, each one falls below the true median with
//! probability 1/2, so the number B of samples below it is binomial(n, 1/2). The interval
//! from the j-th smallest to the j-th largest sample, `(x_(j), x_(n+1-j))`, therefore
//! holds the median with probability `P(j <= B <= n - j)`, its coverage. We take the
//! narrowest such pair (the largest j) whose coverage still reaches the level asked for.
//! Because ranks are whole numbers the coverage is usually a little above the level, and
//! the interval reports it. With few samples (5 or fewer at 95%) even `[min, max]` does
//! not reach the level; it is returned anyway with its true coverage, `1 - 2 * 0.5^n`.
//! The binomial probabilities are summed in floating point, each computed from its
//! logarithm, so any sample count works (100 000 is tested) and no normal approximation
//! is needed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::len_f64;

/// A confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Interval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// The nominal confidence level asked for, e.g. 0.95.
    pub level: f64,
    /// The coverage the method actually achieves: e.g. 0.9375 for the order-statistic
    /// interval of 5 samples; equal to `level` for a bootstrap interval.
    pub coverage: f64,
}

impl Interval {
    /// Whether `x` lies in the interval, ends included.
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// The distribution-free confidence interval of the median of `sorted` (ascending) data,
/// at confidence `level` (strictly between 0 and 1). `None` for fewer than 2 samples, a
/// level out of range, or a value that is not finite.
pub fn median_ci(sorted: &[f64], level: f64) -> Option<Interval> {
    let n = sorted.len();
    if n < 2 || !(level > 0.0 && level < 1.0) || sorted.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let (j, coverage) = order_statistic_rank(n, level);
    Some(Interval {
        low: *sorted.get(j - 1)?,
        high: *sorted.get(n - j)?,
        level,
        coverage,
    })
}

/// The largest 1-based rank `j` (at least 1) for which `P(j <= B <= n - j) >= level`,
/// B ~ binomial(n, 1/2), and that coverage.
fn order_statistic_rank(n: usize, level: f64) -> (usize, f64) {
    let count = len_f64(n);
    let ln_half_n = -count * std::f64::consts::LN_2;
    // ln C(n, k), updated from k to k + 1 as we go.
    let mut ln_choose = 0.0;
    // P(B <= k - 1): the probability left out at each end by rank k.
    let mut tail = 0.0;
    let mut best = (1, 1.0 - 2.0 * (ln_half_n).exp());
    for k in 0..n / 2 {
        tail += (ln_choose + ln_half_n).exp();
        // Rank k + 1 leaves out P(B <= k) at each end.
        let coverage = 1.0 - 2.0 * tail;
        if coverage + 1e-12 < level {
            break;
        }
        best = (k + 1, coverage);
        ln_choose += (count - len_f64(k)).ln() - len_f64(k + 1).ln();
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranks(n: usize) -> Vec<f64> {
        (1..=n).map(len_f64).collect()
    }

    #[test]
    fn five_samples_give_min_and_max() {
        let ci = median_ci(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95).unwrap();
        assert_eq!((ci.low, ci.high), (1.0, 5.0));
        assert!((ci.coverage - 0.9375).abs() < 1e-12);
        assert_eq!(ci.level, 0.95);
    }

    #[test]
    fn known_ranks() {
        // python3 -c "from math import comb; print(sum(comb(n,k) for k in range(j,n-j+1))/2**n)"
        // n=10, j=2: 0.978515625 (j=3: 0.890625); n=20, j=6: 0.9586105346679688
        // (j=7: 0.884674072265625); n=6, j=1: 0.96875.
        let ci = median_ci(&ranks(10), 0.95).unwrap();
        assert_eq!((ci.low, ci.high), (2.0, 9.0));
        assert!((ci.coverage - 0.978515625).abs() < 1e-12);
        let ci = median_ci(&ranks(20), 0.95).unwrap();
        assert_eq!((ci.low, ci.high), (6.0, 15.0));
        assert!((ci.coverage - 0.9586105346679688).abs() < 1e-12);
        let ci = median_ci(&ranks(6), 0.95).unwrap();
        assert_eq!((ci.low, ci.high), (1.0, 6.0));
        assert!((ci.coverage - 0.96875).abs() < 1e-12);
        assert!(ci.contains(3.5) && ci.contains(1.0) && !ci.contains(6.5));
    }

    #[test]
    fn large_samples_do_not_overflow() {
        // 1 - 2 * scipy.stats.binom.cdf(j - 1, 100000, 0.5) is 0.9504442853304776 for
        // j = 49690 and 0.9497059426453371 for j = 49691.
        let ci = median_ci(&ranks(100_000), 0.95).unwrap();
        assert_eq!((ci.low, ci.high), (49_690.0, 50_311.0));
        assert!((ci.coverage - 0.9504442853304776).abs() < 1e-9, "{ci:?}");
    }

    #[test]
    fn nothing_to_bound() {
        assert_eq!(median_ci(&[], 0.95), None);
        assert_eq!(median_ci(&[1.0], 0.95), None);
        assert_eq!(median_ci(&[1.0, 2.0], 1.0), None);
        assert_eq!(median_ci(&[1.0, 2.0], f64::NAN), None);
        assert_eq!(median_ci(&[1.0, f64::INFINITY], 0.95), None);
    }
}
