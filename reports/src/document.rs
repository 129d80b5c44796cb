//! The parts of a results document a report reads.
//!
//! This is a read model of the document `vcbench run` writes (its JSON Schema is
//! `docs/results.schema.json`): only the fields a report shows, each optional part
//! defaulting to empty, so a document from a run that did not take some figure still
//! renders, and the version is checked before anything else is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The newest document layout this crate reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a document cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not JSON, or is cut short.
    #[error("{path} is not a results document (not JSON, or cut short): {source}")]
    NotJson {
        /// The file.
        path: PathBuf,
        /// Where parsing stopped.
        #[source]
        source: serde_json::Error,
    },
    /// It is JSON, but not a vcbench results document.
    #[error("{path} is JSON but not a vcbench results document: {reason}")]
    NotResults {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// It was written by a newer vcbench.
    #[error(
        "{path} has schema version {found}, newer than the {SCHEMA_VERSION} this vcbench reads; \
         use a newer vcbench"
    )]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u64,
    },
}

/// A results document.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Document {
    /// Layout version.
    pub schema_version: u32,
    /// The tool that wrote it.
    pub tool: Tool,
    /// The machine it was taken on.
    pub host: Host,
    /// When the run started.
    pub started_at: String,
    /// Whether the run finished its plan.
    pub complete: bool,
    /// Every figure.
    pub figures: Vec<Figure>,
    /// Every run.
    #[serde(default)]
    pub runs: Vec<Run>,
    /// Failed runs.
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// What was not run, and why.
    #[serde(default)]
    pub skipped: Vec<Skip>,
    /// Isolation matrices.
    #[serde(default)]
    pub isolation: Vec<Isolation>,
    /// Host attack surface per traced workload.
    #[serde(default)]
    pub surface: Vec<Surface>,
    /// Density series.
    #[serde(default)]
    pub density: Vec<Density>,
}

/// The tool's identity.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Tool {
    /// Version.
    pub version: String,
    /// Git revision.
    pub git_revision: String,
}

/// The host.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Host {
    /// Host name.
    pub hostname: String,
    /// CPU model.
    pub cpu_model: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// Distribution.
    pub os: String,
    /// Whether the CPU is emulated (QEMU TCG).
    #[serde(default)]
    pub emulated: bool,
    /// The KVM offered.
    pub kvm: Kvm,
    /// cgroup layout.
    pub cgroup: String,
}

/// The KVM flavour.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Kvm {
    /// `hardware`, `software` or `unavailable`.
    pub flavour: String,
    /// The module.
    pub module: Option<String>,
}

/// One figure with its summary.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Figure {
    /// Backend.
    pub backend: String,
    /// Scenario.
    pub scenario: String,
    /// Metric.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// `lower` or `higher`.
    pub better: String,
    /// Raw samples.
    pub samples: Vec<f64>,
    /// Their summary.
    pub summary: Summary,
}

/// A summary of samples.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Summary {
    /// Count.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stddev: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// Coefficient of variation (0 when the mean is 0).
    pub fn cv(&self) -> f64 {
        if self.mean == 0.0 {
            0.0
        } else {
            self.stddev / self.mean.abs()
        }
    }
}

/// One run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Run {
    /// Backend.
    pub backend: String,
    /// Scenario.
    pub scenario: String,
    /// A warmup run.
    pub warmup: bool,
    /// It succeeded.
    pub ok: bool,
    /// Host-clock markers, ms after launch.
    pub markers: Markers,
    /// The backend's phases, ms after launch.
    #[serde(default)]
    pub phases: Vec<Phase>,
}

/// Host-clock markers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Markers {
    /// The workload's first record.
    pub started_ms: Option<f64>,
}

/// A backend phase.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Phase {
    /// Its name.
    pub name: String,
    /// When, ms after launch.
    pub ms: f64,
}

/// A failed run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Failure {
    /// Backend.
    pub backend: String,
    /// Scenario.
    pub scenario: String,
    /// Why.
    pub reason: String,
}

/// Something not run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Skip {
    /// Backend.
    pub backend: String,
    /// Scenario, or all of the backend's.
    pub scenario: Option<String>,
    /// Why.
    pub reason: String,
}

/// One backend's isolation matrix.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Isolation {
    /// Backend.
    pub backend: String,
    /// Checks.
    pub rows: Vec<IsolationRow>,
}

/// One judged check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IsolationRow {
    /// Check.
    pub check: String,
    /// Answer inside.
    pub inside: String,
    /// `isolated`, `partly`, `shared`.
    pub verdict: String,
    /// Why.
    pub why: String,
}

/// Host attack surface of one traced run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Surface {
    /// Backend.
    pub backend: String,
    /// Workload command line.
    pub workload: Vec<String>,
    /// Distinct system calls.
    pub distinct_syscalls: u32,
    /// Total system calls.
    pub total_syscalls: u64,
    /// Per second.
    pub syscalls_per_s: f64,
}

/// A density series.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Density {
    /// Backend.
    pub backend: String,
    /// Steps.
    pub steps: Vec<DensityStep>,
    /// Most alive at once.
    pub reached: u32,
    /// Why it stopped early.
    pub stopped: Option<String>,
}

/// A density step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DensityStep {
    /// Instances alive.
    pub instances: u32,
    /// Start latencies of the step's instances, ms.
    pub start_ms: Vec<f64>,
    /// Memory per instance.
    pub per_instance: PerInstance,
}

/// Memory per instance, KiB.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PerInstance {
    /// PSS.
    pub pss_kib: u64,
    /// Named parts.
    #[serde(default)]
    pub parts: BTreeMap<String, u64>,
}

impl Document {
    /// Reads and checks a results file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses a results document; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| Error::NotJson {
                path: path.to_owned(),
                source,
            })?;
        let not_results = |reason: &str| Error::NotResults {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let version = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| not_results("it has no schema_version"))?;
        if version > u64::from(SCHEMA_VERSION) {
            return Err(Error::Newer {
                path: path.to_owned(),
                found: version,
            });
        }
        serde_json::from_value(value).map_err(|e| not_results(&e.to_string()))
    }

    /// The figure for a backend, scenario and metric.
    pub fn figure(&self, backend: &str, scenario: &str, metric: &str) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| f.backend == backend && f.scenario == scenario && f.metric == metric)
    }

    /// The backends with figures, in the order they first appear.
    pub fn backends(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for f in &self.figures {
            if !seen.contains(&f.backend.as_str()) {
                seen.push(&f.backend);
            }
        }
        seen
    }

    /// The figure's median over native's for the same scenario and metric.
    pub fn vs_native(&self, figure: &Figure) -> Option<f64> {
        if figure.backend == "native" {
            return None;
        }
        let native = self.figure("native", &figure.scenario, &figure.metric)?;
        (native.summary.median != 0.0).then(|| figure.summary.median / native.summary.median)
    }
}
