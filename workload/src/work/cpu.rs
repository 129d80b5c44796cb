//! `cpu`: SHA-256 over a fixed amount of data: pure integer work, no system calls.

use std::hint::black_box;
use std::time::Instant;

use sha2::{Digest, Sha256};
use workload::record::Metric;

use super::{as_f64, seconds, Error};

/// Hashes `mib` MiB (one 1 MiB block, hashed `mib` times) and reports the rate.
pub fn run(mib: u64) -> Result<Vec<Metric>, Error> {
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap_or(0))
        .collect();
    let start = Instant::now();
    let mut hasher = Sha256::new();
    for _ in 0..mib {
        hasher.update(black_box(&block));
    }
    let digest = black_box(hasher.finalize());
    let elapsed = seconds(start.elapsed());
    Ok(vec![
        Metric::new("throughput", as_f64(mib) / elapsed, "MiB/s"),
        Metric::new("seconds", elapsed, "s"),
        Metric::new("digest_byte0", f64::from(digest[0]), "byte"),
    ])
}
