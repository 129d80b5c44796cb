//! OCI image layouts: `oci-layout`, `index.json` and `blobs/<alg>/<hex>`. The index leads
//! to one image manifest, the manifest to the configuration and the layers, and every blob
//! read is checked against its digest and size.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use crate::compression;
use crate::config::Config;
use crate::digest::{self, Digest, HashingReader};
use crate::layer::{self, Tree};

/// The largest JSON blob (index, manifest, configuration) read.
const MAX_JSON: u64 = 16 << 20;

/// Errors while reading a layout.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the layout could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A JSON document of the layout is malformed.
    #[error("{what} is not valid: {reason}")]
    Json {
        /// Which document.
        what: String,
        /// Why.
        reason: String,
    },
    /// A descriptor's digest is malformed.
    #[error(transparent)]
    Digest(#[from] digest::Error),
    /// A blob named by a descriptor is missing.
    #[error("blob {digest} is missing ({path})")]
    MissingBlob {
        /// The blob.
        digest: String,
        /// Where it should be.
        path: PathBuf,
    },
    /// A blob's contents do not match its digest or size.
    #[error("blob {expected} does not match its descriptor: read {actual}, {bytes} bytes (descriptor: {size} bytes)")]
    Mismatch {
        /// The digest the descriptor names.
        expected: String,
        /// The digest of the bytes.
        actual: String,
        /// The bytes read.
        bytes: u64,
        /// The size the descriptor names.
        size: u64,
    },
    /// A JSON blob is larger than this crate reads.
    #[error("blob {digest} is {size} bytes, more than a {what} can be")]
    TooLarge {
        /// The blob.
        digest: String,
        /// Its size.
        size: u64,
        /// What it should be.
        what: &'static str,
    },
    /// The index names no image for this machine.
    #[error("the layout holds no image manifest for linux/{arch}")]
    NoImage {
        /// This machine's architecture.
        arch: &'static str,
    },
    /// The index names several images and none was chosen.
    #[error(
        "the layout holds {} images ({}); choose one by its tag: --image PATH:TAG",
        .0.len(),
        .0.join(", ")
    )]
    ManyImages(Vec<String>),
    /// No image of the index has the tag asked for.
    #[error("the layout has no image tagged {tag:?}; its tags: {}", list(.tags))]
    NoTag {
        /// The tag asked for.
        tag: String,
        /// The tags it has.
        tags: Vec<String>,
    },
    /// A descriptor has a media type this crate does not read there.
    #[error("{what} has media type {media_type}")]
    MediaType {
        /// Which descriptor.
        what: String,
        /// Its type.
        media_type: String,
    },
    /// A layer could not be opened.
    #[error("layer {digest}")]
    Compression {
        /// The layer.
        digest: String,
        /// Why.
        #[source]
        source: compression::Error,
    },
    /// A layer could not be applied.
    #[error("layer {digest}")]
    Layer {
        /// The layer.
        digest: String,
        /// Why.
        #[source]
        source: layer::Error,
    },
}

/// Whether `dir` is an OCI image layout (it has an `oci-layout` file).
pub fn is_layout(dir: &Path) -> bool {
    dir.join("oci-layout").is_file()
}

/// One image of a layout: its manifest's digest, the manifest and its configuration.
pub struct Image {
    /// The manifest's digest: the image's identity.
    pub digest: Digest,
    /// The manifest.
    manifest: ImageManifest,
    /// The image's configuration.
    pub config: Config,
}

/// The annotation of an index's descriptor that names its tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Reads the layout at `dir` down to one image's manifest and configuration: the one
/// tagged `tag` (its descriptor's [`REF_NAME`] annotation), or, with no tag, the only one
/// for this machine.
pub fn image(dir: &Path, tag: Option<&str>) -> Result<Image, Error> {
    let index_path = dir.join("index.json");
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Read { path, source }
    };
    let layout_path = dir.join("oci-layout");
    let layout = std::fs::read(&layout_path).map_err(read_error(&layout_path))?;
    let layout: serde_json::Value = serde_json::from_slice(&layout).map_err(|e| Error::Json {
        what: layout_path.display().to_string(),
        reason: e.to_string(),
    })?;
    if layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(Error::Json {
            what: layout_path.display().to_string(),
            reason: "no imageLayoutVersion".into(),
        });
    }
    let index = std::fs::read(&index_path).map_err(read_error(&index_path))?;
    let index = parse_index(&index, &index_path.display().to_string())?;
    let descriptor = match tag {
        Some(tag) => tagged(dir, &index, tag)?,
        None => choose(dir, &index, 0)?,
    };
    let digest = Digest::parse(descriptor.digest().as_ref())?;
    let bytes = read_json_blob(dir, &descriptor, "manifest")?;
    let manifest = ImageManifest::from_reader(&bytes[..]).map_err(|e| Error::Json {
        what: format!("manifest {digest}"),
        reason: e.to_string(),
    })?;
    let config_descriptor = manifest.config();
    if *config_descriptor.media_type() != MediaType::ImageConfig {
        return Err(Error::MediaType {
            what: "the manifest's config".into(),
            media_type: config_descriptor.media_type().to_string(),
        });
    }
    let bytes = read_json_blob(dir, config_descriptor, "configuration")?;
    let configuration = ImageConfiguration::from_reader(&bytes[..]).map_err(|e| Error::Json {
        what: format!("configuration {}", config_descriptor.digest()),
        reason: e.to_string(),
    })?;
    Ok(Image {
        digest,
        manifest,
        config: Config::from_oci(&configuration),
    })
}

/// Applies the image's layers, in order, to `tree`, checking each against its digest.
pub fn apply(dir: &Path, image: &Image, tree: &mut Tree) -> Result<(), Error> {
    for descriptor in image.manifest.layers() {
        let digest = Digest::parse(descriptor.digest().as_ref())?;
        match descriptor.media_type() {
            MediaType::ImageLayer
            | MediaType::ImageLayerGzip
            | MediaType::ImageLayerZstd
            | MediaType::ImageLayerNonDistributable
            | MediaType::ImageLayerNonDistributableGzip
            | MediaType::ImageLayerNonDistributableZstd => {}
            MediaType::Other(t) if t.starts_with("application/vnd.docker.image.rootfs.") => {}
            other => {
                return Err(Error::MediaType {
                    what: format!("layer {digest}"),
                    media_type: other.to_string(),
                })
            }
        }
        let path = blob_path(dir, &digest);
        let file = open_blob(&path, &digest)?;
        let mut reader = HashingReader::new(BufReader::new(file), digest.algorithm);
        {
            let stream =
                compression::decompress(BufReader::new(&mut reader)).map_err(|source| {
                    Error::Compression {
                        digest: digest.to_string(),
                        source,
                    }
                })?;
            let applied = tree.apply(stream, true);
            // A damaged layer is reported as a mismatch when its bytes are not the named ones.
            if let Err(source) = applied {
                let (actual, bytes) = reader.finish().map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?;
                check(&digest, descriptor.size(), &actual, bytes)?;
                return Err(Error::Layer {
                    digest: digest.to_string(),
                    source,
                });
            }
        }
        let (actual, bytes) = reader.finish().map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        check(&digest, descriptor.size(), &actual, bytes)?;
    }
    Ok(())
}

/// Parses an index document.
fn parse_index(bytes: &[u8], what: &str) -> Result<ImageIndex, Error> {
    ImageIndex::from_reader(bytes).map_err(|e| Error::Json {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

/// The tags of an index's descriptors, in order, each once.
pub fn tags(index: &ImageIndex) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in index.manifests().iter().filter_map(ref_name) {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags
}

/// A descriptor's tag.
fn ref_name(descriptor: &Descriptor) -> Option<String> {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME).cloned())
}

/// Tags in words: `a, b`, or `none`.
fn list(tags: &[String]) -> String {
    match tags {
        [] => "none".to_owned(),
        tags => tags.join(", "),
    }
}

/// The image manifest tagged `tag` for this machine: among the index's descriptors with
/// that tag (an image, or an index of images for several platforms), the one for this
/// machine.
fn tagged(dir: &Path, index: &ImageIndex, tag: &str) -> Result<Descriptor, Error> {
    let mut chosen = index.clone();
    chosen.set_manifests(
        index
            .manifests()
            .iter()
            .filter(|d| ref_name(d).as_deref() == Some(tag))
            .cloned()
            .collect(),
    );
    if chosen.manifests().is_empty() {
        return Err(Error::NoTag {
            tag: tag.to_owned(),
            tags: tags(index),
        });
    }
    choose(dir, &chosen, 0)
}

/// The one image manifest an index names for this machine, following nested indexes.
fn choose(dir: &Path, index: &ImageIndex, depth: u32) -> Result<Descriptor, Error> {
    let arch = std::env::consts::ARCH;
    let oci_arch = match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut found = Vec::new();
    for descriptor in index.manifests() {
        if let Some(platform) = descriptor.platform() {
            if platform.os().to_string() != "linux"
                || platform.architecture().to_string() != oci_arch
            {
                continue;
            }
        }
        match descriptor.media_type() {
            MediaType::ImageManifest => found.push(descriptor.clone()),
            MediaType::ImageIndex if depth < 4 => {
                let digest = Digest::parse(descriptor.digest().as_ref())?;
                let bytes = read_json_blob(dir, descriptor, "index")?;
                let nested = parse_index(&bytes, &format!("index {digest}"))?;
                found.push(choose(dir, &nested, depth + 1)?);
            }
            MediaType::Other(t) if t == "application/vnd.docker.distribution.manifest.v2+json" => {
                found.push(descriptor.clone())
            }
            _ => {}
        }
    }
    match found.len() {
        0 => Err(Error::NoImage { arch: oci_arch }),
        1 => Ok(found.remove(0)),
        _ => Err(Error::ManyImages(
            found
                .iter()
                .map(|d| ref_name(d).unwrap_or_else(|| d.digest().to_string()))
                .collect(),
        )),
    }
}

/// Where a blob lives.
fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm.name())
        .join(&digest.hex)
}

/// Opens a blob, or says it is missing.
fn open_blob(path: &Path, digest: &Digest) -> Result<std::fs::File, Error> {
    std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::MissingBlob {
                digest: digest.to_string(),
                path: path.to_owned(),
            }
        } else {
            Error::Read {
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// A small blob's bytes, checked against its descriptor.
fn read_json_blob(
    dir: &Path,
    descriptor: &Descriptor,
    what: &'static str,
) -> Result<Vec<u8>, Error> {
    let digest = Digest::parse(descriptor.digest().as_ref())?;
    if descriptor.size() > MAX_JSON {
        return Err(Error::TooLarge {
            digest: digest.to_string(),
            size: descriptor.size(),
            what,
        });
    }
    let path = blob_path(dir, &digest);
    let file = open_blob(&path, &digest)?;
    let mut reader = HashingReader::new(file.take(MAX_JSON + 1), digest.algorithm);
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
    let (actual, n) = reader
        .finish()
        .map_err(|source| Error::Read { path, source })?;
    check(&digest, descriptor.size(), &actual, n)?;
    Ok(bytes)
}

/// Checks what was read against the descriptor.
fn check(expected: &Digest, size: u64, actual: &Digest, bytes: u64) -> Result<(), Error> {
    if expected != actual || size != bytes {
        return Err(Error::Mismatch {
            expected: expected.to_string(),
            actual: actual.to_string(),
            bytes,
            size,
        });
    }
    Ok(())
}
