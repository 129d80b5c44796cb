//! The hostnet scenario for real, through the `vcbench` binary: TCP between the host-side
//! peer and the workload in a native process and in a container, each over the run's own
//! network namespace. Checked: both figures on both backends; every address the work used
//! is loopback or the run's private 10.200.0.0/16; the host's own links unchanged; and
//! nothing left, after a run or after a run killed with SIGKILL once `vcbench clean` ran.
//!
//! Making a network namespace needs root: without it each test prints why and skips; with
//! CI=true that is a failure, since CI runs as root.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VCBENCH: &str = env!("CARGO_BIN_EXE_vcbench");

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Whether this test can run here; prints why not, and fails under CI.
fn root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(!ci(), "CI=true but the hostnet tests need root");
    eprintln!("skipped: the hostnet scenario makes a network namespace, which needs root");
    false
}

/// Where runs hold their network namespaces (root's runtime directory).
fn netns_dir() -> PathBuf {
    PathBuf::from("/run/vcbench/netns")
}

/// The namespace files process `pid` holds.
fn held_by(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(netns_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{pid}-")))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The host namespace's links, by name.
fn host_links() -> Vec<String> {
    let mut links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    links.sort();
    links
}

/// Loopback, or the run's private range.
fn inside_the_run(address: &SocketAddrV4) -> bool {
    let ip = *address.ip();
    ip.is_loopback() || (ip.octets()[..2] == [10, 200] && ip != Ipv4Addr::new(10, 200, 0, 0))
}

#[test]
fn hostnet_runs_natively_and_in_a_container_and_leaves_nothing() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let links = host_links();
    let child = Command::new(VCBENCH)
        .args([
            "run",
            "-b",
            "native,container",
            "-s",
            "hostnet",
            "-r",
            "2",
            "-q",
        ])
        .arg("--out")
        .arg(&out)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for backend in ["native", "container"] {
        for metric in ["host_tcp_rtt", "host_tcp_bulk"] {
            let figure = doc["figures"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| {
                    f["backend"] == backend && f["scenario"] == "hostnet" && f["metric"] == metric
                })
                .unwrap_or_else(|| panic!("no {backend} {metric} in {doc}"));
            assert_eq!(figure["summary"]["n"], 2, "{figure}");
            assert!(
                figure["summary"]["median"].as_f64().unwrap() > 0.0,
                "{figure}"
            );
        }
    }
    // Every address the work used: loopback natively, the run's own subnet in a container.
    let runs: Vec<&serde_json::Value> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["scenario"] == "hostnet")
        .collect();
    assert_eq!(
        runs.len(),
        2 * (2 + 1),
        "two measured runs and a warmup each"
    );
    for run in runs {
        let backend = run["backend"].as_str().unwrap();
        for fact in ["local_addr", "peer_addr"] {
            let address: SocketAddrV4 = run["facts"][fact]
                .as_str()
                .unwrap_or_else(|| panic!("no {fact} in {run}"))
                .parse()
                .unwrap();
            assert!(inside_the_run(&address), "{backend} {fact} {address}");
            assert_eq!(
                address.ip().is_loopback(),
                backend == "native",
                "{backend} {fact} {address}"
            );
        }
    }
    // Nothing left: no namespace held, no link made in the host's namespace.
    assert_eq!(held_by(pid), Vec::<PathBuf>::new());
    assert_eq!(host_links(), links);
    assert!(!host_links().iter().any(|l| l.starts_with("vcb")));
}

#[test]
fn a_killed_runs_namespace_is_found_and_removed_by_clean() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(VCBENCH)
        .args(["run", "-b", "native", "-s", "hostnet", "-r", "1000", "-q"])
        .arg("--out")
        .arg(dir.path().join("r.json"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let held = loop {
        let held = held_by(pid);
        if !held.is_empty() {
            break held;
        }
        assert!(
            Instant::now() < deadline,
            "the run never made its namespace"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(held.iter().all(|p| p.exists()));
    let clean = Command::new(VCBENCH).arg("clean").output().unwrap();
    let said = String::from_utf8_lossy(&clean.stdout).into_owned()
        + &String::from_utf8_lossy(&clean.stderr);
    assert!(clean.status.success(), "{said}");
    for path in &held {
        assert!(!path.exists(), "{} is left: {said}", path.display());
        assert!(said.contains(&path.display().to_string()), "{said}");
    }
    assert!(said.contains("network namespace"), "{said}");
}
