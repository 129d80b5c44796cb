//! A Linux guest's disk, end to end in the test rig (hardware-style KVM under QEMU TCG):
//! the monitor offers a raw ext4 image on the host as a virtio-blk device, the workload as
//! init mounts it, and the `file` work's fsync'ed writes reach the image file, which is a
//! clean file system afterwards; the `microvm` and `qemu` backends make, format and remove
//! a per-instance image themselves for the `file` scenario.
//!
//! Skipped with the reason when the rig, the kernel (`vcbench kernel build`, with ext4) or
//! `mkfs.ext4` is missing (a failure under CI=true, where `.ci/run` provides all three).

#[path = "../../tests/rig/support.rs"]
mod rig;

mod guest;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Files the work writes, and their size: each file is bytes 0x5a ('Z').
const FILES: usize = 20;
const SIZE: usize = 4096;

/// The kernel `vcbench kernel build` made, if it has ext4 (the fragment asks for it).
fn guest_kernel() -> Option<PathBuf> {
    let vmlinux = guest::kernel()?;
    let config = vmlinux.with_file_name("config");
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    if !text.lines().any(|l| l == "CONFIG_EXT4_FS=y") {
        guest::skip(&format!(
            "the guest kernel {} has no ext4 ({}): run `vcbench kernel build`",
            vmlinux.display(),
            config.display()
        ));
        return None;
    }
    Some(vmlinux)
}

fn host_tool(name: &str) -> Option<PathBuf> {
    let found = ["/usr/sbin", "/sbin", "/usr/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        guest::skip(&format!("no {name} (apt-get install e2fsprogs)"));
    }
    found
}

#[test]
fn a_linux_guests_fsynced_writes_reach_the_host_image_through_virtio_blk() {
    if !rig::available() {
        return;
    }
    let (Some(kernel), Some(mkfs), Some(fsck)) =
        (guest_kernel(), host_tool("mkfs.ext4"), host_tool("e2fsck"))
    else {
        return;
    };
    let cache = images::image::cache_dir();
    let vmm = images::image::install_vmm(&cache).unwrap();
    let initramfs =
        images::initramfs::install(&cache, images::initramfs::Compression::None).unwrap();
    // The image, made and formatted on this host as the backend does it.
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(vcbench::backend::microvm::DISK_BYTES)
        .unwrap();
    let formatted = Command::new(&mkfs)
        .args(vcbench::backend::microvm::MKFS_OPTIONS)
        .arg(&image)
        .status()
        .unwrap();
    assert!(formatted.success());

    let work: Vec<String> = [
        "file",
        "--count",
        &FILES.to_string(),
        "--size",
        &SIZE.to_string(),
        "--dir",
        workload::disk::MOUNT,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let cmdline = vcbench::backend::microvm::linux_cmdline_with(false, true, &work);
    let direct = format!(
        "vcbench-vmm linux --kernel /rig/vmlinux --initrd /rig/initramfs --disk /rig/disk.img \
           --timeout-ms 120000 --cmdline '{cmdline}' > /tmp/vmm.out; echo vmm=$?; \
         echo '---- vmm ----'; cat /tmp/vmm.out; echo '----'; \
         echo zbytes=$(tr -cd Z < /rig/disk.img | wc -c); \
         e2fsck -fn /rig/disk.img > /tmp/fsck.out 2>&1; echo fsck=$?; cat /tmp/fsck.out; \
         vcbench once -b microvm --kernel /rig/vmlinux --timeout 120 --json -- \
           file --count {FILES} --size {SIZE} > /tmp/once.out 2>&1; echo once=$?; \
         echo '---- once ----'; cat /tmp/once.out; echo '----'; \
         vcbench once -b qemu --kernel /rig/vmlinux --timeout 120 --json -- \
           file --count {FILES} --size {SIZE} > /tmp/qemu.out 2>&1; echo qemu=$?; \
         echo '---- qemu ----'; cat /tmp/qemu.out; echo '----'; \
         echo leftovers=$(ls /tmp | grep -c -- -disk-)"
    );
    let qemu = rig::which("qemu-system-x86_64").expect("the rig runs on QEMU");
    let outcome = rig::Rig::default()
        .file(env!("CARGO_BIN_EXE_vcbench"), "/rig/vcbench")
        .file(&vmm, "/rig/vcbench-vmm")
        .file(&kernel, "/rig/vmlinux")
        .file(&initramfs, "/rig/initramfs")
        .file(&image, "/rig/disk.img")
        .file(&mkfs, "/usr/sbin/mkfs.ext4")
        .file(&fsck, "/rig/e2fsck")
        .file(&qemu, "/usr/bin/qemu-system-x86_64")
        .file(guest::QEMU_FIRMWARE, guest::QEMU_FIRMWARE)
        .timeout(420)
        .retry_on_timeout()
        .run(&[
            "sh",
            "-c",
            &format!("PATH=$PATH:/usr/sbin:/usr/bin; {direct}"),
        ]);
    let output = &outcome.output;
    assert_eq!(outcome.status, 0, "the rig failed:\n{output}");

    // The monitor with the disk, its filter on: the guest powered off after its records.
    assert_eq!(guest::value(output, "vmm"), "0", "{output}");
    let vmm_out = guest::section(output, "---- vmm ----");
    assert!(
        vmm_out.contains("files_per_s"),
        "the work's result on the console:\n{vmm_out}"
    );
    assert!(
        !vmm_out.contains("init: the disk"),
        "the disk mounted:\n{vmm_out}"
    );
    // The files went through the guest's page cache, its fsync, virtio-blk and the
    // monitor's writes into the image: their bytes are in the host file (the scratch
    // directory is removed at the end, but ext4 leaves freed blocks as they were).
    let z: usize = guest::value(output, "zbytes").parse().unwrap();
    assert!(
        z >= FILES * SIZE,
        "{z} bytes of the files' data in the image"
    );
    // Unmounted by init before the power-off: a clean file system for the host.
    assert_eq!(guest::value(output, "fsck"), "0", "e2fsck -fn:\n{output}");

    // The backend's own image: made in the temporary directory, formatted, removed.
    assert_eq!(guest::value(output, "once"), "0", "{output}");
    let once = guest::section(output, "---- once ----");
    assert!(once.contains("files_per_s"), "{once}");
    // QEMU with the same kind of image, as -device virtio-blk-device.
    assert_eq!(guest::value(output, "qemu"), "0", "{output}");
    let qemu = guest::section(output, "---- qemu ----");
    assert!(qemu.contains("files_per_s"), "{qemu}");
    assert_eq!(
        guest::value(output, "leftovers"),
        "0",
        "the disk images were removed"
    );
}
