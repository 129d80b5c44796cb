//! The standard normal distribution: its upper tail through the complementary error
//! function, summed as a series near zero and as a continued fraction further out.

use std::f64::consts::PI;

/// `erfc(x)` for `x >= 0`, accurate to about 1e-14 absolute.
fn erfc_nonnegative(x: f64) -> f64 {
    if x < 3.0 {
        // erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_k (2x^2)^k x / (1*3*...*(2k+1)); every
        // term is positive, so nothing cancels.
        let mut term = x;
        let mut sum = x;
        let mut k = 0.0;
        while term > sum * 1e-17 {
            k += 1.0;
            term *= 2.0 * x * x / (2.0 * k + 1.0);
            sum += term;
        }
        1.0 - 2.0 / PI.sqrt() * (-x * x).exp() * sum
    } else {
        // erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))),
        // evaluated from a deep enough level back up.
        let mut tail = x;
        for k in (1..60).rev() {
            tail = x + f64::from(k) / 2.0 / tail;
        }
        (-x * x).exp() / PI.sqrt() / tail
    }
}

/// The probability that a standard normal exceeds `|z|` in either direction.
pub(crate) fn two_sided_tail(z: f64) -> f64 {
    erfc_nonnegative(z.abs() / std::f64::consts::SQRT_2).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_tails() {
        // Reference values: 2 * scipy.stats.norm.sf(z).
        assert!((two_sided_tail(0.0) - 1.0).abs() < 1e-15);
        assert!((two_sided_tail(1.959963984540054) - 0.05).abs() < 1e-13);
        assert!((two_sided_tail(-1.0) - 0.31731050786291415).abs() < 1e-13);
        for (z, p) in [
            (4.2426, 2.2094503673907085e-05),
            (4.25, 2.1377051549868804e-05),
            (6.0, 1.973175290075389e-09),
            (10.0, 1.523970604832094e-23),
        ] {
            assert!((two_sided_tail(z) / p - 1.0).abs() < 1e-9, "{z}");
        }
        assert!((two_sided_tail(4.0) / 6.334248366623973e-05 - 1.0).abs() < 1e-10);
    }
}
