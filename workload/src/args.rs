//! The command line: `workload <subcommand> [--option value]...`.
//!
//! Parsed by hand rather than with a library: the program must start in microseconds,
//! as PID 1 in an empty root file system, and its grammar is tiny.

use std::path::PathBuf;

/// A bad command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    /// No subcommand was given.
    #[error("no workload given")]
    Missing,
    /// The subcommand is not one of ours.
    #[error("unknown workload {0:?}")]
    UnknownWorkload(String),
    /// An option this workload does not take.
    #[error("workload {workload} takes no option {option:?}")]
    UnknownOption {
        /// The workload.
        workload: &'static str,
        /// The option given.
        option: String,
    },
    /// An option without its value.
    #[error("option {0} needs a value")]
    MissingValue(String),
    /// A value that is not one of the allowed words.
    #[error("option {option} must be one of {allowed}, not {value:?}")]
    BadChoice {
        /// The option.
        option: String,
        /// What was given.
        value: String,
        /// The words it takes.
        allowed: String,
    },
    /// A value that is not a positive whole number.
    #[error("option {option} must be a positive whole number, not {value:?}")]
    BadNumber {
        /// The option.
        option: String,
        /// What was given.
        value: String,
    },
}

/// The workloads, with their parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// Announce start and exit.
    Hello,
    /// SHA-256 over `mib` MiB.
    Cpu {
        /// MiB to hash.
        mib: u64,
    },
    /// STREAM copy/scale/add/triad over three arrays of `mib` MiB each.
    Mem {
        /// Size of each array in MiB.
        mib: u64,
        /// Passes over the four kernels; the best pass counts.
        iterations: u64,
    },
    /// `count` getppid(2) calls.
    Syscall {
        /// Calls to make.
        count: u64,
    },
    /// `count` fork + exit + wait.
    Fork {
        /// Processes to create.
        count: u64,
    },
    /// Write and fsync `count` files of `size` bytes in a scratch directory under `dir`.
    File {
        /// Files to write.
        count: u64,
        /// Bytes per file.
        size: u64,
        /// Where the scratch directory goes.
        dir: PathBuf,
    },
    /// `count` TCP round trips of `size` bytes over loopback.
    Net {
        /// Round trips.
        count: u64,
        /// Message size in bytes.
        size: u64,
    },
    /// Look around from inside: what the instance sees of the host and what it may do.
    Probe,
    /// Touch `mib` MiB and hold it until signalled (or for `hold_ms`, when non-zero).
    Alloc {
        /// MiB to touch.
        mib: u64,
        /// Milliseconds to hold before exiting on its own; 0 waits for a signal.
        hold_ms: u64,
    },
    /// Fail on purpose, one way or another, to test how failures are handled.
    Fault {
        /// How.
        kind: FaultKind,
        /// Processes (`forkbomb`) or MiB (`oom`) at which it gives up by itself.
        limit: u64,
    },
}

/// The ways `fault` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Dies of SIGSEGV after starting.
    Segv,
    /// Exits with status 3 after starting, without a result.
    Exit,
    /// Writes without end and without line endings on standard output and error.
    Flood,
    /// Starts, then waits forever.
    Hang,
    /// Waits forever before its first record: it never starts.
    Mute,
    /// Forks processes that never end, until fork fails (or `--limit` of them).
    Forkbomb,
    /// Touches memory without end, until killed (or `--limit` MiB).
    Oom,
}

impl FaultKind {
    /// Every kind with its name.
    pub const ALL: [(&'static str, FaultKind); 7] = [
        ("segv", FaultKind::Segv),
        ("exit", FaultKind::Exit),
        ("flood", FaultKind::Flood),
        ("hang", FaultKind::Hang),
        ("mute", FaultKind::Mute),
        ("forkbomb", FaultKind::Forkbomb),
        ("oom", FaultKind::Oom),
    ];

    fn parse(text: &str) -> Result<Self, UsageError> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| UsageError::BadChoice {
                option: "--kind".to_owned(),
                value: text.to_owned(),
                allowed: Self::ALL
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl Workload {
    /// The subcommand name.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Hello => "hello",
            Workload::Cpu { .. } => "cpu",
            Workload::Mem { .. } => "mem",
            Workload::Syscall { .. } => "syscall",
            Workload::Fork { .. } => "fork",
            Workload::File { .. } => "file",
            Workload::Net { .. } => "net",
            Workload::Alloc { .. } => "alloc",
            Workload::Probe => "probe",
            Workload::Fault { .. } => "fault",
        }
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// What to run.
    pub workload: Workload,
}

/// Option names and defaults of each workload.
fn options_of(workload: &str) -> Option<&'static [(&'static str, &'static str)]> {
    Some(match workload {
        "hello" => &[],
        "cpu" => &[("--mib", "64")],
        "mem" => &[("--mib", "32"), ("--iterations", "5")],
        "syscall" => &[("--count", "200000")],
        "fork" => &[("--count", "200")],
        "file" => &[("--count", "100"), ("--size", "4096"), ("--dir", "")],
        "net" => &[("--count", "10000"), ("--size", "64")],
        "alloc" => &[("--mib", "64"), ("--hold-ms", "0")],
        "probe" => &[],
        "fault" => &[("--kind", ""), ("--limit", "4096")],
        _ => return None,
    })
}

/// Looks up a parsed option.
struct Values<'a> {
    given: Vec<(&'static str, &'a str)>,
}

impl Values<'_> {
    fn text(&self, option: &str) -> &str {
        self.given
            .iter()
            .rev()
            .find(|(name, _)| *name == option)
            .map_or("", |(_, v)| v)
    }

    fn number(&self, option: &str) -> Result<u64, UsageError> {
        let value = self.text(option);
        value
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0 || option == "--hold-ms")
            .ok_or_else(|| UsageError::BadNumber {
                option: option.to_owned(),
                value: value.to_owned(),
            })
    }
}

impl Args {
    /// Parses the arguments after the program name; `Ok(None)` means help was asked for.
    pub fn parse(argv: &[String]) -> Result<Option<Self>, UsageError> {
        let Some(name) = argv.first() else {
            return Err(UsageError::Missing);
        };
        if matches!(name.as_str(), "-h" | "--help" | "help") {
            return Ok(None);
        }
        let known = options_of(name).ok_or_else(|| UsageError::UnknownWorkload(name.clone()))?;
        let workload_name = WORKLOADS
            .iter()
            .map(|(n, _)| *n)
            .find(|n| n == name)
            .unwrap_or("hello");
        let mut given: Vec<(&'static str, &str)> = known.to_vec();
        let mut rest = argv[1..].iter();
        while let Some(arg) = rest.next() {
            if matches!(arg.as_str(), "-h" | "--help") {
                return Ok(None);
            }
            let (option, inline) = match arg.split_once('=') {
                Some((o, v)) => (o, Some(v)),
                None => (arg.as_str(), None),
            };
            let Some(&(known_name, _)) = known.iter().find(|(n, _)| *n == option) else {
                return Err(UsageError::UnknownOption {
                    workload: workload_name,
                    option: arg.clone(),
                });
            };
            let value = match inline {
                Some(v) => v,
                None => rest
                    .next()
                    .ok_or_else(|| UsageError::MissingValue(option.to_owned()))?,
            };
            given.push((known_name, value));
        }
        let v = Values { given };
        let workload = match workload_name {
            "cpu" => Workload::Cpu {
                mib: v.number("--mib")?,
            },
            "mem" => Workload::Mem {
                mib: v.number("--mib")?,
                iterations: v.number("--iterations")?,
            },
            "syscall" => Workload::Syscall {
                count: v.number("--count")?,
            },
            "fork" => Workload::Fork {
                count: v.number("--count")?,
            },
            "file" => Workload::File {
                count: v.number("--count")?,
                size: v.number("--size")?,
                dir: match v.text("--dir") {
                    "" => std::env::temp_dir(),
                    dir => PathBuf::from(dir),
                },
            },
            "net" => Workload::Net {
                count: v.number("--count")?,
                size: v.number("--size")?,
            },
            "alloc" => Workload::Alloc {
                mib: v.number("--mib")?,
                hold_ms: v.number("--hold-ms")?,
            },
            "probe" => Workload::Probe,
            "fault" => Workload::Fault {
                kind: FaultKind::parse(v.text("--kind"))?,
                limit: v.number("--limit")?,
            },
            _ => Workload::Hello,
        };
        Ok(Some(Args { workload }))
    }
}

/// Every workload with one line of explanation, in usage order.
const WORKLOADS: [(&str, &str); 10] = [
    ("hello", "announce start and exit"),
    ("cpu", "SHA-256 over --mib MiB; MiB/s"),
    (
        "mem",
        "STREAM copy/scale/add/triad over 3 arrays of --mib MiB, best of --iterations; MB/s",
    ),
    ("syscall", "--count getppid(2) calls; ns per call"),
    ("fork", "--count fork+exit+wait; µs per process"),
    (
        "file",
        "write and fsync --count files of --size bytes under --dir (default $TMPDIR); files/s",
    ),
    (
        "net",
        "--count TCP round trips of --size bytes over loopback; µs per round trip",
    ),
    (
        "alloc",
        "touch --mib MiB, report, hold until SIGTERM/SIGINT/SIGUSR1 or --hold-ms",
    ),
    (
        "probe",
        "what the instance sees of its host and may do (kernel, namespaces, mounts, powers)",
    ),
    (
        "fault",
        "fail on purpose, --kind segv|exit|flood|hang|mute|forkbomb|oom; forkbomb and oom \
         give up at --limit processes or MiB",
    ),
];

/// The help text.
pub fn usage() -> String {
    let mut text = String::from(
        "usage: workload <workload> [--option value]...\n\n\
         Writes `@vcbench {json}` records on the channel named by VCBENCH_CHANNEL\n\
         (stdout, stderr, fd:N, path:FILE; default stdout). As PID 1 it mounts /proc, /sys\n\
         and /dev, reaps children, and with VCBENCH_EXIT=poweroff powers off at the end.\n\nworkloads:\n",
    );
    for (name, help) in WORKLOADS {
        let defaults: Vec<String> = options_of(name)
            .unwrap_or(&[])
            .iter()
            .filter(|(_, d)| !d.is_empty())
            .map(|(o, d)| format!("{o} {d}"))
            .collect();
        text.push_str(&format!("  {name:<8} {help}\n"));
        if !defaults.is_empty() {
            text.push_str(&format!("           defaults: {}\n", defaults.join(", ")));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, UsageError> {
        Args::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(
            parse(&["cpu"]).unwrap().unwrap().workload,
            Workload::Cpu { mib: 64 }
        );
        assert_eq!(
            parse(&["mem", "--mib", "8", "--iterations=2"])
                .unwrap()
                .unwrap()
                .workload,
            Workload::Mem {
                mib: 8,
                iterations: 2
            }
        );
        assert_eq!(
            parse(&["alloc", "--hold-ms", "0"])
                .unwrap()
                .unwrap()
                .workload,
            Workload::Alloc {
                mib: 64,
                hold_ms: 0
            }
        );
    }

    #[test]
    fn bad_lines_are_rejected() {
        assert_eq!(parse(&[]), Err(UsageError::Missing));
        assert!(matches!(
            parse(&["nope"]),
            Err(UsageError::UnknownWorkload(_))
        ));
        assert!(matches!(
            parse(&["cpu", "--count", "3"]),
            Err(UsageError::UnknownOption { .. })
        ));
        assert!(matches!(
            parse(&["cpu", "--mib"]),
            Err(UsageError::MissingValue(_))
        ));
        assert!(matches!(
            parse(&["cpu", "--mib", "0"]),
            Err(UsageError::BadNumber { .. })
        ));
        assert!(matches!(
            parse(&["cpu", "--mib", "-3"]),
            Err(UsageError::BadNumber { .. })
        ));
    }

    #[test]
    fn faults_are_named() {
        assert_eq!(
            parse(&["fault", "--kind", "oom", "--limit", "64"])
                .unwrap()
                .unwrap()
                .workload,
            Workload::Fault {
                kind: FaultKind::Oom,
                limit: 64
            }
        );
        assert!(matches!(
            parse(&["fault"]),
            Err(UsageError::BadChoice { .. })
        ));
        let Err(e) = parse(&["fault", "--kind", "boom"]) else {
            panic!("an unknown kind was accepted");
        };
        assert!(e.to_string().contains("segv, exit"), "{e}");
    }

    #[test]
    fn help_is_not_an_error() {
        assert_eq!(parse(&["--help"]), Ok(None));
        assert_eq!(parse(&["net", "-h"]), Ok(None));
        assert!(usage().contains("alloc"));
    }
}
