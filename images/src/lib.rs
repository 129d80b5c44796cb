//! What every sandbox runs, built and installed once: the guest side of vcbench.
//!
//! - [`image`]: the statically linked `workload` and `vcbench-vmm` this crate embeds (built
//!   by `build.rs`), the cache directory, and the image's file set installed as a
//!   container's root file system.
//! - [`initramfs`]: the same file set as a Linux guest's initramfs (newc cpio).
//! - [`kernel`]: the guest kernel built from Debian's source with `kernel/microvm.config`,
//!   cached by a hash of both.
//!
//! Nothing here knows how a measurement is taken: the harness and the backends in the
//! `vcbench` crate use these pieces.

pub mod image;
pub mod initramfs;
pub mod kernel;
