//! A user's image, made ready to run: a root file system directory used in place, or a
//! tarball of one (plain, gzip or zstd, as `mmdebstrap` or `docker export` write), an OCI
//! image layout, or an `oci-archive` tarball of one (as `skopeo`, `umoci` or
//! `podman save --format oci-archive` write), unpacked once into a cache by digest.
//!
//! [`open`] returns the unpacked root and the image's [`Config`]. An unpack happens in a
//! temporary directory beside its place in the cache and is renamed into place only once
//! complete, so the cache never holds half an image; every entry is checked before it is
//! written ([`layer`]), so nothing is written outside the cache.
//!
//! This crate knows nothing of benchmarks: it is given its cache directory.

pub mod compression;
pub mod config;
pub mod digest;
pub mod layer;
pub mod layout;
mod unpack;

pub use config::Config;
pub use layer::Skipped;
pub use unpack::{open, open_tagged, reference, stale, Error, Image, Source};
