//! Many hosts: `vcbench merge` and the fleet document through the binary, and the Ansible
//! playbook (deploy/ansible/suite.yml) for real, on three hosts made on this machine.
//!
//! Each host is a network and UTS namespace of its own, with its own host name and an
//! sshd listening on 127.0.0.1 inside it; Ansible reaches it over ssh through a proxy
//! command that connects to that address from inside the namespace, so no traffic leaves
//! a namespace the test made. A fourth host cannot be reached, and a fifth's run fails:
//! each must come out as a skipped host, with its reason. The plan is the native and
//! container backends' startup, three runs. Everything the test starts is ended when it
//! ends, even when it fails.
//!
//! Without root, ansible-playbook, sshd, nc, nsenter or the packages of .ci/run, the
//! playbook test prints why and skips; with CI=true that is a failure.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reports::fleet::{Document, Fleet};

const VCBENCH: &str = env!("CARGO_BIN_EXE_vcbench");

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is in the workspace")
        .to_owned()
}

fn vcbench(args: &[&str]) -> Output {
    Command::new(VCBENCH)
        .args(args)
        .output()
        .expect("vcbench runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_fleet_schema_is_current() {
    let out = vcbench(&["schema", "--fleet"]);
    assert!(out.status.success(), "{}", text(&out));
    let committed = std::fs::read_to_string(repo().join("docs/fleet.schema.json")).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        committed.trim(),
        "docs/fleet.schema.json is stale (a change to the results document changes it too): \
         regenerate it with `vcbench schema --fleet > docs/fleet.schema.json`"
    );
}

/// The real run of reports' test data as host `name`, written into `dir`.
fn host_file(dir: &Path, name: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("reports/tests/data/real-run.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["host"]["hostname"] = name.into();
    edit(&mut doc);
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    path
}

#[test]
fn merge_refuses_or_states_what_differs_and_show_report_compare_read_a_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let a = host_file(dir.path(), "a", |_| {});
    let b = host_file(dir.path(), "b", |d| d["tool"]["version"] = "0.2.0".into());
    let c = host_file(dir.path(), "c", |_| {});
    let (a, b, c) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
    );
    let fleet = dir.path().join("fleet.json");
    let fleet = fleet.to_str().unwrap();

    let out = vcbench(&["merge", a, b, c, "-o", fleet]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("hosts: 3 (a, b, c)"), "{}", text(&out));
    assert!(text(&out).contains("differs: vcbench version: a 0.1.0"));
    let Document::Fleet(read) = Document::read(Path::new(fleet)).unwrap() else {
        panic!("merge wrote no fleet document");
    };
    assert_eq!(read.hosts.len(), 3);

    let out = vcbench(&["show", fleet]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.starts_with("fleet of 3 hosts"), "{shown}");
    assert!(shown.contains("differs: vcbench version"), "{shown}");
    let header = shown.lines().find(|l| l.starts_with("backend")).unwrap();
    assert!(header.ends_with(" a  b  c") || header.contains(" a ") && header.ends_with('c'));

    let html = dir.path().join("fleet.html");
    let out = vcbench(&["report", fleet, "-o", html.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<title>vcbench fleet report: a, b, c</title>"));
    assert!(page.contains("<svg"));
    let out = vcbench(&["report", fleet]);
    assert!(text(&out).starts_with("# vcbench fleet report: a, b, c"));

    let out = vcbench(&["compare", fleet]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("{fleet}:b")), "{}", text(&out));

    // Refused, each with its reason and status 2.
    let refused = |args: &[&str], why: &str| {
        let out = vcbench(args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(why), "{}", text(&out));
    };
    refused(&["merge", a, a], "are both from host \"a\"");
    let longer = host_file(dir.path(), "d", |d| {
        d["plan"]["scenarios"][0]["runs"] = 99.into()
    });
    refused(
        &["merge", a, longer.to_str().unwrap()],
        "startup plan: a hello (30 runs, 3 warmup, timeout 60 s), d hello (99 runs",
    );
    let cut = dir.path().join("e.json");
    let whole = std::fs::read_to_string(a).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 3]).unwrap();
    let cut = cut.to_str().unwrap();
    refused(&["merge", a, cut], "is cut short");
    refused(
        &["merge", a, "--skipped-host", "x"],
        "give it as HOST=REASON",
    );

    // Merged, with the difference or the skipped host stated.
    let out = vcbench(&[
        "merge",
        a,
        longer.to_str().unwrap(),
        "--allow-plan-differences",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = vcbench(&[
        "merge",
        a,
        cut,
        "--skip-unreadable",
        "--skipped-host",
        "f=no ssh",
        "-o",
        fleet,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let Document::Fleet(read) = Document::read(Path::new(fleet)).unwrap() else {
        panic!("merge wrote no fleet document");
    };
    let skipped: Vec<(&str, &str)> = read
        .skipped_hosts
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped[0], ("f", "no ssh"));
    assert_eq!(skipped[1].0, "e");
    assert!(skipped[1].1.contains("cut short"), "{skipped:?}");
    let out = vcbench(&["merge", cut, "--skip-unreadable"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no host has results; e was skipped"));
}

/// Whether `program` is installed; prints why not, fails under CI.
fn have(program: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .any(|p| p.join(program).is_file())
    });
    if !found {
        let why = format!("{program} is not installed (Debian package {package})");
        assert!(!ci(), "CI=true but {why}");
        eprintln!("skipped: {why}");
    }
    found
}

/// The packages of .ci/run that are not installed: the playbook would install them, which
/// the test's hosts, with no network, cannot.
fn missing_packages() -> Vec<String> {
    let out = Command::new("bash")
        .args([
            "-c",
            "eval \"$(sed -n '/^packages=(/,/)/p' .ci/run)\" && for p in \"${packages[@]}\"; do \
             dpkg-query -W -f='${Status}' \"$p\" 2>/dev/null | grep -q 'install ok installed' \
             || echo \"$p\"; done",
        ])
        .current_dir(repo())
        .output()
        .expect("bash runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Hosts made of namespaces, each with an sshd, and what Ansible's ssh left: all ended
/// when dropped.
struct Hosts {
    dir: tempfile::TempDir,
    sshds: Vec<(String, Child, String)>,
    made_privsep_dir: bool,
}

impl Hosts {
    /// Hosts `names`, each in a network and UTS namespace of its own, its host name its
    /// name, its sshd on 127.0.0.1:22 inside.
    fn start(names: &[&str]) -> Hosts {
        let dir = tempfile::tempdir().unwrap();
        let privsep = Path::new("/run/sshd");
        let made_privsep_dir = !privsep.exists();
        if made_privsep_dir {
            std::fs::create_dir_all(privsep).unwrap();
        }
        let mut hosts = Hosts {
            dir,
            sshds: Vec::new(),
            made_privsep_dir,
        };
        let d = hosts.dir.path().to_owned();
        for key in ["host_key", "client_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .output()
                .unwrap();
            assert!(out.status.success(), "ssh-keygen: {}", text(&out));
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:22\nHostKey {d}/host_key\nAuthorizedKeysFile \
                 {d}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication \
                 no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n\
                 Subsystem sftp internal-sftp\nLogLevel ERROR\n",
                d = d.display()
            ),
        )
        .unwrap();
        for name in names {
            let script = format!(
                "hostname {name} && ip link set lo up && exec /usr/sbin/sshd -D -e -f {}",
                config.display()
            );
            let mut command = Command::new("unshare");
            command
                .args(["--net", "--uts", "--", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            // The sshd dies with this test, even when the test is killed.
            let die_with_the_test = || {
                // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and reads no memory.
                if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            };
            // SAFETY: the closure runs in the forked child before exec and makes only the
            // prctl system call, which is async-signal-safe; it touches no memory of the
            // parent's.
            unsafe { command.pre_exec(die_with_the_test) };
            let child = command.spawn().expect("unshare runs");
            let pid = child.id();
            hosts.sshds.push(((*name).to_owned(), child, String::new()));
            let netns = wait_for_sshd(pid);
            hosts.sshds.last_mut().unwrap().2 = netns;
        }
        hosts
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The proxy command that reaches host `i`'s sshd from inside its namespace.
    fn proxy(&self, i: usize) -> String {
        format!("nsenter -t {} -n nc 127.0.0.1 22", self.sshds[i].1.id())
    }

    /// The processes in any of the hosts' namespaces, and Ansible's ssh masters (named by
    /// this test's directory).
    fn leftovers(&self) -> Vec<i32> {
        let dir = self.dir.path().to_string_lossy().into_owned();
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return found;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let ns = std::fs::read_link(entry.path().join("ns/net"))
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let in_ours = self.sshds.iter().any(|(_, _, n)| !n.is_empty() && *n == ns);
            let ours = String::from_utf8_lossy(&cmdline).contains(&dir)
                && u32::try_from(pid).ok() != Some(std::process::id());
            if in_ours || ours {
                found.push(pid);
            }
        }
        found
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for _ in 0..100 {
            let left = self.leftovers();
            if left.is_empty() {
                break;
            }
            for pid in left {
                // SAFETY: kill(2) on a process of this test's namespaces or this test's
                // ssh masters: it reads no memory.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (_, child, _) in &mut self.sshds {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.made_privsep_dir {
            let _ = std::fs::remove_dir(Path::new("/run/sshd"));
        }
    }
}

/// Waits until the sshd of process `pid` listens on 127.0.0.1:22 in its namespace, and
/// returns that namespace's name (`net:[inode]`).
fn wait_for_sshd(pid: u32) -> String {
    let start = Instant::now();
    loop {
        let tcp = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
        // 0100007F:0016 is 127.0.0.1:22; 0A is LISTEN.
        if tcp
            .lines()
            .any(|l| l.contains("0100007F:0016 00000000:0000 0A"))
        {
            return std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .unwrap()
                .to_string_lossy()
                .into_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the sshd of process {pid} did not listen within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_playbook_runs_one_plan_on_three_hosts_and_reports_them() {
    // SAFETY: geteuid(2) only returns a number.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            !ci(),
            "CI=true but the playbook test needs root (namespaces, sshd)"
        );
        eprintln!("skipped: the playbook test needs root (namespaces, sshd)");
        return;
    }
    let tools = [
        ("ansible-playbook", "ansible-core"),
        ("sshd", "openssh-server"),
        ("ssh-keygen", "openssh-client"),
        ("nc", "netcat-openbsd"),
        ("nsenter", "util-linux"),
        ("unshare", "util-linux"),
    ];
    if !tools
        .iter()
        .all(|(program, package)| have(program, package))
    {
        return;
    }
    let missing = missing_packages();
    if !missing.is_empty() {
        let why = format!(
            "packages of .ci/run are missing ({}); the playbook would install them, which \
             this test's hosts, with no network, cannot",
            missing.join(" ")
        );
        assert!(!ci(), "CI=true but {why}");
        eprintln!("skipped: {why}");
        return;
    }
    // Three hosts that run, and one whose run fails (an option vcbench refuses): it must
    // come out skipped, with vcbench's own reason.
    let names = ["fleet-a", "fleet-b", "fleet-c"];
    let hosts = Hosts::start(&["fleet-a", "fleet-b", "fleet-c", "fleet-broken"]);
    let d = hosts.path().to_owned();
    let mut inventory = String::from("vcbench:\n  hosts:\n");
    for (i, name) in names.iter().chain(&["fleet-broken"]).enumerate() {
        inventory.push_str(&format!(
            "    {name}:\n      ansible_ssh_common_args: \"-o ProxyCommand='{}'\"\n",
            hosts.proxy(i)
        ));
    }
    inventory.push_str("      vcbench_run_args: [--timeout, \"0\"]\n");
    // A host whose connection always fails: it must come out skipped, with why.
    inventory
        .push_str("    fleet-gone:\n      ansible_ssh_common_args: \"-o ProxyCommand=false\"\n");
    inventory.push_str(&format!(
        "  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {d}/client_key\n    \
         vcbench_become: false\n    vcbench_dir: \"{d}/hosts/{{{{ inventory_hostname }}}}\"\n    \
         vcbench_backends: native,container\n    vcbench_scenarios: startup\n    vcbench_runs: 3\n",
        d = d.display()
    ));
    std::fs::write(d.join("inventory.yml"), inventory).unwrap();
    std::fs::write(
        d.join("ansible.cfg"),
        format!(
            "[defaults]\nhost_key_checking = False\nremote_tmp = {d}/ansible/remote\nlocal_tmp = \
             {d}/ansible/local\ninterpreter_python = /usr/bin/python3\nretry_files_enabled = \
             False\n[ssh_connection]\ncontrol_path_dir = {d}/ansible/cp\nssh_args = -o \
             ControlMaster=auto -o ControlPersist=30s -o UserKnownHostsFile={d}/known_hosts \
             -o StrictHostKeyChecking=no\npipelining = True\n",
            d = d.display()
        ),
    )
    .unwrap();
    // The binary the playbook copies to each host, without its debug symbols (a quarter
    // of the size) where strip is installed.
    let binary = d.join("vcbench");
    std::fs::copy(VCBENCH, &binary).unwrap();
    let _ = Command::new("strip").arg(&binary).status();
    let results = d.join("results");
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg("600")
        .arg("ansible-playbook")
        .arg("-i")
        .arg(d.join("inventory.yml"))
        .arg(repo().join("deploy/ansible/suite.yml"))
        .arg("-e")
        .arg(format!("vcbench_binary={}", binary.display()))
        .arg("-e")
        .arg(format!("vcbench_results_dir={}", results.display()))
        .env("ANSIBLE_CONFIG", d.join("ansible.cfg"))
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("ansible-playbook runs");
    eprintln!("the playbook took {:.1?}", started.elapsed());
    assert!(out.status.success(), "the playbook failed:\n{}", text(&out));

    let Document::Fleet(fleet) = Document::read(&results.join("fleet.json")).unwrap() else {
        panic!("the playbook wrote no fleet document");
    };
    check_fleet(&fleet, &names);
    let md = std::fs::read_to_string(results.join("fleet.md")).unwrap();
    assert!(
        md.starts_with("# vcbench fleet report: fleet-a, fleet-b, fleet-c\n"),
        "{md}"
    );
    assert!(md.contains("- fleet-gone: unreachable:"), "{md}");
    let html = std::fs::read_to_string(results.join("fleet.html")).unwrap();
    assert!(html.contains("<h1>vcbench fleet report: fleet-a, fleet-b, fleet-c</h1>\n<p>3 hosts"));
    assert!(html.contains("<title>Each backend's ratio to native, per host</title>"));
    for name in names {
        assert!(d.join(format!("hosts/{name}/bin/vcbench")).is_file());
    }

    drop(hosts);
    assert!(
        !d.exists(),
        "the hosts' directory outlived them: {}",
        d.display()
    );
}

fn check_fleet(fleet: &Fleet, names: &[&str]) {
    let hosts: Vec<&str> = fleet.hosts.iter().map(|m| m.name.as_str()).collect();
    let mut sorted = hosts.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, names, "the fleet's hosts");
    for name in names {
        let start = fleet
            .figures_of(name)
            .find(|f| f.backend == "native" && f.metric == "time_to_start")
            .unwrap_or_else(|| panic!("{name} has no native startup figure"));
        assert_eq!(start.samples.len(), 3, "{name}: {start:?}");
        let container = fleet
            .figures_of(name)
            .find(|f| f.backend == "container" && f.metric == "time_to_start")
            .unwrap_or_else(|| panic!("{name} has no container startup figure"));
        assert!(container.vs_baseline.is_some(), "{name}: {container:?}");
        let member = fleet.member(name).unwrap();
        assert_eq!(member.results.host.hostname, *name);
    }
    assert!(fleet.differences.is_empty(), "{:?}", fleet.differences);
    let skipped: Vec<(&str, &str)> = fleet
        .skipped_hosts
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, "fleet-broken");
    assert!(
        skipped[0].1.starts_with(
            "Run the plan (vcbench run) failed: error: invalid value '0' for '--timeout"
        ),
        "{skipped:?}"
    );
    assert_eq!(skipped[1].0, "fleet-gone");
    assert!(skipped[1].1.starts_with("unreachable:"), "{skipped:?}");
}
