//! `vcbench-vmm linux --tap IFNAME [--mac MAC]` refuses what cannot work before anything
//! is built, naming what is wrong: a name no interface can have, a MAC address a device
//! cannot have, a `--mac` without a tap. No KVM, no root and no kernel needed.

use std::process::Command;

const VMM: &str = env!("CARGO_BIN_EXE_vcbench-vmm");

/// Runs the monitor with `args` after `linux --kernel /nonexistent`: its exit status and
/// standard error.
fn refused(args: &[&str]) -> (i32, String) {
    let out = Command::new(VMM)
        .args(["linux", "--kernel", "/nonexistent/vmlinux"])
        .args(args)
        .output()
        .expect("run the monitor");
    assert!(out.stdout.is_empty(), "nothing reported: {out:?}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_tap_name_no_interface_can_have_is_refused_naming_it() {
    for name in ["", "tap/0", "a-name-far-too-long", "tap 0"] {
        let (status, stderr) = refused(&["--tap", name]);
        assert_eq!(status, 1, "{stderr}");
        assert!(
            stderr.contains(&format!("the tap name {name:?} is not an interface name")),
            "{stderr}"
        );
    }
}

#[test]
fn a_mac_address_is_checked_and_needs_a_tap() {
    let (status, stderr) = refused(&["--tap", "vcbtap0", "--mac", "01:00:5e:00:00:01"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("multicast"), "{stderr}");
    let (status, stderr) = refused(&["--tap", "vcbtap0", "--mac", "52:54:00:12:34"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("\"52:54:00:12:34\""), "{stderr}");
    let (status, stderr) = refused(&["--mac", "52:54:00:12:34:56"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("--mac needs --tap IFNAME"), "{stderr}");
    let (status, stderr) = refused(&["--tap"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("--tap needs a value"), "{stderr}");
}
