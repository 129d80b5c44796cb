//! The HTML report: one self-contained file (styles inline, charts inline as SVG, no
//! scripts and no fetches), with the same tables and notes as the Markdown report.

use std::fmt::Write;

use crate::charts::{self, Chart};
use crate::document::Results;
use crate::sections::{self, Table};

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;\
color:#222}h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;\
padding:.25em .5em}td.n{text-align:right}caption{text-align:left;color:#555;\
padding:.25em 0}table.env th{text-align:left;background:#f4f4f4}\
.warn{background:#fff3cd;border:2px solid #e0a000;padding:.75em 1em;font-size:1.05em}\
.note{background:#eef4fb;padding:.5em 1em;line-height:1.45}.isolated{background:#b7e4c0}\
.partly{background:#ffe3a3}.shared{background:#f5b5b5}figure{margin:1em 0}\
figure svg{max-width:100%;height:auto}.missing{color:#555;font-style:italic}\
li.failed{color:#a00}";

/// Renders the HTML report; a chart that cannot be drawn is replaced by its reason.
pub fn render(doc: &Results) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>vcbench report: {}, {}</title><style>{STYLE}</style></head><body>\n\
         <h1>vcbench report</h1>\n",
        escape(&doc.host.hostname),
        escape(&doc.started_at)
    );
    for w in sections::warnings(doc) {
        let _ = writeln!(
            out,
            "<p class=\"warn\"><strong>Warning:</strong> {}</p>",
            escape(&w)
        );
    }
    out.push_str("<table class=\"env\">\n");
    for (what, value) in sections::environment(doc) {
        let _ = writeln!(out, "<tr><th>{what}</th><td>{}</td></tr>", escape(&value));
    }
    out.push_str("</table>\n");
    if !doc.figures.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"note\">{}</p>",
            escape(&crate::figure_text::reading(doc))
        );
        let warnings = crate::figure_text::warnings(doc);
        if !warnings.is_empty() {
            out.push_str("<ul class=\"warn\">\n");
            for w in warnings {
                let _ = writeln!(out, "<li>{}</li>", escape(&w));
            }
            out.push_str("</ul>\n");
        }
    }
    for section in sections::sections(doc) {
        let _ = writeln!(
            out,
            "<section id=\"{}\"><h2>{}</h2>",
            section.id, section.title
        );
        if !section.note.is_empty() {
            let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(&section.note));
        }
        for chart in Chart::ALL.iter().filter(|c| c.section() == section.id) {
            match charts::svg(*chart, doc) {
                Ok(Some(svg)) => {
                    let _ = writeln!(
                        out,
                        "<figure class=\"chart\" id=\"chart-{}\">{}</figure>",
                        chart.name(),
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
        for table in &section.tables {
            out.push_str(&render_table(table));
        }
        for missing in &section.missing {
            let _ = writeln!(out, "<p class=\"missing\">{}</p>", escape(missing));
        }
        out.push_str("</section>\n");
    }
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

/// A table in HTML, with its caption; verdict cells are coloured.
fn render_table(table: &Table) -> String {
    let mut out = format!("<table><caption>{}</caption><tr>", escape(&table.caption));
    for h in &table.header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for (cell, numeric) in row.iter().zip(&table.numeric) {
            let class = match cell.as_str() {
                "isolated" | "partly" | "shared" => format!(" class=\"{cell}\""),
                _ if *numeric => " class=\"n\"".to_owned(),
                _ => String::new(),
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
