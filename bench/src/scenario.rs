//! Scenarios: what an instance runs, and which figures a run yields.

use std::time::Duration;

use clap::ValueEnum;

use crate::backend::Footprint;
use crate::results::{Better, Clock, Markers};
use workload::record::Metric;

/// A measurement scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Scenario {
    /// Time from launch to the workload's first action, and to its exit.
    Startup,
    /// SHA-256 throughput: pure CPU work.
    Cpu,
    /// STREAM memory bandwidth.
    Mem,
    /// Cost of one system call.
    Syscall,
    /// Cost of creating a process.
    Fork,
    /// Small synchronous file writes.
    File,
    /// TCP round trips over loopback.
    Net,
    /// Memory an instance costs beyond the memory its workload touches.
    Footprint,
    /// Many instances alive at once: what each costs as their number grows.
    Density,
    /// What an instance sees of its host and may do, against the host's own view.
    Isolation,
    /// A victim's slowdown beside a noisy neighbour, with and without limits.
    Interference,
    /// The round trip of one VM exit (microVM only).
    Exits,
}

/// One value a run produced for a figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// Metric name.
    pub metric: String,
    /// Unit.
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
    /// The clock that timed it, for a time or a rate.
    pub clock: Option<Clock>,
    /// The value.
    pub value: f64,
}

/// Checks that every value of a run makes sense: finite and not negative (every figure
/// here is a time, a size, a count or a rate). A value that fails means the measurement
/// went wrong (the wrong processes sampled, a clock that went back), so the run fails
/// with the reason rather than putting an impossible number in the table.
pub fn check(values: &[Value]) -> Result<(), String> {
    for v in values {
        if !v.value.is_finite() {
            return Err(format!(
                "{} came out as {}, not a number: the run's figures are refused",
                v.metric, v.value
            ));
        }
        if v.value < 0.0 {
            return Err(format!(
                "{} came out as {} {}, which cannot be negative: the measurement counted \
                 the wrong thing, so the run's figures are refused",
                v.metric,
                crate::table::number(v.value),
                v.unit
            ));
        }
    }
    Ok(())
}

/// What the runner observed of one successful run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// Host-clock markers.
    pub markers: Markers,
    /// The workload's own figures (its result record).
    pub metrics: Vec<Metric>,
    /// `ru_maxrss` of the instance's main host process, KiB (wait4).
    pub host_maxrss_kib: Option<u64>,
    /// The instance's memory when the result arrived (held workloads).
    pub memory_at_result: Option<Footprint>,
    /// What the workload observed that is not a number (the isolation probe's answers).
    pub facts: Vec<workload::record::Fact>,
}

impl Scenario {
    /// Every scenario, in the default order.
    pub const ALL: [Scenario; 12] = [
        Scenario::Startup,
        Scenario::Cpu,
        Scenario::Mem,
        Scenario::Syscall,
        Scenario::Fork,
        Scenario::File,
        Scenario::Net,
        Scenario::Footprint,
        Scenario::Exits,
        Scenario::Isolation,
        Scenario::Interference,
        Scenario::Density,
    ];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Startup => "startup",
            Scenario::Cpu => "cpu",
            Scenario::Mem => "mem",
            Scenario::Syscall => "syscall",
            Scenario::Fork => "fork",
            Scenario::File => "file",
            Scenario::Net => "net",
            Scenario::Footprint => "footprint",
            Scenario::Exits => "exits",
            Scenario::Density => "density",
            Scenario::Isolation => "isolation",
            Scenario::Interference => "interference",
        }
    }

    /// One line on what it measures.
    pub fn describe(self) -> &'static str {
        match self {
            Scenario::Startup => {
                "launch to the workload's first action, and to its exit (workload hello)"
            }
            Scenario::Cpu => {
                "SHA-256 over 64 MiB: CPU throughput, where sandboxes should cost nothing"
            }
            Scenario::Mem => "STREAM copy/scale/add/triad over 3 x 32 MiB: memory bandwidth",
            Scenario::Syscall => "200 000 getppid(2): the price of entering the kernel",
            Scenario::Fork => "200 fork+exit+wait: the price of a process",
            Scenario::File => "100 x 4 KiB files written and fsync'ed: small durable I/O",
            Scenario::Net => "10 000 TCP round trips of 64 bytes over loopback",
            Scenario::Exits => {
                "10 000 port writes from a micro guest: one VM exit's round trip (microvm only)"
            }
            Scenario::Footprint => {
                "touch 64 MiB and hold it: RSS/PSS/USS of an instance and its overhead"
            }
            Scenario::Isolation => {
                "the probe from inside: kernel, namespaces, mounts, uids, devices, capabilities \
                 and powers, each judged isolated, partly or shared against the host"
            }
            Scenario::Interference => {
                "cpu, mem, syscall and file beside a neighbour spinning, streaming memory, \
                 forking or writing files, unlimited then limited: the victim's slowdown \
                 (not in the default suite)"
            }
            Scenario::Density => {
                "1, 10, 50... instances alive at once (alloc 1 MiB, held): start latency and \
                 memory per instance as their number grows (not in the default suite)"
            }
        }
    }

    /// The workload command line.
    pub fn workload_args(self) -> Vec<String> {
        let args: &[&str] = match self {
            Scenario::Startup => &["hello"],
            Scenario::Cpu => &["cpu", "--mib", "64"],
            Scenario::Mem => &["mem", "--mib", "32", "--iterations", "5"],
            Scenario::Syscall => &["syscall", "--count", "200000"],
            Scenario::Fork => &["fork", "--count", "200"],
            Scenario::File => &["file", "--count", "100", "--size", "4096"],
            Scenario::Net => &["net", "--count", "10000", "--size", "64"],
            Scenario::Footprint => &["alloc", "--mib", "64"],
            Scenario::Exits => &["exits", "--count", "10000"],
            Scenario::Density => &["alloc", "--mib", "1"],
            Scenario::Isolation => &["probe"],
            Scenario::Interference => &[],
        };
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Measured runs when the user does not say.
    pub fn default_runs(self) -> u32 {
        match self {
            Scenario::Startup => 30,
            Scenario::Isolation => 1,
            _ => 5,
        }
    }

    /// Warmup runs when the user does not say.
    pub fn default_warmup(self) -> u32 {
        match self {
            Scenario::Startup => 3,
            Scenario::Isolation => 0,
            _ => 1,
        }
    }

    /// How long one run may take before it is killed.
    pub fn default_timeout(self) -> Duration {
        Duration::from_secs(60)
    }

    /// Whether the workload holds after its result until released.
    pub fn holds(self) -> bool {
        matches!(self, Scenario::Footprint | Scenario::Density)
    }

    /// Whether `vcbench run` runs it when no scenario is named: density holds many
    /// instances and interference runs every victim three times over, so only when asked.
    pub fn in_default_suite(self) -> bool {
        !matches!(self, Scenario::Density | Scenario::Interference)
    }

    /// The figures one successful run yields.
    pub fn values(self, obs: &Observation) -> Vec<Value> {
        // Markers are stamped by the host; the workload's own figures are timed by the
        // instance's clock (a guest's, in a VM); memory is no clock's.
        let host = Some(Clock::Host);
        let instance = Some(Clock::Instance);
        let lower = |metric: &str, unit, clock, value| Value {
            metric: metric.to_owned(),
            unit,
            better: Better::Lower,
            clock,
            value,
        };
        let higher = |metric: &str, unit, clock, value| Value {
            metric: metric.to_owned(),
            unit,
            better: Better::Higher,
            clock,
            value,
        };
        let workload = |name: &str| obs.metrics.iter().find(|m| m.name == name).map(|m| m.value);
        let kib_to_mib = |kib: u64| kib_f64(kib) / 1024.0;
        let mut values = Vec::new();
        match self {
            Scenario::Startup => {
                values.extend(
                    obs.markers
                        .started_ms
                        .map(|v| lower("time_to_start", "ms", host, v)),
                );
                values.extend(
                    obs.markers
                        .exited_ms
                        .map(|v| lower("time_to_exit", "ms", host, v)),
                );
            }
            Scenario::Cpu => values
                .extend(workload("throughput").map(|v| higher("throughput", "MiB/s", instance, v))),
            Scenario::Mem => {
                for kernel in ["copy", "scale", "add", "triad"] {
                    values.extend(workload(kernel).map(|v| higher(kernel, "MB/s", instance, v)));
                }
            }
            Scenario::Syscall => {
                values.extend(workload("ns_per_call").map(|v| lower("syscall", "ns", instance, v)))
            }
            Scenario::Fork => {
                values.extend(workload("us_per_process").map(|v| lower("fork", "µs", instance, v)))
            }
            Scenario::File => values.extend(
                workload("files_per_s").map(|v| higher("fsync_writes", "files/s", instance, v)),
            ),
            Scenario::Net => {
                values.extend(workload("rtt_us").map(|v| lower("tcp_rtt", "µs", instance, v)))
            }
            Scenario::Exits => values.extend(
                workload("ns_per_exit").map(|v| lower("exit_round_trip", "ns", instance, v)),
            ),
            // Their figures come from the whole series (see `density::figures`) or from
            // the probe's answers judged against the host's (see `isolation::figures`).
            // Interference's come from its victims' runs (see `interference`).
            Scenario::Density | Scenario::Isolation | Scenario::Interference => {}
            Scenario::Footprint => {
                let footprint = obs.memory_at_result.as_ref();
                if let Some(m) = footprint.and_then(|f| f.processes) {
                    values.push(lower("rss", "MiB", None, kib_to_mib(m.rss_kib)));
                    values.push(lower("pss", "MiB", None, kib_to_mib(m.pss_kib)));
                    values.push(lower("uss", "MiB", None, kib_to_mib(m.uss_kib)));
                    // What the instance holds beyond what its workload said it touched.
                    if let Some(touched) = workload("touched_mib") {
                        values.push(lower(
                            "overhead_rss",
                            "MiB",
                            None,
                            kib_to_mib(m.rss_kib) - touched,
                        ));
                    }
                }
                for (part, kib) in footprint.map(|f| f.parts.as_slice()).unwrap_or_default() {
                    values.push(Value {
                        metric: part.clone(),
                        unit: "MiB",
                        better: Better::Lower,
                        clock: None,
                        value: kib_to_mib(*kib),
                    });
                }
            }
        }
        if self != Scenario::Startup {
            values.extend(obs.markers.exited_ms.map(|v| lower("wall", "ms", host, v)));
        }
        values
            .extend(workload("vm_hwm_kib").map(|kib| lower("peak_rss", "MiB", None, kib / 1024.0)));
        values
    }
}

#[allow(clippy::cast_precision_loss)]
fn kib_f64(kib: u64) -> f64 {
    kib as f64
}

/// One scenario of a plan, with its run counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The scenario.
    pub scenario: Scenario,
    /// Measured runs per backend.
    pub runs: u32,
    /// Warmup runs per backend.
    pub warmup: u32,
    /// Time limit of one run.
    pub timeout: Duration,
}

impl Step {
    /// The scenario with its default counts, overridden where given.
    pub fn new(
        scenario: Scenario,
        runs: Option<u32>,
        warmup: Option<u32>,
        timeout: Option<Duration>,
    ) -> Self {
        Step {
            scenario,
            runs: runs.unwrap_or_else(|| scenario.default_runs()),
            warmup: warmup.unwrap_or_else(|| scenario.default_warmup()),
            timeout: timeout.unwrap_or_else(|| scenario.default_timeout()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::Memory;

    #[test]
    fn names_match_the_command_line() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::from_str(s.name(), false), Ok(s));
        }
    }

    #[test]
    fn startup_values_come_from_markers() {
        let obs = Observation {
            markers: Markers {
                started_ms: Some(1.5),
                exited_ms: Some(2.0),
                ..Markers::default()
            },
            metrics: vec![Metric::new("vm_hwm_kib", 2048.0, "KiB")],
            ..Observation::default()
        };
        let values = Scenario::Startup.values(&obs);
        let names: Vec<&str> = values.iter().map(|v| v.metric.as_str()).collect();
        assert_eq!(names, ["time_to_start", "time_to_exit", "peak_rss"]);
        assert_eq!(values[2].value, 2.0);
    }

    #[test]
    fn impossible_values_fail_the_run_with_the_reason() {
        let value = |metric: &str, value| Value {
            metric: metric.to_owned(),
            unit: "MiB",
            better: Better::Lower,
            clock: None,
            value,
        };
        assert!(check(&[value("rss", 1.4), value("overhead_rss", 0.0)]).is_ok());
        let refused = check(&[value("rss", 1.4), value("overhead_rss", -62.6)]).unwrap_err();
        assert!(
            refused.starts_with("overhead_rss came out as -62.60 MiB, which cannot be negative"),
            "{refused}"
        );
        assert!(check(&[value("rss", f64::NAN)]).is_err());
    }

    #[test]
    fn footprint_overhead_subtracts_the_touched_memory() {
        let obs = Observation {
            metrics: vec![Metric::new("touched_mib", 64.0, "MiB")],
            memory_at_result: Some(Footprint {
                processes: Some(Memory {
                    rss_kib: 70 * 1024,
                    pss_kib: 69 * 1024,
                    uss_kib: 68 * 1024,
                }),
                parts: vec![("cgroup_usage".to_owned(), 3 * 1024)],
            }),
            ..Observation::default()
        };
        let values = Scenario::Footprint.values(&obs);
        let overhead = values.iter().find(|v| v.metric == "overhead_rss").unwrap();
        assert_eq!(overhead.value, 6.0);
        let part = values.iter().find(|v| v.metric == "cgroup_usage").unwrap();
        assert_eq!(part.value, 3.0);
    }
}
