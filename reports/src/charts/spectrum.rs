//! Two charts that put the figures in context: the spectrum from a plain process to a VM
//! (what serves the program's system calls, against the start time, the memory beyond
//! what the workload touched and the cost of one system call, each median with its
//! interval), and every startup sample in the order it was taken, where a cold first run,
//! a drift of the machine or plain noise shows.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{as_f64, backend_label, category_labels, color, err, value_axis, DrawError, LIGHT};
use crate::derived::{self, Point};
use crate::document::{Metric, Results, Scenario};
use crate::family::{self, Family};
use crate::figure_text::number;

/// The colour of a family: one per way of running a program.
fn family_color(family: Family) -> RGBColor {
    match family {
        Family::Process => color(0),
        Family::Container => color(1),
        Family::UserKernel => color(4),
        Family::Vm => color(2),
    }
}

/// One panel of the spectrum.
struct Panel {
    title: &'static str,
    unit: &'static str,
    values: Vec<Option<Point>>,
}

/// Draws the spectrum: one row per backend, from the least fenced to the most; three
/// panels.
pub(super) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    doc: &Results,
) -> Result<(), DrawError> {
    let data = derived::spectrum(doc);
    let n = data.len();
    let (title, body) = area.split_vertically(34);
    title
        .draw(&Text::new(
            "From a plain process to a VM: what serves its system calls, and what it costs",
            (450, 18),
            ("sans-serif", 18)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(err)?;
    let panels = [
        Panel {
            title: "start (ms)",
            unit: "ms",
            values: data.iter().map(|s| s.start_ms).collect(),
        },
        Panel {
            title: "memory beyond the workload (MiB)",
            unit: "MiB",
            values: data
                .iter()
                .map(|s| {
                    s.memory_mib.map(|m| Point {
                        median: m,
                        ci: None,
                    })
                })
                .collect(),
        },
        Panel {
            title: "one system call (ns)",
            unit: "ns",
            values: data.iter().map(|s| s.syscall_ns).collect(),
        },
    ];
    let labels: Vec<String> = data
        .iter()
        .rev()
        .map(|s| {
            let serves = match (s.place.family, s.place.micro) {
                (Family::Vm, true) => "no guest OS",
                (Family::Vm, false) => "guest kernel",
                (Family::UserKernel, _) => "user-space kernel",
                _ => "host kernel",
            };
            format!("{} · {serves}", s.backend)
        })
        .collect();
    let (w, _) = body.dim_in_pixel();
    let first = w * 40 / 100;
    let (a, rest) = body.split_horizontally(first);
    let (b, c) = rest.split_horizontally((w - first) / 2);
    for (k, (panel, area)) in panels.iter().zip([a, b, c]).enumerate() {
        let max = panel
            .values
            .iter()
            .flatten()
            .map(|p| p.ci.map_or(p.median, |(_, hi)| hi.max(p.median)))
            .fold(0.0_f64, f64::max)
            * 1.35;
        let mut chart = ChartBuilder::on(&area)
            .caption(panel.title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(if k == 0 { 170 } else { 6 })
            .build_cartesian_2d(value_axis(max, 1e-3)?, -0.5..as_f64(n) - 0.5)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(LIGHT)
            .x_labels(4)
            .y_labels(if k == 0 { n * 2 + 1 } else { 0 })
            .y_label_formatter(&category_labels(labels.clone()))
            .draw()
            .map_err(err)?;
        for (i, (item, value)) in data.iter().zip(&panel.values).enumerate() {
            // The first backend at the top.
            let y = as_f64(n - 1 - i);
            let c = family_color(item.place.family);
            let Some(p) = value else {
                let why = if item.place.micro && k == 2 {
                    "none: no OS"
                } else {
                    "not measured"
                };
                chart
                    .draw_series([Text::new(
                        why.to_owned(),
                        (max * 0.02, y),
                        ("sans-serif", 12)
                            .into_font()
                            .color(&RGBColor(110, 110, 110))
                            .pos(Pos::new(HPos::Left, VPos::Center)),
                    )])
                    .map_err(err)?;
                continue;
            };
            let fill = if item.place.micro {
                c.mix(0.35).filled()
            } else {
                c.filled()
            };
            chart
                .draw_series([Rectangle::new([(0.0, y - 0.3), (p.median, y + 0.3)], fill)])
                .map_err(err)?;
            if let Some((lo, hi)) = p.ci {
                chart
                    .draw_series([
                        PathElement::new(vec![(lo, y), (hi, y)], BLACK.stroke_width(1)),
                        PathElement::new(vec![(lo, y - 0.1), (lo, y + 0.1)], BLACK.stroke_width(1)),
                        PathElement::new(vec![(hi, y - 0.1), (hi, y + 0.1)], BLACK.stroke_width(1)),
                    ])
                    .map_err(err)?;
            }
            let end = p.ci.map_or(p.median, |(_, hi)| hi.max(p.median));
            chart
                .draw_series([Text::new(
                    format!("{} {}", number(p.median), panel.unit),
                    (end + max * 0.02, y),
                    ("sans-serif", 12)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )])
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Draws every measured startup sample in the order it was taken, one line per backend,
/// with its median as a dashed line.
pub(super) fn run_order<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    doc: &Results,
) -> Result<(), DrawError> {
    let data: Vec<(&str, &[f64], f64)> = doc
        .figures
        .iter()
        .filter(|f| {
            f.scenario == Scenario::Startup
                && f.metric == Metric::TimeToStart
                && !f.samples.is_empty()
        })
        .map(|f| (f.backend.as_str(), f.samples.as_slice(), f.summary.median))
        .collect();
    let runs = data.iter().map(|(_, s, _)| s.len()).max().unwrap_or(1);
    let max = data
        .iter()
        .flat_map(|(_, s, _)| s.iter().copied())
        .fold(0.0_f64, f64::max)
        * 1.25;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Every startup run in the order it was taken (dashed: the median)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            super::Axis::from(0.5..as_f64(runs) + 0.5),
            value_axis(max, 1e-3)?,
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .light_line_style(LIGHT)
        .x_labels(runs.min(15) + 1)
        .x_label_formatter(&|x| match (x - x.round()).abs() < 1e-6 && *x >= 1.0 {
            true => format!("{x:.0}"),
            false => String::new(),
        })
        .x_desc("measured run (warmups left out)")
        .y_desc("ms, launch to first record")
        .draw()
        .map_err(err)?;
    let backends = family::ran(doc);
    for (backend, samples, median) in &data {
        let c = color(
            backends
                .iter()
                .position(|b| b == backend)
                .unwrap_or_default(),
        );
        let points: Vec<(f64, f64)> = samples
            .iter()
            .enumerate()
            .map(|(i, &v)| (as_f64(i + 1), v))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), c.mix(0.6).stroke_width(1)))
            .map_err(err)?
            .label(backend_label(doc, backend))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart
            .draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled())))
            .map_err(err)?;
        chart
            .draw_series([DashedPathElement::new(
                vec![(0.5, *median), (as_f64(runs) + 0.5, *median)],
                6,
                4,
                c.stroke_width(1),
            )])
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}
