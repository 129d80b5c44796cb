//! The HTML report: one self-contained file (styles inline, charts inline as SVG, no
//! scripts and no fetches), with the same parts as the Markdown report: read me first
//! (this run on one page, the picture of the three ways to run a program, how to read the
//! report, its words, the run's settings), a section per concern, an appendix with every
//! figure, and the failures and skips. A print stylesheet puts the one-page summary on a
//! page of its own and each section on a new page.

use std::fmt::Write;

use crate::charts::{self, Chart};
use crate::document::Results;
use crate::sections::{self, Section};
use crate::table::Table;
use crate::{figure_text, primer};

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;\
color:#222;line-height:1.4}h1{font-size:1.6em;margin-bottom:.2em}.sub{color:#555;margin-top:0}\
h2{margin-top:2em;border-bottom:1px solid #ccc}h3{margin-top:1.5em}\
table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;\
padding:.25em .5em;vertical-align:top}td.n{text-align:right}caption{text-align:left;color:#555;\
padding:.25em 0}table.env th{text-align:left;background:#f4f4f4;white-space:nowrap}\
.warn{background:#fff3cd;border:2px solid #e0a000;padding:.75em 1em;font-size:1.05em}\
.note{background:#eef4fb;padding:.5em 1em;line-height:1.45}.isolated{background:#b7e4c0}\
.partly{background:#ffe3a3}.shared{background:#f5b5b5}.na{background:#eee;color:#555}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto}.missing{color:#555;font-style:italic}\
li.failed{color:#a00}.summary{border:2px solid #4a6fa5;padding:0 1em 1em;margin:1em 0}\
.summary h3{margin-top:.75em}ul.lessons li{margin:.35em 0}dl.glossary dt{font-weight:bold;\
margin-top:.5em}dl.glossary dd{margin-left:1.5em}nav.toc{font-size:.95em}\
nav.toc a{margin-right:1em}";

/// Styles for paper: the one-page summary on its own page, each section on a new page,
/// tables and charts never split, colours kept.
const PRINT: &str = "@page{size:A4;margin:12mm}body{max-width:none;margin:0;padding:0;\
font-size:9pt;line-height:1.3}nav.toc{display:none}h1{font-size:15pt}h2{break-before:page;\
page-break-before:always;font-size:13pt;margin-top:.5em}h3{font-size:11pt;margin-top:.8em}\
#read-me-first>h2{break-before:avoid;page-break-before:avoid}.summary{break-after:page;\
page-break-after:always;border:none;padding:0;margin:0}.summary figure{margin:.3em 0}\
.summary figure svg{max-height:66mm}.summary table{font-size:7.5pt;margin:.4em 0}\
.summary ul.lessons{margin:.3em 0}.summary ul.lessons li{margin:.1em 0}figure,table,tr,.note,dl{\
break-inside:avoid;page-break-inside:avoid}figure svg{max-height:110mm}.note{background:none;\
border-left:3px solid #4a6fa5}.warn{border-width:1px;padding:.3em .6em;font-size:9pt}\
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}";

/// Renders the HTML report; a chart that cannot be drawn is replaced by its reason.
pub fn render(doc: &Results) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>vcbench report: {}, {}</title><style>{STYLE}</style>\
         <style media=\"print\">{PRINT}</style></head><body>\n\
         <h1>vcbench report</h1>\n<p class=\"sub\">{} · {}</p>\n",
        escape(&doc.host.hostname),
        escape(&doc.started_at),
        escape(&doc.host.hostname),
        escape(&doc.started_at)
    );
    let sections = sections::sections(doc);
    out.push_str("<nav class=\"toc\">");
    out.push_str("<a href=\"#read-me-first\">Read me first</a>");
    for s in &sections {
        let _ = write!(out, "<a href=\"#{}\">{}</a>", s.id, s.title);
    }
    out.push_str("<a href=\"#appendix\">Appendix</a><a href=\"#problems\">Failures and skips</a>");
    out.push_str("</nav>\n");
    for w in sections::warnings(doc) {
        let _ = writeln!(
            out,
            "<p class=\"warn\"><strong>Warning:</strong> {}</p>",
            escape(&w)
        );
    }
    read_me_first(&mut out, doc);
    for section in &sections {
        render_section(&mut out, doc, section);
    }
    appendix(&mut out, doc, &sections);
    out.push_str("<section id=\"problems\"><h2>Failures and skips</h2>\n");
    let problems = sections::problems(doc);
    if problems.is_empty() {
        out.push_str("<p>Every run succeeded and nothing was skipped.</p>\n");
    } else {
        out.push_str("<ul>\n");
        for p in problems {
            let class = if p.starts_with("failed") {
                " class=\"failed\""
            } else {
                ""
            };
            let _ = writeln!(out, "<li{class}>{}</li>", escape(&p));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n</body></html>\n");
    out
}

/// The read-me-first section: this run on one page, then the spectrum, how to read the
/// report, its words and the run's settings.
fn read_me_first(out: &mut String, doc: &Results) {
    out.push_str("<section id=\"read-me-first\"><h2>Read me first</h2>\n");
    out.push_str("<div class=\"summary\" id=\"summary\"><h3>This run on one page</h3>\n");
    if let Some(table) = primer::summary_table(doc) {
        out.push_str(&render_table(&table));
    }
    let lessons = primer::lessons(doc);
    if !lessons.is_empty() {
        out.push_str("<ul class=\"lessons\">\n");
        for l in lessons {
            let _ = writeln!(out, "<li>{}</li>", escape(&l));
        }
        out.push_str("</ul>\n");
    }
    chart(out, doc, Chart::Stacks);
    out.push_str("</div>\n");
    chart(out, doc, Chart::Spectrum);
    out.push_str("<h3 id=\"how-to-read\">How to read this report</h3>\n<ul>\n");
    for point in primer::how_to_read(doc) {
        let _ = writeln!(out, "<li>{}</li>", escape(&point));
    }
    out.push_str("</ul>\n<h3 id=\"glossary\">Words used here</h3>\n<dl class=\"glossary\">\n");
    for (term, meaning) in primer::GLOSSARY {
        let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", escape(term), escape(meaning));
    }
    out.push_str(
        "</dl>\n<h3 id=\"settings\">How this run was set up</h3>\n<table class=\"env\">\n",
    );
    for (what, value) in primer::settings(doc) {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(&what),
            escape(&value)
        );
    }
    out.push_str("</table>\n</section>\n");
}

/// One chart as an inline SVG figure, its reason when it cannot be drawn, nothing when the
/// document has no data for it.
fn chart(out: &mut String, doc: &Results, chart: Chart) {
    match charts::svg(chart, doc) {
        Ok(Some(svg)) => {
            let _ = writeln!(
                out,
                "<figure class=\"chart\" id=\"chart-{}\" role=\"img\" \
                 aria-label=\"{}\">{}</figure>",
                chart.name(),
                escape(chart.title()),
                strip_xml_declaration(&svg)
            );
        }
        Ok(None) => {}
        Err(e) => {
            let _ = writeln!(
                out,
                "<p class=\"missing\">The {} chart could not be drawn: {}</p>",
                chart.name(),
                escape(&e.to_string())
            );
        }
    }
}

fn render_section(out: &mut String, doc: &Results, section: &Section) {
    let _ = writeln!(
        out,
        "<section id=\"{}\"><h2>{}</h2>",
        section.id, section.title
    );
    if !section.note.is_empty() {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(&section.note));
    }
    for c in Chart::ALL.iter().filter(|c| c.section() == section.id) {
        chart(out, doc, *c);
    }
    for table in &section.tables {
        out.push_str(&render_table(table));
    }
    for missing in &section.missing {
        let _ = writeln!(out, "<p class=\"missing\">{}</p>", escape(missing));
    }
    out.push_str("</section>\n");
}

/// The appendix: the samples' warnings, then every section's long tables.
fn appendix(out: &mut String, doc: &Results, sections: &[Section]) {
    out.push_str("<section id=\"appendix\"><h2>Appendix: every figure</h2>\n");
    let warnings = figure_text::warnings(doc);
    if !warnings.is_empty() {
        out.push_str("<h3>What the samples warn of</h3>\n<ul class=\"warn\">\n");
        for w in warnings {
            let _ = writeln!(out, "<li>{}</li>", escape(&w));
        }
        out.push_str("</ul>\n");
    }
    let mut any = false;
    for s in sections.iter().filter(|s| !s.appendix.is_empty()) {
        any = true;
        let _ = writeln!(out, "<h3>{}</h3>", s.title);
        for table in &s.appendix {
            out.push_str(&render_table(table));
        }
    }
    if !any {
        out.push_str("<p>Every figure is in its section above.</p>\n");
    }
    out.push_str("</section>\n");
}

/// The class of a verdict cell, by its first word.
fn verdict_class(cell: &str) -> Option<&'static str> {
    let word = cell.split(':').next().unwrap_or_default();
    match word {
        "isolated" => Some("isolated"),
        "partly" => Some("partly"),
        "shared" => Some("shared"),
        _ if cell.starts_with("n/a")
            || cell.starts_with("untested")
            || cell.starts_with("no guest OS")
            || cell.starts_with("not probed") =>
        {
            Some("na")
        }
        _ => None,
    }
}

/// A table in HTML, with its caption; verdict cells are coloured.
pub fn render_table(table: &Table) -> String {
    let mut out = format!("<table><caption>{}</caption><tr>", escape(&table.caption));
    for h in &table.header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let numeric = table.numeric.get(i).copied().unwrap_or(false);
            let verdict = table.verdicts.get(i).copied().unwrap_or(false);
            let class = match verdict.then(|| verdict_class(cell)).flatten() {
                Some(c) => format!(" class=\"{c}\""),
                None if numeric => " class=\"n\"".to_owned(),
                None => String::new(),
            };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// Inline SVG must not carry an XML declaration.
fn strip_xml_declaration(svg: &str) -> &str {
    match svg.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map_or(svg, |(_, body)| body.trim_start()),
        None => svg,
    }
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
