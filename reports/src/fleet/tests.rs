//! The fleet document on real results: merging, what is refused and what is stated,
//! reading it back, and its report.

use std::path::Path;

use super::merge::{merge, Input, MergeError, Options};
use super::{Difference, DifferenceKind, Document, Fleet, SkippedHost};
use crate::document::{Error, Results};

const REAL: &str = include_str!("../../tests/data/real-run.json");
const OLD: &str = include_str!("../../tests/data/results.json");

/// The real run (software KVM, hybrid cgroups, an AMD EPYC) as host `name`.
fn host(name: &str) -> Results {
    let mut r = Results::parse(REAL, Path::new("real-run.json")).expect("the fixture reads");
    r.host.hostname = name.to_owned();
    r
}

fn input(r: Results) -> Input {
    Input::Results {
        source: format!("{}.json", r.host.hostname),
        results: Box::new(r),
    }
}

fn options() -> Options {
    Options {
        merged_by: "vcbench test".to_owned(),
        merged_at: "2026-12-04T00:00:00Z".to_owned(),
        allow_plan_differences: false,
    }
}

fn three() -> Fleet {
    let mut b = host("b");
    // Host b: hardware KVM offered by a host that is itself a VM (nested), cgroup v2, Intel.
    b.host.kvm.flavour = "hardware".to_owned();
    b.host.kvm.module = Some("kvm_intel".to_owned());
    b.host.hypervisor = Some("KVMKVMKVM".to_owned());
    b.host.cgroup = "v2".to_owned();
    b.host.cpu_model = "Intel(R) Xeon(R) Gold 6338".to_owned();
    merge(
        vec![input(host("a")), input(b), input(host("c"))],
        &options(),
    )
    .expect("three hosts of one plan merge")
}

#[test]
fn every_figure_keeps_its_host_and_each_host_reads_back_as_it_was() {
    let fleet = three();
    let names: Vec<&str> = fleet.hosts.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let one = host("a").figures.len();
    assert_eq!(fleet.figures.len(), 3 * one);
    assert!(fleet.hosts.iter().all(|m| m.results.figures.is_empty()));
    assert_eq!(fleet.host_results("a"), Some(host("a")));
    assert!(fleet.differences.is_empty(), "{:?}", fleet.differences);
    // Through its JSON, as a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.json");
    std::fs::write(&path, fleet.to_json()).unwrap();
    match Document::read(&path).expect("the fleet reads") {
        Document::Fleet(read) => assert_eq!(*read, fleet),
        Document::Single(_) => panic!("a fleet read as one host's results"),
    }
    let per_host = Document::Fleet(Box::new(fleet)).per_host("f.json");
    let named: Vec<&str> = per_host.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(named, ["f.json:a", "f.json:b", "f.json:c"]);
}

#[test]
fn two_documents_of_one_host_are_refused() {
    let err = merge(vec![input(host("a")), input(host("a"))], &options()).unwrap_err();
    assert!(matches!(err, MergeError::DuplicateHost { ref name, .. } if name == "a"));
    assert!(err
        .to_string()
        .contains("a.json and a.json are both from host \"a\""));
}

#[test]
fn plans_asking_for_different_work_are_refused_with_every_difference_unless_allowed() {
    let mut b = host("b");
    b.plan.scenarios[0].runs += 5;
    b.plan.backends.pop();
    let err = merge(vec![input(host("a")), input(b.clone())], &options()).unwrap_err();
    let MergeError::PlansDiffer { differences } = &err else {
        panic!("{err}");
    };
    assert_eq!(differences.len(), 2, "{differences:?}");
    assert!(differences[0].starts_with("backends: a native,container,microvm, b native,container"));
    assert!(
        differences[1].starts_with("startup plan: a hello (30 runs"),
        "{differences:?}"
    );
    assert!(differences[1].contains(", b hello (35 runs"));
    assert!(err.to_string().contains("--allow-plan-differences"));

    let allowed = Options {
        allow_plan_differences: true,
        ..options()
    };
    let fleet = merge(vec![input(host("a")), input(b)], &allowed).expect("merged when allowed");
    let plan: Vec<&Difference> = fleet
        .differences
        .iter()
        .filter(|d| d.kind == DifferenceKind::Plan)
        .collect();
    assert_eq!(plan.len(), 2);
}

#[test]
fn other_builds_schema_versions_seeds_and_interrupted_runs_are_merged_and_stated() {
    let mut b = host("b");
    b.tool.version = "0.2.0".to_owned();
    b.plan.seed += 1;
    b.complete = false;
    let mut old = Results::parse(OLD, Path::new("results.json")).expect("the v1 fixture reads");
    // The old fixture's plan, but its host named apart: only its schema is compared here.
    old.host.hostname = "old".to_owned();
    let fleet = merge(vec![input(host("a")), input(b)], &options()).expect("merged");
    let whats: Vec<(&str, DifferenceKind)> = fleet
        .differences
        .iter()
        .map(|d| (d.what.as_str(), d.kind))
        .collect();
    assert_eq!(
        whats,
        [
            ("seed", DifferenceKind::Plan),
            ("vcbench version", DifferenceKind::Tool),
            ("run complete", DifferenceKind::Run),
        ]
    );
    assert_eq!(fleet.differences[2].values[1].value, "interrupted");

    let mut a = Results::parse(OLD, Path::new("results.json")).unwrap();
    a.schema_version = 2;
    a.host.hostname = "new".to_owned();
    let fleet = merge(vec![input(a), input(old)], &options()).expect("merged");
    let schema = fleet
        .differences
        .iter()
        .find(|d| d.kind == DifferenceKind::Schema)
        .expect("the schema versions are stated");
    assert_eq!(schema.values[1].value, "1");
}

#[test]
fn skipped_hosts_are_kept_with_their_reasons() {
    let skip = |name: &str| {
        Input::Skipped(SkippedHost {
            name: name.to_owned(),
            reason: "unreachable".to_owned(),
        })
    };
    let fleet = merge(vec![input(host("a")), skip("d")], &options()).unwrap();
    assert_eq!(fleet.skipped_hosts.len(), 1);
    assert!(crate::fleet::render::markdown(&fleet).contains("- d: unreachable"));

    let err = merge(vec![input(host("a")), skip("a")], &options()).unwrap_err();
    assert!(
        matches!(err, MergeError::SkippedWithResults { .. }),
        "{err}"
    );
    let err = merge(vec![skip("d")], &options()).unwrap_err();
    assert!(err
        .to_string()
        .contains("no host has results; d was skipped: unreachable"));
}

#[test]
fn a_fleet_cut_short_or_naming_a_stranger_is_refused() {
    let json = three().to_json();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.json");
    std::fs::write(&cut, &json[..json.len() / 2]).unwrap();
    assert!(matches!(Document::read(&cut), Err(Error::Truncated { .. })));

    let mut fleet = three();
    fleet.figures[0].host = "z".to_owned();
    let err = Fleet::parse(&fleet.to_json(), Path::new("f.json")).unwrap_err();
    assert!(err.to_string().contains("names host \"z\""), "{err}");

    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["fleet_schema_version"] = 99.into();
    let err = Fleet::parse(&value.to_string(), Path::new("f.json")).unwrap_err();
    assert!(err.to_string().contains("newer than version 1"), "{err}");
}

#[test]
fn the_report_sets_hosts_side_by_side_and_teaches_what_differs() {
    let fleet = three();
    let md = crate::fleet::render::markdown(&fleet);
    assert!(md.starts_with("# vcbench fleet report: a, b, c\n"));
    assert!(md.contains("| a | AMD EPYC |"));
    assert!(md.contains("nested: hardware (kvm_intel) under KVMKVMKVM"));
    assert!(md.contains("KVM: the hosts differ in the KVM they offer"));
    assert!(md.contains("on b KVM is nested (the host is itself a VM)"));
    assert!(md.contains("on a, c KVM is software: it emulates"));
    assert!(
        md.contains("cgroups: the hosts differ in their cgroup layout (hybrid on a, c; v2 on b)")
    );
    assert!(md.contains("CPU: the hosts have different CPUs (AMD (AMD EPYC) on a, c; Intel"));
    // One host's figures, alike on every host: nothing differs beyond the runs' spread.
    assert!(md.contains("0 of "), "{md}");
    let startup = "| container | time_to_start |";
    let row = md
        .lines()
        .find(|l| l.starts_with(startup))
        .expect("a startup row");
    assert_eq!(row.matches(" ms [").count(), 3, "{row}");
    let html = crate::fleet::render::html(&fleet);
    assert!(html.contains("<svg") && html.contains("Ratio to native, per host"));
    assert!(!html.contains("<script"));
}
