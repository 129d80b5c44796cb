//! Bad input to the runtime: each error names what is wrong, and nothing is left behind.
//! In a test binary of its own, so the leftover check sees no other test's containers.

mod common;

use std::time::Duration;

use common::{busybox_rootfs, prerequisites, run, sh};

const T: Duration = Duration::from_secs(30);

#[test]
fn bad_input_names_what_is_wrong_and_leaves_nothing() {
    if !prerequisites() {
        return;
    }
    let rootfs = busybox_rootfs();
    let err = run(&sh(std::path::Path::new("/nonexistent"), "true"), T).unwrap_err();
    assert!(err.to_string().contains("/nonexistent"), "{err}");
    // A root file system that is a file, not a directory.
    let file = rootfs.path().join("bin/busybox");
    let err = run(&sh(&file, "true"), T).unwrap_err();
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
    let spec = container::Spec::new(rootfs.path(), vec!["/bin/nothing".into()]);
    let err = run(&spec, T).unwrap_err();
    assert!(err.to_string().contains("/bin/nothing"), "{err}");
    let mut spec = sh(rootfs.path(), "true");
    spec.limits.memory_max = Some(1);
    assert!(run(&spec, T)
        .unwrap_err()
        .to_string()
        .contains("memory_max"));
    // A program that exists but cannot be executed fails in the child, at exec.
    // Written by a shell: a file this process held open for writing while another test's
    // thread forked would fail at exec with ETXTBSY instead.
    let written = std::process::Command::new("sh")
        .args([
            "-c",
            "echo not a program > \"$1\" && chmod 755 \"$1\"",
            "sh",
        ])
        .arg(rootfs.path().join("bin/broken"))
        .status()
        .unwrap();
    assert!(written.success());
    let spec = container::Spec::new(rootfs.path(), vec!["/bin/broken".into()]);
    let err = run(&spec, T).unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        text.contains("executing /bin/broken") && text.contains("format"),
        "{text}"
    );
    // This test binary runs only this test, so any cgroup named for its PID is a leftover.
    let mine = format!("vcbench-{}-", std::process::id());
    let found = std::process::Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "4",
            "-name",
            &format!("{mine}*"),
        ])
        .output()
        .unwrap()
        .stdout;
    assert!(found.is_empty(), "{}", String::from_utf8_lossy(&found));
}
