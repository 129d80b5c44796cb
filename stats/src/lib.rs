//! The statistics of vcbench: summaries of a set of samples, the confidence interval of a
//! median, a bootstrap interval of a ratio of medians, a rank test, and the rule that
//! decides whether two sets of samples of the same figure differ.
//!
//! Nothing here panics: every function that cannot give an answer for its input (no
//! samples, a value that is not finite, a zero to divide by) returns `None`. Everything
//! that draws random numbers takes a seed and uses [`Rng`], so its results are
//! reproducible from that seed.

pub mod bootstrap;
pub mod compare;
pub mod interval;
mod normal;
pub mod rank_test;
pub mod rng;
pub mod summary;

pub use bootstrap::{difference_of_medians, ratio_of_medians, Estimate, DEFAULT_RESAMPLES};
pub use compare::{compare, Comparison, ALPHA, LEVEL, MIN_EFFECT};
pub use interval::{median_ci, Interval};
pub use rank_test::{mann_whitney, RankTest};
pub use rng::Rng;
pub use summary::{median, percentile, summarise, OutlierMethod, Summary, OUTLIER_Z};

/// `n` as a float; exact for any count a benchmark can hold (below 2^53).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn len_f64(n: usize) -> f64 {
    n as f64
}
