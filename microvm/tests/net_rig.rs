//! The network device with a real Linux guest, in the test rig (hardware-style KVM under
//! QEMU TCG): the monitor creates a tap, the rig's side of it gets 10.200.0.1/24, and the
//! guest, whose init is a busybox script, brings `eth0` up as 10.200.0.2/24 and pings the
//! host side. The pings must come back, the monitor's filter must let every call through,
//! and the monitor's counters must show the frames both ways with nothing dropped; they
//! are printed.
//!
//! Skipped with the reason when the rig or a guest kernel (`vcbench kernel build`) is
//! missing; a failure under CI=true.

#[path = "../../tests/rig/support.rs"]
mod rig;

use std::path::{Path, PathBuf};
use std::process::Command;

use microvm::protocol::Line;

fn skip(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but this test cannot run: {why}"
    );
    eprintln!("skipped: {why}");
}

/// Where `vcbench kernel build` keeps its kernels (as the images crate finds it).
fn kernel_cache() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| root.then(|| PathBuf::from("/var/cache")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("vcbench/kernels")
}

/// The newest guest kernel built with virtio-net.
fn guest_kernel() -> Option<PathBuf> {
    let entries = std::fs::read_dir(kernel_cache()).ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|dir| {
            std::fs::read_to_string(dir.join("config"))
                .is_ok_and(|c| c.lines().any(|l| l == "CONFIG_VIRTIO_NET=y"))
        })
        .map(|dir| dir.join("vmlinux"))
        .filter(|vmlinux| vmlinux.is_file())
        .max_by_key(|vmlinux| std::fs::metadata(vmlinux).and_then(|m| m.modified()).ok())
}

/// The guest's init, a script busybox's shell runs (`rdinit=/bin/sh -- /net.sh`: the guest
/// kernel runs no `#!` scripts itself): `eth0` up with its address, three pings to the
/// host side, then a reset (the kernel's `reboot=k`: the i8042, which ends the monitor's
/// run cleanly).
const INIT: &str = "/bin/busybox mkdir -p /proc
/bin/busybox mount -t proc proc /proc
/bin/busybox ip link set eth0 up
/bin/busybox ip addr add 10.200.0.2/24 dev eth0
/bin/busybox ip -o link show eth0
/bin/busybox ping -c 3 -w 60 10.200.0.1
echo ping=$?
/bin/busybox reboot -f
";

/// An initramfs of `busybox` (`/bin/sh` too) and [`INIT`] (`/net.sh`), made with cpio in
/// `dir`.
fn initramfs(dir: &Path, busybox: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::fs::write(root.join("net.sh"), INIT).unwrap();
    let image = dir.join("initramfs");
    let made = Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . | cpio -o -H newc --quiet > \"$2\"")
        .args(["sh"])
        .arg(&root)
        .arg(&image)
        .status()
        .unwrap();
    assert!(made.success(), "cpio failed");
    image
}

/// The value printed as `name=VALUE` on a line of its own.
fn value<'a>(output: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
}

#[test]
fn a_linux_guest_pings_the_host_side_of_its_tap() {
    if !rig::available() {
        return;
    }
    let Some(kernel) = guest_kernel() else {
        return skip(&format!(
            "no guest kernel with virtio-net under {}: run `vcbench kernel build`",
            kernel_cache().display()
        ));
    };
    let busybox = rig::which("busybox").expect("the rig runs on static busybox");
    let dir = tempfile::tempdir().unwrap();
    let initramfs = initramfs(dir.path(), &busybox);
    let script = "PATH=/rig:$PATH; \
        vcbench-vmm linux --kernel /rig/vmlinux --initrd /rig/initramfs --tap vcbtap0 \
          --mac 52:54:00:0a:c8:02 --timeout-ms 240000 \
          --cmdline 'console=ttyS0 reboot=k panic=0 io_delay=none 8250.nr_uarts=1 rdinit=/bin/sh -- /net.sh' \
          > /tmp/vmm.out 2> /tmp/vmm.err & \
        vmm=$!; \
        until ip link set vcbtap0 up 2> /dev/null; do sleep 0.1; done; \
        ip addr add 10.200.0.1/24 dev vcbtap0; \
        wait $vmm; echo vmm=$?; \
        echo '---- vmm ----'; cat /tmp/vmm.out /tmp/vmm.err; echo '----'; \
        echo leftover=$(ip -o link show vcbtap0 2> /dev/null | wc -l)";
    let outcome = rig::Rig::default()
        .file(env!("CARGO_BIN_EXE_vcbench-vmm"), "/rig/vcbench-vmm")
        .file(&kernel, "/rig/vmlinux")
        .file(&initramfs, "/rig/initramfs")
        .timeout(420)
        .retry_on_timeout()
        .run(&["sh", "-c", script]);
    let output = &outcome.output;
    assert_eq!(outcome.status, 0, "the rig failed:\n{output}");
    assert_eq!(value(output, "vmm"), Some("0"), "{output}");
    assert!(
        !output.contains("system call filter refused"),
        "the filter refused a call:\n{output}"
    );

    let mut console = String::new();
    let mut devices = None;
    for line in output.lines() {
        match Line::parse(line) {
            Ok(Line::Console(c)) => {
                console.push_str(&c.line);
                console.push('\n');
            }
            Ok(Line::Report(r)) => devices = Some(r.devices),
            _ => {}
        }
    }
    assert_eq!(value(&console, "ping"), Some("0"), "the pings:\n{console}");
    assert!(
        console.contains("3 packets received"),
        "the pings:\n{console}"
    );
    assert!(
        console.contains("52:54:00:0a:c8:02"),
        "eth0's address:\n{console}"
    );
    let devices = devices.unwrap_or_else(|| panic!("no report in {output}"));
    let count = |name: &str| {
        *devices
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {devices:?}"))
    };
    eprintln!("the network device's counters: {devices:?}");
    // An ARP request and three echo requests out; the ARP reply and three echo replies in.
    assert!(count("net_tx_frames") >= 4, "{devices:?}");
    assert!(count("net_rx_frames") >= 4, "{devices:?}");
    assert!(count("net_tx_notifications") >= 1, "{devices:?}");
    assert!(count("net_interrupts") >= 1, "{devices:?}");
    // The device's own system calls: a write per frame out, a read per frame in and one
    // more each time the tap was found empty, a wake-up of its thread at least per turn.
    assert_eq!(
        count("net_tap_writes"),
        count("net_tx_frames"),
        "{devices:?}"
    );
    assert!(
        count("net_tap_reads") > count("net_rx_frames"),
        "{devices:?}"
    );
    assert!(
        count("net_thread_wakeups") >= count("net_tx_notifications"),
        "{devices:?}"
    );
    for dropped in [
        "net_rx_dropped_too_big",
        "net_rx_bad_chains",
        "net_rx_host_errors",
        "net_tx_dropped_malformed",
        "net_tx_dropped_host",
        "net_queue_errors",
    ] {
        assert_eq!(count(dropped), 0, "{dropped}: {devices:?}");
    }
    assert_eq!(
        value(output, "leftover"),
        Some("0"),
        "the tap went with the monitor"
    );
}
