//! A minimal KVM virtual machine monitor: guest memory, vCPUs, devices and boot.
//!
//! This crate knows nothing about benchmarks. So far it answers what kind of KVM the
//! host offers ([`host::KvmFlavour`]); the monitor itself builds on that.

pub mod host;
