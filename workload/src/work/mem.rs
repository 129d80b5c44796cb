//! `mem`: the four STREAM kernels (copy, scale, add, triad) over arrays larger than
//! the last-level cache; the best of several passes counts, as in McCalpin's STREAM.

use std::hint::black_box;
use std::time::Instant;

use workload::record::Metric;

use super::{as_f64, mib_to_bytes, seconds, Error};

/// The scalar of the scale and triad kernels.
const SCALAR: f64 = 3.0;

/// Runs the kernels over three arrays of `mib` MiB each, `iterations` times.
pub fn run(mib: u64, iterations: u64) -> Result<Vec<Metric>, Error> {
    let bytes = mib_to_bytes(mib, "--mib")?;
    let n = bytes / std::mem::size_of::<f64>();
    let mut a = vec![1.0f64; n];
    let mut b = vec![2.0f64; n];
    let mut c = vec![0.0f64; n];
    // Best time per kernel, in seconds.
    let mut best = [f64::MAX; 4];
    for _ in 0..iterations {
        let timed = |best: &mut f64, f: &mut dyn FnMut()| {
            let start = Instant::now();
            f();
            *best = best.min(seconds(start.elapsed()));
        };
        timed(&mut best[0], &mut || c.copy_from_slice(black_box(&a)));
        timed(&mut best[1], &mut || {
            for (bi, ci) in b.iter_mut().zip(&c) {
                *bi = SCALAR * ci;
            }
        });
        timed(&mut best[2], &mut || {
            for ((ci, ai), bi) in c.iter_mut().zip(&a).zip(&b) {
                *ci = ai + bi;
            }
        });
        timed(&mut best[3], &mut || {
            for ((ai, bi), ci) in a.iter_mut().zip(&b).zip(&c) {
                *ai = bi + SCALAR * ci;
            }
        });
        black_box((&a, &b, &c));
    }
    // Bytes moved per kernel: copy and scale read one array and write one; add and
    // triad read two and write one.
    let array = as_f64(u64::try_from(n * std::mem::size_of::<f64>()).unwrap_or(u64::MAX));
    let moved = [2.0 * array, 2.0 * array, 3.0 * array, 3.0 * array];
    let names = ["copy", "scale", "add", "triad"];
    Ok(names
        .iter()
        .zip(moved.iter().zip(best))
        .map(|(name, (bytes, secs))| Metric::new(name, bytes / secs / 1e6, "MB/s"))
        .collect())
}
