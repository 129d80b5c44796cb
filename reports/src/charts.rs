//! The charts, drawn with plotters onto any of its backends: SVG text for the HTML report,
//! SVG and PNG files for slides. Each chart draws only from the document; one with no data
//! in the document is not drawn (and the report says so).

use std::path::Path;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::document::{Figure, Metric, Results, Scenario};
use crate::figure_text::{number, times};
use crate::{derived, family, matrix, phases};

mod spectrum;
mod stacks;

/// Width and height of a chart, pixels (the isolation matrix is taller).
pub const SIZE: (u32, u32) = (900, 420);

/// The charts a report can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    /// The three ways of running a program side by side (a process; a process fenced by
    /// namespaces and a cgroup; a guest on a monitor on KVM), with this run's numbers.
    Stacks,
    /// The backends from the least fenced to the most, against start time, memory beyond
    /// the workload and the cost of a system call.
    Spectrum,
    /// Startup latency per backend: min, quartiles, median, max.
    StartupDistribution,
    /// Every startup sample in the order it was taken: warmth, drift and noise.
    RunOrder,
    /// Where the startup time goes, phase by phase, per backend.
    StartupPhases,
    /// Cold against warm start per backend: launch to the first record from nothing, and
    /// from a sandbox prepared ahead (a pool, a snapshot).
    ColdWarm,
    /// Memory per instance: what the workload touched, what any process of it holds, and
    /// what the sandbox adds.
    Memory,
    /// Runtime slowdown against native, per workload.
    Overhead,
    /// The isolation matrix.
    Isolation,
    /// Memory per instance against the number of instances.
    Density,
    /// Start latency against the number of instances.
    DensityStart,
}

impl Chart {
    /// Every chart, in report order.
    pub const ALL: [Chart; 11] = [
        Chart::Stacks,
        Chart::Spectrum,
        Chart::StartupDistribution,
        Chart::RunOrder,
        Chart::StartupPhases,
        Chart::ColdWarm,
        Chart::Memory,
        Chart::Overhead,
        Chart::Isolation,
        Chart::Density,
        Chart::DensityStart,
    ];

    /// File name stem.
    pub fn name(self) -> &'static str {
        match self {
            Chart::Stacks => "stacks",
            Chart::Spectrum => "spectrum",
            Chart::StartupDistribution => "startup-latency",
            Chart::RunOrder => "startup-run-order",
            Chart::StartupPhases => "startup-phases",
            Chart::ColdWarm => "cold-warm",
            Chart::Memory => "memory",
            Chart::Overhead => "overhead",
            Chart::Isolation => "isolation",
            Chart::Density => "density",
            Chart::DensityStart => "density-start",
        }
    }

    /// What it shows, in a line: its alternative text.
    pub fn title(self) -> &'static str {
        match self {
            Chart::Stacks => "Three ways to run one program, with this run's numbers",
            Chart::Spectrum => {
                "From a plain process to a VM: start time, memory beyond the workload, one \
                 system call"
            }
            Chart::StartupDistribution => "Startup latency per backend",
            Chart::RunOrder => "Every startup run in the order it was taken",
            Chart::StartupPhases => "Where startup time goes",
            Chart::ColdWarm => "Cold and warm start per backend",
            Chart::Memory => "Memory per instance",
            Chart::Overhead => "Runtime slowdown against native",
            Chart::Isolation => "What each sandbox sees and may do",
            Chart::Density => "Memory per instance as instances are added",
            Chart::DensityStart => "Start latency as instances are added",
        }
    }

    /// Its width and height, pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            Chart::Isolation => (900, 600),
            Chart::Stacks => (900, 540),
            _ => SIZE,
        }
    }

    /// The section it belongs to.
    pub fn section(self) -> &'static str {
        match self {
            Chart::Stacks | Chart::Spectrum => "read-me-first",
            Chart::StartupDistribution
            | Chart::RunOrder
            | Chart::StartupPhases
            | Chart::ColdWarm => "startup",
            Chart::Memory => "memory",
            Chart::Overhead => "overhead",
            Chart::Isolation => "isolation",
            Chart::Density | Chart::DensityStart => "density",
        }
    }
}

/// Why plotters could not draw a chart (its backend's error, as it describes it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DrawError(String);

pub(crate) fn err<E: std::error::Error>(e: E) -> DrawError {
    DrawError(e.to_string())
}

/// A value axis from 0 to `max`, and at least to `least`. A document may hold any finite
/// number, and a margin, sum or ratio of such numbers may overflow to infinity; plotters
/// never returns when asked for the ticks of an infinite axis, so such a chart is refused
/// instead.
pub(crate) fn value_axis(max: f64, least: f64) -> Result<Axis, DrawError> {
    if max.is_finite() {
        Ok(Axis::from(0.0..max.max(least)))
    } else {
        Err(DrawError(
            "its values are too large to draw (the axis would be infinite)".to_owned(),
        ))
    }
}

/// A numeric axis that keeps every value on the chart. Plotters maps a value far outside
/// its axis to a pixel beyond `i32` with an unchecked addition (a panic in a debug build,
/// a wild line in a release one), and a document may hold any number: a negative
/// latency, a phase longer than the whole. Values are clamped to the axis before they are
/// mapped; ticks and labels are plotters' own.
#[derive(Clone)]
pub(crate) struct Axis(RangedCoordf64);

impl From<std::ops::Range<f64>> for Axis {
    fn from(range: std::ops::Range<f64>) -> Self {
        Axis(RangedCoordf64::from(range))
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let range = self.0.range();
        let (lo, hi) = (range.start.min(range.end), range.start.max(range.end));
        let value = if value.is_nan() {
            lo
        } else {
            value.clamp(lo, hi)
        };
        self.0.map(&value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        self.0.key_points(hint)
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.0.range()
    }
}

impl ValueFormatter<f64> for Axis {
    fn format(value: &f64) -> String {
        RangedCoordf64::format(value)
    }
}

const PALETTE: [RGBColor; 16] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
];

pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The chart as an SVG document, or `None` when the document has no data for it.
pub fn svg(chart: Chart, doc: &Results) -> Result<Option<String>, DrawError> {
    if !has_data(chart, doc) {
        return Ok(None);
    }
    let mut text = String::new();
    {
        let area = SVGBackend::with_string(&mut text, chart.size()).into_drawing_area();
        draw(chart, &area, doc)?;
        area.present().map_err(err)?;
    }
    Ok(Some(text))
}

/// Writes the chart as a PNG file; `Ok(false)` when the document has no data for it.
pub fn png(chart: Chart, doc: &Results, path: &Path) -> Result<bool, DrawError> {
    if !has_data(chart, doc) {
        return Ok(false);
    }
    let area = BitMapBackend::new(path, chart.size()).into_drawing_area();
    draw(chart, &area, doc)?;
    area.present().map_err(err)?;
    Ok(true)
}

/// Whether the document has data for the chart (a chart without is not drawn).
pub fn has_data(chart: Chart, doc: &Results) -> bool {
    match chart {
        Chart::Stacks => !family::ran(doc).is_empty(),
        Chart::Spectrum => !derived::spectrum(doc).is_empty(),
        Chart::StartupDistribution | Chart::RunOrder => !startup_samples(doc).is_empty(),
        Chart::StartupPhases => !phases::stages(doc).is_empty(),
        Chart::ColdWarm => !cold_warm_data(doc).is_empty(),
        Chart::Memory => !derived::memory(doc).is_empty(),
        Chart::Overhead => !derived::slowdowns(doc).is_empty(),
        Chart::Isolation => !doc.isolation.is_empty(),
        Chart::Density | Chart::DensityStart => doc.density.iter().any(|d| !d.steps.is_empty()),
    }
}

fn draw<DB: DrawingBackend>(
    chart: Chart,
    area: &DrawingArea<DB, Shift>,
    doc: &Results,
) -> Result<(), DrawError> {
    area.fill(&WHITE).map_err(err)?;
    match chart {
        Chart::Stacks => stacks::draw(area, doc),
        Chart::Spectrum => spectrum::draw(area, doc),
        Chart::RunOrder => spectrum::run_order(area, doc),
        Chart::StartupDistribution => startup_distribution(area, doc),
        Chart::StartupPhases => startup_phases(area, doc),
        Chart::ColdWarm => cold_warm(area, doc),
        Chart::Memory => memory(area, doc),
        Chart::Overhead => overhead(area, doc),
        Chart::Isolation => isolation(area, doc),
        Chart::Density => density(area, doc, DensityAxis::Memory),
        Chart::DensityStart => density(area, doc, DensityAxis::Start),
    }
}

/// `time_to_start` samples per backend.
fn startup_samples(doc: &Results) -> Vec<(String, Vec<f64>)> {
    doc.figures
        .iter()
        .filter(|f| {
            f.scenario == Scenario::Startup
                && f.metric == Metric::TimeToStart
                && !f.samples.is_empty()
        })
        .map(|f| (f.backend.clone(), f.samples.clone()))
        .collect()
}

/// The `q`th quantile (0..=1) of sorted samples: the statistics' own, so a chart's median
/// is the table's.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    stats::percentile(sorted, q * 100.0)
}

/// Horizontal categories: backend `i` is drawn around `y = i`.
pub(crate) fn category_labels(names: Vec<String>) -> impl Fn(&f64) -> String {
    move |y: &f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "small category indices"
        )]
        let i = y.round() as usize;
        if (y - y.round()).abs() < 1e-6 {
            names.get(i).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    }
}

#[allow(clippy::cast_precision_loss, reason = "small category counts")]
pub(crate) fn as_f64(n: usize) -> f64 {
    n as f64
}

/// The fewest samples a box plot is drawn for: below it, every sample is a dot.
const MIN_BOX_SAMPLES: usize = 6;

fn startup_distribution<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    doc: &Results,
) -> Result<(), DrawError> {
    let data = startup_samples(doc);
    let max = data
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .fold(0.0_f64, f64::max)
        * 1.1;
    let n = data.len();
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Startup latency: launch to the workload's first record",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(110)
        .build_cartesian_2d(value_axis(max, 1e-3)?, -0.5..as_f64(n) - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&category_labels(
            data.iter().map(|(b, _)| backend_label(doc, b)).collect(),
        ))
        .light_line_style(LIGHT)
        .x_desc(if data.iter().all(|(_, s)| s.len() >= MIN_BOX_SAMPLES) {
            "ms (box: quartiles, line: median, whiskers: min and max)"
        } else {
            "ms (box: quartiles, line: median, whiskers: min and max; where too few runs for a \
             box, dots: every run, band: their range)"
        })
        .draw()
        .map_err(err)?;
    for (i, (_, samples)) in data.iter().enumerate() {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let y = as_f64(i);
        if sorted.len() < MIN_BOX_SAMPLES {
            // Quartiles of a handful of runs describe nothing: show the runs themselves.
            let c = color(i);
            let med = quantile(&sorted, 0.5);
            let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
            chart
                .draw_series([Rectangle::new(
                    [(lo, y - 0.18), (hi, y + 0.18)],
                    c.mix(0.3).filled(),
                )])
                .map_err(err)?;
            chart
                .draw_series(sorted.iter().map(|&x| Circle::new((x, y), 6, c.filled())))
                .map_err(err)?;
            chart
                .draw_series([PathElement::new(
                    vec![(med, y - 0.3), (med, y + 0.3)],
                    c.stroke_width(3),
                )])
                .map_err(err)?;
            continue;
        }
        let (lo, q1, med, q3, hi) = (
            sorted[0],
            quantile(&sorted, 0.25),
            quantile(&sorted, 0.5),
            quantile(&sorted, 0.75),
            sorted[sorted.len() - 1],
        );
        let c = color(i);
        chart
            .draw_series([
                Rectangle::new([(q1, y - 0.25), (q3, y + 0.25)], c.mix(0.35).filled()),
                Rectangle::new([(q1, y - 0.25), (q3, y + 0.25)], c.stroke_width(2)),
            ])
            .map_err(err)?;
        chart
            .draw_series([
                PathElement::new(vec![(med, y - 0.3), (med, y + 0.3)], c.stroke_width(3)),
                PathElement::new(vec![(lo, y), (q1, y)], c.stroke_width(1)),
                PathElement::new(vec![(q3, y), (hi, y)], c.stroke_width(1)),
                PathElement::new(vec![(lo, y - 0.12), (lo, y + 0.12)], c.stroke_width(1)),
                PathElement::new(vec![(hi, y - 0.12), (hi, y + 0.12)], c.stroke_width(1)),
            ])
            .map_err(err)?;
    }
    Ok(())
}

/// Per backend with a warm start: its cold start figure (if it ran) and its warm one.
fn cold_warm_data(doc: &Results) -> Vec<(String, Option<&Figure>, &Figure)> {
    doc.figures
        .iter()
        .filter(|f| f.scenario == Scenario::Warm && f.metric == Metric::WarmStart)
        .map(|warm| {
            let cold = doc.figure(
                &warm.backend,
                Scenario::Startup.name(),
                Metric::TimeToStart.name(),
            );
            (warm.backend.clone(), cold, warm)
        })
        .collect()
}

/// Two bars per backend, cold and warm start, each its median with its 95% interval.
fn cold_warm<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    doc: &Results,
) -> Result<(), DrawError> {
    let data = cold_warm_data(doc);
    let high = |f: &Figure| f.summary.ci.as_ref().map_or(f.summary.median, |ci| ci.high);
    let max = data
        .iter()
        .flat_map(|(_, cold, warm)| cold.iter().map(|c| high(c)).chain([high(warm)]))
        .fold(0.0_f64, f64::max)
        * 1.15;
    let n = data.len();
    let (plot, key) = area.split_horizontally(area.dim_in_pixel().0 * 4 / 5);
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            "Cold and warm start: launch to the first record",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(110)
        .build_cartesian_2d(value_axis(max, 1e-3)?, -0.5..as_f64(n) - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&category_labels(
            data.iter().map(|(b, ..)| backend_label(doc, b)).collect(),
        ))
        .light_line_style(LIGHT)
        .x_desc("ms (bar: median; line: its 95% interval)")
        .draw()
        .map_err(err)?;
    let (cold_color, warm_color) = (color(0), color(2));
    for (i, (_, cold, warm)) in data.iter().enumerate() {
        let y = as_f64(i);
        for (figure, offset, c) in [(*cold, 0.18, cold_color), (Some(*warm), -0.18, warm_color)] {
            let Some(f) = figure else { continue };
            let yy = y + offset;
            chart
                .draw_series([Rectangle::new(
                    [(0.0, yy - 0.14), (f.summary.median, yy + 0.14)],
                    c.mix(0.6).filled(),
                )])
                .map_err(err)?;
            if let Some(ci) = &f.summary.ci {
                chart
                    .draw_series([PathElement::new(
                        vec![(ci.low, yy), (ci.high, yy)],
                        BLACK.stroke_width(2),
                    )])
                    .map_err(err)?;
            }
        }
    }
    legend(
        &key,
        &[
            (cold_color, "cold: time_to_start".to_owned()),
            (warm_color, "warm: warm_start".to_owned()),
        ],
    )
}

/// A legend drawn beside a plot, never over it: a coloured square and a label per entry.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(RGBColor, String)],
) -> Result<(), DrawError> {
    let style = ("sans-serif", 13).into_font().color(&BLACK);
    for (i, (c, label)) in entries.iter().enumerate() {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_possible_wrap,
            reason = "a few entries"
        )]
        let y = 50 + 22 * i as i32;
        area.draw(&Rectangle::new([(6, y), (18, y + 12)], c.filled()))
            .map_err(err)?;
        area.draw(&Text::new(label.clone(), (24, y), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// A value written just right of the end of a horizontal bar.
fn bar_label(x: f64, y: f64, text: String) -> Text<'static, (f64, f64), String> {
    Text::new(text, (x, y + 0.12), ("sans-serif", 13))
}

/// The grid's light lines, faint enough not to compete with the data.
pub(crate) const LIGHT: RGBColor = RGBColor(238, 238, 238);

fn startup_phases<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    doc: &Results,
) -> Result<(), DrawError> {
    let data = phases::stages(doc);
    let (plot, side) = area.split_horizontally(area.dim_in_pixel().0 * 64 / 100);
    let max = data
        .iter()
        .filter_map(|(_, parts)| parts.last().map(|p| p.from + p.ms))
        .fold(0.0_f64, f64::max)
        * 1.18;
    let n = data.len();
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            "Where startup time goes (median time of each phase)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(value_axis(max, 1e-3)?, -0.5..as_f64(n) - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(LIGHT)
        .y_labels(n * 2 + 1)
        .y_label_formatter(&category_labels(
            data.iter().map(|(b, _)| backend_label(doc, b)).collect(),
        ))
        .x_desc("ms after launch")
        .draw()
        .map_err(err)?;
    let mut used: Vec<phases::Stage> = Vec::new();
    for (i, (_, parts)) in data.iter().enumerate() {
        let y = as_f64(i);
        for part in parts {
            let c = color(part.stage.key);
            chart
                .draw_series([
                    Rectangle::new(
                        [(part.from, y - 0.3), (part.from + part.ms, y + 0.3)],
                        c.filled(),
                    ),
                    Rectangle::new(
                        [(part.from, y - 0.3), (part.from + part.ms, y + 0.3)],
                        WHITE.stroke_width(1),
                    ),
                ])
                .map_err(err)?;
            if !used.contains(&part.stage) {
                used.push(part.stage.clone());
            }
        }
        if let Some(last) = parts.last() {
            chart
                .draw_series([bar_label(
                    last.from + last.ms + max * 0.01,
                    y,
                    format!("{} ms", number(last.from + last.ms)),
                )])
                .map_err(err)?;
        }
    }
    used.sort_by_key(|s| s.key);
    let entries: Vec<(RGBColor, String)> =
        used.into_iter().map(|s| (color(s.key), s.label)).collect();
    legend(&side, &entries)
}

/// A backend's name on a chart: micro guests say they have no guest OS.
pub(crate) fn backend_label(doc: &Results, backend: &str) -> String {
    match family::place(doc, backend) {
        Some(p) if p.micro => format!("{backend} (no guest OS)"),
        _ => backend.to_owned(),
    }
}

fn memory<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    doc: &Results,
) -> Result<(), DrawError> {
    let data = derived::memory(doc);
    let measure = data.first().map_or("PSS", |m| m.measure.name());
    let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 - 58);
    let (whole, beyond) = top.split_horizontally(top.dim_in_pixel().0 * 42 / 100);
    let n = data.len();
    // The first backend at the top, as in every chart of backends.
    let labels: Vec<String> = data
        .iter()
        .rev()
        .map(|m| backend_label(doc, &m.backend))
        .collect();
    let (touched_color, own_color, added_color) = (color(0), RGBColor(160, 160, 160), color(1));

    // All of it: what the workload touched dwarfs the rest.
    let max = data
        .iter()
        .map(|m| m.touched + m.beyond())
        .fold(0.0_f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&whole)
        .caption(format!("Per instance ({measure})"), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(130)
        .build_cartesian_2d(value_axis(max, 1e-3)?, -0.5..as_f64(n) - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(LIGHT)
        .y_labels(n * 2 + 1)
        .y_label_formatter(&category_labels(labels))
        .x_labels(4)
        .x_desc("MiB")
        .draw()
        .map_err(err)?;
    for (i, m) in data.iter().enumerate() {
        let y = as_f64(n - 1 - i);
        let end = m.touched + m.beyond();
        chart
            .draw_series([
                Rectangle::new(
                    [(0.0, y - 0.3), (m.touched, y + 0.3)],
                    touched_color.filled(),
                ),
                Rectangle::new(
                    [(m.touched, y - 0.3), (m.touched + m.own, y + 0.3)],
                    own_color.filled(),
                ),
                Rectangle::new(
                    [(m.touched + m.own, y - 0.3), (end, y + 0.3)],
                    added_color.filled(),
                ),
            ])
            .map_err(err)?;
    }

    // Beyond what the workload touched: where the sandboxes differ.
    let max = data.iter().map(|m| m.beyond()).fold(0.0_f64, f64::max) * 1.45;
    let mut chart = ChartBuilder::on(&beyond)
        .caption(
            "Beyond what the workload touched (medians)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(10)
        .build_cartesian_2d(value_axis(max, 1e-3)?, -0.5..as_f64(n) - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(LIGHT)
        .y_labels(0)
        .x_desc("MiB")
        .draw()
        .map_err(err)?;
    for (i, m) in data.iter().enumerate() {
        let y = as_f64(n - 1 - i);
        chart
            .draw_series([
                Rectangle::new([(0.0, y - 0.3), (m.own, y + 0.3)], own_color.filled()),
                Rectangle::new(
                    [(m.own, y - 0.3), (m.beyond(), y + 0.3)],
                    added_color.filled(),
                ),
            ])
            .map_err(err)?;
        let text = if m.place.family == family::Family::Process {
            format!("{} MiB, no sandbox", number(m.own))
        } else if m.own > 0.0 {
            format!("{} + {} MiB", number(m.own), number(m.added))
        } else {
            format!("{} MiB", number(m.added))
        };
        chart
            .draw_series([bar_label(m.beyond() + max * 0.01, y, text)])
            .map_err(err)?;
    }
    legend_row(
        &bottom,
        &[
            (
                touched_color,
                "touched by the workload (a VM: guest memory)".to_owned(),
            ),
            (
                own_color,
                "the program's own pages (code, stack): a plain process has them too".to_owned(),
            ),
            (
                added_color,
                "added by the sandbox (a VM: its monitor process)".to_owned(),
            ),
        ],
    )
}

/// A legend in rows under a chart: a coloured square and a label per entry, two entries
/// to a row.
fn legend_row<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(RGBColor, String)],
) -> Result<(), DrawError> {
    let style = ("sans-serif", 13).into_font().color(&BLACK);
    let width = i32::try_from(area.dim_in_pixel().0).unwrap_or(900);
    for (i, (c, label)) in entries.iter().enumerate() {
        let i = i32::try_from(i).unwrap_or(0);
        let (x, y) = (12 + (i % 2) * width / 2, 6 + (i / 2) * 22);
        area.draw(&Rectangle::new([(x, y), (x + 12, y + 12)], c.filled()))
            .map_err(err)?;
        area.draw(&Text::new(label.clone(), (x + 18, y), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

fn overhead<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    doc: &Results,
) -> Result<(), DrawError> {
    let data = derived::slowdowns(doc);
    let max = data
        .iter()
        .map(|s| s.high.max(s.value))
        .fold(1.0_f64, f64::max)
        * 1.25;
    let n = data.len();
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Runtime slowdown against native (1 = native speed; right of the line is slower)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(200)
        .build_cartesian_2d(value_axis(max, 1e-3)?, -0.5..as_f64(n) - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(LIGHT)
        .y_labels(n * 2 + 1)
        .y_label_formatter(&category_labels(
            data.iter()
                .map(|s| format!("{}: {}", s.backend, s.what))
                .collect(),
        ))
        .x_desc("slowdown (x); line: its 95% interval; pale bars, n.s.: no significant difference")
        .draw()
        .map_err(err)?;
    let backends = family::ran(doc);
    for (i, s) in data.iter().enumerate() {
        let y = as_f64(i);
        let c = color(backends.iter().position(|b| *b == s.backend).unwrap_or(0));
        let fill = if s.significant {
            c.filled()
        } else {
            c.mix(0.3).filled()
        };
        chart
            .draw_series([Rectangle::new([(0.0, y - 0.3), (s.value, y + 0.3)], fill)])
            .map_err(err)?;
        chart
            .draw_series([
                PathElement::new(vec![(s.low, y), (s.high, y)], BLACK.stroke_width(1)),
                PathElement::new(
                    vec![(s.low, y - 0.1), (s.low, y + 0.1)],
                    BLACK.stroke_width(1),
                ),
                PathElement::new(
                    vec![(s.high, y - 0.1), (s.high, y + 0.1)],
                    BLACK.stroke_width(1),
                ),
            ])
            .map_err(err)?;
        let text = if s.significant {
            times(s.value)
        } else {
            format!("{} n.s.", times(s.value))
        };
        chart
            .draw_series([bar_label(
                s.high.max(s.value).max(1.0) + max * 0.01,
                y,
                text,
            )])
            .map_err(err)?;
    }
    chart
        .draw_series([PathElement::new(
            vec![(1.0, -0.5), (1.0, as_f64(n) - 0.5)],
            BLACK.stroke_width(2),
        )])
        .map_err(err)?;
    Ok(())
}

/// The fill of a matrix cell.
fn verdict_fill(verdict: matrix::Verdict) -> RGBColor {
    match verdict {
        matrix::Verdict::Isolated => RGBColor(46, 160, 67),
        matrix::Verdict::Partly => RGBColor(240, 170, 30),
        matrix::Verdict::Shared => RGBColor(214, 39, 40),
        matrix::Verdict::NotApplicable | matrix::Verdict::Untested => RGBColor(215, 215, 215),
        matrix::Verdict::NoGuestOs | matrix::Verdict::NotProbed => RGBColor(246, 246, 246),
    }
}

fn isolation<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    doc: &Results,
) -> Result<(), DrawError> {
    let Some(m) = matrix::matrix(doc) else {
        return Ok(());
    };
    // Lines top to bottom: a title per concern, then its checks.
    let mut lines: Vec<(String, Option<usize>)> = Vec::new();
    for concern in m.concerns() {
        lines.push((concern.title().to_uppercase(), None));
        for (i, row) in m.rows.iter().enumerate() {
            if row.concern == concern {
                lines.push((row.label.clone(), Some(i)));
            }
        }
    }
    let n = lines.len();
    // Plotters counts y upwards: the first line goes at the top.
    let labels: Vec<String> = lines.iter().rev().map(|(l, _)| l.clone()).collect();
    let columns: Vec<String> = m.backends.iter().map(|b| backend_label(doc, b)).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            "What each sandbox sees and may do: green isolated, amber partly, red shared with \
             the host, grey n/a (the host is refused too)",
            ("sans-serif", 15),
        )
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(210)
        .build_cartesian_2d(-0.5..as_f64(columns.len()) - 0.5, -0.5..as_f64(n) - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(columns.len() * 2 + 1)
        .x_label_formatter(&category_labels(columns.clone()))
        .y_labels(n * 2 + 1)
        .y_label_formatter(&category_labels(labels))
        .y_label_style(("sans-serif", 11))
        .draw()
        .map_err(err)?;
    let small = ("sans-serif", 11)
        .into_font()
        .color(&RGBColor(90, 90, 90))
        .pos(Pos::new(HPos::Center, VPos::Center));
    for (line, (_, row)) in lines.iter().enumerate() {
        let y = as_f64(n - 1 - line);
        let Some(row) = row.map(|r| &m.rows[r]) else {
            continue;
        };
        for (b, cell) in row.cells.iter().enumerate() {
            let x = as_f64(b);
            chart
                .draw_series([Rectangle::new(
                    [(x - 0.45, y - 0.4), (x + 0.45, y + 0.4)],
                    verdict_fill(cell.verdict).filled(),
                )])
                .map_err(err)?;
            if !cell.verdict.judged() {
                chart
                    .draw_series([Text::new(
                        cell.verdict.word().to_owned(),
                        (x, y),
                        small.clone(),
                    )])
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

/// What a density chart plots against the number of instances.
#[derive(Clone, Copy)]
enum DensityAxis {
    /// PSS per instance, MiB.
    Memory,
    /// Median start latency of the step's instances, ms.
    Start,
}

fn density<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    doc: &Results,
    axis: DensityAxis,
) -> Result<(), DrawError> {
    let max_n = doc
        .density
        .iter()
        .flat_map(|d| d.steps.iter().map(|s| s.instances))
        .max()
        .unwrap_or(1);
    #[allow(clippy::cast_precision_loss, reason = "memory sizes far below 2^52")]
    let mib = |kib: u64| kib as f64 / 1024.0;
    let value = |s: &crate::document::density::Step| match axis {
        DensityAxis::Memory => mib(s.per_instance.pss_kib),
        DensityAxis::Start => stats::median(&s.start_ms).unwrap_or(0.0),
    };
    let (caption, unit) = match axis {
        DensityAxis::Memory => (
            "Memory per instance (PSS) as instances are added",
            "MiB per instance",
        ),
        DensityAxis::Start => (
            "Start latency as instances are added (median of each step)",
            "ms",
        ),
    };
    let max_y = doc
        .density
        .iter()
        .flat_map(|d| d.steps.iter().map(value))
        .fold(0.0_f64, f64::max)
        * 1.35;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            Axis::from(0.0..f64::from(max_n) * 1.05),
            value_axis(max_y, 1e-3)?,
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .light_line_style(LIGHT)
        // Whole instances only: a label between two counts would repeat one of them.
        .x_labels(usize::try_from(max_n).map_or(10, |n| (n + 1).min(11)))
        .x_label_formatter(&|x| match (x - x.round()).abs() < 1e-6 {
            true => format!("{x:.0}"),
            false => String::new(),
        })
        .x_desc("instances alive")
        .y_desc(unit)
        .draw()
        .map_err(err)?;
    for (i, d) in doc.density.iter().enumerate() {
        let c = color(i);
        let points: Vec<(f64, f64)> = d
            .steps
            .iter()
            .map(|s| (f64::from(s.instances), value(s)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(d.backend.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart
            .draw_series(points.into_iter().map(|p| Circle::new(p, 4, c.filled())))
            .map_err(err)?;
    }
    // Memory per instance falls as instances share more, start latency rises: the legend
    // goes in the corner the lines leave free.
    chart
        .configure_series_labels()
        .position(match axis {
            DensityAxis::Memory => SeriesLabelPosition::UpperRight,
            DensityAxis::Start => SeriesLabelPosition::UpperLeft,
        })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A results document whose only figure has a sample near `f64::MAX`: the startup
    /// chart's axis (the largest sample plus a margin) overflows to infinity. Before the
    /// axis was checked, drawing it never returned.
    const HUGE_SAMPLE: &str = r#"{"schema_version":1,
        "tool":{"name":"vcbench","version":"0.1.0","git_revision":"x","workload_fnv":"0"},
        "host":{"hostname":"h","cpu_model":"c","cpus":2,"memory_mib":1024,"kernel":"6.1.0",
          "os":"Debian","virtualized":false,"hypervisor":null,"emulated":false,
          "kvm":{"flavour":"hardware","module":"kvm_intel","reason":null},"cgroup":"v2",
          "user_namespaces":true,"root":true},
        "plan":{"backends":[],"scenarios":[]},
        "started_at":"2026-01-01T00:00:00Z","finished_at":"2026-01-01T00:00:01Z",
        "complete":false,
        "figures":[{"backend":"native","scenario":"startup","metric":"time_to_start",
          "unit":"ms","better":"lower","samples":[1.7e308],
          "summary":{"n":1,"min":0,"max":0,"mean":0,"median":0,"p95":0,"p99":0,"stddev":0,
            "mad":0,"outliers":[]}}],
        "runs":[],"failures":[],"skipped":[]}"#;

    fn huge_sample() -> Results {
        Results::parse(HUGE_SAMPLE, Path::new("huge.json")).expect("the document reads")
    }

    #[test]
    fn a_chart_whose_axis_would_be_infinite_is_refused() {
        let doc = huge_sample();
        let refused = svg(Chart::StartupDistribution, &doc).expect_err("an infinite axis");
        assert!(refused.to_string().contains("too large"), "{refused}");
        // The HTML report carries on without the chart, and says why.
        assert!(crate::html::render(&doc).contains("too large to draw"));
    }

    #[test]
    fn an_infinite_slowdown_is_refused_too() {
        // A document whose ratio is near f64::MAX: the chart's axis would overflow.
        let mut doc = huge_sample();
        let mut native = doc.figures[0].clone();
        native.scenario = "cpu".to_owned();
        native.metric = "cpu".to_owned();
        native.samples = vec![1e-300];
        native.summary.median = 1e-300;
        let mut container = native.clone();
        container.backend = "container".to_owned();
        container.summary.median = 1e300;
        container.vs_baseline = Some(crate::document::Ratio {
            baseline: "native".to_owned(),
            estimate: crate::document::Estimate {
                value: 1.7e308,
                ci: crate::document::Interval {
                    low: 1.0,
                    high: 1.7e308,
                    level: 0.95,
                    coverage: 0.95,
                },
            },
        });
        doc.figures = vec![native, container];
        assert!(svg(Chart::Overhead, &doc).is_err());
    }

    #[test]
    fn a_few_runs_are_dots_and_many_a_box_with_the_tables_median() {
        let mut doc = huge_sample();
        let mut few = doc.figures[0].clone();
        few.samples = vec![3.5, 3.8, 5.35, 11.6];
        let mut many = few.clone();
        many.backend = "container".to_owned();
        many.samples = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        doc.figures = vec![few, many];
        let drawn = svg(Chart::StartupDistribution, &doc).unwrap().unwrap();
        // Four dots for the four runs; the eight get a box (two rectangles) instead.
        assert_eq!(drawn.matches("<circle").count(), 4, "{drawn}");
        assert!(drawn.contains("dots: every run"));
        // The line is the median the table shows: between the middle two, not one of them.
        assert!((quantile(&[3.5, 3.8, 5.35, 11.6], 0.5) - 4.575).abs() < 1e-12);
    }

    #[test]
    fn a_kernel_in_user_space_is_drawn_as_a_way_of_its_own() {
        let mut doc = Results::parse(
            include_str!("../tests/data/results.json"),
            Path::new("results.json"),
        )
        .unwrap();
        for f in &mut doc.figures {
            if f.backend == "container" {
                f.backend = "gvisor".to_owned();
            }
        }
        doc.runs.retain(|r| r.backend != "container");
        doc.isolation.retain(|m| m.backend != "container");
        doc.surface.retain(|s| s.backend != "container");
        doc.density.clear();
        doc.plan.backends = vec!["native".into(), "gvisor".into(), "microvm".into()];
        let drawn = svg(Chart::Stacks, &doc).unwrap().unwrap();
        assert!(drawn.contains("a kernel in user space"), "{drawn}");
        assert!(drawn.contains("Three ways to run one program"), "{drawn}");
        assert!(drawn.contains("no guest OS"));
    }

    #[test]
    fn density_counts_are_labelled_once_each() {
        let doc = density_steps(&[1.0, 1.0, 1.0, 1.0, 1.0]);
        let drawn = svg(Chart::DensityStart, &doc).unwrap().unwrap();
        let labels: Vec<&str> = drawn
            .lines()
            .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
            .collect();
        assert_eq!(labels, ["0", "1", "2", "3", "4", "5"], "{drawn}");
    }

    /// The document with a density series of one step per start latency, ms.
    fn density_steps(start_ms: &[f64]) -> Results {
        use crate::document::density::{Series, Step};
        let mut doc = huge_sample();
        doc.figures.clear();
        let steps: Vec<Step> = (1..)
            .zip(start_ms)
            .map(|(instances, &ms)| Step {
                instances,
                start_ms: vec![ms],
                step_ms: 1.0,
                per_instance: Default::default(),
                host: Default::default(),
            })
            .collect();
        doc.density = vec![Series {
            backend: "container".to_owned(),
            workload: vec!["idle".to_owned()],
            parallel: 1,
            asked: (1..).take(steps.len()).collect(),
            floor_mib: 512,
            reached: steps.last().map_or(0, |s| s.instances),
            steps,
            stopped: None,
            failed: false,
            teardown_ms: 1.0,
        }];
        doc
    }

    #[test]
    fn a_density_step_with_a_huge_start_is_refused_but_its_memory_drawn() {
        // What fuzzing found first: one step's start latency near `f64::MAX`, so the
        // start chart's axis (the largest median plus a margin) overflows.
        let doc = density_steps(&[1.7e308]);
        assert!(svg(Chart::DensityStart, &doc).is_err());
        assert!(svg(Chart::Density, &doc).unwrap().is_some());
    }

    #[test]
    fn a_negative_density_start_is_drawn_at_the_axis() {
        // What fuzzing found next: a start latency of -1.7e308 beside one of 2.5 ms. The
        // axis runs from 0 to 3 ms; the point mapped to a pixel beyond i32, and plotters'
        // addition overflowed.
        let doc = density_steps(&[-1.7e308, 2.5]);
        let drawn = svg(Chart::DensityStart, &doc).unwrap().unwrap();
        assert!(drawn.contains("<polyline") || drawn.contains("<path"));
    }

    #[test]
    fn finite_axes_are_kept_and_small_ones_widened() {
        assert_eq!(value_axis(5.0, 1e-3).unwrap().range(), 0.0..5.0);
        assert_eq!(value_axis(0.0, 1e-3).unwrap().range(), 0.0..1e-3);
        assert!(value_axis(f64::INFINITY, 1e-3).is_err());
        assert!(value_axis(f64::NAN, 1e-3).is_err());
    }

    #[test]
    fn values_off_the_axis_are_drawn_at_its_ends() {
        let axis = value_axis(10.0, 1e-3).unwrap();
        let limit = (0, 500);
        assert_eq!(axis.map(&5.0, limit), 250);
        for (value, pixel) in [(-1.7e308, 0), (-1e12, 0), (f64::NAN, 0), (1e300, 500)] {
            assert_eq!(axis.map(&value, limit), pixel, "{value}");
        }
    }

    #[test]
    fn cold_and_warm_starts_are_drawn_side_by_side() {
        let mut doc = Results::parse(
            include_str!("../tests/data/results.json"),
            Path::new("results.json"),
        )
        .unwrap();
        assert!(!has_data(Chart::ColdWarm, &doc), "no warm start: no chart");
        let mut warm = doc
            .figure("container", "startup", "time_to_start")
            .expect("the fixture's container start")
            .clone();
        warm.scenario = "warm".to_owned();
        warm.metric = "warm_start".to_owned();
        doc.figures.push(warm);
        assert!(has_data(Chart::ColdWarm, &doc));
        let svg = svg(Chart::ColdWarm, &doc).unwrap().expect("drawn");
        assert!(svg.contains("Cold and warm start"), "{svg}");
        assert!(svg.contains("warm: warm_start"));
    }
}
