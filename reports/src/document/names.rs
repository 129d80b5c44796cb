//! The names a figure is addressed by, defined once: backends, scenarios, the fixed
//! metrics and the parts of an instance's memory. `vcbench` produces figures under these
//! names and the reports look them up by them, so the two cannot drift apart.
//!
//! The document itself keeps names as text ([`super::Figure::backend`] and the rest): a
//! reader must still read documents written by other versions, which may name backends or
//! metrics this one does not know. Metrics that are not fixed are named by what produced
//! them: an isolation check's name, or an interference figure's victim, metric and
//! neighbour (`cpu_throughput_beside_cpu_spin`).

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A name that is not one of an enumeration's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {given:?} is not one of {allowed}")]
pub struct UnknownName {
    /// What kind of name it is ("backend", "scenario", ...).
    pub what: &'static str,
    /// The text given.
    pub given: String,
    /// The names that are known, comma-separated.
    pub allowed: String,
}

/// Defines an enumeration of names: its `ALL`, `NAMES`, `name()`, `FromStr` and `Display`,
/// all from one list, so a variant cannot be missing from one of them.
macro_rules! names {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( #[doc = $doc:literal] $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(Serialize, Deserialize, JsonSchema)]
        $vis enum $name {
            $( #[doc = $doc] #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every one, in the order they are listed (and run).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every one's name, in the same order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name used on the command line and in documents.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// What it is, in one line: its documentation, without the closing period.
            pub fn summary(self) -> &'static str {
                match self {
                    $($name::$variant => $doc.trim_ascii().trim_end_matches('.'),)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(text: &str) -> Result<Self, UnknownName> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        what: $what,
                        given: text.to_owned(),
                        allowed: Self::NAMES.join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.name()
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == other.name()
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.name()
            }
        }
    };
}

names! {
    /// A way of running the workload.
    pub enum Backend ("backend") {
        /// A plain process on the host: the baseline.
        Native = "native",
        /// vcbench's own namespace container.
        Container = "container",
        /// vcbench's own KVM monitor.
        Microvm = "microvm",
        /// The runc OCI runtime.
        Runc = "runc",
        /// The crun OCI runtime.
        Crun = "crun",
        /// The podman container engine, on the OCI runtime it is set up with.
        Podman = "podman",
        /// gVisor's runsc: the workload on a kernel in user space.
        Gvisor = "gvisor",
        /// QEMU's microvm machine with KVM.
        Qemu = "qemu",
    }
}

names! {
    /// A measurement scenario.
    pub enum Scenario ("scenario") {
        /// Time from launch to the workload's first action, and to its exit.
        Startup = "startup",
        /// SHA-256 throughput: pure CPU work.
        Cpu = "cpu",
        /// STREAM memory bandwidth.
        Mem = "mem",
        /// Cost of one system call.
        Syscall = "syscall",
        /// Cost of creating a process.
        Fork = "fork",
        /// Small synchronous file writes.
        File = "file",
        /// TCP round trips over the instance's own loopback.
        Net = "net",
        /// TCP round trips and bulk throughput with a peer on the host side: I/O across the boundary.
        Hostnet = "hostnet",
        /// The hostnet work between a VM's guest and its host over vsock, with no network.
        Vsock = "vsock",
        /// Memory an instance costs beyond the memory its workload touches.
        Footprint = "footprint",
        /// The round trip of one VM exit (microVM only).
        Exits = "exits",
        /// What an instance sees of its host and may do, against the host's own view.
        Isolation = "isolation",
        /// A victim's slowdown beside a noisy neighbour, with and without limits.
        Interference = "interference",
        /// Many instances alive at once: what each costs as their number grows.
        Density = "density",
        /// The user's own program from the user's image: launch to ready, and to exit.
        Command = "command",
        /// A sandbox prepared ahead and started on demand (a VM restored from a snapshot).
        Warm = "warm",
    }
}

impl Scenario {
    /// Whether its workload is a Linux program measuring itself (a VM runs it only with a
    /// Linux guest): the runtime-overhead scenarios.
    pub fn is_program(self) -> bool {
        matches!(
            self,
            Scenario::Cpu
                | Scenario::Mem
                | Scenario::Syscall
                | Scenario::Fork
                | Scenario::File
                | Scenario::Net
                | Scenario::Hostnet
                | Scenario::Vsock
        )
    }

    /// Whether `vcbench run` runs it when no scenario is named: density holds many
    /// instances and interference runs every victim three times over, so only when asked.
    pub fn in_default_suite(self) -> bool {
        !matches!(
            self,
            Scenario::Density
                | Scenario::Interference
                | Scenario::Command
                | Scenario::Warm
                | Scenario::Hostnet
                | Scenario::Vsock
        )
    }
}

names! {
    /// A fixed metric: one a scenario yields under this name on every backend.
    pub enum Metric ("metric") {
        /// Launch to the workload's first record (ms, host clock).
        TimeToStart = "time_to_start",
        /// Launch to the workload's exit (ms, host clock).
        TimeToExit = "time_to_exit",
        /// Launch to the user's program being ready, as its --ready says (ms, host clock).
        TimeToReady = "time_to_ready",
        /// Launch of a sandbox prepared ahead to its workload's first record (ms, host clock).
        WarmStart = "warm_start",
        /// What one waiting sandbox of a warm pool holds, as its cgroup counts it (MiB).
        IdleSandboxMemory = "idle_memory_per_sandbox",
        /// Launch to the workload's exit, for scenarios other than startup (ms).
        Wall = "wall",
        /// The workload's peak resident memory (MiB).
        PeakRss = "peak_rss",
        /// SHA-256 throughput (MiB/s).
        Throughput = "throughput",
        /// STREAM copy (MB/s).
        Copy = "copy",
        /// STREAM scale (MB/s).
        Scale = "scale",
        /// STREAM add (MB/s).
        Add = "add",
        /// STREAM triad (MB/s).
        Triad = "triad",
        /// One system call (ns).
        Syscall = "syscall",
        /// One fork, exit and wait (µs).
        Fork = "fork",
        /// Small files written and fsync'ed per second.
        FsyncWrites = "fsync_writes",
        /// One TCP round trip over the instance's own loopback (µs).
        TcpRtt = "tcp_rtt",
        /// One TCP round trip of 64 bytes with the peer on the host side (µs).
        HostTcpRtt = "host_tcp_rtt",
        /// Bulk TCP throughput to the peer on the host side (MiB/s).
        HostTcpBulk = "host_tcp_bulk",
        /// One round trip of 64 bytes over vsock with the peer on the host (µs).
        HostVsockRtt = "host_vsock_rtt",
        /// Bulk throughput over vsock to the peer on the host (MiB/s).
        HostVsockBulk = "host_vsock_bulk",
        /// A VM's device notifications (each a VM exit of the guest's) per operation.
        DeviceExitsPerOp = "device_exits_per_op",
        /// A VM's device interrupts (each an injection into the guest) per operation.
        DeviceInterruptsPerOp = "device_interrupts_per_op",
        /// The host system calls a VM's network device made per operation.
        DeviceSyscallsPerOp = "device_syscalls_per_op",
        /// One VM exit's round trip (ns).
        ExitRoundTrip = "exit_round_trip",
        /// Resident memory of the instance's host processes (MiB).
        Rss = "rss",
        /// Proportional set size of the instance's host processes (MiB).
        Pss = "pss",
        /// Unique set size of the instance's host processes (MiB).
        Uss = "uss",
        /// RSS beyond what the workload touched (MiB).
        OverheadRss = "overhead_rss",
        /// Density: launch to first record as instances pile up (ms).
        StartLatency = "start_latency",
        /// Density: PSS per instance (MiB).
        PssPerInstance = "pss_per_instance",
        /// Density: USS per instance (MiB).
        UssPerInstance = "uss_per_instance",
        /// Density: PSS each further instance adds (MiB).
        MarginalPss = "marginal_pss",
        /// Density: host memory each further instance takes, kernel's included (MiB).
        MarginalHostMemory = "marginal_host_memory",
        /// Density: instances alive at once before the series stopped.
        InstancesReached = "instances_reached",
        /// Density: tearing every instance down (ms).
        Teardown = "teardown",
    }
}

names! {
    /// A part of an instance's memory that its backend can name on its own.
    pub enum Part ("memory part") {
        /// The container cgroup's memory usage, kernel memory included.
        CgroupMemory = "cgroup_memory",
        /// Guest memory the guest touched (resident in the monitor).
        GuestTouched = "guest_touched",
        /// The monitor's resident memory beyond the guest's.
        MonitorOverhead = "monitor_overhead",
        /// The workload's memory in gVisor's Sentry: the allocated pages of its memory file.
        MemoryFile = "memory_file",
        /// gVisor's Sentry and its stub processes: their resident memory beyond the memory file.
        SentryOverhead = "sentry_overhead",
        /// gVisor's Gofer (the sandbox's file proxy): its resident memory.
        GoferOverhead = "gofer_overhead",
        /// A container engine's own processes for the instance (podman and its conmon), resident.
        EngineOverhead = "engine_overhead",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>(), Ok(*b));
            assert_eq!(serde_json::to_string(b).unwrap(), format!("\"{b}\""));
        }
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>(), Ok(*s));
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        for m in Metric::ALL {
            assert_eq!(m.name().parse::<Metric>(), Ok(*m));
        }
        for p in Part::ALL {
            assert_eq!(serde_json::to_string(p).unwrap(), format!("\"{p}\""));
        }
    }

    #[test]
    fn a_summary_is_the_documentation() {
        assert_eq!(
            Scenario::Startup.summary(),
            "Time from launch to the workload's first action, and to its exit"
        );
        assert_eq!(
            Part::GuestTouched.summary(),
            "Guest memory the guest touched (resident in the monitor)"
        );
    }

    #[test]
    fn an_unknown_name_says_what_is_allowed() {
        let err = "firecracker".parse::<Backend>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend \"firecracker\" is not one of native, container, microvm, runc, crun, podman, gvisor, \
             qemu"
        );
    }

    #[test]
    fn text_compares_with_names() {
        assert!("native" == Backend::Native);
        let name = "startup".to_owned();
        assert!(name == Scenario::Startup);
        assert!("rss" != Metric::Pss);
    }
}
