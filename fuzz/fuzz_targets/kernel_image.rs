//! Fuzz target `kernel_image`: the guest kernel a Linux guest boots.
//!
//! The kernel is a file the user names (or downloads); its bytes are untrusted. They go
//! through the same path as `vcbench` takes with them: [`Image::from_bytes`] recognises
//! and checks a `vmlinux` ELF or a `bzImage`, and an image it accepts is loaded into guest
//! memory with [`Image::load`], so linux-loader's ELF and bzImage loaders read the fuzzed
//! headers too. Guest memory is mapped once, as the monitor maps it, without KVM: no
//! `/dev/kvm` is needed.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use microvm::linux::image::{Format, Image};
use microvm::memory::GuestRam;

/// Guest memory for the loader: 64 MiB at guest-physical 0, as a small Linux guest has.
const MEMORY: u64 = 64 << 20;

thread_local! {
    /// Mapped once (`MAP_NORESERVE`: only the pages a kernel is written to cost anything)
    /// and reused: loading only writes to it, so what an earlier input left there does
    /// not change what the next one does.
    static RAM: GuestRam = GuestRam::map(MEMORY).expect("cannot map 64 MiB of guest memory");
}

fuzz_target!(|data: &[u8]| {
    let Ok(image) = Image::from_bytes(Path::new("fuzzed-kernel"), data.to_vec()) else {
        return;
    };
    assert_eq!(image.bytes(), data, "the image keeps the file's bytes");
    if let Some(version) = &image.version {
        // A release is a run of at most 64 printable ASCII characters from the image.
        assert!(
            !version.is_empty()
                && version.len() <= 64
                && version.bytes().all(|b| b.is_ascii_graphic()),
            "{version:?}"
        );
    }
    RAM.with(|ram| {
        // Refusing to load is fine; panicking, hanging or writing outside guest memory is
        // not.
        if let Ok(loaded) = image.load(&ram.memory) {
            // Only a bzImage has a setup header for the boot parameters.
            assert_eq!(loaded.header.is_some(), image.format == Format::BzImage);
        }
    });
});
