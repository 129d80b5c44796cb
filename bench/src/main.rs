//! The `vcbench` command line.

use std::process::ExitCode;

use clap::Parser;

use vcbench::results;

/// `println!` that drops what a closed standard output cannot take
/// (`vcbench show r.json | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that drops what a closed standard output cannot take.
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod cli;

use std::path::Path;

use anyhow::Context;

use cli::args::{Cli, Command, KernelCommand};
use cli::inspect::{clean, compare, doctor, list, report, show};
use cli::kernel::{kernel_build, write_initramfs};
use cli::run::{once, run};
use cli::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Once(args) => once(args),
        Command::List { json } => list(json),
        Command::Doctor { json } => doctor(json),
        Command::Schema { fleet: false } => {
            say!("{}", results::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { fleet: true } => {
            say!("{}", reports::fleet::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge {
            files,
            out,
            skipped_host,
            skip_unreadable,
            allow_plan_differences,
        } => cli::fleet::merge(cli::fleet::MergeArgs {
            files: &files,
            out: out.as_deref(),
            skipped_hosts: &skipped_host,
            skip_unreadable,
            allow_plan_differences,
        }),
        Command::Show { file } if cli::fleet::is_fleet(&file) => cli::fleet::show_file(&file),
        Command::Show { file } => show(&file),
        Command::Report { file, out, png } if cli::fleet::is_fleet(&file) => {
            cli::fleet::report(&file, out.as_deref(), png.as_deref())
        }
        Command::Report {
            file,
            out,
            png: Some(dir),
        } if out.as_deref().is_none_or(markdown_file) => {
            markdown_with_charts(&file, out.as_deref(), &dir)
        }
        Command::Report { file, out, png } => report(&file, out.as_deref(), png.as_deref()),
        Command::Compare {
            files,
            markdown,
            json,
            csv,
        } => {
            let format = cli::inspect::CompareFormat::of(markdown, json, csv);
            if files.len() < 2 || files.iter().any(|f| cli::fleet::is_fleet(f)) {
                cli::fleet::compare(&files, format)
            } else {
                compare(&files, format)
            }
        }
        Command::Clean => clean(false).map(|_| ExitCode::SUCCESS),
        Command::Kernel(KernelCommand::Build {
            source,
            jobs,
            json,
            quiet,
        }) => kernel_build(&source, jobs, json, quiet),
        Command::Kernel(KernelCommand::Initramfs { gzip, out }) => write_initramfs(gzip, out),
        Command::Tour(args) => cli::tour::tour(args),
    };
    match result {
        Ok(code) => code,
        Err(Failure { status, error }) => {
            eprintln!("vcbench: error: {error:#}");
            ExitCode::from(status)
        }
    }
}

/// Whether `path` names a Markdown report.
fn markdown_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("md" | "markdown")
    )
}

/// `vcbench report FILE [-o R.md] --png DIR`: the charts first, then the Markdown report,
/// which shows each of them by a link relative to where the report is written.
fn markdown_with_charts(file: &Path, out: Option<&Path>, dir: &Path) -> Result<ExitCode, Failure> {
    let doc = cli::inspect::read_document(file)?;
    let written = reports::write_charts(&doc, dir).context("writing the charts")?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let link = reports::markdown::chart_link(out, dir, &cwd);
    let text = reports::markdown::render_linked(&doc, Some(&link));
    let charts = format!("charts: {} files in {}", written.len(), dir.display());
    match out {
        // The report is the standard output: the charts are said beside it.
        None => {
            say_part!("{text}");
            eprintln!("{charts}");
        }
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            results::write_atomic(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            say!("report: {}", path.display());
            say!("{charts}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
