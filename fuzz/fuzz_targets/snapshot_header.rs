//! Fuzz target `snapshot_header`: a guest's snapshot file (a micro guest's or a Linux
//! guest's), which a user names to `vcbench-vmm restore`. Its bytes are untrusted:
//! [`snapshot::read`] checks the magic, the header's length and hash, the writer before the
//! rest of the JSON, the kind against the state held, the CPU and the file's length before
//! anything is mapped; whatever the bytes, it returns a header or an error, never panics.
//! The inputs go through a file, as the monitor reads them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use microvm::snapshot;

thread_local! {
    /// One file per fuzzing process, rewritten for each input.
    static FILE: tempfile::NamedTempFile =
        tempfile::NamedTempFile::new().expect("cannot create a temporary file");
}

fuzz_target!(|data: &[u8]| {
    FILE.with(|file| {
        if std::fs::write(file.path(), data).is_err() {
            return;
        }
        if let Ok((header, _)) = snapshot::read(file.path(), None) {
            // Accepted: the memory it promises lies inside the file, and a Linux guest's
            // header holds one state per vCPU (a micro guest's none).
            let length = data.len() as u64;
            assert!(header.memory_offset.saturating_add(header.memory_bytes) <= length);
            match header.kind {
                snapshot::Kind::Micro => assert!(header.linux.is_none()),
                snapshot::Kind::Linux => {
                    let states = header.linux.as_ref().map_or(0, |l| l.vcpus.len());
                    assert!(states >= 1 && states == usize::from(header.vcpus));
                }
            }
        }
    });
});
