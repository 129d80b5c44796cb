//! `vcbench tour`: the guided walk through what a plain process, a container and a VM
//! each see, on this machine, for a terminal or as Markdown class notes.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use images::image;
use vcbench::{host, tour};

use crate::cli::args::TourArgs;
use crate::cli::inspect::clean;
use crate::cli::run::{backends, stop_on_signals};
use crate::cli::{color, Failure, EXIT_INTERRUPTED};

/// The width a terminal tour is wrapped to.
const WIDTH: usize = 92;

pub(crate) fn tour(args: TourArgs) -> Result<ExitCode, Failure> {
    let found = backends(&args.setup, &args.backend)?;
    clean(true)?;
    let workload =
        image::install_workload(&image::cache_dir()).context("preparing the workload")?;
    let stop = stop_on_signals()?;
    let timeout = Duration::from_secs_f64(args.setup.timeout);
    let visits: Vec<tour::Visit> = found
        .iter()
        .map(|b| tour::visit(b.as_ref(), &workload, timeout, &stop))
        .collect();
    let h = host::detect();
    let about = format!(
        "{} ({} CPUs, Linux {}, KVM {}{})",
        h.hostname,
        h.cpus,
        h.kernel,
        h.kvm.label(),
        if h.virtualized {
            "; this host is itself a VM, so native here is a process in a VM"
        } else {
            ""
        }
    );
    let text = if args.markdown {
        tour::markdown(&visits, &about)
    } else {
        tour::terminal(&visits, &about, WIDTH, color())
    }
    .map_err(|e| Failure::usage(e.into()))?;
    say_part!("{text}");
    Ok(if stop.load(std::sync::atomic::Ordering::SeqCst) {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}
