//! Stamps `vcbench` with the git revision it was built from (the static workload and
//! monitor it carries are built by the `images` crate).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("bench/ lives in the workspace");
    emit_git_revision(workspace);
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
