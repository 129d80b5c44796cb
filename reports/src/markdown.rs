//! The Markdown report: read me first (this run on one page, how to read the report, its
//! words, the run's settings), then per concern a teaching note, its headline tables and
//! what it has no data for, then an appendix with every figure, then the failures and
//! skips. Given the directory its charts were written to (`vcbench report --png DIR`), it
//! embeds each chart as a PNG by a relative link.

use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

use crate::charts::{self, Chart};
use crate::document::Results;
use crate::sections::{self, Section};
use crate::table::Table;
use crate::{figure_text, primer};

/// Renders the Markdown report, without charts.
pub fn render(doc: &Results) -> String {
    render_linked(doc, None)
}

/// Renders the Markdown report, embedding each chart the document has data for as
/// `![title](CHARTS/name.png)` when `charts` (a relative link to their directory) is given.
pub fn render_linked(doc: &Results, charts: Option<&str>) -> String {
    let mut out = String::from("# vcbench report\n\n");
    for w in sections::warnings(doc) {
        let _ = writeln!(out, "> **Warning:** {}\n", escape(&w));
    }
    let embed = |out: &mut String, chart: Chart| {
        if let Some(dir) = charts {
            if charts::has_data(chart, doc) {
                let dir = dir.trim_end_matches('/');
                let _ = writeln!(out, "![{}]({dir}/{}.png)\n", chart.title(), chart.name());
            }
        }
    };
    out.push_str("## Read me first\n\n### This run on one page\n\n");
    if let Some(table) = primer::summary_table(doc) {
        out.push_str(&render_table(&table));
        out.push('\n');
    }
    for lesson in primer::lessons(doc) {
        let _ = writeln!(out, "- {}", escape_line(&lesson));
    }
    out.push('\n');
    embed(&mut out, Chart::Stacks);
    embed(&mut out, Chart::Spectrum);
    out.push_str("### How to read this report\n\n");
    for point in primer::how_to_read(doc) {
        let _ = writeln!(out, "- {}", escape_line(&point));
    }
    out.push_str("\n### Words used here\n\n");
    for (term, meaning) in primer::GLOSSARY {
        let _ = writeln!(out, "- **{}**: {}", escape_line(term), escape_line(meaning));
    }
    out.push_str("\n### How this run was set up\n\n| setting | |\n| --- | --- |\n");
    for (what, value) in primer::settings(doc) {
        let _ = writeln!(out, "| {} | {} |", escape(&what), escape(&value));
    }
    out.push('\n');
    let sections = sections::sections(doc);
    for section in &sections {
        let _ = writeln!(out, "## {}\n", section.title);
        if !section.note.is_empty() {
            let _ = writeln!(out, "{}\n", section.note);
        }
        for c in Chart::ALL.iter().filter(|c| c.section() == section.id) {
            embed(&mut out, *c);
        }
        for table in &section.tables {
            out.push_str(&render_table(table));
            out.push('\n');
        }
        for missing in &section.missing {
            let _ = writeln!(out, "*{}*\n", escape(missing));
        }
    }
    appendix(&mut out, doc, &sections);
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

fn appendix(out: &mut String, doc: &Results, sections: &[Section]) {
    out.push_str("## Appendix: every figure\n\n");
    let warnings = figure_text::warnings(doc);
    if !warnings.is_empty() {
        out.push_str("What the samples warn of:\n\n");
        for w in warnings {
            let _ = writeln!(out, "- {}", escape(&w));
        }
        out.push('\n');
    }
    let mut any = false;
    for s in sections.iter().filter(|s| !s.appendix.is_empty()) {
        any = true;
        let _ = writeln!(out, "### {}\n", s.title);
        for table in &s.appendix {
            out.push_str(&render_table(table));
            out.push('\n');
        }
    }
    if !any {
        out.push_str("Every figure is in its section above.\n\n");
    }
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

/// The link from a report's directory to its charts' directory, with `/` between
/// components, as Markdown wants it: both are made absolute from `cwd` first. A report on
/// standard output (`report` is `None`) links from `cwd`.
pub fn chart_link(report: Option<&Path>, charts: &Path, cwd: &Path) -> String {
    let absolute = |p: &Path| normalise(&cwd.join(p));
    let from = match report.and_then(Path::parent) {
        Some(dir) => absolute(dir),
        None => absolute(Path::new(".")),
    };
    let to = absolute(charts);
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

/// A path without `.` and with each `..` taken back (no file system is read).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Escapes what Markdown tables, emphasis and lists would misread.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('*', "\\*")
        .replace('\n', " ")
}

/// Escapes a list item's text: emphasis only (a `|` outside a table is plain text).
fn escape_line(text: &str) -> String {
    text.replace('*', "\\*").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_links_are_relative_to_the_report() {
        let cwd = Path::new("/work/lab");
        let link = |report: Option<&str>, charts: &str| {
            chart_link(report.map(Path::new), Path::new(charts), cwd)
        };
        assert_eq!(link(Some("r.md"), "charts"), "charts");
        assert_eq!(link(Some("out/r.md"), "charts"), "../charts");
        assert_eq!(link(Some("out/r.md"), "out/charts"), "charts");
        assert_eq!(
            link(Some("/tmp/r.md"), "/work/lab/charts"),
            "../work/lab/charts"
        );
        assert_eq!(link(None, "./charts/"), "charts");
        assert_eq!(link(Some("a/b/r.md"), "a/c/../charts"), "../charts");
        assert_eq!(link(Some("charts/r.md"), "charts"), ".");
    }
}
