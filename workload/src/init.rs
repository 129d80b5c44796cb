//! PID 1 duties: pseudo file systems, a supervised child, reaping, the final exit.
//!
//! As the init of a container or microVM the workload runs its work in a child process
//! and stays behind as a small supervisor, like a minimal init: it forwards termination
//! signals to the child, reaps every process that is reparented to it, and when the
//! work is done either exits (containers) or powers the machine off (`VCBENCH_EXIT=poweroff`,
//! for VMs, where an exiting init would panic the kernel).

use std::ffi::CString;
use std::path::Path;
use std::process::ExitCode;

use workload::marker::MarkerPort;

use crate::out::Output;

/// The environment variable that chooses what PID 1 does at the end: `exit` or `poweroff`.
pub const EXIT_ENV: &str = "VCBENCH_EXIT";

/// Signals the supervisor forwards to the work process.
const FORWARDED: [libc::c_int; 5] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Character devices made on a plain tmpfs `/dev` when devtmpfs is not available.
const DEVICES: [(&str, u32, u32); 7] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
    ("console", 5, 1),
];

/// Mounts /proc, /sys and /dev where they are not already present. Best effort: a
/// failure is reported on standard error and the work still runs.
pub fn mount_filesystems() {
    let mounts = [
        ("/proc", "/proc/self", "proc"),
        ("/sys", "/sys/kernel", "sysfs"),
    ];
    for (target, witness, fstype) in mounts {
        if !Path::new(witness).exists() {
            report(mount(fstype, target, fstype, ""));
        }
    }
    if !Path::new("/dev/null").exists()
        && mount("devtmpfs", "/dev", "devtmpfs", "mode=0755").is_err()
    {
        report(mount("tmpfs", "/dev", "tmpfs", "mode=0755").and_then(|()| make_devices()));
    }
    if !Path::new("/tmp").exists() {
        report(std::fs::create_dir("/tmp").map_err(|e| format!("mkdir /tmp: {e}")));
    }
}

/// Brings the loopback interface up when it is down, as an init does: a VM's kernel starts
/// with `lo` down, and the `net` work talks over it. (A container's runtime has already
/// brought it up, and then this does nothing.)
pub fn loopback_up() {
    report(set_loopback_up());
}

fn set_loopback_up() -> Result<(), String> {
    // SAFETY: socket with constant arguments; the result is checked.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(format!(
            "socket for lo: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `ifreq` is plain data, for which all zeroes is a valid empty request.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = libc::c_char::from_ne_bytes([*byte]);
    }
    // SAFETY: `request` names an interface and outlives the call; the kernel writes only
    // the flags member of its union.
    let mut result = unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut request) };
    if result == 0 {
        // SAFETY: SIOCGIFFLAGS has just filled the flags member.
        let flags = unsafe { request.ifr_ifru.ifru_flags };
        #[allow(clippy::cast_possible_truncation)]
        let up = libc::IFF_UP as libc::c_short;
        if flags & up == 0 {
            request.ifr_ifru.ifru_flags = flags | up;
            // SAFETY: as above; the kernel reads the name and the flags.
            result = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &mut request) };
        }
    }
    let error = std::io::Error::last_os_error();
    // SAFETY: `sock` is a descriptor this function opened and closes once.
    unsafe { libc::close(sock) };
    if result == 0 {
        Ok(())
    } else {
        Err(format!("bring lo up: {error}"))
    }
}

fn report(result: Result<(), String>) {
    if let Err(e) = result {
        eprintln!("workload: init: {e}");
    }
}

fn mount(source: &str, target: &str, fstype: &str, data: &str) -> Result<(), String> {
    std::fs::create_dir_all(target).map_err(|e| format!("mkdir {target}: {e}"))?;
    let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
    let (source_c, target_c, fstype_c, data_c) = (c(source)?, c(target)?, c(fstype)?, c(data)?);
    let flags = libc::MS_NOSUID | libc::MS_NOEXEC;
    // SAFETY: all four pointers are NUL-terminated strings that live until the call returns.
    let rc = unsafe {
        libc::mount(
            source_c.as_ptr(),
            target_c.as_ptr(),
            fstype_c.as_ptr(),
            flags,
            data_c.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "mount {fstype} on {target}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

fn make_devices() -> Result<(), String> {
    for (name, major, minor) in DEVICES {
        let path = CString::new(format!("/dev/{name}")).map_err(|e| e.to_string())?;
        // SAFETY: `path` is a NUL-terminated string alive for the call; mknod reads nothing else.
        let rc = unsafe {
            libc::mknod(
                path.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(major, minor),
            )
        };
        if rc != 0 {
            return Err(format!(
                "mknod /dev/{name}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// A signal set holding `signals`.
fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &sig in signals {
        // SAFETY: `set` is initialised and `sig` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    set
}

/// Runs the work in a supervised child and returns (or powers off) when it is done.
pub fn run_as_init(
    name: &str,
    work: impl FnOnce(&mut Output) -> u8,
    mut out: Output,
    marker: Option<MarkerPort>,
) -> ExitCode {
    mount_filesystems();
    loopback_up();
    let disk = mount_disk();
    let mut watched = FORWARDED.to_vec();
    watched.push(libc::SIGCHLD);
    let set = sigset(&watched);
    let mut old = sigset(&[]);
    // SAFETY: both sets are valid; the process is single-threaded here, so the process
    // mask is what sigprocmask changes.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) };

    // SAFETY: the process is single-threaded, so the child may run arbitrary code.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: restores the mask saved above, in the child only.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        let status = work(&mut out);
        // SAFETY: _exit ends the child at once, without running the parent's atexit
        // handlers or flushing buffers that the parent owns.
        unsafe { libc::_exit(i32::from(status)) };
    }
    let status = if child < 0 {
        eprintln!("workload: init: fork: {}", std::io::Error::last_os_error());
        1
    } else {
        supervise(child, &set)
    };
    if let Some(signal) = workload::signal::of_status(i32::from(status)) {
        // Where the host sees only the machine end (a VM), this is how it learns why.
        out.emit(&workload::record::Record::Error {
            workload: name.to_owned(),
            message: format!(
                "killed by signal {} (status {status})",
                workload::signal::name(signal)
            ),
        });
    }
    if disk {
        unmount_disk();
    }
    finish(status, marker)
}

/// Mounts the disk [`workload::disk::ENV`] names, if any, at [`workload::disk::MOUNT`];
/// whether it is mounted. A failure is reported and the work still runs: the empty mount
/// point is removed again, so the work fails itself, naming the directory it cannot
/// write to, rather than writing to the initramfs (RAM) in the disk's place.
fn mount_disk() -> bool {
    let Ok(device) = std::env::var(workload::disk::ENV) else {
        return false;
    };
    let mounted = mount(&device, workload::disk::MOUNT, workload::disk::FSTYPE, "")
        .map_err(|e| format!("the disk {device}: {e}"));
    let ok = mounted.is_ok();
    if !ok {
        // Only an empty directory goes: whatever the image put there stays.
        let _ = std::fs::remove_dir(workload::disk::MOUNT);
    }
    report(mounted);
    ok
}

/// Unmounts the disk, so its file system is clean on the host once the machine is off.
fn unmount_disk() {
    let result = CString::new(workload::disk::MOUNT)
        .map_err(|e| e.to_string())
        .and_then(|target| {
            // SAFETY: `target` is a NUL-terminated string that lives until the call returns.
            match unsafe { libc::umount2(target.as_ptr(), 0) } {
                0 => Ok(()),
                _ => Err(format!(
                    "unmount {}: {}",
                    workload::disk::MOUNT,
                    std::io::Error::last_os_error()
                )),
            }
        });
    report(result);
}

/// Waits for the work process, forwarding signals and reaping everything; returns its
/// exit status (128 + signal when killed).
fn supervise(child: libc::pid_t, set: &libc::sigset_t) -> u8 {
    let mut work_status: Option<u8> = None;
    loop {
        // Reap whatever has exited.
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer for the call.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                if pid < 0 && work_status.is_some() {
                    // ECHILD: nothing is left.
                    return work_status.unwrap_or(1);
                }
                break;
            }
            if pid == child {
                work_status = Some(decode_status(status));
                // The work is done: whatever it left behind goes too.
                // SAFETY: kill(-1) signals every process this one may signal; as PID 1
                // of its namespace or machine those are exactly its descendants.
                unsafe { libc::kill(-1, libc::SIGKILL) };
            }
        }
        let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::uninit();
        // SAFETY: `set` is initialised and `info` is a valid out-pointer.
        let sig = unsafe { libc::sigwaitinfo(set, info.as_mut_ptr()) };
        if sig > 0 && sig != libc::SIGCHLD && work_status.is_none() {
            // SAFETY: kill with a PID this process created and a valid signal number.
            unsafe { libc::kill(child, sig) };
        }
    }
}

fn decode_status(status: libc::c_int) -> u8 {
    if libc::WIFEXITED(status) {
        u8::try_from(libc::WEXITSTATUS(status)).unwrap_or(1)
    } else if libc::WIFSIGNALED(status) {
        u8::try_from(128 + libc::WTERMSIG(status)).unwrap_or(255)
    } else {
        1
    }
}

/// Exits, or powers the machine off when `VCBENCH_EXIT=poweroff` (telling the host just
/// before, when it gave a marker port).
fn finish(status: u8, marker: Option<MarkerPort>) -> ExitCode {
    if std::env::var(EXIT_ENV).as_deref() == Ok("poweroff") {
        // The records went to the console: wait until the UART has sent them, so they
        // reach the host before the power-off marker and are not lost with the machine.
        for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            // SAFETY: tcdrain on a standard descriptor; on one that is not a terminal it
            // fails with ENOTTY and does nothing.
            unsafe { libc::tcdrain(fd) };
        }
        if let Some(port) = marker {
            port.write(workload::marker::POWEROFF);
        }
        // SAFETY: sync takes no arguments and only flushes file system buffers.
        unsafe { libc::sync() };
        // SAFETY: a valid reboot command; on success the machine is off and the call
        // does not return.
        unsafe { libc::reboot(libc::RB_POWER_OFF) };
        eprintln!(
            "workload: init: power off failed: {}",
            std::io::Error::last_os_error()
        );
    }
    ExitCode::from(status)
}
