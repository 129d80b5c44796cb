//! Fuzz target `guest_record`: the workload's record lines.
//!
//! The host reads the workload's records from a pipe, or from a Linux guest's serial
//! console, where the guest kernel and anything running in the sandbox can write too: each
//! line is untrusted. The input is made text the way the host makes it (lossy UTF-8) and
//! read with [`parse_line`]. A line that is a record must survive a round trip: written
//! again with [`Record::to_line`] it is one line that reads back as the same record
//! (floats within a few units in the last place: serde_json's default float reader is
//! not exact to the bit).

#![no_main]

use libfuzzer_sys::fuzz_target;
use workload::record::{parse_line, Metric, Record, PREFIX};

/// Whether two floats read from JSON are the same number, give or take the last bits.
fn close(a: f64, b: f64) -> bool {
    a == b || (a.signum() == b.signum() && a.to_bits().abs_diff(b.to_bits()) <= 2)
}

/// The record with every metric's value replaced by the one in `like` (same shape).
fn with_values_of(mut record: Record, like: &Record) -> Record {
    if let (Record::Result { metrics, .. }, Record::Result { metrics: want, .. }) =
        (&mut record, like)
    {
        for (m, w) in metrics.iter_mut().zip(want) {
            m.value = w.value;
        }
    }
    record
}

/// A result's metrics; none for the other records.
fn metrics(record: &Record) -> &[Metric] {
    match record {
        Record::Result { metrics, .. } => metrics,
        _ => &[],
    }
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let Ok(Some(record)) = parse_line(&line) else {
        return;
    };
    let written = record.to_line();
    assert!(written.starts_with(PREFIX), "{written:?}");
    assert!(
        written.ends_with('\n') && written.matches('\n').count() == 1,
        "a record is exactly one line: {written:?}"
    );
    let again = parse_line(&written)
        .unwrap_or_else(|e| panic!("{written:?} does not read back: {e}"))
        .unwrap_or_else(|| panic!("{written:?} is not read back as a record"));
    assert_eq!(metrics(&again).len(), metrics(&record).len());
    for (a, b) in metrics(&again).iter().zip(metrics(&record)) {
        assert!(close(a.value, b.value), "{} became {}", b.value, a.value);
    }
    assert_eq!(with_values_of(again, &record), record);
});
