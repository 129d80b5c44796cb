//! A backend whose instances join the run's network ([`super::run::RunNet`]) for the
//! `hostnet` scenario, each backend the way its sandbox is reached:
//!
//! - [`Attach::Loopback`] (native): the workload is started inside the run's namespace
//!   and reaches the peer at 127.0.0.1 there (never the host's loopback).
//! - [`Attach::Veth`] (container): a veth pair is made in the run's namespace, the host
//!   end addressed `10.200.N.1/30`; once the container runs, the other end is moved into
//!   the container's own network namespace, renamed `eth0`, addressed `10.200.N.2/30` and
//!   brought up, over rtnetlink from outside (the workload holds no `CAP_NET_ADMIN`; it
//!   retries its first connection until the link is there).
//! - [`Attach::Tap`] (microvm, qemu): a persistent tap is made in the run's namespace,
//!   addressed `10.200.N.1/30`, and the monitor is started inside that namespace, where it
//!   attaches to the tap by name; the guest's workload configures its `eth0` itself
//!   (`--ifaddr eth0=10.200.N.2/30`).
//!
//! Every link is deleted at the instance's teardown; what is left goes with the run's
//! namespace.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Instant;

use super::netlink::Socket;
use super::netns;
use super::run::{RunNet, Subnet};
use crate::backend::protocol::{
    error_chain, Availability, Backend, Error, Event, Exit, Footprint, Instance, Launch, Reach,
    Stamping,
};
use crate::clock::Stamp;
use crate::scenario::Scenario;
use workload::hostnet::IfAddr;

/// How an instance reaches the run's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Over loopback, started inside the run's namespace.
    Loopback,
    /// Over a veth pair into the instance's own network namespace.
    Veth(Subnet),
    /// Over a tap, its monitor started inside the run's namespace.
    Tap(Subnet),
}

/// `base` with its instances on the run's network.
pub struct Joined {
    base: Arc<dyn Backend + Send>,
    net: Arc<RunNet>,
    attach: Attach,
}

impl Joined {
    /// `base` joined to `net` as `attach` says. For [`Attach::Tap`], `base` must already
    /// be set to hand its monitor the subnet's tap.
    pub fn new(base: Arc<dyn Backend + Send>, net: &Arc<RunNet>, attach: Attach) -> Self {
        Joined {
            base,
            net: Arc::clone(net),
            attach,
        }
    }

    /// The workload line with the peer (and, for a VM, its interface) added.
    fn args(&self, args: &[String]) -> Vec<String> {
        let mut args = args.to_vec();
        let subnet = match self.attach {
            Attach::Loopback => None,
            Attach::Veth(s) | Attach::Tap(s) => Some(s),
        };
        args.extend(["--peer".to_owned(), self.net.peer(subnet).to_string()]);
        if let Attach::Tap(s) = self.attach {
            let ifaddr = format!("eth0={}/{}", s.instance(), Subnet::PREFIX);
            debug_assert!(ifaddr.parse::<IfAddr>().is_ok());
            args.extend(["--ifaddr".to_owned(), ifaddr]);
        }
        args
    }
}

/// A VM backend joined to `net` over a tap: a copy of `vm`, given the subnet's tap by
/// `set_tap`, its monitor started inside the run's namespace.
pub fn over_tap<B: Backend + Clone + Send + 'static>(
    vm: &B,
    net: &Arc<RunNet>,
    set_tap: impl FnOnce(&mut B, String),
) -> Result<Box<dyn Backend>, String> {
    let subnet = net.subnet().map_err(|e| error_chain(&e))?;
    let mut joined = vm.clone();
    set_tap(&mut joined, subnet.tap());
    Ok(Box::new(Joined::new(
        Arc::new(joined),
        net,
        Attach::Tap(subnet),
    )))
}

/// A launch failure on the way to the run's network.
fn failed(what: &str, e: &dyn std::error::Error) -> Error {
    Error::Spawn {
        what: what.to_owned(),
        source: std::io::Error::other(error_chain(e)),
    }
}

impl Backend for Joined {
    fn name(&self) -> &'static str {
        self.base.name()
    }
    fn describe(&self) -> &'static str {
        self.base.describe()
    }
    fn availability(&self) -> Availability {
        self.base.availability()
    }
    fn settings(&self) -> String {
        self.base.settings()
    }
    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        self.base.supports(scenario)
    }
    fn runs_programs(&self) -> Result<(), String> {
        self.base.runs_programs()
    }
    fn stamping(&self) -> Stamping {
        self.base.stamping()
    }
    fn reach(&self) -> Reach {
        self.base.reach()
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        let launch = Launch {
            workload: launch.workload.clone(),
            args: self.args(&launch.args),
        };
        // Started by the thread that lives in the run's namespace.
        let in_namespace = |base: &Arc<dyn Backend + Send>| {
            let (base, launch) = (Arc::clone(base), launch.clone());
            self.net
                .inside(move || base.launch(&launch))
                .map_err(|e| failed("the instance in the run's network namespace", &e))?
        };
        match self.attach {
            Attach::Loopback => in_namespace(&self.base),
            Attach::Tap(subnet) => {
                self.net
                    .create_tap(subnet)
                    .map_err(|e| failed(&format!("the tap {}", subnet.tap()), &e))?;
                let link = Link {
                    net: Arc::clone(&self.net),
                    name: subnet.tap(),
                };
                let inner = in_namespace(&self.base)?;
                Ok(Box::new(JoinedInstance { inner, _link: link }))
            }
            Attach::Veth(subnet) => {
                self.net
                    .create_veth(subnet)
                    .map_err(|e| failed(&format!("the veth pair {}", subnet.host_link()), &e))?;
                let link = Link {
                    net: Arc::clone(&self.net),
                    name: subnet.host_link(),
                };
                let mut inner = self.base.launch(&launch)?;
                if let Err(e) = self.plug(inner.as_ref(), subnet) {
                    // Nothing measured: the instance is ended at once.
                    drop(inner.wait(Instant::now()));
                    inner.teardown();
                    return Err(e);
                }
                Ok(Box::new(JoinedInstance { inner, _link: link }))
            }
        }
    }
}

impl Joined {
    /// Moves `subnet`'s instance end of the veth into the instance's network namespace as
    /// `eth0`, addressed and up.
    fn plug(&self, instance: &dyn Instance, subnet: Subnet) -> Result<(), Error> {
        let pid = instance.pids().first().copied().ok_or_else(|| {
            failed(
                "the veth",
                &std::io::Error::other("the instance has no process"),
            )
        })?;
        let theirs = own_namespace(pid, &self.net)?;
        let name = subnet.instance_link();
        self.net
            .netlink(|s| {
                let index = s.index(&name)?;
                s.move_to(index, theirs.as_fd(), "eth0")?;
                Ok(())
            })
            .map_err(|e| failed(&format!("moving {name} into the instance"), &e))?;
        netns::enter(theirs.as_fd(), || -> Result<(), super::netlink::Error> {
            let mut s = Socket::open()?;
            let eth0 = s.index("eth0")?;
            s.add_address(eth0, subnet.instance(), Subnet::PREFIX)?;
            s.set_up(eth0)
        })
        .map_err(|e| failed("the instance's eth0", &e))?
        .map_err(|e| failed("the instance's eth0", &e))
    }
}

/// The network namespace of process `pid`, refused unless it is its own: neither the
/// host's (this thread's) nor the run's.
fn own_namespace(pid: u32, net: &RunNet) -> Result<OwnedFd, Error> {
    let path = format!("/proc/{pid}/ns/net");
    let file = File::open(&path).map_err(|e| failed(&path, &e))?;
    let inode = |f: &File| f.metadata().map(|m| (m.dev(), m.ino()));
    let theirs = inode(&file).map_err(|e| failed(&path, &e))?;
    let host = std::fs::metadata("/proc/thread-self/ns/net").map(|m| (m.dev(), m.ino()));
    let run = File::open(net.namespace().path()).and_then(|f| inode(&f));
    if host.ok() == Some(theirs) || run.ok() == Some(theirs) {
        return Err(failed(
            "the veth",
            &std::io::Error::other(
                "the instance has no network namespace of its own; the host's is never touched",
            ),
        ));
    }
    Ok(OwnedFd::from(file))
}

/// A link of the run's namespace, deleted when dropped.
struct Link {
    net: Arc<RunNet>,
    name: String,
}

impl Drop for Link {
    fn drop(&mut self) {
        // A link that cannot be deleted goes with the run's namespace.
        drop(self.net.delete_link(&self.name));
    }
}

/// An instance with the link that reaches it, deleted after the instance's teardown.
struct JoinedInstance {
    inner: Box<dyn Instance>,
    _link: Link,
}

impl Instance for JoinedInstance {
    fn pids(&self) -> Vec<u32> {
        self.inner.pids()
    }
    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        self.inner.next_event(until)
    }
    fn release(&mut self) {
        self.inner.release();
    }
    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        self.inner.wait(until)
    }
    fn diagnostics(&mut self) -> String {
        self.inner.diagnostics()
    }
    fn footprint(&self) -> Footprint {
        self.inner.footprint()
    }
    fn phases(&mut self) -> Vec<(String, Stamp)> {
        self.inner.phases()
    }
    fn counters(&mut self) -> Vec<(String, u64)> {
        self.inner.counters()
    }
    fn teardown(self: Box<Self>) {
        let JoinedInstance { inner, _link } = *self;
        inner.teardown();
        drop(_link);
    }
}
