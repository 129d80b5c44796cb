//! The HTML report: one self-contained file (styles inline, charts inline as SVG, no
//! scripts and no fetches), with the same tables and notes as the Markdown report.

use std::fmt::Write;

use crate::charts::{self, Chart};
use crate::document::{Figure, Results};
use crate::sections::{self, number};

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;\
color:#222}h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;\
padding:.25em .5em}td.n{text-align:right}.warn{background:#fff3cd;border:1px solid #e0b000;\
padding:.5em 1em}.note{background:#eef4fb;padding:.5em 1em}.isolated{background:#b7e4c0}\
.partly{background:#ffe3a3}.shared{background:#f5b5b5}figure{margin:1em 0}\
figure svg{max-width:100%;height:auto}.missing{color:#777}";

/// Renders the HTML report; a chart that cannot be drawn is replaced by its reason.
pub fn render(doc: &Results) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>vcbench report</title><style>{STYLE}</style></head><body>\n\
         <h1>vcbench report</h1>\n<p>Host: {}</p>\n",
        escape(&sections::host_line(doc))
    );
    for w in sections::warnings(doc) {
        let _ = writeln!(
            out,
            "<p class=\"warn\"><strong>Warning:</strong> {}</p>",
            escape(&w)
        );
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
                        "<p class=\"missing\">Chart {} could not be drawn: {}</p>",
                        chart.name(),
                        escape(&e)
                    );
                }
            }
        }
        if section.figures.is_empty() {
            out.push_str("<p class=\"missing\">No figures for this concern in this run.</p>\n");
        } else {
            out.push_str(&table(doc, &section.figures));
        }
        if section.id == "isolation" {
            out.push_str(&matrix(doc));
        }
        out.push_str("</section>\n");
    }
    let problems = sections::problems(doc);
    if !problems.is_empty() {
        out.push_str("<section id=\"problems\"><h2>Failures and skips</h2><ul>\n");
        for p in problems {
            let _ = writeln!(out, "<li>{}</li>", escape(&p));
        }
        out.push_str("</ul></section>\n");
    }
    out.push_str("</body></html>\n");
    out
}

fn table(doc: &Results, figures: &[Figure]) -> String {
    let mut out = String::from(
        "<table><tr><th>backend</th><th>scenario</th><th>metric</th><th>median</th>\
         <th>p95</th><th>cv</th><th>n</th><th>vs native</th></tr>\n",
    );
    for f in figures {
        let s = &f.summary;
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{} {}</td>\
             <td class=\"n\">{} {}</td><td class=\"n\">{:.1}%</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td></tr>",
            escape(&f.backend),
            escape(&f.scenario),
            escape(&f.metric),
            number(s.median),
            escape(&f.unit),
            number(s.p95),
            escape(&f.unit),
            s.cv() * 100.0,
            s.n,
            doc.vs_native(f)
                .map(|r| format!("{}x", number(r)))
                .unwrap_or_default()
        );
    }
    out.push_str("</table>\n");
    out
}

fn matrix(doc: &Results) -> String {
    let Some(first) = doc.isolation.first() else {
        return String::new();
    };
    let mut out = String::from("<table class=\"matrix\"><tr><th>check</th>");
    for m in &doc.isolation {
        let _ = write!(out, "<th>{}</th>", escape(&m.backend));
    }
    out.push_str("<th>why (last column)</th></tr>\n");
    for row in &first.rows {
        let _ = write!(out, "<tr><td>{}</td>", escape(&row.check));
        let mut why = String::new();
        for m in &doc.isolation {
            let cell = m.rows.iter().find(|r| r.check == row.check);
            let verdict = cell.map_or("", |r| r.verdict.as_str());
            let _ = write!(
                out,
                "<td class=\"{}\" title=\"{}\">{}</td>",
                escape(verdict),
                escape(cell.map_or("", |r| r.inside.as_str())),
                escape(verdict)
            );
            why = cell.map(|r| r.why.clone()).unwrap_or_default();
        }
        let _ = writeln!(out, "<td>{}</td></tr>", escape(&why));
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
