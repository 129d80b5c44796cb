//! The results as CSV, for spreadsheets and data frames: one row per figure (its summary,
//! interval and ratio to the baseline), or one row per sample (every raw value, with the
//! figure it belongs to). RFC 4180: a header row, comma-separated, fields quoted when they
//! hold a comma, a quote or a line break, numbers as Rust prints them (full precision,
//! `.` as the decimal point), empty where a value is absent.

use std::fmt::Write;

use crate::document::{Figure, Results};

/// The columns of [`figures`].
pub const FIGURE_COLUMNS: [&str; 18] = [
    "backend",
    "scenario",
    "metric",
    "unit",
    "better",
    "variant",
    "raw_cost",
    "n",
    "median",
    "ci_low",
    "ci_high",
    "mean",
    "stddev",
    "min",
    "max",
    "vs_baseline",
    "vs_baseline_low",
    "vs_baseline_high",
];

/// The columns of [`samples`].
pub const SAMPLE_COLUMNS: [&str; 8] = [
    "backend", "scenario", "metric", "unit", "variant", "raw_cost", "sample", "value",
];

/// One row per figure: what it is, its summary, and its ratio to the baseline.
pub fn figures(doc: &Results) -> String {
    let mut out = row(FIGURE_COLUMNS.iter().map(|c| (*c).to_owned()));
    for f in &doc.figures {
        let s = &f.summary;
        let (low, high) =
            s.ci.as_ref()
                .map_or((None, None), |ci| (Some(ci.low), Some(ci.high)));
        let ratio = f.vs_baseline.as_ref().map(|r| &r.estimate);
        let mut fields = identity(f, true);
        fields.extend([
            f.raw_cost.to_string(),
            s.n.to_string(),
            s.median.to_string(),
            opt(low),
            opt(high),
            s.mean.to_string(),
            s.stddev.to_string(),
            s.min.to_string(),
            s.max.to_string(),
            opt(ratio.map(|e| e.value)),
            opt(ratio.map(|e| e.ci.low)),
            opt(ratio.map(|e| e.ci.high)),
        ]);
        out.push_str(&row(fields.into_iter()));
    }
    out
}

/// One row per raw sample, numbered from 0 in the order they were measured.
pub fn samples(doc: &Results) -> String {
    let mut out = row(SAMPLE_COLUMNS.iter().map(|c| (*c).to_owned()));
    for f in &doc.figures {
        for (i, value) in f.samples.iter().enumerate() {
            let mut fields = identity(f, false);
            fields.extend([f.raw_cost.to_string(), i.to_string(), value.to_string()]);
            out.push_str(&row(fields.into_iter()));
        }
    }
    out
}

/// A figure's identity: backend, scenario, metric, unit, (better,) variant.
fn identity(f: &Figure, better: bool) -> Vec<String> {
    let mut fields = vec![
        f.backend.clone(),
        f.scenario.clone(),
        f.metric.clone(),
        f.unit.clone(),
    ];
    if better {
        fields.push(
            serde_json::to_value(f.better)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        );
    }
    fields.push(f.variant.clone());
    fields
}

fn opt(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// One CSV line, each field quoted where it must be.
fn row(fields: impl Iterator<Item = String>) -> String {
    let mut line = String::new();
    for (i, field) in fields.enumerate() {
        if i > 0 {
            line.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            let _ = write!(line, "\"{}\"", field.replace('"', "\"\""));
        } else {
            line.push_str(&field);
        }
    }
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Results {
        Results::parse(
            include_str!("../tests/data/results.json"),
            std::path::Path::new("results.json"),
        )
        .unwrap()
    }

    /// Splits one CSV line into its fields, undoing the quoting.
    fn fields(line: &str) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    out.last_mut().unwrap().push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => out.push(String::new()),
                (c, _) => out.last_mut().unwrap().push(c),
            }
        }
        out
    }

    #[test]
    fn one_row_per_figure_with_its_summary_and_ratio() {
        let doc = fixture();
        let text = figures(&doc);
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), doc.figures.len() + 1);
        assert_eq!(fields(lines[0]), FIGURE_COLUMNS);
        for (line, f) in lines[1..].iter().zip(&doc.figures) {
            let row = fields(line);
            assert_eq!(row.len(), FIGURE_COLUMNS.len(), "{line}");
            assert_eq!(row[0], f.backend);
            assert_eq!(row[2], f.metric);
            assert_eq!(row[5], f.variant, "a variant with commas comes back whole");
            assert_eq!(row[8].parse::<f64>().unwrap(), f.summary.median);
            match &f.vs_baseline {
                Some(r) => assert_eq!(row[15].parse::<f64>().unwrap(), r.estimate.value),
                None => assert!(row[15].is_empty()),
            }
        }
    }

    #[test]
    fn one_row_per_sample_in_measured_order() {
        let doc = fixture();
        let text = samples(&doc);
        let rows: Vec<Vec<String>> = text
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(fields)
            .collect();
        let total: usize = doc.figures.iter().map(|f| f.samples.len()).sum();
        assert_eq!(rows.len(), total + 1);
        assert_eq!(rows[0], SAMPLE_COLUMNS);
        let first = doc.figures.iter().find(|f| !f.samples.is_empty()).unwrap();
        let mine: Vec<f64> = rows[1..]
            .iter()
            .filter(|r| r[0] == first.backend && r[1] == first.scenario && r[2] == first.metric)
            .map(|r| r[7].parse().unwrap())
            .collect();
        assert_eq!(mine, first.samples);
    }

    #[test]
    fn fields_with_commas_quotes_and_line_breaks_are_quoted() {
        let line = row(["a,b", "say \"hi\"", "two\nlines", "plain"]
            .into_iter()
            .map(str::to_owned));
        assert_eq!(line, "\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",plain\r\n");
        assert_eq!(
            fields(line.trim_end()),
            ["a,b", "say \"hi\"", "two\nlines", "plain"]
        );
    }
}
