//! The fleet's chart: each backend's ratio to the baseline (native), per host, as SVG.
//!
//! One row per figure that has a ratio (backend × scenario × metric), one bar per host
//! within it, each with its bootstrap interval as a whisker, on a logarithmic axis with
//! the baseline's 1× marked: a backend twice as slow and one twice as fast lie equally
//! far from it.

use std::fmt::Write;

use crate::html::escape;

use super::Fleet;

/// Colours of the hosts' bars, in host order (repeated past the last).
const COLOURS: [&str; 8] = [
    "#4a6fa5", "#d9822b", "#3f9e5a", "#b5424a", "#7d5ba6", "#8c6d46", "#c76fb0", "#6b7b8c",
];

/// One bar: a host's ratio and its interval.
struct Bar {
    host: usize,
    value: f64,
    low: f64,
    high: f64,
    differs: bool,
}

/// The ratio chart as SVG; `None` when no figure of any host has a ratio.
pub fn ratios_svg(fleet: &Fleet) -> Option<String> {
    let mut rows: Vec<(String, Vec<Bar>)> = Vec::new();
    for key in fleet.figure_keys() {
        let bars: Vec<Bar> = fleet
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let r = fleet.figure(&m.name, &key)?.vs_baseline.as_ref()?;
                let e = &r.estimate;
                (e.value > 0.0 && e.ci.low > 0.0 && e.ci.high > 0.0).then(|| Bar {
                    host: i,
                    value: e.value,
                    low: e.ci.low,
                    high: e.ci.high,
                    differs: r.differs(),
                })
            })
            .collect();
        if !bars.is_empty() {
            rows.push((key.name(), bars));
        }
    }
    if rows.is_empty() {
        return None;
    }
    let baseline = fleet.baseline();
    let all = rows.iter().flat_map(|(_, b)| b);
    let least = all.clone().map(|b| b.low).fold(1.0_f64, f64::min) / 1.25;
    let most = all.map(|b| b.high).fold(1.0_f64, f64::max) * 1.25;
    let (lo, hi) = (least.log10().floor(), most.log10().ceil());
    let hosts = fleet.hosts.len().max(1);
    let bar_h = 12.0;
    let row_h = bar_h * hosts as f64 + 10.0;
    let (left, right, top) = (250.0, 30.0, 50.0);
    let width = 820.0;
    let plot_w = width - left - right;
    let height = top + row_h * rows.len() as f64 + 40.0 + 16.0 * hosts as f64;
    let x = |v: f64| left + (v.log10() - lo) / (hi - lo) * plot_w;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\
         <title>Each backend's ratio to {b}, per host</title>\
         <text x=\"{left}\" y=\"18\" font-size=\"14\">Ratio to {b}, per host (median, 95% \
         interval; log scale)</text>",
        b = escape(&baseline)
    );
    // The axis: a line and label at each power of ten and at 2 and 5 between them.
    let axis_y = top + row_h * rows.len() as f64;
    let mut decade = lo;
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = 10f64.powf(decade) * m;
            if v.log10() > hi + 1e-9 {
                break;
            }
            let px = x(v);
            let _ = write!(
                s,
                "<line x1=\"{px:.1}\" y1=\"{top}\" x2=\"{px:.1}\" y2=\"{axis_y:.1}\" \
                 stroke=\"#ddd\"/><text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}x\
                 </text>",
                axis_y + 14.0,
                crate::figure_text::number(v)
            );
        }
        decade += 1.0;
    }
    let one = x(1.0);
    let _ = write!(
        s,
        "<line x1=\"{one:.1}\" y1=\"{:.1}\" x2=\"{one:.1}\" y2=\"{axis_y:.1}\" stroke=\"#222\" \
         stroke-width=\"1.5\"/><text x=\"{one:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} \
         (1x)</text>",
        top - 4.0,
        top - 8.0,
        escape(&baseline)
    );
    for (r, (name, bars)) in rows.iter().enumerate() {
        let y0 = top + row_h * r as f64 + 5.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y0 + bar_h * hosts as f64 / 2.0 + 4.0,
            escape(name)
        );
        for bar in bars {
            let y = y0 + bar_h * bar.host as f64;
            let colour = COLOURS[bar.host % COLOURS.len()];
            let (a, b) = (one.min(x(bar.value)), one.max(x(bar.value)));
            let _ = write!(
                s,
                "<rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" \
                 fill-opacity=\"{}\"><title>{}: {}x [{}, {}]</title></rect>\
                 <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#222\"/>",
                y + 1.0,
                (b - a).max(1.0),
                bar_h - 2.0,
                if bar.differs { "0.9" } else { "0.4" },
                escape(&fleet.hosts[bar.host].name),
                crate::figure_text::number(bar.value),
                crate::figure_text::number(bar.low),
                crate::figure_text::number(bar.high),
                x(bar.low),
                y + bar_h / 2.0,
                x(bar.high),
                y + bar_h / 2.0
            );
        }
    }
    for (i, m) in fleet.hosts.iter().enumerate() {
        let y = axis_y + 30.0 + 16.0 * i as f64;
        let _ = write!(
            s,
            "<rect x=\"{left}\" y=\"{:.1}\" width=\"12\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            y - 9.0,
            COLOURS[i % COLOURS.len()],
            left + 18.0,
            escape(&m.name)
        );
    }
    s.push_str("</svg>\n");
    Some(s)
}
