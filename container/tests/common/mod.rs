//! Shared helpers of the container tests (and of the cost example): a busybox root file
//! system, one holding the running binary itself, running a container to completion with
//! its output captured, and checks that nothing is left.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use container::{Container, Spec, Stdio};

/// Whether this test may run here: root and a static busybox. Prints why not, and fails
/// under CI=true, where everything is installed.
pub fn prerequisites() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let busybox = Path::new("/bin/busybox").exists();
    let missing = match (root, busybox) {
        (true, true) => return true,
        (false, _) => "not root (containers with cgroups need it)",
        (true, false) => "no /bin/busybox (apt-get install busybox-static)",
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {missing}"
    );
    eprintln!("skipped: {missing}");
    false
}

/// A root file system with busybox and its applets. Busybox is hard-linked, not copied:
/// a file open for writing while another test thread forks would make exec fail with
/// ETXTBSY. (Copied only where /bin and the temporary directory are different file systems.)
pub fn busybox_rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let busybox = std::fs::canonicalize("/bin/busybox").unwrap();
    if std::fs::hard_link(&busybox, bin.join("busybox")).is_err() {
        std::fs::copy(&busybox, bin.join("busybox")).unwrap();
    }
    for applet in [
        "sh", "cat", "ls", "hostname", "echo", "sleep", "head", "tr", "id", "mount", "ps", "seq",
        "wc", "grep", "mknod", "true",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    for d in ["proc", "sys", "dev", "tmp"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    // Readable by the unprivileged users of the rootless tests.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A root file system holding the running binary (as `/{name}`) and the shared libraries
/// it needs: its ELF interpreter at the path the binary names, and every library this
/// process has mapped (from /proc/self/maps, so no `ldd` is needed, as in the test rig),
/// so a test or an example can run itself inside a container. The binary is hard-linked
/// where it can be (copied otherwise: then no other thread may fork until it is closed,
/// or exec fails with ETXTBSY).
pub fn self_rootfs(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["proc", "sys", "dev", "tmp"] {
        std::fs::create_dir(root.join(d)).unwrap();
    }
    let me = std::env::current_exe().unwrap();
    if std::fs::hard_link(&me, root.join(name)).is_err() {
        std::fs::copy(&me, root.join(name)).unwrap();
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut libs: Vec<std::path::PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && p.contains(".so"))
        .map(std::path::PathBuf::from)
        .collect();
    libs.extend(interpreter(&me));
    libs.sort();
    libs.dedup();
    for lib in libs {
        let inside = root.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(&lib).unwrap(), &inside).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The ELF interpreter (`PT_INTERP`) a 64-bit little-endian executable names, if any.
fn interpreter(binary: &Path) -> Option<std::path::PathBuf> {
    let elf = std::fs::read(binary).ok()?;
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at =
        |at: usize| usize::try_from(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?)).ok();
    if elf.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, usize::from(u16_at(0x36)?), u16_at(0x38)?);
    (0..usize::from(phnum)).find_map(|i| {
        let header = phoff + i * phentsize;
        (u32_at(header)? == 3).then_some(())?;
        let (offset, size) = (u64_at(header + 8)?, u64_at(header + 32)?);
        let path = elf.get(offset..offset + size)?;
        let path = path.strip_suffix(&[0]).unwrap_or(path);
        Some(std::path::PathBuf::from(std::str::from_utf8(path).ok()?))
    })
}

/// A spec running `script` with busybox sh.
pub fn sh(rootfs: &Path, script: &str) -> Spec {
    Spec::new(rootfs, vec!["/bin/sh".into(), "-c".into(), script.into()])
}

/// What a finished container gave.
#[derive(Debug)]
pub struct Finished {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub stats: Option<container::cgroup::Stats>,
    pub phases: Vec<&'static str>,
    /// The phases with their CLOCK_MONOTONIC stamps, ns.
    pub stamps: Vec<(&'static str, u64)>,
    /// How long Container::start took (to the program's exec), µs.
    pub started_us: f64,
    pub cgroup_dirs: Vec<std::path::PathBuf>,
    pub pid: u32,
}

fn pipe() -> (std::fs::File, OwnedFd) {
    let (r, w) = std::io::pipe().unwrap();
    (std::fs::File::from(OwnedFd::from(r)), OwnedFd::from(w))
}

/// Runs a container to its end (or `timeout`), capturing its output, and destroys it.
pub fn run(spec: &Spec, timeout: Duration) -> Result<Finished, container::Error> {
    let (mut out_r, out_w) = pipe();
    let (mut err_r, err_w) = pipe();
    let begun = Instant::now();
    let c = Container::start(
        spec,
        Stdio {
            stdin: None,
            stdout: out_w,
            stderr: err_w,
        },
    );
    let mut c = c?;
    let started_us = begun.elapsed().as_secs_f64() * 1e6;
    let readers = [
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out_r.read_to_string(&mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err_r.read_to_string(&mut s);
            s
        }),
    ];
    let (reaped, timed_out) = c.wait(Instant::now() + timeout)?;
    let stats = c.cgroup().map(|g| g.stats());
    let cgroup_dirs = c.cgroup().map(|g| g.dirs().to_vec()).unwrap_or_default();
    let phases = c.phases().iter().map(|(n, _)| *n).collect();
    let stamps = c.phases().to_vec();
    let pid = c.pid();
    c.destroy()?;
    let [out, err] = readers.map(|r| r.join().unwrap());
    Ok(Finished {
        status: reaped.status,
        stdout: out,
        stderr: err,
        timed_out,
        stats,
        phases,
        stamps,
        started_us,
        cgroup_dirs,
        pid,
    })
}

/// Asserts that nothing of a finished container remains: cgroup, process, mount.
pub fn assert_nothing_left(f: &Finished) {
    for dir in &f.cgroup_dirs {
        assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    }
    assert!(
        !Path::new(&format!("/proc/{}", f.pid)).exists(),
        "process {} left behind",
        f.pid
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("vcbench"),
        "a vcbench mount is left on the host:\n{mounts}"
    );
}
