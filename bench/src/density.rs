//! The density scenario: how many instances a host holds at once, and how what each costs
//! grows with their number.
//!
//! Instances are started in steps up to each count asked for (1, 10, 50, ...), one after
//! another or `parallel` at a time, and all are kept alive: each runs the workload's
//! `alloc`, which touches a set amount of memory, reports, and holds it until released.
//! After each step the newest instances' start latencies, the memory per instance (PSS and
//! USS of its host processes, and the parts its backend can name: cgroup usage, monitor
//! overhead, touched guest memory) and the host's available memory, slab and page tables
//! are recorded. A governor stops before the host's available memory falls under a floor.
//! At the end every instance is released, waited for and torn down, and that is timed.
//!
//! With the user's own program (`run -s density --image IMG --ready output:|tcp: -- CMD`),
//! each instance runs it instead of `alloc` ([`run_with`]): an instance counts once its
//! program is ready, and is held there (`exec --hold`) while the others start and its
//! memory is taken.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use workload::record::Record;

use crate::backend::{error_chain, Backend, Event, Instance, Launch};
use crate::clock::Stamp;
use crate::host::meminfo_kib;
use crate::procfs::Memory;
use crate::results::{Better, Figure};
use reports::document::{Metric as Name, Part, Scenario};

/// How a density series is run.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The instance counts to reach, ascending.
    pub instances: Vec<u32>,
    /// Instances started at once within a step.
    pub parallel: u32,
    /// MiB each instance touches and holds.
    pub hold_mib: u32,
    /// Host available memory below which no instance is started, KiB.
    pub floor_kib: u64,
    /// How long one instance may take to start and report.
    pub timeout: Duration,
}

/// The default floor: the larger of 20% of the host's memory and 2 GiB.
pub fn default_floor_kib() -> u64 {
    let total = meminfo_kib("MemTotal").unwrap_or(0);
    (total / 5).max(2 * 1024 * 1024)
}

impl Options {
    /// The workload command line every instance runs.
    pub fn workload_args(&self) -> Vec<String> {
        vec!["alloc".into(), "--mib".into(), self.hold_mib.to_string()]
    }
}

pub use reports::document::density::{HostMemory, PerInstance, Series, Step};

/// The host's memory now, from /proc/meminfo.
pub fn host_memory_now() -> HostMemory {
    HostMemory {
        available_kib: meminfo_kib("MemAvailable").unwrap_or(0),
        slab_kib: meminfo_kib("Slab").unwrap_or(0),
        page_tables_kib: meminfo_kib("PageTables").unwrap_or(0),
    }
}

/// Receives progress: `alive` instances of `target` are up.
pub trait Progress {
    /// Called after every instance reports.
    fn alive(&self, backend: &str, alive: u32, target: u32);
}

/// An instance launched, with when its launch was asked for.
type Launched = Result<(Box<dyn Instance>, Stamp), crate::backend::Error>;

/// Runs one density series of `backend`. Never leaves an instance behind: every one
/// started is torn down before this returns, whatever stopped the series.
///
/// With `parallel` above 1, each step's batches are launched at the same time by as many
/// launcher threads. A launched process is tied to the thread that started it (the
/// kernel's parent-death signal follows the thread), so the launchers live until every
/// instance is gone.
pub fn run(
    backend: &dyn Backend,
    workload: &Path,
    options: &Options,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Series {
    run_with(
        backend,
        workload,
        options.workload_args(),
        options,
        progress,
        stop,
    )
}

/// Why a density series of the user's program (its workload line `args`) cannot run on
/// `backend`, if it cannot: each instance is held once ready, so the program must be a
/// service (`--ready output:` or `tcp:`, held with `--hold`), in an instance the host can
/// release (not a Linux guest, which stops its program once ready); a TCP port checked
/// for N instances needs a network per instance, which native instances (in the host's
/// own network) do not have.
pub fn refuses(backend: &dyn Backend, args: &[String]) -> Option<String> {
    if backend.name() == "microvm" {
        return Some(
            "a Linux guest stops your program once it is ready (the host cannot signal into \
             the guest to release it), so it cannot be held: density of your program runs \
             on native, container, runc and crun"
                .to_owned(),
        );
    }
    let options: Vec<&str> = args
        .iter()
        .take_while(|a| *a != "--")
        .map(String::as_str)
        .collect();
    if !options.contains(&"--hold") {
        return Some(
            "density holds each instance once its program is ready: give a service's \
             readiness, --ready output:REGEX or tcp:PORT"
                .to_owned(),
        );
    }
    let tcp = options
        .windows(2)
        .any(|w| w[0] == "--ready" && w[1].starts_with("tcp:"));
    if tcp && backend.name() == "native" {
        return Some(
            "native instances share the host's network, so --ready tcp:PORT would find the \
             first instance's server for every later one: use --ready output:REGEX"
                .to_owned(),
        );
    }
    None
}

/// [`run`] with each instance running the workload line `args`: the user's program
/// (`exec --hold ...`, see [`refuses`]) or a built-in workload that holds.
pub fn run_with(
    backend: &dyn Backend,
    workload: &Path,
    args: Vec<String>,
    options: &Options,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Series {
    raise_open_files_limit();
    let launch = Launch {
        workload: workload.to_owned(),
        args,
    };
    let now = || -> Launched {
        let launched = Stamp::now();
        crate::backend::launch(backend, &launch).map(|i| (i, launched))
    };
    let args = &launch.args;
    if options.parallel <= 1 {
        let batch = |n: u32| (0..n).map(|_| now()).collect();
        return series(backend, args, options, progress, stop, &batch);
    }
    std::thread::scope(|scope| {
        let (done, results) = mpsc::channel::<Launched>();
        let requests: Vec<mpsc::Sender<()>> = (0..options.parallel)
            .map(|_| {
                let (request, requested) = mpsc::channel::<()>();
                let done = done.clone();
                let now = &now;
                scope.spawn(move || {
                    for () in requested {
                        if done.send(now()).is_err() {
                            break;
                        }
                    }
                });
                request
            })
            .collect();
        let batch = |n: u32| -> Vec<Launched> {
            let asked = requests
                .iter()
                .take(n as usize)
                .filter(|r| r.send(()).is_ok())
                .count();
            // A launch answers within the run's time limit, or is missing (the series
            // then stops with that reason) rather than waited for without end.
            (0..asked)
                .map_while(|_| results.recv_timeout(options.timeout).ok())
                .collect()
        };
        let series = series(backend, args, options, progress, stop, &batch);
        // Every instance is gone: the launchers may end.
        drop(requests);
        series
    })
}

/// The series itself, of instances running `args`; `batch(n)` launches `n` of them.
fn series(
    backend: &dyn Backend,
    args: &[String],
    options: &Options,
    progress: &dyn Progress,
    stop: &AtomicBool,
    batch: &dyn Fn(u32) -> Vec<Launched>,
) -> Series {
    let mut series = Series {
        backend: backend.name().to_owned(),
        workload: args.to_vec(),
        parallel: options.parallel,
        asked: options.instances.clone(),
        floor_mib: options.floor_kib / 1024,
        steps: Vec::new(),
        reached: 0,
        stopped: None,
        failed: false,
        teardown_ms: 0.0,
    };
    let mut live: Vec<Box<dyn Instance>> = Vec::new();
    let target_max = options.instances.iter().copied().max().unwrap_or(0);
    'steps: for &target in &options.instances {
        let step_started = Instant::now();
        let mut start_ms = Vec::new();
        while live.len() < target as usize {
            let count = options
                .parallel
                .min(target - u32::try_from(live.len()).unwrap_or(u32::MAX));
            if stop.load(Ordering::SeqCst) {
                series.stopped = Some(format!("interrupted at {}", live.len()));
                break;
            }
            let available = meminfo_kib("MemAvailable").unwrap_or(0);
            if available < options.floor_kib {
                series.stopped = Some(format!(
                    "stopped at {}: memory floor (available {} MiB, floor {} MiB)",
                    live.len(),
                    available / 1024,
                    options.floor_kib / 1024
                ));
                break;
            }
            let launches = batch(count);
            if launches.len() < count as usize {
                series.failed = true;
                series.stopped = Some(format!(
                    "stopped at {}: {} of {count} launches did not come back within {:.1} s",
                    live.len(),
                    count as usize - launches.len(),
                    options.timeout.as_secs_f64()
                ));
            }
            let mut starting = Vec::new();
            for launched in launches {
                match launched {
                    Ok(started) => starting.push(started),
                    Err(e) => {
                        series.failed = true;
                        series.stopped.get_or_insert_with(|| {
                            format!(
                                "stopped at {}: launch failed: {}",
                                live.len() + starting.len(),
                                error_chain(&e)
                            )
                        });
                    }
                }
            }
            for (mut instance, launched) in starting {
                match settle(instance.as_mut(), launched, options.timeout, stop) {
                    Ok(ms) => {
                        start_ms.push(ms);
                        live.push(instance);
                        progress.alive(
                            backend.name(),
                            u32::try_from(live.len()).unwrap_or(u32::MAX),
                            target_max,
                        );
                    }
                    Err(reason) => {
                        let diagnostics = instance.diagnostics();
                        finish(instance);
                        let last = diagnostics.lines().last().unwrap_or_default();
                        series.failed |= reason != "interrupted";
                        series.stopped.get_or_insert_with(|| {
                            let mut text =
                                format!("stopped at {}: an instance failed: {reason}", live.len());
                            if !last.is_empty() {
                                text.push_str(&format!("; its standard error said: {last}"));
                            }
                            text
                        });
                    }
                }
            }
            if series.stopped.is_some() {
                break;
            }
        }
        if live.len() == target as usize {
            series.steps.push(Step {
                instances: target,
                start_ms,
                step_ms: step_started.elapsed().as_secs_f64() * 1e3,
                per_instance: per_instance(&live),
                host: host_memory_now(),
            });
        }
        if series.stopped.is_some() {
            break 'steps;
        }
    }
    series.reached = u32::try_from(live.len()).unwrap_or(u32::MAX);
    let teardown = Instant::now();
    for instance in &mut live {
        instance.release();
    }
    for instance in live {
        finish(instance);
    }
    series.teardown_ms = teardown.elapsed().as_secs_f64() * 1e3;
    series
}

/// The figures of a series, for tables and comparisons: every start latency, the memory
/// per instance at the most instances reached, the marginal cost of one more instance
/// (between the first and the last step: the growth of the instances' summed PSS, and the
/// fall of the host's available memory, which also counts the kernel's objects), how many
/// were reached and the teardown.
pub fn figures(series: &Series) -> Vec<Figure> {
    // Start latencies and the memory of each instance are samples, one per instance;
    // the rest are single numbers of the whole series.
    let density = Scenario::Density.name();
    let figure =
        |metric: &str, unit: &str, better, samples: Vec<f64>| match samples[..] {
            [value] if metric != Name::StartLatency => {
                Figure::value(&series.backend, density, metric, unit, better, value)
            }
            _ => Figure::distribution(&series.backend, density, metric, unit, better, samples).map(
                |f| match metric == Name::StartLatency {
                    true => f.timed_by(Some(crate::results::Clock::Host)),
                    false => f,
                },
            ),
        };
    let mib = |kib: u64| kib_f64(kib) / 1024.0;
    let mut figures = Vec::new();
    let starts: Vec<f64> = series
        .steps
        .iter()
        .flat_map(|s| s.start_ms.clone())
        .collect();
    figures.extend(figure(
        Name::StartLatency.name(),
        "ms",
        Better::Lower,
        starts,
    ));
    if let Some(last) = series.steps.last() {
        let per = &last.per_instance;
        // Each instance's own memory where it was read; else the mean of them all.
        let each = |kib_each: &[u64], mean: u64| match kib_each {
            [] => vec![mib(mean)],
            each => each.iter().map(|&k| mib(k)).collect(),
        };
        figures.extend(figure(
            Name::PssPerInstance.name(),
            "MiB",
            Better::Lower,
            each(&per.pss_kib_each, per.pss_kib),
        ));
        figures.extend(figure(
            Name::UssPerInstance.name(),
            "MiB",
            Better::Lower,
            each(&per.uss_kib_each, per.uss_kib),
        ));
        for (part, kib) in &per.parts {
            figures.extend(figure(
                &format!("{part}_per_instance"),
                "MiB",
                Better::Lower,
                vec![mib(*kib)],
            ));
        }
    }
    if let (Some(first), Some(last)) = (series.steps.first(), series.steps.last()) {
        if last.instances > first.instances {
            let added = f64::from(last.instances - first.instances);
            let total = |s: &Step| kib_f64(s.per_instance.pss_kib) * f64::from(s.instances);
            figures.extend(figure(
                Name::MarginalPss.name(),
                "MiB",
                Better::Lower,
                vec![(total(last) - total(first)) / added / 1024.0],
            ));
            let fall = kib_f64(first.host.available_kib) - kib_f64(last.host.available_kib);
            figures.extend(figure(
                Name::MarginalHostMemory.name(),
                "MiB",
                Better::Lower,
                vec![fall / added / 1024.0],
            ));
        }
    }
    figures.extend(figure(
        Name::InstancesReached.name(),
        "instances",
        Better::Higher,
        vec![f64::from(series.reached)],
    ));
    figures.extend(figure(
        Name::Teardown.name(),
        "ms",
        Better::Lower,
        vec![series.teardown_ms],
    ));
    figures
}

#[allow(
    clippy::cast_precision_loss,
    reason = "memory sizes in KiB are far below 2^52"
)]
fn kib_f64(kib: u64) -> f64 {
    kib as f64
}

/// Reads an instance's events until its result: it has started and holds its memory.
/// Returns launch to its first record, ms.
fn settle(
    instance: &mut dyn Instance,
    launched: Stamp,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<f64, String> {
    let deadline = Instant::now() + timeout;
    let mut started = None;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err("interrupted".to_owned());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("no result within {:.1} s", timeout.as_secs_f64()));
        }
        match instance.next_event((now + Duration::from_millis(50)).min(deadline)) {
            Ok(Some(Event::Record { record, at })) => match record {
                Record::Started { .. } => started = Some(at.ms_since(launched)),
                Record::Result { .. } => {
                    return started.ok_or_else(|| "a result before it started".to_owned())
                }
                Record::Error { message, .. } => return Err(format!("workload error: {message}")),
            },
            Ok(Some(Event::Closed { .. })) => return Err("it exited before holding".to_owned()),
            Ok(None) => {}
            Err(e) => return Err(error_chain(&e)),
        }
    }
}

/// Waits for a released (or failed) instance a little, kills it if it lingers, and tears
/// it down.
fn finish(mut instance: Box<dyn Instance>) {
    instance.release();
    drop(instance.wait(Instant::now() + Duration::from_secs(5)));
    instance.teardown();
}

/// The mean memory of the live instances.
fn per_instance(live: &[Box<dyn Instance>]) -> PerInstance {
    let n = u64::try_from(live.len()).unwrap_or(1).max(1);
    let mut total = Memory::default();
    let mut parts: BTreeMap<Part, u64> = BTreeMap::new();
    let (mut pss_kib_each, mut uss_kib_each) = (Vec::new(), Vec::new());
    for instance in live {
        let footprint = instance.footprint();
        if let Some(m) = footprint.processes {
            total = crate::procfs::sum(total, m);
            pss_kib_each.push(m.pss_kib);
            uss_kib_each.push(m.uss_kib);
        }
        for (name, kib) in footprint.parts {
            *parts.entry(name).or_default() += kib;
        }
    }
    PerInstance {
        rss_kib: total.rss_kib / n,
        pss_kib: total.pss_kib / n,
        uss_kib: total.uss_kib / n,
        parts: parts
            .into_iter()
            .map(|(k, v)| (k.name().to_owned(), v / n))
            .collect(),
        pss_kib_each,
        uss_kib_each,
    }
}

/// Each instance holds a few descriptors (pipes, a pidfd): a thousand of them need more
/// than the usual soft limit of 1024, so it is raised to the hard limit.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given, which lives here.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0
        && limit.rlim_cur < limit.rlim_max
    {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct it is given; raising the soft limit up to the
        // hard limit needs no privilege.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod parallel {
        //! A scripted backend whose launches take a while, to see them overlap.

        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;

        use workload::record::Record;

        use super::*;
        use crate::backend::{Availability, Error, Event, Exit};

        #[derive(Default)]
        struct Counts {
            in_flight: AtomicUsize,
            most: AtomicUsize,
        }

        struct Slow(Arc<Counts>);

        impl Backend for Slow {
            fn name(&self) -> &'static str {
                "slow"
            }
            fn describe(&self) -> &'static str {
                "launches that take 30 ms"
            }
            fn availability(&self) -> Availability {
                Availability::Available
            }
            fn launch(&self, _: &Launch) -> Result<Box<dyn Instance>, Error> {
                let now = self.0.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.0.most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(Box::new(Held {
                    events: 0,
                    released: false,
                }))
            }
        }

        struct Held {
            events: u32,
            released: bool,
        }

        impl Instance for Held {
            fn pids(&self) -> Vec<u32> {
                Vec::new()
            }
            fn next_event(&mut self, _: Instant) -> Result<Option<Event>, Error> {
                self.events += 1;
                let workload = "alloc".to_owned();
                Ok(match self.events {
                    1 => Some(Event::Record {
                        record: Record::Started {
                            workload,
                            pid: 1,
                            pid1: false,
                        },
                        at: Stamp::now(),
                    }),
                    2 => Some(Event::Record {
                        record: Record::Result {
                            workload,
                            metrics: Vec::new(),
                            facts: Vec::new(),
                        },
                        at: Stamp::now(),
                    }),
                    _ if self.released => Some(Event::Closed { at: Stamp::now() }),
                    _ => None,
                })
            }
            fn release(&mut self) {
                self.released = true;
            }
            fn wait(&mut self, _: Instant) -> Result<Exit, Error> {
                Ok(Exit::now(0))
            }
            fn diagnostics(&mut self) -> String {
                String::new()
            }
            fn teardown(self: Box<Self>) {}
        }

        struct Quiet;

        impl super::Progress for Quiet {
            fn alive(&self, _: &str, _: u32, _: u32) {}
        }

        fn most_at_once(parallel: u32) -> (usize, u32) {
            let counts = Arc::new(Counts::default());
            let options = Options {
                instances: vec![1, 9],
                parallel,
                hold_mib: 1,
                floor_kib: 0,
                timeout: Duration::from_secs(5),
            };
            let series = run(
                &Slow(Arc::clone(&counts)),
                Path::new("/nonexistent/workload"),
                &options,
                &Quiet,
                &AtomicBool::new(false),
            );
            (counts.most.load(Ordering::SeqCst), series.reached)
        }

        #[test]
        fn parallel_launches_overlap_and_one_at_a_time_does_not() {
            assert_eq!(most_at_once(1), (1, 9));
            let (most, reached) = most_at_once(4);
            assert_eq!(reached, 9);
            assert!(most > 1 && most <= 4, "{most} launches at once");
        }
    }

    #[test]
    fn the_users_program_is_held_only_as_a_service_where_it_can_be() {
        struct Named(&'static str);
        impl Backend for Named {
            fn name(&self) -> &'static str {
                self.0
            }
            fn describe(&self) -> &'static str {
                "a name only"
            }
            fn availability(&self) -> crate::backend::Availability {
                crate::backend::Availability::Available
            }
            fn launch(&self, _: &Launch) -> Result<Box<dyn Instance>, crate::backend::Error> {
                Err(crate::backend::Error::Wait(std::io::Error::other("never")))
            }
        }
        let line = |ready: &str, hold: bool| -> Vec<String> {
            let mut line = vec!["exec", "--root", "/img", "--ready", ready];
            if hold {
                line.push("--hold");
            }
            line.extend(["--", "serve", "--ready", "tcp:1"]);
            line.into_iter().map(str::to_owned).collect()
        };
        let refused = |name, ready, hold| refuses(&Named(name), &line(ready, hold));
        assert_eq!(refused("container", "tcp:8000", true), None);
        assert_eq!(refused("native", "output:^up$", true), None);
        assert!(refused("container", "exit", false)
            .unwrap()
            .contains("give a service's readiness"));
        assert!(refused("native", "tcp:8000", true)
            .unwrap()
            .contains("share the host's network"));
        // The program's own arguments are not the workload's options.
        assert_eq!(refused("native", "output:x", true), None);
        assert!(refused("microvm", "output:x", true)
            .unwrap()
            .contains("cannot be held"));
    }

    #[test]
    fn the_default_floor_is_at_least_two_gib() {
        assert!(default_floor_kib() >= 2 * 1024 * 1024);
    }

    #[test]
    fn every_instance_holds_the_asked_memory() {
        let options = Options {
            instances: vec![1],
            parallel: 1,
            hold_mib: 3,
            floor_kib: 0,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(options.workload_args(), ["alloc", "--mib", "3"]);
    }
}
