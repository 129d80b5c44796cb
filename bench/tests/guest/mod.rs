//! What the Linux-guest tests share: the guest kernel `vcbench kernel build` made, QEMU's
//! firmware in the rig, and reading the rig's output. Each test file includes this module
//! and uses only part of it.

#![allow(dead_code, reason = "each test file uses a part of the shared helpers")]

use std::path::PathBuf;

/// Where QEMU looks for its `-M microvm` firmware, next to its binary's install prefix.
pub const QEMU_FIRMWARE: &str = "/usr/share/qemu/qboot.rom";

/// A rig that runs this build's `vcbench` on both VM backends: the binary, the guest kernel
/// at `/rig/vmlinux`, QEMU and its firmware. `None` without a rig or a guest kernel
/// (skipped with the reason, a failure under `CI=true`).
pub fn vm_rig() -> Option<super::rig::Rig> {
    if !super::rig::available() {
        return None;
    }
    let kernel = kernel()?;
    let qemu = super::rig::which("qemu-system-x86_64").expect("the rig runs on QEMU");
    Some(
        super::rig::Rig::default()
            .file(env!("CARGO_BIN_EXE_vcbench"), "/rig/vcbench")
            .file(&kernel, "/rig/vmlinux")
            .file(&qemu, "/usr/bin/qemu-system-x86_64")
            .file(QEMU_FIRMWARE, QEMU_FIRMWARE),
    )
}

/// Skips a test with `why`; under `CI=true`, where `.ci/run` provides every prerequisite,
/// fails it instead.
pub fn skip(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {why}"
    );
    eprintln!("skipped: {why}");
}

/// The kernel `vcbench kernel build` made, or `None` (skipped with the reason).
pub fn kernel() -> Option<PathBuf> {
    match images::kernel::latest(&images::image::cache_dir()) {
        Ok(Some(built)) => Some(built.vmlinux),
        Ok(None) => {
            skip("no guest kernel has been built: run `vcbench kernel build`");
            None
        }
        Err(e) => {
            skip(&format!("the kernel cache is unreadable: {e}"));
            None
        }
    }
}

/// The text between `marker` and the next `----` line of the rig's output.
pub fn section<'a>(output: &'a str, marker: &str) -> &'a str {
    let start = output
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the rig's output:\n{output}"))
        + marker.len();
    let rest = &output[start..];
    &rest[..rest.find("\n----").unwrap_or(rest.len())]
}

/// `name=value` printed by the rig's command.
pub fn value(output: &str, name: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in the rig's output:\n{output}"))
        .trim()
        .to_owned()
}
