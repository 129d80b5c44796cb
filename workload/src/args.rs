//! The command line: `workload <workload> [--option value]...`.
//!
//! Each workload is defined once, as a [`Spec`]: its name, one line on what it does, its
//! options (each with its kind, range, default and help) and how their values make the
//! [`Workload`]. Parsing, the checks on each value and the usage text all read that one
//! definition, and [`Workload::spec`] and [`SPECS`] are made from a single list, so a
//! workload cannot be left out of either.
//!
//! The arguments are split by `lexopt`, a small parser without dependencies: the program
//! starts as PID 1 in containers and microVMs, where every microsecond shows.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use lexopt::Arg;

/// A bad command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    /// No subcommand was given.
    #[error("no workload given; the workloads are {}", workload_names())]
    Missing,
    /// The subcommand is not one of ours.
    #[error("unknown workload {0:?}; the workloads are {names}", names = workload_names())]
    UnknownWorkload(String),
    /// An option this workload does not take.
    #[error("workload {workload} takes no option {option:?}; {}", options_of(.workload))]
    UnknownOption {
        /// The workload.
        workload: &'static str,
        /// The option given.
        option: String,
    },
    /// A word that is neither an option nor an option's value.
    #[error(
        "workload {workload} takes no argument {argument:?}; options are written \
         --option value; {}",
        options_of(.workload)
    )]
    UnexpectedArgument {
        /// The workload.
        workload: &'static str,
        /// The word given.
        argument: String,
    },
    /// An option that must be given was not.
    #[error("option {0} must be given")]
    MissingOption(String),
    /// An option without its value.
    #[error("option {0} needs a value")]
    MissingValue(String),
    /// A value that is not one of the allowed words (empty when the option was not given).
    #[error("option {option} must be one of {allowed}{}", choice_given(.value))]
    BadChoice {
        /// The option.
        option: String,
        /// What was given.
        value: String,
        /// The words it takes.
        allowed: String,
    },
    /// A value that is not a whole number, or one below the least the option takes.
    #[error("option {option} must be {}, not {value:?}", whole_number(.least))]
    BadNumber {
        /// The option.
        option: String,
        /// What was given.
        value: String,
        /// The least value the option takes.
        least: u64,
    },
    /// A whole number larger than the option takes.
    #[error("option {option} must be at most {most}, not {value}")]
    TooLarge {
        /// The option.
        option: String,
        /// What was given.
        value: String,
        /// The largest value the option takes.
        most: u64,
    },
    /// A value the option cannot take, and why.
    #[error("option {option} cannot take {value:?}: {why}")]
    BadValue {
        /// The option.
        option: String,
        /// What was given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// A command line the argument splitter could not read, in its words.
    #[error("malformed command line: {0}")]
    Malformed(String),
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        match e {
            lexopt::Error::MissingValue {
                option: Some(option),
            } => UsageError::MissingValue(option),
            other => UsageError::Malformed(other.to_string()),
        }
    }
}

/// The workload names, for messages.
fn workload_names() -> String {
    SPECS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// The options of the workload named `workload`, for messages.
fn options_of(workload: &str) -> String {
    let Some(spec) = SPECS.iter().find(|s| s.name == workload) else {
        return format!("{workload} is not a workload");
    };
    match spec.options {
        [] => "it takes none".to_owned(),
        options => format!(
            "it takes {}",
            options.iter().map(Opt::name).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// How a choice's message ends: with the value given, or the lack of one.
fn choice_given(value: &str) -> String {
    if value.is_empty() {
        "; it has no default".to_owned()
    } else {
        format!(", not {value:?}")
    }
}

/// What a number option takes, for messages.
fn whole_number(least: &u64) -> String {
    match *least {
        0 => "a whole number".to_owned(),
        1 => "a positive whole number".to_owned(),
        least => format!("a whole number of at least {least}"),
    }
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
    /// `count` TCP round trips of `size` bytes, then `bulk_mib` MiB in one stream, against
    /// a peer on the host side.
    Hostnet {
        /// The peer.
        peer: workload::hostnet::Peer,
        /// Round trips.
        count: u64,
        /// Message size in bytes.
        size: u64,
        /// MiB of the bulk transfer.
        bulk_mib: u64,
        /// The interface to configure first, if any.
        ifaddr: Option<workload::hostnet::IfAddr>,
        /// How long the peer may take to become reachable, ms.
        wait_ms: u64,
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
}

impl Workload {
    /// The subcommand name.
    pub fn name(&self) -> &'static str {
        self.spec().name
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// What to run.
    pub workload: Workload,
}

/// One workload as the command line knows it: everything about it, in one place.
#[derive(Debug)]
pub struct Spec {
    /// The subcommand name.
    pub name: &'static str,
    /// What it does and what it reports, in one line.
    pub about: &'static str,
    /// The options it takes, in the order the usage text lists them.
    pub options: &'static [Opt],
    /// Makes the workload from the options given (each already checked) and the defaults.
    build: fn(&Given) -> Result<Workload, UsageError>,
}

/// An option of a workload.
#[derive(Debug)]
pub enum Opt {
    /// A whole number.
    Number(Number),
    /// A directory.
    Dir(Dir),
    /// One word of a fixed set.
    Choice(Choice),
    /// A peer, `ADDR:PORT` or `vsock:CID:PORT`, that must be given.
    Endpoint(Endpoint),
    /// An interface address, `NAME=ADDR/PREFIX`; none when not given.
    IfAddr(IfAddrOpt),
}

/// A peer option (`ADDR:PORT` or `vsock:CID:PORT`), without a default.
#[derive(Debug)]
pub struct Endpoint {
    /// Its name, dashes included.
    pub name: &'static str,
    /// What the address is.
    pub help: &'static str,
}

/// An interface-address option (`eth0=10.200.1.2/30`).
#[derive(Debug)]
pub struct IfAddrOpt {
    /// Its name, dashes included.
    pub name: &'static str,
    /// What the interface is for.
    pub help: &'static str,
}

/// A whole-number option.
#[derive(Debug)]
pub struct Number {
    /// Its name, dashes included.
    pub name: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// Its value when not given.
    pub default: u64,
    /// The least value it takes.
    pub least: u64,
    /// The largest value it takes.
    pub most: u64,
}

/// A directory option; the system's temporary directory when not given.
#[derive(Debug)]
pub struct Dir {
    /// Its name, dashes included.
    pub name: &'static str,
    /// What the directory is for.
    pub help: &'static str,
}

/// An option that takes one of a fixed set of words, and must be given.
#[derive(Debug)]
pub struct Choice {
    /// Its name, dashes included.
    pub name: &'static str,
    /// What it chooses.
    pub help: &'static str,
    /// The words with what each means.
    pub choices: &'static [(&'static str, FaultKind)],
}

impl Opt {
    /// Its name, dashes included.
    pub fn name(&self) -> &'static str {
        match self {
            Opt::Number(o) => o.name,
            Opt::Dir(o) => o.name,
            Opt::Choice(o) => o.name,
            Opt::Endpoint(o) => o.name,
            Opt::IfAddr(o) => o.name,
        }
    }

    /// Checks a value given for it.
    fn check(&self, value: &OsStr) -> Result<(), UsageError> {
        match self {
            Opt::Number(o) => o.parse(value).map(drop),
            Opt::Dir(o) => o.parse(value).map(drop),
            Opt::Choice(o) => o.parse(value).map(drop),
            Opt::Endpoint(o) => o.parse(value).map(drop),
            Opt::IfAddr(o) => o.parse(value).map(drop),
        }
    }

    /// Its line in the usage text: how it is written, what it is, its default and range.
    fn usage_line(&self) -> String {
        let (written, about) = match self {
            Opt::Number(o) => {
                let range = match (o.least, o.most) {
                    (0, u64::MAX) => String::new(),
                    (least, u64::MAX) => format!("; at least {least}"),
                    (least, most) => format!("; {least} to {most}"),
                };
                (
                    format!("{} N", o.name),
                    format!("{} (default {}{range})", o.help, o.default),
                )
            }
            Opt::Dir(o) => (
                format!("{} DIR", o.name),
                format!("{} (default $TMPDIR)", o.help),
            ),
            Opt::Choice(o) => (
                format!("{} WORD", o.name),
                format!("{}: {} (no default)", o.help, o.allowed()),
            ),
            Opt::Endpoint(o) => (
                format!("{} ADDR:PORT|vsock:CID:PORT", o.name),
                format!("{} (no default)", o.help),
            ),
            Opt::IfAddr(o) => (
                format!("{} NAME=ADDR/PREFIX", o.name),
                format!("{} (default: none)", o.help),
            ),
        };
        format!("             {written:<16} {about}\n")
    }
}

impl Number {
    /// Reads a value: ASCII digits only, from `least` to `most`.
    fn parse(&self, value: &OsStr) -> Result<u64, UsageError> {
        let digits = value
            .to_str()
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
        let Some(digits) = digits else {
            return Err(UsageError::BadNumber {
                option: self.name.to_owned(),
                value: value.to_string_lossy().into_owned(),
                least: self.least,
            });
        };
        let too_large = || UsageError::TooLarge {
            option: self.name.to_owned(),
            value: digits.to_owned(),
            most: self.most,
        };
        // Digits alone fail to parse only by overflowing.
        let n = digits.parse::<u64>().map_err(|_| too_large())?;
        if n < self.least {
            return Err(UsageError::BadNumber {
                option: self.name.to_owned(),
                value: digits.to_owned(),
                least: self.least,
            });
        }
        if n > self.most {
            return Err(too_large());
        }
        Ok(n)
    }
}

impl Dir {
    /// Reads a value: any path but the empty one.
    fn parse(&self, value: &OsStr) -> Result<PathBuf, UsageError> {
        if value.is_empty() {
            return Err(UsageError::MissingValue(self.name.to_owned()));
        }
        Ok(PathBuf::from(value))
    }
}

impl Endpoint {
    /// Reads a value: an IPv4 address and a port, or a vsock CID and port.
    fn parse(&self, value: &OsStr) -> Result<workload::hostnet::Peer, UsageError> {
        value
            .to_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| UsageError::BadValue {
                option: self.name.to_owned(),
                value: value.to_string_lossy().into_owned(),
                why: "neither an IPv4 ADDR:PORT (e.g. 10.200.1.1:7000) nor vsock:CID:PORT \
                      (e.g. vsock:2:7000)"
                    .to_owned(),
            })
    }
}

impl IfAddrOpt {
    /// Reads a value: `NAME=ADDR/PREFIX`.
    fn parse(&self, value: &OsStr) -> Result<workload::hostnet::IfAddr, UsageError> {
        let text = value.to_str().ok_or_else(|| UsageError::BadValue {
            option: self.name.to_owned(),
            value: value.to_string_lossy().into_owned(),
            why: "not UTF-8".to_owned(),
        })?;
        text.parse()
            .map_err(|e: workload::hostnet::Error| UsageError::BadValue {
                option: self.name.to_owned(),
                value: text.to_owned(),
                why: e.to_string(),
            })
    }
}

impl Choice {
    /// The words it takes, for messages.
    fn allowed(&self) -> String {
        self.choices
            .iter()
            .map(|(word, _)| *word)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Reads a value: one of the words.
    fn parse(&self, value: &OsStr) -> Result<FaultKind, UsageError> {
        self.choices
            .iter()
            .find(|(word, _)| value == *word)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| UsageError::BadChoice {
                option: self.name.to_owned(),
                value: value.to_string_lossy().into_owned(),
                allowed: self.allowed(),
            })
    }
}

/// The options given to one workload, each checked, in the order given.
#[derive(Debug, Default)]
pub struct Given {
    values: Vec<(&'static str, OsString)>,
}

impl Given {
    /// The last value given for the option named `name`.
    fn last(&self, name: &str) -> Option<&OsStr> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// A number option's value.
    pub fn number(&self, option: &Number) -> Result<u64, UsageError> {
        match self.last(option.name) {
            Some(value) => option.parse(value),
            None => Ok(option.default),
        }
    }

    /// A directory option's value.
    pub fn dir(&self, option: &Dir) -> Result<PathBuf, UsageError> {
        match self.last(option.name) {
            Some(value) => option.parse(value),
            None => Ok(std::env::temp_dir()),
        }
    }

    /// An endpoint's value; it has no default, so one not given is an error.
    pub fn endpoint(&self, option: &Endpoint) -> Result<workload::hostnet::Peer, UsageError> {
        match self.last(option.name) {
            Some(value) => option.parse(value),
            None => Err(UsageError::MissingOption(option.name.to_owned())),
        }
    }

    /// An interface address's value, if given.
    pub fn ifaddr(
        &self,
        option: &IfAddrOpt,
    ) -> Result<Option<workload::hostnet::IfAddr>, UsageError> {
        self.last(option.name).map(|v| option.parse(v)).transpose()
    }

    /// A choice's value; it has no default, so one not given is an error.
    pub fn choice(&self, option: &Choice) -> Result<FaultKind, UsageError> {
        match self.last(option.name) {
            Some(value) => option.parse(value),
            None => Err(UsageError::BadChoice {
                option: option.name.to_owned(),
                value: String::new(),
                allowed: option.allowed(),
            }),
        }
    }
}

/// MiB whose bytes can still be counted in 64 bits.
const MIB_COUNTABLE: u64 = u64::MAX >> 20;
/// MiB of memory a workload may be asked to allocate: 1 TiB.
const MIB_HELD: u64 = 1 << 20;
/// Bytes a workload may be asked to hold in one buffer: 1 GiB.
const BYTES_HELD: u64 = 1 << 30;

/// Makes [`Workload::spec`] and [`SPECS`] from one list: the `match` is exhaustive, so a
/// variant without a spec does not compile, and every spec it names is one that parsing
/// and the usage text find.
macro_rules! specs {
    ($($variant:ident => $spec:ident,)*) => {
        impl Workload {
            /// This workload's definition.
            pub fn spec(&self) -> &'static Spec {
                match self {
                    $(Workload::$variant { .. } => &$spec,)*
                }
            }
        }

        /// Every workload's definition, in the order the usage text lists them.
        pub static SPECS: &[&Spec] = &[$(&$spec),*];
    };
}

specs! {
    Hello => HELLO,
    Cpu => CPU,
    Mem => MEM,
    Syscall => SYSCALL,
    Fork => FORK,
    File => FILE,
    Net => NET,
    Hostnet => HOSTNET,
    Alloc => ALLOC,
    Probe => PROBE,
    Fault => FAULT,
}

/// `hello`.
static HELLO: Spec = Spec {
    name: "hello",
    about: "announce start and exit",
    options: &[],
    build: |_| Ok(Workload::Hello),
};

/// `cpu`.
static CPU: Spec = {
    const MIB: Number = Number {
        name: "--mib",
        help: "MiB to hash",
        default: 64,
        least: 1,
        most: MIB_COUNTABLE,
    };
    Spec {
        name: "cpu",
        about: "SHA-256 over --mib MiB; MiB/s",
        options: &[Opt::Number(MIB)],
        build: |given| {
            Ok(Workload::Cpu {
                mib: given.number(&MIB)?,
            })
        },
    }
};

/// `mem`.
static MEM: Spec = {
    const MIB: Number = Number {
        name: "--mib",
        help: "MiB per array",
        default: 32,
        least: 1,
        most: MIB_HELD,
    };
    const ITERATIONS: Number = Number {
        name: "--iterations",
        help: "passes over the kernels",
        default: 5,
        least: 1,
        most: u64::MAX,
    };
    Spec {
        name: "mem",
        about: "STREAM copy/scale/add/triad over 3 arrays of --mib MiB, best of --iterations; MB/s",
        options: &[Opt::Number(MIB), Opt::Number(ITERATIONS)],
        build: |given| {
            Ok(Workload::Mem {
                mib: given.number(&MIB)?,
                iterations: given.number(&ITERATIONS)?,
            })
        },
    }
};

/// `syscall`.
static SYSCALL: Spec = {
    const COUNT: Number = Number {
        name: "--count",
        help: "calls to make",
        default: 200_000,
        least: 1,
        most: u64::MAX,
    };
    Spec {
        name: "syscall",
        about: "--count getppid(2) calls; ns per call",
        options: &[Opt::Number(COUNT)],
        build: |given| {
            Ok(Workload::Syscall {
                count: given.number(&COUNT)?,
            })
        },
    }
};

/// `fork`.
static FORK: Spec = {
    const COUNT: Number = Number {
        name: "--count",
        help: "processes to create",
        default: 200,
        least: 1,
        most: u64::MAX,
    };
    Spec {
        name: "fork",
        about: "--count fork+exit+wait; µs per process",
        options: &[Opt::Number(COUNT)],
        build: |given| {
            Ok(Workload::Fork {
                count: given.number(&COUNT)?,
            })
        },
    }
};

/// `file`.
static FILE: Spec = {
    const COUNT: Number = Number {
        name: "--count",
        help: "files to write",
        default: 100,
        least: 1,
        most: u64::MAX,
    };
    const SIZE: Number = Number {
        name: "--size",
        help: "bytes per file",
        default: 4096,
        least: 1,
        most: BYTES_HELD,
    };
    const DIR: Dir = Dir {
        name: "--dir",
        help: "where the scratch directory goes",
    };
    Spec {
        name: "file",
        about: "write and fsync --count files of --size bytes under --dir; files/s",
        options: &[Opt::Number(COUNT), Opt::Number(SIZE), Opt::Dir(DIR)],
        build: |given| {
            Ok(Workload::File {
                count: given.number(&COUNT)?,
                size: given.number(&SIZE)?,
                dir: given.dir(&DIR)?,
            })
        },
    }
};

/// `net`.
static NET: Spec = {
    const COUNT: Number = Number {
        name: "--count",
        help: "round trips",
        default: 10_000,
        least: 1,
        most: u64::MAX,
    };
    const SIZE: Number = Number {
        name: "--size",
        help: "bytes per message",
        default: 64,
        least: 1,
        most: BYTES_HELD,
    };
    Spec {
        name: "net",
        about: "--count TCP round trips of --size bytes over loopback; µs per round trip",
        options: &[Opt::Number(COUNT), Opt::Number(SIZE)],
        build: |given| {
            Ok(Workload::Net {
                count: given.number(&COUNT)?,
                size: given.number(&SIZE)?,
            })
        },
    }
};

/// `hostnet`.
static HOSTNET: Spec = {
    const PEER: Endpoint = Endpoint {
        name: "--peer",
        help: "the peer on the host side, over TCP (ADDR:PORT) or vsock (vsock:CID:PORT)",
    };
    const COUNT: Number = Number {
        name: "--count",
        help: "round trips",
        default: 10_000,
        least: 1,
        most: u64::MAX,
    };
    const SIZE: Number = Number {
        name: "--size",
        help: "bytes per round-trip message",
        default: 64,
        least: 1,
        most: BYTES_HELD,
    };
    const BULK_MIB: Number = Number {
        name: "--bulk-mib",
        help: "MiB of the bulk transfer",
        default: 64,
        least: 1,
        most: MIB_COUNTABLE,
    };
    const IFADDR: IfAddrOpt = IfAddrOpt {
        name: "--ifaddr",
        help: "configure this interface (and bring lo up) first, by ioctl",
    };
    const WAIT_MS: Number = Number {
        name: "--wait-ms",
        help: "how long the peer may take to become reachable, ms",
        default: 10_000,
        least: 0,
        most: 3_600_000,
    };
    Spec {
        name: "hostnet",
        about: "--count TCP round trips of --size bytes, then --bulk-mib MiB, against the peer \
                at --peer; µs per round trip, MiB/s",
        options: &[
            Opt::Endpoint(PEER),
            Opt::Number(COUNT),
            Opt::Number(SIZE),
            Opt::Number(BULK_MIB),
            Opt::IfAddr(IFADDR),
            Opt::Number(WAIT_MS),
        ],
        build: |given| {
            Ok(Workload::Hostnet {
                peer: given.endpoint(&PEER)?,
                count: given.number(&COUNT)?,
                size: given.number(&SIZE)?,
                bulk_mib: given.number(&BULK_MIB)?,
                ifaddr: given.ifaddr(&IFADDR)?,
                wait_ms: given.number(&WAIT_MS)?,
            })
        },
    }
};

/// `alloc`.
static ALLOC: Spec = {
    const MIB: Number = Number {
        name: "--mib",
        help: "MiB to touch",
        default: 64,
        least: 1,
        most: MIB_HELD,
    };
    const HOLD_MS: Number = Number {
        name: "--hold-ms",
        help: "ms to hold it; 0 holds until signalled",
        default: 0,
        least: 0,
        most: u64::MAX,
    };
    Spec {
        name: "alloc",
        about: "touch --mib MiB, report, hold until SIGTERM/SIGINT/SIGUSR1 or --hold-ms",
        options: &[Opt::Number(MIB), Opt::Number(HOLD_MS)],
        build: |given| {
            Ok(Workload::Alloc {
                mib: given.number(&MIB)?,
                hold_ms: given.number(&HOLD_MS)?,
            })
        },
    }
};

/// `probe`.
static PROBE: Spec = Spec {
    name: "probe",
    about: "what the instance sees of its host and may do (kernel, namespaces, mounts, powers)",
    options: &[],
    build: |_| Ok(Workload::Probe),
};

/// `fault`.
static FAULT: Spec = {
    const KIND: Choice = Choice {
        name: "--kind",
        help: "how it fails",
        choices: &FaultKind::ALL,
    };
    const LIMIT: Number = Number {
        name: "--limit",
        help: "processes (forkbomb) or MiB (oom) at which it gives up",
        default: 4096,
        least: 1,
        most: u64::MAX,
    };
    Spec {
        name: "fault",
        about: "fail on purpose, to test how failures are handled",
        options: &[Opt::Choice(KIND), Opt::Number(LIMIT)],
        build: |given| {
            Ok(Workload::Fault {
                kind: given.choice(&KIND)?,
                limit: given.number(&LIMIT)?,
            })
        },
    }
};

/// The spec of the workload named `name`.
fn spec_named(name: &OsStr) -> Result<&'static Spec, UsageError> {
    SPECS
        .iter()
        .copied()
        .find(|s| name == s.name)
        .ok_or_else(|| UsageError::UnknownWorkload(name.to_string_lossy().into_owned()))
}

impl Args {
    /// Parses the arguments after the program name; `Ok(None)` means help was asked for.
    pub fn parse<I>(argv: I) -> Result<Option<Self>, UsageError>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        let mut parser = lexopt::Parser::from_args(argv);
        let spec = match parser.next()? {
            None => return Err(UsageError::Missing),
            Some(Arg::Short('h') | Arg::Long("help")) => return Ok(None),
            Some(Arg::Value(name)) if name == "help" => return Ok(None),
            Some(Arg::Value(name)) => spec_named(&name)?,
            Some(Arg::Long(option)) => {
                return Err(UsageError::UnknownWorkload(format!("--{option}")))
            }
            Some(Arg::Short(option)) => {
                return Err(UsageError::UnknownWorkload(format!("-{option}")))
            }
        };
        let mut given = Given::default();
        while let Some(arg) = parser.next()? {
            let found = match arg {
                Arg::Short('h') | Arg::Long("help") => return Ok(None),
                Arg::Long(name) => spec
                    .options
                    .iter()
                    .find(|o| o.name().strip_prefix("--") == Some(name))
                    .ok_or_else(|| format!("--{name}")),
                Arg::Short(letter) => Err(format!("-{letter}")),
                Arg::Value(word) => {
                    return Err(UsageError::UnexpectedArgument {
                        workload: spec.name,
                        argument: word.to_string_lossy().into_owned(),
                    })
                }
            };
            let option = found.map_err(|option| UsageError::UnknownOption {
                workload: spec.name,
                option,
            })?;
            let value = parser.value()?;
            option.check(&value)?;
            given.values.push((option.name(), value));
        }
        let workload = (spec.build)(&given)?;
        Ok(Some(Args { workload }))
    }
}

/// The help text.
pub fn usage() -> String {
    let mut text = String::from(
        "usage: workload <workload> [--option value]...\n       \
         workload [<workload>] --help\n\n\
         Writes `@vcbench {json}` records on the channel named by VCBENCH_CHANNEL\n\
         (stdout, stderr, fd:N, path:FILE; default stdout). As PID 1 it mounts /proc, /sys\n\
         and /dev, reaps children, and with VCBENCH_EXIT=poweroff powers off at the end.\n\n\
         workloads and their options (--option=value works too):\n",
    );
    for spec in SPECS {
        text.push_str(&format!("  {:<10} {}\n", spec.name, spec.about));
        for option in spec.options {
            text.push_str(&option.usage_line());
        }
    }
    text.push_str(
        "  exec       the user's program as the workload: workload exec [OPTIONS] -- PROGRAM \
         [ARGS]...\n             (workload exec --help lists its options)\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, UsageError> {
        Args::parse(args.iter().copied())
    }

    /// The workload a good command line gives.
    fn workload(args: &[&str]) -> Workload {
        match parse(args) {
            Ok(Some(parsed)) => parsed.workload,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    /// The error a bad command line gives.
    fn error(args: &[&str]) -> UsageError {
        match parse(args) {
            Err(e) => e,
            Ok(parsed) => panic!("{args:?} was accepted: {parsed:?}"),
        }
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

    /// The least command line that runs `spec`: its required choices given.
    fn least_line(spec: &Spec) -> Vec<String> {
        let mut line = vec![spec.name.to_owned()];
        for option in spec.options {
            if let Opt::Choice(choice) = option {
                line.extend([choice.name.to_owned(), choice.choices[0].0.to_owned()]);
            }
            if let Opt::Endpoint(endpoint) = option {
                line.extend([endpoint.name.to_owned(), "127.0.0.1:7000".to_owned()]);
            }
        }
        line
    }

    fn parse_line(line: &[String]) -> Workload {
        match Args::parse(line) {
            Ok(Some(parsed)) => parsed.workload,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn every_spec_builds_its_own_variant_under_its_own_name() {
        let mut names: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SPECS.len(), "two workloads share a name");
        for spec in SPECS {
            let built = parse_line(&least_line(spec));
            assert!(
                std::ptr::eq(built.spec(), *spec),
                "{} built {built:?}",
                spec.name
            );
            assert_eq!(built.name(), spec.name);
        }
    }

    #[test]
    fn every_option_is_named_once_and_reaches_the_workload() {
        for spec in SPECS {
            let base = least_line(spec);
            let defaults = parse_line(&base);
            for (i, option) in spec.options.iter().enumerate() {
                assert!(option.name().starts_with("--"), "{}", option.name());
                assert!(
                    spec.options[..i].iter().all(|o| o.name() != option.name()),
                    "{} lists {} twice",
                    spec.name,
                    option.name()
                );
                // Every value other than the default makes another workload: the
                // option is read, and read into its own field.
                let values: Vec<String> = match option {
                    Opt::Number(n) => {
                        assert!(n.least <= n.default && n.default <= n.most, "{}", n.name);
                        [n.least, n.least + 1, n.most]
                            .into_iter()
                            .filter(|v| *v != n.default)
                            .map(|v| v.to_string())
                            .collect()
                    }
                    Opt::Dir(_) => vec!["/nonexistent/scratch".to_owned()],
                    Opt::Endpoint(_) => vec!["10.200.1.1:7001".to_owned()],
                    Opt::IfAddr(_) => vec!["eth0=10.200.1.2/30".to_owned()],
                    Opt::Choice(c) => c.choices[1..]
                        .iter()
                        .map(|(w, _)| (*w).to_owned())
                        .collect(),
                };
                assert!(!values.is_empty());
                let mut seen = vec![defaults.clone()];
                for value in values {
                    let mut line = base.clone();
                    line.extend([option.name().to_owned(), value.clone()]);
                    let changed = parse_line(&line);
                    assert!(
                        !seen.contains(&changed),
                        "{} {} {value} changed nothing: {changed:?}",
                        spec.name,
                        option.name()
                    );
                    seen.push(changed);
                }
            }
        }
    }

    #[test]
    fn the_lines_the_benchmarks_write_round_trip() {
        let scratch = PathBuf::from("/var/tmp/vcbench-scratch");
        let tmp = std::env::temp_dir();
        let cases: Vec<(Vec<&str>, Workload)> = vec![
            // The scenarios.
            (vec!["hello"], Workload::Hello),
            (vec!["cpu", "--mib", "64"], Workload::Cpu { mib: 64 }),
            (
                vec!["mem", "--mib", "32", "--iterations", "5"],
                Workload::Mem {
                    mib: 32,
                    iterations: 5,
                },
            ),
            (
                vec!["syscall", "--count", "200000"],
                Workload::Syscall { count: 200_000 },
            ),
            (
                vec!["fork", "--count", "200"],
                Workload::Fork { count: 200 },
            ),
            (
                vec!["file", "--count", "100", "--size", "4096"],
                Workload::File {
                    count: 100,
                    size: 4096,
                    dir: tmp.clone(),
                },
            ),
            (
                vec!["net", "--count", "10000", "--size", "64"],
                Workload::Net {
                    count: 10_000,
                    size: 64,
                },
            ),
            (
                vec!["alloc", "--mib", "64"],
                Workload::Alloc {
                    mib: 64,
                    hold_ms: 0,
                },
            ),
            (
                vec!["alloc", "--mib", "1"],
                Workload::Alloc { mib: 1, hold_ms: 0 },
            ),
            (vec!["probe"], Workload::Probe),
            // A Linux guest holds for a while instead of waiting for a signal.
            (
                vec!["alloc", "--mib", "64", "--hold-ms", "1000"],
                Workload::Alloc {
                    mib: 64,
                    hold_ms: 1000,
                },
            ),
            // The traced workloads.
            (
                vec!["syscall", "--count", "20000"],
                Workload::Syscall { count: 20_000 },
            ),
            (vec!["fork", "--count", "50"], Workload::Fork { count: 50 }),
            (
                vec!["file", "--count", "50", "--size", "4096"],
                Workload::File {
                    count: 50,
                    size: 4096,
                    dir: tmp,
                },
            ),
            (
                vec!["net", "--count", "2000", "--size", "64"],
                Workload::Net {
                    count: 2000,
                    size: 64,
                },
            ),
            // The interference neighbours: long enough to outlast the victim.
            (
                vec!["cpu", "--mib", "100000000"],
                Workload::Cpu { mib: 100_000_000 },
            ),
            (
                vec!["mem", "--mib", "64", "--iterations", "100000000"],
                Workload::Mem {
                    mib: 64,
                    iterations: 100_000_000,
                },
            ),
            (
                vec!["fork", "--count", "100000000000"],
                Workload::Fork {
                    count: 100_000_000_000,
                },
            ),
            (
                vec![
                    "file",
                    "--count",
                    "100000000000",
                    "--size",
                    "65536",
                    "--dir",
                    "/var/tmp/vcbench-scratch",
                ],
                Workload::File {
                    count: 100_000_000_000,
                    size: 65536,
                    dir: scratch,
                },
            ),
            // The fault tests.
            (
                vec!["fault", "--kind", "segv"],
                Workload::Fault {
                    kind: FaultKind::Segv,
                    limit: 4096,
                },
            ),
            (
                vec!["fault", "--kind", "oom"],
                Workload::Fault {
                    kind: FaultKind::Oom,
                    limit: 4096,
                },
            ),
            // The hostnet scenario, as a VM's guest runs it.
            (
                vec![
                    "hostnet",
                    "--count",
                    "10000",
                    "--size",
                    "64",
                    "--bulk-mib",
                    "64",
                    "--peer",
                    "10.200.2.1:7000",
                    "--ifaddr",
                    "eth0=10.200.2.2/30",
                ],
                Workload::Hostnet {
                    peer: "10.200.2.1:7000".parse().unwrap(),
                    count: 10_000,
                    size: 64,
                    bulk_mib: 64,
                    ifaddr: Some("eth0=10.200.2.2/30".parse().unwrap()),
                    wait_ms: 10_000,
                },
            ),
        ];
        for (line, expected) in &cases {
            assert_eq!(&workload(line), expected, "{line:?}");
        }
        // Every workload is among them.
        for spec in SPECS {
            assert!(
                cases.iter().any(|(_, w)| std::ptr::eq(w.spec(), *spec)),
                "{} has no case",
                spec.name
            );
        }
        // Every fault kind by its name.
        for (word, kind) in FaultKind::ALL {
            assert_eq!(
                workload(&["fault", "--kind", word]),
                Workload::Fault { kind, limit: 4096 }
            );
        }
    }

    #[test]
    fn options_take_their_value_either_way_and_the_last_counts() {
        assert_eq!(workload(&["cpu", "--mib=3"]), Workload::Cpu { mib: 3 });
        assert_eq!(
            workload(&["cpu", "--mib", "1", "--mib", "2"]),
            Workload::Cpu { mib: 2 }
        );
        assert_eq!(workload(&["cpu", "--mib", "007"]), Workload::Cpu { mib: 7 });
        // A directory may be named in any bytes.
        let line = vec![
            OsString::from("file"),
            OsString::from("--dir"),
            OsString::from_vec(b"/tmp/\xff".to_vec()),
        ];
        assert_eq!(
            Args::parse(line).unwrap().unwrap().workload,
            Workload::File {
                count: 100,
                size: 4096,
                dir: PathBuf::from(OsString::from_vec(b"/tmp/\xff".to_vec())),
            }
        );
    }

    #[test]
    fn a_missing_or_unknown_workload_is_named_with_the_known_ones() {
        let e = error(&[]);
        assert_eq!(e, UsageError::Missing);
        assert!(e.to_string().contains("hello, cpu, mem"), "{e}");
        let e = error(&["nope"]);
        assert_eq!(e, UsageError::UnknownWorkload("nope".to_owned()));
        assert!(e.to_string().contains("\"nope\""), "{e}");
        assert!(e.to_string().contains("probe, fault"), "{e}");
        assert_eq!(
            error(&["--bogus"]),
            UsageError::UnknownWorkload("--bogus".to_owned())
        );
        assert_eq!(error(&["-x"]), UsageError::UnknownWorkload("-x".to_owned()));
        // Workload names are whole and exact.
        assert!(matches!(error(&["Hello"]), UsageError::UnknownWorkload(_)));
        assert!(matches!(error(&["hell"]), UsageError::UnknownWorkload(_)));
        let line = vec![OsString::from_vec(b"c\xffu".to_vec())];
        assert!(matches!(
            Args::parse(line),
            Err(UsageError::UnknownWorkload(_))
        ));
    }

    #[test]
    fn an_unknown_option_is_refused_naming_it_and_the_known_ones() {
        let e = error(&["hello", "--bogus"]);
        assert_eq!(
            e,
            UsageError::UnknownOption {
                workload: "hello",
                option: "--bogus".to_owned()
            }
        );
        assert_eq!(
            e.to_string(),
            "workload hello takes no option \"--bogus\"; it takes none"
        );
        assert_eq!(
            error(&["hello", "--bogus=1"]),
            UsageError::UnknownOption {
                workload: "hello",
                option: "--bogus".to_owned()
            }
        );
        let e = error(&["cpu", "--count", "3"]);
        assert!(e.to_string().contains("\"--count\""), "{e}");
        assert!(e.to_string().contains("it takes --mib"), "{e}");
        let e = error(&["file", "--dirs", "/tmp"]);
        assert!(
            e.to_string().contains("it takes --count, --size, --dir"),
            "{e}"
        );
        assert_eq!(
            error(&["cpu", "-m", "3"]),
            UsageError::UnknownOption {
                workload: "cpu",
                option: "-m".to_owned()
            }
        );
        // An option of another workload is still unknown here.
        assert!(matches!(
            error(&["net", "--mib", "3"]),
            UsageError::UnknownOption {
                workload: "net",
                ..
            }
        ));
        // Options are written with two dashes.
        assert!(matches!(
            error(&["cpu", "-mib", "3"]),
            UsageError::UnknownOption { .. }
        ));
    }

    #[test]
    fn a_stray_word_is_refused_naming_it() {
        let e = error(&["hello", "extra"]);
        assert_eq!(
            e,
            UsageError::UnexpectedArgument {
                workload: "hello",
                argument: "extra".to_owned()
            }
        );
        assert!(e.to_string().contains("\"extra\""), "{e}");
        assert_eq!(
            error(&["cpu", "64"]),
            UsageError::UnexpectedArgument {
                workload: "cpu",
                argument: "64".to_owned()
            }
        );
        // After `--` nothing is an option.
        assert_eq!(
            error(&["cpu", "--", "--mib", "3"]),
            UsageError::UnexpectedArgument {
                workload: "cpu",
                argument: "--mib".to_owned()
            }
        );
    }

    #[test]
    fn a_missing_value_names_its_option() {
        let e = error(&["cpu", "--mib"]);
        assert_eq!(e, UsageError::MissingValue("--mib".to_owned()));
        assert_eq!(e.to_string(), "option --mib needs a value");
        assert_eq!(
            error(&["mem", "--mib", "8", "--iterations"]),
            UsageError::MissingValue("--iterations".to_owned())
        );
        assert_eq!(
            error(&["file", "--dir="]),
            UsageError::MissingValue("--dir".to_owned())
        );
        assert_eq!(
            error(&["file", "--dir", ""]),
            UsageError::MissingValue("--dir".to_owned())
        );
    }

    #[test]
    fn a_bad_number_names_its_option_and_value() {
        for bad in [
            "zero", "", "-3", "+5", " 5", "5 ", "1e3", "0x10", "1_000", "3.0", "５",
        ] {
            assert_eq!(
                error(&["cpu", "--mib", bad]),
                UsageError::BadNumber {
                    option: "--mib".to_owned(),
                    value: bad.to_owned(),
                    least: 1
                },
                "{bad:?}"
            );
        }
        let e = error(&["cpu", "--mib", "zero"]);
        assert_eq!(
            e.to_string(),
            "option --mib must be a positive whole number, not \"zero\""
        );
        // Zero where a positive number is needed.
        for line in [
            ["cpu", "--mib", "0"],
            ["syscall", "--count", "0"],
            ["net", "--size", "000"],
            ["fault", "--limit", "0"],
        ] {
            assert!(
                matches!(error(&line), UsageError::BadNumber { least: 1, .. }),
                "{line:?}"
            );
        }
        // Zero holds until signalled, but words are still not numbers.
        let e = error(&["alloc", "--hold-ms", "soon"]);
        assert_eq!(
            e.to_string(),
            "option --hold-ms must be a whole number, not \"soon\""
        );
        let line = vec![
            OsString::from("cpu"),
            OsString::from("--mib"),
            OsString::from_vec(b"6\xff".to_vec()),
        ];
        assert!(matches!(
            Args::parse(line),
            Err(UsageError::BadNumber { .. })
        ));
        // Values are checked in the order given, a repeated option's too.
        assert!(matches!(
            error(&["mem", "--iterations", "x", "--mib", "y"]),
            UsageError::BadNumber { option, .. } if option == "--iterations"
        ));
        assert!(matches!(
            error(&["cpu", "--mib", "x", "--mib", "3"]),
            UsageError::BadNumber { .. }
        ));
    }

    #[test]
    fn a_number_too_large_names_its_option_and_limit() {
        let beyond_u64 = "18446744073709551616";
        assert_eq!(
            error(&["syscall", "--count", beyond_u64]),
            UsageError::TooLarge {
                option: "--count".to_owned(),
                value: beyond_u64.to_owned(),
                most: u64::MAX
            }
        );
        assert_eq!(
            workload(&["syscall", "--count", "18446744073709551615"]),
            Workload::Syscall { count: u64::MAX }
        );
        assert_eq!(
            error(&["alloc", "--hold-ms", "99999999999999999999999999"]),
            UsageError::TooLarge {
                option: "--hold-ms".to_owned(),
                value: "99999999999999999999999999".to_owned(),
                most: u64::MAX
            }
        );
        // MiB whose bytes do not fit in 64 bits.
        let e = error(&["cpu", "--mib", "17592186044416"]);
        assert_eq!(
            e,
            UsageError::TooLarge {
                option: "--mib".to_owned(),
                value: "17592186044416".to_owned(),
                most: MIB_COUNTABLE
            }
        );
        assert_eq!(
            e.to_string(),
            "option --mib must be at most 17592186044415, not 17592186044416"
        );
        assert_eq!(
            workload(&["cpu", "--mib", "17592186044415"]),
            Workload::Cpu { mib: MIB_COUNTABLE }
        );
        // More memory than any machine here has, or one buffer larger than 1 GiB.
        for (line, most) in [
            (["alloc", "--mib", "1048577"], MIB_HELD),
            (["mem", "--mib", "1048577"], MIB_HELD),
            (["net", "--size", "1073741825"], BYTES_HELD),
            (["file", "--size", "1073741825"], BYTES_HELD),
        ] {
            assert!(
                matches!(error(&line), UsageError::TooLarge { most: m, .. } if m == most),
                "{line:?}"
            );
        }
        assert_eq!(
            workload(&["alloc", "--mib", "1048576"]),
            Workload::Alloc {
                mib: MIB_HELD,
                hold_ms: 0
            }
        );
        assert_eq!(
            workload(&["net", "--size", "1073741824"]),
            Workload::Net {
                count: 10_000,
                size: BYTES_HELD
            }
        );
    }

    #[test]
    fn hostnet_needs_its_peer_and_reads_its_interface_address() {
        assert_eq!(
            error(&["hostnet"]),
            UsageError::MissingOption("--peer".to_owned())
        );
        let line = [
            "hostnet",
            "--peer",
            "10.200.1.1:7000",
            "--count",
            "10",
            "--ifaddr",
            "eth0=10.200.1.2/30",
        ];
        let Ok(Some(parsed)) = Args::parse(line) else {
            panic!("{line:?} was refused");
        };
        let Workload::Hostnet {
            peer,
            count,
            ifaddr,
            bulk_mib,
            ..
        } = parsed.workload
        else {
            panic!("{parsed:?}");
        };
        assert_eq!(peer.to_string(), "10.200.1.1:7000");
        assert_eq!((count, bulk_mib), (10, 64));
        assert_eq!(
            ifaddr.map(|a| a.to_string()).as_deref(),
            Some("eth0=10.200.1.2/30")
        );
        let e = error(&["hostnet", "--peer", "10.200.1.1"]);
        assert!(
            e.to_string().contains("--peer cannot take \"10.200.1.1\""),
            "{e}"
        );
        let e = error(&[
            "hostnet",
            "--peer",
            "10.0.0.1:1",
            "--ifaddr",
            "eth0=10.0.0.2/40",
        ]);
        assert!(e.to_string().contains("not a prefix length"), "{e}");
    }

    #[test]
    fn a_bad_choice_names_its_option_value_and_choices() {
        let e = error(&["fault", "--kind", "nonsense"]);
        assert_eq!(
            e,
            UsageError::BadChoice {
                option: "--kind".to_owned(),
                value: "nonsense".to_owned(),
                allowed: "segv, exit, flood, hang, mute, forkbomb, oom".to_owned()
            }
        );
        assert_eq!(
            e.to_string(),
            "option --kind must be one of segv, exit, flood, hang, mute, forkbomb, oom, \
             not \"nonsense\""
        );
        // The kind has no default.
        let e = error(&["fault", "--limit", "3"]);
        assert!(matches!(e, UsageError::BadChoice { ref value, .. } if value.is_empty()));
        assert!(e.to_string().ends_with("oom; it has no default"), "{e}");
        assert!(matches!(
            error(&["fault", "--kind", "SEGV"]),
            UsageError::BadChoice { .. }
        ));
    }

    #[test]
    fn help_is_asked_for_in_any_place() {
        for line in [
            &["--help"][..],
            &["-h"],
            &["help"],
            &["hello", "--help"],
            &["cpu", "-h"],
            &["cpu", "--mib", "3", "--help"],
            &["fault", "--help"],
            &["fault", "--kind", "segv", "-h"],
        ] {
            assert_eq!(parse(line), Ok(None), "{line:?}");
        }
        // Up to the help, the line must be right.
        assert!(matches!(
            error(&["cpu", "--mib", "x", "--help"]),
            UsageError::BadNumber { .. }
        ));
    }

    #[test]
    fn the_usage_text_lists_every_workload_option_and_default() {
        let text = usage();
        for spec in SPECS {
            assert!(
                text.contains(&format!("  {:<10} {}\n", spec.name, spec.about)),
                "{}",
                spec.name
            );
            for option in spec.options {
                assert!(text.contains(&option.usage_line()), "{}", option.name());
            }
        }
        assert!(text.contains("--mib N"), "{text}");
        assert!(text.contains("MiB to hash (default 64; 1 to 17592186044415)"));
        assert!(text.contains("calls to make (default 200000; at least 1)"));
        assert!(text.contains("(default 0)"), "{text}");
        assert!(text.contains("segv, exit, flood, hang, mute, forkbomb, oom (no default)"));
        assert!(text.contains("(default $TMPDIR)"));
    }

    #[test]
    fn the_splitters_other_errors_keep_its_words() {
        assert_eq!(
            UsageError::from(lexopt::Error::MissingValue {
                option: Some("--mib".to_owned())
            }),
            UsageError::MissingValue("--mib".to_owned())
        );
        let e = UsageError::from(lexopt::Error::UnexpectedValue {
            option: "--help".to_owned(),
            value: "yes".into(),
        });
        assert!(matches!(e, UsageError::Malformed(_)));
        assert!(e.to_string().contains("--help"), "{e}");
    }
}
