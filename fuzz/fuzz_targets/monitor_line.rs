//! Fuzz target `monitor_line`: the microVM monitor's output protocol.
//!
//! `vcbench` runs the monitor (`vcbench-vmm`) as a child process and reads its standard
//! output line by line with [`Line::parse`]; the lines carry what the guest wrote to its
//! console, so their contents are untrusted. A line that parses must be written back by
//! the monitor's own serialisation as one line that reads back the same (floats within
//! a few units in the last place).

#![no_main]

use libfuzzer_sys::fuzz_target;
use microvm::protocol::Line;

/// Whether two floats read from JSON are the same number, give or take the last bits.
fn close(a: f64, b: f64) -> bool {
    a == b || (a.signum() == b.signum() && a.to_bits().abs_diff(b.to_bits()) <= 2)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(line) = Line::parse(&text) else {
        return;
    };
    if let Line::Report(report) = &line {
        // What the bench crate asks of a report.
        let _ = report.end.is_clean();
        let _ = report.phase("halted");
    }
    // As the monitor writes it (`vcbench-vmm`'s `emit`): one JSON object per line.
    let json = serde_json::to_string(&line).expect("a parsed line serialises");
    assert!(!json.contains('\n'), "{json:?} spans lines");
    let mut again =
        Line::parse(&json).unwrap_or_else(|e| panic!("{json:?} does not read back: {e}"));
    if let (Line::Report(a), Line::Report(b)) = (&line, &mut again) {
        match (a.ns_per_round_trip, b.ns_per_round_trip) {
            (Some(x), Some(y)) => assert!(close(x, y), "{x} became {y}"),
            (x, y) => assert_eq!(x, y),
        }
        b.ns_per_round_trip = a.ns_per_round_trip;
    }
    assert_eq!(again, line);
});
