//! vcbench: run the same workload natively, in namespace containers and in KVM microVMs,
//! and measure what each costs and buys.
//!
//! The library is the harness the `vcbench` binary drives, in three layers whose imports
//! run one way (checked by `tests/architecture.rs`):
//!
//! 1. **Leaves**, which import no other module: the host's [`clock`] stamps, [`procfs`]
//!    readings, the [`host`] description, the [`registry`] of live instances, the
//!    [`order`] of runs, what running each [`scenario`] takes, and the [`floor`] a start
//!    is set against.
//! 2. **[`backend`]s**: the ways an instance is started (native, the container runtime,
//!    runc and crun, the microVM monitor, QEMU), each behind one protocol, chosen and set
//!    up by [`backend::select`]. They know what to start, not what is measured.
//! 3. **The harness**: one run measured ([`measure`]), the [`figures`] it yields, the
//!    startup scenario's floors and [`goals`], the
//!    [`runner`] that carries out a plan, the [`density`], [`interference`], [`isolation`]
//!    and host-[`surface`] scenarios, the [`results`] document, the terminal [`table`],
//!    the [`doctor`]'s checks, the [`cleanup`] after killed runs, and the guided [`tour`].
//!
//! What the sandboxes run (the workload, the monitor, root file systems, the initramfs,
//! the guest kernel) is built by the `images` crate; names, the results document and the
//! reports are the `reports` crate's; statistics are the `stats` crate's.

pub mod backend;
pub mod cleanup;
pub mod clock;
pub mod density;
pub mod doctor;
pub mod figures;
pub mod floor;
pub mod goals;
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
pub mod tour;
