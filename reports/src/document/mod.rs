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
pub mod names;
pub mod surface;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use host::{Host, Kvm};
pub use names::{Backend, Metric, Part, Scenario};
pub use stats::{Estimate, Interval, Summary};

/// The version of this document's layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 2;

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
    /// What each backend lets a hostile program reach of the host kernel (its filter),
    /// when the isolation scenario ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reachable: Vec<surface::Reachable>,
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
    /// How each scenario's runs were ordered among the backends: `interleaved` (rounds
    /// of one run per backend, each round shuffled), `random` or `blocked` (every run of
    /// one backend before the next). Documents before version 2 ran `blocked`.
    #[serde(default = "blocked")]
    pub order: String,
    /// The seed of every shuffle and bootstrap of the run: the same seed gives the same
    /// order and the same intervals.
    #[serde(default)]
    pub seed: u64,
    /// The backend other backends' figures are compared with (`vs_baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Per backend, how its records were stamped on the host's clock.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stamping: BTreeMap<String, String>,
    /// The measured delay, ms (median), between a write to a pipe and the stamp of the
    /// host thread reading it: what records stamped by a pipe reader carry and records
    /// stamped by a monitor at the exit do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipe_stamp_delay_ms: Option<f64>,
    /// The time budget of the run (`--max-time`), seconds: each scenario's measured runs
    /// stopped once its share was spent, so a figure's `n` may be below `runs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time_s: Option<f64>,
    /// The CPUs the run was held to (`--cpus-set`), as the kernel lists them (`2-3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
}

fn blocked() -> String {
    "blocked".to_owned()
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
    /// A distribution of samples from repeated runs, or a single derived value.
    #[serde(default)]
    pub kind: Kind,
    /// Which clock timed it, where it is a time or a rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Clock>,
    /// What ran, beyond the backend's name (its guest, namespaces, limits): part of the
    /// figure's identity. Figures are paired across backends or documents only when
    /// this says they ran like work; otherwise the difference is named.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// The figure is a hypervisor's raw cost (a micro guest: no kernel, no program), with
    /// no like figure on a backend that runs programs: it is never set against one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub raw_cost: bool,
    /// Raw samples, one per successful measured run, in run order (one for a value).
    pub samples: Vec<f64>,
    /// Their summary.
    pub summary: Summary,
    /// Its median against the baseline backend's like figure, with an interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_baseline: Option<Ratio>,
    /// The goal this figure is held to (the startup scenario's derived figures), judged by
    /// its interval ([`Figure::verdict`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
}

/// A goal a figure is held to: its value at most this much, in the figure's unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Goal {
    /// The most the figure may be.
    pub at_most: f64,
}

/// What a figure's 95% interval says of its goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The whole interval is at most the goal.
    Met,
    /// The whole interval is above the goal.
    Missed,
    /// The interval holds the goal: the runs cannot tell; more runs, or a quieter machine,
    /// may.
    Undecided,
}

impl Verdict {
    /// The verdict as one word.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "missed",
            Verdict::Undecided => "undecided",
        }
    }
}

impl Figure {
    /// A figure of samples from repeated runs; `None` when there are none or one is not
    /// finite.
    pub fn distribution(
        backend: &str,
        scenario: &str,
        metric: &str,
        unit: &str,
        better: Better,
        samples: Vec<f64>,
    ) -> Option<Figure> {
        Some(Figure {
            backend: backend.to_owned(),
            scenario: scenario.to_owned(),
            metric: metric.to_owned(),
            unit: unit.to_owned(),
            better,
            kind: Kind::Distribution,
            clock: None,
            variant: String::new(),
            raw_cost: false,
            summary: stats::summarise(&samples)?,
            samples,
            vs_baseline: None,
            goal: None,
        })
    }

    /// A figure that is one derived number; `None` when it is not finite.
    pub fn value(
        backend: &str,
        scenario: &str,
        metric: &str,
        unit: &str,
        better: Better,
        value: f64,
    ) -> Option<Figure> {
        let mut figure =
            Figure::distribution(backend, scenario, metric, unit, better, vec![value])?;
        figure.kind = Kind::Value;
        figure.summary.ci = None;
        Some(figure)
    }

    /// The same figure, timed by `clock`.
    pub fn timed_by(mut self, clock: Option<Clock>) -> Figure {
        self.clock = clock;
        self
    }

    /// The same figure, saying what ran (see [`Figure::variant`], [`Figure::raw_cost`]).
    pub fn ran(mut self, variant: &str, raw_cost: bool) -> Figure {
        self.variant = variant.to_owned();
        self.raw_cost = raw_cost;
        self
    }

    /// The same figure, held to be at most `at_most` (see [`Figure::verdict`]).
    pub fn held_to(mut self, at_most: f64) -> Figure {
        self.goal = Some(Goal { at_most });
        self
    }

    /// Whether the figure met its goal, by its 95% interval; `None` when it has no goal
    /// or no interval.
    pub fn verdict(&self) -> Option<Verdict> {
        let goal = self.goal?;
        let ci = self.summary.ci.as_ref()?;
        Some(if ci.high <= goal.at_most {
            Verdict::Met
        } else if ci.low > goal.at_most {
            Verdict::Missed
        } else {
            Verdict::Undecided
        })
    }

    /// `backend scenario metric`: how the figure is named to a reader.
    pub fn name(&self) -> String {
        format!("{} {} {}", self.backend, self.scenario, self.metric)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Whether a figure is a distribution or a single value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Samples from repeated runs: median, interval, spread and outliers mean something.
    #[default]
    Distribution,
    /// One number derived once (a count of checks, a marginal cost): no spread, no
    /// interval.
    Value,
}

/// The clock that timed a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// The host's monotonic clock, read by vcbench (markers, phases).
    Host,
    /// The instance's own clock, read by the workload: in a VM the guest's clock.
    Instance,
}

/// A figure's median over the baseline's like figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ratio {
    /// The baseline backend.
    pub baseline: String,
    /// The ratio of the medians, and its bootstrap interval.
    pub estimate: Estimate,
}

impl Ratio {
    /// Whether the interval excludes 1: the two differ beyond what the runs vary by.
    pub fn differs(&self) -> bool {
        !self.estimate.ci.contains(1.0)
    }
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
    /// What the workload saw of its kernel that is not a number: the clocksource it
    /// keeps time with and its timer's clock event device (`lapic-deadline`: the local
    /// APIC timer in TSC-deadline mode). For a VM, the guest kernel's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
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

    /// The baseline backend: the plan's, else native when it has figures, else the first
    /// backend with figures.
    pub fn baseline(&self) -> Option<&str> {
        choose_baseline(self.plan.baseline.as_deref(), &self.backends())
    }

    /// Sets every figure's ratio against the baseline's like figure: same scenario,
    /// metric, unit and variant kind, both distributions, neither a raw hypervisor cost.
    /// The interval is a bootstrap from the plan's seed.
    pub fn attach_ratios(&mut self) {
        let Some(baseline) = self.baseline().map(str::to_owned) else {
            return;
        };
        let seed = self.plan.seed;
        let base: Vec<Figure> = self
            .figures
            .iter()
            .filter(|f| f.backend == baseline)
            .cloned()
            .collect();
        for figure in &mut self.figures {
            figure.vs_baseline = None;
            if figure.backend == baseline || figure.raw_cost || figure.kind == Kind::Value {
                continue;
            }
            let Some(like) = base.iter().find(|b| {
                b.scenario == figure.scenario
                    && b.metric == figure.metric
                    && b.unit == figure.unit
                    && b.kind == Kind::Distribution
                    && !b.raw_cost
            }) else {
                continue;
            };
            figure.vs_baseline = stats::ratio_of_medians(
                &like.samples,
                &figure.samples,
                stats::LEVEL,
                stats::DEFAULT_RESAMPLES,
                seed,
            )
            .map(|estimate| Ratio {
                baseline: baseline.clone(),
                estimate,
            });
        }
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
        let mut doc: Results =
            serde_json::from_value(value).map_err(|e| not_results(e.to_string()))?;
        if version < 2 {
            doc.upgrade_from_v1();
        }
        Ok(doc)
    }

    /// Brings a version 1 document to today's layout: its summaries are taken again from
    /// its samples (with the median's interval), its micro-guest VM figures are raw
    /// hypervisor costs (its plan's settings say which backends ran micro guests), single
    /// derived numbers are values, and ratios against native are computed from its
    /// samples.
    fn upgrade_from_v1(&mut self) {
        let micro: Vec<String> = self
            .plan
            .settings
            .iter()
            .filter(|(_, s)| s.contains("micro guest"))
            .map(|(b, _)| b.clone())
            .collect();
        for figure in &mut self.figures {
            figure.raw_cost = micro.contains(&figure.backend);
            // Today's summary: the median's interval, outliers with the MeanAD fallback.
            if let Some(summary) = stats::summarise(&figure.samples) {
                figure.summary = summary;
            }
            if (figure.scenario == Scenario::Isolation || figure.scenario == Scenario::Density)
                && figure.samples.len() == 1
            {
                figure.kind = Kind::Value;
            }
        }
        self.attach_ratios();
    }

    /// The document as pretty JSON.
    pub fn to_json(&self) -> String {
        // Every field is a plain string, number, bool or list or map of them with string
        // keys; serde_json cannot fail on them.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The baseline among `backends`: the one `asked` for, else native when it is one of
/// them, else the first.
pub fn choose_baseline<'a>(asked: Option<&'a str>, backends: &[&'a str]) -> Option<&'a str> {
    asked
        .or_else(|| backends.iter().copied().find(|b| *b == Backend::Native))
        .or_else(|| backends.first().copied())
}

/// The JSON Schema of the results document.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Results);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
