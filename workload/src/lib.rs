//! The records the `workload` program writes, and the channels it writes them on.
//!
//! The `workload` binary runs inside every sandbox; the host learns what happened from
//! the records it writes, one per line: the fixed [`record::PREFIX`] followed by one JSON
//! object. This library holds that format so the program and the host share one
//! definition.

pub mod channel;
pub mod disk;
pub mod hostnet;
pub mod marker;
pub mod record;
pub mod signal;
