//! The picture at the top of a report: the three ways of running one program side by side
//! (a plain process on the host kernel; the same process fenced by namespaces and a
//! cgroup; a guest on a monitor on KVM), on the one host kernel they share, each annotated
//! with what this run measured of it. A VM that ran micro guests is drawn with its guest
//! kernel missing, and says so.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{err, DrawError};
use crate::derived;
use crate::document::{Metric, Results, Scenario};
use crate::family::{self, Family, Place};
use crate::figure_text::number;

/// The colours of the layers.
const HARDWARE: RGBColor = RGBColor(200, 200, 200);
const KERNEL: RGBColor = RGBColor(120, 150, 200);
const KVM: RGBColor = RGBColor(70, 100, 170);
const PROGRAM: RGBColor = RGBColor(120, 190, 120);
const MONITOR: RGBColor = RGBColor(240, 180, 100);
const GUEST_KERNEL: RGBColor = RGBColor(180, 160, 220);
const FENCE: RGBColor = RGBColor(200, 80, 60);
const INK: RGBColor = RGBColor(40, 40, 40);

/// One column of the picture: a family, the backends of it that ran, and the numbers of
/// the first.
struct Column {
    family: Family,
    backends: Vec<String>,
    place: Place,
    lines: Vec<String>,
}

/// What the run measured of `backend`, a line each.
fn annotations(doc: &Results, backend: &str, place: Place) -> Vec<String> {
    let mut lines = Vec::new();
    let figure = |s: Scenario, m: &str| doc.figure(backend, s.name(), m);
    if let Some(f) = figure(Scenario::Startup, Metric::TimeToStart.name()) {
        lines.push(if place.micro {
            format!("start: {} ms, no OS boots", number(f.summary.median))
        } else {
            format!("start: {} ms", number(f.summary.median))
        });
    }
    if let Some(m) = derived::memory(doc)
        .into_iter()
        .find(|m| m.backend == backend)
    {
        lines.push(match place.family {
            Family::Process => format!(
                "its own pages: {} MiB ({})",
                number(m.beyond()),
                m.measure.name()
            ),
            Family::Container | Family::UserKernel => format!(
                "beyond its workload: {} MiB ({})",
                number(m.beyond()),
                m.measure.name()
            ),
            Family::Vm => format!("monitor: {} MiB ({})", number(m.added), m.measure.name()),
        });
    }
    if let Some(f) = figure(Scenario::Syscall, Metric::Syscall.name()) {
        lines.push(format!("one system call: {} ns", number(f.summary.median)));
    } else if let Some(f) = figure(Scenario::Exits, Metric::ExitRoundTrip.name()) {
        lines.push(format!(
            "one VM exit: {} µs",
            number(f.summary.median / 1000.0)
        ));
    }
    if let Some(calls) = derived::host_calls(doc, backend) {
        lines.push(format!(
            "host kernel: {} distinct calls{}",
            calls.distinct,
            match place.family {
                Family::Vm => " (monitor)",
                Family::UserKernel => " (Sentry)",
                _ => "",
            }
        ));
    }
    if lines.is_empty() {
        lines.push("nothing of it measured in this run".to_owned());
    }
    lines
}

fn columns(doc: &Results) -> Vec<Column> {
    let mut out: Vec<Column> = Vec::new();
    for backend in family::ran(doc) {
        let Some(place) = family::place(doc, backend) else {
            continue;
        };
        match out.iter_mut().find(|c| c.family == place.family) {
            Some(c) => c.backends.push(backend.to_owned()),
            None => out.push(Column {
                family: place.family,
                backends: vec![backend.to_owned()],
                place,
                lines: annotations(doc, backend, place),
            }),
        }
    }
    out.sort_by_key(|c| c.family);
    out
}

/// A labelled box.
fn boxed<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x0, y0, x1, y1): (i32, i32, i32, i32),
    fill: RGBColor,
    label: &str,
) -> Result<(), DrawError> {
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], fill.filled()))
        .map_err(err)?;
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], INK.stroke_width(1)))
        .map_err(err)?;
    centred(area, label, ((x0 + x1) / 2, (y0 + y1) / 2), 13)
}

/// A dashed outline.
fn dashed<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x0, y0, x1, y1): (i32, i32, i32, i32),
    colour: RGBColor,
) -> Result<(), DrawError> {
    area.draw(&DashedPathElement::new(
        vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)],
        6,
        4,
        colour.stroke_width(2),
    ))
    .map_err(err)
}

fn centred<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    at: (i32, i32),
    size: u32,
) -> Result<(), DrawError> {
    let style = ("sans-serif", size)
        .into_font()
        .color(&INK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(text.to_owned(), at, style))
        .map_err(err)
}

fn left<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    at: (i32, i32),
    size: u32,
) -> Result<(), DrawError> {
    let style = ("sans-serif", size).into_font().color(&INK);
    area.draw(&Text::new(text.to_owned(), at, style))
        .map_err(err)
}

/// A downward arrow from `from` to `to` with a label beside it.
fn arrow<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    x: i32,
    (from, to): (i32, i32),
    label: &str,
) -> Result<(), DrawError> {
    area.draw(&PathElement::new(
        vec![(x, from), (x, to)],
        INK.stroke_width(2),
    ))
    .map_err(err)?;
    area.draw(&Polygon::new(
        vec![(x - 5, to - 8), (x + 5, to - 8), (x, to)],
        INK.filled(),
    ))
    .map_err(err)?;
    left(area, label, (x + 6, (from + to) / 2 - 6), 11)
}

/// Draws the picture.
pub(super) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    doc: &Results,
) -> Result<(), DrawError> {
    let (w, _) = area.dim_in_pixel();
    let w = i32::try_from(w).unwrap_or(900);
    let columns = columns(doc);
    let ways = match columns.len() {
        1 => "One way",
        2 => "Two ways",
        3 => "Three ways",
        _ => "Four ways",
    };
    centred(
        area,
        &format!("{ways} to run one program, on one host kernel (with this run's numbers)"),
        (w / 2, 20),
        18,
    )?;
    let n = i32::try_from(columns.len().max(1)).unwrap_or(1);
    let margin = 16;
    let width = (w - 2 * margin) / n;
    // The one host the columns share: its hardware and its kernel, KVM in it.
    let (kernel_top, kernel_bottom, hw_bottom) = (330, 372, 402);
    boxed(
        area,
        (margin, kernel_bottom, w - margin, hw_bottom),
        HARDWARE,
        "the host's hardware (CPU, memory, devices)",
    )?;
    area.draw(&Rectangle::new(
        [(margin, kernel_top), (w - margin, kernel_bottom)],
        KERNEL.filled(),
    ))
    .map_err(err)?;
    area.draw(&Rectangle::new(
        [(margin, kernel_top), (w - margin, kernel_bottom)],
        INK.stroke_width(1),
    ))
    .map_err(err)?;
    left(
        area,
        "the host kernel: one for every column",
        (margin + 6, kernel_top + 4),
        12,
    )?;
    for (i, column) in columns.iter().enumerate() {
        let i = i32::try_from(i).unwrap_or(0);
        let x0 = margin + i * width + 10;
        let x1 = x0 + width - 20;
        let mid = (x0 + x1) / 2;
        // Four columns leave less room for words.
        let (big, small) = if n > 3 { (13, 10) } else { (15, 12) };
        centred(area, &column.backends.join(", "), (mid, 44), big)?;
        centred(area, column.family.label(), (mid, 62), small)?;
        let serves = match (column.family, column.place.micro) {
            (Family::Vm, true) => "no guest OS: it makes no system calls",
            (Family::Vm, false) => "its system calls go to its own guest kernel",
            (Family::Container, _) => "its system calls go to the host kernel, fenced",
            (Family::UserKernel, _) => "its system calls go to a kernel in user space",
            (Family::Process, _) => "its system calls go to the host kernel",
        };
        centred(area, serves, (mid, 78), small)?;
        match column.family {
            Family::Process => {
                boxed(
                    area,
                    (x0 + 20, 230, x1 - 20, 290),
                    PROGRAM,
                    "the workload's process",
                )?;
                arrow(area, mid, (290, kernel_top), "system calls")?;
            }
            Family::UserKernel => {
                dashed(area, (x0 + 6, 110, x1 - 6, 318), FENCE)?;
                centred(area, "namespaces and a cgroup", (mid, 126), 12)?;
                boxed(
                    area,
                    (x0 + 20, 150, x1 - 20, 200),
                    PROGRAM,
                    "the workload's process",
                )?;
                arrow(area, mid, (200, 230), "system calls")?;
                boxed(area, (x0 + 20, 230, x1 - 20, 290), GUEST_KERNEL, "")?;
                centred(area, "a kernel in user space", (mid, 252), 12)?;
                centred(area, "(gVisor's Sentry)", (mid, 270), 11)?;
                arrow(area, mid, (290, kernel_top), "its own calls")?;
            }
            Family::Container => {
                dashed(area, (x0 + 6, 150, x1 - 6, 318), FENCE)?;
                centred(area, "namespaces: its own view", (mid, 166), 12)?;
                centred(area, "cgroup: its own limits", (mid, 184), 12)?;
                boxed(
                    area,
                    (x0 + 20, 230, x1 - 20, 290),
                    PROGRAM,
                    "the workload's process",
                )?;
                arrow(area, mid, (290, kernel_top), "system calls")?;
            }
            Family::Vm => {
                let split = x0 + (x1 - x0) * 58 / 100;
                // The guest: its own memory and vCPU, its own kernel (or none).
                dashed(area, (x0 + 4, 96, split - 4, 312), KVM)?;
                left(area, "guest", (x0 + 10, 100), 11)?;
                if column.place.micro {
                    boxed(
                        area,
                        (x0 + 12, 124, split - 12, 180),
                        RGBColor(235, 245, 235),
                        "",
                    )?;
                    centred(area, "micro guest:", ((x0 + split) / 2, 143), 12)?;
                    centred(area, "a few instructions", ((x0 + split) / 2, 161), 12)?;
                    dashed(
                        area,
                        (x0 + 12, 196, split - 12, 256),
                        RGBColor(150, 150, 150),
                    )?;
                    centred(area, "no guest OS", ((x0 + split) / 2, 226), 13)?;
                } else {
                    boxed(
                        area,
                        (x0 + 12, 124, split - 12, 180),
                        PROGRAM,
                        "the workload",
                    )?;
                    boxed(
                        area,
                        (x0 + 12, 196, split - 12, 256),
                        GUEST_KERNEL,
                        "guest kernel",
                    )?;
                }
                arrow(
                    area,
                    (x0 + split) / 2 - 30,
                    (312, kernel_top + 40),
                    "VM exits",
                )?;
                boxed(area, (split + 4, 220, x1, 300), MONITOR, "")?;
                centred(area, "monitor", ((split + x1) / 2, 250), 13)?;
                centred(area, "(a host process)", ((split + x1) / 2, 270), 10)?;
                arrow(area, (split + x1) / 2, (300, kernel_top), "calls")?;
                boxed(
                    area,
                    (
                        (x0 + split) / 2 - 70,
                        kernel_top + 14,
                        (x0 + split) / 2 + 30,
                        kernel_bottom - 2,
                    ),
                    KVM,
                    "",
                )?;
                let style = ("sans-serif", 12)
                    .into_font()
                    .color(&WHITE)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                area.draw(&Text::new(
                    "KVM".to_owned(),
                    (
                        (x0 + split) / 2 - 20,
                        (kernel_top + 14 + kernel_bottom - 2) / 2,
                    ),
                    style,
                ))
                .map_err(err)?;
            }
        }
        for (k, line) in column.lines.iter().enumerate() {
            let k = i32::try_from(k).unwrap_or(0);
            centred(area, line, (mid, 424 + k * 20), if n > 3 { 11 } else { 13 })?;
        }
    }
    Ok(())
}
