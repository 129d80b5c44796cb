//! A Linux guest's snapshot, end to end in the test rig (hardware-style KVM under QEMU
//! TCG): the monitor boots the project's kernel with the image's initramfs on 2 vCPUs,
//! saves the guest when its init writes its first marker and lets it run on to its end; a new
//! monitor process restores it, and the guest goes on from there: it writes the workload's
//! records and powers off cleanly. `vcbench run -b microvm --kernel -s startup,warm`
//! boots three and restores three, from a snapshot of its own. The same file, once cut short or altered, is refused with the
//! reason. The restore's figures (phases, page faults, memory read) are printed: they are
//! emulated, and describe no real machine.
//!
//! Skipped with the reason when the rig or the kernel is missing (a failure under CI=true,
//! where `.ci/run` installs the rig's packages and builds the kernel).

#[path = "../../tests/rig/support.rs"]
mod rig;

mod guest;

use microvm::protocol::{End, Line};

/// The monitor's report in its output.
fn report(output: &str) -> microvm::protocol::WireReport {
    output
        .lines()
        .find_map(|l| match Line::parse(l) {
            Ok(Line::Report(r)) => Some(*r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no report in {output}"))
}

fn phase(report: &microvm::protocol::WireReport, name: &str) -> u64 {
    report
        .phases
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, at)| *at)
        .unwrap_or_else(|| panic!("no phase {name} in {:?}", report.phases))
}

/// The console lines that are the workload's records, with their stamps.
fn records(output: &str) -> Vec<(String, u64)> {
    output
        .lines()
        .filter_map(|l| match Line::parse(l) {
            Ok(Line::Console(c)) if c.line.starts_with("@vcbench ") => Some((c.line, c.at)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_linux_guest_snapshotted_after_init_goes_on_in_a_new_monitor_and_a_damaged_one_is_refused() {
    if !rig::available() {
        return;
    }
    let Some(kernel) = guest::kernel() else {
        return;
    };
    let cache = images::image::cache_dir();
    let vmm = images::image::install_vmm(&cache).unwrap();
    let initramfs =
        images::initramfs::install(&cache, images::initramfs::Compression::None).unwrap();
    let cmdline = vcbench::backend::microvm::linux_cmdline(false, &["hello".to_owned()]);
    let command = format!(
        "vcbench-vmm linux --kernel /rig/vmlinux --initrd /rig/initramfs --vcpus 2 \
           --timeout-ms 60000 --cmdline '{cmdline}' --snapshot-to /tmp/s.snap > /tmp/snap.out 2>&1; echo snap=$?; \
         echo '---- snap ----'; cat /tmp/snap.out; echo '----'; \
         vcbench-vmm restore /tmp/s.snap --timeout-ms 60000 > /tmp/restore.out 2>&1; \
         echo restore=$?; echo '---- restore ----'; cat /tmp/restore.out; echo '----'; \
         vcbench run -b microvm --kernel /rig/vmlinux -s startup,warm -r 3 -w 0 --timeout 60 --json \
           > /tmp/warm.out 2>/tmp/warm.err; echo warm=$?; \
         echo '---- warm ----'; cat /tmp/warm.out; echo '----'; \
         echo '---- warm stderr ----'; cat /tmp/warm.err; echo '----'; \
         truncate -s 1000000 /tmp/s.snap; \
         vcbench-vmm restore /tmp/s.snap > /tmp/cut.out 2>&1; echo cut=$?; \
         echo '---- cut ----'; cat /tmp/cut.out; echo '----'; \
         printf X | dd of=/tmp/s.snap bs=1 seek=200 conv=notrunc 2>/dev/null; \
         vcbench-vmm restore /tmp/s.snap > /tmp/tampered.out 2>&1; echo tampered=$?; \
         echo '---- tampered ----'; cat /tmp/tampered.out; echo '----'; \
         echo leftovers=$(ls /tmp | grep -c -- '-snapshot-')"
    );
    let outcome = rig::Rig::default()
        .file(env!("CARGO_BIN_EXE_vcbench"), "/rig/vcbench")
        .file(&vmm, "/rig/vcbench-vmm")
        .file(&kernel, "/rig/vmlinux")
        .file(&initramfs, "/rig/initramfs")
        .timeout(300)
        .retry_on_timeout()
        .run(&["sh", "-c", &command]);
    let output = &outcome.output;
    assert_eq!(outcome.status, 0, "the rig failed:\n{output}");

    // Snapshotted at init's first marker, then run on to its end.
    assert_eq!(guest::value(output, "snap"), "0", "{output}");
    let snap = guest::section(output, "---- snap ----");
    let saved = report(snap);
    assert_eq!(saved.end, End::PoweredOff, "{snap}");
    assert!(phase(&saved, "first_marker") <= phase(&saved, "snapshot_saved"));
    assert!(phase(&saved, "snapshot_saved") <= phase(&saved, "powered_off"));
    let saved_kib = saved.cpu["snapshot_memory_saved_kib"];
    assert!(saved_kib > 1024, "{saved_kib} KiB of guest memory saved");
    assert_eq!(records(snap).len(), 2, "started and result: {snap}");

    // Restored in a new monitor: the workload's records, then a clean power-off.
    assert_eq!(guest::value(output, "restore"), "0", "{output}");
    let restore = guest::section(output, "---- restore ----");
    let restored = report(restore);
    assert_eq!(restored.end, End::PoweredOff, "{restore}");
    let recs = records(restore);
    assert_eq!(recs.len(), 2, "started and result: {restore}");
    assert!(recs[0].0.contains("\"record\":\"started\""), "{restore}");
    assert!(recs[1].0.contains("\"record\":\"result\""), "{restore}");
    // Both vCPUs were paused, saved and restored: the guest still counts two.
    assert!(
        recs[1].0.contains(r#""name":"cpus_online","value":2.0"#),
        "{restore}"
    );
    // Its one marker is the power-off: init's first was written before the snapshot.
    assert_eq!(
        restored.markers.iter().map(|m| m.0).collect::<Vec<_>>(),
        [microvm::layout::MARKER_POWEROFF]
    );
    let read = phase(&restored, "snapshot_read");
    let resumed = phase(&restored, "resumed");
    let faults = restored.cpu["restore_minor_faults"];
    let rss = restored.cpu["restore_mapping_rss_kib"];
    let anon = restored.cpu["restore_mapping_anon_kib"];
    assert_eq!(restored.cpu["snapshot_msrs_skipped"], 0, "{restore}");
    assert!(rss > 0 && rss < saved_kib, "read {rss} of {saved_kib} KiB");
    assert!(anon <= rss);
    eprintln!(
        "emulated (QEMU TCG): {saved_kib} KiB of guest memory saved ({} ms to save at init's \
         marker); restore: {:.1} ms from the snapshot read to the guest resumed, {:.1} ms \
         more to the first record; {faults} minor faults; {rss} KiB of the snapshot's \
         memory read, {anon} KiB of it written (copied)",
        (phase(&saved, "snapshot_saved") - phase(&saved, "first_marker")) / 1_000_000,
        (resumed - read) as f64 / 1e6,
        (recs[0].1 - resumed) as f64 / 1e6,
    );

    // The warm scenario on a Linux guest: restored from its snapshot, launch to the first
    // record; its snapshot directory removed afterwards.
    assert_eq!(guest::value(output, "warm"), "0", "{output}");
    let warm = guest::section(output, "---- warm ----");
    let results: serde_json::Value = serde_json::from_str(warm.trim()).unwrap_or_else(|e| {
        let stderr = guest::section(output, "---- warm stderr ----");
        panic!("bad results JSON: {e}\n{warm}\n{stderr}")
    });
    let median = |scenario: &str, metric: &str| {
        results["figures"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["scenario"] == scenario && f["metric"] == metric)
            .and_then(|f| f["summary"]["median"].as_f64())
            .unwrap_or_else(|| panic!("no {scenario} {metric} in {warm}"))
    };
    let (cold, warm_ms) = (
        median("startup", "time_to_start"),
        median("warm", "warm_start"),
    );
    eprintln!(
        "emulated (QEMU TCG), 3 runs each: launch to the first record {cold:.1} ms booted, \
         {warm_ms:.1} ms restored"
    );
    let text = results.to_string();
    assert!(
        text.contains("restored from its snapshot after init"),
        "{warm}"
    );
    assert_eq!(guest::value(output, "leftovers"), "0");

    // Cut short (its memory), then altered (its header): refused with the reason, nothing
    // run.
    assert_ne!(guest::value(output, "cut"), "0");
    let cut = guest::section(output, "---- cut ----");
    assert!(cut.contains("is cut short"), "{cut}");
    assert_ne!(guest::value(output, "tampered"), "0");
    let tampered = guest::section(output, "---- tampered ----");
    assert!(tampered.contains("altered or damaged"), "{tampered}");
    assert!(!tampered.contains("@vcbench"), "{tampered}");
}
