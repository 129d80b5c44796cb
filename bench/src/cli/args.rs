//! The command line's grammar: the subcommands, their options with their defaults and
//! checks, and the examples `--help` shows.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};

use vcbench::order::Order;
use vcbench::scenario::Scenario;

const EXAMPLES: &str = "\
Examples:
  vcbench run                                   the default suite, every available backend
  vcbench run --backend native --scenario startup,cpu,syscall --runs 10 --out r.json
  vcbench run --scenario footprint --json > footprint.json
  vcbench run -b container -s startup --namespaces mount,pid   a container without net, user, ... namespaces
  vcbench run -b microvm -s footprint --vm-memory-mib 1024      the monitor's overhead with a 1 GiB guest
  vcbench run -b native,container,runc -s startup --baseline runc --seed 7   ratios against runc, replayable
  vcbench run -b native,container,runc,crun --image debian.tar --ready tcp:8000 -- python3 -m http.server 8000
                                                your own program from your own image: time_to_ready
  vcbench list                                  backends and scenarios, and what is available here
  vcbench doctor                                what this machine can do, and how to fix what it cannot
  vcbench show r.json                           the summary table of a results file
  vcbench report r.json -o r.html --png charts  an HTML report with charts, and each chart as PNG/SVG
  vcbench report r.json -o r.csv                one row per figure (r.samples.csv: one per raw sample)
  vcbench compare before.json after.json        the same figures side by side, each change tested
  vcbench merge a.json b.json -o fleet.json     many hosts' runs of one plan in one document
  vcbench tour                                  what a process, a container and a VM each see, step by step
  vcbench tour --markdown > tour.md             the same walk-through as class notes
  vcbench clean                                 remove cgroups and state a killed run left behind

Exit status: 0 success; 1 error; 2 bad usage or input; 3 some runs failed (results written);
4 a startup goal was missed, with --check-goals (results written); 130 interrupted (results
so far written, marked incomplete).
Colour is off when NO_COLOR is set or output is not a terminal.";

/// Measure what containers and microVMs cost against native, with one workload.
#[derive(Debug, Parser)]
#[command(name = "vcbench", version, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run scenarios on backends and write a results document.
    #[command(after_help = EXAMPLES)]
    Run(Box<RunArgs>),
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
    /// Print the JSON Schema of the results document (of the fleet document with --fleet).
    Schema {
        /// The fleet document's schema, which `vcbench merge` writes.
        #[arg(long)]
        fleet: bool,
    },
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
        /// Where to write it: `.html` for HTML, `.md` for Markdown, `.csv` for one row per
        /// figure, `.samples.csv` for one row per raw sample [default: Markdown on
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
        /// Two or more results files, or a fleet document (each of its hosts counts as
        /// a file); the first is the baseline.
        #[arg(num_args = 1.., required = true)]
        files: Vec<PathBuf>,
        /// Print Markdown instead of a terminal table.
        #[arg(long, conflicts_with_all = ["json", "csv"])]
        markdown: bool,
        /// Print JSON: each figure in each file, and each change with its interval and test.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV: one row per figure and later file, with its change from the first.
        #[arg(long)]
        csv: bool,
    },
    /// Merge many hosts' results of one plan into a fleet document: each figure keeps its
    /// host, plans are checked alike (every difference listed), nothing is averaged.
    /// `show`, `report` and `compare` read the fleet document.
    #[command(after_help = MERGE_EXAMPLES)]
    Merge {
        /// The hosts' results files (or fleet documents), one per host.
        files: Vec<PathBuf>,
        /// Where to write the fleet document [default: standard output].
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// A host that has no results, and why, as HOST=REASON (repeatable): it is
        /// listed as a skipped host.
        #[arg(long, value_name = "HOST=REASON")]
        skipped_host: Vec<String>,
        /// A file that cannot be read as results (missing, cut short, not results) makes
        /// its host (named by the file) a skipped host with the reason, instead of an error.
        #[arg(long)]
        skip_unreadable: bool,
        /// Merge hosts whose plans asked for different work, listing every difference in
        /// the document, instead of refusing them.
        #[arg(long)]
        allow_plan_differences: bool,
    },
    /// The guest kernel of Linux microVMs.
    #[command(subcommand)]
    Kernel(KernelCommand),
    /// A guided walk through what a plain process, a container and a VM each see (PID 1,
    /// hostname, files, users, network, kernel, start, exits), run here, side by side.
    #[command(after_help = TOUR_EXAMPLES)]
    Tour(TourArgs),
}

const MERGE_EXAMPLES: &str = "\
Examples:
  vcbench merge a.json b.json c.json -o fleet.json    three hosts' runs of one plan
  vcbench merge *.json --skipped-host d='no /dev/kvm' -o fleet.json
  vcbench report fleet.json -o fleet.html             each host's figures side by side
  vcbench compare fleet.json                          every host against the first, tested

Exit status: 0 merged; 2 a file is not results, two files share a host name, or the plans
differ (each difference is listed); 1 no host has results.";

const TOUR_EXAMPLES: &str = "\
Examples:
  vcbench tour                                   the walk-through, for this terminal
  vcbench tour --markdown > tour.md              the same as Markdown class notes
  vcbench tour --namespaces mount,pid            a container without user, net, uts, ... namespaces
  vcbench tour -b native,container               leave the VM out

Without a guest kernel that boots here, the microvm runs micro guests (no guest OS), and
the tour says what they can and cannot show.";

#[derive(Debug, Args)]
pub(crate) struct TourArgs {
    /// Backends to visit, comma-separated, in this order.
    #[arg(long, short, value_delimiter = ',', default_value = "native,container,microvm",
          value_parser = backend_names())]
    pub(crate) backend: Vec<String>,
    #[command(flatten)]
    pub(crate) setup: BackendArgs,
    /// Write Markdown (class notes) instead of text for a terminal.
    #[arg(long)]
    pub(crate) markdown: bool,
}

const ONCE_EXAMPLES: &str = "\
Examples:
  vcbench once                                      hello, natively
  vcbench once -b container -- cpu --mib 8          one workload with its options, after --
  vcbench once -b microvm --json                    the outcome as JSON
  vcbench once -b container --memory 64M -- fault --kind oom
                                                    see how a failure is reported
  vcbench once -b runc --image debian.tar --ready tcp:8000 -- python3 -m http.server 8000
                                                    your own program from your own image

Exit status: 0 the run succeeded; 3 it failed (the reason is printed); 2 bad usage;
1 the backend cannot run here; 130 interrupted.";

#[derive(Debug, Args)]
pub(crate) struct OnceArgs {
    /// The backend.
    #[arg(long, short, default_value = "native", value_parser = backend_names())]
    pub(crate) backend: String,
    #[command(flatten)]
    pub(crate) setup: BackendArgs,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) image: ImageArgs,
    /// The workload and its options, after `--` [default: hello]; `vcbench once -- --help`
    /// lists them. With --image, your program and its arguments [default: the image's
    /// entry point and command].
    #[arg(last = true)]
    pub(crate) workload: Vec<String>,
}

const KERNEL_EXAMPLES: &str = "\
Examples:
  vcbench kernel build                              from Debian's linux-source-6.1 tarball
  vcbench kernel build --source ~/src/linux         from a kernel tree (built out of tree)
  vcbench kernel build --json                       the kernel's path and identity as JSON

The kernel is cached by a hash of its source and configuration; a second build of the
same source prints the cached kernel at once.";

#[derive(Debug, Subcommand)]
pub(crate) enum KernelCommand {
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
pub(crate) struct RunArgs {
    /// Backends to run, comma-separated [default: native, container and microvm; the peers
    /// runc and crun only when named].
    #[arg(long, short, value_delimiter = ',', value_parser = backend_names())]
    pub(crate) backend: Vec<String>,
    /// Scenarios to run, comma-separated [default: every scenario but density and
    /// interference, which run only when named].
    #[arg(long, short, value_delimiter = ',', value_parser = scenario_names())]
    pub(crate) scenario: Vec<Scenario>,
    /// Measured runs per backend and scenario: N for every scenario, or SCENARIO=N for
    /// one, comma-separated (`-r 10`, `-r startup=50,cpu=5`, `-r 10,startup=50`) [default:
    /// 30 for startup, 5 for the rest].
    #[arg(long, short, value_parser = parse_counts_runs)]
    pub(crate) runs: Option<Counts>,
    /// Warmup runs, discarded, before the measured ones: N, or SCENARIO=N, as for --runs
    /// [default: 3 for startup, 1 for the rest].
    #[arg(long, short, value_parser = parse_counts_warmup)]
    pub(crate) warmup: Option<Counts>,
    /// A time budget for the whole run, in seconds: each scenario gets an equal share of
    /// what is left when it starts, and its measured runs stop once its share is spent
    /// and every backend has at least 3 (up to --runs, which then defaults to 1000).
    #[arg(long, value_name = "SECS", value_parser = parse_max_time)]
    pub(crate) max_time: Option<f64>,
    /// Run on these CPUs only (the harness and every instance, through the CPU affinity
    /// they inherit), e.g. `2,3` or `0-3`, so runs do not wander between CPUs; recorded in
    /// the results.
    #[arg(long, value_name = "LIST", value_parser = parse_cpu_list)]
    pub(crate) cpus_set: Option<CpuList>,
    #[command(flatten)]
    pub(crate) setup: BackendArgs,
    /// Density: the instance counts to reach, ascending, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) instances: Vec<u32>,
    /// Density: instances launched at the same time (one thread each) within a step.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub(crate) parallel: u32,
    /// Density: MiB each instance touches and holds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub(crate) hold_mib: u32,
    /// Density: stop before the host's available memory falls under this many MiB
    /// [default: the larger of 20% of the host's memory and 2048].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1 << 40))]
    pub(crate) memory_floor_mib: Option<u64>,
    /// How each scenario's runs are ordered among the backends: rounds of one run per
    /// backend, each round shuffled (interleaved); all runs shuffled (random); or every run
    /// of one backend before the next (blocked), which lets drift land on one backend.
    #[arg(long, value_enum, default_value_t = Order::Interleaved)]
    pub(crate) order: Order,
    /// Seed of the run order's shuffles and of the bootstrap intervals, recorded in the
    /// results [default: drawn from the clock].
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Exit with status 4 when a startup goal was missed: its whole 95% interval beyond
    /// the goal (an undecided goal, whose interval holds it, does not fail the run).
    #[arg(long)]
    pub(crate) check_goals: bool,
    /// The backend every other backend's figures are set against (ratios and their
    /// intervals) [default: native when it runs, else the first backend].
    #[arg(long, value_parser = backend_names())]
    pub(crate) baseline: Option<String>,
    /// Where to write the results document [default: vcbench-results/run-<time>.json].
    #[arg(long, short)]
    pub(crate) out: Option<PathBuf>,
    /// Print the results document on standard output instead of the summary table; no
    /// file is written unless --out names one.
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress bar and no table: only the paths of the results and reports, the
    /// goals' verdicts, the warnings, failures and skips.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) image: ImageArgs,
    /// With --image: your program and its arguments, after `--` [default: the image's
    /// entry point and command]; they run as the command scenario.
    #[arg(last = true)]
    pub(crate) command: Vec<String>,
}

/// How the backends are set up: what `run` and `once` share.
#[derive(Debug, Args)]
pub(crate) struct BackendArgs {
    /// Namespaces of the container backend, comma-separated, to measure what each costs
    /// [default: all seven; `mount` is always on].
    #[arg(long, value_delimiter = ',', value_parser = ["user", "pid", "mount", "uts", "ipc", "net", "cgroup"])]
    pub(crate) namespaces: Vec<String>,
    /// The sandboxes' system call filters: the container backend's default deny-list and
    /// the microvm monitor's own allow-list, or off to measure what they cost.
    #[arg(long, default_value = "default", value_parser = ["default", "off"])]
    pub(crate) seccomp: String,
    /// How the gvisor backend intercepts system calls (where this host and runsc allow it).
    #[arg(long, default_value = "ptrace", value_parser = ["ptrace", "systrap", "kvm"])]
    pub(crate) gvisor_platform: String,
    /// Guest memory of the microvm backend, MiB (Linux guests need at least 32).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(2..=65_536))]
    pub(crate) vm_memory_mib: u64,
    /// vCPUs of the microvm backend's Linux guests.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub(crate) vm_vcpus: u8,
    /// The microvm backend's guest kernel: a vmlinux ELF or a bzImage [default: the one
    /// `vcbench kernel build` made last, if any; without one, micro guests].
    #[arg(long)]
    pub(crate) kernel: Option<PathBuf>,
    /// Show the Linux guest's kernel log on its console (for debugging a boot).
    #[arg(long)]
    pub(crate) console: bool,
    /// Seconds after which one run is killed and counted as failed.
    #[arg(long, default_value_t = 60.0, value_parser = positive_seconds)]
    pub(crate) timeout: f64,
    /// Run crun in a mount namespace of its own with the host's cgroup v2 tree unmounted:
    /// crun 1.8 refuses hybrid cgroup hosts, and there it then uses the v1 controllers.
    #[arg(long)]
    pub(crate) crun_hide_unified_cgroup: bool,
    /// Memory limit of each container, runc and crun instance (their cgroup), e.g. 256M
    /// or 1G (K, M, G are KiB, MiB, GiB; a bare number is MiB); the VM backends' guest
    /// memory instead of --vm-memory-mib.
    #[arg(long, value_parser = memory_size)]
    pub(crate) memory: Option<u64>,
    /// CPU limit of each container, runc and crun instance, in CPUs (0.5 is half of
    /// one; their cgroup's quota); the VM backends' vCPUs (rounded up) instead of
    /// --vm-vcpus.
    #[arg(long, value_parser = cpus)]
    pub(crate) cpus: Option<f64>,
    /// Most processes and threads in each container, runc and crun instance at once.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4_194_304))]
    pub(crate) pids: Option<u64>,
}

/// The user's own program and image: what `run` and `once` share.
#[derive(Debug, Args)]
pub(crate) struct ImageArgs {
    /// Run your own program, given after `--`, from this image: a root file system
    /// directory, a tarball of one (plain, gzip or zstd: mmdebstrap, docker export), an
    /// OCI image layout or an oci-archive (skopeo, umoci, podman save); PATH:TAG chooses
    /// the image tagged TAG in a layout or archive of several. It is unpacked once into
    /// the cache.
    #[arg(long)]
    pub(crate) image: Option<PathBuf>,
    /// When your program counts as ready (time_to_ready): exec (it was exec'ed), exit (it
    /// exited with status 0), output:REGEX (a line of its output matched) or tcp:PORT (a
    /// connection to PORT was accepted, inside the instance's network); with output: and
    /// tcp: it is a service, stopped once ready [default: exit].
    #[arg(long, value_parser = ready)]
    pub(crate) ready: Option<String>,
}

/// A size in bytes: `256M`, `1G`, `512K`, `64MiB`; a bare number is MiB.
fn memory_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 256M or 1G"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "k" | "kib" | "kb" => 10,
        "" | "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => return Err(format!("{text:?}: the unit must be K, M or G")),
    };
    let bytes = number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if bytes < 4 << 20 {
        return Err(format!(
            "{text:?} is below 4 MiB: too little for any program to start"
        ));
    }
    Ok(bytes)
}

/// A number of CPUs: positive, at most 1024.
fn cpus(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(c) if (0.01..=1024.0).contains(&c) => Ok(c),
        _ => Err(format!(
            "{text:?} is not a number of CPUs from 0.01 to 1024"
        )),
    }
}

/// `exec`, `exit`, `output:REGEX` or `tcp:PORT`.
fn ready(text: &str) -> Result<String, String> {
    let ok = match text {
        "exec" | "exit" => true,
        _ => match (text.strip_prefix("output:"), text.strip_prefix("tcp:")) {
            (Some(pattern), _) => !pattern.is_empty(),
            (_, Some(port)) => {
                port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0)
            }
            _ => false,
        },
    };
    match ok {
        true => Ok(text.to_owned()),
        false => Err(format!(
            "{text:?}: it must be exec, exit, output:REGEX or tcp:PORT (1 to 65535)"
        )),
    }
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

/// Run counts from the command line: one for every scenario, and some for one scenario.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// For every scenario not named.
    pub(crate) all: Option<u32>,
    /// For the scenarios named.
    pub(crate) each: Vec<(Scenario, u32)>,
}

impl Counts {
    /// The count for `scenario`, if one was given.
    pub(crate) fn of(&self, scenario: Scenario) -> Option<u32> {
        self.each
            .iter()
            .find(|(s, _)| *s == scenario)
            .map(|(_, n)| *n)
            .or(self.all)
    }
}

/// Parses `N`, `SCENARIO=N` or a comma-separated mix, each count in `range`.
fn parse_counts(
    text: &str,
    what: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Counts, String> {
    let mut counts = Counts::default();
    for part in text.split(',').map(str::trim) {
        let (scenario, number) = match part.split_once('=') {
            Some((s, n)) => (Some(s.trim()), n.trim()),
            None => (None, part),
        };
        let n: u32 = number
            .parse()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                format!(
                    "{number:?} is not a number of {what} from {} to {}",
                    range.start(),
                    range.end()
                )
            })?;
        match scenario {
            None if counts.all.is_some() => {
                return Err(format!("{text:?} gives the count for every scenario twice"))
            }
            None => counts.all = Some(n),
            Some(name) => {
                let scenario: Scenario = name.parse().map_err(|e| format!("{e}"))?;
                if counts.each.iter().any(|(s, _)| *s == scenario) {
                    return Err(format!("{text:?} names {name} twice"));
                }
                counts.each.push((scenario, n));
            }
        }
    }
    Ok(counts)
}

fn parse_counts_runs(text: &str) -> Result<Counts, String> {
    parse_counts(text, "runs", 1..=100_000)
}

fn parse_counts_warmup(text: &str) -> Result<Counts, String> {
    parse_counts(text, "warmup runs", 0..=10_000)
}

fn parse_max_time(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 1.0 && *s <= 7.0 * 86_400.0)
        .ok_or_else(|| format!("{text:?} is not a time budget in seconds, from 1 to 604800"))
}

/// CPUs by number, ascending, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CpuList(pub(crate) Vec<usize>);

/// Parses a CPU list as the kernel writes them: `0,2,4-7`.
fn parse_cpu_list(text: &str) -> Result<CpuList, String> {
    let bad = || format!("{text:?} is not a list of CPUs such as 2,3 or 0-3");
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
            None => (part.parse(), part.parse()),
        };
        let (first, last) = (first.map_err(|_| bad())?, last.map_err(|_| bad())?);
        if first > last || last >= 1024 {
            return Err(bad());
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(CpuList(cpus))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_one_for_all_or_one_per_scenario() {
        let c = parse_counts_runs("10,startup=50").unwrap();
        assert_eq!(c.of(Scenario::Startup), Some(50));
        assert_eq!(c.of(Scenario::Cpu), Some(10));
        let c = parse_counts_runs("startup=50, cpu=5").unwrap();
        assert_eq!(c.of(Scenario::Cpu), Some(5));
        assert_eq!(c.of(Scenario::Mem), None);
        for bad in ["0", "x", "startup=", "nosuch=3", "5,6", "cpu=1,cpu=2", "-1"] {
            assert!(parse_counts_runs(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_counts_warmup("0").unwrap().all, Some(0));
    }

    #[test]
    fn cpu_lists_read_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0,2,4-6").unwrap().0, [0, 2, 4, 5, 6]);
        assert_eq!(parse_cpu_list("3").unwrap().0, [3]);
        for bad in ["", "a", "3-1", "1-", "99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
        assert!(parse_max_time("0").is_err());
        assert_eq!(parse_max_time("90").unwrap(), 90.0);
    }
}
