//! Unpacking an image into the cache: `<cache>/<hex digest>/rootfs` beside
//! `<cache>/<hex digest>/image.json` (the configuration and what was left out), made in a
//! `.unpack-*` directory beside it and renamed into place when complete.

use std::ffi::OsStr;
use std::io::BufReader;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::compression;
use crate::config::Config;
use crate::digest;
use crate::layer::{self, Skipped, Tree};
use crate::layout;

/// The prefix of an unpack in progress in the cache.
const STAGING: &str = ".unpack-";
/// The description beside an unpacked root.
const DESCRIPTION: &str = "image.json";

/// Errors while opening an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image could not be read.
    #[error("cannot read the image {path}")]
    Read {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The image is neither a directory nor a regular file.
    #[error("the image {0} is neither a directory nor a file")]
    Kind(PathBuf),
    /// The cache could not be written.
    #[error("cannot write the image cache {path}")]
    Cache {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The image file's compression could not be read.
    #[error("the image {path}")]
    Compression {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: compression::Error,
    },
    /// The image file is not a usable tar archive.
    #[error("the image {path} is not a usable root file system tarball or oci-archive")]
    Tarball {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: layer::Error,
    },
    /// The OCI image layout (or the layout in an archive) is not usable.
    #[error("the image {path} is not a usable OCI image layout")]
    Layout {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: layout::Error,
    },
    /// The image file is a `docker save` archive, which is not read.
    #[error(
        "the image {0} is a docker-archive (docker save); give a root file system tarball \
         (docker export) or an oci-archive (skopeo copy docker-archive:FILE oci-archive:NEW)"
    )]
    DockerArchive(PathBuf),
    /// A tag was given for an image that has none (a root file system).
    #[error("the image {path} is a root file system {kind}, which has no tags: leave out :{tag}")]
    Untagged {
        /// The image.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
        /// The tag given.
        tag: String,
    },
    /// A cached description is damaged.
    #[error("the cached image description {0} is damaged (remove its directory)")]
    Description(PathBuf),
}

/// What kind of input an image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A root file system directory, used in place.
    Directory,
    /// A tarball of a root file system.
    Tarball,
    /// An OCI image layout directory.
    Layout,
    /// A tarball of an OCI image layout.
    OciArchive,
}

impl Source {
    /// Its name (`oci-archive`).
    pub fn name(self) -> &'static str {
        match self {
            Source::Directory => "directory",
            Source::Tarball => "tarball",
            Source::Layout => "oci-layout",
            Source::OciArchive => "oci-archive",
        }
    }
}

/// An image ready to run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Image {
    /// The root file system.
    pub root: PathBuf,
    /// What it came from.
    pub source: Source,
    /// The identity: `sha256:<hex>` of the tarball, or the OCI manifest's digest; none for
    /// a directory used in place.
    pub digest: Option<String>,
    /// The tag chosen in an OCI image layout or archive (`--image PATH:TAG`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// How the image asks to be run.
    pub config: Config,
    /// Entries left out while unpacking, with why.
    pub skipped: Vec<Skipped>,
    /// Whether the unpacked root was already in the cache.
    #[serde(skip)]
    pub cached: bool,
}

/// Opens the image at `input`, unpacking it into `cache` unless it is there already (or is
/// a root file system directory, used in place). `input` may name one image of an OCI
/// layout or archive by its tag, as `PATH:TAG` (see [`reference`]).
pub fn open(input: &Path, cache: &Path) -> Result<Image, Error> {
    let (path, tag) = reference(input);
    open_tagged(&path, tag.as_deref(), cache)
}

/// An image reference split into its path and tag: `input` itself when it exists; else
/// `PATH:TAG` at the first colon whose left side exists (a tag may hold colons of its
/// own, `busybox:latest`); else `input` as it is, with no tag.
pub fn reference(input: &Path) -> (PathBuf, Option<String>) {
    let bytes = input.as_os_str().as_bytes();
    if std::fs::symlink_metadata(input).is_ok() {
        return (input.to_owned(), None);
    }
    for (at, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b':') {
        let path = Path::new(OsStr::from_bytes(&bytes[..at]));
        let tag = &bytes[at + 1..];
        if at > 0 && !tag.is_empty() && std::fs::metadata(path).is_ok() {
            return (
                path.to_owned(),
                Some(String::from_utf8_lossy(tag).into_owned()),
            );
        }
    }
    (input.to_owned(), None)
}

/// Opens the image at `input` as [`open`] does, choosing the image tagged `tag` in an OCI
/// layout or archive.
pub fn open_tagged(input: &Path, tag: Option<&str>, cache: &Path) -> Result<Image, Error> {
    let untagged = |kind: &'static str| match tag {
        Some(tag) => Err(Error::Untagged {
            path: input.to_owned(),
            kind,
            tag: tag.to_owned(),
        }),
        None => Ok(()),
    };
    let read_error = |source| Error::Read {
        path: input.to_owned(),
        source,
    };
    let meta = std::fs::metadata(input).map_err(read_error)?;
    if meta.is_dir() {
        if !layout::is_layout(input) {
            untagged("directory")?;
            return Ok(Image {
                root: std::fs::canonicalize(input).map_err(read_error)?,
                source: Source::Directory,
                digest: None,
                tag: None,
                config: Config::default(),
                skipped: Vec::new(),
                cached: true,
            });
        }
        let layout_error = |source| Error::Layout {
            path: input.to_owned(),
            source,
        };
        let image = layout::image(input, tag).map_err(layout_error)?;
        let digest = image.digest.to_string();
        return cached_or(cache, &image.digest.hex, |staging| {
            let root = staging.join("rootfs");
            make_dir(&root, cache)?;
            let mut tree = Tree::new(&root);
            layout::apply(input, &image, &mut tree).map_err(layout_error)?;
            let skipped = tree.finish().map_err(|source| Error::Tarball {
                path: input.to_owned(),
                source,
            })?;
            Ok(Image {
                root,
                source: Source::Layout,
                digest: Some(digest),
                tag: tag.map(str::to_owned),
                config: image.config.clone(),
                skipped,
                cached: false,
            })
        });
    }
    if !meta.is_file() {
        return Err(Error::Kind(input.to_owned()));
    }
    let digest = digest::sha256_file(input).map_err(read_error)?;
    // One archive holds an image per tag: each is cached apart.
    let key = match tag {
        Some(tag) => {
            use sha2::Digest as _;
            let mut hasher = sha2::Sha256::new();
            hasher.update(format!("{digest}\0{tag}"));
            hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
        None => digest.hex.clone(),
    };
    cached_or(cache, &key, |staging| {
        let root = staging.join("rootfs");
        make_dir(&root, cache)?;
        let file = std::fs::File::open(input).map_err(read_error)?;
        let stream =
            compression::decompress(BufReader::new(file)).map_err(|source| Error::Compression {
                path: input.to_owned(),
                source,
            })?;
        let tarball_error = |source| Error::Tarball {
            path: input.to_owned(),
            source,
        };
        let mut tree = Tree::new(&root);
        tree.apply(stream, false).map_err(tarball_error)?;
        let skipped = tree.finish().map_err(tarball_error)?;
        if is_docker_archive(&root) {
            return Err(Error::DockerArchive(input.to_owned()));
        }
        if !layout::is_layout(&root) {
            untagged("tarball")?;
            return Ok(Image {
                root,
                source: Source::Tarball,
                digest: Some(digest.to_string()),
                tag: None,
                config: Config::default(),
                skipped,
                cached: false,
            });
        }
        // An oci-archive: what was extracted is a layout, to be unpacked in turn.
        let extracted = staging.join("layout");
        std::fs::rename(&root, &extracted).map_err(|source| Error::Cache {
            path: extracted.clone(),
            source,
        })?;
        let layout_error = |source| Error::Layout {
            path: input.to_owned(),
            source,
        };
        let image = layout::image(&extracted, tag).map_err(layout_error)?;
        make_dir(&root, cache)?;
        let mut tree = Tree::new(&root);
        layout::apply(&extracted, &image, &mut tree).map_err(layout_error)?;
        let skipped = tree.finish().map_err(tarball_error)?;
        std::fs::remove_dir_all(&extracted).map_err(|source| Error::Cache {
            path: extracted.clone(),
            source,
        })?;
        Ok(Image {
            root,
            source: Source::OciArchive,
            digest: Some(digest.to_string()),
            tag: tag.map(str::to_owned),
            config: image.config,
            skipped,
            cached: false,
        })
    })
}

/// Whether an extracted tarball is a `docker save` archive: a top-level `manifest.json`
/// listing images by their `Config` and `Layers`, and no OCI layout.
fn is_docker_archive(root: &Path) -> bool {
    let Ok(text) = std::fs::read(root.join("manifest.json")) else {
        return false;
    };
    let Ok(serde_json::Value::Array(images)) = serde_json::from_slice(&text) else {
        return false;
    };
    !images.is_empty()
        && images
            .iter()
            .all(|i| i.get("Config").is_some() && i.get("Layers").is_some())
}

/// Unpacks with `unpack` into a staging directory and renames it to `<cache>/<key>`,
/// unless that is there already.
fn cached_or(
    cache: &Path,
    key: &str,
    unpack: impl FnOnce(&Path) -> Result<Image, Error>,
) -> Result<Image, Error> {
    let target = cache.join(key);
    if let Some(image) = read_cached(&target)? {
        return Ok(image);
    }
    let cache_error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Cache { path, source }
    };
    std::fs::create_dir_all(cache).map_err(cache_error(cache))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!("{STAGING}{}-", std::process::id()))
        .tempdir_in(cache)
        .map_err(cache_error(cache))?;
    std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(cache_error(staging.path()))?;
    let mut image = unpack(staging.path())?;
    let description = staging.path().join(DESCRIPTION);
    let text = serde_json::to_vec_pretty(&image).map_err(|e| Error::Cache {
        path: description.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&description, text).map_err(cache_error(&description))?;
    match std::fs::rename(staging.path(), &target) {
        Ok(()) => {}
        // Another unpack of the same image finished first: use it (staging goes on drop).
        Err(_) if target.join(DESCRIPTION).is_file() => {}
        Err(source) => return Err(cache_error(&target)(source)),
    }
    image.root = target.join("rootfs");
    Ok(image)
}

/// The image unpacked at `dir`, if it is there.
fn read_cached(dir: &Path) -> Result<Option<Image>, Error> {
    let description = dir.join(DESCRIPTION);
    let Ok(text) = std::fs::read(&description) else {
        return Ok(None);
    };
    let mut image: Image =
        serde_json::from_slice(&text).map_err(|_| Error::Description(description.clone()))?;
    image.root = dir.join("rootfs");
    if !image.root.is_dir() {
        return Err(Error::Description(description));
    }
    image.cached = true;
    Ok(Some(image))
}

/// Makes a directory readable by everyone (so user-namespaced sandboxes reach it).
fn make_dir(path: &Path, cache: &Path) -> Result<(), Error> {
    let cache_error = |source| Error::Cache {
        path: cache.to_owned(),
        source,
    };
    std::fs::create_dir(path).map_err(cache_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(cache_error)
}

/// Unpacks a killed process left behind in `cache`: the `.unpack-<pid>-*` directories
/// whose process is gone, for a cleaner to remove (an unpack in progress is not one).
pub fn stale(cache: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let owner = name
                .strip_prefix(STAGING)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<libc::pid_t>().ok());
            owner.is_some_and(|pid| !alive(pid))
        })
        .map(|e| e.path())
        .collect()
}

/// Whether process `pid` exists.
fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
