//! The fleet document: the same plan run on many hosts, merged into one JSON file.
//!
//! `vcbench merge` reads one results document per host and writes a fleet document. In
//! it a figure is addressed as host × backend × scenario × metric: the host is part of
//! the figure's identity, so figures from two machines are never pooled or averaged,
//! only set side by side. Each host keeps what its own document said of it (its
//! description, tool, plan, runs, failures and skips); a host that could not run is a
//! skipped host with its reason. Everything in which the hosts' documents differ beyond
//! the host itself (plans, tool versions, schema versions, an interrupted run) is listed
//! in [`Fleet::differences`]. The layout has a version of its own,
//! [`FLEET_SCHEMA_VERSION`], and a JSON Schema ([`json_schema`], `vcbench schema
//! --fleet`). [`Document::read`] reads either kind of document.

pub mod chart;
pub mod merge;
pub mod notes;
pub mod render;

use std::path::{Path, PathBuf};

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::document::{Error, Figure, Plan, Results};

/// The version of the fleet document's layout; bumped on any incompatible change.
pub const FLEET_SCHEMA_VERSION: u32 = 1;

/// Many hosts' results of one plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Fleet {
    /// Layout version of this document ([`FLEET_SCHEMA_VERSION`]); its presence is what
    /// tells a fleet document from a single host's.
    pub fleet_schema_version: u32,
    /// The tool that merged it (`vcbench 0.1.0 (revision)`).
    pub merged_by: String,
    /// When it was merged (RFC 3339, UTC).
    pub merged_at: String,
    /// The plan every host ran: the first host's, and where plans differ (merged only
    /// when asked to), each difference is in `differences`.
    #[schemars(schema_with = "plan_schema")]
    pub plan: Plan,
    /// The hosts that ran, in the order their documents were given.
    pub hosts: Vec<Member>,
    /// The hosts that could not run, or whose results could not be read, with why.
    #[serde(default)]
    pub skipped_hosts: Vec<SkippedHost>,
    /// Everything in which the hosts' documents differ beyond the hosts themselves.
    #[serde(default)]
    pub differences: Vec<Difference>,
    /// Every host's figures, each naming its host.
    pub figures: Vec<HostFigure>,
}

/// One host of a fleet: its name, the file it came from, and its results document as
/// that file had it, but for its figures, which are in [`Fleet::figures`], each naming
/// this host (here `figures` is empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The host's name in the fleet: its host name, which is unique in a fleet.
    pub name: String,
    /// The file its results were read from.
    pub source: String,
    /// Its results document (`schema_version` is the file's: version 1 documents are
    /// brought to today's layout when read), its figures moved to [`Fleet::figures`].
    #[serde(flatten)]
    pub results: Results,
}

/// A host that is part of the fleet but has no results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkippedHost {
    /// The host's name (its inventory name, or its file's name when nothing else is known).
    pub name: String,
    /// Why it has no results.
    pub reason: String,
}

/// One way in which the hosts' documents differ, beyond the hosts themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Difference {
    /// Where: `plan`, `tool`, `schema` or `run`.
    pub kind: DifferenceKind,
    /// What differs, e.g. `startup runs` or `vcbench version`.
    pub what: String,
    /// Each host's value, in the order of [`Fleet::hosts`].
    pub values: Vec<HostValue>,
    /// What it means for the figures.
    pub meaning: String,
}

/// One host's value of a [`Difference`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostValue {
    /// The host.
    pub host: String,
    /// Its value.
    pub value: String,
}

/// Where a difference between hosts' documents lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DifferenceKind {
    /// What the run was asked to do (scenarios, runs, backends, order, seed, settings).
    Plan,
    /// The tool that measured (its version, revision, workload binary).
    Tool,
    /// The results document's layout version.
    Schema,
    /// How the run went (interrupted).
    Run,
}

/// A figure of one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostFigure {
    /// The host it was measured on ([`Member::name`]).
    pub host: String,
    /// The figure, as the host's own document had it.
    #[serde(flatten)]
    pub figure: Figure,
}

impl Fleet {
    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.hosts.iter().find(|m| m.name == name)
    }

    /// The backend every ratio is against: the plan's baseline, else the one the
    /// figures' ratios name, else native.
    pub fn baseline(&self) -> String {
        self.plan
            .baseline
            .clone()
            .or_else(|| {
                self.figures
                    .iter()
                    .find_map(|f| Some(f.figure.vs_baseline.as_ref()?.baseline.clone()))
            })
            .unwrap_or_else(|| crate::document::Backend::Native.name().to_owned())
    }

    /// The figures of the host named `name`.
    pub fn figures_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Figure> + 'a {
        self.figures
            .iter()
            .filter(move |f| f.host == name)
            .map(|f| &f.figure)
    }

    /// The host named `name` as a single-host results document, as its own file had it:
    /// what every single-host report and `compare` read.
    pub fn host_results(&self, name: &str) -> Option<Results> {
        let m = self.member(name)?;
        let mut results = m.results.clone();
        results.figures = self.figures_of(name).cloned().collect();
        Some(results)
    }

    /// Every figure's identity but the host (`backend scenario metric`, with its
    /// variant when it has one), in the order they first appear.
    pub fn figure_keys(&self) -> Vec<FigureKey> {
        let mut keys: Vec<FigureKey> = Vec::new();
        for f in &self.figures {
            let key = FigureKey::of(&f.figure);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// The figure of `host` with `key`'s identity.
    pub fn figure<'a>(&'a self, host: &'a str, key: &FigureKey) -> Option<&'a Figure> {
        self.figures_of(host).find(|f| key.matches(f))
    }

    /// The document as pretty JSON.
    pub fn to_json(&self) -> String {
        // Plain strings, numbers, bools and lists and maps of them: serde_json cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses and checks the text of a fleet document (`path` names it in errors): the
    /// version first, then the layout, then that every figure's host is one of its hosts.
    pub fn parse(text: &str, path: &Path) -> Result<Fleet, Error> {
        let value = json_value(text, path)?;
        Self::from_value(value, path)
    }

    fn from_value(value: serde_json::Value, path: &Path) -> Result<Fleet, Error> {
        let not_fleet = |reason: String| Error::NotResults {
            path: path.to_owned(),
            reason,
        };
        let version = match value.get("fleet_schema_version") {
            None => return Err(not_fleet("it has no fleet_schema_version".to_owned())),
            Some(v) => v.as_u64().ok_or_else(|| {
                not_fleet(format!(
                    "its fleet_schema_version {v} is not a whole number"
                ))
            })?,
        };
        if version > u64::from(FLEET_SCHEMA_VERSION) {
            return Err(not_fleet(format!(
                "it is a fleet document of schema version {version}, newer than version \
                 {FLEET_SCHEMA_VERSION} that this vcbench reads; use a newer vcbench"
            )));
        }
        let fleet: Fleet = serde_json::from_value(value).map_err(|e| not_fleet(e.to_string()))?;
        if let Some(stray) = fleet
            .figures
            .iter()
            .find(|f| fleet.member(&f.host).is_none())
        {
            return Err(not_fleet(format!(
                "its figure {} names host {:?}, which is not one of its hosts",
                stray.figure.name(),
                stray.host
            )));
        }
        Ok(fleet)
    }
}

/// A figure's identity apart from its host: what is set side by side across hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigureKey {
    /// The backend.
    pub backend: String,
    /// The scenario.
    pub scenario: String,
    /// The metric.
    pub metric: String,
    /// The unit.
    pub unit: String,
    /// A micro guest's raw hypervisor cost.
    pub raw_cost: bool,
}

impl FigureKey {
    /// The identity of `figure`.
    pub fn of(figure: &Figure) -> FigureKey {
        FigureKey {
            backend: figure.backend.clone(),
            scenario: figure.scenario.clone(),
            metric: figure.metric.clone(),
            unit: figure.unit.clone(),
            raw_cost: figure.raw_cost,
        }
    }

    /// Whether `figure` has this identity.
    pub fn matches(&self, figure: &Figure) -> bool {
        *self == FigureKey::of(figure)
    }

    /// `backend scenario metric`, as figures are named to a reader.
    pub fn name(&self) -> String {
        format!("{} {} {}", self.backend, self.scenario, self.metric)
    }
}

/// Either kind of document `vcbench` writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// One host's run.
    Single(Box<Results>),
    /// Many hosts' runs, merged.
    Fleet(Box<Fleet>),
}

impl Document {
    /// Reads either a results or a fleet document, with the checks of
    /// [`Results::read`]: a regular file of reasonable size, whole, JSON, of a version
    /// this vcbench reads.
    pub fn read(path: &Path) -> Result<Document, Error> {
        match Results::read(path) {
            Ok(results) => Ok(Document::Single(Box::new(results))),
            // A fleet document has no `schema_version`: the file passed every other check.
            Err(error @ Error::NotResults { .. }) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let value = json_value(&text, path)?;
                if value.get("fleet_schema_version").is_none() {
                    return Err(error);
                }
                Fleet::from_value(value, path).map(|f| Document::Fleet(Box::new(f)))
            }
            Err(error) => Err(error),
        }
    }

    /// The documents of each host, each named: a single host's document is itself
    /// (named by `name`), a fleet's hosts are each one, named `name:host`.
    pub fn per_host(self, name: &str) -> Vec<(String, Results)> {
        match self {
            Document::Single(r) => vec![(name.to_owned(), *r)],
            Document::Fleet(f) => f
                .hosts
                .iter()
                .filter_map(|m| {
                    let r = f.host_results(&m.name)?;
                    Some((format!("{name}:{}", m.name), r))
                })
                .collect(),
        }
    }
}

/// `text` as JSON, a document cut short named as such.
fn json_value(text: &str, path: &Path) -> Result<serde_json::Value, Error> {
    serde_json::from_str(text).map_err(|source| {
        if source.is_eof() {
            Error::Truncated {
                path: PathBuf::from(path),
                line: source.line(),
            }
        } else {
            Error::NotJson {
                path: path.to_owned(),
                source,
            }
        }
    })
}

// The fleet's schema describes what is the fleet's own, and refers to the results
// document's schema (docs/results.schema.json, beside it) for a host's document and a
// figure, so a change to the results document does not change the fleet's schema.

impl JsonSchema for Member {
    fn schema_name() -> Cow<'static, str> {
        "Member".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "One host of a fleet: its name, the file it came from, and its \
                results document as that file had it (results.schema.json), but for its \
                figures, which are in the fleet's figures, each naming this host (here \
                `figures` is empty).",
            "type": "object",
            "allOf": [{"$ref": "results.schema.json"}],
            "properties": {
                "name": {
                    "description": "The host's name in the fleet: its host name, which is \
                        unique in a fleet.",
                    "type": "string"
                },
                "source": {
                    "description": "The file its results were read from.",
                    "type": "string"
                }
            },
            "required": ["name", "source"]
        })
    }
}

fn plan_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The plan every host ran (results.schema.json, its Plan): the first \
            host's, and where plans differ (merged only when asked to), each difference is \
            in `differences`.",
        "$ref": "results.schema.json#/$defs/Plan"
    })
}

impl JsonSchema for HostFigure {
    fn schema_name() -> Cow<'static, str> {
        "HostFigure".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A figure of one host: a figure of the results document \
                (results.schema.json, its Figure) with the host it was measured on.",
            "type": "object",
            "allOf": [{"$ref": "results.schema.json#/$defs/Figure"}],
            "properties": {
                "host": {
                    "description": "The host it was measured on (a member's name).",
                    "type": "string"
                }
            },
            "required": ["host"]
        })
    }
}

/// The JSON Schema of the fleet document.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Fleet);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

#[cfg(test)]
mod tests;
