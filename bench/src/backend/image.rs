//! A user's image on the backends: the workload line `exec --root DIR ...` names the
//! image's unpacked root. Natively the workload chroots the user's program into it; a
//! sandbox takes it as its root file system instead, runs the line without `--root`, and
//! gets the workload from its own `/tmp` (the image is never written to).

use std::path::{Path, PathBuf};

use super::protocol::Error;

/// Where the workload is inside a sandbox whose root is a user's image.
pub const WORKLOAD_INSIDE: &str = "/tmp/.vcbench-workload";

/// The image root a workload line names (`exec --root DIR ...`), and the line as a sandbox
/// whose root is that image runs it; `None` for a line without an image.
pub fn split_root(args: &[String]) -> Option<(PathBuf, Vec<String>)> {
    match args {
        [exec, root, dir, rest @ ..] if exec == "exec" && root == "--root" => {
            let mut line = vec![exec.clone()];
            line.extend(rest.iter().cloned());
            Some((PathBuf::from(dir), line))
        }
        _ => None,
    }
}

/// Puts the workload into a sandbox's host `/tmp` directory (a hard link, else a copy);
/// returns its path inside ([`WORKLOAD_INSIDE`]).
pub fn place_workload(workload: &Path, tmp: &Path) -> Result<String, Error> {
    let name = WORKLOAD_INSIDE.trim_start_matches("/tmp/");
    let target = tmp.join(name);
    std::fs::hard_link(workload, &target)
        .or_else(|_| std::fs::copy(workload, &target).map(drop))
        .map_err(|source| Error::Spawn {
            what: format!("the workload in {}", tmp.display()),
            source,
        })?;
    Ok(WORKLOAD_INSIDE.to_owned())
}

/// Whether this process runs as root (natively, a user's image needs chroot).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_taken_from_an_exec_line_only() {
        let line: Vec<String> = ["exec", "--root", "/img", "--ready", "exit", "--", "true"]
            .map(String::from)
            .to_vec();
        let (root, rest) = split_root(&line).unwrap();
        assert_eq!(root, Path::new("/img"));
        assert_eq!(rest, ["exec", "--ready", "exit", "--", "true"]);
        assert!(split_root(&["hello".to_owned()]).is_none());
        assert!(split_root(&["exec".to_owned(), "--".to_owned(), "true".to_owned()]).is_none());
    }
}
