//! The Markdown report: the environment and its warnings, then per concern a teaching
//! note, its tables (each figure with its spread and its ratio to native) and what it has
//! no data for, then the failures and skips.

use std::fmt::Write;

use crate::document::Results;
use crate::figure_text;
use crate::sections::{self, Table};

/// Renders the Markdown report.
pub fn render(doc: &Results) -> String {
    let mut out = String::from("# vcbench report\n\n");
    for w in sections::warnings(doc) {
        let _ = writeln!(out, "> **Warning:** {}\n", escape(&w));
    }
    out.push_str("| environment | |\n| --- | --- |\n");
    for (what, value) in sections::environment(doc) {
        let _ = writeln!(out, "| {what} | {} |", escape(&value));
    }
    out.push('\n');
    if !doc.figures.is_empty() {
        let _ = writeln!(out, "{}\n", figure_text::reading(doc));
        for w in figure_text::warnings(doc) {
            let _ = writeln!(out, "- {}", escape(&w));
        }
        out.push('\n');
    }
    for section in sections::sections(doc) {
        let _ = writeln!(out, "## {}\n", section.title);
        if !section.note.is_empty() {
            let _ = writeln!(out, "{}\n", section.note);
        }
        for table in &section.tables {
            out.push_str(&render_table(table));
            out.push('\n');
        }
        for missing in &section.missing {
            let _ = writeln!(out, "*{}*\n", escape(missing));
        }
    }
    out.push_str("## Failures and skips\n\n");
    let problems = sections::problems(doc);
    if problems.is_empty() {
        out.push_str("Every run succeeded and nothing was skipped.\n");
    }
    for p in problems {
        let _ = writeln!(out, "- {}", escape(&p));
    }
    out
}

/// A table in Markdown, with its caption above it.
pub fn render_table(table: &Table) -> String {
    let mut out = format!("{}:\n\n|", table.caption);
    for h in &table.header {
        let _ = write!(out, " {} |", escape(h));
    }
    out.push_str("\n|");
    for numeric in &table.numeric {
        out.push_str(if *numeric { " ---: |" } else { " --- |" });
    }
    out.push('\n');
    for row in &table.rows {
        out.push('|');
        for cell in row {
            if cell.is_empty() {
                out.push_str(" |");
            } else {
                let _ = write!(out, " {} |", escape(cell));
            }
        }
        out.push('\n');
    }
    out
}

/// Escapes what Markdown tables, emphasis and lists would misread.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('*', "\\*")
        .replace('\n', " ")
}
