//! vcbench: run the same workload natively, in namespace containers and in KVM microVMs,
//! and measure what each costs and buys.
//!
//! The library holds the pieces the `vcbench` binary joins: [`backend`]s that start
//! instances, [`scenario`]s that say what to run and which figures a run yields, the
//! [`runner`] that carries out a plan (one run at a time through [`measure`], in the
//! [`order`] asked for, with the [`density`] series), the [`results`] document and the
//! [`host`] description that goes with it. Statistics live in the `stats` crate.

pub mod backend;
pub mod cleanup;
pub mod clock;
pub mod density;
pub mod doctor;
pub mod figures;
pub mod host;
pub mod interference;
pub mod isolation;
pub mod measure;
pub mod order;
pub mod procfs;
pub mod registry;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod surface;
pub mod table;
