//! The run's own network, for the `hostnet` scenario: TCP between a peer on the host side
//! and the workload inside an instance, across the sandbox's boundary.
//!
//! The run makes a network namespace of its own ([`netns`]) and holds it while the scenario
//! runs; the peer ([`peer`]) listens inside it, and each backend's instances are joined to
//! it ([`joined`]): over loopback inside it (native), over a veth pair (container), or over
//! a tap (microvm, qemu). Links are made and configured with raw rtnetlink messages
//! ([`netlink`]) and taps through `/dev/net/tun` ([`tun`]). The host's own network
//! namespace is never touched, and the only addresses are loopback's and 10.200.N.1-2/30
//! inside the run's namespace ([`run`]). A namespace a killed run left is found and
//! removed by [`netns::remove_stale`] (`vcbench clean`).
//!
//! The `vsock` scenario runs the same work between a VM's guest and a peer on the host
//! over vsock instead ([`vsock`]): no network, the guest's vsock device served by the
//! host kernel.

pub mod joined;
pub mod netlink;
pub mod netns;
pub mod over_vsock;
pub mod peer;
pub mod run;
pub mod tun;
pub mod vsock;

pub use joined::{Attach, Joined};
pub use run::{RunNet, Subnet};
