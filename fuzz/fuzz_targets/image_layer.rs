//! Fuzz target `image_layer`: one layer of a user's image, as `userimage` unpacks it.
//!
//! A user's image is untrusted: its tar entries may name paths out of the root, link out
//! of it, or be cut short. The input is opened as `userimage` opens a layer (gzip and zstd
//! told apart by their magic) and applied with whiteouts on to an empty root beside an
//! empty directory; whatever the input, the unpacker returns (an error or success, never a
//! panic), and the directory beside the root stays empty: nothing is written outside it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use userimage::compression::decompress;
use userimage::layer::Tree;

fuzz_target!(|data: &[u8]| {
    let work = tempfile::tempdir().expect("a temporary directory");
    let root = work.path().join("root");
    let beside = work.path().join("beside");
    std::fs::create_dir(&root).expect("the root");
    std::fs::create_dir(&beside).expect("the directory beside it");
    if let Ok(stream) = decompress(data) {
        let mut tree = Tree::new(&root);
        if tree.apply(stream, true).is_ok() {
            let _ = tree.finish();
        }
    }
    let outside: Vec<_> = std::fs::read_dir(&beside)
        .expect("read the directory beside the root")
        .collect();
    assert!(outside.is_empty(), "written outside the root: {outside:?}");
    let around: Vec<_> = std::fs::read_dir(work.path())
        .expect("read the work directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(around.len(), 2, "written beside the root: {around:?}");
});
