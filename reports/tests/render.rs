//! The renderers on a fixed results document: the Markdown against its snapshot, the HTML
//! as one self-contained file, the charts drawn, comparisons, and the errors a document
//! that is not one gives. `UPDATE_SNAPSHOTS=1` rewrites the snapshot after a deliberate
//! change (review the diff).

use std::path::{Path, PathBuf};

use reports::{charts, compare, html, markdown, Error, Results};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn fixture() -> Results {
    Results::read(&data("results.json")).expect("the fixture reads")
}

#[test]
fn the_markdown_matches_its_snapshot() {
    let rendered = markdown::render(&fixture());
    let snapshot = data("report.md");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&snapshot).expect("the snapshot exists");
    assert_eq!(
        rendered, expected,
        "the Markdown report changed; UPDATE_SNAPSHOTS=1 to accept"
    );
}

#[test]
fn the_markdown_has_every_concern_the_warning_ratios_and_problems() {
    let md = markdown::render(&fixture());
    for heading in [
        "## Startup",
        "## Memory",
        "## Runtime overhead",
        "## Isolation",
        "## Density",
        "## Failures and skips",
    ] {
        assert!(md.contains(heading), "{heading} missing");
    }
    assert!(md.contains("**Warning:** KVM on this host is software (kvm_pvm)"));
    assert!(md.contains("| KVM | software (kvm_pvm): guest instructions are emulated |"));
    // Each figure with its interval and spread, and the container's startup median over
    // native's, 2.6 / 0.55, with its bootstrap interval; the micro guest's are raw costs,
    // with no ratio.
    assert!(
        md.contains(
            "| container | startup | time_to_start | 2.600 ms [2.400, 2.800] | 2.780 ms | 6.1% | 5 | 4.727x ["
        ),
        "{md}"
    );
    assert!(
        md.contains("| microvm (raw cost) | startup | time_to_start | 1.250 ms [1.200, 1.300] | 1.296 ms | 3.3% | 5 | |"),
        "{md}"
    );
    // A single derived number is a value: no spread, no interval.
    assert!(
        md.contains("| container | density | marginal_host_memory | 2.200 MiB | | | value | |"),
        "{md}"
    );
    assert!(md.contains("- failed: container file, run 2: timed out after 60.0 s"));
    assert!(md.contains("- skipped: microvm cpu: needs a Linux guest"));
    // Teaching notes quote the numbers measured, the phases included.
    assert!(md.contains("a plain process took 0.5500 ms, container 2.600 ms (4.727x native ["));
    assert!(
        md.contains("The microvm figures come from micro guests: no guest OS, a few instructions")
    );
    assert!(md.contains("1.250 ms from launch to the guest's first marker, and 1.380 MiB"));
    assert!(
        !md.contains("2.273x"),
        "no micro-guest ratio against native: {md}"
    );
    assert!(
        md.contains("1.110 ms in namespaces (clone, uid maps)"),
        "{md}"
    );
    assert!(
        md.contains("took 152 ns natively and 159 ns in the container, 4.6% more ["),
        "{md}"
    );
    // What no micro guest can measure is said, not left out.
    assert!(md.contains("*No Linux guest was measured: the microvm figures come from micro guests"));
    assert!(md.contains("*No guest kernel memory was measured"));
}

#[test]
fn teaching_notes_follow_the_numbers() {
    let mut doc = fixture();
    let native = doc.figure("native", "syscall", "syscall").unwrap().clone();
    for f in &mut doc.figures {
        if f.backend == "container" && f.metric == "syscall" {
            // Native's samples, 0.5% higher: no difference a test would claim.
            f.samples = native.samples.iter().map(|x| x * 1.005).collect();
            f.summary = stats::summarise(&f.samples).unwrap();
        }
    }
    doc.attach_ratios();
    let md = markdown::render(&doc);
    assert!(
        md.contains(
            "took 152 ns natively and 152.8 ns in the container: no significant difference"
        ),
        "{md}"
    );
    // No native syscall figure: the exit is not put in system calls.
    doc.figures.retain(|f| f.scenario != "syscall");
    let md = markdown::render(&doc);
    assert!(md.contains("One VM exit round trip of the microVM took 6.150 µs (on software KVM"));
    assert!(!md.contains("system calls ("), "{md}");
}

#[test]
fn a_concern_without_data_says_so_and_why() {
    let mut doc = fixture();
    doc.isolation.clear();
    doc.surface.clear();
    doc.figures.retain(|f| f.scenario != "isolation");
    doc.plan.scenarios.retain(|s| s.name != "isolation");
    doc.density.clear();
    doc.figures.retain(|f| f.scenario != "density");
    doc.skipped.push(reports::document::Skip {
        backend: "container".into(),
        scenario: Some("density".into()),
        reason: "needs root for its cgroups".into(),
    });
    let md = markdown::render(&doc);
    assert!(
        md.contains("*No data for isolation in this run: its scenarios (isolation, interference) were not part of the plan.*"),
        "{md}"
    );
    assert!(
        md.contains("*No data for density in this run: container needs root for its cgroups.*"),
        "{md}"
    );
    let page = html::render(&doc);
    assert!(page.contains("<p class=\"missing\">No data for density in this run"));
    assert!(!page.contains("chart-isolation") && !page.contains("chart-density"));
}

#[test]
fn failures_are_grouped_and_a_clean_run_says_so() {
    let mut doc = fixture();
    let first = doc.failures[0].clone();
    for index in [3, 4] {
        doc.failures.push(reports::document::Failure {
            index,
            ..first.clone()
        });
    }
    let md = markdown::render(&doc);
    assert!(
        md.contains("- failed: container file, 3 runs (2, 3, 4): timed out after 60.0 s"),
        "{md}"
    );
    doc.failures.clear();
    doc.skipped.clear();
    assert!(markdown::render(&doc).contains("Every run succeeded and nothing was skipped."));
}

#[test]
fn emulated_and_nested_hosts_are_warned_of() {
    let mut doc = fixture();
    doc.host.emulated = true;
    doc.host.hypervisor = Some("TCGTCGTCGTCG".into());
    let md = markdown::render(&doc);
    assert!(md.contains("**Warning:** This run was taken on a CPU emulated by QEMU TCG"));
    assert!(md.contains("| native runs on | a CPU emulated by QEMU TCG: every figure"));
    doc.host.emulated = false;
    doc.host.kvm.flavour = "hardware".into();
    doc.host.kvm.module = Some("kvm_amd".into());
    let md = markdown::render(&doc);
    assert!(md.contains("**Warning:** This host is itself a virtual machine: its VMs are nested"));
    assert!(!md.contains("emulation figures"));
    doc.complete = false;
    assert!(markdown::render(&doc).contains("**Warning:** The run was interrupted"));
}

#[test]
fn the_html_is_one_file_with_no_external_reference() {
    let page = html::render(&fixture());
    assert!(page.starts_with("<!DOCTYPE html>"));
    for forbidden in ["<script", "<link", " src=", "url(", "@import"] {
        assert!(
            !page.contains(forbidden),
            "the report contains {forbidden:?}"
        );
    }
    // Links go to the page's own sections only.
    for (at, _) in page.match_indices(" href=") {
        assert!(
            page[at..].starts_with(" href=\"#"),
            "{}",
            &page[at..at + 40]
        );
    }
    // The only URL is the SVG namespace, which names a vocabulary and is never fetched.
    let urls: Vec<&str> = page
        .match_indices("http")
        .map(|(i, _)| &page[i..(i + 26).min(page.len())])
        .collect();
    assert!(
        urls.iter()
            .all(|u| u.starts_with("http://www.w3.org/2000/svg")),
        "{urls:?}"
    );
    for chart in [
        "stacks",
        "spectrum",
        "startup-latency",
        "startup-run-order",
        "startup-phases",
        "memory",
        "overhead",
        "isolation",
        "density",
        "density-start",
    ] {
        assert!(
            page.contains(&format!("id=\"chart-{chart}\"")),
            "chart {chart} missing"
        );
    }
    assert_eq!(page.matches("<svg").count(), 10);
    assert!(page.contains("class=\"isolated\""));
}

#[test]
fn charts_are_drawn_as_svg_and_png() {
    let doc = fixture();
    let dir = tempfile::tempdir().unwrap();
    let written = reports::write_charts(&doc, dir.path()).unwrap();
    assert_eq!(written.len(), 20, "{written:?}");
    for file in &written {
        let len = std::fs::metadata(file).unwrap().len();
        assert!(len > 2000, "{} is only {len} bytes", file.display());
    }
    let svg = charts::svg(charts::Chart::Memory, &doc).unwrap().unwrap();
    assert!(svg.contains("added by the sandbox"));
}

#[test]
fn a_chart_without_data_is_not_drawn() {
    let mut doc = fixture();
    doc.density.clear();
    assert_eq!(charts::svg(charts::Chart::Density, &doc).unwrap(), None);
    assert!(!html::render(&doc).contains("chart-density"));
}

/// The fixture with every distribution given 20 samples around its median (a spread of
/// a few percent, the same pattern for every figure), times `scale(figure)`.
fn twenty_samples(scale: impl Fn(&reports::document::Figure) -> f64) -> Results {
    let mut doc = fixture();
    for f in &mut doc.figures {
        if f.kind != reports::document::Kind::Distribution {
            continue;
        }
        let k = scale(f);
        let median = f.summary.median;
        f.samples = (0..20u32)
            .map(|i| median * k * (1.0 + 0.03 * (f64::from(i) * 2.1).sin()))
            .collect();
        f.summary = stats::summarise(&f.samples).unwrap();
    }
    doc.attach_ratios();
    doc
}

#[test]
fn compare_of_a_document_with_itself_finds_no_significant_change() {
    let doc = twenty_samples(|_| 1.0);
    let rows = compare::rows(&[doc.clone(), doc.clone()]);
    assert!(!rows.is_empty());
    for row in &rows {
        let change = row.changes[0].as_ref().unwrap();
        assert!(!change.significant(), "{row:?}");
    }
    let text = compare::markdown(&[doc.clone(), doc], &["a.json".into(), "a.json".into()]);
    assert!(!text.contains("slower by"), "{text}");
    assert!(text.contains("| no significant change (+0.0% ["), "{text}");
}

#[test]
fn compare_flags_exactly_the_backend_that_got_slower_with_intervals() {
    let base = twenty_samples(|_| 1.0);
    // The container's samples 25% worse, native's 1% slower (below the smallest effect
    // claimed), the rest the same.
    let mut after = twenty_samples(|f| match (f.backend.as_str(), f.better) {
        ("container", reports::document::Better::Lower) => 1.25,
        ("container", reports::document::Better::Higher) => 0.8,
        ("native", _) => 1.01,
        _ => 1.0,
    });
    after.figures.retain(|f| f.metric != "exit_round_trip");
    let rows = compare::rows(&[base.clone(), after.clone()]);
    for row in &rows {
        let Some(change) = &row.changes[0] else {
            continue;
        };
        let container = row.figure.starts_with("container ")
            && row.figures[0].as_ref().unwrap().kind == reports::document::Kind::Distribution;
        assert_eq!(change.significant(), container, "{row:?}");
        if container {
            let t = change.test.as_ref().unwrap();
            let expected = if row.better == reports::document::Better::Lower {
                0.25
            } else {
                -0.2
            };
            assert!((t.change - expected).abs() < 1e-9, "{row:?}");
            assert!(t.ci.contains(expected) && !t.ci.contains(0.0), "{row:?}");
        }
    }
    // A figure the later document lacks is kept, and said to be missing.
    let row = |name: &str| rows.iter().find(|r| r.figure == name).unwrap();
    let gone = row("microvm exits exit_round_trip");
    assert_eq!(gone.figures[1], None);
    assert_eq!(gone.changes[0], None);
    let md = compare::markdown(&[base, after], &["a.json".into(), "b.json".into()]);
    let line = md
        .lines()
        .find(|l| l.starts_with("| container startup time_to_start |"))
        .unwrap();
    assert!(line.contains("| slower by 25.0% [+"), "{line}");
    assert!(line.ends_with(", worse (p < 0.001) |"), "{line}");
    let line = md
        .lines()
        .find(|l| l.starts_with("| native startup time_to_start |"))
        .unwrap();
    assert!(line.contains("| no significant change (+1.0% ["), "{line}");
    assert!(md.contains("| microvm exits exit_round_trip | 61"), "{md}");
    assert!(md.contains("| missing |"), "{md}");
    assert!(md.contains("| kernel | 6.1.0 | 6.1.0 |"), "{md}");
    assert!(md.contains("Mann-Whitney"), "{md}");
}

#[test]
fn compare_names_what_differs_between_the_plans() {
    let base = fixture();
    let mut after = fixture();
    after.plan.order = "interleaved".to_owned();
    after.plan.settings.insert(
        "microvm".to_owned(),
        "Linux guests (6.1.0), 1 vCPU, 128 MiB".to_owned(),
    );
    for f in &mut after.figures {
        if f.backend == "microvm" {
            f.variant = "Linux guests (6.1.0), 1 vCPU, 128 MiB".to_owned();
        }
    }
    let md = compare::markdown(&[base, after], &["a.json".into(), "b.json".into()]);
    assert!(
        md.contains("| **order** (differs) | blocked | interleaved |"),
        "{md}"
    );
    assert!(md.contains("| **microvm settings** (differs) |"), "{md}");
    assert!(
        md.contains("Warning: the documents differ in order, microvm settings"),
        "{md}"
    );
    let line = md
        .lines()
        .find(|l| l.starts_with("| microvm startup time_to_start |"))
        .unwrap();
    assert!(
        line.contains("not like for like: ran \"\" then \"Linux guests"),
        "{line}"
    );
}

#[test]
fn what_is_not_a_results_document_is_named_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let full = std::fs::read_to_string(data("results.json")).unwrap();
    let truncated = write("truncated.json", &full[..full.len() / 2]);
    let e = Results::read(&truncated).unwrap_err();
    assert!(matches!(e, Error::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("cut short"), "{e}");
    let not_json = write("not.json", "vcbench results\n");
    assert!(matches!(
        Results::read(&not_json),
        Err(Error::NotJson { .. })
    ));
    let newer = write(
        "newer.json",
        &full.replacen("\"schema_version\": 1", "\"schema_version\": 3", 1),
    );
    let e = Results::read(&newer).unwrap_err();
    assert!(matches!(e, Error::Newer { found: 3, .. }), "{e}");
    assert!(e.to_string().contains("use a newer vcbench"));
    let other = write("other.json", r#"{"name": "not results"}"#);
    let e = Results::read(&other).unwrap_err();
    assert!(matches!(e, Error::NotResults { .. }), "{e}");
    assert!(e.to_string().contains("other.json"));
    assert!(matches!(
        Results::read(&dir.path().join("missing.json")),
        Err(Error::Read { .. })
    ));
}
