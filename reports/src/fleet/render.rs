//! The fleet report, as Markdown or as one self-contained HTML file: the hosts and what
//! each is, the hosts without results and why, what the documents differ in beyond the
//! hosts, what changes across hosts (the notes), each backend's ratio to the baseline
//! per host (a chart in HTML, a table in both), then per figure each host's median with
//! its interval, and each host's failures and skips.

use std::fmt::Write;

use crate::document::Figure;
use crate::figure_text;
use crate::table::Table;

use super::merge::in_words;
use super::{chart, notes, FigureKey, Fleet};

/// One part of the report, for either format.
enum Block {
    Heading(String),
    Para(String),
    List(Vec<String>),
    Table(Table),
    /// The ratio chart (HTML only; Markdown has its table).
    Chart,
}

/// The hosts, one row each.
fn hosts_table(fleet: &Fleet) -> Table {
    let header = [
        "host", "CPU", "CPUs", "memory", "kernel", "KVM", "cgroups", "vcbench", "run",
    ];
    let rows = fleet
        .hosts
        .iter()
        .map(|m| {
            let h = &m.results.host;
            let run = match (m.results.complete, m.results.failures.len()) {
                (false, _) => "interrupted".to_owned(),
                (true, 0) => "complete".to_owned(),
                (true, n) => format!("complete, {n} failed runs"),
            };
            vec![
                m.name.clone(),
                h.cpu_model.clone(),
                h.cpus.to_string(),
                format!("{} MiB", h.memory_mib),
                h.kernel.clone(),
                notes::kvm_kind(h),
                h.cgroup.clone(),
                m.results.tool.version.clone(),
                run,
            ]
        })
        .collect();
    Table::new(
        "The hosts".to_owned(),
        header.iter().map(|s| (*s).to_owned()).collect(),
        vec![false, false, true, true, false, false, false, false, false],
        rows,
    )
}

/// The cell of one host's figure: its median and interval, marked when it ran unlike
/// work from the first host's.
fn cell(figure: Option<&Figure>, first: Option<&Figure>) -> String {
    let Some(f) = figure else {
        return "missing".to_owned();
    };
    let mut text = figure_text::median(f);
    if let Some(first) = first.filter(|g| g.variant != f.variant) {
        let _ = write!(text, " (ran \"{}\", not \"{}\")", f.variant, first.variant);
    }
    text
}

/// Per scenario, one table: a row per backend × metric, a column per host.
fn figure_tables(fleet: &Fleet) -> Vec<Table> {
    let keys = fleet.figure_keys();
    let mut scenarios: Vec<&str> = Vec::new();
    for k in &keys {
        if !scenarios.contains(&k.scenario.as_str()) {
            scenarios.push(&k.scenario);
        }
    }
    scenarios
        .into_iter()
        .map(|scenario| {
            let mut header = vec!["backend".to_owned(), "metric".to_owned()];
            header.extend(
                fleet
                    .hosts
                    .iter()
                    .map(|m| format!("{} median [95% CI]", m.name)),
            );
            let rows = keys
                .iter()
                .filter(|k| k.scenario == scenario)
                .map(|k| row(fleet, k))
                .collect();
            let mut numeric = vec![false, false];
            numeric.extend(fleet.hosts.iter().map(|_| true));
            Table::new(
                format!("{scenario}: each host's median"),
                header,
                numeric,
                rows,
            )
        })
        .collect()
}

fn row(fleet: &Fleet, key: &FigureKey) -> Vec<String> {
    let first = fleet.hosts.iter().find_map(|m| fleet.figure(&m.name, key));
    let mut cells = vec![
        key.backend.clone(),
        if key.raw_cost {
            format!("{} (raw cost)", key.metric)
        } else {
            key.metric.clone()
        },
    ];
    cells.extend(
        fleet
            .hosts
            .iter()
            .map(|m| cell(fleet.figure(&m.name, key), first)),
    );
    cells
}

/// Each ratio figure, a column per host.
fn ratio_table(fleet: &Fleet) -> Option<Table> {
    let rows: Vec<Vec<String>> = fleet
        .figure_keys()
        .iter()
        .filter(|k| {
            fleet.hosts.iter().any(|m| {
                fleet
                    .figure(&m.name, k)
                    .is_some_and(|f| f.vs_baseline.is_some())
            })
        })
        .map(|k| {
            let mut cells = vec![k.name()];
            cells.extend(fleet.hosts.iter().map(|m| {
                fleet
                    .figure(&m.name, k)
                    .map(figure_text::ratio)
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "none".to_owned())
            }));
            cells
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let mut header = vec!["figure".to_owned()];
    header.extend(fleet.hosts.iter().map(|m| m.name.clone()));
    let mut numeric = vec![false];
    numeric.extend(fleet.hosts.iter().map(|_| true));
    Some(Table::new(
        format!(
            "Ratio to {} [95% CI], per host; * the interval excludes 1",
            baseline(fleet)
        ),
        header,
        numeric,
        rows,
    ))
}

fn baseline(fleet: &Fleet) -> String {
    fleet.baseline()
}

/// Each host's failed runs and skips.
fn problems(fleet: &Fleet) -> Vec<String> {
    let mut out = Vec::new();
    for m in &fleet.hosts {
        for s in &m.results.skipped {
            out.push(format!(
                "{}: skipped {}{}: {}",
                m.name,
                s.backend,
                s.scenario
                    .as_deref()
                    .map(|sc| format!(" {sc}"))
                    .unwrap_or_default(),
                s.reason
            ));
        }
        for f in &m.results.failures {
            out.push(format!(
                "{}: {} {} run {} failed: {}",
                m.name, f.backend, f.scenario, f.index, f.reason
            ));
        }
    }
    out
}

fn plan_line(fleet: &Fleet) -> String {
    let scenarios: Vec<String> = fleet
        .plan
        .scenarios
        .iter()
        .map(|s| {
            format!(
                "{} ({}; {} runs, {} warmup)",
                s.name,
                s.workload.join(" "),
                s.runs,
                s.warmup
            )
        })
        .collect();
    format!(
        "The plan: backends {}; scenarios {}; order {}; baseline {}.",
        fleet.plan.backends.join(", "),
        scenarios.join(", "),
        fleet.plan.order,
        baseline(fleet)
    )
}

fn blocks(fleet: &Fleet) -> Vec<Block> {
    let mut b = vec![
        Block::Para(format!(
            "{} hosts with results{}, merged {} by {}. Every figure is one host's: figures of \
             different hosts are set side by side, never pooled.",
            fleet.hosts.len(),
            match fleet.skipped_hosts.len() {
                0 => String::new(),
                n => format!(", {n} skipped"),
            },
            fleet.merged_at,
            fleet.merged_by
        )),
        Block::Para(plan_line(fleet)),
        Block::Heading("Hosts".to_owned()),
        Block::Table(hosts_table(fleet)),
    ];
    if !fleet.skipped_hosts.is_empty() {
        b.push(Block::Para("Hosts without results:".to_owned()));
        b.push(Block::List(
            fleet
                .skipped_hosts
                .iter()
                .map(|s| format!("{}: {}", s.name, s.reason))
                .collect(),
        ));
    }
    b.push(Block::Heading(
        "What the documents differ in, beyond the hosts".to_owned(),
    ));
    if fleet.differences.is_empty() {
        b.push(Block::Para(
            "Nothing: every host ran the same plan with the same vcbench, and every run \
             finished."
                .to_owned(),
        ));
    } else {
        b.push(Block::List(
            fleet
                .differences
                .iter()
                .map(|d| format!("{}: {}", in_words(d), d.meaning))
                .collect(),
        ));
    }
    b.push(Block::Heading("What changes across hosts".to_owned()));
    b.push(Block::List(notes::notes(fleet)));
    if let Some(table) = ratio_table(fleet) {
        b.push(Block::Heading(format!(
            "Each backend against {}, per host",
            baseline(fleet)
        )));
        b.push(Block::Chart);
        b.push(Block::Table(table));
    }
    b.push(Block::Heading("Every figure, per host".to_owned()));
    b.extend(figure_tables(fleet).into_iter().map(Block::Table));
    let problems = problems(fleet);
    b.push(Block::Heading("Failures and skips".to_owned()));
    if problems.is_empty() {
        b.push(Block::Para("None.".to_owned()));
    } else {
        b.push(Block::List(problems));
    }
    b
}

fn title(fleet: &Fleet) -> String {
    let names: Vec<&str> = fleet.hosts.iter().map(|m| m.name.as_str()).collect();
    format!("vcbench fleet report: {}", names.join(", "))
}

/// The fleet report as Markdown.
pub fn markdown(fleet: &Fleet) -> String {
    let mut out = format!("# {}\n\n", title(fleet));
    for block in blocks(fleet) {
        match block {
            Block::Heading(h) => {
                let _ = writeln!(out, "## {h}\n");
            }
            Block::Para(p) => {
                let _ = writeln!(out, "{p}\n");
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(out, "- {i}");
                }
                out.push('\n');
            }
            Block::Table(t) => {
                out.push_str(&crate::markdown::render_table(&t));
                out.push('\n');
            }
            Block::Chart => {}
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;\
color:#222;line-height:1.4}h2{margin-top:2em;border-bottom:1px solid #ccc}table{border-collapse:\
collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;\
vertical-align:top}td.n{text-align:right}caption{text-align:left;color:#555;padding:.25em 0}\
figure svg{max-width:100%;height:auto}";

/// The fleet report as one self-contained HTML file (styles and chart inline).
pub fn html(fleet: &Fleet) -> String {
    use crate::html::escape;
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n",
        t = escape(&title(fleet))
    );
    for block in blocks(fleet) {
        match block {
            Block::Heading(h) => {
                let _ = writeln!(out, "<h2>{}</h2>", escape(&h));
            }
            Block::Para(p) => {
                let _ = writeln!(out, "<p>{}</p>", escape(&p));
            }
            Block::List(items) => {
                out.push_str("<ul>");
                for i in items {
                    let _ = write!(out, "<li>{}</li>", escape(&i));
                }
                out.push_str("</ul>\n");
            }
            Block::Table(t) => out.push_str(&crate::html::render_table(&t)),
            Block::Chart => {
                if let Some(svg) = chart::ratios_svg(fleet) {
                    let _ = writeln!(
                        out,
                        "<figure>{svg}<figcaption>Pale bars: no significant difference \
                         from {} (the interval includes 1).</figcaption></figure>",
                        escape(&baseline(fleet))
                    );
                }
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// The side-by-side table for a terminal: a header, then a row per figure, a column per
/// host.
pub fn terminal_rows(fleet: &Fleet) -> Vec<Vec<String>> {
    let mut header = vec![
        "backend".to_owned(),
        "scenario".to_owned(),
        "metric".to_owned(),
    ];
    header.extend(fleet.hosts.iter().map(|m| m.name.clone()));
    let mut rows = vec![header];
    for key in fleet.figure_keys() {
        let mut r = row(fleet, &key);
        r.insert(1, key.scenario.clone());
        rows.push(r);
    }
    rows
}
