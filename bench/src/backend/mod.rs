//! Backends: the ways an instance of the workload can be started, each behind the one
//! protocol of [`protocol`] (re-exported here), so the harness measures them all the same
//! way. Backends never import the harness: they know what to start, not what is measured.

pub mod console;
pub mod container;
pub mod gvisor;
pub mod hostnet;
pub mod image;
pub mod limits;
pub mod microvm;
pub mod native;
pub mod oci;
pub mod podman;
pub mod protocol;
pub mod qemu;
mod readers;
mod restore;
pub mod select;
pub mod supervised;
mod tracked;
pub mod watch;

pub use protocol::{
    clip, error_chain, Availability, Backend, Error, Event, Exit, Footprint, Instance, Launch,
    Stamping,
};
pub use select::{all, availability_of, select, Setup};
pub use tracked::launch;
