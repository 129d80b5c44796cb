//! Builds the `workload` program and the `vcbench-vmm` monitor as static executables and
//! embeds them in `vcbench`.
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
        .expect("bench/ lives in the workspace");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let target = env::var("TARGET").expect("set by cargo");

    for path in [
        "workload/src",
        "workload/Cargo.toml",
        "microvm/src",
        "microvm/Cargo.toml",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    build_workload(workspace, &out_dir, &target);
    emit_git_revision(workspace);
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

fn emit_git_revision(workspace: &Path) {
    // In a linked worktree `.git` is a file naming the real git directory, and the
    // branch refs live in the common directory: ask git for both, so a commit in any
    // checkout rebuilds the stamp.
    let git_dir = git(workspace, &["rev-parse", "--absolute-git-dir"]).map(PathBuf::from);
    let common_dir = git(workspace, &["rev-parse", "--git-common-dir"])
        .map(|d| workspace.join(d))
        .or_else(|| git_dir.clone());
    let branch = git(workspace, &["symbolic-ref", "-q", "HEAD"]);
    let mut watched: Vec<PathBuf> = Vec::new();
    if let Some(dir) = &git_dir {
        watched.extend(["HEAD", "index"].map(|f| dir.join(f)));
    }
    if let Some(dir) = &common_dir {
        watched.push(dir.join("packed-refs"));
        watched.extend(branch.iter().map(|b| dir.join(b)));
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let revision = git(workspace, &["rev-parse", "--short=12", "HEAD"]);
    let dirty = git(
        workspace,
        &["status", "--porcelain", "--untracked-files=no"],
    )
    .is_some_and(|s| !s.is_empty());
    let revision = match revision {
        Some(r) if dirty => format!("{r}-dirty"),
        Some(r) => r,
        None => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=VCBENCH_GIT_REVISION={revision}");
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
