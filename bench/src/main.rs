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

use cli::args::{Cli, Command, KernelCommand};
use cli::inspect::{clean, compare, doctor, list, report, show};
use cli::kernel::{kernel_build, write_initramfs};
use cli::run::{once, run};
use cli::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Once(args) => once(args),
        Command::List { json } => list(json),
        Command::Doctor { json } => doctor(json),
        Command::Schema => {
            say!("{}", results::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { file } => show(&file),
        Command::Report { file, out, png } => report(&file, out.as_deref(), png.as_deref()),
        Command::Compare { files, markdown } => compare(&files, markdown),
        Command::Clean => clean(false).map(|_| ExitCode::SUCCESS),
        Command::Kernel(KernelCommand::Build {
            source,
            jobs,
            json,
            quiet,
        }) => kernel_build(&source, jobs, json, quiet),
        Command::Kernel(KernelCommand::Initramfs { gzip, out }) => write_initramfs(gzip, out),
    };
    match result {
        Ok(code) => code,
        Err(Failure { status, error }) => {
            eprintln!("vcbench: error: {error:#}");
            ExitCode::from(status)
        }
    }
}
