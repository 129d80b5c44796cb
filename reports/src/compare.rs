//! Comparing results documents: every figure any of them has, side by side, with each
//! later document's change against the first, tested.
//!
//! A change is claimed only when a test says so. For each figure the samples of the two
//! documents are compared with a Mann-Whitney rank test and a bootstrap 95% interval of
//! the change of the median; it is called a change when the rank test gives p < 0.05,
//! the interval excludes zero and the change is at least 2% (the `stats::compare` rule).
//! Otherwise it is "no significant change". A single derived value has no samples to
//! test: its two numbers are shown, never judged. Before the figures, the comparison
//! lists how the documents' plans, hosts and tools differ, and a figure whose identity
//! (what ran: guest, namespaces, limits) differs between the documents says so.

use std::fmt::Write;

use crate::document::{Better, Figure, Kind, Results};

/// One figure across documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `backend scenario metric`.
    pub figure: String,
    /// Unit.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// The figure in each document (`None` where it is missing).
    pub figures: Vec<Option<Figure>>,
    /// One per later document: its comparison with the first.
    pub changes: Vec<Option<Change>>,
}

/// One document's figure against the first's.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The test's outcome; `None` for a value (nothing to test) or samples that cannot
    /// be compared (a zero median, medians too far apart for a ratio).
    pub test: Option<stats::Comparison>,
    /// Either figure is a single value, not a distribution.
    pub value: bool,
    /// How the two figures' identities differ (what ran), when they do.
    pub unlike: Option<String>,
}

impl Change {
    /// Whether the change is significant (and the two ran like work).
    pub fn significant(&self) -> bool {
        self.unlike.is_none() && self.test.as_ref().is_some_and(|t| t.significant)
    }
}

/// Whether `unit` measures time.
fn is_time(unit: &str) -> bool {
    matches!(unit, "ns" | "µs" | "us" | "ms" | "s")
}

/// The change in words: "slower by 12.0% [7.0%, 18.0%]" or "no significant change
/// (+1.0% [-2.0%, +3.0%])".
pub fn describe(change: &Change, unit: &str, better: Better) -> String {
    let Some(t) = &change.test else {
        return match change.value {
            true => "a value: not tested".to_owned(),
            false => "not tested: the medians give no ratio (a zero or extreme median)".to_owned(),
        };
    };
    let pct = t.change * 100.0;
    let interval = format!("[{:+.1}%, {:+.1}%]", t.ci.low * 100.0, t.ci.high * 100.0);
    let mut text = if t.significant {
        let up = pct > 0.0;
        let word = match (is_time(unit), unit == "MiB", up) {
            (true, _, true) => "slower",
            (true, _, false) => "faster",
            (_, true, true) => "larger",
            (_, true, false) => "smaller",
            (_, _, true) => "higher",
            (_, _, false) => "lower",
        };
        let good = match better {
            Better::Lower => !up,
            Better::Higher => up,
        };
        format!(
            "{word} by {:.1}% {interval}, {} ({})",
            pct.abs(),
            if good { "better" } else { "worse" },
            p_value(t.p)
        )
    } else {
        format!("no significant change ({pct:+.1}% {interval})")
    };
    if let Some(unlike) = &change.unlike {
        let _ = write!(text, "; not like for like: {unlike}");
    }
    text
}

fn p_value(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_owned()
    } else {
        format!("p = {p:.3}")
    }
}

/// The rows of a comparison of `docs` (the first is the baseline): every figure of any
/// document, in the order they first appear. Bootstrap intervals use the first
/// document's seed.
pub fn rows(docs: &[Results]) -> Vec<Row> {
    let mut keys: Vec<&Figure> = Vec::new();
    for f in docs.iter().flat_map(|d| &d.figures) {
        if !keys
            .iter()
            .any(|k| k.backend == f.backend && k.scenario == f.scenario && k.metric == f.metric)
        {
            keys.push(f);
        }
    }
    let seed = docs.first().map_or(0, |d| d.plan.seed);
    keys.into_iter()
        .map(|key| {
            let found: Vec<Option<Figure>> = docs
                .iter()
                .map(|d| d.figure(&key.backend, &key.scenario, &key.metric).cloned())
                .collect();
            let base = found.first().cloned().flatten();
            let changes = found
                .iter()
                .skip(1)
                .map(|other| {
                    let (a, b) = (base.as_ref()?, other.as_ref()?);
                    let testable = a.kind == Kind::Distribution && b.kind == Kind::Distribution;
                    Some(Change {
                        test: testable
                            .then(|| stats::compare(&a.samples, &b.samples, seed))
                            .flatten(),
                        value: !testable,
                        unlike: unlike(a, b),
                    })
                })
                .collect();
            Row {
                figure: key.name(),
                unit: key.unit.clone(),
                better: key.better,
                figures: found,
                changes,
            }
        })
        .collect()
}

/// The comparison as JSON, for machines: the documents' names, then each figure with its
/// median and interval in each document and, for each later document, its change from the
/// first (the relative change of the median with its interval, the rank test's p, whether
/// it is significant, how the two ran differently, and the change in words).
pub fn json(docs: &[Results], names: &[String]) -> serde_json::Value {
    let figures: Vec<serde_json::Value> = rows(docs)
        .into_iter()
        .map(|row| {
            let medians: Vec<serde_json::Value> = row
                .figures
                .iter()
                .map(|f| match f {
                    Some(f) => serde_json::json!({
                        "median": f.summary.median,
                        "ci_low": f.summary.ci.as_ref().map(|c| c.low),
                        "ci_high": f.summary.ci.as_ref().map(|c| c.high),
                        "n": f.summary.n,
                        "variant": f.variant,
                    }),
                    None => serde_json::Value::Null,
                })
                .collect();
            let changes: Vec<serde_json::Value> = row
                .changes
                .iter()
                .zip(names.iter().skip(1))
                .map(|(change, name)| match change {
                    Some(c) => serde_json::json!({
                        "document": name,
                        "change": c.test.map(|t| t.change),
                        "ci_low": c.test.map(|t| t.ci.low),
                        "ci_high": c.test.map(|t| t.ci.high),
                        "p": c.test.map(|t| t.p),
                        "significant": c.significant(),
                        "unlike": c.unlike,
                        "words": describe(c, &row.unit, row.better),
                    }),
                    None => serde_json::Value::Null,
                })
                .collect();
            serde_json::json!({
                "figure": row.figure,
                "unit": row.unit,
                "better": row.better,
                "in_each": medians,
                "changes": changes,
            })
        })
        .collect();
    serde_json::json!({"documents": names, "figures": figures})
}

/// The comparison as CSV: one row per figure and later document, with the first
/// document's median, this one's, and the change between them (empty where a figure is
/// missing or was not tested).
pub fn csv(docs: &[Results], names: &[String]) -> String {
    let mut out = String::from(
        "figure,unit,baseline,baseline_median,document,median,change,change_low,change_high,\
         p,significant,unlike\r\n",
    );
    let field = |text: &str| {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    };
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let base_name = names.first().map_or("", String::as_str);
    for row in rows(docs) {
        let base = row.figures.first().cloned().flatten();
        for (i, name) in names.iter().enumerate().skip(1) {
            let this = row.figures.get(i).cloned().flatten();
            let change = row.changes.get(i - 1).cloned().flatten();
            let test = change.as_ref().and_then(|c| c.test);
            let cells = [
                field(&row.figure),
                field(&row.unit),
                field(base_name),
                opt(base.as_ref().map(|f| f.summary.median)),
                field(name),
                opt(this.as_ref().map(|f| f.summary.median)),
                opt(test.map(|t| t.change)),
                opt(test.map(|t| t.ci.low)),
                opt(test.map(|t| t.ci.high)),
                opt(test.map(|t| t.p)),
                change
                    .as_ref()
                    .map(|c| c.significant().to_string())
                    .unwrap_or_default(),
                field(
                    change
                        .as_ref()
                        .and_then(|c| c.unlike.as_deref())
                        .unwrap_or(""),
                ),
            ];
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
    }
    out
}

/// How two figures' identities differ, if they do.
fn unlike(a: &Figure, b: &Figure) -> Option<String> {
    let mut diffs = Vec::new();
    if a.variant != b.variant {
        diffs.push(format!("ran \"{}\" then \"{}\"", a.variant, b.variant));
    }
    if a.unit != b.unit {
        diffs.push(format!("unit {} then {}", a.unit, b.unit));
    }
    if a.raw_cost != b.raw_cost {
        diffs.push("a micro guest's raw cost in one only".to_owned());
    }
    (!diffs.is_empty()).then(|| diffs.join(", "))
}

/// One fact about a document, for the side-by-side table of plans, hosts and tools.
type Fact = fn(&Results) -> String;

/// What the documents' plans, hosts and tools say, one row per fact, and which rows
/// differ.
fn facts(docs: &[Results]) -> Vec<(String, Vec<String>, bool)> {
    let mut named: Vec<(String, Fact)> = vec![
        ("host".to_owned(), |d| d.host.hostname.clone()),
        ("CPU".to_owned(), |d| {
            format!("{} ({} CPUs)", d.host.cpu_model, d.host.cpus)
        }),
        ("kernel".to_owned(), |d| d.host.kernel.clone()),
        ("KVM".to_owned(), |d| d.host.kvm.label()),
        ("cgroups".to_owned(), |d| d.host.cgroup.clone()),
        ("CPU frequency".to_owned(), |d| {
            d.host.cpu_frequency.clone().unwrap_or_default()
        }),
        ("vcbench".to_owned(), |d| {
            format!("{} ({})", d.tool.version, d.tool.git_revision)
        }),
        ("workload".to_owned(), |d| d.tool.workload_fnv.clone()),
        ("order".to_owned(), |d| d.plan.order.clone()),
        ("baseline".to_owned(), |d| {
            d.baseline().unwrap_or_default().to_owned()
        }),
        ("started".to_owned(), |d| d.started_at.clone()),
    ];
    let mut rows: Vec<(String, Vec<String>, bool)> = named
        .drain(..)
        .map(|(what, fact)| {
            let values: Vec<String> = docs.iter().map(fact).collect();
            let differs = what != "started" && values.iter().any(|v| *v != values[0]);
            (what, values, differs)
        })
        .collect();
    // Each backend's settings and each scenario's plan, where any document has them.
    let mut backends: Vec<&String> = Vec::new();
    for d in docs {
        for b in d.plan.settings.keys() {
            if !backends.contains(&b) {
                backends.push(b);
            }
        }
    }
    for b in backends {
        let values: Vec<String> = docs
            .iter()
            .map(|d| d.plan.settings.get(b).cloned().unwrap_or_default())
            .collect();
        let differs = values.iter().any(|v| *v != values[0]);
        rows.push((format!("{b} settings"), values, differs));
    }
    let mut scenarios: Vec<&String> = Vec::new();
    for d in docs {
        for s in &d.plan.scenarios {
            if !scenarios.contains(&&s.name) {
                scenarios.push(&s.name);
            }
        }
    }
    for name in scenarios {
        let values: Vec<String> = docs
            .iter()
            .map(|d| {
                d.plan
                    .scenarios
                    .iter()
                    .find(|s| s.name == *name)
                    .map(|s| {
                        format!(
                            "{}: {} runs, {} warmup",
                            s.workload.join(" "),
                            s.runs,
                            s.warmup
                        )
                    })
                    .unwrap_or_else(|| "not run".to_owned())
            })
            .collect();
        let differs = values.iter().any(|v| *v != values[0]);
        rows.push((format!("{name} plan"), values, differs));
    }
    rows
}

/// The figures and their changes as table cells: a header, then one row per figure.
fn figure_cells(docs: &[Results], names: &[String]) -> Vec<Vec<String>> {
    let mut header = vec!["figure".to_owned()];
    header.extend(names.iter().map(|n| format!("{n} median [95% CI]")));
    header.extend(names.iter().skip(1).map(|n| format!("change ({n})")));
    let mut out = vec![header];
    for row in rows(docs) {
        let mut cells = vec![row.figure.clone()];
        for f in &row.figures {
            cells.push(
                f.as_ref()
                    .map_or_else(|| "missing".to_owned(), crate::figure_text::median),
            );
        }
        for change in &row.changes {
            cells.push(
                change
                    .as_ref()
                    .map(|c| describe(c, &row.unit, row.better))
                    .unwrap_or_default(),
            );
        }
        out.push(cells);
    }
    out
}

/// What the statistics of a comparison mean, in a few plain sentences.
pub const METHOD: &str = "Each median is followed by its 95% confidence interval. A change is \
    claimed only when a Mann-Whitney rank test of the two runs' samples gives p < 0.05, the \
    bootstrap 95% interval of the change of the median excludes zero, and the change is at \
    least 2%; otherwise it is no significant change. Single values (counts, marginal costs) \
    are shown, not tested.";

/// The comparison as Markdown: how the documents differ, then the figures.
pub fn markdown(docs: &[Results], names: &[String]) -> String {
    let mut out = String::from("# vcbench comparison\n\n");
    let escape = |s: &str| s.replace('|', "\\|");
    let mut table = |rows: &[Vec<String>]| {
        for (i, row) in rows.iter().enumerate() {
            out.push('|');
            for cell in row {
                let _ = write!(out, " {} |", escape(cell));
            }
            out.push('\n');
            if i == 0 {
                out.push('|');
                out.push_str(&" --- |".repeat(row.len()));
                out.push('\n');
            }
        }
        out.push('\n');
    };
    let mut plan = vec![{
        let mut h = vec![String::new()];
        h.extend(names.iter().cloned());
        h
    }];
    let facts = facts(docs);
    for (what, values, differs) in facts.iter().cloned() {
        let mut row = vec![if differs {
            format!("**{what}** (differs)")
        } else {
            what
        }];
        row.extend(values);
        plan.push(row);
    }
    table(&plan);
    table(&figure_cells(docs, names));
    let warnings = warnings(docs, &facts);
    if !warnings.is_empty() {
        out.push_str(&warnings.join("\n"));
        out.push_str("\n\n");
    }
    out.push_str(METHOD);
    out.push('\n');
    out
}

/// What makes the documents' figures less comparable, as warnings; `facts` are theirs.
fn warnings(docs: &[Results], facts: &[(String, Vec<String>, bool)]) -> Vec<String> {
    let mut w = Vec::new();
    if docs
        .iter()
        .any(|d| d.host.kvm.flavour != docs[0].host.kvm.flavour)
    {
        w.push(
            "Warning: the documents were taken with different KVM flavours: VM figures from \
             software KVM are emulation figures and do not compare with hardware ones."
                .to_owned(),
        );
    }
    let differing: Vec<&str> = facts
        .iter()
        .filter(|(_, _, differs)| *differs)
        .map(|(what, _, _)| what.as_str())
        .collect();
    if !differing.is_empty() {
        w.push(format!(
            "Warning: the documents differ in {}: a change may come from that, not from what \
             is compared.",
            differing.join(", ")
        ));
    }
    w
}

/// The comparison for a terminal: how the documents differ, then an aligned table of the
/// figures. `columns` lays out rows (the first is the header) in aligned columns.
pub fn terminal(
    docs: &[Results],
    names: &[String],
    columns: &dyn Fn(&[Vec<String>]) -> String,
) -> String {
    let mut out = String::new();
    let facts = facts(docs);
    let differing: Vec<&(String, Vec<String>, bool)> = facts.iter().filter(|f| f.2).collect();
    if differing.is_empty() {
        out.push_str("plans, hosts and tools: the same\n\n");
    } else {
        let mut rows = vec![{
            let mut h = vec!["differs".to_owned()];
            h.extend(names.iter().cloned());
            h
        }];
        for (what, values, _) in differing {
            let mut row = vec![what.clone()];
            row.extend(values.iter().cloned());
            rows.push(row);
        }
        out.push_str(&columns(&rows));
        out.push('\n');
    }
    out.push_str(&columns(&figure_cells(docs, names)));
    for w in warnings(docs, &facts) {
        let _ = writeln!(out, "\n{w}");
    }
    let _ = writeln!(out, "\n{METHOD}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_say_which_way_and_how_sure() {
        let change = |pct: f64, significant: bool| Change {
            test: Some(stats::Comparison {
                change: pct,
                ci: stats::Interval {
                    low: pct - 0.05,
                    high: pct + 0.05,
                    level: 0.95,
                    coverage: 0.95,
                },
                p: if significant { 0.0001 } else { 0.4 },
                significant,
            }),
            value: false,
            unlike: None,
        };
        assert_eq!(
            describe(&change(0.12, true), "ms", Better::Lower),
            "slower by 12.0% [+7.0%, +17.0%], worse (p < 0.001)"
        );
        assert_eq!(
            describe(&change(0.12, true), "MiB/s", Better::Higher),
            "higher by 12.0% [+7.0%, +17.0%], better (p < 0.001)"
        );
        assert_eq!(
            describe(&change(0.01, false), "ms", Better::Lower),
            "no significant change (+1.0% [-4.0%, +6.0%])"
        );
        let mut unlike = change(0.12, true);
        unlike.unlike = Some("ran \"a\" then \"b\"".to_owned());
        assert!(!unlike.significant());
        assert!(describe(&unlike, "ms", Better::Lower)
            .ends_with("not like for like: ran \"a\" then \"b\""));
    }
}
