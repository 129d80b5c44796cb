//! Summary statistics of a set of samples, with outliers flagged by a robust z-score.
//!
//! Percentiles interpolate linearly between closest ranks (the method R and NumPy use by
//! default). Outliers follow Iglewicz and Hoaglin: a sample whose modified z-score
//! `0.6745 * (x - median) / MAD` exceeds 3.5 in magnitude is flagged. When more than half
//! the samples are equal the MAD is 0; then the mean absolute deviation from the median
//! (MeanAD) stands in, scaled by 1.253314 so that it too estimates the standard deviation
//! of a normal: `z = (x - median) / (1.253314 * MeanAD)`. When both are 0 every sample
//! is the median and none is an outlier. Flagged samples stay in the data and in every
//! figure; the flag is for the reader. The summary also carries the distribution-free
//! 95% confidence interval of the median (see [`crate::interval`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::interval::{median_ci, Interval};
use crate::len_f64;

/// The modified z-score beyond which a sample is an outlier.
pub const OUTLIER_Z: f64 = 3.5;
/// The constant that makes the MAD consistent with the standard deviation of a normal.
const MAD_SCALE: f64 = 0.6745;
/// The constant that makes the MeanAD consistent with the standard deviation of a normal.
const MEAN_AD_SCALE: f64 = 1.253314;

/// Which spread measured the z-scores of the outliers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutlierMethod {
    /// Modified z-score from the median absolute deviation.
    #[default]
    Mad,
    /// The MAD was 0: z-score from the mean absolute deviation from the median.
    MeanAd,
    /// Both deviations were 0 (or there was a single sample): no outliers possible.
    None,
}

/// A summary of one figure's samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (50th percentile).
    pub median: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Sample standard deviation (n - 1 in the denominator; 0 for a single sample).
    pub stddev: f64,
    /// Median absolute deviation from the median.
    pub mad: f64,
    /// Indices (into the samples, in run order) of outliers by modified z-score.
    pub outliers: Vec<usize>,
    /// The 95% confidence interval of the median (none for fewer than 2 samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Interval>,
    /// How the outliers were found.
    #[serde(default)]
    pub outlier_method: OutlierMethod,
}

impl Summary {
    /// Relative spread: standard deviation over mean (0 when the mean is 0).
    pub fn cv(&self) -> f64 {
        if self.mean == 0.0 {
            0.0
        } else {
            self.stddev / self.mean.abs()
        }
    }
}

/// Summarises `samples`; `None` when there are none, any is not finite, or a statistic
/// overflows (samples near `f64::MAX`).
pub fn summarise(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let count = len_f64(n);
    let mean = sorted.iter().sum::<f64>() / count;
    let stddev = if n > 1 {
        (sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (count - 1.0)).sqrt()
    } else {
        0.0
    };
    let median = percentile(&sorted, 50.0);
    let mut deviations: Vec<f64> = sorted.iter().map(|x| (x - median).abs()).collect();
    let mean_ad = deviations.iter().sum::<f64>() / count;
    deviations.sort_by(f64::total_cmp);
    let mad = percentile(&deviations, 50.0);
    let (outlier_method, scale) = if mad > 0.0 {
        (OutlierMethod::Mad, mad / MAD_SCALE)
    } else if mean_ad > 0.0 {
        (OutlierMethod::MeanAd, MEAN_AD_SCALE * mean_ad)
    } else {
        (OutlierMethod::None, 0.0)
    };
    let outliers = if scale > 0.0 {
        samples
            .iter()
            .enumerate()
            .filter(|(_, x)| ((*x - median) / scale).abs() > OUTLIER_Z)
            .map(|(i, _)| i)
            .collect()
    } else {
        Vec::new()
    };
    let (p95, p99) = (percentile(&sorted, 95.0), percentile(&sorted, 99.0));
    // Samples near f64::MAX overflow the arithmetic: no summary rather than infinities,
    // which a JSON document cannot hold.
    if [mean, median, p95, p99, stddev, mad]
        .iter()
        .any(|x| !x.is_finite())
    {
        return None;
    }
    Some(Summary {
        n,
        min: sorted[0],
        max: sorted[n - 1],
        mean,
        median,
        p95,
        p99,
        stddev,
        mad,
        outliers,
        ci: median_ci(&sorted, 0.95),
        outlier_method,
    })
}

/// The `p`th percentile (0..=100) of sorted data, interpolating linearly; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = p.clamp(0.0, 100.0) / 100.0 * (len_f64(sorted.len()) - 1.0);
    let lower = rank.floor();
    let fraction = rank - lower;
    // `rank` lies in [0, len - 1] (a NaN `p` casts to 0), so both indices are in range.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = lower as usize;
    match (sorted.get(i), sorted.get(i + 1)) {
        (Some(this), Some(next)) if fraction > 0.0 => this + fraction * (next - this),
        (Some(this), _) => *this,
        _ => f64::NAN,
    }
}

/// The median of `values` in any order, interpolating between the middle two of an even
/// count; `None` when there are none or any is not finite.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(percentile(&sorted, 50.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn known_summary() {
        let s = summarise(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.n, 8);
        assert!(close(s.mean, 5.0));
        assert!(close(s.median, 4.5));
        assert!(close(s.min, 2.0) && close(s.max, 9.0));
        // Sample standard deviation: sqrt(32 / 7).
        assert!(close(s.stddev, (32.0f64 / 7.0).sqrt()));
        // Deviations from 4.5: 2.5 .5 .5 .5 .5 .5 2.5 4.5 -> median 0.5.
        assert!(close(s.mad, 0.5));
        // p95: rank 0.95 * 7 = 6.65 -> 7 + 0.65 * (9 - 7).
        assert!(close(s.p95, 8.3));
        assert!(close(s.p99, 7.0 + 0.93 * 2.0));
        // 9.0 has modified z = 0.6745 * 4.5 / 0.5 = 6.07 > 3.5; 2.0 has 3.37.
        assert_eq!(s.outliers, vec![7]);
        assert_eq!(s.outlier_method, OutlierMethod::Mad);
        // n = 8 at 95%: ranks 1 and 8, coverage 1 - 2 / 256 (ranks 2 and 7: 1 - 18 / 256).
        let ci = s.ci.unwrap();
        assert!(close(ci.low, 2.0) && close(ci.high, 9.0));
        assert!(close(ci.coverage, 1.0 - 2.0 / 256.0));
    }

    #[test]
    fn outlier_indices_follow_run_order() {
        let s = summarise(&[100.0, 10.0, 11.0, 10.0, 12.0, 10.0]).unwrap();
        assert_eq!(s.outliers, vec![0]);
    }

    #[test]
    fn single_and_constant_samples() {
        let s = summarise(&[3.0]).unwrap();
        assert!(close(s.median, 3.0) && close(s.p99, 3.0) && close(s.stddev, 0.0));
        assert_eq!(s.ci, None);
        assert_eq!(s.outlier_method, OutlierMethod::None);
        let s = summarise(&[1.0, 1.0, 1.0]).unwrap();
        assert!(s.outliers.is_empty());
        assert!(close(s.cv(), 0.0));
        assert_eq!(s.outlier_method, OutlierMethod::None);
    }

    #[test]
    fn zero_mad_falls_back_to_mean_ad() {
        // Median 10, MAD 0; MeanAD = (0 * 7 + 1 + 30) / 9 = 31 / 9.
        let samples = [10.0, 10.0, 10.0, 10.0, 11.0, 10.0, 10.0, 40.0, 10.0];
        let s = summarise(&samples).unwrap();
        assert!(close(s.mad, 0.0));
        assert_eq!(s.outlier_method, OutlierMethod::MeanAd);
        // z(40) = 30 / (1.253314 * 31 / 9) = 6.95; z(11) = 0.23.
        assert_eq!(s.outliers, vec![7]);
    }

    #[test]
    fn samples_that_overflow_the_arithmetic_have_no_summary() {
        assert!(summarise(&[1.7e308, 1.7e308]).is_none());
        assert!(summarise(&[-1.7e308, 1.7e308]).is_none());
        assert!(summarise(&[1.7e308]).is_some());
    }

    #[test]
    fn nothing_to_summarise() {
        assert!(summarise(&[]).is_none());
        assert!(summarise(&[1.0, f64::NAN]).is_none());
        assert!(summarise(&[f64::INFINITY]).is_none());
    }

    #[test]
    fn percentiles_interpolate() {
        let data = [1.0, 2.0, 3.0, 4.0];
        assert!(close(percentile(&data, 0.0), 1.0));
        assert!(close(percentile(&data, 50.0), 2.5));
        assert!(close(percentile(&data, 100.0), 4.0));
        assert!(percentile(&[], 50.0).is_nan());
        assert!(close(percentile(&data, f64::NAN), 1.0));
    }

    #[test]
    fn median_of_unsorted_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
        assert_eq!(median(&[1.0, f64::INFINITY]), None);
    }
}
