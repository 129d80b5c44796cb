//! The results document: everything one `vcbench run` measured, in one JSON file.
//!
//! A figure is addressed as backend × scenario × metric and carries its unit, which way
//! is better, every raw sample in run order and their summary. The document also holds
//! the host description, the plan that was run, every run's markers, and every failure
//! and skip with its reason. `docs/results.schema.json` is its JSON Schema, generated
//! from these types (`vcbench schema`). Readers must check `schema_version`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::procfs::Memory;
use crate::stats::Summary;

/// The version of this document's layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Errors reading or writing a results document.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a vcbench results document.
    #[error("{path} is not a vcbench results document")]
    NotResults {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        #[source]
        source: serde_json::Error,
    },
    /// The file is from an incompatible version of vcbench.
    #[error(
        "{path} has results schema version {found}; this vcbench reads version {SCHEMA_VERSION}"
    )]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// The version it has.
        found: u64,
    },
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

/// One run of the tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Results {
    /// Layout version of this document ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The tool that produced it.
    pub tool: Tool,
    /// The machine it was produced on.
    pub host: Host,
    /// What was asked for.
    pub plan: Plan,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// When the run ended (RFC 3339, UTC).
    pub finished_at: String,
    /// `false` when the run was interrupted before its plan was done.
    pub complete: bool,
    /// Every measured figure.
    pub figures: Vec<Figure>,
    /// Every run, warmups included, with its markers.
    pub runs: Vec<Run>,
    /// Runs that failed, with their reasons.
    pub failures: Vec<Failure>,
    /// Backends or scenarios that were not run, with their reasons.
    pub skipped: Vec<Skip>,
    /// The density series, one per backend, when the density scenario ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub density: Vec<crate::density::Series>,
    /// The isolation matrix, one per backend, when the isolation scenario ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub isolation: Vec<crate::isolation::Isolation>,
    /// What reached the host kernel on each backend's behalf, per traced workload, when the
    /// isolation scenario ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub surface: Vec<crate::surface::Surface>,
}

/// The tool's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Tool {
    /// `vcbench`.
    pub name: String,
    /// The crate version.
    pub version: String,
    /// The git revision it was built from (`-dirty` with uncommitted changes).
    pub git_revision: String,
    /// FNV-1a hash of the workload binary that ran in every sandbox.
    pub workload_fnv: String,
}

/// What a run was asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// The backends, in the order they ran.
    pub backends: Vec<String>,
    /// Each backend's settings where it has any (e.g. the container's namespaces).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The scenarios, in the order they ran.
    pub scenarios: Vec<PlannedScenario>,
}

/// One scenario of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedScenario {
    /// The scenario name.
    pub name: String,
    /// The workload command line each instance ran.
    pub workload: Vec<String>,
    /// Measured runs per backend.
    pub runs: u32,
    /// Discarded warmup runs per backend, before the measured ones.
    pub warmup: u32,
    /// Seconds after which a run is killed and counted as failed.
    pub timeout_s: f64,
}

/// Which direction of a metric is the good one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Smaller values are better (times, sizes).
    Lower,
    /// Larger values are better (rates).
    Higher,
}

/// One figure: a metric of a scenario on a backend, over all measured runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Figure {
    /// The backend.
    pub backend: String,
    /// The scenario.
    pub scenario: String,
    /// The metric.
    pub metric: String,
    /// The unit of every sample.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// Raw samples, one per successful measured run, in run order.
    pub samples: Vec<f64>,
    /// Their summary.
    pub summary: Summary,
}

/// Host-clock markers of one run, in milliseconds after the launch was requested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Markers {
    /// The workload's `started` record arrived.
    pub started_ms: Option<f64>,
    /// The workload's `result` record arrived.
    pub result_ms: Option<f64>,
    /// The instance's process exited (was reaped).
    pub exited_ms: Option<f64>,
    /// Everything the instance used was torn down.
    pub gone_ms: Option<f64>,
}

/// One run of one scenario on one backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    /// The backend.
    pub backend: String,
    /// The scenario.
    pub scenario: String,
    /// Position among this backend and scenario's runs, warmups first, from 0.
    pub index: u32,
    /// A discarded warmup run.
    pub warmup: bool,
    /// The run produced a result.
    pub ok: bool,
    /// Host-clock markers.
    pub markers: Markers,
    /// The exit status (128 + signal when killed by one), when it exited.
    pub exit_status: Option<i32>,
    /// `ru_maxrss` of the instance's main host process from wait4(2), KiB. Linux carries
    /// the high-water mark across exec, so this includes the launching process's image;
    /// the workload's own peak is the `peak_rss` figure.
    pub host_maxrss_kib: Option<u64>,
    /// The largest memory of the instance's host processes seen by sampling every
    /// 10 ms while it lived (none for instances that lived less than one interval).
    pub sampled_peak: Option<Memory>,
    /// The backend's own phases, in order (empty for backends without any).
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// Counts the backend kept, such as VM exits by kind.
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
}

/// One phase of a backend, stamped on the host clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Phase {
    /// What had just been done, e.g. `cgroup_attached` or `vm_created`.
    pub name: String,
    /// Milliseconds after the launch was requested.
    pub ms: f64,
}

/// A run that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    /// The backend.
    pub backend: String,
    /// The scenario.
    pub scenario: String,
    /// The run's index (see [`Run::index`]).
    pub index: u32,
    /// Why it failed.
    pub reason: String,
}

/// Something of the plan that was not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Skip {
    /// The backend.
    pub backend: String,
    /// The scenario, or none when the whole backend was skipped.
    pub scenario: Option<String>,
    /// Why.
    pub reason: String,
}

impl Results {
    /// The figure for `backend` × `scenario` × `metric`, if measured.
    pub fn figure(&self, backend: &str, scenario: &str, metric: &str) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| f.backend == backend && f.scenario == scenario && f.metric == metric)
    }

    /// Reads and checks a results document.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let not_results = |source| Error::NotResults {
            path: path.to_owned(),
            source,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(not_results)?;
        if let Some(found) = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
        {
            if found != u64::from(SCHEMA_VERSION) {
                return Err(Error::SchemaVersion {
                    path: path.to_owned(),
                    found,
                });
            }
        }
        serde_json::from_value(value).map_err(not_results)
    }

    /// The document as pretty JSON.
    pub fn to_json(&self) -> String {
        // Every field is a plain string, number, bool or list of them; serde_json cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the document atomically: to a temporary file beside `path`, synced, then
    /// renamed over it, so a reader never sees half a document and an earlier file is
    /// replaced only by a complete one.
    pub fn write_atomic(&self, path: &Path) -> Result<(), Error> {
        write_atomic(path, self.to_json().as_bytes())
    }
}

/// Writes `bytes` to `path` atomically (see [`Results::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let write_error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".vcbench-")
        .tempfile_in(dir)
        .map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    file.write_all(b"\n").map_err(write_error)?;
    file.as_file().sync_all().map_err(write_error)?;
    file.persist(path).map_err(|e| write_error(e.error))?;
    Ok(())
}

/// Checks that results can be written to `path` before any work is done: its directory
/// exists and accepts a new file, and `path` is not a directory.
pub fn check_writable(path: &Path) -> Result<(), Error> {
    let write_error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    if path.is_dir() {
        return Err(write_error(std::io::Error::other("it is a directory")));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".vcbench-check-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(write_error)
}

/// The JSON Schema of the results document.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Results);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

/// The current time in RFC 3339, UTC, to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let samples = vec![0.812_345_678_9, 0.79, 1.234e-3, 12_345.678];
        Results {
            schema_version: SCHEMA_VERSION,
            tool: crate::runner::tool(),
            host: Host::detect(),
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
            },
            started_at: now_rfc3339(),
            finished_at: now_rfc3339(),
            complete: false,
            figures: vec![Figure {
                backend: "native".into(),
                scenario: "startup".into(),
                metric: "time_to_start".into(),
                unit: "ms".into(),
                better: Better::Lower,
                summary: Summary::of(&samples).unwrap(),
                samples,
            }],
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
        results.write_atomic(&path).unwrap();
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
        sample().write_atomic(&path).unwrap();
        let before = std::fs::read(&path).unwrap();
        // A path whose directory does not exist cannot be written, and touches nothing.
        assert!(matches!(
            sample().write_atomic(&dir.path().join("no/r.json")),
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
