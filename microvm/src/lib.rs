//! A minimal KVM virtual machine monitor: guest memory, vCPUs, devices and micro guests.
//!
//! This crate knows nothing about benchmarks. [`vm::run`] checks a [`config::Config`],
//! builds the VM in a short recipe of stamped steps, runs a [`guest`] payload, and reports
//! its markers, exits by kind, console output and end; [`linux::machine::run`] boots a
//! Linux kernel the same way. Both build their VM through [`machine::Machine`], which owns
//! the VM, its guest memory and its vCPUs. [`host`] tells what kind of KVM the machine has.

pub mod bus;
pub mod config;
pub mod devices;
pub mod exit;
pub mod guest;
pub mod host;
pub mod kick;
pub mod layout;
pub mod linux;
pub mod machine;
pub mod memory;
pub mod protocol;
pub mod seccomp;
pub mod snapshot;
pub mod vcpu;
pub mod virtio;
pub mod vm;

/// CLOCK_MONOTONIC now, nanoseconds: the host's one clock of every stamp
/// ([`monotonic::now_ns`]).
pub use monotonic::now_ns as monotonic_ns;
