//! What each sandbox sees: the isolation matrix grouped by concern (what it sees, who it
//! is and what it may do, which kernel serves it), with the answer from inside and the
//! host's own answer, and a column for every backend that ran.
//!
//! The seven namespace identities are one row, not seven: they say one thing (its own
//! namespaces or the host's), and counted one by one they would outweigh every other
//! check. A power the host itself is refused is "n/a": a refusal inside proves nothing
//! then. A VM that ran micro guests has no guest OS to probe, and its column says so.

use crate::document::isolation::Row as Judged;
use crate::document::Results;
use crate::family;
use crate::table::Table;

/// A concern of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Concern {
    /// What it sees of the host: processes, names, network, files, devices, cgroups.
    Sees,
    /// Who it is (uid, capabilities) and which powers it holds.
    MayDo,
    /// Which kernel serves its system calls.
    Kernel,
    /// Checks this version does not group.
    Other,
}

impl Concern {
    /// Every concern, in order.
    pub const ALL: [Concern; 4] = [
        Concern::Sees,
        Concern::MayDo,
        Concern::Kernel,
        Concern::Other,
    ];

    /// Its title.
    pub fn title(self) -> &'static str {
        match self {
            Concern::Sees => "what it sees",
            Concern::MayDo => "who it is and what it may do",
            Concern::Kernel => "which kernel serves it",
            Concern::Other => "other checks",
        }
    }
}

/// The name of the row that stands for the seven namespace identities (`ns_*`).
pub const NAMESPACES: &str = "namespaces";

/// The checks of each concern, in order, each with the words a reader knows it by.
const CHECKS: [(Concern, &str, &str); 27] = [
    (Concern::Sees, NAMESPACES, "its namespaces"),
    (Concern::Sees, "pid", "its own PID"),
    (Concern::Sees, "visible_processes", "processes it sees"),
    (Concern::Sees, "hostname", "hostname"),
    (Concern::Sees, "net_interfaces", "network interfaces"),
    (Concern::Sees, "mounts", "mounts"),
    (Concern::Sees, "host_paths", "host paths it reaches"),
    (Concern::Sees, "devices", "device nodes"),
    (Concern::Sees, "cgroup", "its cgroup"),
    (Concern::Sees, "cgroup_dirs", "cgroup directories it sees"),
    (Concern::MayDo, "uid", "its uid"),
    (
        Concern::MayDo,
        "uid_map",
        "uid map (inside, outside, count)",
    ),
    (Concern::MayDo, "cap_eff", "capabilities"),
    (
        Concern::MayDo,
        "seccomp",
        "system-call filter (seccomp mode)",
    ),
    (Concern::MayDo, "can_mount", "mount a file system"),
    (Concern::MayDo, "can_load_module", "load a kernel module"),
    (Concern::MayDo, "can_raw_socket", "open a raw socket"),
    (Concern::MayDo, "can_set_time", "set the clock"),
    (
        Concern::MayDo,
        "can_write_sysctl",
        "write a host-wide sysctl",
    ),
    (
        Concern::MayDo,
        "can_write_core_pattern",
        "write the core pattern",
    ),
    (Concern::MayDo, "can_read_kcore", "read kernel memory"),
    (
        Concern::MayDo,
        "can_open_new_device",
        "make and open a device",
    ),
    (Concern::MayDo, "can_unshare_user", "make a user namespace"),
    (Concern::MayDo, "can_perf_event", "open a perf event"),
    (Concern::MayDo, "can_bpf", "load a BPF program"),
    (Concern::Kernel, "kernel_boot_id", "kernel boot id"),
    (Concern::Kernel, "kernel_release", "kernel release"),
];

/// A cell's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its own, or refused.
    Isolated,
    /// Its own view of a shared thing, or a part of the host's.
    Partly,
    /// What the host has.
    Shared,
    /// The host is refused too: a refusal inside proves nothing.
    NotApplicable,
    /// The probe could not try it, or the host did not answer.
    Untested,
    /// A micro guest: no guest OS to ask.
    NoGuestOs,
    /// The backend ran, but its probe did not.
    NotProbed,
}

impl Verdict {
    /// The word a cell starts with.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Isolated => "isolated",
            Verdict::Partly => "partly",
            Verdict::Shared => "shared",
            Verdict::NotApplicable => "n/a",
            Verdict::Untested => "untested",
            Verdict::NoGuestOs => "no guest OS",
            Verdict::NotProbed => "not probed",
        }
    }

    /// Whether it judges the sandbox (isolated, partly or shared).
    pub fn judged(self) -> bool {
        matches!(self, Verdict::Isolated | Verdict::Partly | Verdict::Shared)
    }

    fn of(row: &Judged) -> Verdict {
        // A power the host is refused, for whatever reason, cannot show a sandbox refusing
        // it: whatever the refusal inside, the run cannot tell.
        let host_refused = row.check.starts_with("can_") && row.host.starts_with("no");
        match row.verdict.as_str() {
            _ if host_refused => Verdict::NotApplicable,
            "isolated" => Verdict::Isolated,
            "partly" => Verdict::Partly,
            "shared" => Verdict::Shared,
            _ if row.host.starts_with("no") => Verdict::NotApplicable,
            _ => Verdict::Untested,
        }
    }
}

/// One backend's answer to one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The verdict.
    pub verdict: Verdict,
    /// The answer from inside, shortened; empty where there is none.
    pub answer: String,
}

/// One check across the backends.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its concern.
    pub concern: Concern,
    /// The check's name in the document (`namespaces` for the seven `ns_*`).
    pub check: String,
    /// What it asks, in a reader's words.
    pub label: String,
    /// The host's own answer, shortened.
    pub host: String,
    /// One cell per backend, in [`Matrix::backends`]' order.
    pub cells: Vec<Cell>,
}

/// The grouped matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// The backends that ran, one column each.
    pub backends: Vec<String>,
    /// The rows, grouped by concern.
    pub rows: Vec<Row>,
    /// Why a column has no answers, one line per such backend.
    pub notes: Vec<String>,
}

/// How one backend came out on one concern: judged checks only (n/a and untested left
/// out, the namespaces counted once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Checks isolated.
    pub isolated: usize,
    /// Checks partly isolated.
    pub partly: usize,
    /// Checks shared with the host.
    pub shared: usize,
    /// Checks not judged (n/a, untested).
    pub not_judged: usize,
}

impl Tally {
    /// Checks judged.
    pub fn judged(&self) -> usize {
        self.isolated + self.partly + self.shared
    }
}

impl Matrix {
    /// The tally of `backend` on `concern`; `None` when it has no answers.
    pub fn tally(&self, backend: &str, concern: Concern) -> Option<Tally> {
        let column = self.backends.iter().position(|b| b == backend)?;
        let mut tally = Tally::default();
        let mut any = false;
        for row in self.rows.iter().filter(|r| r.concern == concern) {
            let verdict = row.cells[column].verdict;
            any |= !matches!(verdict, Verdict::NoGuestOs | Verdict::NotProbed);
            match verdict {
                Verdict::Isolated => tally.isolated += 1,
                Verdict::Partly => tally.partly += 1,
                Verdict::Shared => tally.shared += 1,
                Verdict::NotApplicable | Verdict::Untested => tally.not_judged += 1,
                Verdict::NoGuestOs | Verdict::NotProbed => {}
            }
        }
        any.then_some(tally)
    }

    /// The concerns that have rows, in order.
    pub fn concerns(&self) -> Vec<Concern> {
        Concern::ALL
            .into_iter()
            .filter(|c| self.rows.iter().any(|r| r.concern == *c))
            .collect()
    }
}

/// The grouped matrix; `None` when the run probed nothing and did not plan to.
pub fn matrix(doc: &Results) -> Option<Matrix> {
    let planned = doc
        .plan
        .scenarios
        .iter()
        .any(|s| s.name == crate::document::Scenario::Isolation);
    if doc.isolation.is_empty() && !planned {
        return None;
    }
    let backends: Vec<String> = family::ran(doc)
        .into_iter()
        .filter(|b| planned || doc.isolation.iter().any(|m| m.backend == *b))
        .map(str::to_owned)
        .collect();
    // Every check any backend answered, in the order of the first that did.
    let mut checks: Vec<String> = Vec::new();
    for m in &doc.isolation {
        for r in &m.rows {
            let name = if r.check.starts_with("ns_") {
                NAMESPACES.to_owned()
            } else {
                r.check.clone()
            };
            if !checks.contains(&name) {
                checks.push(name);
            }
        }
    }
    let position = |check: &str| CHECKS.iter().position(|(_, name, _)| *name == check);
    checks.sort_by_key(|c| position(c).unwrap_or(CHECKS.len()));
    let mut notes = Vec::new();
    for b in &backends {
        if doc.isolation.iter().any(|m| &m.backend == b) {
            continue;
        }
        if family::micro_backends(doc).contains(&b.as_str()) {
            notes.push(format!(
                "{b}: micro guests, with no guest OS: nothing inside answers a probe. Its \
                 guest's instructions run on the CPU under KVM, and its exits are served by \
                 KVM in the host kernel and by its monitor, a host process."
            ));
        } else {
            let why = doc
                .skipped
                .iter()
                .find(|s| {
                    s.backend == *b
                        && s.scenario
                            .as_deref()
                            .is_none_or(|sc| sc.starts_with("isolation"))
                })
                .map_or("its probe gave no answers", |s| s.reason.as_str());
            notes.push(format!("{b}: not probed: {why}"));
        }
    }
    let rows = checks
        .iter()
        .map(|check| {
            let (concern, label) = CHECKS
                .iter()
                .find(|(_, name, _)| name == check)
                .map_or((Concern::Other, check.replace('_', " ")), |(c, _, l)| {
                    (*c, (*l).to_owned())
                });
            let host = doc
                .isolation
                .iter()
                .find_map(|m| answer(&m.rows, check).map(|(_, host)| host))
                .unwrap_or_default();
            let cells = backends
                .iter()
                .map(|b| cell(doc, b, check))
                .collect::<Vec<_>>();
            Row {
                concern,
                check: check.clone(),
                label,
                host,
                cells,
            }
        })
        .collect();
    Some(Matrix {
        backends,
        rows,
        notes,
    })
}

/// A check's cell for `backend`.
fn cell(doc: &Results, backend: &str, check: &str) -> Cell {
    let Some(m) = doc.isolation.iter().find(|m| m.backend == backend) else {
        let micro = family::micro_backends(doc).contains(&backend);
        return Cell {
            verdict: if micro {
                Verdict::NoGuestOs
            } else {
                Verdict::NotProbed
            },
            answer: match (micro, check) {
                (true, "kernel_boot_id") => "KVM and its monitor serve its exits".to_owned(),
                _ => String::new(),
            },
        };
    };
    if check == NAMESPACES {
        let ns: Vec<&Judged> = m
            .rows
            .iter()
            .filter(|r| r.check.starts_with("ns_"))
            .collect();
        let own: Vec<&str> = ns
            .iter()
            .filter(|r| Verdict::of(r) == Verdict::Isolated)
            .map(|r| &r.check[3..])
            .collect();
        let verdict = match own.len() {
            0 => Verdict::Shared,
            n if n == ns.len() => Verdict::Isolated,
            _ => Verdict::Partly,
        };
        let answer = match own.len() {
            0 => format!("the host's {}", ns.len()),
            n if n == ns.len() => format!("its own {n}: {}", own.join(", ")),
            n => format!("its own {n} of {}: {}", ns.len(), own.join(", ")),
        };
        return Cell { verdict, answer };
    }
    match m.rows.iter().find(|r| r.check == check) {
        Some(r) => Cell {
            verdict: Verdict::of(r),
            answer: short(check, &r.inside),
        },
        None => Cell {
            verdict: Verdict::Untested,
            answer: "not asked".to_owned(),
        },
    }
}

/// A check's answer from inside and the host's, shortened; for the namespaces, their count.
fn answer(rows: &[Judged], check: &str) -> Option<(String, String)> {
    if check == NAMESPACES {
        let n = rows.iter().filter(|r| r.check.starts_with("ns_")).count();
        let s = if n == 1 { "" } else { "s" };
        return (n > 0).then(|| (String::new(), format!("{n} namespace{s}")));
    }
    rows.iter()
        .find(|r| r.check == check)
        .map(|r| (short(check, &r.inside), short(check, &r.host)))
}

/// An answer a reader can take in at a glance: a capability mask as its count, a boot id
/// as its start, anything long cut short.
pub fn short(check: &str, value: &str) -> String {
    match check {
        "cap_eff" => match u64::from_str_radix(value, 16) {
            Ok(bits) => format!("{} capabilities", bits.count_ones()),
            Err(_) => value.to_owned(),
        },
        "seccomp" => match value {
            "0" => "0: off".to_owned(),
            "1" => "1: strict".to_owned(),
            "2" => "2: a filter".to_owned(),
            _ => value.to_owned(),
        },
        "kernel_boot_id" if value.len() > 8 && value.is_char_boundary(8) => {
            format!("{}…", &value[..8])
        }
        // `N:controllers:path` per hierarchy: the paths it sees, each once.
        "cgroup" if value.contains(':') => {
            let mut paths: Vec<&str> = Vec::new();
            for entry in value.split(';') {
                let path = entry.splitn(3, ':').nth(2).unwrap_or(entry);
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
            short("", &paths.join(", "))
        }
        _ if value.chars().count() > 40 => {
            let cut: String = value.chars().take(36).collect();
            format!("{cut}…")
        }
        _ => value.to_owned(),
    }
}

/// The matrix as a table: concern, check, the host's answer, then a cell per backend
/// (`isolated: lo`).
pub fn table(matrix: &Matrix) -> Table {
    let mut header = vec![
        "concern".to_owned(),
        "check".to_owned(),
        "on the host".to_owned(),
    ];
    header.extend(matrix.backends.iter().cloned());
    let mut rows = Vec::new();
    let mut last = None;
    for row in &matrix.rows {
        let mut cells = vec![
            if last == Some(row.concern) {
                String::new()
            } else {
                row.concern.title().to_owned()
            },
            row.label.clone(),
            row.host.clone(),
        ];
        last = Some(row.concern);
        cells.extend(row.cells.iter().map(|c| cell_text(c, &row.host)));
        rows.push(cells);
    }
    let n = header.len();
    let mut verdicts = vec![false; n];
    for v in verdicts.iter_mut().skip(3) {
        *v = true;
    }
    Table {
        caption: "What each sandbox sees and may do, grouped by concern: each cell is the \
                  verdict and the answer from inside, beside the host's own answer (the seven \
                  namespaces count as one row; n/a: the host is refused too, so a refusal \
                  inside proves nothing)"
            .to_owned(),
        header,
        numeric: vec![false; n],
        verdicts,
        rows,
    }
}

/// A cell as text: its verdict, and its answer where that says more than the verdict.
pub fn cell_text(cell: &Cell, host: &str) -> String {
    match cell.verdict {
        Verdict::NotApplicable => "n/a (the host is refused too)".to_owned(),
        _ if cell.answer.is_empty() || cell.answer == host => cell.verdict.word().to_owned(),
        _ => format!("{}: {}", cell.verdict.word(), cell.answer),
    }
}

/// Every check as judged, one table per probed backend: for the appendix.
pub fn full_tables(doc: &Results) -> Vec<Table> {
    doc.isolation
        .iter()
        .map(|m| {
            Table::new(
                format!(
                    "Every check of {}, as the probe answered it inside and on the host, and \
                     why it was judged so",
                    m.backend
                ),
                ["check", "inside", "on the host", "verdict", "why"]
                    .map(str::to_owned)
                    .to_vec(),
                vec![false; 5],
                m.rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.check.clone(),
                            short(&r.check, &r.inside),
                            short(&r.check, &r.host),
                            Verdict::of(r).word().to_owned(),
                            r.why.clone(),
                        ]
                    })
                    .collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::isolation::{Isolation, Row as Judged};

    fn judged(check: &str, inside: &str, host: &str, verdict: &str) -> Judged {
        Judged {
            check: check.to_owned(),
            inside: inside.to_owned(),
            host: host.to_owned(),
            verdict: verdict.to_owned(),
            why: String::new(),
        }
    }

    fn doc() -> Results {
        let mut doc = Results::parse(
            include_str!("../tests/data/results.json"),
            std::path::Path::new("results.json"),
        )
        .unwrap();
        let rows = |ns: &str, verdict: &str, module: &str| {
            vec![
                judged("kernel_boot_id", "a", "a", "shared"),
                judged("ns_pid", ns, "pid:[1]", verdict),
                judged("ns_net", ns, "net:[1]", verdict),
                judged("can_load_module", module, "no: ENOSYS", "untested"),
                judged("hostname", "vcbench", "vm", "isolated"),
            ]
        };
        doc.isolation = vec![
            Isolation {
                backend: "native".to_owned(),
                rows: rows("pid:[1]", "shared", "no: ENOSYS"),
            },
            Isolation {
                backend: "container".to_owned(),
                rows: rows("pid:[9]", "isolated", "no: ENOSYS"),
            },
        ];
        doc
    }

    #[test]
    fn namespaces_are_one_row_and_concerns_are_grouped() {
        let m = matrix(&doc()).unwrap();
        let checks: Vec<&str> = m.rows.iter().map(|r| r.check.as_str()).collect();
        assert_eq!(
            checks,
            [NAMESPACES, "hostname", "can_load_module", "kernel_boot_id"]
        );
        assert_eq!(m.rows[0].cells[1].verdict, Verdict::Isolated);
        assert_eq!(m.rows[0].cells[1].answer, "its own 2: pid, net");
        assert_eq!(m.rows[0].cells[0].answer, "the host's 2");
        let t = m.tally("container", Concern::Sees).unwrap();
        assert_eq!((t.isolated, t.judged()), (2, 2));
    }

    #[test]
    fn a_power_the_host_is_refused_too_is_not_applicable() {
        let m = matrix(&doc()).unwrap();
        let row = m
            .rows
            .iter()
            .find(|r| r.check == "can_load_module")
            .unwrap();
        assert_eq!(row.cells[1].verdict, Verdict::NotApplicable);
        assert_eq!(
            cell_text(&row.cells[1], &row.host),
            "n/a (the host is refused too)"
        );
        let t = m.tally("container", Concern::MayDo).unwrap();
        assert_eq!((t.judged(), t.not_judged), (0, 1));
        // Refused inside for another reason than the host: still nothing to tell.
        let refused = judged("can_load_module", "no: EPERM", "no: ENOSYS", "isolated");
        assert_eq!(Verdict::of(&refused), Verdict::NotApplicable);
        let permitted = judged("can_mount", "no: EPERM", "yes", "isolated");
        assert_eq!(Verdict::of(&permitted), Verdict::Isolated);
    }

    #[test]
    fn every_backend_that_ran_has_a_column_and_a_micro_guest_says_why_it_is_empty() {
        let m = matrix(&doc()).unwrap();
        assert_eq!(m.backends, ["native", "container", "microvm"]);
        assert!(m
            .rows
            .iter()
            .all(|r| r.cells[2].verdict == Verdict::NoGuestOs));
        assert!(m.notes[0].starts_with("microvm: micro guests, with no guest OS"));
        assert_eq!(m.tally("microvm", Concern::Sees), None);
        let table = table(&m);
        assert_eq!(table.header.len(), 6);
        assert_eq!(table.rows[0][0], "what it sees");
        assert_eq!(table.rows[1][0], "");
    }

    #[test]
    fn long_answers_are_cut_and_capabilities_counted() {
        assert_eq!(short("cap_eff", "00000000a80405fb"), "13 capabilities");
        assert_eq!(short("seccomp", "2"), "2: a filter");
        assert_eq!(short("kernel_boot_id", "aa593fb4-8ea4-49a8"), "aa593fb4…");
        assert!(short("cgroup", &"x".repeat(80)).ends_with('…'));
    }
}
