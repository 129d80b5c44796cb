//! The isolation matrix: what an instance sees of its host and may do, judged against the
//! same probe run natively.
//!
//! The workload's `probe` answers each check from inside (its kernel's boot id, namespaces,
//! hostname, interfaces, mounts, uid map, devices, capabilities, cgroups, and whether it
//! may mount, load a module, open a raw socket, set the clock, write a host-wide sysctl).
//! The same binary run as a plain host process gives the host's answers. Each check is then
//! `isolated` (the instance has its own, or is refused), `partly` (its own view of a shared
//! thing, or a subset of the host's) or `shared` (it sees or may change what the host does).

use std::path::Path;
use std::process::Command;

use workload::record::{self, Fact, Record};

use crate::results::{Better, Figure};

/// Errors while taking the host's own answers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The probe could not be run on the host.
    #[error("cannot run the probe on the host")]
    Spawn(#[source] std::io::Error),
    /// It ran but gave no answers.
    #[error("the probe on the host gave no answers (status {status}): {stderr}")]
    NoAnswers {
        /// Its exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
}

pub use reports::document::isolation::{Isolation, Row};

/// The probe's answers as a plain host process: the reference every backend is judged by.
pub fn host_answers(workload: &Path) -> Result<Vec<Fact>, Error> {
    let out = Command::new(workload)
        .arg("probe")
        .env(workload::channel::ENV, "stdout")
        .output()
        .map_err(Error::Spawn)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let facts = text.lines().find_map(|l| match record::parse_line(l) {
        Ok(Some(Record::Result { facts, .. })) if !facts.is_empty() => Some(facts),
        _ => None,
    });
    facts.ok_or_else(|| Error::NoAnswers {
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr)
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
    })
}

/// Judges every answer from inside against the host's.
pub fn judge(backend: &str, inside: &[Fact], host: &[Fact]) -> Isolation {
    let get = |facts: &[Fact], name: &str| {
        facts
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.clone())
            .unwrap_or_default()
    };
    let own_kernel = get(inside, "kernel_boot_id") != get(host, "kernel_boot_id");
    let differs = |name: &str| get(inside, name) != get(host, name);
    let rows = inside
        .iter()
        .map(|fact| {
            let host_value = get(host, &fact.name);
            let answered = host.iter().any(|f| f.name == fact.name);
            let (verdict, why) = if fact.value.starts_with("untested") {
                (
                    UNTESTED,
                    format!("the probe could not try it ({})", fact.value),
                )
            } else if !answered {
                (
                    UNTESTED,
                    "the host did not answer this check: there is nothing to compare".to_owned(),
                )
            } else {
                verdict(&fact.name, &fact.value, &host_value, own_kernel, &differs)
            };
            Row {
                check: fact.name.clone(),
                inside: fact.value.clone(),
                host: host_value,
                verdict: verdict.to_owned(),
                why,
            }
        })
        .collect();
    Isolation {
        backend: backend.to_owned(),
        rows,
    }
}

const ISOLATED: &str = "isolated";
const PARTLY: &str = "partly";
const SHARED: &str = "shared";
/// Not judged: the probe could not try it, the host did not answer, or the host cannot do
/// it either, so the run cannot tell whether the sandbox would stop it.
const UNTESTED: &str = "untested";

/// The verdict on one check and why.
fn verdict(
    check: &str,
    inside: &str,
    host: &str,
    own_kernel: bool,
    differs: &dyn Fn(&str) -> bool,
) -> (&'static str, String) {
    if check == "kernel_boot_id" {
        return if own_kernel {
            (ISOLATED, "it runs its own kernel".to_owned())
        } else {
            (
                SHARED,
                "it runs on the host's kernel: every system call reaches it".to_owned(),
            )
        };
    }
    let refused = inside.starts_with("no");
    if own_kernel {
        // Its own kernel answered: judged by the answer, not assumed.
        return match check {
            "seccomp" => (
                ISOLATED,
                "its system calls are served by its own kernel: a filter there guards the \
                 guest, the host is reached only through its exits"
                    .to_owned(),
            ),
            "host_paths" if inside != "none" => (
                PARTLY,
                format!("host paths are reachable from its own kernel: {inside}"),
            ),
            _ if check.starts_with("can_") && !refused => (
                ISOLATED,
                format!(
                    "permitted, on its own kernel: {} of the guest, not the host's",
                    power(check).replace("the host's", "the")
                ),
            ),
            _ if refused => (ISOLATED, format!("refused by its own kernel ({inside})")),
            _ if inside == host && !check.starts_with("ns_") => (
                PARTLY,
                format!("its own kernel gave the host's answer ({inside})"),
            ),
            _ => (
                ISOLATED,
                format!("answered by its own kernel ({inside}), not the host's"),
            ),
        };
    }
    match check {
        "kernel_release" => (
            SHARED,
            "the host's kernel, so the host's version".to_owned(),
        ),
        // /proc/self/status: 0 no filter, 1 strict mode, 2 a filter.
        "seccomp" => match inside {
            "0" => (
                SHARED,
                "no system call filter: every system call of the host's kernel is reachable"
                    .to_owned(),
            ),
            _ => (
                ISOLATED,
                "a system call filter stands between it and the host's kernel".to_owned(),
            ),
        },
        "pid" | "visible_processes" => {
            if differs("ns_pid") {
                (
                    ISOLATED,
                    format!("own PID namespace: {inside} (host: {host})"),
                )
            } else {
                (
                    SHARED,
                    "the host's PID namespace: host processes are visible".to_owned(),
                )
            }
        }
        "hostname" => match (inside != host, differs("ns_uts")) {
            (true, _) => (ISOLATED, format!("its own name, {inside:?}")),
            (false, true) => (PARTLY, "own UTS namespace, but the host's name".to_owned()),
            (false, false) => (SHARED, "the host's name and UTS namespace".to_owned()),
        },
        "net_interfaces" => {
            if differs("ns_net") {
                (ISOLATED, format!("own network namespace: {inside}"))
            } else {
                (SHARED, format!("the host's interfaces: {inside}"))
            }
        }
        "mounts" => {
            if differs("ns_mnt") {
                (
                    ISOLATED,
                    format!("own mount namespace: {inside} mounts (host: {host})"),
                )
            } else {
                (SHARED, "the host's mount table".to_owned())
            }
        }
        "host_paths" => match inside {
            "none" => (ISOLATED, "no host path is reachable".to_owned()),
            _ if inside == host => (SHARED, "the host's file system".to_owned()),
            _ => (PARTLY, format!("some host paths are reachable: {inside}")),
        },
        "uid" | "uid_map" => uid_verdict(check, inside, host, differs),
        // In the host's mount and cgroup namespaces it sees the host's cgroup tree itself;
        // counting its directories would only compare two moments of a tree other
        // programs change.
        "cgroup_dirs" if !differs("ns_mnt") && !differs("ns_cgroup") => (
            SHARED,
            format!("the host's cgroup tree itself ({inside} directories)"),
        ),
        "devices" | "cgroup_dirs" => match count_ratio(inside, host) {
            Some(0) => (ISOLATED, format!("none of the host's {host}")),
            Some(n) if n < 100 => (PARTLY, format!("{inside} of the host's {host}")),
            _ => (SHARED, format!("all of the host's {host}")),
        },
        "cap_eff" => {
            let bits = |hex: &str| u64::from_str_radix(hex, 16).map_or(0, u64::count_ones);
            let (i, h) = (bits(inside), bits(host));
            if i == 0 {
                (ISOLATED, "no capabilities".to_owned())
            } else if differs("uid_map") {
                (
                    PARTLY,
                    format!(
                        "{i} capabilities, held in its own user namespace: they reach only \
                         what that namespace owns"
                    ),
                )
            } else if h == 0 {
                (
                    SHARED,
                    format!("{i} capabilities, more than the host user's none"),
                )
            } else if i >= h {
                (SHARED, format!("all {h} of the host's capabilities"))
            } else {
                (PARTLY, format!("{i} of the host's {h} capabilities"))
            }
        }
        "cgroup" => {
            if inside == host {
                (SHARED, "the host's cgroups".to_owned())
            } else if differs("ns_cgroup") {
                (
                    ISOLATED,
                    "own cgroup namespace: it sees its own cgroup as the root".to_owned(),
                )
            } else {
                (
                    PARTLY,
                    "its own cgroup, with the host's tree in sight".to_owned(),
                )
            }
        }
        ns if ns.starts_with("ns_") => {
            if inside != host {
                (ISOLATED, format!("its own {} namespace", &ns[3..]))
            } else {
                (SHARED, format!("the host's {} namespace", &ns[3..]))
            }
        }
        _ if refused && host.starts_with("no") => (
            UNTESTED,
            format!(
                "refused on the host too ({host}; inside: {inside}): this run cannot tell \
                 whether the sandbox would stop it"
            ),
        ),
        _ if refused => (ISOLATED, format!("refused ({inside})")),
        "can_mount" if differs("ns_mnt") => (
            PARTLY,
            "permitted, in its own mount namespace: the host's mounts are untouched".to_owned(),
        ),
        "can_raw_socket" if differs("ns_net") => (
            PARTLY,
            "permitted, on its own network namespace's interfaces".to_owned(),
        ),
        "can_mount"
        | "can_load_module"
        | "can_raw_socket"
        | "can_set_time"
        | "can_write_sysctl"
        | "can_write_core_pattern"
        | "can_read_kcore"
        | "can_open_new_device"
        | "can_unshare_user"
        | "can_perf_event"
        | "can_bpf" => (
            SHARED,
            format!(
                "permitted, and it acts on the host's kernel ({})",
                power(check)
            ),
        ),
        _ if inside == host => (SHARED, "the same as the host".to_owned()),
        _ => (PARTLY, format!("differs from the host ({host})")),
    }
}

/// What a permitted power changes on a shared kernel.
fn power(check: &str) -> &'static str {
    match check {
        "can_load_module" => "a module runs in the host's kernel",
        "can_set_time" => "the host's clock",
        "can_write_sysctl" => "host-wide kernel settings",
        "can_raw_socket" => "raw packets on the host's network",
        "can_write_core_pattern" => "the program the host's kernel runs as root on a crash",
        "can_read_kcore" => "the host kernel's memory",
        "can_open_new_device" => "the host's devices, through nodes it makes",
        "can_unshare_user" => "the host kernel's user-namespace code, a frequent exploit path",
        "can_perf_event" => "the host's performance counters, a frequent exploit path",
        "can_bpf" => "programs run inside the host's kernel",
        _ => "the host's mounts",
    }
}

/// The uid and the uid map: root inside is host root only when the map is the identity.
fn uid_verdict(
    check: &str,
    inside: &str,
    host: &str,
    differs: &dyn Fn(&str) -> bool,
) -> (&'static str, String) {
    if check == "uid" {
        return if differs("uid_map") {
            (PARTLY, format!("uid {inside} inside a user namespace"))
        } else {
            (SHARED, format!("uid {inside}, the same uid on the host"))
        };
    }
    let fields: Vec<&str> = inside.split_whitespace().collect();
    match fields.as_slice() {
        [inner, outer, _] if inside != host => (
            ISOLATED,
            format!("uid {inner} inside is uid {outer} on the host"),
        ),
        _ => (
            SHARED,
            "the host's uids: root inside is root on the host".to_owned(),
        ),
    }
}

/// `inside` as a percentage of `host`, for counts.
fn count_ratio(inside: &str, host: &str) -> Option<u64> {
    let i: u64 = inside.parse().ok()?;
    let h: u64 = host.parse().ok()?;
    Some((i * 100).checked_div(h).unwrap_or(100))
}

/// Figures of a matrix: how many checks came out isolated, partly and shared.
pub fn figures(isolation: &Isolation) -> Vec<Figure> {
    [
        (ISOLATED, Better::Higher),
        (PARTLY, Better::Lower),
        (SHARED, Better::Lower),
        (UNTESTED, Better::Lower),
    ]
    .into_iter()
    .filter_map(|(verdict, better)| {
        let count = isolation
            .rows
            .iter()
            .filter(|r| r.verdict == verdict)
            .count();
        Figure::value(
            &isolation.backend,
            "isolation",
            &format!("{verdict}_checks"),
            "checks",
            better,
            f64::from(u32::try_from(count).unwrap_or(u32::MAX)),
        )
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_and_the_new_powers_are_judged() {
        let host = facts(&[
            ("kernel_boot_id", "h"),
            ("seccomp", "0"),
            ("can_write_core_pattern", "yes"),
            ("can_bpf", "yes"),
            ("can_unshare_user", "yes"),
            ("can_load_module", "no: ENOSYS"),
        ]);
        let container = judge(
            "container",
            &facts(&[
                ("kernel_boot_id", "h"),
                ("seccomp", "2"),
                ("can_write_core_pattern", "no: EACCES"),
                ("can_bpf", "no: EPERM"),
                ("can_unshare_user", "yes"),
                ("can_load_module", "no: EPERM"),
            ]),
            &host,
        );
        let v = |m: &Isolation, check: &str| {
            m.rows
                .iter()
                .find(|r| r.check == check)
                .map(|r| (r.verdict.clone(), r.why.clone()))
                .unwrap()
        };
        assert_eq!(v(&container, "seccomp").0, ISOLATED);
        assert_eq!(v(&container, "can_write_core_pattern").0, ISOLATED);
        assert_eq!(v(&container, "can_bpf").0, ISOLATED);
        // Refused on the host too, for another reason: nothing to tell.
        assert_eq!(v(&container, "can_load_module").0, UNTESTED);
        let (verdict, why) = v(&container, "can_unshare_user");
        assert_eq!(verdict, SHARED);
        assert!(why.contains("user-namespace code"), "{why}");
        // A guest's kernel answers for itself.
        let guest = judge(
            "microvm",
            &facts(&[("kernel_boot_id", "g"), ("seccomp", "0")]),
            &host,
        );
        assert_eq!(v(&guest, "seccomp").0, ISOLATED);
    }

    fn facts(pairs: &[(&str, &str)]) -> Vec<Fact> {
        pairs.iter().map(|(n, v)| Fact::new(n, *v)).collect()
    }

    #[test]
    fn the_host_against_itself_shares_everything() {
        let host = facts(&[
            ("kernel_boot_id", "a"),
            ("ns_pid", "pid:[1]"),
            ("hostname", "h"),
            ("can_set_time", "yes"),
        ]);
        let m = judge("native", &host, &host);
        assert!(m.rows.iter().all(|r| r.verdict == SHARED), "{m:?}");
    }

    #[test]
    fn a_container_is_judged_by_its_namespaces_and_powers() {
        let host = facts(&[
            ("kernel_boot_id", "a"),
            ("ns_pid", "pid:[1]"),
            ("ns_mnt", "mnt:[2]"),
            ("visible_processes", "80"),
            ("can_mount", "yes"),
            ("can_set_time", "yes"),
            ("uid_map", "0 0 4294967295"),
        ]);
        let inside = facts(&[
            ("kernel_boot_id", "a"),
            ("ns_pid", "pid:[9]"),
            ("ns_mnt", "mnt:[8]"),
            ("visible_processes", "2"),
            ("can_mount", "yes"),
            ("can_set_time", "no: EPERM"),
            ("uid_map", "0 100000 65536"),
        ]);
        let m = judge("container", &inside, &host);
        let v = |check: &str| {
            m.rows
                .iter()
                .find(|r| r.check == check)
                .map(|r| r.verdict.as_str())
                .unwrap()
        };
        assert_eq!(v("kernel_boot_id"), SHARED);
        assert_eq!(v("ns_pid"), ISOLATED);
        assert_eq!(v("visible_processes"), ISOLATED);
        assert_eq!(v("can_mount"), PARTLY);
        assert_eq!(v("can_set_time"), ISOLATED);
        assert_eq!(v("uid_map"), ISOLATED);
    }

    fn verdicts(m: &Isolation) -> Vec<(&str, &str)> {
        m.rows
            .iter()
            .map(|r| (r.check.as_str(), r.verdict.as_str()))
            .collect()
    }

    #[test]
    fn its_own_kernel_is_judged_answer_by_answer() {
        let host = facts(&[
            ("kernel_boot_id", "a"),
            ("ns_pid", "pid:[1]"),
            ("hostname", "h"),
            ("host_paths", "/etc/shadow"),
            ("can_set_time", "yes"),
            ("can_mount", "no: EPERM"),
        ]);
        let inside = facts(&[
            ("kernel_boot_id", "b"),
            ("ns_pid", "pid:[1]"),
            ("hostname", "h"),
            ("host_paths", "/etc/shadow"),
            ("can_set_time", "yes"),
            ("can_mount", "untested: cannot make a directory to mount on"),
        ]);
        let m = judge("microvm", &inside, &host);
        assert_eq!(
            verdicts(&m),
            [
                ("kernel_boot_id", ISOLATED),
                // Namespace ids of two kernels do not compare.
                ("ns_pid", ISOLATED),
                // The same answer from its own kernel is not assumed away.
                ("hostname", PARTLY),
                ("host_paths", PARTLY),
                ("can_set_time", ISOLATED),
                // An untried check is untested, never permitted.
                ("can_mount", UNTESTED),
            ]
        );
        assert!(m.rows[4].why.contains("the guest, not the host's"), "{m:?}");
    }

    #[test]
    fn a_host_with_nothing_to_share_is_not_called_shared() {
        // An ordinary user: no capabilities, no module loading, no answer on the host
        // for one check.
        let host = facts(&[
            ("kernel_boot_id", "a"),
            ("cap_eff", "0000000000000000"),
            ("can_load_module", "no: EPERM"),
            ("uid_map", "0 0 4294967295"),
        ]);
        let inside = facts(&[
            ("kernel_boot_id", "a"),
            ("cap_eff", "000001ffffffffff"),
            ("can_load_module", "no: EPERM"),
            ("uid_map", "0 1000 1"),
            ("devices", "3"),
        ]);
        let m = judge("container", &inside, &host);
        assert_eq!(
            verdicts(&m),
            [
                ("kernel_boot_id", SHARED),
                ("cap_eff", PARTLY),
                ("can_load_module", UNTESTED),
                ("uid_map", ISOLATED),
                ("devices", UNTESTED),
            ]
        );
        let none = judge(
            "container",
            &facts(&[("cap_eff", "0000000000000000")]),
            &facts(&[("cap_eff", "0000000000000000")]),
        );
        assert_eq!(verdicts(&none), [("cap_eff", ISOLATED)]);
    }

    #[test]
    fn the_host_s_cgroup_tree_is_shared_however_it_changed_between_the_probes() {
        let host = facts(&[
            ("ns_mnt", "mnt:[1]"),
            ("ns_cgroup", "cgroup:[2]"),
            ("cgroup_dirs", "20"),
        ]);
        let inside = facts(&[
            ("ns_mnt", "mnt:[1]"),
            ("ns_cgroup", "cgroup:[2]"),
            ("cgroup_dirs", "12"),
        ]);
        let m = judge("native", &inside, &host);
        assert_eq!(verdicts(&m)[2], ("cgroup_dirs", SHARED));
    }

    #[test]
    fn figures_count_the_verdicts() {
        let host = facts(&[("kernel_boot_id", "a"), ("hostname", "h")]);
        let figures = figures(&judge("native", &host, &host));
        let shared = figures
            .iter()
            .find(|f| f.metric == "shared_checks")
            .unwrap();
        assert_eq!(shared.samples, [2.0]);
    }
}
