//! A user's own program from a user's image, on native, container, runc and crun, with
//! real images: a busybox root file system (a tarball, and an OCI image layout made from it
//! by umoci, with a configuration of its own), and a Debian image with python3 that .ci/run
//! makes with mmdebstrap under the target directory: `python3 -c pass`, and a
//! small HTTP server's readiness on a TCP port. Bad images, a missing program and a
//! readiness that never holds fail clearly, and the limits reach the runtimes.
//!
//! These need root, runc, crun, umoci, busybox-static and the Debian image; without one a
//! test prints why and skips, and with CI=true that is a failure.
//!
//! The busybox image in a Linux guest (microvm and qemu) runs in the test rig
//! (`tests/rig/rig`, hardware-style KVM under QEMU TCG), with the kernel `vcbench kernel
//! build` made; without them it skips, saying why.

#[path = "../../tests/rig/support.rs"]
mod rig;

mod guest;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vcbench::results::Results;

const VCBENCH: &str = env!("CARGO_BIN_EXE_vcbench");

/// The backends that run a user's image.
const BACKENDS: [&str; 4] = ["native", "container", "runc", "crun"];

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Says why a test cannot run, and fails under CI.
fn skip(why: &str) {
    assert!(!ci(), "CI=true but {why}");
    eprintln!("skipped: {why}");
}

/// Where the test's images and vcbench's cache live between runs (the unpacked images are
/// cached by digest, so a second run unpacks nothing).
fn store() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("user-image");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vcbench(args: &[&str], cwd: &Path) -> Output {
    Command::new(VCBENCH)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", store().join("cache"))
        .output()
        .expect("run vcbench")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether root, runc, crun and busybox-static are here.
fn prerequisites() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("not root: a user's image runs chrooted natively and in rootful runtimes");
        return false;
    }
    for tool in ["runc", "crun"] {
        if let Err(why) = vcbench::host::tool_version(tool) {
            skip(&why);
            return false;
        }
    }
    if !Path::new("/bin/busybox").is_file() {
        skip("/bin/busybox is missing (Debian's busybox-static)");
        return false;
    }
    true
}

/// Makes the test images one at a time (the tests run in parallel).
static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A busybox root file system directory, made once.
fn busybox_root() -> PathBuf {
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let root = store().join("busybox-root");
    if root.join("bin/busybox").is_file() {
        return root;
    }
    let staging = store().join("busybox-root.new");
    let _ = std::fs::remove_dir_all(&staging);
    for dir in ["bin", "tmp", "proc", "sys", "dev", "etc"] {
        std::fs::create_dir_all(staging.join(dir)).unwrap();
    }
    // Copied by cp, so this process never holds it open for writing while another test's
    // thread forks (a child holding it would make its exec fail with ETXTBSY).
    let copied = Command::new("cp")
        .arg("/bin/busybox")
        .arg(staging.join("bin/busybox"))
        .status()
        .unwrap();
    assert!(copied.success());
    for applet in ["sh", "true", "echo", "sleep", "httpd", "cat"] {
        std::os::unix::fs::symlink("busybox", staging.join("bin").join(applet)).unwrap();
    }
    std::fs::write(staging.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
    std::fs::rename(&staging, &root).unwrap();
    root
}

/// The busybox root as a tarball, as `docker export` writes one.
fn busybox_tar() -> PathBuf {
    let root = busybox_root();
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let tar = store().join("busybox.tar");
    if !tar.is_file() {
        let partial = store().join("busybox.tar.part");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["-cf"])
            .arg(&partial)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::rename(&partial, &tar).unwrap();
    }
    tar
}

/// An OCI image layout of the busybox root made by umoci, whose configuration sets an
/// environment variable and a command that prints it; `None` (skipped) without umoci.
fn busybox_layout(work: &Path) -> Option<PathBuf> {
    if Command::new("umoci").arg("--version").output().is_err() {
        skip("umoci is missing (Debian's umoci)");
        return None;
    }
    let layout = work.join("layout");
    let bundle = work.join("bundle");
    let image = format!("{}:latest", layout.display());
    let umoci = |args: &[&str]| {
        let out = Command::new("umoci").args(args).output().unwrap();
        assert!(out.status.success(), "umoci {args:?}: {}", text(&out));
    };
    umoci(&["init", "--layout", layout.to_str().unwrap()]);
    umoci(&["new", "--image", &image]);
    umoci(&["unpack", "--image", &image, bundle.to_str().unwrap()]);
    let copied = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", busybox_root().display()))
        .arg(bundle.join("rootfs"))
        .status()
        .unwrap();
    assert!(copied.success());
    umoci(&["repack", "--image", &image, bundle.to_str().unwrap()]);
    umoci(&[
        "config",
        "--image",
        &image,
        "--config.env=GREETING=hello from the image",
        "--config.workingdir=/tmp",
        "--config.entrypoint=sh",
        "--config.cmd=-c",
        "--config.cmd=echo $GREETING in $(pwd)",
    ]);
    Some(layout)
}

/// The Debian image with python3 that `.ci/run` makes with mmdebstrap before the tests
/// (about a minute and a half, from a Debian mirror); `None` (skipped) when it is not
/// there. The tests themselves never reach beyond this machine.
fn debian_python() -> Option<PathBuf> {
    let tar = store().join("debian-python3.tar");
    if tar.is_file() {
        return Some(tar);
    }
    skip(&format!(
        "no Debian image at {}: make it with `mmdebstrap --variant=essential \
         --include=python3 bookworm {}`, as .ci/run does",
        tar.display(),
        tar.display()
    ));
    None
}

/// A free TCP port on loopback (for a server in the host's network, natively).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs `vcbench run` on the four backends with `args`; returns the results.
fn run_all(image: &Path, runs: &str, extra: &[&str]) -> Results {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "run",
        "-b",
        "native,container,runc,crun",
        "--crun-hide-unified-cgroup",
        "-r",
        runs,
        "-w",
        "1",
        "-q",
        "-o",
        "r.json",
        "--image",
        image.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = vcbench(&args, dir.path());
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    let results = Results::read(&dir.path().join("r.json")).unwrap();
    for backend in BACKENDS {
        for metric in ["time_to_start", "time_to_ready", "time_to_exit"] {
            let figure = results
                .figure(backend, "command", metric)
                .unwrap_or_else(|| panic!("no {backend} {metric}: {:?}", results.failures));
            assert_eq!(figure.samples.len().to_string(), runs);
        }
    }
    for runtime in ["runc", "crun"] {
        let list = Command::new(runtime).args(["list", "-q"]).output().unwrap();
        let ids = String::from_utf8_lossy(&list.stdout);
        assert!(!ids.contains("vcbench-"), "{runtime} still lists {ids}");
    }
    results
}

#[test]
fn a_busybox_tarball_runs_the_same_program_on_every_backend() {
    if !prerequisites() {
        return;
    }
    let results = run_all(&busybox_tar(), "2", &["--", "true"]);
    let line = &results.plan.scenarios[0].workload;
    assert_eq!(line[..2], ["exec", "--root"]);
    assert!(line[2].contains("/images/"), "{line:?}");
    assert_eq!(line[line.len() - 2..], ["--", "true"]);
}

#[test]
fn an_oci_layout_runs_with_its_own_configuration() {
    if !prerequisites() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let Some(layout) = busybox_layout(work.path()) else {
        return;
    };
    for backend in ["native", "container", "runc"] {
        // No program given: the image's entry point and command run, in its directory,
        // with its environment; the line they print makes them ready.
        let out = vcbench(
            &[
                "once",
                "-b",
                backend,
                "--image",
                layout.to_str().unwrap(),
                "--ready",
                "output:^hello from the image in /tmp$",
            ],
            work.path(),
        );
        assert!(out.status.success(), "{backend}: {}", text(&out));
        assert!(text(&out).contains("ready "), "{}", text(&out));
    }
    // A second tag: the layout then holds two images, and one is chosen by its tag.
    let tagged = Command::new("umoci")
        .args(["tag", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg("second")
        .output()
        .unwrap();
    assert!(tagged.status.success(), "umoci tag: {}", text(&tagged));
    let once = |image: &str| {
        vcbench(
            &[
                "once",
                "-b",
                "native",
                "--image",
                image,
                "--ready",
                "output:^hello from the image in /tmp$",
            ],
            work.path(),
        )
    };
    let out = once(&format!("{}:second", layout.display()));
    assert!(out.status.success(), "{}", text(&out));
    let out = once(layout.to_str().unwrap());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("holds 2 images (latest, second); choose one by its tag"),
        "{}",
        text(&out)
    );
    let out = once(&format!("{}:third", layout.display()));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no image tagged \"third\"; its tags: latest, second"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_program_a_bad_image_and_a_readiness_that_never_holds_fail_clearly() {
    if !prerequisites() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let image = busybox_tar();
    let image = image.to_str().unwrap();
    for backend in ["native", "container", "runc"] {
        let out = vcbench(
            &["once", "-b", backend, "--image", image, "--", "python3"],
            work.path(),
        );
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert!(
            text(&out).contains("cannot run \"python3\" in the image"),
            "{backend}: {}",
            text(&out)
        );
    }
    let out = vcbench(
        &[
            "once",
            "-b",
            "container",
            "--timeout",
            "2",
            "--image",
            image,
            "--ready",
            "tcp:9",
            "--",
            "sh",
            "-c",
            "echo still warming up; sleep 60",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("timed out after 2.0 s"), "{said}");
    assert!(said.contains("still warming up"), "{said}");
    // Random bytes are no image: a usage error naming the file, nothing left in the cache.
    let junk = work.path().join("junk.tar");
    std::fs::write(
        &junk,
        (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let out = vcbench(
        &["once", "--image", junk.to_str().unwrap(), "--", "true"],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("junk.tar"), "{}", text(&out));
    let left = userimage::stale(&store().join("cache/vcbench/images"));
    assert!(left.is_empty(), "unpacks left behind: {left:?}");
}

#[test]
fn limits_reach_the_container_and_the_runtimes_and_are_recorded() {
    if !prerequisites() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let out = vcbench(
        &[
            "once",
            "-b",
            "container",
            "--memory",
            "64M",
            "--",
            "fault",
            "--kind",
            "oom",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("out-of-memory killer"),
        "{}",
        text(&out)
    );
    let out = vcbench(
        &[
            "run",
            "-b",
            "container,runc,crun",
            "--crun-hide-unified-cgroup",
            "-s",
            "startup",
            "-r",
            "1",
            "-w",
            "0",
            "-q",
            "-o",
            "r.json",
            "--memory",
            "128M",
            "--cpus",
            "0.5",
            "--pids",
            "64",
        ],
        work.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let results = Results::read(&work.path().join("r.json")).unwrap();
    for backend in ["container", "runc", "crun"] {
        assert!(
            results.plan.settings[backend].contains("limits: memory 128 MiB, cpus 0.5, pids 64"),
            "{backend}: {:?}",
            results.plan.settings
        );
    }
}

#[test]
fn python_from_a_debian_image_and_an_http_server_s_readiness() {
    if !prerequisites() {
        return;
    }
    let Some(image) = debian_python() else {
        return;
    };
    run_all(&image, "3", &["--", "python3", "-c", "pass"]);
    let port = free_port().to_string();
    let ready = format!("tcp:{port}");
    let results = run_all(
        &image,
        "2",
        &[
            "--ready",
            &ready,
            "--",
            "python3",
            "-m",
            "http.server",
            &port,
        ],
    );
    for backend in BACKENDS {
        let ready = results.figure(backend, "command", "time_to_ready").unwrap();
        let start = results.figure(backend, "command", "time_to_start").unwrap();
        assert!(ready.summary.median > start.summary.median, "{backend}");
        // Held once ready, the server's memory is taken while it serves: python's own
        // pages, several MiB, on every backend.
        let rss = results.figure(backend, "command", "rss").unwrap();
        assert!(
            rss.summary.median > 5.0,
            "{backend}: {} MiB",
            rss.summary.median
        );
    }
}

#[test]
fn a_busybox_image_in_a_linux_guest_on_microvm_and_qemu() {
    if !rig::available() {
        return;
    }
    let Some(kernel) = guest::kernel() else {
        return;
    };
    if !Path::new("/bin/busybox").is_file() {
        skip("/bin/busybox is missing (Debian's busybox-static)");
        return;
    }
    let qemu = rig::which("qemu-system-x86_64").expect("the rig runs on QEMU");
    // The umoci layout with its own configuration, as an oci-archive (the rig takes files).
    let work = tempfile::tempdir().unwrap();
    let Some(layout) = busybox_layout(work.path()) else {
        return;
    };
    let archive = work.path().join("layout.tar");
    let tarred = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(tarred.success());
    // Both VM backends run the program from the image, ready at a line of its output (a
    // pattern with spaces, passed on the guest kernel's command line); the image's own
    // entry point, command, environment and directory run in a guest too; a program
    // missing from the image fails with the reason; a guest too small for the image is
    // refused before any boot, naming the option to change.
    let script = "vcbench run -b microvm,qemu --kernel /rig/vmlinux -r 1 -w 0 --timeout 120 \
           -q -o /tmp/r.json --image /rig/busybox.tar --ready 'output:^hello from busybox$' \
           -- sh -c 'echo hello from busybox' > /tmp/run.out 2>&1; echo run=$?; \
         echo '---- run ----'; cat /tmp/run.out; echo '----'; \
         echo '---- results ----'; cat /tmp/r.json; echo '----'; \
         vcbench once -b qemu --kernel /rig/vmlinux --timeout 120 --image /rig/layout.tar \
           --ready 'output:^hello from the image in /tmp$' > /tmp/config.out 2>&1; \
           echo config=$?; echo '---- config ----'; cat /tmp/config.out; echo '----'; \
         vcbench once -b qemu --kernel /rig/vmlinux --vm-memory-mib 40 \
           --image /rig/busybox.tar -- true > /tmp/small.out 2>&1; echo small=$?; \
         echo '---- small ----'; cat /tmp/small.out; echo '----'; \
         least=$(grep -o 'give --vm-memory-mib [0-9]*' /tmp/small.out | grep -o '[0-9]*$'); \
         echo least=$least; \
         vcbench once -b microvm --kernel /rig/vmlinux --timeout 120 --vm-memory-mib $least \
           --image /rig/busybox.tar -- python3 > /tmp/missing.out 2>&1; echo missing=$?; \
         echo '---- missing ----'; cat /tmp/missing.out; echo '----'; \
         echo staged=$(ls -a /var/cache/vcbench/images | grep -c '^[.]unpack-'); \
         echo initramfs=$(ls /var/cache/vcbench/images/*/initramfs-*.cpio | wc -l)";
    let outcome = rig::Rig::default()
        .file(env!("CARGO_BIN_EXE_vcbench"), "/rig/vcbench")
        .file(&kernel, "/rig/vmlinux")
        .file(busybox_tar(), "/rig/busybox.tar")
        .file(&archive, "/rig/layout.tar")
        .file(&qemu, "/usr/bin/qemu-system-x86_64")
        .file("/usr/share/qemu/qboot.rom", "/usr/share/qemu/qboot.rom")
        .timeout(420)
        .retry_on_timeout()
        .run(&["sh", "-c", &format!("PATH=$PATH:/usr/bin; {script}")]);
    let output = &outcome.output;
    assert_eq!(outcome.status, 0, "the rig failed:\n{output}");

    assert_eq!(guest::value(output, "run"), "0", "{output}");
    let results = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(results.path(), guest::section(output, "---- results ----")).unwrap();
    let results = Results::read(results.path()).unwrap();
    for backend in ["microvm", "qemu"] {
        let figure = |metric: &str| {
            results
                .figure(backend, "command", metric)
                .unwrap_or_else(|| panic!("no {backend} {metric}: {:?}", results.failures))
                .summary
                .median
        };
        assert!(
            figure("time_to_ready") > figure("time_to_start"),
            "{backend}: ready after the program's supervisor started"
        );
        assert!(
            figure("time_to_exit") >= figure("time_to_ready"),
            "{backend}"
        );
    }
    let line = &results.plan.scenarios[0].workload;
    assert_eq!(line[..2], ["exec", "--root"], "{line:?}");

    assert_eq!(guest::value(output, "config"), "0", "{output}");
    let config = guest::section(output, "---- config ----");
    assert!(config.contains("outcome   ok"), "{config}");

    // The guest of the least memory the refusal names unpacks the image and reaches
    // init, which finds no python3 in it.
    let least: u64 = guest::value(output, "least").parse().unwrap();
    assert!(
        least > 40 && least < 128,
        "{least} MiB for the busybox image"
    );
    assert_eq!(guest::value(output, "missing"), "3", "{output}");
    let missing = guest::section(output, "---- missing ----");
    assert!(
        missing.contains("cannot run \"python3\" in the image"),
        "{missing}"
    );

    // One initramfs per image, each made once, and nothing left half-written.
    assert_eq!(guest::value(output, "initramfs"), "2", "{output}");
    assert_eq!(guest::value(output, "staged"), "0", "{output}");

    assert_eq!(guest::value(output, "small"), "2", "{output}");
    let small = guest::section(output, "---- small ----");
    assert!(
        small.contains("--vm-memory-mib 40 is too little; give --vm-memory-mib"),
        "{small}"
    );
}

#[test]
fn density_holds_instances_of_the_users_program_once_each_is_ready() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("not root: a user's image runs in a rootful container");
        return;
    }
    if !Path::new("/bin/busybox").is_file() {
        skip("/bin/busybox is missing (Debian's busybox-static)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let image = busybox_tar();
    let image = image.to_str().unwrap();
    // A service ready at a line of its output, held while the others start: three at
    // once on container; natively a TCP port would be one for all, and a program that is
    // not a service is never held: each skipped with the reason.
    let out = vcbench(
        &[
            "run",
            "-b",
            "native,container",
            "-s",
            "density",
            "--instances",
            "1,3",
            "-q",
            "-o",
            "r.json",
            "--image",
            image,
            "--ready",
            "output:^serving$",
            "--",
            "sh",
            "-c",
            "echo serving; exec sleep 607",
        ],
        work.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let results = Results::read(&work.path().join("r.json")).unwrap();
    assert!(results.failures.is_empty(), "{:?}", results.failures);
    for backend in ["native", "container"] {
        let series = results
            .density
            .iter()
            .find(|s| s.backend == backend)
            .unwrap_or_else(|| panic!("no {backend} series: {:?}", results.density));
        assert_eq!(series.reached, 3, "{backend}: {series:?}");
        assert_eq!(series.workload[..2], ["exec", "--root"], "{backend}");
        assert!(series.workload.contains(&"--hold".to_owned()), "{backend}");
        let last = series.steps.last().unwrap();
        assert_eq!(last.instances, 3);
        // Each instance's memory is its program's and its supervisor's: some hundreds of
        // KiB at least, and far less than a GiB.
        let pss = last.per_instance.pss_kib;
        assert!((100..1 << 20).contains(&pss), "{backend}: {pss} KiB");
        for metric in ["start_latency", "pss_per_instance", "instances_reached"] {
            assert!(
                results.figure(backend, "density", metric).is_some(),
                "{backend} {metric}"
            );
        }
    }
    // Nothing left running: every sleep ended with its instance.
    let left = Command::new("pgrep")
        .args(["-f", "^sleep 607$"])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "left running: {}", text(&left));

    let out = vcbench(
        &[
            "run",
            "-b",
            "native,container",
            "-s",
            "density",
            "--instances",
            "1",
            "-q",
            "-o",
            "r2.json",
            "--image",
            image,
            "--ready",
            "tcp:8080",
            "--",
            "httpd",
            "-f",
            "-p",
            "8080",
        ],
        work.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let results = Results::read(&work.path().join("r2.json")).unwrap();
    let skipped: Vec<&str> = results.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert!(
        skipped
            .iter()
            .any(|r| r.contains("native instances share the host's network")),
        "{skipped:?}"
    );
    assert_eq!(
        results.density.len(),
        1,
        "container ran: {:?}",
        results.failures
    );
    let out = vcbench(
        &[
            "run",
            "-b",
            "container",
            "-s",
            "density",
            "--instances",
            "1",
            "-q",
            "-o",
            "r3.json",
            "--image",
            image,
            "--",
            "true",
        ],
        work.path(),
    );
    // Nothing was measured: the run says so with status 1.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let results = Results::read(&work.path().join("r3.json")).unwrap();
    assert!(
        results.skipped[0]
            .reason
            .contains("density holds each instance once its program is ready"),
        "{:?}",
        results.skipped
    );
}
