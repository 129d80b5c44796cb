//! A user's image on the backends: the workload line `exec --root DIR ...` names the
//! image's unpacked root. Natively the workload chroots the user's program into it; a
//! sandbox takes it as its root file system instead, runs the line without `--root`, and
//! gets the workload from its own `/tmp` (the image is never written to).
//!
//! A Linux guest (the `microvm` and `qemu` backends) boots from an initramfs made of the
//! image's files with the workload as `/init` ([`linux_guest`]): made once per image and
//! build of the workload, beside the unpacked image in the cache, and checked against the
//! guest's memory. Its init runs the line from the kernel's command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// Puts the workload into a sandbox's host `/tmp` directory (a hard link, else a copy
/// written so that it can be executed while other threads fork); returns its path inside
/// ([`WORKLOAD_INSIDE`]).
pub fn place_workload(workload: &Path, tmp: &Path) -> Result<String, Error> {
    let name = WORKLOAD_INSIDE.trim_start_matches("/tmp/");
    let target = tmp.join(name);
    std::fs::hard_link(workload, &target)
        .or_else(|_| images::image::write_executable(&target, &std::fs::read(workload)?))
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

/// Guest memory a Linux guest needs besides its initramfs, MiB: its kernel (loaded at 16
/// MiB, with its own allocations) and room for the program.
pub const GUEST_BASE_MIB: u64 = 64;

/// The most arguments a Linux guest's init takes from the kernel's command line (the
/// kernel's `MAX_INIT_ARGS`, 32, less the program's own name).
pub const MAX_INIT_ARGS: usize = 31;

/// A Linux guest that runs a user's program from a user's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxGuest {
    /// Its initramfs: the image's files with the workload as `/init`.
    pub initramfs: PathBuf,
    /// The initramfs's size, bytes.
    pub initramfs_bytes: u64,
    /// What it takes in guest memory once unpacked, bytes.
    pub unpacked_bytes: u64,
    /// The workload line its init runs, each argument as the kernel's command line takes
    /// it (quoted where it holds spaces).
    pub args: Vec<String>,
}

/// The initramfs made in this process for each image root.
static MADE: Mutex<BTreeMap<PathBuf, images::initramfs::Made>> = Mutex::new(BTreeMap::new());

/// For a workload line with a user's image (`exec --root DIR ...`), the Linux guest that
/// runs it in `memory_mib` of memory: its initramfs, made unless it already was, and the
/// line its init runs. `None` for a line without an image; an error saying what to change
/// when the image does not fit the guest's memory or the line cannot pass the kernel's
/// command line.
pub fn linux_guest(args: &[String], memory_mib: u64) -> Result<Option<LinuxGuest>, Error> {
    let Some((root, line)) = split_root(args) else {
        return Ok(None);
    };
    let refuse = |why: String| Error::Spawn {
        what: format!("a Linux guest from the image {}", root.display()),
        source: std::io::Error::other(why),
    };
    let line = guest_line(&line).map_err(refuse)?;
    let made = initramfs_of(&root)?;
    fits(made.bytes, made.unpacked_bytes, memory_mib).map_err(refuse)?;
    Ok(Some(LinuxGuest {
        initramfs: made.path,
        initramfs_bytes: made.bytes,
        unpacked_bytes: made.unpacked_bytes,
        args: line,
    }))
}

/// The image root's initramfs, made once: in the image's own cache directory when it was
/// unpacked there (`<cache>/images/<digest>/rootfs`, so it goes with the image), else (a
/// directory used in place, which may change between runs) made again by each process
/// under `<cache>/images/directory-<hash of its path>`.
fn initramfs_of(root: &Path) -> Result<images::initramfs::Made, Error> {
    let mut made = MADE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = made.get(root) {
        return Ok(found.clone());
    }
    let unpacked = root
        .parent()
        .filter(|dir| root.ends_with("rootfs") && dir.join("image.json").is_file());
    let dir = match unpacked {
        Some(dir) => dir.to_owned(),
        None => {
            let dir = images::image::cache_dir()
                .join("images")
                .join(format!("directory-{:016x}", fnv1a(root)));
            let stale = dir.join(images::initramfs::image_initramfs_name());
            match std::fs::remove_file(&stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Spawn {
                        what: format!("the initramfs {}", stale.display()),
                        source: e,
                    })
                }
                _ => {}
            }
            dir
        }
    };
    // Staged where `vcbench clean` finds what a killed run left (as an image's unpack).
    let staging = images::image::cache_dir().join("images");
    let prefix = format!(".unpack-{}-initramfs-", std::process::id());
    let found = images::initramfs::install_root(&dir, root, (&staging, &prefix)).map_err(|e| {
        Error::Spawn {
            what: format!("the initramfs of the image {}", root.display()),
            source: std::io::Error::other(super::protocol::error_chain(&e)),
        }
    })?;
    made.insert(root.to_owned(), found.clone());
    Ok(found)
}

/// FNV-1a of a path's bytes.
fn fnv1a(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Whether a Linux guest of `memory_mib` holds an initramfs of `bytes`, which takes
/// `unpacked` bytes once unpacked; what to give when it does not. The kernel unpacks the
/// archive into its root file system, a tmpfs that may fill at most half the memory the
/// kernel counts as its own, while it still holds the archive (memory it does not count
/// until it frees it): the guest needs twice what the image takes unpacked, the archive
/// once, and [`GUEST_BASE_MIB`] and a fiftieth more for the kernel (its page tables and
/// page descriptors grow with the memory) and the program.
pub fn fits(bytes: u64, unpacked: u64, memory_mib: u64) -> Result<(), String> {
    let mib = |b: u64| b.div_ceil(1 << 20);
    let image = 2 * mib(unpacked) + mib(bytes);
    let needed = image + image / 50 + GUEST_BASE_MIB;
    if memory_mib >= needed {
        return Ok(());
    }
    Err(format!(
        "the image makes an initramfs of {} MiB, {} MiB once unpacked into the guest's root \
         file system, which may fill only half the memory left beside the initramfs: \
         --vm-memory-mib {memory_mib} is too little; give --vm-memory-mib {needed} or more",
        mib(bytes),
        mib(unpacked)
    ))
}

/// The workload line a Linux guest's init runs for `line` (`exec OPTIONS -- PROGRAM ...`),
/// as the kernel's command line passes it: without `--hold` (the host cannot signal into
/// the guest, so a service is stopped once ready and its memory taken as the guest
/// powers off) and without the `--` before the program (the kernel would end init's
/// arguments there); an argument with spaces quoted. Refused, saying why: an argument
/// holding a double quote or a control character, or `--`, a program starting with `-`,
/// more arguments than init takes.
pub fn guest_line(line: &[String]) -> Result<Vec<String>, String> {
    let split = line.iter().position(|a| a == "--").unwrap_or(line.len());
    let (options, program) = (&line[..split], line.get(split + 1..).unwrap_or_default());
    if program.first().is_some_and(|p| p.starts_with('-')) {
        return Err(format!(
            "the program {:?} starts with '-', which a Linux guest's init would take as \
             an option",
            program[0]
        ));
    }
    let mut args = Vec::new();
    for arg in options.iter().filter(|a| *a != "--hold").chain(program) {
        if arg == "--" {
            return Err(
                "an argument \"--\" cannot reach a Linux guest's init: the kernel ends \
                 init's arguments there"
                    .to_owned(),
            );
        }
        if arg.contains('"') || arg.chars().any(char::is_control) {
            return Err(format!(
                "the argument {arg:?} holds a double quote or a control character, which \
                 the kernel's command line cannot pass to a Linux guest's init"
            ));
        }
        if arg.is_empty() || arg.chars().any(char::is_whitespace) {
            args.push(format!("\"{arg}\""));
        } else {
            args.push(arg.clone());
        }
    }
    if args.len() > MAX_INIT_ARGS {
        return Err(format!(
            "a Linux guest's init takes at most {MAX_INIT_ARGS} arguments from the kernel's \
             command line, and this line has {} (the image's environment counts: two each)",
            args.len()
        ));
    }
    Ok(args)
}

/// Whether `cmdline` fits the kernel's command line ([`microvm::layout::CMDLINE_MAX`]
/// bytes with its NUL).
pub fn check_cmdline(cmdline: &str) -> Result<(), Error> {
    if cmdline.len() < microvm::layout::CMDLINE_MAX {
        return Ok(());
    }
    Err(Error::Spawn {
        what: "a Linux guest for the user's program".to_owned(),
        source: std::io::Error::other(format!(
            "its kernel command line is {} bytes, and a guest's holds at most {}: shorten \
             the command or the image's environment",
            cmdline.len(),
            microvm::layout::CMDLINE_MAX - 1
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(line: &[&str]) -> Vec<String> {
        line.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_guest_s_line_passes_the_kernel_s_command_line() {
        let line = strings(&[
            "exec",
            "--ready",
            "output:^listening on .*$",
            "--hold",
            "--env",
            "GREETING=hello there",
            "--",
            "sh",
            "-c",
            "echo $GREETING",
            "",
        ]);
        assert_eq!(
            guest_line(&line).unwrap(),
            strings(&[
                "exec",
                "--ready",
                "\"output:^listening on .*$\"",
                "--env",
                "\"GREETING=hello there\"",
                "sh",
                "-c",
                "\"echo $GREETING\"",
                "\"\"",
            ])
        );
        for (bad, says) in [
            (
                &["exec", "--", "sh", "-c", "echo \"hi\""][..],
                "double quote",
            ),
            (&["exec", "--", "printf", "a\nb"], "control character"),
            (
                &["exec", "--", "env", "--", "true"],
                "ends init's arguments",
            ),
            (&["exec", "--", "-x"], "starts with '-'"),
        ] {
            let error = guest_line(&strings(bad)).unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
        let many: Vec<String> = ["exec", "--", "echo"]
            .into_iter()
            .map(str::to_owned)
            .chain((0..40).map(|i| i.to_string()))
            .collect();
        assert!(guest_line(&many)
            .unwrap_err()
            .contains("at most 31 arguments"));
    }

    #[test]
    fn the_guest_s_memory_must_hold_the_initramfs_twice_and_the_kernel() {
        // The busybox image of the tests: 6 MiB, 7 once unpacked.
        assert!(fits(6 << 20, 7 << 20, 128).is_ok());
        // The Debian image with python3 (180 MiB, 202 once unpacked): a guest of 452 MiB
        // failed to unpack it in the rig, one of 600 MiB ran it.
        let error = fits(180 << 20, 202 << 20, 452).unwrap_err();
        assert!(
            error.contains("initramfs of 180 MiB, 202 MiB once unpacked")
                && error.contains("--vm-memory-mib 452 is too little")
                && error.contains("give --vm-memory-mib 659 or more"),
            "{error}"
        );
        assert!(fits(180 << 20, 202 << 20, 659).is_ok());
        assert!(check_cmdline("console=ttyS0").is_ok());
        assert!(check_cmdline(&"x".repeat(4096)).is_err());
    }

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
