//! Scenarios as the harness runs them: what workload each runs, how many times by default
//! and for how long. The names, their order and their one-line summaries are the results
//! document's ([`reports::document::Scenario`]); this module adds what running one takes.
//! It is a leaf: backends and the harness both use it, it uses neither.

use std::time::Duration;

pub use reports::document::Scenario;

/// What running a scenario takes.
pub trait Run {
    /// One line on what it measures.
    fn describe(self) -> &'static str;

    /// The workload command line.
    fn workload_args(self) -> Vec<String>;

    /// Measured runs when the user does not say.
    fn default_runs(self) -> u32;

    /// Warmup runs when the user does not say.
    fn default_warmup(self) -> u32;

    /// How long one run may take before it is killed.
    fn default_timeout(self) -> Duration;

    /// Whether the workload holds after its result until released.
    fn holds(self) -> bool;
}

impl Run for Scenario {
    fn describe(self) -> &'static str {
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
            Scenario::Net => "10 000 TCP round trips of 64 bytes over the instance's own loopback",
            Scenario::Hostnet => {
                "TCP round trips and bulk throughput between a peer on the host side and the \
                 workload inside: 10 000 round trips of 64 bytes, then 64 MiB, over the \
                 run's own network namespace (root; not in the default suite)"
            }
            Scenario::Vsock => {
                "the hostnet work between a VM's guest and a peer on the host over vsock, no \
                 network: the guest's vsock device served by the host kernel (vhost-vsock; \
                 Linux guests of microvm and qemu only; not in the default suite)"
            }
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
            Scenario::Command => {
                "your own program from your image (run --image IMG -- CMD): launch to ready \
                 (--ready) and to exit (not in the default suite)"
            }
            Scenario::Warm => {
                "a sandbox prepared ahead, started on demand: a container from a pool, or a \
                 micro guest or a Linux guest after init restored from its snapshot in a new \
                 monitor; launch to the first record (a micro guest's first marker) (not in \
                 the default suite)"
            }
        }
    }

    fn workload_args(self) -> Vec<String> {
        let args: &[&str] = match self {
            Scenario::Startup | Scenario::Warm => &["hello"],
            Scenario::Cpu => &["cpu", "--mib", "64"],
            Scenario::Mem => &["mem", "--mib", "32", "--iterations", "5"],
            Scenario::Syscall => &["syscall", "--count", "200000"],
            Scenario::Fork => &["fork", "--count", "200"],
            Scenario::File => &["file", "--count", "100", "--size", "4096"],
            Scenario::Net => &["net", "--count", "10000", "--size", "64"],
            // The peer (and a VM's interface) are added by the backend joined to the run's
            // network.
            // The peer's vsock port is added by the backend set to reach it.
            Scenario::Hostnet | Scenario::Vsock => &[
                "hostnet",
                "--count",
                "10000",
                "--size",
                "64",
                "--bulk-mib",
                "64",
            ],
            Scenario::Footprint => &["alloc", "--mib", "64"],
            Scenario::Exits => &["exits", "--count", "10000"],
            Scenario::Density => &["alloc", "--mib", "1"],
            Scenario::Isolation => &["probe"],
            // Their lines come from the plan: the density options, the victims, the
            // user's command.
            Scenario::Interference | Scenario::Command => &[],
        };
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    fn default_runs(self) -> u32 {
        match self {
            Scenario::Startup | Scenario::Warm => 30,
            Scenario::Command => 10,
            Scenario::Isolation => 1,
            _ => 5,
        }
    }

    fn default_warmup(self) -> u32 {
        match self {
            Scenario::Startup | Scenario::Warm => 3,
            Scenario::Isolation => 0,
            _ => 1,
        }
    }

    fn default_timeout(self) -> Duration {
        Duration::from_secs(60)
    }

    fn holds(self) -> bool {
        matches!(self, Scenario::Footprint | Scenario::Density)
    }
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

    #[test]
    fn every_scenario_has_a_description_and_defaults() {
        for s in Scenario::ALL {
            assert!(!s.describe().is_empty(), "{s}");
            assert!(s.default_runs() >= 1, "{s}");
            assert_eq!(s.name().parse::<Scenario>(), Ok(*s));
        }
    }
}
