//! Opening images of every kind, and refusing bad ones without leaving anything behind.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use userimage::{open, Error, Source};

/// One entry of a test archive.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str),
}

/// A tar archive of `entries`, names written as given (even `..` or absolute ones).
fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match entry {
            E::Dir(n) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                (n, b"")
            }
            E::File(n, data, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                (n, data)
            }
            E::Symlink(n, target) | E::Hardlink(n, target) => {
                header.set_entry_type(if matches!(entry, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                header.set_mode(0o777);
                let link = &mut header.as_old_mut().linkname;
                link[..target.len()].copy_from_slice(target.as_bytes());
                (n, b"")
            }
            E::Char(n) => {
                header.set_entry_type(tar::EntryType::Char);
                header.set_mode(0o666);
                (n, b"")
            }
        };
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        out.append(&header, data).unwrap();
    }
    out.into_inner().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes a blob into the layout at `dir`; returns its descriptor JSON.
fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let hex = sha256(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(&hex), bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
}

/// An OCI image layout at `dir` with these layers (gzip) and a configuration.
fn layout(dir: &Path, layers: &[Vec<u8>]) -> serde_json::Value {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let layers: Vec<_> = layers
        .iter()
        .map(|l| blob(dir, "application/vnd.oci.image.layer.v1.tar+gzip", &gzip(l)))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/tool"], "Cmd": ["--serve"], "Env": ["A=1"],
                   "WorkingDir": "/srv", "User": "1000:1000"},
        "rootfs": {"type": "layers", "diff_ids": []}
    });
    let config = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": layers
    });
    let manifest = blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    );
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest.clone()]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    manifest
}

/// A tar of the directory `dir`'s contents (an oci-archive when `dir` is a layout).
fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    out.append_dir_all(".", dir).unwrap();
    out.into_inner().unwrap()
}

/// Asserts the cache holds nothing: no image and no unpack in progress.
fn assert_empty(cache: &Path) {
    let left: Vec<_> = std::fs::read_dir(cache)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the cache: {left:?}");
}

/// Opens `bytes` as an image file; returns the error's whole chain.
fn refuse(bytes: &[u8]) -> String {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("image.tar");
    std::fs::write(&input, bytes).unwrap();
    let cache = work.path().join("cache");
    let error = open(&input, &cache).expect_err("a bad image is refused");
    assert_empty(&cache);
    chain(&error)
}

fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn base() -> Vec<u8> {
    tar_of(&[
        E::Dir("./"),
        E::Dir("./bin/"),
        E::File("./bin/tool", b"#!/bin/sh\n", 0o755),
        E::Symlink("./bin/sh", "/bin/busybox"),
        E::Symlink("./bin/up", "../etc"),
        E::Hardlink("./bin/tool2", "./bin/tool"),
        E::Dir("./etc/"),
        E::File("./etc/gone", b"x", 0o644),
        E::Dir("./etc/opaque/"),
        E::File("./etc/opaque/old", b"x", 0o644),
        E::Dir("./ro/"),
        E::File("./ro/f", b"x", 0o444),
        E::Char("./dev/null"),
    ])
}

#[test]
fn a_directory_is_used_in_place() {
    let work = tempfile::tempdir().unwrap();
    let image = open(work.path(), &work.path().join("cache")).unwrap();
    assert_eq!(image.source, Source::Directory);
    assert_eq!(image.root, std::fs::canonicalize(work.path()).unwrap());
    assert!(image.digest.is_none());
}

#[test]
fn a_tarball_is_unpacked_once_by_digest() {
    let work = tempfile::tempdir().unwrap();
    let bytes = base();
    let input = work.path().join("rootfs.tar");
    std::fs::write(&input, &bytes).unwrap();
    let cache = work.path().join("cache");
    let image = open(&input, &cache).unwrap();
    assert_eq!(image.source, Source::Tarball);
    assert_eq!(image.root, cache.join(sha256(&bytes)).join("rootfs"));
    assert_eq!(image.digest, Some(format!("sha256:{}", sha256(&bytes))));
    assert!(!image.cached);
    let root = &image.root;
    assert_eq!(
        std::fs::read(root.join("bin/tool")).unwrap(),
        b"#!/bin/sh\n"
    );
    let mode = std::fs::metadata(root.join("bin/tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        std::fs::read(root.join("bin/tool2")).unwrap(),
        b"#!/bin/sh\n"
    );
    assert!(!root.join("dev/null").exists());
    assert_eq!(image.skipped.len(), 1);
    assert!(image.skipped[0].reason.contains("character device"));
    // Once: the second open finds it.
    let again = open(&input, &cache).unwrap();
    assert!(again.cached);
    assert_eq!(again.root, image.root);
    assert_eq!(again.skipped, image.skipped);
    assert!(userimage::stale(&cache).is_empty());
}

#[test]
fn compressed_tarballs_are_read() {
    let work = tempfile::tempdir().unwrap();
    let bytes = base();
    let zstd =
        ruzstd::encoding::compress_to_vec(&bytes[..], ruzstd::encoding::CompressionLevel::Fastest);
    for (name, data) in [("gz", gzip(&bytes)), ("zst", zstd)] {
        let input = work.path().join(format!("rootfs.tar.{name}"));
        std::fs::write(&input, &data).unwrap();
        let image = open(&input, &work.path().join("cache")).unwrap();
        assert!(image.root.join("bin/tool").is_file(), "{name}");
    }
}

#[test]
fn a_layout_applies_layers_in_order_with_whiteouts() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let upper = tar_of(&[
        E::File("etc/.wh.gone", b"", 0o644),
        E::Dir("etc/opaque/"),
        E::File("etc/opaque/.wh..wh..opq", b"", 0o644),
        E::File("etc/opaque/new", b"n", 0o644),
        E::File("bin/tool", b"v2", 0o755),
    ]);
    let manifest = layout(&dir, &[base(), upper]);
    let cache = work.path().join("cache");
    let image = open(&dir, &cache).unwrap();
    assert_eq!(image.source, Source::Layout);
    assert_eq!(image.digest.as_deref(), manifest["digest"].as_str());
    let root = &image.root;
    assert!(!root.join("etc/gone").exists());
    assert!(!root.join("etc/opaque/old").exists());
    assert!(root.join("etc/opaque/new").is_file());
    assert!(!root.join("etc/opaque/.wh..wh..opq").exists());
    assert_eq!(std::fs::read(root.join("bin/tool")).unwrap(), b"v2");
    // The hard link made by the first layer keeps the first layer's bytes.
    assert_eq!(
        std::fs::read(root.join("bin/tool2")).unwrap(),
        b"#!/bin/sh\n"
    );
    let config = &image.config;
    assert_eq!(config.entrypoint, ["/bin/tool"]);
    assert_eq!(config.cmd, ["--serve"]);
    assert_eq!(config.env, ["A=1"]);
    assert_eq!(config.working_dir.as_deref(), Some("/srv"));
    assert_eq!(config.user.as_deref(), Some("1000:1000"));
    assert!(open(&dir, &cache).unwrap().cached);
}

#[test]
fn an_oci_archive_is_a_layout_in_a_tarball() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    layout(&dir, &[base()]);
    let archive = tar_dir(&dir);
    let input = work.path().join("image.oci.tar");
    std::fs::write(&input, &archive).unwrap();
    let cache = work.path().join("cache");
    let image = open(&input, &cache).unwrap();
    assert_eq!(image.source, Source::OciArchive);
    assert!(image.root.join("bin/tool").is_file());
    assert!(!image.root.join("oci-layout").exists());
    assert_eq!(image.config.cmd, ["--serve"]);
    let left: Vec<_> = std::fs::read_dir(image.root.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn bad_entries_are_refused_by_name() {
    let cases: [(Vec<E<'_>>, &str); 7] = [
        (
            vec![E::File("../evil", b"x", 0o644)],
            "entry '../evil' contains '..'",
        ),
        (vec![E::File("a/../../evil", b"x", 0o644)], "contains '..'"),
        (
            vec![E::File("/etc/evil", b"x", 0o644)],
            "entry '/etc/evil' has an absolute path",
        ),
        (
            vec![E::Symlink("up", "../../etc/passwd")],
            "symbolic link 'up' points out of the root",
        ),
        (
            vec![E::Dir("a/"), E::Symlink("a/up", "../../x")],
            "points out of the root",
        ),
        (
            vec![E::Hardlink("h", "../../etc/passwd")],
            "hard link 'h' points at '../../etc/passwd'",
        ),
        (
            vec![E::Symlink("out", "/tmp"), E::File("out/evil", b"x", 0o644)],
            "entry 'out/evil' would be written through the symbolic link 'out'",
        ),
    ];
    for (entries, message) in cases {
        let text = refuse(&tar_of(&entries));
        assert!(text.contains(message), "{text}");
        assert!(text.contains("image.tar"), "{text}");
    }
}

#[test]
fn nothing_is_written_through_a_link_out_of_the_root() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().trim_start_matches('/');
    let depth = "../".repeat(20);
    let link = format!("{depth}{target}");
    // A relative link that climbs out is refused; an absolute one is kept but never written
    // through.
    refuse(&tar_of(&[
        E::Symlink("l", &link),
        E::File("l/evil", b"x", 0o644),
    ]));
    let absolute = outside.path().to_str().unwrap().to_owned();
    refuse(&tar_of(&[
        E::Symlink("l", &absolute),
        E::File("l/evil", b"x", 0o644),
    ]));
    refuse(&tar_of(&[
        E::Symlink("l", &absolute),
        E::Hardlink("h", "l/x"),
    ]));
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn damaged_files_are_refused() {
    let good = base();
    // Cut in the middle of a file's data, and exactly after a header-aligned entry.
    let text = refuse(&good[..1024 + 700]);
    assert!(
        text.contains("not a usable root file system tarball"),
        "{text}"
    );
    let text = refuse(&good[..good.len() - 1024 * 2 - 512 * 3]);
    assert!(
        text.contains("truncated") || text.contains("not a readable tar"),
        "{text}"
    );
    let text = refuse(&good[..good.len() - 1024]);
    assert!(text.contains("truncated"), "{text}");
    let text = refuse(b"");
    assert!(text.contains("truncated"), "{text}");
    let mut random = vec![0u8; 4096];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in &mut random {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let text = refuse(&random);
    assert!(text.contains("not a readable tar archive"), "{text}");
    let gz = gzip(&good);
    let text = refuse(&gz[..gz.len() / 2]);
    assert!(text.contains("image.tar"), "{text}");
}

#[test]
fn a_layout_with_a_missing_or_wrong_blob_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let manifest = layout(&dir, &[base()]);
    let cache = work.path().join("cache");
    let manifest_hex = manifest["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest_path = dir.join("blobs/sha256").join(manifest_hex);
    let manifest_bytes = std::fs::read(&manifest_path).unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let layer_hex = parsed["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let layer_path = dir.join("blobs/sha256").join(&layer_hex);
    let layer = std::fs::read(&layer_path).unwrap();

    // A layer whose bytes are not the ones named.
    let mut wrong = layer.clone();
    let last = wrong.len() - 1;
    wrong[last] ^= 0xff;
    std::fs::write(&layer_path, &wrong).unwrap();
    let text = chain(&open(&dir, &cache).unwrap_err());
    assert!(text.contains("does not match its descriptor"), "{text}");
    assert!(text.contains(&layer_hex), "{text}");
    assert_empty(&cache);

    std::fs::remove_file(&layer_path).unwrap();
    let text = chain(&open(&dir, &cache).unwrap_err());
    assert!(
        text.contains(&format!("blob sha256:{layer_hex} is missing")),
        "{text}"
    );
    assert_empty(&cache);
    std::fs::write(&layer_path, &layer).unwrap();

    // A manifest changed after it was named.
    std::fs::write(&manifest_path, [&manifest_bytes[..], b" "].concat()).unwrap();
    let text = chain(&open(&dir, &cache).unwrap_err());
    assert!(text.contains("does not match its descriptor"), "{text}");
    assert_empty(&cache);

    // A digest that would name a file outside the blobs.
    let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../../etc/passwd","size":1}]}"#;
    std::fs::write(dir.join("index.json"), index).unwrap();
    let text = chain(&open(&dir, &cache).unwrap_err());
    assert!(text.contains("not a usable OCI image layout"), "{text}");
    assert_empty(&cache);
}

#[test]
fn an_unpack_left_by_a_gone_process_is_stale_and_a_live_one_is_not() {
    let cache = tempfile::tempdir().unwrap();
    let gone = cache.path().join(".unpack-999999999-abc");
    let live = cache
        .path()
        .join(format!(".unpack-{}-def", std::process::id()));
    std::fs::create_dir(&gone).unwrap();
    std::fs::create_dir(&live).unwrap();
    std::fs::create_dir(cache.path().join("0123")).unwrap();
    assert_eq!(userimage::stale(cache.path()), vec![gone]);
}

#[test]
fn a_docker_save_archive_is_named_with_what_to_give_instead() {
    let manifest = br#"[{"Config":"abc.json","RepoTags":["x:latest"],"Layers":["abc/layer.tar"]}]"#;
    let text = refuse(&tar_of(&[
        E::File("manifest.json", manifest, 0o644),
        E::Dir("abc/"),
        E::File("abc/layer.tar", b"", 0o644),
    ]));
    assert!(text.contains("is a docker-archive (docker save)"), "{text}");
    assert!(text.contains("oci-archive"), "{text}");
}

#[test]
fn a_missing_image_names_itself() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("nope.tar");
    let text = chain(&open(&missing, &work.path().join("cache")).unwrap_err());
    assert!(text.contains("nope.tar"), "{text}");
}

/// A layout at `dir` holding one image per tag, each of one layer holding `tag.txt` with
/// the tag's name (an image index as `umoci` or `skopeo` write with several tags).
fn tagged_layout(dir: &Path, tags: &[&str]) {
    let manifests: Vec<serde_json::Value> = tags
        .iter()
        .map(|tag| {
            let layer = tar_of(&[E::File("tag.txt", tag.as_bytes(), 0o644)]);
            let mut manifest = layout(dir, &[layer]);
            manifest["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
            manifest
        })
        .collect();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

#[test]
fn a_tag_chooses_one_image_of_a_layout_and_no_tag_lists_them() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    tagged_layout(&dir, &["one", "two:latest"]);
    let cache = work.path().join("cache");
    let with = |tag: &str| {
        let mut text = dir.as_os_str().to_owned();
        text.push(format!(":{tag}"));
        std::path::PathBuf::from(text)
    };
    for tag in ["one", "two:latest"] {
        // `PATH:TAG`, and the path and the tag given apart.
        for image in [
            open(&with(tag), &cache).unwrap(),
            userimage::open_tagged(&dir, Some(tag), &cache).unwrap(),
        ] {
            assert_eq!(
                std::fs::read(image.root.join("tag.txt")).unwrap(),
                tag.as_bytes()
            );
            assert_eq!(image.tag.as_deref(), Some(tag));
        }
    }
    assert_eq!(
        userimage::reference(&with("two:latest")),
        (dir.clone(), Some("two:latest".to_owned()))
    );
    // Several images and none chosen: refused, naming the tags and how to choose.
    let text = chain(&open(&dir, &cache).unwrap_err());
    assert!(text.contains("holds 2 images (one, two:latest)"), "{text}");
    assert!(text.contains("--image PATH:TAG"), "{text}");
    // A tag the layout does not have: refused, listing the ones it has.
    let text = chain(&open(&with("three"), &cache).unwrap_err());
    assert!(
        text.contains("no image tagged \"three\"; its tags: one, two:latest"),
        "{text}"
    );
    // An oci-archive of the layout: each tag cached apart.
    let input = work.path().join("image.oci.tar");
    std::fs::write(&input, tar_dir(&dir)).unwrap();
    let mut archive = input.as_os_str().to_owned();
    archive.push(":one");
    let one = open(std::path::Path::new(&archive), &cache).unwrap();
    assert_eq!(one.source, Source::OciArchive);
    assert_eq!(std::fs::read(one.root.join("tag.txt")).unwrap(), b"one");
    let two = userimage::open_tagged(&input, Some("two:latest"), &cache).unwrap();
    assert_eq!(
        std::fs::read(two.root.join("tag.txt")).unwrap(),
        b"two:latest"
    );
    assert_ne!(one.root, two.root);
    let text = chain(&open(&input, &cache).unwrap_err());
    assert!(text.contains("holds 2 images"), "{text}");
    assert!(userimage::stale(&cache).is_empty());
}

#[test]
fn a_tag_for_a_root_file_system_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("rootfs.tar");
    std::fs::write(&input, base()).unwrap();
    let cache = work.path().join("cache");
    let text = chain(&userimage::open_tagged(&input, Some("latest"), &cache).unwrap_err());
    assert!(
        text.contains("is a root file system tarball, which has no tags: leave out :latest"),
        "{text}"
    );
    assert_empty(&cache);
    let text = chain(&userimage::open_tagged(work.path(), Some("v1"), &cache).unwrap_err());
    assert!(text.contains("root file system directory"), "{text}");
    // A path that does not exist, colon or not, names itself.
    let missing = work.path().join("nope:latest");
    let text = chain(&open(&missing, &cache).unwrap_err());
    assert!(text.contains("nope:latest"), "{text}");
}
