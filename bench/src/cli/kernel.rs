//! `vcbench kernel`: building the guest kernel, and writing the initramfs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use images::{image, kernel};

use crate::Failure;

/// Progress of a kernel build: a bar over the expected build steps.
struct KernelBar(ProgressBar);

impl kernel::Progress for KernelBar {
    fn stage(&self, what: &str) {
        self.0.set_message(what.to_owned());
    }

    fn step(&self, count: u64, line: &str) {
        // The expected count is an estimate: the bar waits at its end if it is passed.
        let len = self.0.length().unwrap_or(kernel::EXPECTED_STEPS);
        self.0.set_position(count.min(len.saturating_sub(1)));
        self.0.set_message(line.to_owned());
    }
}

pub(crate) fn kernel_build(
    source: &Path,
    jobs: Option<u32>,
    json: bool,
    quiet: bool,
) -> Result<ExitCode, Failure> {
    let source = kernel::Source::at(source).map_err(|e| Failure::usage(e.into()))?;
    let jobs = jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        |j| j as usize,
    );
    let bar =
        ProgressBar::with_draw_target(Some(kernel::EXPECTED_STEPS), ProgressDrawTarget::stderr());
    if quiet || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/~{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let progress = KernelBar(bar);
    if !quiet && !std::io::stderr().is_terminal() {
        eprintln!(
            "vcbench: building the guest kernel from {} with {jobs} jobs (minutes; cached afterwards)",
            source.path().display()
        );
    }
    let built = kernel::build(&source, &image::cache_dir(), jobs, &progress)
        .context("building the guest kernel")?;
    progress.0.finish_and_clear();
    if json {
        say!(
            "{:#}",
            serde_json::json!({"vmlinux": built.vmlinux, "cached": built.cached, "identity": built.identity})
        );
    } else {
        let how = if built.cached {
            "cached".to_owned()
        } else {
            format!("built in {:.0} s", built.identity.build_seconds)
        };
        say!(
            "{} (Linux {}, config sha256 {}, {how})",
            built.vmlinux.display(),
            built.identity.version,
            &built.identity.config_sha256[..16]
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn write_initramfs(gzip: bool, out: Option<PathBuf>) -> Result<ExitCode, Failure> {
    let compression = if gzip {
        images::initramfs::Compression::Gzip
    } else {
        images::initramfs::Compression::None
    };
    let path = match out {
        Some(path) => {
            std::fs::write(&path, images::initramfs::image_archive(compression))
                .with_context(|| format!("cannot write {}", path.display()))?;
            path
        }
        None => images::initramfs::install(&image::cache_dir(), compression)
            .context("writing the initramfs")?,
    };
    say!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
