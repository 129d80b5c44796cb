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
    facts.push(Fact::new("seccomp", status_field("Seccomp:")));
    facts.push(Fact::new(
        "can_write_core_pattern",
        can_open_for_writing("/proc/sys/kernel/core_pattern"),
    ));
    facts.push(Fact::new("can_read_kcore", can_read_kcore()));
    facts.push(Fact::new("can_open_new_device", can_open_new_device()));
    facts.push(Fact::new("can_unshare_user", can_unshare_user()));
    facts.push(Fact::new("can_perf_event", can_perf_event()));
    facts.push(Fact::new("can_bpf", can_bpf()));
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
        libc::EBADF => "EBADF".to_owned(),
        libc::ENOSPC => "ENOSPC".to_owned(),
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
    can_open_for_writing("/proc/sys/vm/swappiness")
}

/// Opens `path` for writing and writes nothing.
fn can_open_for_writing(path: &str) -> String {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => "yes".to_owned(),
        Err(e) => format!("no: {}", errno_name(e.raw_os_error().unwrap_or(0))),
    }
}

/// Opens the kernel's memory image for reading, and reads nothing.
fn can_read_kcore() -> String {
    match std::fs::File::open("/proc/kcore") {
        Ok(_) => "yes".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "untested: this kernel has no /proc/kcore".to_owned()
        }
        Err(e) => format!("no: {}", errno_name(e.raw_os_error().unwrap_or(0))),
    }
}

/// Makes a character device node (the null device's numbers) in the temporary directory,
/// opens it for reading, and removes it: `yes` only when both the node and its opening
/// are allowed (a device allow-list or a nodev mount refuses the opening).
fn can_open_new_device() -> String {
    let path = std::env::temp_dir().join(format!("vcbench-probe-dev-{}", std::process::id()));
    let Ok(c_path) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return "untested: the temporary path holds a NUL".to_owned();
    };
    // SAFETY: a NUL-terminated path that outlives the call; mknod creates one node.
    let made = unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
    if made < 0 {
        return verdict(made);
    }
    let opened = match std::fs::File::open(&path) {
        Ok(_) => "yes".to_owned(),
        Err(e) => format!(
            "no: {} (made, not opened)",
            errno_name(e.raw_os_error().unwrap_or(0))
        ),
    };
    let _ = std::fs::remove_file(&path);
    opened
}

/// Makes a user namespace in a child that ends at once (the probe's own namespaces stay).
fn can_unshare_user() -> String {
    // SAFETY: the child only calls the async-signal-safe unshare and _exit.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: unshare takes flags only.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
        let code = match rc {
            0 => 0,
            _ => std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(1)
                .clamp(1, 255),
        };
        // SAFETY: _exit ends this forked child at once, without unwinding or running the
        // parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    if child < 0 {
        return format!(
            "untested: cannot fork ({})",
            std::io::Error::last_os_error()
        );
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked, into a local.
    unsafe { libc::waitpid(child, &mut status, 0) };
    match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
        Some(0) => "yes".to_owned(),
        Some(errno) => format!("no: {}", errno_name(errno)),
        None => "untested: the child did not exit".to_owned(),
    }
}

/// Opens a software performance counter on itself, disabled, and closes it.
fn can_perf_event() -> String {
    // The first version of perf_event_attr (64 bytes): type, size, config, then the flag
    // word at byte 40, whose bit 0 is `disabled`.
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&64u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&1u64.to_ne_bytes()); // PERF_COUNT_SW_TASK_CLOCK
    attr[40..48].copy_from_slice(&1u64.to_ne_bytes());
    // SAFETY: `attr` is a perf_event_attr of the size it states, alive for the call; pid 0
    // and cpu -1 mean this process on any CPU; the descriptor is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) };
    let fd = i32::try_from(fd).unwrap_or(-1);
    let answer = verdict(fd);
    if fd >= 0 {
        // SAFETY: closing the descriptor just opened, owned by nobody else.
        unsafe { libc::close(fd) };
    }
    answer
}

/// Loads the smallest BPF program there is (return 0) as a socket filter, and closes it.
fn can_bpf() -> String {
    // `mov r0, 0; exit`, as two 8-byte instructions.
    let program: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let license = c"GPL";
    // The BPF_PROG_LOAD attributes: type, instruction count, instructions, license.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // BPF_PROG_TYPE_SOCKET_FILTER
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(program.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    // SAFETY: `attr` is a zeroed bpf_attr of the size given, whose pointers name the
    // program and licence above, both alive for the call; BPF_PROG_LOAD is command 5.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len()) };
    let fd = i32::try_from(fd).unwrap_or(-1);
    let answer = verdict(fd);
    if fd >= 0 {
        // SAFETY: closing the descriptor just opened, owned by nobody else.
        unsafe { libc::close(fd) };
    }
    answer
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
