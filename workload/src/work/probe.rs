//! `probe`: looks around from inside an instance and reports what it sees of the host and
//! what it may do. Each answer is a plain observation (a name, a count, `yes`, `no: EPERM`);
//! the host decides what is isolated by comparing them with the same probe run natively.
//!
//! Every check is harmless: attempts to act either change nothing (the clock's tick is set
//! to the value it has, a module load is given no module) or are undone at once (a tmpfs
//! mounted on a fresh directory is unmounted), and a refusal is an answer, not an error.

use std::ffi::CString;
use std::path::Path;

use workload::record::Fact;

/// Paths a host has and a minimal sandbox does not.
const HOST_PATHS: [&str; 5] = ["/usr/bin", "/etc/passwd", "/home", "/var/log", "/boot"];

/// Runs every check.
pub fn run() -> Vec<Fact> {
    let mut facts = vec![
        Fact::new(
            "kernel_boot_id",
            read_trim("/proc/sys/kernel/random/boot_id"),
        ),
        Fact::new("kernel_release", read_trim("/proc/sys/kernel/osrelease")),
        Fact::new("pid", std::process::id().to_string()),
        Fact::new("visible_processes", visible_processes().to_string()),
        Fact::new("hostname", read_trim("/proc/sys/kernel/hostname")),
        Fact::new("net_interfaces", net_interfaces()),
        Fact::new("mounts", count_lines("/proc/self/mountinfo")),
        Fact::new("host_paths", host_paths()),
        // SAFETY: getuid has no preconditions and cannot fail.
        Fact::new("uid", unsafe { libc::getuid() }.to_string()),
        Fact::new("uid_map", first_line("/proc/self/uid_map")),
        Fact::new("devices", count_entries("/dev")),
        Fact::new("cap_eff", status_field("CapEff:")),
        Fact::new("cgroup", cgroup()),
        Fact::new("cgroup_dirs", cgroup_dirs().to_string()),
    ];
    for ns in ["pid", "mnt", "net", "uts", "ipc", "user", "cgroup"] {
        let link = std::fs::read_link(format!("/proc/self/ns/{ns}"))
            .map(|l| l.display().to_string())
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        facts.push(Fact::new(&format!("ns_{ns}"), link));
    }
    facts.push(Fact::new("can_mount", can_mount()));
    facts.push(Fact::new("can_load_module", can_load_module()));
    facts.push(Fact::new("can_raw_socket", can_raw_socket()));
    facts.push(Fact::new("can_set_time", can_set_time()));
    facts.push(Fact::new("can_write_sysctl", can_write_sysctl()));
    facts
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

fn first_line(path: &str) -> String {
    let text = read_trim(path);
    text.lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn count_lines(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count().to_string())
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

fn count_entries(path: &str) -> String {
    std::fs::read_dir(path)
        .map(|d| d.count().to_string())
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

fn status_field(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Processes in /proc: all of the host's, or only the instance's own.
fn visible_processes() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count()
        })
        .unwrap_or(0)
}

/// Network interface names, sorted, comma-separated.
fn net_interfaces() -> String {
    let mut names: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_owned()))
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(",")
    }
}

/// Which of [`HOST_PATHS`] exist here.
fn host_paths() -> String {
    let found: Vec<&str> = HOST_PATHS
        .iter()
        .copied()
        .filter(|p| Path::new(p).exists())
        .collect();
    if found.is_empty() {
        "none".to_owned()
    } else {
        found.join(",")
    }
}

/// The process's cgroup paths, one per hierarchy.
fn cgroup() -> String {
    read_trim("/proc/self/cgroup")
        .lines()
        .collect::<Vec<_>>()
        .join(";")
}

/// Directories under /sys/fs/cgroup, two levels deep: how much of the host's cgroup tree
/// is in sight.
fn cgroup_dirs() -> usize {
    let dirs = |p: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(p)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    let top = dirs(Path::new("/sys/fs/cgroup"));
    top.len() + top.iter().map(|d| dirs(d).len()).sum::<usize>()
}

/// `yes`, or `no: ` and the error's name.
fn verdict(rc: libc::c_int) -> String {
    if rc >= 0 {
        "yes".to_owned()
    } else {
        let e = std::io::Error::last_os_error();
        format!("no: {}", errno_name(e.raw_os_error().unwrap_or(0)))
    }
}

fn errno_name(errno: i32) -> String {
    match errno {
        libc::EPERM => "EPERM".to_owned(),
        libc::EACCES => "EACCES".to_owned(),
        libc::EROFS => "EROFS".to_owned(),
        libc::ENOSYS => "ENOSYS".to_owned(),
        libc::EINVAL => "EINVAL".to_owned(),
        libc::ENOENT => "ENOENT".to_owned(),
        other => format!("errno {other}"),
    }
}

/// Mounts a tmpfs on a fresh directory and unmounts it at once.
fn can_mount() -> String {
    let dir = std::env::temp_dir().join(format!("vcbench-probe-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&dir) {
        return format!("untested: cannot make a directory to mount on: {e}");
    }
    let (Ok(target), Ok(fstype)) = (
        CString::new(dir.as_os_str().as_encoded_bytes()),
        CString::new("tmpfs"),
    ) else {
        let _ = std::fs::remove_dir(&dir);
        return "untested: the temporary path holds a NUL".to_owned();
    };
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; no data.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    let answer = verdict(rc);
    if rc == 0 {
        // SAFETY: unmounts exactly the mount made above, by its NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = std::fs::remove_dir(&dir);
    answer
}

/// Asks to load a module from no file: refused with EPERM without the power to load
/// modules, and with EBADF (the missing file) with it.
fn can_load_module() -> String {
    let empty = c"";
    // SAFETY: finit_module reads the NUL-terminated parameter string; fd -1 is no file,
    // so nothing can be loaded whatever the outcome.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, -1, empty.as_ptr(), 0) };
    if rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF) {
        return "yes".to_owned();
    }
    verdict(i32::try_from(rc).unwrap_or(-1))
}

/// Opens a raw ICMP socket and closes it.
fn can_raw_socket() -> String {
    // SAFETY: socket has no memory-safety preconditions.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    let answer = verdict(fd);
    if fd >= 0 {
        // SAFETY: closing the descriptor just opened, owned by nobody else.
        unsafe { libc::close(fd) };
    }
    answer
}

/// Sets the kernel clock's tick to the value it has: a change that changes nothing, but
/// needs the power to set the time.
fn can_set_time() -> String {
    // SAFETY: an all-zero timex is a valid "read only" request.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: adjtimex with modes 0 only fills in the struct it is given.
    if unsafe { libc::adjtimex(&mut tx) } < 0 {
        return verdict(-1);
    }
    tx.modes = libc::ADJ_TICK;
    // SAFETY: as above; the tick written is the one just read.
    verdict(unsafe { libc::adjtimex(&mut tx) })
}

/// Opens a host-wide sysctl for writing (and writes nothing).
fn can_write_sysctl() -> String {
    match std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/swappiness")
    {
        Ok(_) => "yes".to_owned(),
        Err(e) => format!("no: {}", errno_name(e.raw_os_error().unwrap_or(0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_answers() {
        let facts = run();
        let names: Vec<&str> = facts.iter().map(|f| f.name.as_str()).collect();
        for expected in [
            "kernel_boot_id",
            "hostname",
            "ns_pid",
            "can_mount",
            "can_set_time",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        assert!(facts.iter().all(|f| !f.value.is_empty()), "{facts:?}");
    }
}
