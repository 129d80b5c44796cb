//! The results document: everything one `vcbench run` measured, in one JSON file.
//!
//! These types are the document's one definition: `vcbench` fills them in and writes
//! them, the reports read them. A figure is addressed as backend × scenario × metric and
//! carries its unit, which way is better, every raw sample in run order and their
//! summary. The document also holds the host description, the plan that was run, every
//! run's markers, and every failure and skip with its reason. `docs/results.schema.json`
//! is its JSON Schema, generated from these types ([`json_schema`], `vcbench schema`).
//! Readers must check `schema_version`: [`Results::read`] does.

pub mod density;
pub mod host;
pub mod isolation;
pub mod surface;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use host::{Host, Kvm};

/// The version of this document's layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a file cannot be read as a results document.
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
    /// The path is not a regular file, or one far larger than any results document.
    #[error("{path} is not a vcbench results document: it is {what}")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        what: String,
    },
    /// The file ends before its JSON does: it was cut short.
    #[error(
        "{path} is not a vcbench results document: it is cut short (its text ends at line \
         {line}, inside the document); was it copied or written only in part?"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The line its text ends on.
        line: usize,
    },
    /// The file is not JSON.
    #[error("{path} is not a vcbench results document: it is not JSON")]
    NotJson {
        /// The file.
        path: PathBuf,
        /// Where parsing stopped.
        #[source]
        source: serde_json::Error,
    },
    /// The file is JSON, but not a results document.
    #[error("{path} is not a vcbench results document: {reason}")]
    NotResults {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// The file was written by a newer vcbench, in a layout this one does not know.
    #[error(
        "{path} has results schema version {found}, newer than version {SCHEMA_VERSION} that \
         this vcbench reads; use a newer vcbench"
    )]
    Newer {
        /// The file.
        path: PathBuf,
        /// The version it has.
        found: u64,
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
    pub density: Vec<density::Series>,
    /// The isolation matrix, one per backend, when the isolation scenario ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub isolation: Vec<isolation::Isolation>,
    /// What reached the host kernel on each backend's behalf, per traced workload, when the
    /// isolation scenario ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub surface: Vec<surface::Surface>,
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
}

/// A process's memory at one instant, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Memory {
    /// Resident set size.
    pub rss_kib: u64,
    /// Proportional set size.
    pub pss_kib: u64,
    /// Unique set size: private clean + private dirty.
    pub uss_kib: u64,
}

/// The largest results file read; a run with raw samples of every scenario writes a few
/// MiB at most.
pub const MAX_DOCUMENT_BYTES: u64 = 256 << 20;

impl Results {
    /// The figure for `backend` × `scenario` × `metric`, if measured.
    pub fn figure(&self, backend: &str, scenario: &str, metric: &str) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| f.backend == backend && f.scenario == scenario && f.metric == metric)
    }

    /// The backends that have figures, in the order they first appear.
    pub fn backends(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for f in &self.figures {
            if !seen.contains(&f.backend.as_str()) {
                seen.push(&f.backend);
            }
        }
        seen
    }

    /// The figure's median over native's median for the same scenario and metric; `None`
    /// for native itself, or when native has no such figure (or a zero median).
    pub fn vs_native(&self, figure: &Figure) -> Option<f64> {
        if figure.backend == "native" {
            return None;
        }
        let native = self.figure("native", &figure.scenario, &figure.metric)?;
        (native.summary.median != 0.0).then(|| figure.summary.median / native.summary.median)
    }

    /// Reads and checks a results document: a regular file of at most
    /// [`MAX_DOCUMENT_BYTES`] (a device such as /dev/zero would never end).
    pub fn read(path: &Path) -> Result<Self, Error> {
        let read_error = |source| Error::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_error)?;
        let not_a_file = |what: String| Error::NotAFile {
            path: path.to_owned(),
            what,
        };
        if meta.is_dir() {
            return Err(not_a_file("a directory".to_owned()));
        }
        if !meta.is_file() {
            return Err(not_a_file(
                "not a regular file (a device, pipe or socket)".to_owned(),
            ));
        }
        if meta.len() > MAX_DOCUMENT_BYTES {
            return Err(not_a_file(format!(
                "{} MiB, far larger than any (at most {} MiB)",
                meta.len() >> 20,
                MAX_DOCUMENT_BYTES >> 20
            )));
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        Self::parse(&text, path)
    }

    /// Parses and checks the text of a results document; `path` names it in errors. The
    /// version is checked before anything else, so a newer document is named as such
    /// rather than as a malformed one.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|source| {
            if source.is_eof() {
                Error::Truncated {
                    path: path.to_owned(),
                    line: source.line(),
                }
            } else {
                Error::NotJson {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        let not_results = |reason: String| Error::NotResults {
            path: path.to_owned(),
            reason,
        };
        if !value.is_object() {
            return Err(not_results("it is not a JSON object".to_owned()));
        }
        let version = match value.get("schema_version") {
            None => return Err(not_results("it has no schema_version".to_owned())),
            Some(v) => v.as_u64().ok_or_else(|| {
                not_results(format!("its schema_version {v} is not a whole number"))
            })?,
        };
        if version > u64::from(SCHEMA_VERSION) {
            return Err(Error::Newer {
                path: path.to_owned(),
                found: version,
            });
        }
        serde_json::from_value(value).map_err(|e| not_results(e.to_string()))
    }

    /// The document as pretty JSON.
    pub fn to_json(&self) -> String {
        // Every field is a plain string, number, bool or list or map of them with string
        // keys; serde_json cannot fail on them.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
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

/// The JSON Schema of the results document.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Results);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
