//! The summary a person reads at the end of a run: one aligned table of figures, then
//! what failed and what was skipped.

use std::fmt::Write;

use crate::results::{Figure, Kind, Results};
use reports::figure_text;

pub use reports::figure_text::number;

/// Lays out rows in columns, the first row as the header; `right` marks right-aligned columns.
pub fn columns(rows: &[Vec<String>], right: &[bool], bold_header: bool) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c > 0 {
                line.push_str("  ");
            }
            if right.get(c).copied().unwrap_or(false) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if c + 1 < row.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        if i == 0 && bold_header {
            line = format!("\x1b[1m{line}\x1b[0m");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One line per failed run, then one per skipped backend or scenario, each with its
/// reason: what follows the table, and what `run -q` prints.
pub fn outcome_lines(results: &Results) -> Vec<String> {
    let failed = results.failures.iter().map(|f| {
        format!(
            "failed: {} {} run {}: {}",
            f.backend, f.scenario, f.index, f.reason
        )
    });
    let skipped = results.skipped.iter().map(|s| {
        let what = match &s.scenario {
            Some(scenario) => format!("{} {scenario}", s.backend),
            None => s.backend.clone(),
        };
        format!("skipped: {what}: {}", s.reason)
    });
    failed.chain(skipped).collect()
}

/// One line per goal the results hold, with its verdict: `container startup over_native:
/// met (1.165 ms [1.105, 1.323], all of it at most 1.5 ms)`.
pub fn goal_lines(results: &Results) -> Vec<String> {
    figure_text::goals(results)
        .into_iter()
        .map(|(f, words)| format!("{}: {words}", f.name()))
        .collect()
}

/// The summary of a results document. `color` adds ANSI bold and red.
///
/// Each figure shows its median with the median's 95% interval and, against the baseline
/// backend, the ratio of medians with its interval (`*` where the interval excludes 1).
/// A single derived value shows the value alone. A micro guest's figures are the
/// hypervisor's raw costs: they follow in a group of their own, with no ratio.
pub fn render(results: &Results, color: bool) -> String {
    let baseline = results.baseline().unwrap_or("native").to_owned();
    let header = vec![
        "backend".to_owned(),
        "scenario".to_owned(),
        "metric".to_owned(),
        "median [95% CI]".to_owned(),
        "cv".to_owned(),
        "n".to_owned(),
        "outliers".to_owned(),
        format!("vs {baseline} [95% CI]"),
    ];
    let row = |f: &Figure| {
        let value = f.kind == Kind::Value;
        vec![
            f.backend.clone(),
            f.scenario.clone(),
            figure_text::metric(f),
            figure_text::median(f),
            figure_text::spread(f),
            if value {
                "value".to_owned()
            } else {
                f.summary.n.to_string()
            },
            if value {
                String::new()
            } else {
                f.summary.outliers.len().to_string()
            },
            figure_text::ratio(f),
        ]
    };
    let right = [false, false, false, true, true, true, true, true];
    let mut out = String::new();
    if results.figures.is_empty() {
        out.push_str(if results.complete {
            "no figures were measured\n"
        } else {
            "no figures were measured before the run was interrupted\n"
        });
    } else {
        let (like, raw): (Vec<&Figure>, Vec<&Figure>) =
            results.figures.iter().partition(|f| !f.raw_cost);
        if !like.is_empty() {
            let mut rows = vec![header.clone()];
            rows.extend(like.iter().map(|f| row(f)));
            out.push_str(&columns(&rows, &right, color));
            if like.iter().any(|f| f.vs_baseline.is_some()) {
                let _ = writeln!(
                    out,
                    "* the ratio's interval excludes 1: a significant difference from {baseline}; \
                     without *, no significant difference"
                );
            }
        }
        if !raw.is_empty() {
            out.push_str(
                "\nhypervisor raw costs (micro guests: no kernel, no program; nothing else runs \
                 like work, so no ratio):\n",
            );
            let mut rows = vec![header[..7].to_vec()];
            rows.extend(raw.iter().map(|f| row(f)[..7].to_vec()));
            out.push_str(&columns(&rows, &right[..7], color));
        }
    }
    let goals = goal_lines(results);
    if !goals.is_empty() {
        out.push_str("\ngoals (met only when the whole 95% interval is within the goal):\n");
        for line in goals {
            let _ = writeln!(out, "  {line}");
        }
    }
    let warnings = figure_text::warnings(results);
    if !warnings.is_empty() {
        out.push_str("\nwarnings:\n");
        for w in warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    let (red, reset) = if color {
        ("\x1b[31m", "\x1b[0m")
    } else {
        ("", "")
    };
    out.push_str(&density_steps(results, color));
    out.push_str(&isolation_matrix(results, color));
    for line in outcome_lines(results) {
        let line = match line.strip_prefix("failed") {
            Some(rest) => format!("{red}failed{reset}{rest}"),
            None => line,
        };
        let _ = writeln!(out, "{line}");
    }
    let vm_figures = results
        .figures
        .iter()
        .any(|f| f.backend == "microvm" || f.backend == "qemu");
    if vm_figures && results.host.kvm.flavour == "software" {
        let _ = writeln!(
            out,
            "note: KVM here is {}: guest instructions are emulated, so VM timings are emulation figures",
            results.host.kvm.label()
        );
    }
    if results.host.emulated {
        let _ = writeln!(
            out,
            "note: this host's CPU is emulated by QEMU TCG (the test rig): these results test \
             correctness; their timings describe no real machine"
        );
    }
    if !results.complete {
        let _ = writeln!(
            out,
            "{red}incomplete{reset}: the run was interrupted before its plan was done; the \
             figures above are from the runs completed before"
        );
    }
    out
}

/// The isolation matrix: one row per check, one column per backend, each cell the verdict
/// and, for the last backend, why.
fn isolation_matrix(results: &Results, color: bool) -> String {
    let Some(first) = results.isolation.first() else {
        return String::new();
    };
    let mut header = vec!["check".to_owned()];
    header.extend(results.isolation.iter().map(|m| m.backend.clone()));
    header.push("why (last column)".to_owned());
    let mut rows = vec![header];
    for row in &first.rows {
        let mut line = vec![row.check.clone()];
        let mut why = String::new();
        for matrix in &results.isolation {
            let cell = matrix.rows.iter().find(|r| r.check == row.check);
            line.push(cell.map(|r| r.verdict.clone()).unwrap_or_default());
            why = cell.map(|r| r.why.clone()).unwrap_or_default();
        }
        line.push(why);
        rows.push(line);
    }
    let mut out = String::from("\nisolation (against the same probe run on the host):\n");
    out.push_str(&columns(&rows, &[], color));
    out
}

/// One table per density series: the state after each step.
fn density_steps(results: &Results, color: bool) -> String {
    let mut out = String::new();
    for series in &results.density {
        let mut rows = vec![[
            "instances",
            "newest start",
            "pss/instance",
            "uss/instance",
            "host available",
            "slab",
            "page tables",
        ]
        .map(str::to_owned)
        .to_vec()];
        let mib = |kib: u64| format!("{} MiB", number(kib as f64 / 1024.0));
        for step in &series.steps {
            rows.push(vec![
                step.instances.to_string(),
                step.start_ms
                    .last()
                    .map(|ms| format!("{} ms", number(*ms)))
                    .unwrap_or_default(),
                mib(step.per_instance.pss_kib),
                mib(step.per_instance.uss_kib),
                mib(step.host.available_kib),
                mib(step.host.slab_kib),
                mib(step.host.page_tables_kib),
            ]);
        }
        let _ = writeln!(
            out,
            "\ndensity, {}: {} alive at most{}; torn down in {} ms",
            series.backend,
            series.reached,
            series
                .stopped
                .as_ref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            number(series.teardown_ms)
        );
        out.push_str(&columns(&rows, &[true; 7], color));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_three_digits() {
        assert_eq!(number(0.81234), "0.8123");
        assert_eq!(number(1.5), "1.500");
        assert_eq!(number(12.345), "12.35");
        assert_eq!(number(123.45), "123.5");
        assert_eq!(number(12345.6), "12346");
    }

    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["a".to_owned(), "value".to_owned()],
            vec!["long name".to_owned(), "1".to_owned()],
        ];
        let text = columns(&rows, &[false, true], false);
        assert_eq!(text, "a          value\nlong name      1\n");
    }
}
