//! Fuzz target `results_document`: the results reader and the reports built on it.
//!
//! `vcbench report` and `vcbench compare` read results documents that may come from
//! another machine or another version, edited or cut short. The input is made text
//! (lossy UTF-8) and read with [`Results::parse`]; a document it accepts is rendered
//! the way the reports are: the Markdown report, the HTML report (its charts as SVG) and
//! a comparison of the document with itself. The document written back as JSON must be
//! accepted again. PNG charts are left out: they are drawn to files, and slowly.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use reports::Results;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(doc) = Results::parse(&text, Path::new("results.json")) else {
        return;
    };
    let markdown = reports::markdown::render(&doc);
    assert!(markdown.starts_with("# vcbench report"));
    let _ = reports::html::render(&doc);
    let names = ["a".to_owned(), "b".to_owned()];
    let _ = reports::compare::markdown(&[doc.clone(), doc.clone()], &names);
    let json = doc.to_json();
    if let Err(e) = Results::parse(&json, Path::new("written.json")) {
        panic!("a document read is not read back once written: {e}\n{json}");
    }
});
