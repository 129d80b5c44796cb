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
    // Each figure with its spread, and the container's startup median over native's:
    // 2.6 / 0.55.
    assert!(
        md.contains(
            "| container | startup | time_to_start | 2.600 ms | 2.800 ms | 6.1% | 5 | 4.727x |"
        ),
        "{md}"
    );
    assert!(md.contains("- failed: container file, run 2: timed out after 60.0 s"));
    assert!(md.contains("- skipped: microvm cpu: needs a Linux guest"));
    // Teaching notes quote the numbers measured, the phases included.
    assert!(md.contains("a plain process took 0.5500 ms, container 2.600 ms (4.727x native)"));
    assert!(
        md.contains("1.110 ms in namespaces (clone, uid maps)"),
        "{md}"
    );
    assert!(md.contains("took 152 ns natively and 159 ns in the container, 4.6% more"));
    // What no micro guest can measure is said, not left out.
    assert!(md.contains("*No Linux guest was measured: the microvm figures come from micro guests"));
    assert!(md.contains("*No guest kernel memory was measured"));
}

#[test]
fn teaching_notes_follow_the_numbers() {
    let mut doc = fixture();
    for f in &mut doc.figures {
        if f.backend == "container" && f.metric == "syscall" {
            f.summary.median = 153.0; // within native's noise of 1.7%
        }
    }
    let md = markdown::render(&doc);
    assert!(
        md.contains(
            "took 152 ns natively and 153 ns in the container, the same within the runs' noise"
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
    assert!(md.contains("| runs on | a CPU emulated by QEMU TCG |"));
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
    for forbidden in ["<script", "<link", " src=", " href=", "url(", "@import"] {
        assert!(
            !page.contains(forbidden),
            "the report contains {forbidden:?}"
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
        "startup-latency",
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
    assert_eq!(page.matches("<svg").count(), 7);
    assert!(page.contains("class=\"isolated\""));
}

#[test]
fn charts_are_drawn_as_svg_and_png() {
    let doc = fixture();
    let dir = tempfile::tempdir().unwrap();
    let written = reports::write_charts(&doc, dir.path()).unwrap();
    assert_eq!(written.len(), 14, "{written:?}");
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

#[test]
fn compare_shows_the_change_and_whether_it_exceeds_the_noise() {
    let base = fixture();
    let mut after = fixture();
    for f in &mut after.figures {
        if f.backend == "container" && f.metric == "time_to_start" {
            f.summary.median *= 1.5; // far beyond its cv of about 6%
        }
        if f.backend == "native" && f.metric == "time_to_start" {
            f.summary.median *= 1.01; // within its cv
        }
    }
    after.figures.retain(|f| f.metric != "exit_round_trip");
    let rows = compare::rows(&[base.clone(), after.clone()]);
    let row = |name: &str| rows.iter().find(|r| r.figure == name).unwrap();
    let container = row("container startup time_to_start").changes[0].unwrap();
    assert!((container.pct - 50.0).abs() < 1e-9);
    assert!(container.significant());
    assert!(!container.improves(reports::document::Better::Lower));
    let native = row("native startup time_to_start").changes[0].unwrap();
    assert!(!native.significant(), "{native:?}");
    // Its noise is the larger of the two runs' cv: 7.5% here.
    assert!((native.noise_pct - 7.496).abs() < 0.01, "{native:?}");
    // A figure the later document lacks is kept, and said to be missing.
    let gone = row("microvm exits exit_round_trip");
    assert_eq!(gone.medians[1], None);
    assert_eq!(gone.changes[0], None);
    let md = compare::markdown(&[base, after], &["a.json".into(), "b.json".into()]);
    assert!(
        md.contains("| container startup time_to_start | 2.600 ms ±6.1% | 3.900 ms ±6.1% | **+50.0%** worse (noise 6.1%) |"),
        "{md}"
    );
    assert!(md.contains("+1.0% within noise (7.5%)"), "{md}");
    assert!(
        md.contains("| microvm exits exit_round_trip | 6150 ns ±0.8% | missing |"),
        "{md}"
    );
    assert!(md.contains("| kernel | 6.1.0 | 6.1.0 |"), "{md}");
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
        &full.replacen("\"schema_version\": 1", "\"schema_version\": 2", 1),
    );
    let e = Results::read(&newer).unwrap_err();
    assert!(matches!(e, Error::Newer { found: 2, .. }), "{e}");
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
