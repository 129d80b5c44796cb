//! The guided tour (`vcbench tour`): the same small programs run as a plain process, in a
//! container and in a VM, and what each one saw, side by side, a step at a time, each step
//! with what it teaches and the command that shows it again.
//!
//! Every answer is the workload's own, from inside: its `probe` (PID, hostname, mounts,
//! uid map, network, kernel, powers: what `vcbench run -s isolation` judges) and its `hello`
//! (the start, the backend's phases, a VM's exits). A VM that boots no Linux guest runs
//! micro guests, which have no OS to ask; its column says so, and what it shows instead.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use workload::record::Fact;

use crate::backend::{Availability, Backend, Launch};
use crate::measure::{run_once, Outcome};
use crate::scenario::{Scenario, Step};

/// Errors of the tour: none of its visits can fail it (a visit that fails says why in its
/// column), only a tour with nothing to visit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No backend was given.
    #[error("the tour needs at least one backend")]
    NoBackend,
}

/// What one backend showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    /// The backend.
    pub backend: String,
    /// What it is, in a few words.
    pub what: String,
    /// Its settings, as the results' plan gives them.
    pub settings: String,
    /// Why it could not run here at all, when it could not.
    pub unavailable: Option<String>,
    /// The probe's answers from inside; empty when it ran none.
    pub facts: Vec<Fact>,
    /// Why there are no answers: its guests run no program, or the probe failed.
    pub no_facts: Option<String>,
    /// Whether it ran micro guests (no guest OS).
    pub micro: bool,
    /// `hello`: launch to its first record, ms.
    pub start_ms: Option<f64>,
    /// `hello`: the backend's phases, ms after launch.
    pub phases: Vec<(String, f64)>,
    /// `hello`: the backend's counters (a VM's exits).
    pub counters: Vec<(String, u64)>,
    /// Why `hello` failed, when it did.
    pub failure: Option<String>,
}

/// Runs `hello` and, where the backend runs programs, `probe` in one instance each.
pub fn visit(
    backend: &dyn Backend,
    workload: &Path,
    timeout: Duration,
    stop: &AtomicBool,
) -> Visit {
    let mut visit = Visit {
        backend: backend.name().to_owned(),
        what: backend.describe().to_owned(),
        settings: backend.settings(),
        unavailable: None,
        facts: Vec::new(),
        no_facts: None,
        micro: backend.settings().contains("micro guest"),
        start_ms: None,
        phases: Vec::new(),
        counters: Vec::new(),
        failure: None,
    };
    if let Availability::Unavailable(why) = backend.availability() {
        visit.unavailable = Some(why);
        return visit;
    }
    let once = |args: &[&str], scenario: Scenario| -> Outcome {
        let launch = Launch {
            workload: workload.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        let step = Step::new(scenario, Some(1), Some(0), Some(timeout));
        run_once(backend, &launch, &step, stop)
    };
    let hello = once(&["hello"], Scenario::Startup);
    visit.start_ms = hello.observation.markers.started_ms;
    visit.phases = hello
        .phases
        .iter()
        .map(|p| (p.name.clone(), p.ms))
        .collect();
    visit.counters = hello.counters.clone();
    visit.failure = hello.failure;
    match backend.runs_programs() {
        Err(why) => visit.no_facts = Some(why),
        Ok(()) => {
            let probe = once(&["probe"], Scenario::Isolation);
            match probe.failure {
                Some(why) => visit.no_facts = Some(format!("the probe failed: {why}")),
                None => visit.facts = probe.observation.facts,
            }
        }
    }
    visit
}

/// One step of the tour.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// Its title, a question.
    pub title: &'static str,
    /// What it teaches.
    pub lesson: &'static str,
    /// The command that shows the same again.
    pub command: &'static str,
    /// The rows: what is shown, then one cell per visit.
    pub rows: Vec<(String, Vec<String>)>,
}

/// A question of the tour the probe answers.
struct Question {
    /// Its title.
    title: &'static str,
    /// What it teaches.
    lesson: &'static str,
    /// The command that shows it again.
    command: &'static str,
    /// The facts it reads, each with the words a reader knows it by.
    facts: &'static [(&'static str, &'static str)],
}

/// The questions the probe answers, in the order the tour asks them.
const QUESTIONS: [Question; 6] = [
    Question {
        title: "Who is PID 1, and which processes can it see?",
        lesson: "A plain process lives in the host's one process table. A container gets a PID \
            namespace of its own: its first process is PID 1 there (here the workload's own \
            supervisor, with the workload as PID 2), and the host's processes are out of sight, \
            though the host kernel still runs them all. A Linux guest has a kernel of its own, \
            with its own PID 1 and nothing of the host's.",
        command: "vcbench once -b container --json -- probe",
        facts: &[
            ("pid", "its PID"),
            ("visible_processes", "processes it sees"),
        ],
    },
    Question {
        title: "What is this machine called?",
        lesson: "The hostname belongs to a UTS namespace: a container can be given its own name \
            without touching the host's. A VM's kernel has its own name anyway.",
        command: "vcbench once -b container --json -- probe",
        facts: &[("hostname", "hostname")],
    },
    Question {
        title: "Which files can it see?",
        lesson:
            "A mount namespace and pivot_root give a container its own root file system, built \
            from the image: the host's files are not in it, unless mounted in on purpose. A VM \
            sees only the disks and initramfs its monitor gives it.",
        command: "vcbench once -b container --json -- probe",
        facts: &[
            ("mounts", "mounts"),
            ("host_paths", "host paths it reaches"),
            ("devices", "device nodes"),
        ],
    },
    Question {
        title: "Who is it, and what may it do?",
        lesson: "With a user namespace, root inside is an ordinary user outside: the uid map says \
            which. The capabilities it holds inside reach only what its namespaces own, so \
            mounting over the host, setting the host's clock or changing host-wide settings is \
            refused. A system-call filter (seccomp) can refuse whole calls on top. A power the \
            host itself is refused proves nothing either way.",
        command: "vcbench run -b native,container -s isolation",
        facts: &[
            ("uid", "its uid"),
            ("uid_map", "uid map (inside, outside, count)"),
            ("cap_eff", "capabilities"),
            ("seccomp", "system-call filter (seccomp mode)"),
            ("can_mount", "mount a file system"),
            ("can_set_time", "set the clock"),
            ("can_write_sysctl", "write a host-wide sysctl"),
        ],
    },
    Question {
        title: "What network does it have?",
        lesson:
            "A network namespace starts with nothing but its own loopback: the host's interfaces \
            are not there until someone plugs one in. A VM has the network devices its monitor \
            emulates.",
        command: "vcbench once -b container --json -- probe",
        facts: &[("net_interfaces", "network interfaces")],
    },
    Question {
        title: "Which kernel runs it?",
        lesson:
            "This is the line between the two: a container's every system call is served by the \
            host's own kernel (the same boot id, the same release), so namespaces change what it \
            sees, not which kernel it talks to. A VM's guest boots a kernel of its own, and \
            reaches the host's through VM exits, handled by KVM in the host kernel or by its \
            monitor.",
        command: "vcbench once -b container --json -- probe",
        facts: &[
            ("kernel_release", "kernel release"),
            ("kernel_boot_id", "kernel boot id"),
        ],
    },
];

/// A cell for a visit that has no answer to a probe question.
fn no_answer(v: &Visit) -> String {
    if let Some(why) = &v.unavailable {
        return format!("unavailable: {why}");
    }
    if v.micro {
        return "none: no guest OS".to_owned();
    }
    "no answer".to_owned()
}

/// Shortens an answer for a table cell.
fn short(check: &str, value: &str) -> String {
    reports::matrix::short(check, value)
}

/// The tour's stops, from what the visits showed.
pub fn stops(visits: &[Visit]) -> Vec<Stop> {
    let mut out: Vec<Stop> = QUESTIONS
        .iter()
        .map(|q| Stop {
            title: q.title,
            lesson: q.lesson,
            command: q.command,
            rows: q
                .facts
                .iter()
                .map(|(check, label)| {
                    let cells = visits
                        .iter()
                        .map(|v| {
                            v.facts
                                .iter()
                                .find(|f| f.name == *check)
                                .map_or_else(|| no_answer(v), |f| short(check, &f.value))
                        })
                        .collect();
                    ((*label).to_owned(), cells)
                })
                .collect(),
        })
        .collect();
    out.push(start_stop(visits));
    out.push(exits_stop(visits));
    out
}

/// What starting `hello` took, and where the time went.
fn start_stop(visits: &[Visit]) -> Stop {
    let cell = |v: &Visit, f: &dyn Fn(&Visit) -> Option<String>| match (&v.unavailable, &v.failure)
    {
        (Some(why), _) => format!("unavailable: {why}"),
        (None, Some(why)) => format!("failed: {why}"),
        (None, None) => f(v).unwrap_or_else(|| "none".to_owned()),
    };
    let start = visits
        .iter()
        .map(|v| {
            cell(v, &|v| {
                v.start_ms
                    .map(|ms| format!("{} ms", crate::table::number(ms)))
            })
        })
        .collect();
    let largest = visits
        .iter()
        .map(|v| {
            cell(v, &|v| {
                let started = v.start_ms?;
                let phases: Vec<reports::document::Phase> = v
                    .phases
                    .iter()
                    .map(|(name, ms)| reports::document::Phase {
                        name: name.clone(),
                        ms: *ms,
                    })
                    .collect();
                let stages = reports::phases::run_stages(&phases, started);
                if stages.len() < 2 {
                    return Some("no stages: a fork and an exec".to_owned());
                }
                let (stage, ms) = stages.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
                Some(format!(
                    "{} ({} ms)",
                    stage.label(),
                    crate::table::number(*ms)
                ))
            })
        })
        .collect();
    Stop {
        title: "What did starting it take?",
        lesson: "A plain process is a fork and an exec. A container adds the kernel's work of \
                 building its namespaces, cgroup and root file system, and nothing boots. A VM \
                 adds creating the machine (memory, vCPUs, a monitor process), then booting \
                 the OS it carries: that boot is where a VM's weight is. A micro guest has no \
                 OS to boot, so its time is the machine's creation alone, and it can come out \
                 sooner than a container's; that does not make a VM lighter. One run is one \
                 sample: `vcbench run` repeats it and gives the interval.",
        command: "vcbench once -b container",
        rows: vec![
            ("launch to its first record".to_owned(), start),
            ("its longest stage".to_owned(), largest),
        ],
    }
}

/// How each reached the host: a VM's exits.
fn exits_stop(visits: &[Visit]) -> Stop {
    let count = |v: &Visit, name: &str| v.counters.iter().find(|(n, _)| n == name).map(|(_, c)| *c);
    let row = |label: &str, f: &dyn Fn(&Visit) -> String| {
        (
            label.to_owned(),
            visits
                .iter()
                .map(|v| match &v.unavailable {
                    Some(why) => format!("unavailable: {why}"),
                    None => f(v),
                })
                .collect(),
        )
    };
    let vm = |v: &Visit| v.counters.iter().any(|(n, _)| n.starts_with("exits_"));
    Stop {
        title: "How does it reach the host?",
        lesson: "A process or a container reaches the host kernel with every system call it \
                 makes. A VM's guest leaves the guest instead: each port write, halt or page \
                 the host must fill is a VM exit, handled by KVM inside the host kernel or \
                 passed on to the monitor, a host process. `hello` writes one marker to a port \
                 and stops: one port-write exit and one halt.",
        command: "vcbench once -b microvm -- exits --count 100",
        rows: vec![
            row("VM exits the monitor handled", &|v| {
                if vm(v) {
                    let all: u64 = v
                        .counters
                        .iter()
                        .filter(|(n, _)| n.starts_with("exits_"))
                        .map(|(_, c)| c)
                        .sum();
                    all.to_string()
                } else {
                    "none: not a VM (system calls instead)".to_owned()
                }
            }),
            row("of them, port writes", &|v| {
                count(v, "exits_io_out").map_or_else(|| "-".to_owned(), |c| c.to_string())
            }),
            row("of them, halts", &|v| {
                count(v, "exits_hlt").map_or_else(|| "-".to_owned(), |c| c.to_string())
            }),
        ],
    }
}

/// Why a column has no probe answers, one line per such visit.
pub fn limits(visits: &[Visit]) -> Vec<String> {
    visits
        .iter()
        .filter_map(|v| {
            let why = v.unavailable.as_ref().or(v.no_facts.as_ref())?;
            Some(if v.micro {
                format!(
                    "{}: micro guests, with no guest OS, so nothing inside can say its PID, \
                     name, mounts, uid or kernel ({why}). What it does show is below: what \
                     creating a VM took, and its exits.",
                    v.backend
                )
            } else {
                format!("{}: {why}", v.backend)
            })
        })
        .collect()
}

/// The tour's title: as many ways as it visited.
fn title(visits: &[Visit]) -> String {
    let ways = match visits.len() {
        1 => "one way".to_owned(),
        2 => "two ways".to_owned(),
        3 => "three ways".to_owned(),
        4 => "four ways".to_owned(),
        n => format!("{n} ways"),
    };
    format!("A tour: one program, {ways} to run it")
}

/// "native, container and microvm".
fn names(visits: &[Visit]) -> String {
    let names: Vec<&str> = visits.iter().map(|v| v.backend.as_str()).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The tour as Markdown: class notes that need no terminal.
pub fn markdown(visits: &[Visit], host: &str) -> Result<String, Error> {
    if visits.is_empty() {
        return Err(Error::NoBackend);
    }
    let mut out = format!("# {}\n\n", title(visits));
    out.push_str(&format!(
        "The same workload binary ran here on {}. Each stop asks it one question from inside \
         and puts the answers side by side. Every answer below was measured on this machine \
         by this tour.\n\n",
        names(visits)
    ));
    out.push_str(&format!("Host: {}\n\n", escape(host)));
    for v in visits {
        let settings = if v.settings.is_empty() {
            String::new()
        } else {
            format!(" ({})", v.settings)
        };
        out.push_str(&format!(
            "- **{}**{}: {}\n",
            v.backend,
            escape(&settings),
            escape(&v.what)
        ));
    }
    out.push('\n');
    for line in limits(visits) {
        out.push_str(&format!("> {}\n\n", escape(&line)));
    }
    let header: Vec<&str> = visits.iter().map(|v| v.backend.as_str()).collect();
    for (i, stop) in stops(visits).iter().enumerate() {
        out.push_str(&format!(
            "## {}. {}\n\n{}\n\n",
            i + 1,
            stop.title,
            stop.lesson
        ));
        out.push_str(&format!("| | {} |\n|---|", header.join(" | ")));
        out.push_str(&"---|".repeat(header.len()));
        out.push('\n');
        for (label, cells) in &stop.rows {
            let cells: Vec<String> = cells.iter().map(|c| escape(c)).collect();
            out.push_str(&format!("| {} | {} |\n", escape(label), cells.join(" | ")));
        }
        out.push_str(&format!(
            "\nTry it yourself:\n\n```sh\n{}\n```\n\n",
            stop.command
        ));
    }
    out.push_str(
        "## What to take away\n\nA container is a process the host kernel fences off: it \
         sees its own PID 1, name, files, users and network, and it still talks to the host's \
         one kernel. A VM has a kernel of its own and reaches the host through VM exits and \
         its monitor. Creating either is cheap; a VM is heavy because of the operating system \
         it carries. Measure the costs with `vcbench run`, and see docs/lab.md for exercises.\n",
    );
    Ok(out)
}

/// The tour for a terminal: the same stops, wrapped to `width` columns, headings in bold
/// when `bold`.
pub fn terminal(visits: &[Visit], host: &str, width: usize, bold: bool) -> Result<String, Error> {
    if visits.is_empty() {
        return Err(Error::NoBackend);
    }
    let heading = |text: &str| {
        if bold {
            format!("\x1b[1m{text}\x1b[0m\n")
        } else {
            format!("{text}\n{}\n", "-".repeat(text.chars().count()))
        }
    };
    let mut out = heading(&title(visits));
    out.push_str(&wrap(
        &format!(
            "The same workload binary ran on {}, on {host}. Each stop asks it one question from \
             inside; the answers are side by side.",
            names(visits)
        ),
        width,
    ));
    out.push('\n');
    for line in limits(visits) {
        out.push_str(&wrap(&format!("note: {line}"), width));
    }
    let mut header = vec![String::new()];
    header.extend(visits.iter().map(|v| v.backend.clone()));
    for (i, stop) in stops(visits).iter().enumerate() {
        out.push('\n');
        out.push_str(&heading(&format!("{}. {}", i + 1, stop.title)));
        out.push_str(&wrap(stop.lesson, width));
        out.push('\n');
        let mut rows = vec![header.clone()];
        for (label, cells) in &stop.rows {
            let mut row = vec![label.clone()];
            row.extend(cells.iter().map(|c| clip(c, 40)));
            rows.push(row);
        }
        out.push_str(&crate::table::columns(&rows, &[], bold));
        out.push_str(&format!("\n  try it: {}\n", stop.command));
    }
    out.push('\n');
    out.push_str(&wrap(
        "A container is a process the host kernel fences off; a VM has a kernel of its own. \
         Creating either is cheap; a VM is heavy because of the OS it carries. Next: `vcbench \
         run` for the costs with their intervals, and docs/lab.md for exercises.",
        width,
    ));
    Ok(out)
}

/// Text cut to `max` characters, with `…` where it was cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// Words wrapped to `width` columns, each line ending in a newline.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Escapes what a Markdown table or emphasis would misread.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('*', "\\*")
        .replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(backend: &str, facts: &[(&str, &str)], micro: bool) -> Visit {
        Visit {
            backend: backend.to_owned(),
            what: format!("{backend}, for a test"),
            settings: if micro {
                "1 vCPU, 128 MiB, micro guests".to_owned()
            } else {
                String::new()
            },
            unavailable: None,
            facts: facts.iter().map(|(n, v)| Fact::new(n, *v)).collect(),
            no_facts: micro.then(|| "micro guests run no program to probe".to_owned()),
            micro,
            start_ms: Some(1.5),
            phases: if micro {
                vec![
                    ("vm_created".to_owned(), 1.0),
                    ("first_marker".to_owned(), 1.4),
                ]
            } else {
                Vec::new()
            },
            counters: if micro {
                vec![("exits_hlt".to_owned(), 1), ("exits_io_out".to_owned(), 1)]
            } else {
                Vec::new()
            },
            failure: None,
        }
    }

    #[test]
    fn the_answers_stand_side_by_side_and_a_micro_guest_says_why_it_has_none() {
        let visits = [
            visit("native", &[("pid", "1488"), ("hostname", "vm")], false),
            visit("container", &[("pid", "2"), ("hostname", "vcbench")], false),
            visit("microvm", &[], true),
        ];
        let stops = stops(&visits);
        assert_eq!(stops[0].rows[0].1, ["1488", "2", "none: no guest OS"]);
        let exits = stops.last().unwrap();
        assert_eq!(exits.rows[0].1[2], "2");
        assert!(exits.rows[0].1[0].starts_with("none: not a VM"));
        let md = markdown(&visits, "a test host").unwrap();
        assert!(
            md.contains("| its PID | 1488 | 2 | none: no guest OS |"),
            "{md}"
        );
        assert!(
            md.contains("> microvm: micro guests, with no guest OS"),
            "{md}"
        );
        assert!(md.contains("```sh\nvcbench once -b container --json -- probe\n```"));
        let text = terminal(&visits, "a test host", 80, false).unwrap();
        // Prose is wrapped to the width; tables (columns two spaces apart) clip their cells.
        for line in text.lines() {
            let limit = if line.contains("  ") { 160 } else { 80 };
            assert!(line.chars().count() <= limit, "{line}");
        }
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn words_wrap_to_the_width() {
        assert_eq!(wrap("a bb ccc dddd", 6), "a bb\nccc\ndddd\n");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
