//! `file`: small durable writes, each file written and fsync'ed, in a scratch directory
//! that is removed afterwards whatever happens.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use workload::record::Metric;

use super::{as_f64, seconds, Error};

/// A directory removed with its contents when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn create(parent: &Path) -> Result<Self, Error> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!("vcbench-file-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path)
            .map_err(|e| Error::io(format!("create scratch directory {}", path.display()), e))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("workload: cannot remove {}: {e}", self.0.display());
        }
    }
}

/// Writes `count` files of `size` bytes under a scratch directory in `dir`.
pub fn run(count: u64, size: u64, dir: &Path) -> Result<Vec<Metric>, Error> {
    let scratch = Scratch::create(dir)?;
    let len = usize::try_from(size).map_err(|_| Error::TooLarge("--size"))?;
    let data = vec![0x5au8; len];
    let start = Instant::now();
    for i in 0..count {
        let path = scratch.0.join(format!("f{i}"));
        let what = |op: &str| format!("{op} {}", path.display());
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(what("create"), e))?;
        file.write_all(&data)
            .map_err(|e| Error::io(what("write"), e))?;
        file.sync_all().map_err(|e| Error::io(what("fsync"), e))?;
    }
    File::open(&scratch.0)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync {}", scratch.0.display()), e))?;
    let elapsed = seconds(start.elapsed());
    Ok(vec![
        Metric::new("files_per_s", as_f64(count) / elapsed, "files/s"),
        Metric::new("us_per_file", elapsed * 1e6 / as_f64(count), "µs"),
        // Each file written and fsync'ed is one operation (for per-operation device counts).
        Metric::new("operations", as_f64(count), "operations"),
    ])
}
