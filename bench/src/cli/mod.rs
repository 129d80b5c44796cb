//! The `vcbench` command line, over the library: its grammar ([`args`]), one module per
//! group of commands, and what they share: the exit statuses, the failure that carries
//! one, and whether to colour.

pub mod args;
pub mod fleet;
pub mod inspect;
pub mod kernel;
pub mod run;
pub mod tour;

use std::io::IsTerminal;

/// Exit status: a bad command line or an unusable input.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit status: results were written, but some runs failed.
pub(crate) const EXIT_RUNS_FAILED: u8 = 3;
/// Exit status: with `--check-goals`, a startup goal was missed (results written).
pub(crate) const EXIT_GOAL_MISSED: u8 = 4;
/// Exit status: interrupted by SIGINT or SIGTERM (results so far were written).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// An error with the exit status it should end the program with.
pub(crate) struct Failure {
    pub(crate) status: u8,
    pub(crate) error: anyhow::Error,
}

impl Failure {
    pub(crate) fn usage(error: anyhow::Error) -> Self {
        Failure {
            status: EXIT_USAGE,
            error,
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure { status: 1, error }
    }
}

/// Whether to colour standard output.
pub(crate) fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}
