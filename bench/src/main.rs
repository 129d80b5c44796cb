//! The `vcbench` command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use images::{image, kernel};
use vcbench::backend::{self, Availability};
use vcbench::doctor::{self, Status};
use vcbench::host;
use vcbench::order::Order;
use vcbench::results::{self, Results};
use vcbench::runner::{self, Plan, Progress};
use vcbench::scenario::{Run as _, Scenario, Step};
use vcbench::{cleanup, density, table};

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

/// Exit status: a bad command line or an unusable input.
const EXIT_USAGE: u8 = 2;
/// Exit status: results were written, but some runs failed.
const EXIT_RUNS_FAILED: u8 = 3;
/// Exit status: interrupted by SIGINT or SIGTERM (results so far were written).
const EXIT_INTERRUPTED: u8 = 130;

const EXAMPLES: &str = "\
Examples:
  vcbench run                                   the default suite, every available backend
  vcbench run --backend native --scenario startup,cpu,syscall --runs 10 --out r.json
  vcbench run --scenario footprint --json > footprint.json
  vcbench run -b container -s startup --namespaces mount,pid   a container without net, user, ... namespaces
  vcbench run -b microvm -s footprint --vm-memory-mib 1024      the monitor's overhead with a 1 GiB guest
  vcbench run -b native,container,runc -s startup --baseline runc --seed 7   ratios against runc, replayable
  vcbench list                                  backends and scenarios, and what is available here
  vcbench doctor                                what this machine can do, and how to fix what it cannot
  vcbench show r.json                           the summary table of a results file
  vcbench report r.json -o r.html --png charts  an HTML report with charts, and each chart as PNG/SVG
  vcbench compare before.json after.json        the same figures side by side, each change tested
  vcbench clean                                 remove cgroups and state a killed run left behind

Exit status: 0 success; 1 error; 2 bad usage or input; 3 some runs failed (results written);
130 interrupted (results so far written, marked incomplete).
Colour is off when NO_COLOR is set or output is not a terminal.";

/// Measure what containers and microVMs cost against native, with one workload.
#[derive(Debug, Parser)]
#[command(name = "vcbench", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios on backends and write a results document.
    #[command(after_help = EXAMPLES)]
    Run(RunArgs),
    /// Run the workload once on one backend and show what happened: its markers, the
    /// backend's phases and counters, the workload's figures, and why it failed if it did.
    #[command(after_help = ONCE_EXAMPLES)]
    Once(OnceArgs),
    /// List backends and scenarios, and whether each backend is available here.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check what this machine can do: KVM, cgroups, namespaces, peers.
    Doctor {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the results document.
    Schema,
    /// Remove what a killed vcbench left behind (cgroups, container state) and other builds'
    /// cached images, and say what.
    Clean,
    /// Print the summary table of a results file.
    Show {
        /// The results file.
        file: PathBuf,
    },
    /// Render a results file as a report: HTML with charts, or Markdown.
    Report {
        /// The results file.
        file: PathBuf,
        /// Where to write it: `.html` for HTML, `.md` for Markdown [default: Markdown on
        /// standard output].
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Also write every chart as PNG and SVG into this directory.
        #[arg(long)]
        png: Option<PathBuf>,
    },
    /// Compare results files: how their plans and hosts differ, then each figure of the
    /// first beside the others, with its change tested (a rank test and a bootstrap
    /// interval): "slower by 12.0% [+7.0%, +17.0%]" or "no significant change".
    Compare {
        /// Two or more results files; the first is the baseline.
        #[arg(num_args = 2.., required = true)]
        files: Vec<PathBuf>,
        /// Print Markdown instead of a terminal table.
        #[arg(long)]
        markdown: bool,
    },
    /// The guest kernel of Linux microVMs.
    #[command(subcommand)]
    Kernel(KernelCommand),
}

const ONCE_EXAMPLES: &str = "\
Examples:
  vcbench once                                      hello, natively
  vcbench once -b container -- cpu --mib 8          one workload with its options, after --
  vcbench once -b microvm --json                    the outcome as JSON
  vcbench once -b container -- fault --kind oom     see how a failure is reported

Exit status: 0 the run succeeded; 3 it failed (the reason is printed); 2 bad usage;
1 the backend cannot run here; 130 interrupted.";

#[derive(Debug, Args)]
struct OnceArgs {
    /// The backend.
    #[arg(long, short, default_value = "native", value_parser = backend_names())]
    backend: String,
    #[command(flatten)]
    setup: BackendArgs,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
    /// The workload and its options, after `--` [default: hello]; `workload --help`
    /// lists them.
    #[arg(last = true)]
    workload: Vec<String>,
}

const KERNEL_EXAMPLES: &str = "\
Examples:
  vcbench kernel build                              from Debian's linux-source-6.1 tarball
  vcbench kernel build --source ~/src/linux         from a kernel tree (built out of tree)
  vcbench kernel build --json                       the kernel's path and identity as JSON

The kernel is cached by a hash of its source and configuration; a second build of the
same source prints the cached kernel at once.";

#[derive(Debug, Subcommand)]
enum KernelCommand {
    /// Build the guest kernel (tinyconfig + kernel/microvm.config) and print where it is.
    #[command(after_help = KERNEL_EXAMPLES)]
    Build {
        /// A kernel tarball or tree.
        #[arg(long, default_value = images::kernel::DEBIAN_SOURCE)]
        source: PathBuf,
        /// Parallel compile jobs [default: the number of CPUs].
        #[arg(long, short, value_parser = clap::value_parser!(u32).range(1..=1024))]
        jobs: Option<u32>,
        /// Print the kernel's path and identity as JSON.
        #[arg(long)]
        json: bool,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Write the Linux guest's initramfs (the image's files, the workload as /init) and
    /// print where it is.
    Initramfs {
        /// Compress it with gzip.
        #[arg(long)]
        gzip: bool,
        /// Where to write it [default: in the cache, named by the workload's hash].
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Backends to run, comma-separated [default: native, container and microvm; the peers
    /// runc and crun only when named].
    #[arg(long, short, value_delimiter = ',', value_parser = backend_names())]
    backend: Vec<String>,
    /// Scenarios to run, comma-separated [default: every scenario but density and
    /// interference, which run only when named].
    #[arg(long, short, value_delimiter = ',', value_parser = scenario_names())]
    scenario: Vec<Scenario>,
    /// Measured runs per backend and scenario [default: 30 for startup, 5 for the rest].
    #[arg(long, short, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: Option<u32>,
    /// Warmup runs, discarded, before the measured ones [default: 3 for startup, 1 for the rest].
    #[arg(long, short, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    warmup: Option<u32>,
    #[command(flatten)]
    setup: BackendArgs,
    /// Density: the instance counts to reach, ascending, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    instances: Vec<u32>,
    /// Density: instances launched at the same time (one thread each) within a step.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    parallel: u32,
    /// Density: MiB each instance touches and holds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    hold_mib: u32,
    /// Density: stop before the host's available memory falls under this many MiB
    /// [default: the larger of 20% of the host's memory and 2048].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1 << 40))]
    memory_floor_mib: Option<u64>,
    /// How each scenario's runs are ordered among the backends: rounds of one run per
    /// backend, each round shuffled (interleaved); all runs shuffled (random); or every run
    /// of one backend before the next (blocked), which lets drift land on one backend.
    #[arg(long, value_enum, default_value_t = Order::Interleaved)]
    order: Order,
    /// Seed of the run order's shuffles and of the bootstrap intervals, recorded in the
    /// results [default: drawn from the clock].
    #[arg(long)]
    seed: Option<u64>,
    /// The backend every other backend's figures are set against (ratios and their
    /// intervals) [default: native when it runs, else the first backend].
    #[arg(long, value_parser = backend_names())]
    baseline: Option<String>,
    /// Where to write the results document [default: vcbench-results/run-<time>.json].
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Print the results document on standard output instead of the summary table.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// How the backends are set up: what `run` and `once` share.
#[derive(Debug, Args)]
struct BackendArgs {
    /// Namespaces of the container backend, comma-separated, to measure what each costs
    /// [default: all seven; `mount` is always on].
    #[arg(long, value_delimiter = ',', value_parser = ["user", "pid", "mount", "uts", "ipc", "net", "cgroup"])]
    namespaces: Vec<String>,
    /// Guest memory of the microvm backend, MiB (Linux guests need at least 32).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(2..=65_536))]
    vm_memory_mib: u64,
    /// vCPUs of the microvm backend's Linux guests.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=254))]
    vm_vcpus: u8,
    /// The microvm backend's guest kernel: a vmlinux ELF or a bzImage [default: the one
    /// `vcbench kernel build` made last, if any; without one, micro guests].
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Show the Linux guest's kernel log on its console (for debugging a boot).
    #[arg(long)]
    console: bool,
    /// Seconds after which one run is killed and counted as failed.
    #[arg(long, default_value_t = 60.0, value_parser = positive_seconds)]
    timeout: f64,
    /// Run crun in a mount namespace of its own with the host's cgroup v2 tree unmounted:
    /// crun 1.8 refuses hybrid cgroup hosts, and there it then uses the v1 controllers.
    #[arg(long)]
    crun_hide_unified_cgroup: bool,
}

fn backend_names() -> PossibleValuesParser {
    PossibleValuesParser::new(reports::document::Backend::NAMES)
}

/// The scenarios by name, each with its one-line summary in `--help`.
fn scenario_names() -> impl clap::builder::TypedValueParser<Value = Scenario> {
    use clap::builder::{PossibleValue, TypedValueParser};
    PossibleValuesParser::new(
        Scenario::ALL
            .iter()
            .map(|s| PossibleValue::new(s.name()).help(s.summary())),
    )
    // The parser above lets through only the names, each of which parses.
    .try_map(|name| name.parse::<Scenario>())
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds more than 0 and at most 86400"
        )),
    }
}

/// An error with the exit status it should end the program with.
struct Failure {
    status: u8,
    error: anyhow::Error,
}

impl Failure {
    fn usage(error: anyhow::Error) -> Self {
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

/// A seed from the clock, for a run that was given none (it is recorded in the results).
fn clock_seed() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs() ^ u64::from(now.subsec_nanos()).rotate_left(32)
}

/// Whether to colour standard output.
fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let out = match &args.out {
        Some(path) => path.clone(),
        None => default_out().map_err(Failure::usage)?,
    };
    results::check_writable(&out)
        .map_err(|e| Failure::usage(anyhow::Error::new(e).context("choose another --out")))?;

    let backends = backends(&args.setup, &args.backend)?;
    if let Some(baseline) = &args.baseline {
        if !backends.iter().any(|b| b.name() == baseline) {
            let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
            return Err(Failure::usage(anyhow::anyhow!(
                "--baseline {baseline}: it is not one of the backends this run runs ({}); \
                 name it in --backend too",
                names.join(", ")
            )));
        }
    }
    if !args.instances.is_sorted_by(|a, b| a < b) {
        return Err(Failure::usage(anyhow::anyhow!(
            "--instances {}: the counts must rise, e.g. 1,10,50",
            args.instances
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )));
    }
    let scenarios = if args.scenario.is_empty() {
        Scenario::ALL
            .iter()
            .copied()
            .filter(|s| s.in_default_suite())
            .collect()
    } else {
        args.scenario.clone()
    };
    let timeout = Some(Duration::from_secs_f64(args.setup.timeout));
    let plan = Plan {
        backends,
        steps: scenarios
            .into_iter()
            .map(|s| Step::new(s, args.runs, args.warmup, timeout))
            .collect(),
        density: density::Options {
            instances: args.instances.clone(),
            parallel: args.parallel,
            hold_mib: args.hold_mib,
            floor_kib: args
                .memory_floor_mib
                .map_or_else(density::default_floor_kib, |mib| mib * 1024),
            timeout: Duration::from_secs_f64(args.setup.timeout),
        },
        order: args.order,
        seed: args.seed.unwrap_or_else(clock_seed),
        baseline: args.baseline.clone(),
    };

    // What a killed run left behind would skew this one: remove it, saying what it was.
    clean(true)?;
    let workload =
        image::install_workload(&image::cache_dir()).context("preparing the workload")?;
    let stop = stop_on_signals()?;

    let progress = Bar::new(plan.total_runs(), args.quiet, out.clone());
    let results = runner::execute(&plan, &workload, host::detect(), &progress, &stop);
    progress.bar.finish_and_clear();
    results::write(&results, &out).with_context(|| {
        format!(
            "the results are lost; try again with another --out than {}",
            out.display()
        )
    })?;

    let reports = write_reports(&results, &out);
    if args.json {
        say!("{}", results.to_json());
        for report in reports {
            eprintln!("report: {}", report.display());
        }
    } else {
        say_part!("{}", table::render(&results, color()));
        say!("results: {}", out.display());
        for report in reports {
            say!("report: {}", report.display());
        }
    }
    Ok(if !results.complete || stop.load(Ordering::SeqCst) {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if !results.failures.is_empty() {
        ExitCode::from(EXIT_RUNS_FAILED)
    } else if results.figures.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The backends `names` asks for (the default set when empty), set up as `setup` says;
/// a bad kernel or a guest size this host cannot give is a usage error.
fn backends(
    setup: &BackendArgs,
    names: &[String],
) -> Result<Vec<Box<dyn backend::Backend>>, Failure> {
    let has = |n: &str| setup.namespaces.iter().any(|a| a == n);
    let namespaces = (!setup.namespaces.is_empty()).then(|| container::Namespaces {
        user: has("user"),
        pid: has("pid"),
        mount: true,
        uts: has("uts"),
        ipc: has("ipc"),
        net: has("net"),
        cgroup: has("cgroup"),
    });
    let names = names
        .iter()
        .map(|n| n.parse())
        .collect::<Result<Vec<reports::document::Backend>, _>>()
        .map_err(|e| Failure::usage(e.into()))?;
    let setup = backend::Setup {
        namespaces,
        vm_memory_mib: setup.vm_memory_mib,
        vm_vcpus: setup.vm_vcpus,
        kernel: setup.kernel.clone(),
        console: setup.console,
        timeout_s: setup.timeout,
        crun_hide_unified_cgroup: setup.crun_hide_unified_cgroup,
    };
    backend::select(&setup, &names).map_err(|e| Failure::usage(e.into()))
}

/// A flag SIGINT and SIGTERM raise, for a run to stop at; a second signal ends the
/// program at once (its instances die with it: see `registry::die_with_parent`).
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(
            signal,
            i32::from(EXIT_INTERRUPTED),
            Arc::clone(&stop),
        )
        .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
        .context("installing signal handlers")?;
    }
    Ok(stop)
}

/// Runs the workload once on one backend and shows what happened.
fn once(args: OnceArgs) -> Result<ExitCode, Failure> {
    let mut found = backends(&args.setup, std::slice::from_ref(&args.backend))?;
    let Some(backend) = found.pop() else {
        return Err(Failure::usage(anyhow::anyhow!(
            "no backend {:?}",
            args.backend
        )));
    };
    if let Availability::Unavailable(why) = backend.availability() {
        return Err(anyhow::anyhow!("{} cannot run here: {why}", backend.name()).into());
    }
    clean(true)?;
    let workload_args = if args.workload.is_empty() {
        vec!["hello".to_owned()]
    } else {
        args.workload.clone()
    };
    let launch = backend::Launch {
        workload: image::install_workload(&image::cache_dir()).context("preparing the workload")?,
        args: workload_args.clone(),
    };
    let stop = stop_on_signals()?;
    let step = Step::new(
        Scenario::Startup,
        Some(1),
        Some(0),
        Some(Duration::from_secs_f64(args.setup.timeout)),
    );
    let outcome = vcbench::measure::run_once(backend.as_ref(), &launch, &step, &stop);
    let markers = &outcome.observation.markers;
    let document = serde_json::json!({
        "backend": backend.name(),
        "workload": workload_args,
        "failure": outcome.failure,
        "exit_status": outcome.exit_status,
        "markers": markers,
        "phases": outcome.phases,
        "counters": outcome
            .counters
            .iter()
            .map(|(name, value)| (name.clone(), serde_json::json!(value)))
            .collect::<serde_json::Map<_, _>>(),
        "metrics": outcome.observation.metrics,
        "facts": outcome.observation.facts,
    });
    if args.json {
        say!("{document:#}");
    } else {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3} ms"));
        say!("backend   {}", backend.name());
        say!("workload  {}", workload_args.join(" "));
        match &outcome.failure {
            None => say!("outcome   ok"),
            Some(why) => say!("outcome   failed: {why}"),
        }
        if let Some(status) = outcome.exit_status {
            say!("exit      status {status}");
        }
        say!(
            "markers   started {}, result {}, exited {}, gone {}",
            ms(markers.started_ms),
            ms(markers.result_ms),
            ms(markers.exited_ms),
            ms(markers.gone_ms)
        );
        for phase in &outcome.phases {
            say!("phase     {:<22} {:.3} ms", phase.name, phase.ms);
        }
        for (name, value) in &outcome.counters {
            say!("counter   {name:<22} {value}");
        }
        for metric in &outcome.observation.metrics {
            say!(
                "metric    {:<22} {} {}",
                metric.name,
                metric.value,
                metric.unit
            );
        }
    }
    Ok(if stop.load(Ordering::SeqCst) {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if outcome.failure.is_some() {
        ExitCode::from(EXIT_RUNS_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// `vcbench-results/run-<UTC time>.json`, creating the directory.
fn default_out() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from("vcbench-results");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}; pass --out FILE", dir.display()))?;
    let stamp: String = results::now_rfc3339()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    Ok(dir.join(format!("run-{stamp}.json")))
}

/// A progress bar on standard error, hidden when it is not a terminal; it also keeps the
/// results file up to date after every scenario, so a crash loses at most one.
struct Bar {
    bar: ProgressBar,
    out: PathBuf,
}

impl Bar {
    fn new(total: u64, quiet: bool, out: PathBuf) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if quiet || !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Bar { bar, out }
    }
}

impl Progress for Bar {
    fn run_started(&self, backend: &str, scenario: &str, index: u32, of: u32, warmup: bool) {
        let kind = if warmup { "warmup" } else { "run" };
        self.bar
            .set_message(format!("{backend} · {scenario} · {kind} {index}/{of}"));
    }

    fn run_ended(&self, failure: Option<&str>) {
        if let Some(reason) = failure {
            self.bar.println(format!("run failed: {reason}"));
        }
        self.bar.inc(1);
    }

    fn checkpoint(&self, partial: &Results) {
        if let Err(e) = results::write(partial, &self.out) {
            self.bar.println(format!(
                "cannot save results so far: {:#}",
                anyhow::Error::new(e)
            ));
        }
    }
}

fn list(json: bool) -> Result<ExitCode, Failure> {
    let backends: Vec<serde_json::Value> = backend::all()
        .iter()
        .map(|b| {
            let (available, reason) = match b.availability() {
                Availability::Available => (true, None),
                Availability::Unavailable(r) => (false, Some(r)),
            };
            serde_json::json!({"name": b.name(), "description": b.describe(), "available": available, "reason": reason})
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
        "what it is".to_owned(),
    ]];
    for b in backend::all() {
        let available = match b.availability() {
            Availability::Available => "yes".to_owned(),
            Availability::Unavailable(reason) => format!("no: {reason}"),
        };
        rows.push(vec![
            b.name().to_owned(),
            available,
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

fn doctor(json: bool) -> Result<ExitCode, Failure> {
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

/// Removes leftovers of vcbench processes that are gone, reporting each: a killed run's
/// on standard error, routine tidying on standard output; `quiet` (before a run) reports
/// only what a killed run left.
fn clean(quiet: bool) -> Result<(), Failure> {
    let removed = vcbench::cleanup::clean(!quiet).map_err(anyhow::Error::new)?;
    for item in &removed {
        match (&item.error, item.whose) {
            (Some(e), _) => eprintln!("cannot remove {}: {e}", item.what),
            (None, cleanup::Whose::KilledRun) => eprintln!("removed {}", item.what),
            (None, cleanup::Whose::Tidy) => say!("removed {}", item.what),
        }
    }
    if removed.is_empty() && !quiet {
        say!("nothing to clean");
    }
    Ok(())
}

/// Reads a results file for a report, as a usage error when it is not one.
fn read_document(file: &Path) -> Result<Results, Failure> {
    Results::read(file).map_err(|e| Failure::usage(e.into()))
}

fn report(file: &Path, out: Option<&Path>, png: Option<&Path>) -> Result<ExitCode, Failure> {
    let doc = read_document(file)?;
    match out {
        None => say_part!("{}", reports::markdown::render(&doc)),
        Some(path) => {
            let html = match path.extension().and_then(|e| e.to_str()) {
                Some("html" | "htm") => true,
                Some("md" | "markdown") => false,
                _ => {
                    return Err(Failure::usage(anyhow::anyhow!(
                        "--out {}: name a .html or a .md file",
                        path.display()
                    )))
                }
            };
            let text = if html {
                reports::html::render(&doc)
            } else {
                reports::markdown::render(&doc)
            };
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            results::write_atomic(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            say!("report: {}", path.display());
        }
    }
    if let Some(dir) = png {
        let written = reports::write_charts(&doc, dir).context("writing the charts")?;
        say!("charts: {} files in {}", written.len(), dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn compare(files: &[PathBuf], markdown: bool) -> Result<ExitCode, Failure> {
    let docs = files
        .iter()
        .map(|f| read_document(f))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    if markdown {
        say_part!("{}", reports::compare::markdown(&docs, &names));
    } else {
        let bold = color();
        let columns = |rows: &[Vec<String>]| table::columns(rows, &[], bold);
        say_part!("{}", reports::compare::terminal(&docs, &names, &columns));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the HTML and Markdown reports of `results` beside its file: `r.json` gives
/// `r.html` and `r.md`. A report that cannot be written is said, and the run still counts.
fn write_reports(results: &Results, results_path: &Path) -> Vec<PathBuf> {
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

fn kernel_build(
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

fn write_initramfs(gzip: bool, out: Option<PathBuf>) -> Result<ExitCode, Failure> {
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

fn show(file: &Path) -> Result<ExitCode, Failure> {
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
