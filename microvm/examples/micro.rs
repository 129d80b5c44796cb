//! Runs a micro guest a number of times and prints the median of each phase (ms after
//! `vm_created`'s start of the recipe), exits, and for `exits N` the cost of one exit.
//!
//! `cargo run --release -p microvm --example micro -- [hello|exits N|touch MIB|spin N] [RUNS]`

use std::time::Duration;

use microvm::guest::{self, MARKER_DONE, MARKER_START};
use microvm::vm::{self, Config};

fn median(v: Vec<f64>) -> f64 {
    stats::median(&v).unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |i: usize, default: u32| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (payload, runs) = match args.first().map(String::as_str).unwrap_or("hello") {
        "exits" => (guest::exits(number(1, 10_000)), number(2, 10)),
        "touch" => (guest::touch(number(1, 64)), number(2, 10)),
        "spin" => (guest::spin(number(1, 100_000)), number(2, 10)),
        "hello" => (guest::hello(), number(1, 30)),
        other => {
            eprintln!("unknown guest {other:?}: hello, exits N, touch MIB or spin N");
            std::process::exit(2);
        }
    };
    let config = Config {
        vcpus: 1,
        memory_mib: 128,
        payload,
        timeout: Duration::from_secs(60),
        devices: Default::default(),
    };
    let mut phases: Vec<(&'static str, Vec<f64>)> = Vec::new();
    let mut per_exit = Vec::new();
    let mut touched = Vec::new();
    for _ in 0..runs {
        let start = microvm::monotonic_ns();
        let report = match vm::run(&config) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cannot run the guest: {e}");
                std::process::exit(1);
            }
        };
        for (name, at) in &report.phases {
            let ms = (at - start) as f64 / 1e6;
            match phases.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => v.push(ms),
                None => phases.push((name, vec![ms])),
            }
        }
        let stamp = |code| {
            report
                .markers
                .stamps
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, s)| *s)
        };
        if let (Some(first), Some((MARKER_DONE, last))) = (stamp(MARKER_START), report.markers.last)
        {
            let loops = report.markers.writes.saturating_sub(2).max(1);
            per_exit.push((last - first) as f64 / loops as f64);
        }
        touched.extend(report.guest_touched_kib.map(|k| k as f64));
        println!(
            "{} end={:?} exits={}",
            config.payload.name,
            report.end,
            report.exits.total()
        );
    }
    println!("median over {runs} runs, ms after the launch:");
    for (name, v) in phases {
        println!("  {name:<18} {:.3}", median(v));
    }
    if config.payload.name.starts_with("exits") && !per_exit.is_empty() {
        println!("  one exit round trip: {:.0} ns", median(per_exit));
    }
    if !touched.is_empty() {
        println!("  guest memory touched: {:.0} KiB", median(touched));
    }
}
