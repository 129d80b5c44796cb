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
    ] {
        assert!(md.contains(heading), "{heading} missing");
    }
    assert!(md.contains("**Warning:** KVM on this host is software (kvm_pvm)"));
    // The container's startup median over native's: 2.6 / 0.55.
    assert!(
        md.contains("| container | startup | time_to_start | 2.600 ms |"),
        "{md}"
    );
    assert!(md.contains("| 4.727x |"), "{md}");
    assert!(md.contains("- failed: container file: timed out after 60.0 s"));
    assert!(md.contains("- skipped: microvm cpu: needs a Linux guest"));
    // Teaching notes quote the numbers measured.
    assert!(md.contains("a plain process started in 0.5500 ms and a container in 2.600 ms"));
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
    let rows = compare::rows(&[base.clone(), after.clone()]);
    let row = |name: &str| rows.iter().find(|r| r.figure == name).unwrap();
    let container = row("container startup time_to_start");
    assert!((container.change_pct[0].unwrap() - 50.0).abs() < 1e-9);
    assert!(container.significant[0]);
    assert!(!row("native startup time_to_start").significant[0]);
    let md = compare::markdown(&[base, after], &["a.json".into(), "b.json".into()]);
    assert!(md.contains("**+50.0%**"), "{md}");
    assert!(md.contains("+1.0% (noise)"), "{md}");
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
