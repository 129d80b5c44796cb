//! Comparing results documents: every figure the first document has, beside the same
//! figure in the others, with the change in percent and whether it exceeds the noise.
//!
//! A change is called real when the two medians differ by more than either run varied by
//! itself, that variation being each figure's coefficient of variation (standard deviation
//! over mean). Below that, the difference is within the noise of the runs.

use std::fmt::Write;

use crate::document::Results;
use crate::sections::number;

/// One figure across documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `backend scenario metric`.
    pub figure: String,
    /// Unit.
    pub unit: String,
    /// Median in each document (`None` where it is missing).
    pub medians: Vec<Option<f64>>,
    /// Change of each later document against the first, percent.
    pub change_pct: Vec<Option<f64>>,
    /// Whether that change exceeds the noise of both runs.
    pub significant: Vec<bool>,
}

/// The rows of a comparison of `docs` (the first is the baseline).
pub fn rows(docs: &[Results]) -> Vec<Row> {
    let Some(base) = docs.first() else {
        return Vec::new();
    };
    base.figures
        .iter()
        .map(|f| {
            let others: Vec<_> = docs
                .iter()
                .map(|d| d.figure(&f.backend, &f.scenario, &f.metric))
                .collect();
            let medians = others.iter().map(|o| o.map(|g| g.summary.median)).collect();
            let mut change_pct = Vec::new();
            let mut significant = Vec::new();
            for other in others.iter().skip(1) {
                match other {
                    Some(g) if f.summary.median != 0.0 => {
                        let change = (g.summary.median - f.summary.median) / f.summary.median;
                        let noise = f.summary.cv().max(g.summary.cv());
                        change_pct.push(Some(change * 100.0));
                        significant.push(change.abs() > noise);
                    }
                    _ => {
                        change_pct.push(None);
                        significant.push(false);
                    }
                }
            }
            Row {
                figure: format!("{} {} {}", f.backend, f.scenario, f.metric),
                unit: f.unit.clone(),
                medians,
                change_pct,
                significant,
            }
        })
        .collect()
}

/// The comparison as a Markdown table, with each document's host first.
pub fn markdown(docs: &[Results], names: &[String]) -> String {
    let mut out = String::from("# vcbench comparison\n\n");
    for (doc, name) in docs.iter().zip(names) {
        let _ = writeln!(
            out,
            "- **{name}**: {} ({}), Linux {}, KVM {}, vcbench {} ({}), {}",
            doc.host.hostname,
            doc.host.cpu_model,
            doc.host.kernel,
            doc.host.kvm.flavour,
            doc.tool.version,
            doc.tool.git_revision,
            doc.started_at
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
    for _ in 0..names.len() * 2 - 1 {
        out.push_str(" ---: |");
    }
    out.push('\n');
    for row in rows(docs) {
        let _ = write!(out, "| {} |", row.figure);
        for m in &row.medians {
            let _ = write!(
                out,
                " {} |",
                m.map(|v| format!("{} {}", number(v), row.unit))
                    .unwrap_or_else(|| "missing".to_owned())
            );
        }
        for (change, significant) in row.change_pct.iter().zip(&row.significant) {
            let _ = write!(
                out,
                " {} |",
                match change {
                    Some(c) if *significant => format!("**{c:+.1}%**"),
                    Some(c) => format!("{c:+.1}% (noise)"),
                    None => String::new(),
                }
            );
        }
        out.push('\n');
    }
    out.push_str(
        "\nA change is in bold when it exceeds both runs' own variation (their coefficient of \
         variation); marked (noise) when it does not.\n",
    );
    out
}
