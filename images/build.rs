//! Builds the `workload` program and the `vcbench-vmm` monitor as static executables, for
//! this crate to embed (and `vcbench` to carry).
//!
//! The workload must run as PID 1 in an empty root file system and as a microVM's
//! `/init`, so it cannot use a dynamic loader: it is built with glibc's static linking
//! (`+crt-static`) in its own target directory, by a nested cargo, always optimised, and
//! `vcbench` carries the bytes. Its identity (an FNV-1a hash of the bytes) names the
//! installed copy and goes into every results document.
//!
//! The monitor is built the same way, but against musl where the toolchain has its
//! standard library (`rustup target add x86_64-unknown-linux-musl`): glibc's start-up
//! runs dozens of CPUID instructions (its CPU features and cache sizes), each a trap to
//! the hypervisor when the host is itself a virtual machine, and the monitor's start is on
//! the path of every micro VM's. Without the musl target it falls back to glibc and says
//! so. It is also built as one unit, with link-time optimisation. The workload stays on
//! glibc: it stands for an ordinary program.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("images/ lives in the workspace");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let target = env::var("TARGET").expect("set by cargo");

    for path in [
        "workload/src",
        "workload/Cargo.toml",
        "microvm/src",
        "microvm/Cargo.toml",
        "monotonic/src",
        "monotonic/Cargo.toml",
        "seccomp-search/src",
        "seccomp-search/Cargo.toml",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    build_workload(workspace, &out_dir, &target);
}

fn build_workload(workspace: &Path, out_dir: &Path, target: &str) {
    // <target-dir>/<profile>/build/<pkg>-<hash>/out: the target directory is 4 levels up.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(out_dir)
        .join("workload-static");
    let monitor_target = monitor_target(target);
    static_build(
        workspace,
        &target_dir,
        target,
        ("workload", "workload"),
        false,
    );
    static_build(
        workspace,
        &target_dir,
        &monitor_target,
        ("microvm", "vcbench-vmm"),
        true,
    );
    let libc = if monitor_target.ends_with("-musl") {
        "musl"
    } else {
        println!(
            "cargo:warning=the musl target is not installed, so vcbench-vmm is linked with \
             glibc, whose start-up asks the CPU for its features and caches with dozens of \
             CPUID instructions (each a VM exit where the host is itself a guest); \
             `rustup target add {}` gives the faster monitor",
            musl_of(target).unwrap_or_else(|| "x86_64-unknown-linux-musl".to_owned())
        );
        "glibc"
    };
    println!("cargo:rustc-env=VCBENCH_VMM_LIBC={libc}");

    for (binary, built_for, env) in [
        ("workload", target, "VCBENCH_WORKLOAD_FNV"),
        ("vcbench-vmm", monitor_target.as_str(), "VCBENCH_VMM_FNV"),
    ] {
        let built = target_dir.join(built_for).join("release").join(binary);
        let bytes =
            std::fs::read(&built).unwrap_or_else(|e| panic!("read the built {binary}: {e}"));
        std::fs::write(out_dir.join(binary), &bytes)
            .unwrap_or_else(|e| panic!("copy {binary} into OUT_DIR: {e}"));
        println!("cargo:rustc-env={env}={:016x}", fnv1a(&bytes));
    }
}

/// Builds `package`'s `binary` for `target` as a static executable, always optimised;
/// with `whole`, as one unit with link-time optimisation across every crate (the monitor:
/// fewer pages of code to fault in at each start).
fn static_build(
    workspace: &Path,
    target_dir: &Path,
    target: &str,
    (package, binary): (&str, &str),
    whole: bool,
) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.current_dir(workspace).args(["build", "--release"]);
    if whole {
        command
            .env("CARGO_PROFILE_RELEASE_LTO", "fat")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");
    }
    let status = command
        .args(["-p", package, "--bin", binary])
        .args(["--target", target])
        .arg("--target-dir")
        .arg(target_dir)
        .env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C strip=symbols",
        )
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("run cargo to build the workload");
    assert!(
        status.success(),
        "building the static {binary} for {target} failed"
    );
}

/// The musl counterpart of a `*-linux-gnu` target.
fn musl_of(target: &str) -> Option<String> {
    target
        .strip_suffix("-linux-gnu")
        .map(|arch| format!("{arch}-linux-musl"))
}

/// The target the monitor is built for: musl where its standard library is installed,
/// since musl's start-up runs no CPUID (glibc's runs dozens: about 0.25 ms of every
/// monitor start on a host that is itself a guest); else `target` itself.
fn monitor_target(target: &str) -> String {
    let Some(musl) = musl_of(target) else {
        return target.to_owned();
    };
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(root) = sysroot else {
        return target.to_owned();
    };
    // Built again once the target is added (a missing path is looked at every build).
    let libraries = root.join("lib/rustlib").join(&musl).join("lib");
    println!("cargo:rerun-if-changed={}", libraries.display());
    if libraries.is_dir() {
        musl
    } else {
        target.to_owned()
    }
}

/// FNV-1a, 64 bits: enough to tell builds apart, no dependency needed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
