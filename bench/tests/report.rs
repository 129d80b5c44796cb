//! The report of a real run, opened in headless Chromium: no console errors, every chart
//! drawn (screenshots of each chart have ink where the chart is), read me first at the top
//! with its picture drawn, and on paper the one-page summary on the first page, each
//! section after it, and a PDF that prints. Needs Debian's `chromium`; skipped with a
//! reason without it, a failure under CI=true. Also `report` on the command line, with
//! Markdown that links its PNG charts.

use std::path::{Path, PathBuf};
use std::process::Command;

const VCBENCH: &str = env!("CARGO_BIN_EXE_vcbench");

fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = "no chromium (apt-get install chromium)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {msg}"
        );
        eprintln!("skipped: {msg}");
    }
    found
}

/// Opens `page` in headless Chromium at `size`, takes a screenshot, and returns it with
/// what Chromium logged from the page's console.
fn screenshot(chromium: &Path, page: &Path, size: (u32, u32), dir: &Path) -> (PathBuf, String) {
    let shot = page.with_extension("png");
    let profile = tempfile::tempdir_in(dir).unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .collect::<Vec<_>>()
        .join("\n");
    (shot, console)
}

/// The fraction of pixels that are not near-white, and how many of them are coloured
/// (not grey): in `region` (x0, y0, x1, y1 as fractions of the image).
fn ink(png_path: &Path, region: (f64, f64, f64, f64)) -> (f64, f64) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let span = |a: f64, b: f64, n: usize| {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let r = ((a * n as f64) as usize, (b * n as f64) as usize);
        r
    };
    let (x0, x1) = span(region.0, region.2, w);
    let (y0, y1) = span(region.1, region.3, h);
    let (mut inked, mut coloured, mut all) = (0usize, 0usize, 0usize);
    for y in y0..y1 {
        for x in x0..x1 {
            let p = &buf[(y * w + x) * channels..][..3];
            all += 1;
            let (max, min) = (*p.iter().max().unwrap(), *p.iter().min().unwrap());
            if min < 235 {
                inked += 1;
            }
            if max - min > 40 {
                coloured += 1;
            }
        }
    }
    (inked as f64 / all as f64, coloured as f64 / all as f64)
}

/// Where each of `ids` lies on `page` laid out `width` pixels wide: (top, bottom) in
/// pixels from the top of the page, measured by Chromium in a copy of the page that reports
/// its own layout. With `print`, the copy applies the report's print stylesheet on screen,
/// at the width of an A4 page's text.
fn layout(
    chromium: &Path,
    page: &Path,
    width: u32,
    print: bool,
    ids: &[&str],
) -> std::collections::BTreeMap<String, (f64, f64)> {
    let html = std::fs::read_to_string(page).unwrap();
    let html = if print {
        assert!(
            html.contains("<style media=\"print\">"),
            "no print stylesheet"
        );
        html.replace("<style media=\"print\">", "<style media=\"all\">")
    } else {
        html
    };
    let list: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    let script = format!(
        "<script>const out = {{}}; for (const id of [{}]) {{ const e = \
         document.getElementById(id); if (e) {{ const r = e.getBoundingClientRect(); \
         out[id] = [r.top + scrollY, r.bottom + scrollY]; }} }} const pre = \
         document.createElement('pre'); pre.id = 'vcbench-layout'; pre.textContent = \
         JSON.stringify(out); document.body.appendChild(pre);</script>",
        list.join(",")
    );
    let copy = page.with_file_name(format!(
        "layout-{}.html",
        if print { "print" } else { "screen" }
    ));
    std::fs::write(&copy, html.replace("</body>", &format!("{script}</body>"))).unwrap();
    let profile = tempfile::tempdir_in(page.parent().unwrap()).unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args([
            "--disable-background-networking",
            "--no-first-run",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},1000"))
        .arg(format!("file://{}", copy.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let json = dom
        .split("<pre id=\"vcbench-layout\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| {
            panic!(
                "no layout in the page: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let found: std::collections::BTreeMap<String, (f64, f64)> = serde_json::from_str(json).unwrap();
    for id in ids {
        assert!(found.contains_key(*id), "#{id} is not on the page");
    }
    found
}

/// The number of pages of a PDF file, from its page objects.
fn pdf_pages(pdf: &[u8]) -> usize {
    let text = String::from_utf8_lossy(pdf);
    text.match_indices("/Type /Page")
        .filter(|(at, m)| !text[at + m.len()..].starts_with('s'))
        .count()
}

#[test]
fn the_report_of_a_real_run_opens_cleanly_in_chromium_with_every_chart_drawn() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let backends = match (root, Path::new("/dev/kvm").exists()) {
        (true, true) => "native,container,microvm",
        (true, false) => "native,container",
        (false, _) => "native",
    };
    let run = Command::new(VCBENCH)
        .args([
            "run",
            "-q",
            "-b",
            backends,
            "-s",
            "startup,footprint,syscall,isolation",
        ])
        .args(["--runs", "5", "-o", "r.json"])
        .current_dir(dir.path())
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("report: r.html") && stdout.contains("report: r.md"),
        "{stdout}"
    );

    // The console check catches what a page logs: a page that logs an error is seen.
    let canary = dir.path().join("canary.html");
    std::fs::write(
        &canary,
        "<!DOCTYPE html><html><body><script>console.error('vcbench canary')</script></body></html>",
    )
    .unwrap();
    let (_, console) = screenshot(&chromium, &canary, (200, 200), dir.path());
    assert!(
        console.contains("vcbench canary"),
        "console not captured: {console:?}"
    );

    // The whole report: no console errors, and ink all the way down.
    let page = dir.path().join("r.html");
    let (shot, console) = screenshot(&chromium, &page, (1000, 3000), dir.path());
    assert!(console.is_empty(), "console messages: {console}");
    let (inked, _) = ink(&shot, (0.0, 0.0, 1.0, 1.0));
    assert!(
        inked > 0.05,
        "the report is almost blank ({inked:.3} inked)"
    );

    // Each chart on its own page at its own size: the plot area holds coloured marks.
    let doc = reports::Results::read(&dir.path().join("r.json")).unwrap();
    let mut drawn = 0;
    for chart in reports::charts::Chart::ALL {
        let Some(svg) = reports::charts::svg(chart, &doc).unwrap() else {
            continue;
        };
        let (w, h) = chart.size();
        let page = dir.path().join(format!("{}.html", chart.name()));
        std::fs::write(
            &page,
            format!("<!DOCTYPE html><html><body style=\"margin:0\">{svg}</body></html>"),
        )
        .unwrap();
        let (shot, console) = screenshot(&chromium, &page, (w, h), dir.path());
        assert!(console.is_empty(), "{}: {console}", chart.name());
        // The plot area: right of the labels, below the caption, above the axis.
        let (inked, coloured) = ink(&shot, (0.2, 0.12, 0.95, 0.85));
        assert!(
            inked > 0.02 && coloured > 0.01,
            "{}: plot area {inked:.3} inked, {coloured:.3} coloured",
            chart.name()
        );
        drawn += 1;
    }
    assert!(drawn >= 4, "only {drawn} charts drawn");

    // Read me first opens the report, with the picture of the three ways in its one-page
    // summary; the sections follow, then the appendix and the failures.
    let order = [
        "read-me-first",
        "summary",
        "chart-stacks",
        "how-to-read",
        "glossary",
        "settings",
        "startup",
        "memory",
        "overhead",
        "isolation",
        "appendix",
        "problems",
    ];
    let screen = layout(&chromium, &page, 1000, false, &order);
    for pair in order.windows(2) {
        assert!(
            screen[pair[0]].0 <= screen[pair[1]].0,
            "#{} comes after #{}: {screen:?}",
            pair[0],
            pair[1]
        );
    }
    let (top, bottom) = screen["summary"];
    assert!(top < 400.0, "the summary starts {top} px down: {screen:?}");
    // The summary on screen: the picture has coloured ink where the layout puts it.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let height = (bottom + 20.0) as u32;
    let (shot, console) = screenshot(&chromium, &page, (1000, height), dir.path());
    assert!(console.is_empty(), "console messages: {console}");
    let (from, to) = screen["chart-stacks"];
    let h = f64::from(height);
    let (inked, coloured) = ink(&shot, (0.05, from / h, 0.95, to / h));
    assert!(
        inked > 0.05 && coloured > 0.02,
        "the picture: {inked:.3} inked, {coloured:.3} coloured"
    );

    // On paper (the print stylesheet, A4 less its margins: 186 mm by 273 mm at 96 px per
    // inch), the one-page summary ends within the first page, and a page of its own follows.
    let (page_w, page_h) = (703, 1032.0);
    let paper = layout(&chromium, &page, page_w, true, &order);
    assert!(
        paper["summary"].1 <= page_h,
        "the summary runs past the first page: {paper:?}"
    );
    let print_view = dir.path().join("layout-print.html");
    let (shot, console) = screenshot(&chromium, &print_view, (page_w, 1032), dir.path());
    assert!(console.is_empty(), "console messages: {console}");
    let (inked, coloured) = ink(&shot, (0.0, 0.0, 1.0, 1.0));
    assert!(
        inked > 0.05 && coloured > 0.01,
        "the printed first page: {inked:.3} inked, {coloured:.3} coloured"
    );
    // And it prints: a PDF of several pages.
    let pdf = dir.path().join("r.pdf");
    let profile = tempfile::tempdir_in(dir.path()).unwrap();
    let out = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
        ])
        .args(["--disable-background-networking", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pdf = std::fs::read(&pdf).unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    let pages = pdf_pages(&pdf);
    assert!((4..200).contains(&pages), "{pages} pages");
}

#[test]
fn report_and_compare_on_the_command_line() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/tests/data/results.json");
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("out/report.html");
    let out = Command::new(VCBENCH)
        .arg("report")
        .arg(&fixture)
        .arg("-o")
        .arg(&html)
        .arg("--png")
        .arg(dir.path().join("charts"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    assert!(dir.path().join("charts/startup-latency.png").is_file());
    assert!(dir.path().join("charts/startup-latency.svg").is_file());

    let out = Command::new(VCBENCH)
        .arg("compare")
        .arg(&fixture)
        .arg(&fixture)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // A document against itself: the same plans, and no change anywhere.
    assert!(
        text.starts_with("plans, hosts and tools: the same"),
        "{text}"
    );
    assert!(text.contains("no significant change (+0.0% ["), "{text}");
    assert!(
        !text.contains("slower by") && !text.contains("faster by"),
        "{text}"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"schema_version\": 99}").unwrap();
    let out = Command::new(VCBENCH)
        .arg("report")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use a newer vcbench"));
    let out = Command::new(VCBENCH)
        .arg("report")
        .arg(&fixture)
        .args(["-o", "report.pdf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn vcbench(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(VCBENCH)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", cwd.join("cache"))
        .output()
        .unwrap()
}

#[test]
fn compare_of_two_real_runs_tests_each_figures_change() {
    let dir = tempfile::tempdir().unwrap();
    for out in ["a.json", "b.json"] {
        let run = vcbench(
            &[
                "run",
                "-q",
                "-b",
                "native",
                "-s",
                "startup,syscall",
                "--runs",
                "5",
                "-o",
                out,
            ],
            dir.path(),
        );
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let out = vcbench(&["compare", "--markdown", "a.json", "b.json"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let a = vcbench::results::Results::read(&dir.path().join("a.json")).unwrap();
    assert!(!a.figures.is_empty());
    for f in &a.figures {
        let name = format!("| {} {} {} |", f.backend, f.scenario, f.metric);
        let row = text
            .lines()
            .find(|l| l.starts_with(&name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
        // Both medians with their intervals, and the change tested: claimed with its
        // interval and p, or "no significant change".
        assert_eq!(row.matches(" [").count(), 3, "{row}");
        assert!(
            row.contains("| no significant change (") || row.contains("% [") && row.contains("(p "),
            "{row}"
        );
    }
    assert!(text.contains("| host |"), "{text}");
    assert!(text.contains("Mann-Whitney"), "{text}");
}

#[test]
fn report_and_compare_refuse_what_is_not_results_with_exit_status_2() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/tests/data/results.json");
    let full = std::fs::read_to_string(&fixture).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("good.json", &full);
    write("truncated.json", &full[..full.len() / 3]);
    write(
        "newer.json",
        &full.replacen("\"schema_version\": 1", "\"schema_version\": 3", 1),
    );
    write("other.json", "{\"name\": \"not results\", \"figures\": 3}");
    write("text.json", "backend,scenario,metric\n");
    for (file, says) in [
        ("truncated.json", "is cut short"),
        ("newer.json", "newer than version 2"),
        ("other.json", "has no schema_version"),
        ("text.json", "is not JSON"),
        ("missing.json", "cannot read"),
    ] {
        for args in [
            vec!["report", file],
            vec!["report", file, "-o", "r.html"],
            vec!["compare", "good.json", file],
        ] {
            let out = vcbench(&args, dir.path());
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(file) && err.contains(says), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(out.stdout.is_empty(), "{args:?}");
        }
    }
    // Nothing was written for the refused inputs.
    assert!(!dir.path().join("r.html").exists());
    let out = vcbench(&["report", "good.json", "-o", "r.txt"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("name a .html, .md, .csv"));
    let out = vcbench(&["compare", "good.json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn report_writes_markdown_html_and_charts() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/tests/data/results.json");
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture.to_str().unwrap();
    let out = vcbench(&["report", fixture], dir.path());
    assert!(out.status.success());
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.starts_with("# vcbench report"), "{md}");
    let out = vcbench(
        &["report", fixture, "-o", "r.md", "--png", "charts"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The Markdown written beside its charts shows them, by links relative to itself.
    let linked = std::fs::read_to_string(dir.path().join("r.md")).unwrap();
    assert!(!md.contains("!["), "{md}");
    assert!(linked.contains("](charts/stacks.png)"), "{linked}");
    // Beside the links, the same report.
    let text = |md: &str| -> Vec<String> {
        md.lines()
            .filter(|l| !l.is_empty() && !l.starts_with("!["))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(text(&linked), text(&md));
    for chart in reports::charts::Chart::ALL {
        if reports::charts::has_data(chart, &reports::Results::read(Path::new(fixture)).unwrap()) {
            assert!(
                linked.contains(&format!("](charts/{}.png)", chart.name())),
                "{}",
                chart.name()
            );
        }
    }
    // From another directory, the links climb to the charts.
    std::fs::create_dir(dir.path().join("notes")).unwrap();
    let elsewhere = vcbench(
        &["report", fixture, "-o", "notes/r.md", "--png", "charts"],
        dir.path(),
    );
    assert!(elsewhere.status.success());
    let linked = std::fs::read_to_string(dir.path().join("notes/r.md")).unwrap();
    assert!(linked.contains("](../charts/stacks.png)"), "{linked}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("report: r.md") && said.contains("charts: 20 files in charts"),
        "{said}"
    );
    for chart in reports::charts::Chart::ALL {
        // The fixture ran no warm start: that chart has no data, and is not drawn.
        if chart == reports::charts::Chart::ColdWarm {
            assert!(!dir.path().join("charts/cold-warm.svg").exists());
            continue;
        }
        for ext in ["svg", "png"] {
            let file = dir.path().join(format!("charts/{}.{ext}", chart.name()));
            assert!(
                std::fs::metadata(&file).unwrap().len() > 2000,
                "{}",
                file.display()
            );
        }
    }
}
