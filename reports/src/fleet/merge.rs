//! Merging hosts' results documents into one fleet document.
//!
//! Nothing is pooled or averaged: each host's figures stay its own, named by the host.
//! What the merge checks, and what it does about it:
//!
//! - two documents from one host name: refused, since a host appears once in a fleet
//!   (two runs of one host are what `compare` is for);
//! - plans that ask for different work (backends, scenarios, workloads, runs, warmups,
//!   timeouts, run order, baseline): refused with every difference listed, unless the
//!   caller allows it, and then merged with every difference listed in the document;
//! - differences that do not change what was asked (the seed, what a backend ran on a
//!   host, the stamping), different vcbench builds, different results schema versions
//!   and interrupted runs: merged, each listed with what it means;
//! - a host that could not run, or whose file could not be read: a skipped host with the
//!   reason, where the caller says so.

use crate::document::{Figure, Results};

use super::{
    Difference, DifferenceKind, Fleet, HostFigure, HostValue, Member, SkippedHost,
    FLEET_SCHEMA_VERSION,
};

/// Why documents cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No document had results.
    #[error("nothing to merge: no host has results{}", skipped_reasons(.skipped))]
    NoHosts {
        /// The hosts that were skipped, with why.
        skipped: Vec<SkippedHost>,
    },
    /// Two documents come from one host name.
    #[error(
        "{first} and {second} are both from host {name:?}: a host appears once in a fleet \
         (to set two runs of one host side by side, use vcbench compare; two machines need \
         distinct host names)"
    )]
    DuplicateHost {
        /// The host name.
        name: String,
        /// The first file from it.
        first: String,
        /// The second.
        second: String,
    },
    /// A host is both skipped and has results.
    #[error("host {name:?} is given as skipped ({reason}) and has results in {source_file}")]
    SkippedWithResults {
        /// The host name.
        name: String,
        /// Why it was said to be skipped.
        reason: String,
        /// The file with its results.
        source_file: String,
    },
    /// The plans ask for different work.
    #[error(
        "the hosts ran different plans, so their figures do not measure the same work:\n  {}\n\
         (run the same plan everywhere, or merge anyway with --allow-plan-differences to \
         keep every difference listed in the fleet document)",
        .differences.join("\n  ")
    )]
    PlansDiffer {
        /// Every difference, in words.
        differences: Vec<String>,
    },
}

fn skipped_reasons(skipped: &[SkippedHost]) -> String {
    skipped
        .iter()
        .map(|s| format!("; {} was skipped: {}", s.name, s.reason))
        .collect()
}

/// One input of a merge.
#[derive(Debug, Clone)]
pub enum Input {
    /// A host's results, read from `source`.
    Results {
        /// The file it was read from.
        source: String,
        /// The document.
        results: Box<Results>,
    },
    /// A host without results, and why.
    Skipped(SkippedHost),
}

/// What the merged document says of its making, and what the merge may allow.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The tool merging (`vcbench 0.1.0 (revision)`).
    pub merged_by: String,
    /// When (RFC 3339, UTC).
    pub merged_at: String,
    /// Merge plans that ask for different work, listing every difference, instead of
    /// refusing them.
    pub allow_plan_differences: bool,
}

/// Merges `inputs` into one fleet document.
pub fn merge(inputs: Vec<Input>, options: &Options) -> Result<Fleet, MergeError> {
    let mut members: Vec<(Member, Vec<Figure>)> = Vec::new();
    let mut skipped: Vec<SkippedHost> = Vec::new();
    for input in inputs {
        match input {
            Input::Results { source, results } => {
                let name = host_name(&results, &source);
                if let Some((first, _)) = members.iter().find(|(m, _)| m.name == name) {
                    return Err(MergeError::DuplicateHost {
                        name,
                        first: first.source.clone(),
                        second: source,
                    });
                }
                members.push(member(name, source, *results));
            }
            Input::Skipped(host) => {
                if !skipped.iter().any(|s: &SkippedHost| s.name == host.name) {
                    skipped.push(host);
                }
            }
        }
    }
    if let Some(s) = skipped
        .iter()
        .find_map(|s| Some((s, members.iter().find(|(m, _)| m.name == s.name)?)))
    {
        let (skip, (member, _)) = s;
        return Err(MergeError::SkippedWithResults {
            name: skip.name.clone(),
            reason: skip.reason.clone(),
            source_file: member.source.clone(),
        });
    }
    if members.is_empty() {
        return Err(MergeError::NoHosts { skipped });
    }
    let hosts: Vec<&Member> = members.iter().map(|(m, _)| m).collect();
    let (asked, stated) = differences(&hosts);
    if !asked.is_empty() && !options.allow_plan_differences {
        return Err(MergeError::PlansDiffer {
            differences: asked.iter().map(in_words).collect(),
        });
    }
    let plan = members[0].0.results.plan.clone();
    let mut figures = Vec::new();
    let mut hosts = Vec::new();
    for (m, own) in members {
        figures.extend(own.into_iter().map(|figure| HostFigure {
            host: m.name.clone(),
            figure,
        }));
        hosts.push(m);
    }
    Ok(Fleet {
        fleet_schema_version: FLEET_SCHEMA_VERSION,
        merged_by: options.merged_by.clone(),
        merged_at: options.merged_at.clone(),
        plan,
        hosts,
        skipped_hosts: skipped,
        differences: asked.into_iter().chain(stated).collect(),
        figures,
    })
}

/// A difference in one line: `startup runs: a 5, b 10`.
pub fn in_words(d: &Difference) -> String {
    let values: Vec<String> = d
        .values
        .iter()
        .map(|v| format!("{} {}", v.host, v.value))
        .collect();
    format!("{}: {}", d.what, values.join(", "))
}

/// The host's name in the fleet: its host name, or its file's name when it has none.
fn host_name(results: &Results, source: &str) -> String {
    let name = results.host.hostname.trim();
    if name.is_empty() {
        std::path::Path::new(source)
            .file_stem()
            .map_or_else(|| source.to_owned(), |s| s.to_string_lossy().into_owned())
    } else {
        name.to_owned()
    }
}

fn member(name: String, source: String, mut results: Results) -> (Member, Vec<Figure>) {
    let figures = std::mem::take(&mut results.figures);
    (
        Member {
            name,
            source,
            results,
        },
        figures,
    )
}

/// One fact of a member that hosts may differ in.
struct Fact {
    kind: DifferenceKind,
    what: String,
    value: Box<dyn Fn(&Member) -> String>,
    meaning: &'static str,
    /// Whether hosts differing in it were asked to do different work.
    asked: bool,
}

const ASKED: &str = "the hosts were asked for different work: their figures do not measure \
    the same thing, and setting them side by side says as much of the plans as of the hosts";

/// Every way the members differ, beyond the hosts themselves: those that mean they were
/// asked for different work, and those that are only stated.
fn differences(members: &[&Member]) -> (Vec<Difference>, Vec<Difference>) {
    let mut facts = vec![
        fact(DifferenceKind::Plan, "backends", true, ASKED, |m| {
            m.results.plan.backends.join(",")
        }),
        fact(DifferenceKind::Plan, "scenarios", true, ASKED, |m| {
            let names: Vec<&str> = m
                .results
                .plan
                .scenarios
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            names.join(",")
        }),
        fact(DifferenceKind::Plan, "order", true, ASKED, |m| {
            m.results.plan.order.clone()
        }),
        fact(DifferenceKind::Plan, "baseline", true, ASKED, |m| {
            m.results
                .plan
                .baseline
                .clone()
                .unwrap_or_else(|| "none".to_owned())
        }),
        fact(
            DifferenceKind::Plan,
            "seed",
            false,
            "the runs were ordered, and the intervals drawn, from different seeds: \
             the same work in another order",
            |m| m.results.plan.seed.to_string(),
        ),
        fact(
            DifferenceKind::Tool,
            "vcbench version",
            false,
            "the hosts were measured by different vcbench builds: a difference between \
             them may come from the tool as well as the host",
            |m| {
                format!(
                    "{} ({})",
                    m.results.tool.version, m.results.tool.git_revision
                )
            },
        ),
        fact(
            DifferenceKind::Tool,
            "workload binary",
            false,
            "the hosts ran different workload binaries: a difference between them may \
             come from the program as well as the host",
            |m| m.results.tool.workload_fnv.clone(),
        ),
        fact(
            DifferenceKind::Schema,
            "results schema version",
            false,
            "older documents were brought to today's layout when read: their summaries and \
             ratios were computed again from their samples",
            |m| m.results.schema_version.to_string(),
        ),
        fact(
            DifferenceKind::Run,
            "run complete",
            false,
            "an interrupted run did not finish its plan: its host lacks figures the \
             others have",
            |m| {
                if m.results.complete {
                    "complete"
                } else {
                    "interrupted"
                }
                .to_owned()
            },
        ),
    ];
    // Each scenario's plan, by name, where any host ran it.
    let mut scenarios: Vec<String> = Vec::new();
    let mut backends: Vec<String> = Vec::new();
    for m in members {
        for s in &m.results.plan.scenarios {
            if !scenarios.contains(&s.name) {
                scenarios.push(s.name.clone());
            }
        }
        for b in m
            .results
            .plan
            .settings
            .keys()
            .chain(m.results.plan.stamping.keys())
        {
            if !backends.contains(b) {
                backends.push(b.clone());
            }
        }
    }
    for name in scenarios {
        let what = format!("{name} plan");
        let scenario = move |m: &Member| {
            m.results
                .plan
                .scenarios
                .iter()
                .find(|s| s.name == name)
                .map(|s| {
                    format!(
                        "{} ({} runs, {} warmup, timeout {} s)",
                        s.workload.join(" "),
                        s.runs,
                        s.warmup,
                        s.timeout_s
                    )
                })
                .unwrap_or_else(|| "not run".to_owned())
        };
        facts.push(Fact {
            kind: DifferenceKind::Plan,
            what,
            value: Box::new(scenario),
            meaning: ASKED,
            asked: true,
        });
    }
    for b in backends {
        let settings = b.clone();
        facts.push(Fact {
            kind: DifferenceKind::Plan,
            what: format!("{b} settings"),
            value: Box::new(move |m: &Member| {
                m.results
                    .plan
                    .settings
                    .get(&settings)
                    .cloned()
                    .unwrap_or_default()
            }),
            meaning: "the backend ran differently on these hosts (what the host let it run, \
                      such as a micro guest where no Linux guest boots): each figure names \
                      what ran, and figures that ran unlike work are marked so",
            asked: false,
        });
        let stamping = b.clone();
        facts.push(Fact {
            kind: DifferenceKind::Plan,
            what: format!("{b} stamping"),
            value: Box::new(move |m: &Member| {
                m.results
                    .plan
                    .stamping
                    .get(&stamping)
                    .cloned()
                    .unwrap_or_default()
            }),
            meaning: "the backend's records were stamped differently: its times carry \
                      different stamping delays on these hosts",
            asked: false,
        });
    }
    let mut asked = Vec::new();
    let mut stated = Vec::new();
    for f in facts {
        let values: Vec<HostValue> = members
            .iter()
            .map(|m| HostValue {
                host: m.name.clone(),
                value: (f.value)(m),
            })
            .collect();
        if values.iter().all(|v| v.value == values[0].value) {
            continue;
        }
        let d = Difference {
            kind: f.kind,
            what: f.what,
            values,
            meaning: f.meaning.to_owned(),
        };
        if f.asked {
            asked.push(d);
        } else {
            stated.push(d);
        }
    }
    (asked, stated)
}

fn fact(
    kind: DifferenceKind,
    what: &str,
    asked: bool,
    meaning: &'static str,
    value: fn(&Member) -> String,
) -> Fact {
    Fact {
        kind,
        what: what.to_owned(),
        value: Box::new(value),
        meaning,
        asked,
    }
}
