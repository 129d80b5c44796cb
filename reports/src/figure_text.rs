//! How a figure is written for a reader: numbers to a fixed count of significant digits,
//! its median with the median's confidence interval, its ratio against the baseline with the
//! ratio's interval, and the warnings its samples call for. The terminal table, the
//! reports and `compare` all write figures this way.
//!
//! The statistics, in plain words: a median's interval is exact and assumes nothing of
//! the samples' distribution (it comes from the order statistics); a ratio's interval is
//! a bootstrap from the run's recorded seed. A ratio is called a difference only when its
//! interval excludes 1; otherwise there is no significant difference. A single derived
//! number (a count of checks, a marginal cost) is a value: it has no spread and no
//! interval, and is written as the number alone.

use crate::document::{Backend, Figure, Kind, Results, Verdict};

/// Formats a value to about three significant digits; whole numbers stay whole.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 || a == 0.0 || (v.fract() == 0.0 && a < 1e15) {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else if a >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

/// A ratio as `4.727x`, as the tables write it.
pub fn times(r: f64) -> String {
    format!("{}x", number(r))
}

/// The median (or the value) with its unit and, for a distribution, its interval:
/// `3.210 ms [2.980, 3.400]`.
pub fn median(figure: &Figure) -> String {
    let s = &figure.summary;
    let value = format!("{} {}", number(s.median), figure.unit);
    // A derived value with an interval (a goal of the startup scenario: a difference or
    // ratio of medians) shows it as a distribution's median does.
    match &s.ci {
        Some(ci) => format!("{value} [{}, {}]", number(ci.low), number(ci.high)),
        None => value,
    }
}

/// The figure's metric as a table names it: a goal of the startup scenario (a derived
/// value whose variant names the goal) says what it is set against,
/// `over_native (goal: at most 1.5 ms)`.
pub fn metric(figure: &Figure) -> String {
    if figure.kind == Kind::Value && figure.variant.starts_with("goal:") {
        format!("{} ({})", figure.metric, figure.variant)
    } else {
        figure.metric.clone()
    }
}

/// A goal's verdict in words, `met (1.165 ms [1.105, 1.323], all of it at most 1.5 ms)`;
/// `None` for a figure with no goal or no interval.
pub fn goal_words(figure: &Figure) -> Option<String> {
    let goal = figure.goal?;
    let verdict = figure.verdict()?;
    let limit = match figure.unit.as_str() {
        "x" => format!("{}x", goal.at_most),
        unit => format!("{} {unit}", goal.at_most),
    };
    let how = match verdict {
        Verdict::Met => format!("all of it at most {limit}"),
        Verdict::Missed => format!("all of it above {limit}"),
        Verdict::Undecided => format!("it holds {limit}: more runs may decide"),
    };
    Some(format!("{} ({}, {how})", verdict.name(), median(figure)))
}

/// Every figure of `results` held to a goal, with its verdict in words ([`goal_words`]).
pub fn goals(results: &Results) -> Vec<(&Figure, String)> {
    results
        .figures
        .iter()
        .filter_map(|f| Some((f, goal_words(f)?)))
        .collect()
}

/// The ratio against the baseline with its interval, `1.340x [1.200, 1.510]`, marked `*`
/// when the interval excludes 1; empty when the figure has no like baseline figure.
pub fn ratio(figure: &Figure) -> String {
    let Some(r) = &figure.vs_baseline else {
        return String::new();
    };
    let e = &r.estimate;
    format!(
        "{}x [{}, {}]{}",
        number(e.value),
        number(e.ci.low),
        number(e.ci.high),
        if r.differs() { "*" } else { "" }
    )
}

/// The ratio in words for a note: "1.340x native [1.200, 1.510]", or "no significant
/// difference from native (1.010x [0.970, 1.050])".
pub fn ratio_words(figure: &Figure) -> Option<String> {
    let r = figure.vs_baseline.as_ref()?;
    let e = &r.estimate;
    let interval = format!("[{}, {}]", number(e.ci.low), number(e.ci.high));
    Some(if r.differs() {
        format!("{}x {} {interval}", number(e.value), r.baseline)
    } else {
        format!(
            "no significant difference from {} ({}x {interval})",
            r.baseline,
            number(e.value)
        )
    })
}

/// The spread column: cv for a distribution, nothing for a value.
pub fn spread(figure: &Figure) -> String {
    match figure.kind {
        Kind::Distribution if figure.summary.n > 1 => {
            format!("{:.1}%", figure.summary.cv() * 100.0)
        }
        _ => String::new(),
    }
}

/// How to read the figures, for the top of a report.
pub fn reading(doc: &Results) -> String {
    format!(
        "Each median comes with its 95% confidence interval, exact from the order statistics \
         of the runs. Each ratio against {baseline} comes with a bootstrap 95% interval (seed \
         {seed}); a difference is claimed only where that interval excludes 1, otherwise there \
         is no significant difference. Runs were ordered {order}{order_note}. A micro guest's \
         figures are the hypervisor's raw costs and are set against nothing a process does; a \
         single derived number is a value, with no spread.",
        baseline = doc.baseline().unwrap_or(Backend::Native.name()),
        seed = doc.plan.seed,
        order = doc.plan.order,
        order_note = match doc.plan.order.as_str() {
            "interleaved" =>
                " (rounds of one run per backend, each round shuffled, so a drift of \
                 the machine is shared by every backend)",
            "blocked" =>
                " (every run of one backend before the next: a drift of the machine \
                 can land on one backend)",
            _ => "",
        }
    )
}

/// The spread above which a figure is called noisy.
pub const HIGH_CV: f64 = 0.10;

/// What a careful reader should know about the samples, as a benchmark harness warns:
/// a high spread, outliers, a first run slower than the rest (the caches were cold), an
/// interval that cannot reach its level with so few runs. One line per figure at most.
pub fn warnings(doc: &Results) -> Vec<String> {
    let mut lines = Vec::new();
    let mut few = Vec::new();
    for f in doc
        .figures
        .iter()
        .filter(|f| f.kind == Kind::Distribution && f.summary.n > 1)
    {
        let s = &f.summary;
        let mut said = Vec::new();
        if s.cv() > HIGH_CV {
            said.push(format!("a high spread (cv {:.1}%)", s.cv() * 100.0));
        }
        let first_slow = s.outliers.first() == Some(&0) && {
            let first = f.samples[0];
            match f.better {
                crate::document::Better::Lower => first > s.median,
                crate::document::Better::Higher => first < s.median,
            }
        };
        if first_slow {
            said.push("a first run far worse than the rest (add --warmup runs)".to_owned());
        } else if !s.outliers.is_empty() {
            said.push(format!(
                "{} outlier{} of {}",
                s.outliers.len(),
                if s.outliers.len() == 1 { "" } else { "s" },
                s.n
            ));
        }
        // With 5 runs the widest interval covers 93.8%, close enough to 95% to say once
        // in the JSON (its coverage) rather than here.
        if let Some(ci) = s.ci.filter(|ci| ci.coverage + 0.02 < ci.level) {
            few.push((f.name(), s.n, ci.coverage));
        }
        if !said.is_empty() {
            lines.push(format!("{}: {}", f.name(), said.join(", ")));
        }
    }
    let noisy = !lines.is_empty();
    if let Some((name, n, coverage)) = few.first() {
        lines.push(format!(
            "{name}{}: too few runs for a 95% interval of the median (with {n} runs its \
             interval is the whole range, which covers the median {:.1}% of the time); use \
             --runs 6 or more",
            match few.len() {
                1 => String::new(),
                more => format!(" and {} more figures", more - 1),
            },
            coverage * 100.0
        ));
    }
    if noisy {
        lines.push(
            "Spread and outliers come from the machine as much as the sandbox: run on a quiet \
             machine, with more runs (--runs) and warmups (--warmup), before reading small \
             differences."
                .to_owned(),
        );
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Better, Interval};

    fn goal_figure(unit: &str, value: f64, low: f64, high: f64, at_most: f64) -> Figure {
        let mut f = Figure::value(
            "container",
            "startup",
            "over_native",
            unit,
            Better::Lower,
            value,
        )
        .unwrap()
        .held_to(at_most);
        f.summary.ci = Some(Interval {
            low,
            high,
            level: 0.95,
            coverage: 0.95,
        });
        f
    }

    #[test]
    fn a_goal_is_met_or_missed_only_by_its_whole_interval() {
        let met = goal_figure("ms", 1.2, 1.1, 1.5, 1.5);
        assert_eq!(met.verdict(), Some(Verdict::Met));
        assert_eq!(
            goal_words(&met).unwrap(),
            "met (1.200 ms [1.100, 1.500], all of it at most 1.5 ms)"
        );
        let missed = goal_figure("x", 2.3, 2.01, 2.6, 2.0);
        assert_eq!(missed.verdict(), Some(Verdict::Missed));
        assert_eq!(
            goal_words(&missed).unwrap(),
            "missed (2.300 x [2.010, 2.600], all of it above 2x)"
        );
        // A median under the goal whose interval reaches over it decides nothing.
        let open = goal_figure("x", 1.9, 1.8, 2.1, 2.0);
        assert_eq!(open.verdict(), Some(Verdict::Undecided));
        assert!(goal_words(&open).unwrap().starts_with("undecided (1.900 x"));
        // No goal, or no interval: no verdict.
        let mut plain = open.clone();
        plain.goal = None;
        assert_eq!(plain.verdict(), None);
        assert_eq!(goal_words(&plain), None);
        let mut bare = met.clone();
        bare.summary.ci = None;
        assert_eq!(bare.verdict(), None);
    }
}
