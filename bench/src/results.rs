//! Writing the results document: everything one `vcbench run` measured, in one JSON file.
//!
//! The document's types are defined once, in [`reports::document`], and re-exported
//! here: `vcbench` fills them in, the reports read them. `docs/results.schema.json` is
//! their JSON Schema (`vcbench schema`). This module writes documents atomically and
//! checks beforehand that they can be written.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use reports::document::{
    json_schema, Better, Clock, Error as ReadError, Failure, Figure, Kind, Markers, Phase, Plan,
    PlannedScenario, Ratio, Results, Run, Skip, Tool, SCHEMA_VERSION,
};

/// Errors writing a results document.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be written.
    #[error("cannot write results to {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Writes the document atomically: to a temporary file beside `path`, synced, then
/// renamed over it, so a reader never sees half a document and an earlier file is
/// replaced only by a complete one.
pub fn write(results: &Results, path: &Path) -> Result<(), Error> {
    write_atomic(path, results.to_json().as_bytes())
}

/// Writes `bytes` to `path` atomically (see [`write`]), readable by others less the umask.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let write_error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Readable by others, as a file written by any program is (less the umask): a
    // temporary file is private by default, and the rename would keep it so.
    let mut file = tempfile::Builder::new()
        .prefix(".vcbench-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    if !bytes.ends_with(b"\n") {
        file.write_all(b"\n").map_err(write_error)?;
    }
    file.as_file().sync_all().map_err(write_error)?;
    file.persist(path).map_err(|e| write_error(e.error))?;
    Ok(())
}

/// Checks that results can be written to `path` before any work is done: its directory
/// exists (it is made when missing, as the reports' is) and accepts a new file, and `path`
/// is not a directory. The reports written beside it (`.html`, `.md`) may replace only
/// earlier vcbench reports, never another file that happens to have their name.
pub fn check_writable(path: &Path) -> Result<(), Error> {
    let write_error = |why: String| Error::Write {
        path: path.to_owned(),
        source: std::io::Error::other(why),
    };
    if path.is_dir() {
        return Err(write_error("it is a directory".to_owned()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| write_error(format!("its directory cannot be made: {e}")))?;
    // The message names the directory, not the probe's temporary name.
    tempfile::Builder::new()
        .prefix(".vcbench-check-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| {
            write_error(format!(
                "{} does not accept a new file: {}",
                dir.display(),
                std::io::Error::from(e.kind())
            ))
        })?;
    for ext in ["html", "md"] {
        let report = path.with_extension(ext);
        if report.exists() && !is_report(&report) {
            return Err(write_error(format!(
                "its report would replace {}, which is not a vcbench report",
                report.display()
            )));
        }
    }
    Ok(())
}

/// Whether `path` is a report vcbench wrote (its opening says so).
fn is_report(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(n) = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head))
    else {
        return false;
    };
    let head = String::from_utf8_lossy(&head[..n]);
    head.starts_with("# vcbench report") || head.contains("<title>vcbench report")
}

/// The current time in RFC 3339, UTC, to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The tool's identity for results.
pub fn tool() -> Tool {
    Tool {
        name: "vcbench".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_revision: env!("VCBENCH_GIT_REVISION").to_owned(),
        workload_fnv: images::image::WORKLOAD_FNV.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_missing_directory_is_made_and_a_foreign_report_name_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new").join("r.json");
        check_writable(&out).unwrap();
        assert!(dir.path().join("new").is_dir());
        // An earlier vcbench report may be replaced; someone's notes may not.
        std::fs::write(out.with_extension("md"), "# vcbench report\n").unwrap();
        check_writable(&out).unwrap();
        std::fs::write(out.with_extension("html"), "<p>my notes</p>").unwrap();
        let refused = check_writable(&out).unwrap_err();
        let text = format!("{:#}", anyhow_like(&refused));
        assert!(
            text.contains("r.html, which is not a vcbench report"),
            "{text}"
        );
    }

    #[test]
    fn an_unwritable_directory_is_named_without_a_temporary_name() {
        let out = Path::new("/proc/vcbench-test/r.json");
        let text = anyhow_like(&check_writable(out).unwrap_err());
        assert!(!text.contains(".vcbench-check-"), "{text}");
    }

    /// The error with its causes, as the binary prints it.
    fn anyhow_like(e: &Error) -> String {
        crate::backend::error_chain(e)
    }
    use crate::procfs::Memory;

    fn sample() -> Results {
        let samples = vec![0.812_345_678_9, 0.79, 1.234e-3, 12_345.678];
        Results {
            schema_version: SCHEMA_VERSION,
            tool: tool(),
            host: crate::host::detect(),
            plan: Plan {
                backends: vec!["native".into()],
                settings: BTreeMap::from([(
                    "container".to_owned(),
                    "namespaces: user,pid".to_owned(),
                )]),
                scenarios: vec![PlannedScenario {
                    name: "startup".into(),
                    workload: vec!["hello".into()],
                    runs: 4,
                    warmup: 1,
                    timeout_s: 60.0,
                }],
                order: "interleaved".to_owned(),
                seed: 7,
                baseline: Some("native".to_owned()),
                stamping: BTreeMap::from([(
                    "native".to_owned(),
                    crate::backend::Stamping::PipeReader.describe().to_owned(),
                )]),
                pipe_stamp_delay_ms: Some(0.02),
                max_time_s: None,
                cpus: None,
            },
            started_at: now_rfc3339(),
            finished_at: now_rfc3339(),
            complete: false,
            figures: vec![Figure::distribution(
                "native",
                "startup",
                "time_to_start",
                "ms",
                Better::Lower,
                samples,
            )
            .unwrap()
            .timed_by(Some(Clock::Host))],
            runs: vec![Run {
                backend: "native".into(),
                scenario: "startup".into(),
                index: 0,
                warmup: true,
                ok: true,
                markers: Markers {
                    started_ms: Some(0.5),
                    result_ms: Some(0.6),
                    exited_ms: Some(0.7),
                    gone_ms: None,
                },
                exit_status: Some(0),
                host_maxrss_kib: Some(1234),
                sampled_peak: Some(Memory {
                    rss_kib: 3,
                    pss_kib: 2,
                    uss_kib: 1,
                }),
                phases: vec![Phase {
                    name: "cgroup_attached".into(),
                    ms: 0.25,
                }],
                counters: BTreeMap::from([("exits_io".to_owned(), 12)]),
                facts: BTreeMap::new(),
            }],
            failures: vec![Failure {
                backend: "native".into(),
                scenario: "startup".into(),
                index: 3,
                reason: "timed out after 60.0 s".into(),
            }],
            skipped: vec![Skip {
                backend: "microvm".into(),
                scenario: None,
                reason: "no /dev/kvm".into(),
            }],
            density: Vec::new(),
            isolation: Vec::new(),
            surface: Vec::new(),
            reachable: Vec::new(),
        }
    }

    #[test]
    fn the_document_round_trips_through_its_types() {
        let results = sample();
        let back: Results = serde_json::from_str(&results.to_json()).unwrap();
        assert_eq!(back, results);
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, "old").unwrap();
        let results = sample();
        write(&results, &path).unwrap();
        assert_eq!(Results::read(&path).unwrap(), results);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["r.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_earlier_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write(&sample(), &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        // A path whose directory does not exist cannot be written, and touches nothing.
        assert!(matches!(
            write(&sample(), &dir.path().join("no/r.json")),
            Err(Error::Write { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn figures_are_addressable() {
        let results = sample();
        assert!(results
            .figure("native", "startup", "time_to_start")
            .is_some());
        assert!(results.figure("native", "startup", "nope").is_none());
    }
}
