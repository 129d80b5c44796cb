//! `vcbench tour`: the walk-through runs here, as Markdown without a terminal, with every
//! stop, an answer from each backend that ran, and a VM without a Linux guest saying what
//! it cannot show; as plain text, it has no colour when NO_COLOR is set.

use std::path::Path;
use std::process::{Command, Output};

const VCBENCH: &str = env!("CARGO_BIN_EXE_vcbench");

fn vcbench(args: &[&str], cwd: &Path) -> Output {
    Command::new(VCBENCH)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", cwd.join("cache"))
        .output()
        .unwrap()
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn the_markdown_tour_is_a_complete_walk_through() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(&["tour", "--markdown"], dir.path());
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{md}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(md.starts_with("# A tour: one program, three ways to run it"));
    let stops: Vec<&str> = md.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        stops,
        [
            "## 1. Who is PID 1, and which processes can it see?",
            "## 2. What is this machine called?",
            "## 3. Which files can it see?",
            "## 4. Who is it, and what may it do?",
            "## 5. What network does it have?",
            "## 6. Which kernel runs it?",
            "## 7. What did starting it take?",
            "## 8. How does it reach the host?",
            "## What to take away",
        ]
    );
    assert!(md.contains("| | native | container | microvm |"), "{md}");
    // Each stop says what to run to see it again.
    assert_eq!(md.matches("Try it yourself:").count(), 8);
    // The plain process answers for the host: its own uid map is the identity.
    assert!(
        md.contains("| uid map (inside, outside, count) | 0 0 4294967295 |"),
        "{md}"
    );
    if root() {
        // The container's root is an ordinary user outside, and it has only loopback.
        let uid_map = md.lines().find(|l| l.starts_with("| uid map")).unwrap();
        assert!(uid_map.contains("| 0 100000 65536 |"), "{uid_map}");
        let net = md
            .lines()
            .find(|l| l.starts_with("| network interfaces"))
            .unwrap();
        assert!(net.split(" | ").nth(2) == Some("lo"), "{net}");
        // One kernel: the container's boot id is the host's.
        let boot = md
            .lines()
            .find(|l| l.starts_with("| kernel boot id"))
            .unwrap();
        let cells: Vec<&str> = boot.split(" | ").collect();
        assert_eq!(cells[1], cells[2], "{boot}");
    }
    // A VM with micro guests says what it cannot show, and shows its exits.
    if md.contains("micro guests, with no guest OS") {
        assert!(
            md.contains("| its PID |") && md.contains("none: no guest OS"),
            "{md}"
        );
        let exits = md
            .lines()
            .find(|l| l.starts_with("| of them, port writes"))
            .unwrap();
        assert!(exits.ends_with("| 1 |"), "{exits}");
    }
}

#[test]
fn the_terminal_tour_has_no_colour_under_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let out = vcbench(&["tour", "-b", "native"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1. Who is PID 1, and which processes can it see?"));
    assert!(text.contains("try it: vcbench once"), "{text}");
    assert!(!text.contains('\x1b'), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 140), "{text}");
}
