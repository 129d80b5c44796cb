//! What the container's protections cost: the startup of a container with every
//! protection on, with each switched off in turn, and with all off; and the cost of one
//! system call under the filter, inside a container, with the filter on and off. Needs
//! root. Run it in release mode:
//!
//! ```text
//! cargo run --release -p container --example protections -- [STARTS] [CALLS]
//! ```
//!
//! STARTS containers per configuration (default 200), started in turn so that drift on
//! the host touches every configuration alike; CALLS system calls (default 5000000) in each
//! of 9 containers per configuration, as five loops of which the fastest counts. The
//! program inside is this example itself, run from a root file system that holds it and
//! its shared libraries.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use container::{Seccomp, Spec};

/// The argument that makes this binary, inside a container, exit at once.
const EXIT: &str = "exit";
/// The argument that makes it time system calls: `time getppid N` or `time personality N`.
const TIME: &str = "time";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(EXIT) => return,
        Some(TIME) => return time_calls(&args[2], args[3].parse().unwrap_or(1_000_000)),
        _ => {}
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("the protections example needs root (cgroups, device lists)");
        std::process::exit(2);
    }
    let starts: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let calls: u64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let rootfs = common::self_rootfs("self");
    startup(rootfs.path(), starts);
    filter(rootfs.path(), calls);
}

/// A configuration of the protections.
struct Config {
    name: &'static str,
    seccomp: Seccomp,
    paths: bool,
    devices: bool,
}

const CONFIGS: [Config; 5] = [
    Config {
        name: "every protection",
        seccomp: Seccomp::Default,
        paths: true,
        devices: true,
    },
    Config {
        name: "no system call filter",
        seccomp: Seccomp::Off,
        paths: true,
        devices: true,
    },
    Config {
        name: "no kernel path protection",
        seccomp: Seccomp::Default,
        paths: false,
        devices: true,
    },
    Config {
        name: "no device list",
        seccomp: Seccomp::Default,
        paths: true,
        devices: false,
    },
    Config {
        name: "none of the three",
        seccomp: Seccomp::Off,
        paths: false,
        devices: false,
    },
];

fn spec(rootfs: &std::path::Path, config: &Config, args: &[&str]) -> Spec {
    let argv = std::iter::once("/self")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    let mut spec = Spec::new(rootfs, argv);
    spec.seccomp = config.seccomp;
    spec.protect_kernel_paths = config.paths;
    spec.restrict_devices = config.devices;
    spec
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The time from `from` to `to` among a start's phases, µs.
fn between(phases: &[&'static str], stamps: &[u64], from: &str, to: &str) -> Option<f64> {
    let at = |name: &str| phases.iter().position(|p| *p == name).map(|i| stamps[i]);
    Some((at(to)?.saturating_sub(at(from)?)) as f64 / 1000.0)
}

fn startup(rootfs: &std::path::Path, starts: usize) {
    // Per configuration: whole start (Container::start, to exec), the three phases the
    // protections add to, and the whole run to the reaped exit.
    let mut samples: Vec<[Vec<f64>; 5]> = CONFIGS.iter().map(|_| Default::default()).collect();
    for _ in 0..starts {
        for (config, s) in CONFIGS.iter().zip(samples.iter_mut()) {
            let spec = spec(rootfs, config, &[EXIT]);
            let begun = Instant::now();
            let f = common::run(&spec, Duration::from_secs(30)).expect("a container runs");
            let total = begun.elapsed().as_secs_f64() * 1e6;
            assert_eq!(f.status, 0, "{f:?}");
            let started = f.started_us;
            let (names, stamps): (Vec<&'static str>, Vec<u64>) = f.stamps.iter().copied().unzip();
            s[0].push(started);
            s[1].push(
                between(&names, &stamps, "cgroup_created", "devices_restricted").unwrap_or(0.0),
            );
            s[2].push(between(&names, &stamps, "pivot_root_done", "paths_masked").unwrap_or(0.0));
            s[3].push(between(&names, &stamps, "privileges_dropped", "exec").unwrap_or(0.0));
            s[4].push(total);
        }
    }
    println!("Container startup, medians of {starts} starts each (µs):");
    println!(
        "{:<28} {:>10} {:>14} {:>14} {:>16} {:>12}",
        "configuration", "start", "device list", "kernel paths", "filter install", "start+wait"
    );
    for (config, s) in CONFIGS.iter().zip(samples) {
        let [start, devices, paths, seccomp, total] = s.map(median);
        println!(
            "{:<28} {start:>10.0} {devices:>14.1} {paths:>14.1} {seccomp:>16.1} {total:>12.0}",
            config.name
        );
    }
}

fn filter(rootfs: &std::path::Path, calls: u64) {
    const ROUNDS: usize = 9;
    println!(
        "\nOne system call, ns (median over {ROUNDS} containers of the fastest of 5 loops \
         of {} calls each; on the host, the same binary run directly):",
        calls / 5
    );
    for call in ["getppid", "personality"] {
        let count = calls.to_string();
        let mut on = Vec::new();
        let mut off = Vec::new();
        let mut host = Vec::new();
        // In turn, so that load on the host touches each alike.
        for _ in 0..ROUNDS {
            for (config, into) in [(&CONFIGS[0], &mut on), (&CONFIGS[1], &mut off)] {
                let spec = spec(rootfs, config, &[TIME, call, &count]);
                let f = common::run(&spec, Duration::from_secs(120)).expect("a container runs");
                assert_eq!(f.status, 0, "{f:?}");
                into.push(f.stdout.trim().parse::<f64>().expect("ns per call"));
            }
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([TIME, call, &count])
                .output()
                .expect("the example runs itself");
            let text = String::from_utf8_lossy(&out.stdout);
            host.push(text.trim().parse::<f64>().expect("ns per call"));
        }
        println!(
            "{call:<12} filter on {:>7.1}   filter off {:>7.1}   host {:>7.1}",
            median(on),
            median(off),
            median(host)
        );
    }
}

/// Inside: `calls` system calls in a loop, then the mean time of one on standard output.
/// getppid: allowed whatever its arguments, so the kernel's action cache lets it skip
/// the filter; personality(0xffffffff) (a query): its rule reads the argument, so the
/// filter runs on every call.
fn time_calls(call: &str, calls: u64) {
    let (nr, arg): (libc::c_long, libc::c_long) = match call {
        "getppid" => (libc::SYS_getppid, 0),
        _ => (libc::SYS_personality, 0xffff_ffff),
    };
    let per_loop = (calls / 5).max(1);
    let fastest = (0..5)
        .map(|_| {
            let begun = Instant::now();
            for _ in 0..per_loop {
                // SAFETY: getppid takes nothing; personality with the query value changes
                // nothing.
                std::hint::black_box(unsafe { libc::syscall(nr, arg) });
            }
            begun.elapsed().as_nanos() as f64 / per_loop as f64
        })
        .fold(f64::INFINITY, f64::min);
    println!("{fastest}");
}
