//! `vcbench merge`: many hosts' results documents into one fleet document, and what
//! `show` prints of a fleet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use reports::fleet::merge::{self, Input, MergeError, Options};
use reports::fleet::{Document, Fleet, SkippedHost};
use vcbench::results;
use vcbench::table;

use super::{color, Failure};

/// What `vcbench merge` was asked.
pub(crate) struct MergeArgs<'a> {
    pub(crate) files: &'a [PathBuf],
    pub(crate) out: Option<&'a Path>,
    pub(crate) skipped_hosts: &'a [String],
    pub(crate) skip_unreadable: bool,
    pub(crate) allow_plan_differences: bool,
}

pub(crate) fn merge(args: MergeArgs<'_>) -> Result<ExitCode, Failure> {
    let mut inputs = Vec::new();
    for spec in args.skipped_hosts {
        let (name, reason) = spec
            .split_once('=')
            .filter(|(n, r)| !n.trim().is_empty() && !r.trim().is_empty())
            .ok_or_else(|| {
                Failure::usage(anyhow::anyhow!(
                    "--skipped-host {spec:?}: give it as HOST=REASON"
                ))
            })?;
        inputs.push(Input::Skipped(SkippedHost {
            name: name.trim().to_owned(),
            reason: reason.trim().to_owned(),
        }));
    }
    for file in args.files {
        let source = file.display().to_string();
        match Document::read(file) {
            Ok(doc) => inputs.extend(inputs_of(doc, &source)),
            Err(e) if args.skip_unreadable => {
                let name = file
                    .file_stem()
                    .map_or_else(|| source.clone(), |s| s.to_string_lossy().into_owned());
                let reason = format!("{:#}", anyhow::Error::new(e));
                eprintln!("vcbench: host {name} skipped: {reason}");
                inputs.push(Input::Skipped(SkippedHost { name, reason }));
            }
            Err(e) => return Err(Failure::usage(e.into())),
        }
    }
    let tool = results::tool();
    let options = Options {
        merged_by: format!("{} {} ({})", tool.name, tool.version, tool.git_revision),
        merged_at: results::now_rfc3339(),
        allow_plan_differences: args.allow_plan_differences,
    };
    let fleet = merge::merge(inputs, &options).map_err(|e| match e {
        MergeError::NoHosts { .. } => Failure::from(anyhow::Error::new(e)),
        _ => Failure::usage(e.into()),
    })?;
    match args.out {
        None => say!("{}", fleet.to_json()),
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            results::write_atomic(path, fleet.to_json().as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            say!("{}", summary(&fleet));
            say!("fleet: {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A document's hosts as merge inputs: a fleet's hosts (and skipped hosts) each count.
fn inputs_of(doc: Document, source: &str) -> Vec<Input> {
    match doc {
        Document::Single(results) => vec![Input::Results {
            source: source.to_owned(),
            results,
        }],
        Document::Fleet(fleet) => {
            let mut inputs: Vec<Input> = fleet
                .skipped_hosts
                .iter()
                .cloned()
                .map(Input::Skipped)
                .collect();
            inputs.extend(fleet.hosts.iter().filter_map(|m| {
                Some(Input::Results {
                    source: m.source.clone(),
                    results: Box::new(fleet.host_results(&m.name)?),
                })
            }));
            inputs
        }
    }
}

/// The fleet in a line or two: its hosts, its skipped hosts, its differences.
fn summary(fleet: &Fleet) -> String {
    let names: Vec<&str> = fleet.hosts.iter().map(|m| m.name.as_str()).collect();
    let mut text = format!("hosts: {} ({})", names.len(), names.join(", "));
    for s in &fleet.skipped_hosts {
        text.push_str(&format!("\nskipped host {}: {}", s.name, s.reason));
    }
    for d in &fleet.differences {
        text.push_str(&format!("\ndiffers: {}", merge::in_words(d)));
    }
    text
}

/// `vcbench show` of a fleet: its hosts, then every figure with a column per host.
pub(crate) fn show(fleet: &Fleet) -> Result<ExitCode, Failure> {
    say!(
        "fleet of {} hosts, merged {} by {}",
        fleet.hosts.len(),
        fleet.merged_at,
        fleet.merged_by
    );
    for m in &fleet.hosts {
        let h = &m.results.host;
        say!(
            "  {}: {} ({} CPUs), Linux {}, KVM {}, cgroups {}",
            m.name,
            h.cpu_model,
            h.cpus,
            h.kernel,
            h.kvm.label(),
            h.cgroup
        );
    }
    let rest = summary(fleet);
    for line in rest.lines().skip(1) {
        say!("  {line}");
    }
    say!();
    let rows = reports::fleet::render::terminal_rows(fleet);
    say_part!("{}", table::columns(&rows, &[], color()));
    Ok(ExitCode::SUCCESS)
}

/// Whether `file` is a fleet document (anything else goes to the single-host commands,
/// which say what is wrong with it).
pub(crate) fn is_fleet(file: &Path) -> bool {
    matches!(Document::read(file), Ok(Document::Fleet(_)))
}

fn read_fleet(file: &Path) -> Result<Fleet, Failure> {
    match Document::read(file).map_err(|e| Failure::usage(e.into()))? {
        Document::Fleet(fleet) => Ok(*fleet),
        Document::Single(_) => Err(Failure::usage(anyhow::anyhow!(
            "{} is one host's results, not a fleet",
            file.display()
        ))),
    }
}

/// `vcbench show` of a fleet document.
pub(crate) fn show_file(file: &Path) -> Result<ExitCode, Failure> {
    show(&read_fleet(file)?)
}

/// `vcbench report` of a fleet document: Markdown or HTML, and with `--png DIR` its
/// chart as SVG in that directory.
pub(crate) fn report(
    file: &Path,
    out: Option<&Path>,
    charts: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let fleet = read_fleet(file)?;
    match out {
        None => say_part!("{}", reports::fleet::render::markdown(&fleet)),
        Some(path) => {
            let text = match path.extension().and_then(|e| e.to_str()) {
                Some("html" | "htm") => reports::fleet::render::html(&fleet),
                Some("md" | "markdown") => reports::fleet::render::markdown(&fleet),
                _ => {
                    return Err(Failure::usage(anyhow::anyhow!(
                        "--out {}: name a .html or a .md file",
                        path.display()
                    )))
                }
            };
            super::inspect::write_report(path, &text)?;
        }
    }
    if let Some(dir) = charts {
        match reports::fleet::chart::ratios_svg(&fleet) {
            Some(svg) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join("fleet-ratios.svg");
                results::write_atomic(&path, svg.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
                say!(
                    "charts: 1 file in {} (a fleet's chart is SVG only)",
                    dir.display()
                );
            }
            None => say!("charts: none (no figure of any host has a ratio)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vcbench compare` where a file is a fleet: each of its hosts is a document of its own,
/// named `FILE:HOST`; the first document is the baseline.
pub(crate) fn compare(
    files: &[PathBuf],
    format: super::inspect::CompareFormat,
) -> Result<ExitCode, Failure> {
    let mut names = Vec::new();
    let mut docs = Vec::new();
    for file in files {
        let doc = Document::read(file).map_err(|e| Failure::usage(e.into()))?;
        for (name, results) in doc.per_host(&file.display().to_string()) {
            names.push(name);
            docs.push(results);
        }
    }
    if docs.len() < 2 {
        return Err(Failure::usage(anyhow::anyhow!(
            "compare needs two or more hosts' results; the files hold {}",
            docs.len()
        )));
    }
    super::inspect::print_comparison(&docs, &names, format);
    Ok(ExitCode::SUCCESS)
}
