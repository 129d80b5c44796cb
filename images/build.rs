//! Builds the `workload` program and the `vcbench-vmm` monitor as static executables, for
//! this crate to embed (and `vcbench` to carry).
//!
//! The workload must run as PID 1 in an empty root file system and as a microVM's
//! `/init`, so it cannot use a dynamic loader: it is built with glibc's static linking
//! (`+crt-static`) in its own target directory, by a nested cargo, always optimised, and
//! `vcbench` carries the bytes. Its identity (an FNV-1a hash of the bytes) names the
//! installed copy and goes into every results document.

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
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--release", "-p", "workload", "--bin", "workload"])
        .args(["-p", "microvm", "--bin", "vcbench-vmm"])
        .args(["--target", target])
        .arg("--target-dir")
        .arg(&target_dir)
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
        "building the static workload and monitor failed"
    );

    for (binary, env) in [
        ("workload", "VCBENCH_WORKLOAD_FNV"),
        ("vcbench-vmm", "VCBENCH_VMM_FNV"),
    ] {
        let built = target_dir.join(target).join("release").join(binary);
        let bytes =
            std::fs::read(&built).unwrap_or_else(|e| panic!("read the built {binary}: {e}"));
        std::fs::write(out_dir.join(binary), &bytes)
            .unwrap_or_else(|e| panic!("copy {binary} into OUT_DIR: {e}"));
        println!("cargo:rustc-env={env}={:016x}", fnv1a(&bytes));
    }
}

/// FNV-1a, 64 bits: enough to tell builds apart, no dependency needed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
