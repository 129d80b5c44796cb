//! The layout's rules, checked on the sources: in every crate of the workspace no two
//! files import each other; in `vcbench`, the backends never reach into the harness and
//! the leaf modules (floor among them) import no other module; and the sandboxes' crates
//! (`container`, `microvm`), the workload and the user's images (`userimage`) know nothing
//! of benchmarks, images or reports.
//!
//! A file "imports" a module when its code (not its comments, not its unit tests) names
//! it through `crate::` or `super::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace's root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is in the workspace")
        .to_owned()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The module path of `file` under `src` (`backend::qemu`; `lib`, `main` at the top).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without its comments and its unit tests.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths named after `prefix` in `code` (`crate::a::b` gives `a::b`).
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    code.match_indices(prefix)
        .filter(|(at, _)| {
            // Not the tail of a longer name (`vcrate::`).
            code[..*at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
        .map(|(at, _)| {
            let rest = &code[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            rest[..end].split("::").filter(|s| !s.is_empty()).collect()
        })
        .collect()
}

/// The longest module of `modules` that `path` (relative to `base`) names.
fn resolve(modules: &BTreeSet<String>, base: &[&str], path: &[&str]) -> Option<String> {
    (1..=path.len()).rev().find_map(|n| {
        let mut name: Vec<&str> = base.to_vec();
        name.extend(&path[..n]);
        let name = name.join("::");
        modules.contains(&name).then_some(name)
    })
}

/// Each module of the crate at `dir` with the modules it imports.
fn imports(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let src = dir.join("src");
    let files = sources(&src);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        let code = code(&std::fs::read_to_string(file).expect("read a source file"));
        let mut deps = BTreeSet::new();
        for path in paths_after(&code, "crate::") {
            deps.extend(resolve(&modules, &[], &path));
        }
        let parent: Vec<&str> = match module.rsplit_once("::") {
            Some((parent, _)) => parent.split("::").collect(),
            None => Vec::new(),
        };
        for path in paths_after(&code, "super::") {
            // The parent's own items are the parent module.
            let named = resolve(&modules, &parent, &path).or_else(|| {
                let parent = parent.join("::");
                modules.contains(&parent).then_some(parent)
            });
            deps.extend(named);
        }
        deps.remove(&module);
        graph.insert(module, deps);
    }
    graph
}

#[test]
fn no_two_files_import_each_other() {
    let mut cycles = Vec::new();
    for krate in [
        "bench",
        "container",
        "images",
        "microvm",
        "monotonic",
        "reports",
        "seccomp-search",
        "stats",
        "userimage",
        "workload",
    ] {
        let graph = imports(&workspace().join(krate));
        for (module, deps) in &graph {
            for dep in deps {
                if module < dep && graph.get(dep).is_some_and(|d| d.contains(module)) {
                    cycles.push(format!("{krate}: {module} <-> {dep}"));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "files that import each other: {cycles:?}"
    );
}

#[test]
fn backends_never_import_the_harness_and_leaves_import_nothing() {
    let graph = imports(&workspace().join("bench"));
    // What a backend may use besides other backend modules.
    let below_backends = ["clock", "procfs", "scenario", "host", "registry"];
    let leaves = [
        "clock", "procfs", "scenario", "host", "registry", "order", "floor",
    ];
    let mut wrong = Vec::new();
    for (module, deps) in &graph {
        for dep in deps {
            let allowed = if module == "backend" || module.starts_with("backend::") {
                dep == "backend"
                    || dep.starts_with("backend::")
                    || below_backends.contains(&dep.as_str())
            } else {
                !leaves.contains(&module.as_str())
            };
            if !allowed {
                wrong.push(format!("{module} imports {dep}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers: {wrong:?}");
    assert!(
        graph.contains_key("backend::protocol") && graph.contains_key("figures"),
        "the layout this test knows has changed: {:?}",
        graph.keys().collect::<Vec<_>>()
    );
}

#[test]
fn the_sandboxes_know_nothing_of_benchmarks() {
    for krate in [
        "container",
        "microvm",
        "workload",
        "stats",
        "images",
        "monotonic",
        "seccomp-search",
        "userimage",
    ] {
        let manifest = std::fs::read_to_string(workspace().join(krate).join("Cargo.toml"))
            .expect("read a manifest");
        let dependencies = manifest
            .split("[dependencies]")
            .nth(1)
            .map(|rest| rest.split("\n[").next().unwrap_or_default())
            .unwrap_or_default();
        for harness in ["vcbench", "reports", "images", "stats"] {
            if harness == krate {
                continue;
            }
            assert!(
                !dependencies
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{harness} "))
                        || l.trim_start().starts_with(&format!("{harness}."))),
                "{krate} depends on {harness}"
            );
        }
    }
}
