//! The figures one successful run yields, from what the runner observed of it, and the
//! check that refuses impossible values.

use crate::backend::Footprint;
use crate::results::{Better, Clock, Markers};
use crate::scenario::Scenario;
use reports::document::Metric as Name;
use workload::record::Metric;

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
    /// The backend's counters, once the instance had exited.
    pub counters: Vec<(String, u64)>,
}

/// The figures one successful run of `scenario` yields.
pub fn values(scenario: Scenario, obs: &Observation) -> Vec<Value> {
    // Markers are stamped by the host; the workload's own figures are timed by the
    // instance's clock (a guest's, in a VM); memory is no clock's.
    let host = Some(Clock::Host);
    let instance = Some(Clock::Instance);
    let value = |better| {
        move |metric: Name, unit, clock, value| Value {
            metric: metric.name().to_owned(),
            unit,
            better,
            clock,
            value,
        }
    };
    let (lower, higher) = (value(Better::Lower), value(Better::Higher));
    let workload = |name: &str| obs.metrics.iter().find(|m| m.name == name).map(|m| m.value);
    let kib_to_mib = |kib: u64| kib_f64(kib) / 1024.0;
    let mut values = Vec::new();
    match scenario {
        Scenario::Startup => {
            values.extend(
                obs.markers
                    .started_ms
                    .map(|v| lower(Name::TimeToStart, "ms", host, v)),
            );
            values.extend(
                obs.markers
                    .exited_ms
                    .map(|v| lower(Name::TimeToExit, "ms", host, v)),
            );
        }
        Scenario::Warm => {
            values.extend(
                obs.markers
                    .started_ms
                    .map(|v| lower(Name::WarmStart, "ms", host, v)),
            );
            // What a sandbox kept waiting holds, where the backend keeps a pool.
            values.extend(
                obs.counters
                    .iter()
                    .find(|(name, _)| name == "pool_idle_kib_per_sandbox")
                    .map(|&(_, kib)| lower(Name::IdleSandboxMemory, "MiB", None, kib_to_mib(kib))),
            );
        }
        Scenario::Command => {
            for (metric, at) in [
                (Name::TimeToStart, obs.markers.started_ms),
                (Name::TimeToReady, obs.markers.result_ms),
                (Name::TimeToExit, obs.markers.exited_ms),
            ] {
                values.extend(at.map(|v| lower(metric, "ms", host, v)));
            }
            // A service held once ready: the instance's memory while it serves.
            let footprint = obs.memory_at_result.as_ref();
            if let Some(m) = footprint.and_then(|f| f.processes) {
                values.push(lower(Name::Rss, "MiB", None, kib_to_mib(m.rss_kib)));
                values.push(lower(Name::Pss, "MiB", None, kib_to_mib(m.pss_kib)));
                values.push(lower(Name::Uss, "MiB", None, kib_to_mib(m.uss_kib)));
            }
            for (part, kib) in footprint.map(|f| f.parts.as_slice()).unwrap_or_default() {
                values.push(Value {
                    metric: part.name().to_owned(),
                    unit: "MiB",
                    better: Better::Lower,
                    clock: None,
                    value: kib_to_mib(*kib),
                });
            }
        }
        Scenario::Cpu => values
            .extend(workload("throughput").map(|v| higher(Name::Throughput, "MiB/s", instance, v))),
        Scenario::Mem => {
            for kernel in [Name::Copy, Name::Scale, Name::Add, Name::Triad] {
                values.extend(workload(kernel.name()).map(|v| higher(kernel, "MB/s", instance, v)));
            }
        }
        Scenario::Syscall => {
            values.extend(workload("ns_per_call").map(|v| lower(Name::Syscall, "ns", instance, v)))
        }
        Scenario::Fork => {
            values.extend(workload("us_per_process").map(|v| lower(Name::Fork, "µs", instance, v)))
        }
        Scenario::File => {
            values.extend(
                workload("files_per_s").map(|v| higher(Name::FsyncWrites, "files/s", instance, v)),
            );
            values.extend(per_operation(obs, "disk"));
        }
        Scenario::Net => {
            values.extend(workload("rtt_us").map(|v| lower(Name::TcpRtt, "µs", instance, v)))
        }
        Scenario::Hostnet => {
            values.extend(workload("rtt_us").map(|v| lower(Name::HostTcpRtt, "µs", instance, v)));
            values.extend(
                workload("bulk_mib_per_s").map(|v| higher(Name::HostTcpBulk, "MiB/s", instance, v)),
            );
            values.extend(per_operation(obs, "net"));
        }
        // The data path is in the host kernel (vhost-vsock): the monitor sees no device
        // work to count per operation.
        Scenario::Vsock => {
            values.extend(workload("rtt_us").map(|v| lower(Name::HostVsockRtt, "µs", instance, v)));
            values.extend(
                workload("bulk_mib_per_s")
                    .map(|v| higher(Name::HostVsockBulk, "MiB/s", instance, v)),
            );
        }
        Scenario::Exits => values
            .extend(workload("ns_per_exit").map(|v| lower(Name::ExitRoundTrip, "ns", instance, v))),
        // Their figures come from the whole series (see `density::figures`) or from
        // the probe's answers judged against the host's (see `isolation::figures`).
        // Interference's come from its victims' runs (see `interference`).
        Scenario::Density | Scenario::Isolation | Scenario::Interference => {}
        Scenario::Footprint => {
            let footprint = obs.memory_at_result.as_ref();
            if let Some(m) = footprint.and_then(|f| f.processes) {
                values.push(lower(Name::Rss, "MiB", None, kib_to_mib(m.rss_kib)));
                values.push(lower(Name::Pss, "MiB", None, kib_to_mib(m.pss_kib)));
                values.push(lower(Name::Uss, "MiB", None, kib_to_mib(m.uss_kib)));
                // What the instance holds beyond what its workload said it touched.
                if let Some(touched) = workload("touched_mib") {
                    values.push(lower(
                        Name::OverheadRss,
                        "MiB",
                        None,
                        kib_to_mib(m.rss_kib) - touched,
                    ));
                }
            }
            for (part, kib) in footprint.map(|f| f.parts.as_slice()).unwrap_or_default() {
                values.push(Value {
                    metric: part.name().to_owned(),
                    unit: "MiB",
                    better: Better::Lower,
                    clock: None,
                    value: kib_to_mib(*kib),
                });
            }
        }
    }
    // Startup and the user's command have their own time to exit.
    if !matches!(scenario, Scenario::Startup | Scenario::Command) {
        values.extend(
            obs.markers
                .exited_ms
                .map(|v| lower(Name::Wall, "ms", host, v)),
        );
    }
    values
        .extend(workload("vm_hwm_kib").map(|kib| lower(Name::PeakRss, "MiB", None, kib / 1024.0)));
    values
}

/// A VM device's counts per operation of the work (the workload's `operations`): its
/// notifications, each a VM exit of the guest's (caught by KVM's ioeventfd or by the
/// monitor), and its interrupts, each an injection into the guest. The device is the one
/// whose counters the monitor reports as `<device>_notifications` and
/// `<device>_interrupts` (`disk`, `net`); over the guest's whole life, so the disk's
/// mount and unmount are counted too. For the network device, whose side the monitor
/// counts whole, also the host system calls it made: its `read`s and `write`s on the tap,
/// its thread's returns from `epoll_wait`, and an eventfd `read` per notification and
/// `write` per interrupt. Nothing where there are no such counters.
fn per_operation(obs: &Observation, device: &str) -> Vec<Value> {
    let Some(operations) = obs
        .metrics
        .iter()
        .find(|m| m.name == "operations")
        .map(|m| m.value)
        .filter(|n| *n > 0.0)
    else {
        return Vec::new();
    };
    let counter = |what: &str| {
        let name = format!("{device}_{what}");
        obs.counters
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, count)| kib_f64(count))
    };
    let syscalls = match device {
        "net" => [
            "tap_reads",
            "tap_writes",
            "thread_wakeups",
            "notifications",
            "interrupts",
        ]
        .into_iter()
        .map(counter)
        .sum::<Option<f64>>(),
        _ => None,
    };
    [
        (Name::DeviceExitsPerOp, counter("notifications")),
        (Name::DeviceInterruptsPerOp, counter("interrupts")),
        (Name::DeviceSyscallsPerOp, syscalls),
    ]
    .into_iter()
    .filter_map(|(metric, count)| {
        Some(Value {
            metric: metric.name().to_owned(),
            unit: "per operation",
            better: Better::Lower,
            clock: None,
            value: count? / operations,
        })
    })
    .collect()
}

#[allow(clippy::cast_precision_loss)]
fn kib_f64(kib: u64) -> f64 {
    kib as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::Memory;
    use reports::document::Part;

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
        let values = values(Scenario::Startup, &obs);
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
    fn hostnet_has_its_two_figures_and_a_vm_its_device_counts_per_operation() {
        let mut obs = Observation {
            metrics: vec![
                Metric::new("rtt_us", 21.5, "µs"),
                Metric::new("bulk_mib_per_s", 900.0, "MiB/s"),
                Metric::new("operations", 11_024.0, "operations"),
            ],
            ..Observation::default()
        };
        let got = |obs: &Observation, scenario| -> Vec<(String, f64)> {
            values(scenario, obs)
                .into_iter()
                .map(|v| (v.metric, v.value))
                .collect()
        };
        // A process has no device counters: the two figures only.
        assert_eq!(
            got(&obs, Scenario::Hostnet),
            [
                ("host_tcp_rtt".to_owned(), 21.5),
                ("host_tcp_bulk".to_owned(), 900.0)
            ]
        );
        obs.counters = vec![
            ("net_notifications".to_owned(), 22_048),
            ("net_interrupts".to_owned(), 11_024),
            ("disk_notifications".to_owned(), 7),
        ];
        let vm = got(&obs, Scenario::Hostnet);
        assert!(
            vm.contains(&("device_exits_per_op".to_owned(), 2.0)),
            "{vm:?}"
        );
        assert!(
            vm.contains(&("device_interrupts_per_op".to_owned(), 1.0)),
            "{vm:?}"
        );
        // The device's system calls only with every one of its counts.
        assert!(
            !vm.iter().any(|(m, _)| m == "device_syscalls_per_op"),
            "{vm:?}"
        );
        obs.counters.extend([
            ("net_tap_reads".to_owned(), 11_024),
            ("net_tap_writes".to_owned(), 11_024),
            ("net_thread_wakeups".to_owned(), 11_024),
        ]);
        let vm = got(&obs, Scenario::Hostnet);
        assert!(
            vm.contains(&("device_syscalls_per_op".to_owned(), 6.0)),
            "{vm:?}"
        );
        // The file work counts the disk's.
        obs.metrics = vec![
            Metric::new("files_per_s", 500.0, "files/s"),
            Metric::new("operations", 100.0, "operations"),
        ];
        obs.counters = vec![("disk_notifications".to_owned(), 350)];
        let file = got(&obs, Scenario::File);
        assert_eq!(
            file,
            [
                ("fsync_writes".to_owned(), 500.0),
                ("device_exits_per_op".to_owned(), 3.5)
            ]
        );
    }

    #[test]
    fn a_warm_start_has_its_pools_idle_memory_beside_it() {
        let obs = Observation {
            markers: Markers {
                started_ms: Some(0.5),
                ..Markers::default()
            },
            counters: vec![("pool_idle_kib_per_sandbox".to_owned(), 512)],
            ..Observation::default()
        };
        let values = values(Scenario::Warm, &obs);
        let got: Vec<(&str, f64)> = values
            .iter()
            .map(|v| (v.metric.as_str(), v.value))
            .collect();
        assert_eq!(
            got[..2],
            [("warm_start", 0.5), ("idle_memory_per_sandbox", 0.5)]
        );
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
                parts: vec![(Part::CgroupMemory, 3 * 1024)],
            }),
            ..Observation::default()
        };
        let values = values(Scenario::Footprint, &obs);
        let overhead = values.iter().find(|v| v.metric == "overhead_rss").unwrap();
        assert_eq!(overhead.value, 6.0);
        let part = values.iter().find(|v| v.metric == "cgroup_memory").unwrap();
        assert_eq!(part.value, 3.0);
    }
}
