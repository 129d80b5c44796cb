//! What the reports teach, checked on a real run of the default suite on a software-KVM
//! host (`tests/data/real-run.json`: `vcbench run` on the development machine, micro guests
//! only): the read-me-first part opens every report; no micro-guest figure reads as "a VM
//! is lighter than a container"; memory is read by PSS and the plain process never adds a
//! sandbox's cost; the host-surface note ranks no one safest and names the exits KVM
//! handles in the host kernel; every claimed difference has an interval that excludes 1;
//! the isolation matrix is grouped, gives the host's answers, and has a column for every
//! backend that ran; the long tables are in the appendix.

use std::path::{Path, PathBuf};

use reports::{charts, html, markdown, matrix, notes, Results};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn real() -> Results {
    Results::read(&data("real-run.json")).expect("the real run reads")
}

/// The lines of a Markdown report that are prose (not tables, headings, chart links or
/// the glossary), before its appendix.
fn prose(md: &str) -> Vec<&str> {
    md.split("## Appendix")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with('#'))
        .filter(|l| !l.starts_with("![") && !l.starts_with("- **"))
        .collect()
}

#[test]
fn every_report_opens_with_read_me_first() {
    for doc in [real(), Results::read(&data("results.json")).unwrap()] {
        let md = markdown::render(&doc);
        let read_me = md.find("## Read me first").expect("read me first");
        let first_section = md.find("## Startup").expect("a startup section");
        assert!(read_me < first_section);
        for part in [
            "### This run on one page",
            "### How to read this report",
            "### Words used here",
            "### How this run was set up",
        ] {
            let at = md.find(part).unwrap_or_else(|| panic!("{part} missing"));
            assert!(read_me < at && at < first_section, "{part} out of place");
        }
        let page = html::render(&doc);
        let read_me = page.find("id=\"read-me-first\"").unwrap();
        assert!(read_me < page.find("<section id=\"startup\"").unwrap());
        for id in [
            "summary",
            "chart-stacks",
            "how-to-read",
            "glossary",
            "settings",
        ] {
            assert!(page.contains(&format!("id=\"{id}\"")), "{id} missing");
        }
    }
}

#[test]
fn the_glossary_defines_every_word_the_brief_names() {
    let md = markdown::render(&real());
    for term in [
        "namespace",
        "cgroup",
        "capability",
        "user namespace, uid map",
        "monitor",
        "KVM",
        "VM exit",
        "micro guest",
        "hardware vs software KVM",
        "RSS, PSS, USS",
        "median, interval",
        "p95",
        "cv",
        "n, ratio, \\*",
    ] {
        assert!(md.contains(&format!("- **{term}**: ")), "{term} missing");
    }
}

#[test]
fn the_settings_say_what_ran_and_that_native_runs_in_a_vm() {
    let md = markdown::render(&real());
    for row in [
        "| backend container | namespaces: user,mount,uts,ipc,net,cgroup,pid |",
        "| backend microvm | 1 vCPU, 128 MiB, micro guests (no guest OS) |",
        "| scenario startup | workload `hello`, 30 measured runs after 3 warmups, each stopped after 60 s |",
        "| native runs on | a virtual machine (KVMKVMKVM): \"native\" is itself a process in a VM, and the VMs here are nested inside it |",
    ] {
        assert!(md.contains(row), "{row} missing:\n{md}");
    }
}

#[test]
fn no_micro_guest_figure_reads_as_a_lighter_vm() {
    let doc = real();
    let md = markdown::render(&doc);
    // In this run the micro guests started sooner than the container: the lesson must say
    // what that means wherever their numbers are.
    let vm = doc.figure("microvm", "startup", "time_to_start").unwrap();
    let container = doc.figure("container", "startup", "time_to_start").unwrap();
    assert!(vm.summary.median < container.summary.median);
    for line in prose(&md) {
        if line.contains("microvm") {
            assert!(
                line.contains("micro guest") || line.contains("no guest OS"),
                "a microvm figure without its caveat: {line}"
            );
        }
    }
    assert!(!md.contains("must boot a kernel of its own"), "{md}");
    let lesson = notes::micro_guest_lesson(&doc).unwrap();
    assert!(lesson.contains("does not make a VM lighter than a container"));
    assert!(lesson.contains("A VM is heavy because of the operating system it carries"));
    assert!(
        lesson.contains("2.351 ms from launch to the guest's first marker, and 1.453 MiB"),
        "{lesson}"
    );
    // The charts say it too.
    for chart in [
        charts::Chart::Stacks,
        charts::Chart::Spectrum,
        charts::Chart::StartupDistribution,
        charts::Chart::Memory,
    ] {
        let svg = charts::svg(chart, &doc).unwrap().unwrap();
        assert!(svg.contains("no guest OS"), "{}", chart.name());
    }
}

#[test]
fn memory_is_read_by_pss_and_native_adds_nothing() {
    let doc = real();
    let note = notes::note(&doc, "memory");
    assert!(note.starts_with("Memory is counted three ways"), "{note}");
    assert!(note.contains("Here, by PSS, the plain process held 1.434 MiB beyond"));
    assert!(note.contains("it has no sandbox to add anything"), "{note}");
    // PSS shows no significant difference between the container and native; RSS does,
    // and the note says why.
    assert!(
        note.contains("no significant difference from native (1.001x [0.9984, 1.002])"),
        "{note}"
    );
    assert!(note.contains("By RSS the container would look"), "{note}");
    let split = reports::derived::memory(&doc);
    let native = split.iter().find(|m| m.backend == "native").unwrap();
    assert_eq!(native.added, 0.0);
    assert_eq!(native.measure, reports::derived::Measure::Pss);
    let svg = charts::svg(charts::Chart::Memory, &doc).unwrap().unwrap();
    assert!(svg.contains("no sandbox") && svg.contains("a plain process has them too"));
}

#[test]
fn the_host_surface_ranks_no_one_safest_and_counts_exits_in_the_host_kernel() {
    let note = notes::note(&real(), "isolation");
    assert!(
        note.contains("native 25, a plain process's own calls: the reference"),
        "{note}"
    );
    assert!(note.contains("not a ranking of safety"), "{note}");
    assert!(note.contains("the VM exits KVM handles inside the host kernel itself"));
    assert!(
        note.contains("the exits KVM handled inside the host kernel were not counted (this host's KVM has no kvm_exit tracepoint)"),
        "{note}"
    );
    assert!(!note.contains("only through its monitor"), "{note}");
}

#[test]
fn every_claimed_difference_has_an_interval_that_excludes_one() {
    let doc = real();
    let overhead = notes::note(&doc, "overhead");
    // The container's getppid was 1.650x native's with an interval that holds 1.
    assert!(
        overhead.contains("no significant difference (ratio 1.650x [0.6119, 2.318])"),
        "{overhead}"
    );
    assert!(!overhead.contains("largest slowdown"), "{overhead}");
    // The one runtime figure that differed is named with its interval.
    assert!(
        overhead.contains("(1 of 9 figures; the others show no significant difference): container, mem copy, 1.108x [1.004, 2.420] (slower)"),
        "{overhead}"
    );
    // In the whole report, a ratio against native is either significant (its interval
    // excludes 1) or said to be no difference.
    let md = markdown::render(&doc);
    for line in prose(&md) {
        for (at, _) in line.match_indices("x native [") {
            let rest = &line[at + "x native [".len()..];
            let end = rest.find(']').unwrap();
            let bounds: Vec<f64> = rest[..end]
                .split(", ")
                .map(|b| b.parse().unwrap())
                .collect();
            assert!(
                bounds[0] > 1.0 || bounds[1] < 1.0,
                "a difference claimed on an interval holding 1: {line}"
            );
        }
    }
}

#[test]
fn the_matrix_is_grouped_with_the_host_s_answers_and_a_column_per_backend() {
    let doc = real();
    let m = matrix::matrix(&doc).unwrap();
    assert_eq!(m.backends, ["native", "container", "microvm"]);
    let rows = |c: matrix::Concern| m.rows.iter().filter(|r| r.concern == c).count();
    assert_eq!(rows(matrix::Concern::Sees), 10);
    assert_eq!(rows(matrix::Concern::MayDo), 8);
    assert_eq!(rows(matrix::Concern::Kernel), 2);
    let md = markdown::render(&doc);
    assert!(
        md.contains(
            "| | network interfaces | eth0,ifb0,ifb1,lo | shared | isolated: lo | no guest OS |"
        ),
        "{md}"
    );
    assert!(md.contains(
        "| | load a kernel module | no: ENOSYS | n/a (the host is refused too) | n/a (the host is refused too) | no guest OS |"
    ));
    // n/a is grey, never red.
    let page = html::render(&doc);
    assert!(page.contains("<td class=\"na\">n/a (the host is refused too)</td>"));
    assert!(!page.contains("<td class=\"shared\">n/a"));
}

#[test]
fn the_runtime_table_s_long_rows_are_in_the_appendix() {
    let md = markdown::render(&real());
    let (body, appendix) = md.split_once("## Appendix: every figure").unwrap();
    let overhead = body.split("## Runtime overhead").nth(1).unwrap();
    let overhead = overhead.split("## Isolation").next().unwrap();
    assert!(overhead.contains("| container | syscall | syscall |"));
    assert!(
        !overhead.contains("| container | syscall | wall |"),
        "{overhead}"
    );
    assert!(appendix.contains("| container | syscall | wall |"));
    assert!(appendix.contains("What the samples warn of:"));
    // The checks counted alike are there too, not in the isolation section.
    assert!(!body.contains("| isolated_checks |") && appendix.contains("| isolated_checks |"));
}

#[test]
fn the_html_has_a_print_stylesheet_with_the_summary_on_a_page_of_its_own() {
    let page = html::render(&real());
    let print = page
        .split("<style media=\"print\">")
        .nth(1)
        .and_then(|s| s.split("</style>").next())
        .expect("a print stylesheet");
    assert!(print.contains(".summary{break-after:page"), "{print}");
    assert!(print.contains("h2{break-before:page"), "{print}");
    assert!(print.contains("print-color-adjust:exact"), "{print}");
}

#[test]
fn markdown_embeds_the_charts_by_relative_links_when_asked() {
    let doc = real();
    let plain = markdown::render(&doc);
    assert!(!plain.contains("!["));
    let linked = markdown::render_linked(&doc, Some("charts/"));
    for chart in charts::Chart::ALL {
        let link = format!("(charts/{}.png)", chart.name());
        assert_eq!(
            linked.contains(&link),
            charts::has_data(chart, &doc),
            "{link}"
        );
    }
    // The stacks come first, in read me first.
    assert!(linked.find("charts/stacks.png").unwrap() < linked.find("## Startup").unwrap());
}
