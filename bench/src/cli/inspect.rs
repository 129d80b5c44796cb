//! The commands that read: `list`, `doctor`, `show`, `report`, `compare`, and `clean`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use vcbench::backend::{self, Availability};
use vcbench::doctor::{self, Status};
use vcbench::host;
use vcbench::results::{self, Results};
use vcbench::scenario::{Run as _, Scenario};
use vcbench::table;

use super::{color, Failure};

pub(crate) fn list(json: bool) -> Result<ExitCode, Failure> {
    let all = backend::all();
    let found = backend::availability_of(&all);
    // Each peer's version, asked of all at once, as their availability was.
    let own = format!("vcbench {}", env!("CARGO_PKG_VERSION"));
    let versions: Vec<String> = std::thread::scope(|scope| {
        let asked: Vec<_> = all.iter().map(|b| scope.spawn(|| b.version())).collect();
        asked
            .into_iter()
            .map(|v| v.join().ok().flatten().unwrap_or_else(|| own.clone()))
            .collect()
    });
    let backends: Vec<serde_json::Value> = all
        .iter()
        .zip(&found)
        .zip(&versions)
        .map(|((b, availability), version)| {
            let (available, reason) = match availability {
                Availability::Available => (true, None),
                Availability::Unavailable(r) => (false, Some(r)),
            };
            serde_json::json!({"name": b.name(), "version": version, "description": b.describe(), "available": available, "reason": reason})
        })
        .collect();
    let scenarios: Vec<serde_json::Value> = Scenario::ALL
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name(), "description": s.describe(), "workload": s.workload_args(),
                "runs": s.default_runs(), "warmup": s.default_warmup(),
            })
        })
        .collect();
    if json {
        say!(
            "{:#}",
            serde_json::json!({"backends": backends, "scenarios": scenarios})
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![vec![
        "backend".to_owned(),
        "available".to_owned(),
        "version".to_owned(),
        "what it is".to_owned(),
    ]];
    for ((b, availability), version) in all.iter().zip(found).zip(versions) {
        let available = match availability {
            Availability::Available => "yes".to_owned(),
            Availability::Unavailable(reason) => format!("no: {reason}"),
        };
        rows.push(vec![
            b.name().to_owned(),
            available,
            version,
            b.describe().to_owned(),
        ]);
    }
    say_part!("{}", table::columns(&rows, &[], color()));
    say!();
    let mut rows = vec![vec![
        "scenario".to_owned(),
        "runs".to_owned(),
        "what it measures".to_owned(),
    ]];
    for s in Scenario::ALL {
        rows.push(vec![
            s.name().to_owned(),
            format!("{}+{}", s.default_warmup(), s.default_runs()),
            s.describe().to_owned(),
        ]);
    }
    say_part!("{}", table::columns(&rows, &[], color()));
    say!("\nruns: warmup+measured, per backend, unless --runs/--warmup say otherwise");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn doctor(json: bool) -> Result<ExitCode, Failure> {
    let host = host::detect();
    let checks = doctor::run(&host);
    if json {
        say!("{:#}", serde_json::json!({"host": host, "checks": checks}));
        return Ok(ExitCode::SUCCESS);
    }
    let under = match (&host.hypervisor, host.emulated) {
        (Some(_), true) => " · emulated by QEMU TCG".to_owned(),
        (Some(vendor), false) if !vendor.is_empty() => format!(" · under {vendor}"),
        (Some(_), false) => " · under a hypervisor".to_owned(),
        (None, _) => String::new(),
    };
    say!(
        "host: {} · {} · {} CPUs · {} MiB · Linux {} · {}{under}",
        host.hostname,
        host.cpu_model,
        host.cpus,
        host.memory_mib,
        host.kernel,
        host.os
    );
    let mut rows = vec![vec![
        "check".to_owned(),
        "status".to_owned(),
        "found".to_owned(),
    ]];
    for c in &checks {
        let status = match c.status {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Missing => "missing",
        };
        rows.push(vec![c.name.clone(), status.to_owned(), c.detail.clone()]);
        if let Some(fix) = &c.fix {
            rows.push(vec![String::new(), String::new(), format!("fix: {fix}")]);
        }
    }
    say_part!("{}", table::columns(&rows, &[], color()));
    Ok(ExitCode::SUCCESS)
}

/// Removes leftovers of vcbench processes that are gone, reporting each. `vcbench clean`
/// (`quiet` false) reports on standard output, as its result; before a run (`quiet`), what
/// a killed run left is a warning on standard error, and routine tidying is not done.
/// What cannot be removed is always an error on standard error.
pub(crate) fn clean(quiet: bool) -> Result<(), Failure> {
    let removed = vcbench::cleanup::clean(!quiet).map_err(anyhow::Error::new)?;
    for item in &removed {
        match &item.error {
            Some(e) => eprintln!("cannot remove {}: {e}", item.what),
            None if quiet => eprintln!("removed {}", item.what),
            None => say!("removed {}", item.what),
        }
    }
    if removed.is_empty() && !quiet {
        say!("nothing to clean");
    }
    Ok(())
}

/// Reads a results file for a report, as a usage error when it is not one.
pub(crate) fn read_document(file: &Path) -> Result<Results, Failure> {
    Results::read(file).map_err(|e| Failure::usage(e.into()))
}

pub(crate) fn report(
    file: &Path,
    out: Option<&Path>,
    png: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let doc = read_document(file)?;
    match out {
        None => say_part!("{}", reports::markdown::render(&doc)),
        Some(path) => {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let text = match path.extension().and_then(|e| e.to_str()) {
                Some("html" | "htm") => reports::html::render(&doc),
                Some("md" | "markdown") => reports::markdown::render(&doc),
                Some("csv") if name.ends_with(".samples.csv") => reports::csv::samples(&doc),
                Some("csv") => reports::csv::figures(&doc),
                _ => {
                    return Err(Failure::usage(anyhow::anyhow!(
                        "--out {}: name a .html, .md, .csv (one row per figure) or \
                         .samples.csv (one row per sample) file",
                        path.display()
                    )))
                }
            };
            write_report(path, &text)?;
        }
    }
    if let Some(dir) = png {
        let written = reports::write_charts(&doc, dir).context("writing the charts")?;
        say!("charts: {} files in {}", written.len(), dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// How `compare` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareFormat {
    /// A table for a terminal.
    Terminal,
    /// Markdown.
    Markdown,
    /// JSON.
    Json,
    /// CSV.
    Csv,
}

impl CompareFormat {
    /// The format the flags ask for (clap lets at most one be set).
    pub(crate) fn of(markdown: bool, json: bool, csv: bool) -> Self {
        match (markdown, json, csv) {
            (true, _, _) => CompareFormat::Markdown,
            (_, true, _) => CompareFormat::Json,
            (_, _, true) => CompareFormat::Csv,
            _ => CompareFormat::Terminal,
        }
    }
}

/// Writes a report to `path`, making its directory, and says where.
pub(crate) fn write_report(path: &Path, text: &str) -> Result<(), Failure> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    results::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    say!("report: {}", path.display());
    Ok(())
}

pub(crate) fn compare(files: &[PathBuf], format: CompareFormat) -> Result<ExitCode, Failure> {
    let docs = files
        .iter()
        .map(|f| read_document(f))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    print_comparison(&docs, &names, format);
    Ok(ExitCode::SUCCESS)
}

/// Prints the comparison of `docs` (the first is the baseline), named `names`.
pub(crate) fn print_comparison(docs: &[Results], names: &[String], format: CompareFormat) {
    match format {
        CompareFormat::Markdown => say_part!("{}", reports::compare::markdown(docs, names)),
        CompareFormat::Json => say!("{:#}", reports::compare::json(docs, names)),
        CompareFormat::Csv => say_part!("{}", reports::compare::csv(docs, names)),
        CompareFormat::Terminal => {
            let bold = color();
            let columns = |rows: &[Vec<String>]| table::columns(rows, &[], bold);
            say_part!("{}", reports::compare::terminal(docs, names, &columns));
        }
    }
}

/// Writes the HTML and Markdown reports of `results` beside its file: `r.json` gives
/// `r.html` and `r.md`. A report that cannot be written is said, and the run still counts.
pub(crate) fn write_reports(results: &Results, results_path: &Path) -> Vec<PathBuf> {
    let mut written = Vec::new();
    for (ext, text) in [
        ("html", reports::html::render(results)),
        ("md", reports::markdown::render(results)),
    ] {
        let path = results_path.with_extension(ext);
        match results::write_atomic(&path, text.as_bytes()) {
            Ok(()) => written.push(path),
            Err(e) => eprintln!("vcbench: no {ext} report: {:#}", anyhow::Error::new(e)),
        }
    }
    written
}

pub(crate) fn show(file: &Path) -> Result<ExitCode, Failure> {
    let results = Results::read(file).map_err(|e| Failure::usage(e.into()))?;
    say!(
        "{} on {} ({}, KVM {}, cgroups {}), {}",
        results.tool.name,
        results.host.hostname,
        results.host.kernel,
        results.host.kvm.label(),
        results.host.cgroup,
        results.started_at
    );
    say_part!("{}", table::render(&results, color()));
    Ok(ExitCode::SUCCESS)
}
