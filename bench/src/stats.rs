//! Summary statistics of a set of samples, with outliers by modified z-score.
//!
//! Percentiles interpolate linearly between closest ranks (the method R and NumPy use by
//! default). Outliers follow Iglewicz and Hoaglin: a sample whose modified z-score
//! `0.6745 * (x - median) / MAD` exceeds 3.5 in magnitude is flagged; flagged samples
//! stay in the data and in every figure, the flag is for the reader.

pub use reports::document::Summary;

/// The modified z-score beyond which a sample is an outlier.
pub const OUTLIER_Z: f64 = 3.5;
/// The constant that makes the MAD consistent with the standard deviation of a normal.
const MAD_SCALE: f64 = 0.6745;

/// Summarises `samples`; `None` when there are none or any is not finite.
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
    deviations.sort_by(f64::total_cmp);
    let mad = percentile(&deviations, 50.0);
    let outliers = if mad > 0.0 {
        samples
            .iter()
            .enumerate()
            .filter(|(_, x)| (MAD_SCALE * (*x - median) / mad).abs() > OUTLIER_Z)
            .map(|(i, _)| i)
            .collect()
    } else {
        Vec::new()
    };
    Some(Summary {
        n,
        min: sorted[0],
        max: sorted[n - 1],
        mean,
        median,
        p95: percentile(&sorted, 95.0),
        p99: percentile(&sorted, 99.0),
        stddev,
        mad,
        outliers,
    })
}

/// The `p`th percentile (0..=100) of sorted, non-empty data, interpolating linearly.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let rank = p.clamp(0.0, 100.0) / 100.0 * (len_f64(sorted.len()) - 1.0);
    let lower = rank.floor();
    let fraction = rank - lower;
    // `rank` lies in [0, len - 1], so both indices are in range.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = lower as usize;
    match sorted.get(i + 1) {
        Some(next) if fraction > 0.0 => sorted[i] + fraction * (next - sorted[i]),
        _ => sorted[i],
    }
}

#[allow(clippy::cast_precision_loss)]
fn len_f64(n: usize) -> f64 {
    n as f64
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
        let s = summarise(&[1.0, 1.0, 1.0]).unwrap();
        assert!(s.outliers.is_empty());
        assert!(close(s.cv(), 0.0));
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
    }
}
