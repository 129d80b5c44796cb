//! Comparing results documents: every figure any of them has, side by side, with each
//! later document's change against the first and whether it exceeds the noise.
//!
//! A figure's noise is its coefficient of variation (standard deviation over mean) in
//! one run. A change is called beyond the noise when the two medians differ, relative to
//! the first, by more than the larger of the two runs' noise; below that the difference
//! is what the runs vary by themselves.

use std::fmt::Write;

use crate::document::{Better, Figure, Results};
use crate::sections::number;

/// One figure across documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `backend scenario metric`.
    pub figure: String,
    /// Unit.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// Median in each document (`None` where it is missing).
    pub medians: Vec<Option<f64>>,
    /// The noise (cv, percent) in each document.
    pub noise_pct: Vec<Option<f64>>,
    /// One per later document: its comparison with the first.
    pub changes: Vec<Option<Change>>,
}

/// One document's figure against the first's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// The median's change, percent of the first.
    pub pct: f64,
    /// The larger of the two runs' noise, percent.
    pub noise_pct: f64,
}

impl Change {
    /// Whether the change exceeds the noise.
    pub fn significant(&self) -> bool {
        self.pct.abs() > self.noise_pct
    }

    /// Whether it is an improvement, given which way is better.
    pub fn improves(&self, better: Better) -> bool {
        match better {
            Better::Lower => self.pct < 0.0,
            Better::Higher => self.pct > 0.0,
        }
    }
}

/// The rows of a comparison of `docs` (the first is the baseline): every figure of any
/// document, in the order they first appear.
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
    keys.into_iter()
        .map(|key| {
            let found: Vec<Option<&Figure>> = docs
                .iter()
                .map(|d| d.figure(&key.backend, &key.scenario, &key.metric))
                .collect();
            let base = found.first().copied().flatten();
            let changes = found
                .iter()
                .skip(1)
                .map(|other| match (base, other) {
                    (Some(a), Some(b)) if a.summary.median != 0.0 => Some(Change {
                        pct: (b.summary.median - a.summary.median) / a.summary.median.abs() * 100.0,
                        noise_pct: a.summary.cv().max(b.summary.cv()) * 100.0,
                    }),
                    _ => None,
                })
                .collect();
            Row {
                figure: format!("{} {} {}", key.backend, key.scenario, key.metric),
                unit: key.unit.clone(),
                better: key.better,
                medians: found.iter().map(|f| f.map(|g| g.summary.median)).collect(),
                noise_pct: found
                    .iter()
                    .map(|f| f.map(|g| g.summary.cv() * 100.0))
                    .collect(),
                changes,
            }
        })
        .collect()
}

/// One fact about a document, for the side-by-side table of hosts and tools.
type Fact = fn(&Results) -> String;

/// The comparison as Markdown: the documents' hosts and tools, then the figures.
pub fn markdown(docs: &[Results], names: &[String]) -> String {
    let mut out = String::from("# vcbench comparison\n\n");
    out.push_str("| | ");
    out.push_str(&names.join(" | "));
    out.push_str(" |\n| --- |");
    out.push_str(&" --- |".repeat(names.len()));
    out.push('\n');
    let facts: [(&str, Fact); 6] = [
        ("host", |d| d.host.hostname.clone()),
        ("CPU", |d| {
            format!("{} ({} CPUs)", d.host.cpu_model, d.host.cpus)
        }),
        ("kernel", |d| d.host.kernel.clone()),
        ("KVM", |d| d.host.kvm.label()),
        ("vcbench", |d| {
            format!("{} ({})", d.tool.version, d.tool.git_revision)
        }),
        ("started", |d| d.started_at.clone()),
    ];
    for (what, fact) in facts {
        let _ = write!(out, "| {what} |");
        for d in docs {
            let _ = write!(out, " {} |", fact(d).replace('|', "\\|"));
        }
        out.push('\n');
    }
    if docs
        .iter()
        .any(|d| d.host.kvm.flavour != docs[0].host.kvm.flavour)
    {
        out.push_str(
            "\n> **Warning:** the documents were taken with different KVM flavours: VM figures \
             from software KVM are emulation figures and do not compare with hardware ones.\n",
        );
    }
    out.push_str("\n| figure |");
    for name in names {
        let _ = write!(out, " {name} |");
    }
    for name in names.iter().skip(1) {
        let _ = write!(out, " change ({name}) |");
    }
    out.push_str("\n| --- |");
    out.push_str(&" ---: |".repeat(names.len() * 2 - 1));
    out.push('\n');
    for row in rows(docs) {
        let _ = write!(out, "| {} |", row.figure);
        for (m, noise) in row.medians.iter().zip(&row.noise_pct) {
            let _ = match (m, noise) {
                (Some(v), Some(cv)) => write!(out, " {} {} ±{cv:.1}% |", number(*v), row.unit),
                _ => write!(out, " missing |"),
            };
        }
        for change in &row.changes {
            let cell = match change {
                Some(c) if c.significant() => format!(
                    "**{:+.1}%** {} (noise {:.1}%)",
                    c.pct,
                    if c.improves(row.better) {
                        "better"
                    } else {
                        "worse"
                    },
                    c.noise_pct
                ),
                Some(c) => format!("{:+.1}% within noise ({:.1}%)", c.pct, c.noise_pct),
                None => String::new(),
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out.push_str(
        "\nEach median is followed by its run's noise (cv: standard deviation over mean). A \
         change is in bold, and called better or worse, when it exceeds the larger of the two \
         runs' noise; otherwise it is within the noise.\n",
    );
    out
}
