//! The Linux guest's initramfs read back with the `cpio` tool (GNU cpio, as the kernel's
//! own tooling would): every entry of the image with its type and mode, and `/init`
//! byte-identical to the workload the other backends run. Skipped with the reason when
//! `cpio` is missing (a failure under CI=true, where `.ci/run` installs it).

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use images::initramfs::{image_archive, Compression};

fn cpio_available() -> bool {
    match Command::new("cpio").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        other => {
            let why = format!("cpio cannot run ({:?}): apt-get install cpio", other.err());
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {why}"
            );
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// Runs `cpio` with `args` in `dir`, feeding it `archive`; returns its standard output.
fn cpio(args: &[&str], dir: &std::path::Path, archive: &[u8]) -> String {
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cpio {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn check(archive: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let listing = cpio(&["-itv", "--quiet"], dir.path(), archive);
    let entries: Vec<(String, String)> = listing
        .lines()
        .map(|l| {
            let mode = l.split_whitespace().next().unwrap().to_owned();
            let name = l.rsplit(' ').next().unwrap().to_owned();
            (mode, name)
        })
        .collect();
    let expected = [
        ("drwxr-xr-x", "proc"),
        ("drwxr-xr-x", "sys"),
        ("drwxr-xr-x", "dev"),
        ("drwxr-xr-x", "tmp"),
        ("crw-------", "dev/console"),
        ("-rwxr-xr-x", "init"),
    ];
    let got: Vec<(&str, &str)> = entries
        .iter()
        .map(|(m, n)| (m.as_str(), n.as_str()))
        .collect();
    assert_eq!(got, expected, "{listing}");
    assert!(listing.contains("5,   1"), "dev/console is 5:1: {listing}");
    // Extract /init alone (device nodes need privileges) and compare it with the workload.
    cpio(&["-id", "--quiet", "init"], dir.path(), archive);
    let init = std::fs::read(dir.path().join("init")).unwrap();
    assert!(
        init == images::image::WORKLOAD,
        "/init is the workload, byte for byte"
    );
}

#[test]
fn the_plain_initramfs_reads_back_with_cpio() {
    if !cpio_available() {
        return;
    }
    check(&image_archive(Compression::None));
}

#[test]
fn the_gzip_initramfs_reads_back_with_cpio() {
    if !cpio_available() {
        return;
    }
    let gz = image_archive(Compression::Gzip);
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, image_archive(Compression::None));
    check(&plain);
}
