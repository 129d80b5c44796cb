//! Drives the test rig (`tests/rig/rig`) from Rust integration tests: a throwaway Linux
//! under QEMU TCG with hardware-style KVM and cgroup v2 alone. Included by the crates'
//! rig tests with `#[path]`, so there is one copy.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The rig script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/rig/rig")
}

/// Whether the rig can run here: QEMU, the cloud kernel with its KVM modules, static
/// busybox and cpio. Prints why not and returns false, or fails under CI=true, where
/// `.ci/run` installs all of them.
pub fn available() -> bool {
    match missing() {
        None => true,
        Some(missing) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but the test rig cannot run: {missing}"
            );
            eprintln!("skipped: the test rig cannot run: {missing}");
            false
        }
    }
}

fn missing() -> Option<String> {
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
    };
    if !on_path("qemu-system-x86_64") {
        return Some("no qemu-system-x86_64 (apt-get install qemu-system-x86)".into());
    }
    if cloud_release().is_none() {
        return Some(
            "no /boot/vmlinuz-*-cloud-amd64 (apt-get install linux-image-cloud-amd64)".into(),
        );
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("no /bin/busybox (apt-get install busybox-static)".into());
    }
    if !on_path("cpio") {
        return Some("no cpio (apt-get install cpio)".into());
    }
    None
}

/// The cloud kernel's release (`6.1.0-56-cloud-amd64`), the newest installed.
fn cloud_release() -> Option<String> {
    let mut releases: Vec<String> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let release = name.strip_prefix("vmlinuz-")?;
            release
                .ends_with("-cloud-amd64")
                .then(|| release.to_owned())
        })
        .collect();
    releases.sort();
    releases.pop()
}

/// The program `name` on this machine's PATH, if there is one.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The rig's exit status when the outer Linux panicked while the command ran.
pub const OUTER_LINUX_PANICKED: i32 = 123;
/// The rig's exit status when it ran past its timeout.
pub const TIMED_OUT: i32 = 124;

/// A command to run in the rig, with the files it needs.
#[derive(Debug, Clone)]
pub struct Rig {
    files: Vec<String>,
    envs: Vec<String>,
    timeout_s: u64,
    cpus: u32,
    kernel: Option<PathBuf>,
    retry_on_timeout: bool,
    retry_when: Option<fn(&Outcome) -> Option<String>>,
}

/// What a command in the rig gave.
#[derive(Debug)]
pub struct Outcome {
    /// The rig's exit status: the command's, 123 when the outer Linux panicked, 124 on
    /// timeout, 125 when the rig failed.
    pub status: i32,
    /// The command's standard output and error, as printed inside.
    pub output: String,
    /// The rig's own messages, and the console log when it failed.
    pub stderr: String,
    /// Wall time of the whole rig run: initramfs, boot, command, power-off.
    pub wall: Duration,
}

impl Default for Rig {
    fn default() -> Self {
        Rig {
            files: Vec::new(),
            envs: Vec::new(),
            timeout_s: 600,
            cpus: 2,
            kernel: None,
            retry_on_timeout: false,
            retry_when: None,
        }
    }
}

impl Rig {
    /// Puts the host file `host` at `guest` inside the rig.
    pub fn file(mut self, host: impl AsRef<Path>, guest: &str) -> Self {
        self.files
            .push(format!("{}={guest}", host.as_ref().display()));
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.envs.push(format!("{name}={value}"));
        self
    }

    /// Kills the rig after `seconds`.
    pub fn timeout(mut self, seconds: u64) -> Self {
        self.timeout_s = seconds;
        self
    }

    /// The outer Linux's vCPUs.
    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }

    /// Boots `kernel` as the outer Linux instead of the cloud kernel, with the cloud
    /// kernel's modules.
    pub fn kernel(mut self, kernel: impl AsRef<Path>) -> Self {
        self.kernel = Some(kernel.as_ref().to_owned());
        self
    }

    /// The command bounds its own run time (as `vcbench run --timeout` does), so a rig that
    /// times out means the outer Linux wedged under the emulator: try once more.
    pub fn retry_on_timeout(mut self) -> Self {
        self.retry_on_timeout = true;
        self
    }

    /// Runs the command once more when `emulated` finds, in its outcome, only failures the
    /// emulated machine causes rather than the command (and says which): the first
    /// attempt's outcome is printed either way.
    pub fn retry_when(mut self, emulated: fn(&Outcome) -> Option<String>) -> Self {
        self.retry_when = Some(emulated);
        self
    }

    /// Runs `command` in the rig and waits for it. The rigs of one test binary run one at a
    /// time: each is two emulated CPUs' worth of work. When the outer Linux panics (status
    /// 123: a fault in the emulator's nested virtualization, which no command in it can
    /// cause from user space; its lockup detectors turn a stuck CPU into a panic), the run
    /// is tried once more, after printing the panic; so is a timeout, when the command
    /// bounds its own time, and a failure [`Rig::retry_when`] recognises.
    pub fn run(&self, command: &[&str]) -> Outcome {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let outcome = self.run_once(command);
        let why = if outcome.status == OUTER_LINUX_PANICKED {
            "the outer Linux panicked".to_owned()
        } else if self.retry_on_timeout && outcome.status == TIMED_OUT {
            "the outer Linux wedged (the command's own timeouts never ended it)".to_owned()
        } else if let Some(emulated) = self.retry_when.and_then(|check| check(&outcome)) {
            emulated
        } else {
            return outcome;
        };
        eprintln!("rig: {why}; running the command once more");
        self.run_once(command)
    }

    fn run_once(&self, command: &[&str]) -> Outcome {
        let mut cmd = Command::new(script());
        for f in &self.files {
            cmd.args(["--file", f]);
        }
        for e in &self.envs {
            cmd.args(["--env", e]);
        }
        if let Some(kernel) = &self.kernel {
            cmd.env("RIG_KERNEL", kernel);
            if let Some(release) = cloud_release() {
                cmd.env("RIG_MODULES", format!("/lib/modules/{release}"));
            }
        }
        cmd.args(["--timeout", &self.timeout_s.to_string()])
            .args(["--cpus", &self.cpus.to_string()])
            .arg("--")
            .args(command);
        let start = Instant::now();
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
        let outcome = Outcome {
            status: out.status.code().unwrap_or(-1),
            output: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            wall: start.elapsed(),
        };
        eprintln!(
            "rig {:?}: status {} after {:.1} s\n--- output ---\n{}\n--- rig ---\n{}",
            command,
            outcome.status,
            outcome.wall.as_secs_f64(),
            outcome.output,
            outcome.stderr
        );
        outcome
    }
}

/// Another test binary of the running test's package (`runtime` for `runtime-<hash>`),
/// built beside this one by the same `cargo test`: the newest of that name.
pub fn sibling_test_binary(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("the running test's path");
    let deps = me.parent().expect("the test binary's directory");
    let prefix = format!("{name}-");
    let newest = std::fs::read_dir(deps)
        .expect("the test binaries' directory")
        .flatten()
        .filter(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.strip_prefix(&prefix)
                .is_some_and(|hash| hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max();
    match newest {
        Some((_, path)) => path,
        None => panic!(
            "no test binary {prefix}<hash> in {}: build it with `cargo test --no-run` first",
            deps.display()
        ),
    }
}
