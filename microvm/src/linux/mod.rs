//! Linux guests: a real kernel booted through the x86 64-bit boot protocol.
//!
//! [`image`] recognises and loads the kernel (`vmlinux` ELF or `bzImage`),
//! [`boot_params`] lays out the zero page and its e820 map, [`mptable`] describes the
//! vCPUs and interrupt routing without ACPI, [`cpuid`] and [`cpu_state`] give each vCPU
//! what Linux expects, [`machine`] builds the VM and runs one thread per vCPU, [`state`] is what a
//! snapshot of a running guest holds besides its memory, [`pause`] stops every vCPU to take
//! it, and [`restore`] runs a guest on from one.

pub mod boot_params;
pub mod cmdline;
pub mod cpu_state;
pub mod cpuid;
pub mod image;
pub mod machine;
pub mod mptable;
pub mod pause;
pub mod restore;
pub mod state;
pub mod symbols;
