//! Restoring a Linux guest from its snapshot ([`super::machine::snapshot_to`]) in a fresh
//! monitor process, where it goes on from its init's first marker as if never paused:
//!
//! 1. the snapshot is read and checked by the caller ([`crate::snapshot::read`]), before
//!    KVM is touched (`snapshot_read`);
//! 2. the VM with its in-kernel interrupt controllers and PIT (`vm_created`), its memory
//!    mapped privately from the file, so a page is read only when the guest first touches
//!    it and a page it writes becomes the monitor's own copy (`memory_registered`);
//! 3. the PIT, the KVM clock and the interrupt controllers set back, then each vCPU
//!    created and its state set back ([`super::state`], `state_restored`);
//! 4. the serial console from its saved registers; the marker and i8042 as at boot
//!    (`vm_built`);
//! 5. one thread per vCPU, supervised as a booted guest's (`resumed` when the first vCPU
//!    enters the guest), to the guest's end.
//!
//! What the restore cost is counted in the report: the minor page faults the monitor's
//! process took from the start of the restore to the guest's end (`restore_minor_faults`:
//! mostly the guest's first touches of its pages), and how much of the mapping of guest
//! memory the process holds at the end (`restore_mapping_rss_kib`: the pages the guest
//! read or wrote, of which `restore_mapping_anon_kib` are pages it wrote, copied from the
//! file). Both are read through files opened before the monitor's system call filter is
//! on, with plain reads, which it allows.

use std::io::Read;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use kvm_ioctls::Cap;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use super::machine::{run_vcpus, watching_panics, Error, Note, Shared, SharedConsole};
use super::symbols;
use crate::bus::MmioPolicy;
use crate::devices::serial::{Console, LineHandler};
use crate::layout;
use crate::machine::{self, stamp, End, Interrupts, Machine, Phases, Report, Spec};
use crate::snapshot::{Header, Kind};

/// Restores the Linux guest of the snapshot at `path`, whose checked `header` and open
/// `file` [`crate::snapshot::read`] returned, and runs it on to its end, at most `timeout`;
/// hands each console line to `on_line`, calls `before_teardown` with the report while the
/// VM still exists, and tears it down.
pub fn restore(
    path: &Path,
    header: Header,
    file: &std::fs::File,
    timeout: Duration,
    on_line: LineHandler,
    before_teardown: impl FnOnce(&Report),
) -> Result<Report, Error> {
    let mut phases = Phases::new();
    stamp(&mut phases, "snapshot_read");
    let faults_before = minor_faults_now();
    let linux = match (header.kind, header.linux) {
        (Kind::Linux, Some(linux)) => linux,
        _ => return Err(Error::NotLinux(path.to_owned())),
    };
    if timeout.is_zero() {
        return Err(Error::ZeroTimeout);
    }

    // 2. The VM and its memory, from the file.
    let spec = Spec {
        vcpus: header.vcpus,
        memory_bytes: header.memory_bytes,
        interrupts: Interrupts::InKernel,
        capabilities: &[
            (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
            (Cap::MpState, "KVM_CAP_MP_STATE"),
        ],
    };
    let mut machine = Machine::restore(spec, &mut phases, file, header.memory_offset)?;

    // 3. The VM's devices in KVM, then each vCPU.
    linux.vm.restore(machine.vm())?;
    let mut msrs_skipped = 0u64;
    machine.create_vcpus(|index, vcpu| {
        let saved = linux
            .vcpus
            .get(usize::from(index))
            .ok_or_else(|| super::state::Error::Mismatch(format!("no state for vCPU {index}")))?;
        msrs_skipped += saved.restore(vcpu)?.len() as u64;
        Ok::<(), Error>(())
    })?;
    stamp(&mut phases, "state_restored");

    // 4. Devices. A kernel panic on the console wakes the supervisor at once.
    let notes = mpsc::channel::<Note>();
    let on_line = watching_panics(on_line, notes.0.clone());
    let irq = machine.irq_line(layout::SERIAL_IRQ)?;
    let serial_state = vm_superio::serial::SerialState::from(&linux.serial);
    let (console, serial) =
        Console::with_interrupt_from(&serial_state, irq, on_line).ok_or(Error::SerialState)?;
    let console = Arc::new(Mutex::new(console));
    let (buses, markers) = machine::buses(
        MmioPolicy::Ignore,
        Some(Box::new(SharedConsole(Arc::clone(&console)))),
    )?;
    stamp(&mut phases, "vm_built");

    // What the run cost is read through files opened now, before the filter.
    let guest_ranges: Vec<(usize, usize)> = machine
        .memory()
        .iter()
        .map(|region| (region.as_ptr() as usize, region.len() as usize))
        .collect();
    let mut stat = std::fs::File::open("/proc/self/stat").ok();
    let mut smaps = std::fs::File::open("/proc/self/smaps").ok();

    // 5. Run.
    let shared = Shared::new(
        buses,
        Arc::clone(&markers),
        usize::from(header.vcpus),
        None::<symbols::Symbols>,
    );
    let entry = Mutex::new(None);
    let counts = run_vcpus(
        machine.vcpus_mut(),
        &shared,
        &entry,
        timeout,
        notes,
        &mut |_| {},
    );
    let faults_after = stat
        .as_mut()
        .and_then(read_all)
        .and_then(|text| minor_faults_in(&text));
    let (rss_kib, anon_kib) = smaps
        .as_mut()
        .and_then(read_all)
        .map(|text| mapping_kib(&text, &guest_ranges))
        .unwrap_or((0, 0));
    if let Some(at) = entry.lock().ok().and_then(|e| *e) {
        phases.push(("resumed", at));
    }
    let (end, ended_at, diagnosis) = shared.ending();
    let markers = markers.lock().map(|m| m.clone()).unwrap_or_default();
    if let Some(&(_, first)) = markers.stamps.first() {
        phases.push(("first_marker", first));
    }
    let clean = matches!(end, End::PoweredOff | End::Reset | End::Halted);
    phases.push((if clean { "powered_off" } else { "stopped" }, ended_at));
    let serial = serial.lock().map(|c| c.clone()).unwrap_or_default();
    let mut cpu = vec![
        ("snapshot_msrs_skipped".to_owned(), msrs_skipped),
        ("restore_mapping_rss_kib".to_owned(), rss_kib),
        ("restore_mapping_anon_kib".to_owned(), anon_kib),
    ];
    if let (Some(before), Some(after)) = (faults_before, faults_after) {
        cpu.push((
            "restore_minor_faults".to_owned(),
            after.saturating_sub(before),
        ));
    }
    let mut report = Report {
        diagnosis,
        cpu,
        phases,
        markers,
        exits: counts,
        serial,
        end,
        // For a mapping of a file, mincore(2) tells what is in the page cache, touched or
        // not: what the guest read is `restore_mapping_rss_kib`.
        guest_touched_kib: None,
        kernel: linux.kernel.clone(),
        devices: Vec::new(),
    };
    before_teardown(&report);
    drop(shared);
    drop(console);
    drop(machine);
    report.phases.push(("torn_down", crate::monotonic_ns()));
    Ok(report)
}

/// The process's minor page faults so far (getrusage(2)).
fn minor_faults_now() -> Option<u64> {
    // SAFETY: rusage is plain data; all-zero is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, exclusively borrowed rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    (rc == 0).then(|| u64::try_from(usage.ru_minflt).unwrap_or(0))
}

/// The minor faults field of a /proc/PID/stat line (the 10th; the command name in
/// parentheses may hold spaces).
fn minor_faults_in(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields from the 3rd (state) on.
    after_name.split_whitespace().nth(7)?.parse().ok()
}

/// The whole of a /proc file, with plain read(2) calls (no fstat, which the filter
/// refuses).
fn read_all(file: &mut std::fs::File) -> Option<String> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    String::from_utf8(bytes).ok()
}

/// The `Rss` and `Anonymous` KiB of the mappings in /proc/PID/smaps text that start inside
/// one of `ranges` (host address, bytes).
fn mapping_kib(smaps: &str, ranges: &[(usize, usize)]) -> (u64, u64) {
    let (mut rss, mut anon) = (0, 0);
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, _)) = first.split_once('-') {
            if let Ok(start) = usize::from_str_radix(start, 16) {
                inside = ranges
                    .iter()
                    .any(|&(at, len)| start >= at && start < at + len);
                continue;
            }
        }
        if !inside {
            continue;
        }
        let kib = || {
            line.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if line.starts_with("Rss:") {
            rss += kib();
        } else if line.starts_with("Anonymous:") {
            anon += kib();
        }
    }
    (rss, anon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_faults_are_the_tenth_field_of_a_stat_line() {
        let line = "4242 (vcbench vmm) S 1 4242 4242 0 -1 4194560 1234 0 0 0 5 6 0 0 20 0 3";
        assert_eq!(minor_faults_in(line), Some(1234));
        assert_eq!(minor_faults_in("garbage"), None);
        let here = read_all(&mut std::fs::File::open("/proc/self/stat").unwrap()).unwrap();
        let now = minor_faults_in(&here).unwrap();
        assert!(now > 0 && now <= minor_faults_now().unwrap() + 1000);
    }

    #[test]
    fn the_guest_mappings_rss_and_copied_pages_are_summed_from_smaps() {
        let smaps = "\
7f0000000000-7f0000200000 r--p 00001000 08:01 12 /tmp/s.snap
Size:               2048 kB
Rss:                 120 kB
Anonymous:            8 kB
7f0000200000-7f0000400000 r--p 00201000 08:01 12 /tmp/s.snap
Rss:                  40 kB
Anonymous:            4 kB
7f1000000000-7f1000001000 rw-p 00000000 00:00 0
Rss:                 999 kB
Anonymous:          999 kB
";
        let ranges = [(0x7f00_0000_0000, 0x40_0000)];
        assert_eq!(mapping_kib(smaps, &ranges), (160, 12));
        assert_eq!(mapping_kib(smaps, &[]), (0, 0));
    }
}
