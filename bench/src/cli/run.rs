//! `vcbench run` and `vcbench once`: a plan from the command line, carried out by the
//! library's runner with a progress bar, its results written with their reports.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use images::image;
use vcbench::backend::{self, Availability};
use vcbench::host;
use vcbench::results::{self, Results};
use vcbench::runner::{self, Plan, Progress};
use vcbench::scenario::{Scenario, Step};
use vcbench::{density, table};

use super::args::{BackendArgs, ImageArgs, OnceArgs, RunArgs};
use super::inspect::{clean, write_reports};
use super::{color, Failure, EXIT_GOAL_MISSED, EXIT_INTERRUPTED, EXIT_RUNS_FAILED};

pub(crate) fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    // With --json and no --out, the document goes to standard output only.
    let out = match &args.out {
        Some(path) => Some(path.clone()),
        None if args.json => None,
        None => Some(default_out().map_err(Failure::usage)?),
    };
    if let Some(out) = &out {
        results::check_writable(out)
            .map_err(|e| Failure::usage(anyhow::Error::new(e).context("choose another --out")))?;
    }
    // Held to the CPUs asked for: this thread's affinity is inherited by every thread and
    // process it starts from here on.
    let cpus = match &args.cpus_set {
        Some(list) => Some(hold_to_cpus(&list.0).map_err(Failure::usage)?),
        None => None,
    };
    if let Some(f) = host::cpu_frequency(std::path::Path::new(host::CPU_SYSFS)) {
        if f.can_skew() {
            eprintln!(
                "warning: CPU frequency {}: timings drift with load and temperature \
                 (vcbench doctor says how to steady them)",
                f.describe()
            );
        }
    }

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
    let command = user_command(&args.image, &args.command)?;
    let scenarios = if command.is_some() {
        // Your program is the command scenario's, or held N times over for density.
        let yours = |s: &Scenario| matches!(s, Scenario::Command | Scenario::Density);
        if !args.scenario.iter().all(yours) {
            return Err(Failure::usage(anyhow::anyhow!(
                "--image runs your program as the command scenario, or the density scenario \
                 (-s density); leave out the other scenarios or run them separately"
            )));
        }
        if args.scenario.is_empty() {
            vec![Scenario::Command]
        } else {
            args.scenario.clone()
        }
    } else if args.scenario.is_empty() {
        Scenario::ALL
            .iter()
            .copied()
            .filter(|s| s.in_default_suite())
            .collect()
    } else {
        if args.scenario.contains(&Scenario::Command) {
            return Err(Failure::usage(anyhow::anyhow!(
                "the command scenario runs your own program: give --image IMG -- PROGRAM ARGS"
            )));
        }
        args.scenario.clone()
    };
    if let (Some(line), Some(image)) = (&command, &args.image.image) {
        prepare_user_image(&backends, image, line)?;
    }
    let timeout = Some(Duration::from_secs_f64(args.setup.timeout));
    let plan = Plan {
        backends,
        steps: scenarios
            .into_iter()
            .map(|s| {
                // Under a time budget, the budget picks the run count, up to --runs.
                let runs = args
                    .runs
                    .as_ref()
                    .and_then(|r| r.of(s))
                    .or(args.max_time.map(|_| MAX_TIME_RUNS));
                let warmup = args.warmup.as_ref().and_then(|w| w.of(s));
                Step::new(s, runs, warmup, timeout)
            })
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
        command: command.unwrap_or_default(),
        max_time: args.max_time.map(Duration::from_secs_f64),
        cpus,
    };

    // What a killed run left behind would skew this one: remove it, saying what it was.
    clean(true)?;
    let workload =
        image::install_workload(&image::cache_dir()).context("preparing the workload")?;
    let stop = stop_on_signals()?;

    let progress = Bar::new(plan.total_runs(), args.quiet, out.clone());
    let results = runner::execute(&plan, &workload, host::detect(), &progress, &stop);
    progress.bar.finish_and_clear();
    let reports = match &out {
        Some(out) => {
            results::write(&results, out).with_context(|| {
                format!(
                    "the results are lost; try again with another --out than {}",
                    out.display()
                )
            })?;
            write_reports(&results, out)
        }
        None => Vec::new(),
    };

    let paths = out.iter().chain(&reports);
    if args.json {
        say!("{}", results.to_json());
        for path in paths {
            eprintln!("written: {}", path.display());
        }
    } else if args.quiet {
        // The paths, then what the reader must not miss.
        for (i, path) in paths.enumerate() {
            say!(
                "{}: {}",
                if i == 0 { "results" } else { "report" },
                path.display()
            );
        }
        for line in table::goal_lines(&results) {
            say!("goal: {line}");
        }
        for warning in reports::figure_text::warnings(&results) {
            say!("warning: {warning}");
        }
        for line in table::outcome_lines(&results) {
            say!("{line}");
        }
    } else {
        say_part!("{}", table::render(&results, color()));
        for (i, path) in paths.enumerate() {
            say!(
                "{}: {}",
                if i == 0 { "results" } else { "report" },
                path.display()
            );
        }
    }
    let missed = missed_goals(&results);
    Ok(if !results.complete || stop.load(Ordering::SeqCst) {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if !results.failures.is_empty() {
        eprintln!(
            "vcbench: {} run(s) failed; the results say why, under \"failures\"",
            results.failures.len()
        );
        ExitCode::from(EXIT_RUNS_FAILED)
    } else if results.figures.is_empty() {
        ExitCode::FAILURE
    } else if args.check_goals && missed > 0 {
        eprintln!(
            "vcbench: {missed} startup goal(s) missed: the whole 95% interval is beyond the goal"
        );
        ExitCode::from(EXIT_GOAL_MISSED)
    } else {
        ExitCode::SUCCESS
    })
}

/// How many of the results' goals were missed.
fn missed_goals(results: &Results) -> usize {
    results
        .figures
        .iter()
        .filter(|f| f.verdict() == Some(reports::document::Verdict::Missed))
        .count()
}

/// The backends `names` asks for (the default set when empty), set up as `setup` says;
/// a bad kernel or a guest size this host cannot give is a usage error.
pub(crate) fn backends(
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
    let seccomp = match setup.seccomp.as_str() {
        "off" => container::Seccomp::Off,
        _ => container::Seccomp::Default,
    };
    let gvisor_platform = setup
        .gvisor_platform
        .parse()
        .map_err(|e| Failure::usage(anyhow::Error::new(e)))?;
    let limits = backend::limits::from_options(setup.memory, setup.cpus, setup.pids);
    // The VM backends take the memory and CPU limits as their guest's size.
    let vm_memory_mib = setup
        .memory
        .map_or(setup.vm_memory_mib, |bytes| bytes >> 20);
    let vm_vcpus = match setup.cpus {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(cpus) => cpus.ceil().clamp(1.0, 254.0) as u8,
        None => setup.vm_vcpus,
    };
    let setup = backend::Setup {
        namespaces,
        seccomp,
        gvisor_platform,
        vm_memory_mib,
        vm_vcpus,
        kernel: setup.kernel.clone(),
        console: setup.console,
        timeout_s: setup.timeout,
        crun_hide_unified_cgroup: setup.crun_hide_unified_cgroup,
        limits,
    };
    backend::select(&setup, &names).map_err(|e| Failure::usage(e.into()))
}

/// A flag SIGINT and SIGTERM raise, for a run to stop at; a second signal ends the
/// program at once (its instances die with it: see `registry::die_with_parent`).
pub(crate) fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
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
pub(crate) fn once(args: OnceArgs) -> Result<ExitCode, Failure> {
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
    let command = user_command(&args.image, &args.workload)?;
    let workload_args = match &command {
        Some(line) => line.clone(),
        None if args.workload.is_empty() => vec!["hello".to_owned()],
        None => args.workload.clone(),
    };
    if command.is_some() {
        let supported = backend
            .runs_user_images()
            .and_then(|()| backend.runs_programs());
        if let Err(why) = supported {
            return Err(
                anyhow::anyhow!("{} cannot run --image here: {why}", backend.name()).into(),
            );
        }
        if let Some(image) = &args.image.image {
            prepare_user_image(std::slice::from_ref(&backend), image, &workload_args)?;
        }
    }
    let workload =
        image::install_workload(&image::cache_dir()).context("preparing the workload")?;
    // The workload's own help is text, not records: show it as it is.
    if command.is_none()
        && workload_args
            .iter()
            .any(|a| matches!(a.as_str(), "--help" | "-h" | "help"))
    {
        let help = std::process::Command::new(&workload)
            .args(&workload_args)
            .output()
            .context("running the workload for its help")?;
        say_part!("{}", String::from_utf8_lossy(&help.stdout));
        return Ok(ExitCode::SUCCESS);
    }
    let launch = backend::Launch {
        workload,
        args: workload_args.clone(),
    };
    let stop = stop_on_signals()?;
    // `alloc` holds what it touched until released: run it as the footprint scenario
    // does, released after its result, rather than waiting for the time limit.
    let scenario = match workload_args.first().map(String::as_str) {
        _ if command.is_some() => Scenario::Command,
        Some("alloc") => Scenario::Footprint,
        _ => Scenario::Startup,
    };
    // What `run` would skip (a guest kernel this host cannot boot, say), `once` refuses
    // rather than quietly running something else.
    if let Some(kernel) = &args.setup.kernel {
        if let Err(why) = backend.supports(Scenario::Cpu) {
            return Err(anyhow::anyhow!(
                "{} cannot boot --kernel {} here: {why}",
                backend.name(),
                kernel.display()
            )
            .into());
        }
    }
    let step = Step::new(
        scenario,
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
        let result = match scenario {
            Scenario::Command => "ready",
            _ => "result",
        };
        say!(
            "markers   started {}, {result} {}, exited {}, gone {}",
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
                table::number(metric.value),
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

/// The command scenario's workload line for `--image IMG -- PROGRAM ARGS`, the image
/// unpacked into the cache first; `None` without `--image`. A bad image, or no program to
/// run, is a usage error naming it.
fn user_command(image: &ImageArgs, args: &[String]) -> Result<Option<Vec<String>>, Failure> {
    let Some(path) = &image.image else {
        if image.ready.is_some() {
            return Err(Failure::usage(anyhow::anyhow!(
                "--ready says when your own program is ready: give it with --image IMG -- PROGRAM"
            )));
        }
        return Ok(None);
    };
    let cache = image::cache_dir().join("images");
    let opened = userimage::open(path, &cache)
        .map_err(|e| Failure::usage(anyhow::Error::new(e).context("--image")))?;
    if !opened.cached && !opened.skipped.is_empty() {
        eprintln!(
            "image: {} entries left out of {} ({}: {})",
            opened.skipped.len(),
            opened.root.display(),
            opened.skipped[0].path,
            opened.skipped[0].reason
        );
    }
    let program = opened.config.command(args);
    if program.is_empty() {
        return Err(Failure::usage(anyhow::anyhow!(
            "--image {}: the image names no program to run; give one after --",
            path.display()
        )));
    }
    let ready = image.ready.clone().unwrap_or_else(|| "exit".to_owned());
    // A service is held once ready, so its memory is taken while it serves.
    let service = ready.starts_with("output:") || ready.starts_with("tcp:");
    let mut line = vec![
        "exec".to_owned(),
        "--root".to_owned(),
        opened.root.to_string_lossy().into_owned(),
        "--ready".to_owned(),
        ready,
    ];
    if service {
        line.push("--hold".to_owned());
    }
    for pair in &opened.config.env {
        line.extend(["--env".to_owned(), pair.clone()]);
    }
    if let Some(dir) = &opened.config.working_dir {
        line.extend(["--workdir".to_owned(), dir.clone()]);
    }
    if let Some(user) = &opened.config.user {
        line.extend(["--user".to_owned(), user.clone()]);
    }
    line.push("--".to_owned());
    line.extend(program);
    Ok(Some(line))
}

/// Makes, before any run, what each backend that runs the user's image needs for it (a
/// Linux guest's initramfs), so no run's time includes it. A backend that cannot run the
/// image here is skipped by the runner with its reason; one that could, but not as it is
/// set up (a guest too small for the image), is a usage error saying what to change.
fn prepare_user_image(
    backends: &[Box<dyn backend::Backend>],
    image: &std::path::Path,
    line: &[String],
) -> Result<(), Failure> {
    let launch = backend::Launch {
        workload: PathBuf::new(),
        args: line.to_vec(),
    };
    for b in backends {
        if b.runs_user_images()
            .and_then(|()| b.runs_programs())
            .is_err()
        {
            continue;
        }
        b.prepare(&launch).map_err(|why| {
            Failure::usage(anyhow::anyhow!(
                "{} cannot run --image {}: {why}",
                b.name(),
                image.display()
            ))
        })?;
    }
    Ok(())
}

/// `vcbench-results/run-<UTC time>.json`, creating the directory.
pub(crate) fn default_out() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from("vcbench-results");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}; pass --out FILE", dir.display()))?;
    let stamp: String = results::now_rfc3339()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    Ok(dir.join(format!("run-{stamp}.json")))
}

/// Measured runs per scenario under a time budget when --runs does not say: the budget
/// ends them first.
const MAX_TIME_RUNS: u32 = 1000;

/// Holds this thread, and every thread and process it starts from now on, to `cpus`;
/// returns them as the kernel lists them (`2-3`).
fn hold_to_cpus(cpus: &[usize]) -> anyhow::Result<String> {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO initialises it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed cpu_set_t.
    unsafe { libc::CPU_ZERO(&mut set) };
    for &cpu in cpus {
        // SAFETY: `cpu` is below 1024, CPU_SETSIZE, as the parser checked.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is initialised and its size is passed; 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!("--cpus-set: this machine cannot run on CPUs {cpus:?}: {e}");
    }
    // What the kernel made of it (CPUs that are not online are left out).
    // SAFETY: `set` is a valid, exclusively borrowed cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Ok(list_of(cpus));
    }
    // SAFETY: `set` was filled by sched_getaffinity; each index is below CPU_SETSIZE.
    let held: Vec<usize> = (0..1024)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    Ok(list_of(&held))
}

/// `[0, 2, 3, 4]` as the kernel lists CPUs: `0,2-4`.
fn list_of(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let first = cpus[i];
        while i + 1 < cpus.len() && cpus[i + 1] == cpus[i] + 1 {
            i += 1;
        }
        parts.push(match cpus[i] {
            last if last == first => first.to_string(),
            last => format!("{first}-{last}"),
        });
        i += 1;
    }
    parts.join(",")
}

/// A progress bar on standard error, hidden when it is not a terminal; it also keeps the
/// results file up to date after every scenario, so a crash loses at most one.
struct Bar {
    bar: ProgressBar,
    /// Where results so far are saved; nowhere for `--json` without `--out`.
    out: Option<PathBuf>,
}

impl Bar {
    fn new(total: u64, quiet: bool, out: Option<PathBuf>) -> Self {
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
        let Some(out) = &self.out else {
            return;
        };
        if let Err(e) = results::write(partial, out) {
            self.bar.println(format!(
                "cannot save results so far: {:#}",
                anyhow::Error::new(e)
            ));
        }
    }
}

/// A seed from the clock, for a run that was given none (it is recorded in the results).
pub(crate) fn clock_seed() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs() ^ u64::from(now.subsec_nanos()).rotate_left(32)
}
