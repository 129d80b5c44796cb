//! The Markdown report: the environment, then per concern a teaching note and a table of
//! its figures with their spread and the ratio to native, then the isolation matrix, the
//! failures and the skips.

use std::fmt::Write;

use crate::document::{Figure, Results};
use crate::sections::{self, number};

/// Renders the Markdown report.
pub fn render(doc: &Results) -> String {
    let mut out = String::from("# vcbench report\n\n");
    let _ = writeln!(out, "Host: {}\n", sections::host_line(doc));
    for w in sections::warnings(doc) {
        let _ = writeln!(out, "> **Warning:** {w}\n");
    }
    for section in sections::sections(doc) {
        let _ = writeln!(out, "## {}\n", section.title);
        if !section.note.is_empty() {
            let _ = writeln!(out, "{}\n", section.note);
        }
        if section.figures.is_empty() {
            out.push_str("No figures for this concern in this run.\n\n");
        } else {
            out.push_str(&table(doc, &section.figures));
            out.push('\n');
        }
        if section.id == "isolation" && !doc.isolation.is_empty() {
            out.push_str(&matrix(doc));
            out.push('\n');
        }
    }
    let problems = sections::problems(doc);
    if !problems.is_empty() {
        out.push_str("## Failures and skips\n\n");
        for p in problems {
            let _ = writeln!(out, "- {}", escape(&p));
        }
        out.push('\n');
    }
    out
}

/// A table of figures: median, p95, cv, n, and the ratio to native.
pub fn table(doc: &Results, figures: &[Figure]) -> String {
    let mut out = String::from(
        "| backend | scenario | metric | median | p95 | cv | n | vs native |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for f in figures {
        let s = &f.summary;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} {} | {} {} | {:.1}% | {} | {} |",
            f.backend,
            f.scenario,
            f.metric,
            number(s.median),
            f.unit,
            number(s.p95),
            f.unit,
            s.cv() * 100.0,
            s.n,
            doc.vs_native(f)
                .map(|r| format!("{}x", number(r)))
                .unwrap_or_default()
        );
    }
    out
}

/// The isolation matrix: a row per check, a column per backend.
fn matrix(doc: &Results) -> String {
    let Some(first) = doc.isolation.first() else {
        return String::new();
    };
    let mut out = String::from("| check |");
    for m in &doc.isolation {
        let _ = write!(out, " {} |", m.backend);
    }
    out.push_str(" why (last column) |\n| --- |");
    for _ in &doc.isolation {
        out.push_str(" --- |");
    }
    out.push_str(" --- |\n");
    for row in &first.rows {
        let _ = write!(out, "| {} |", row.check);
        let mut why = String::new();
        for m in &doc.isolation {
            let cell = m.rows.iter().find(|r| r.check == row.check);
            let _ = write!(out, " {} |", cell.map_or("", |r| r.verdict.as_str()));
            why = cell.map(|r| r.why.clone()).unwrap_or_default();
        }
        let _ = writeln!(out, " {} |", escape(&why));
    }
    out
}

/// Escapes what Markdown tables and lists would misread.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
