//! The Mann-Whitney U test (Wilcoxon rank-sum test), two-sided.
//!
//! Put both sets of samples in one ascending list and number them 1, 2, 3, ...; tied
//! values share the mean of their numbers (midranks). U of the first set counts, over all
//! pairs of one value from each set, how often the first set's value is the larger (ties
//! count one half); it is that set's rank sum minus `n_a (n_a + 1) / 2`. If both sets
//! come from the same distribution every ordering is equally likely and U sits near
//! `n_a n_b / 2`; the p-value is the chance of a U at least as far from that. With at
//! most 25 values per set and no ties, it is computed exactly by counting the orderings
//! that give each U. Otherwise U is taken as normal, with its variance reduced for ties
//! and a continuity correction of 0.5. The test makes no assumption about the shape of
//! the distribution.

use crate::len_f64;
use crate::normal::two_sided_tail;

/// The largest set size for which the exact distribution is used.
const EXACT_MAX: usize = 25;

/// The result of a rank test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankTest {
    /// U of the first sample set.
    pub u: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Whether `p` comes from the exact distribution of U (else the normal approximation).
    pub exact: bool,
}

/// The two-sided Mann-Whitney U test of `a` against `b`; `None` when either set is empty
/// or a value is not finite.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<RankTest> {
    if a.is_empty() || b.is_empty() || a.iter().chain(b).any(|x| !x.is_finite()) {
        return None;
    }
    let (n_a, n_b) = (a.len(), b.len());
    let mut all: Vec<(f64, bool)> = a.iter().map(|&x| (x, true)).collect();
    all.extend(b.iter().map(|&x| (x, false)));
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Midranks; `tie_term` sums t^3 - t over groups of t equal values.
    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    let mut start = 0;
    while start < all.len() {
        let mut end = start + 1;
        while all.get(end).is_some_and(|next| next.0 == all[start].0) {
            end += 1;
        }
        let midrank = len_f64(start + end + 1) / 2.0;
        let in_a = all[start..end].iter().filter(|v| v.1).count();
        rank_sum_a += midrank * len_f64(in_a);
        let t = len_f64(end - start);
        tie_term += t * t * t - t;
        start = end;
    }
    let (fa, fb) = (len_f64(n_a), len_f64(n_b));
    let u = rank_sum_a - fa * (fa + 1.0) / 2.0;
    if n_a <= EXACT_MAX && n_b <= EXACT_MAX && tie_term == 0.0 {
        // Without ties U is a whole number.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let p = exact_p(n_a, n_b, u.round() as usize);
        return Some(RankTest { u, p, exact: true });
    }
    let n = fa + fb;
    let variance = fa * fb / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    let distance = ((u - fa * fb / 2.0).abs() - 0.5).max(0.0);
    let p = if variance > 0.0 {
        two_sided_tail(distance / variance.sqrt())
    } else {
        1.0
    };
    Some(RankTest { u, p, exact: false })
}

/// `min(1, 2 * min(P(U <= u), P(U >= u)))` under the exact null distribution of U.
fn exact_p(n_a: usize, n_b: usize, u: usize) -> f64 {
    let counts = u_counts(n_a, n_b);
    let total: f64 = counts.iter().sum();
    let below: f64 = counts.iter().take(u + 1).sum();
    let above: f64 = counts.iter().skip(u).sum();
    (2.0 * below.min(above) / total).min(1.0)
}

/// How many orderings of `n_a` and `n_b` distinct values give each U = 0..=n_a n_b.
///
/// `ways[j][u]` counts the orderings of the first `i` values of a and `j` of b with U = u.
/// Adding one more value of a on top of `j` values of b raises U by `j`, so the counts
/// for `i` follow from those for `i - 1`; adding a value of b to the top changes nothing.
/// The counts stay below C(50, 25) < 2^53, exact in f64.
fn u_counts(n_a: usize, n_b: usize) -> Vec<f64> {
    let width = n_a * n_b + 1;
    // i = 0: one way, U = 0, whatever j.
    let mut ways = vec![vec![0.0; width]; n_b + 1];
    ways.iter_mut().for_each(|row| row[0] = 1.0);
    for _ in 0..n_a {
        let mut next = vec![vec![0.0; width]; n_b + 1];
        for j in 0..=n_b {
            for u in 0..width {
                // Top value from a (it beats all j of b) or from b (U unchanged).
                let from_a = if u >= j { ways[j][u - j] } else { 0.0 };
                let from_b = if j > 0 { next[j - 1][u] } else { 0.0 };
                next[j][u] = from_a + from_b;
            }
        }
        ways = next;
    }
    ways.pop().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(range: std::ops::RangeInclusive<u32>) -> Vec<f64> {
        range.map(f64::from).collect()
    }

    // Reference values from SciPy 1.17.1:
    //   scipy.stats.mannwhitneyu(a, b, alternative='two-sided', method='exact')
    //   scipy.stats.mannwhitneyu(a, b, alternative='two-sided', method='asymptotic',
    //                            use_continuity=True)
    // (.statistic is U of a, .pvalue the p-value).

    #[test]
    fn small_without_ties_is_exact() {
        let a = [1.1, 2.3, 3.5, 4.2, 5.9];
        let b = [2.0, 4.8, 6.1, 7.7, 8.4, 9.0];
        let t = mann_whitney(&a, &b).unwrap();
        assert!(t.exact);
        assert_eq!(t.u, 5.0);
        assert!((t.p - 0.08225108225108226).abs() < 1e-9, "{t:?}");
        // Swapping the sets mirrors U and keeps p.
        let s = mann_whitney(&b, &a).unwrap();
        assert_eq!(s.u, 25.0);
        assert!((s.p - t.p).abs() < 1e-12);
    }

    #[test]
    fn fully_separated_sets() {
        let t = mann_whitney(&floats(1..=10), &floats(11..=20)).unwrap();
        assert!(t.exact);
        assert_eq!(t.u, 0.0);
        // 2 / C(20, 10).
        assert!((t.p - 1.0825088224469026e-05).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn ties_use_the_normal_approximation() {
        let a = [1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0];
        let b = [3.0, 4.0, 4.0, 5.0, 6.0, 6.0, 7.0, 8.0];
        let t = mann_whitney(&a, &b).unwrap();
        assert!(!t.exact);
        assert_eq!(t.u, 8.0);
        assert!((t.p - 0.02228731901455301).abs() < 1e-6, "{t:?}");
    }

    #[test]
    fn large_sets_use_the_normal_approximation() {
        let a: Vec<f64> = (0..30).map(|i| 1.5 * f64::from(i)).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 7.25).collect();
        let t = mann_whitney(&a, &b).unwrap();
        assert!(!t.exact);
        assert_eq!(t.u, 325.0);
        assert!((t.p - 0.06567125768912659).abs() < 1e-6, "{t:?}");
    }

    #[test]
    fn identical_sets() {
        let a = floats(1..=5);
        let t = mann_whitney(&a, &a).unwrap();
        assert_eq!(t.u, 12.5);
        assert_eq!(t.p, 1.0);
        let t = mann_whitney(&[3.0], &[3.0]).unwrap();
        assert_eq!((t.u, t.p), (0.5, 1.0));
    }

    #[test]
    fn exact_counts_sum_to_the_orderings() {
        let counts = u_counts(4, 3);
        assert_eq!(counts.iter().sum::<f64>(), 35.0);
        assert_eq!(counts, u_counts(3, 4));
        let big = u_counts(25, 25);
        assert_eq!(big.iter().sum::<f64>(), 126_410_606_437_752.0);
    }

    #[test]
    fn nothing_to_test() {
        assert_eq!(mann_whitney(&[], &[1.0]), None);
        assert_eq!(mann_whitney(&[1.0], &[]), None);
        assert_eq!(mann_whitney(&[1.0], &[f64::NAN]), None);
    }
}
