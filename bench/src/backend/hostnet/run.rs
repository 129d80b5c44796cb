//! The run's network: a network namespace of the run's own ([`super::netns`]), loopback
//! up inside it, and the host-side peer listening there ([`super::peer`]). Each backend
//! that joins it gets a [`Subnet`] of its own, `10.200.N.0/30`: the host end `.1` (a veth's
//! or a tap's, in the run's namespace), the instance `.2`. Nothing of the host's own
//! namespace is touched, and no address outside these is used.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::netlink::{self, Socket};
use super::netns::{self, Namespace};
use super::peer::{self, Peer};

/// The port the peer listens on inside the run's namespace (nothing else listens there).
pub const PEER_PORT: u16 = 7000;

/// The directory under the runtime directory where run namespaces are held.
pub const DIR: &str = "netns";

/// Errors making the run's network or joining it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The namespace could not be made, entered or opened.
    #[error(transparent)]
    Namespace(#[from] netns::Error),
    /// An rtnetlink request failed.
    #[error(transparent)]
    Netlink(#[from] netlink::Error),
    /// The peer could not start.
    #[error(transparent)]
    Peer(#[from] peer::Error),
    /// A tap could not be made.
    #[error(transparent)]
    Tap(#[from] super::tun::Error),
    /// Every subnet is taken.
    #[error("no subnet is left in 10.200.0.0/16 for another backend")]
    Exhausted,
    /// The thread that starts processes inside the namespace is gone.
    #[error("the thread that starts processes in the run's network namespace is gone")]
    ResidentGone,
    /// The thread that starts processes inside the namespace could not start.
    #[error("cannot start the thread that starts processes in the run's network namespace")]
    Resident(#[source] std::io::Error),
}

/// Work for the resident thread.
type Job = Box<dyn FnOnce() + Send>;

/// A thread that lives inside the run's namespace for as long as the run's network, and
/// starts processes there: a child started with `PR_SET_PDEATHSIG` dies when the thread
/// that started it ends, so a thread that ended after one start would kill its process.
#[derive(Debug)]
struct Resident {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Resident {
    fn start(namespace: &Namespace) -> Result<Self, Error> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, entered) = mpsc::channel();
        let fd = namespace
            .fd()
            .try_clone_to_owned()
            .map_err(Error::Resident)?;
        let thread = std::thread::Builder::new()
            .name("hostnet-resident".to_owned())
            .spawn(move || {
                // SAFETY: setns takes a descriptor, owned by this closure, and a flag; it
                // changes only this thread's network namespace.
                let entered_ns = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                let result = match entered_ns {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                };
                drop(fd);
                let ok = result.is_ok();
                drop(ready.send(result));
                if ok {
                    while let Ok(job) = queue.recv() {
                        job();
                    }
                }
            })
            .map_err(Error::Resident)?;
        let resident = Resident {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        match entered.recv() {
            Ok(Ok(())) => Ok(resident),
            Ok(Err(e)) => Err(Error::Namespace(netns::Error::Enter(e))),
            Err(_) => Err(Error::ResidentGone),
        }
    }
}

impl Drop for Resident {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            drop(thread.join());
        }
    }
}

/// One backend's addresses and link names on the run's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet(u8);

impl Subnet {
    /// The prefix length of every subnet.
    pub const PREFIX: u8 = 30;

    /// Subnet `n`, 10.200.n.0/30.
    pub fn new(n: u8) -> Self {
        Subnet(n)
    }

    /// The host end's address, 10.200.N.1.
    pub fn host(self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.0, 1)
    }

    /// The instance's address, 10.200.N.2.
    pub fn instance(self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.0, 2)
    }

    /// The host end of a veth pair, in the run's namespace.
    pub fn host_link(self) -> String {
        format!("vcb{}h", self.0)
    }

    /// The instance's end of a veth pair before it is moved (and renamed `eth0`).
    pub fn instance_link(self) -> String {
        format!("vcb{}i", self.0)
    }

    /// A VM's tap, in the run's namespace.
    pub fn tap(self) -> String {
        format!("vcb{}t", self.0)
    }
}

/// The run's network, removed when dropped.
#[derive(Debug)]
pub struct RunNet {
    // The resident thread goes first (what it started is torn down before), then the
    // peer, whose socket is in the namespace.
    resident: std::sync::Mutex<Resident>,
    peer: Peer,
    namespace: Namespace,
    next: AtomicU8,
}

impl RunNet {
    /// Makes the namespace (held in the runtime directory's `netns/`), brings its loopback
    /// up and starts the peer.
    pub fn create() -> Result<Self, Error> {
        let namespace = Namespace::create(&crate::registry::dir().join(DIR))?;
        namespace.enter(|| -> Result<(), netlink::Error> {
            let mut socket = Socket::open()?;
            let lo = socket.index("lo")?;
            socket.set_up(lo)
        })??;
        let peer = Peer::start(&namespace, PEER_PORT)?;
        let resident = std::sync::Mutex::new(Resident::start(&namespace)?);
        Ok(RunNet {
            resident,
            peer,
            namespace,
            next: AtomicU8::new(1),
        })
    }

    /// Runs `f` on the thread that lives inside the run's namespace: a process `f`
    /// starts is in the namespace, and lives as long as the run's network.
    pub fn inside<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (done, result) = mpsc::channel();
        let job: Job = Box::new(move || drop(done.send(f())));
        let sent = self
            .resident
            .lock()
            .ok()
            .and_then(|r| r.jobs.as_ref().map(|jobs| jobs.send(job).is_ok()));
        if sent != Some(true) {
            return Err(Error::ResidentGone);
        }
        result.recv().map_err(|_| Error::ResidentGone)
    }

    /// A subnet no other backend of this run has.
    pub fn subnet(&self) -> Result<Subnet, Error> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        match n {
            0 => Err(Error::Exhausted),
            n => Ok(Subnet(n)),
        }
    }

    /// The peer as an instance in `subnet` reaches it; on loopback without one.
    pub fn peer(&self, subnet: Option<Subnet>) -> SocketAddrV4 {
        let address = subnet.map_or(Ipv4Addr::LOCALHOST, Subnet::host);
        SocketAddrV4::new(address, self.peer.port())
    }

    /// Where the peer's connections came from so far.
    pub fn seen(&self) -> Vec<std::net::SocketAddr> {
        self.peer.seen()
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Runs `f` with an rtnetlink socket on the run's namespace.
    pub fn netlink<T: Send>(
        &self,
        f: impl FnOnce(&mut Socket) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        let mut socket = self.namespace.enter(Socket::open)??;
        f(&mut socket)
    }

    /// Makes `subnet`'s veth pair in the run's namespace, the host end addressed and up.
    pub fn create_veth(&self, subnet: Subnet) -> Result<(), Error> {
        self.netlink(|s| {
            s.create_veth(&subnet.host_link(), &subnet.instance_link())?;
            let host = s.index(&subnet.host_link())?;
            s.add_address(host, subnet.host(), Subnet::PREFIX)?;
            s.set_up(host)?;
            Ok(())
        })
    }

    /// Makes `subnet`'s tap in the run's namespace, addressed and up.
    pub fn create_tap(&self, subnet: Subnet) -> Result<(), Error> {
        let name = subnet.tap();
        netlink::check_name(&name)?;
        self.namespace.enter(|| super::tun::create(&name))??;
        self.netlink(|s| {
            let tap = s.index(&name)?;
            s.add_address(tap, subnet.host(), Subnet::PREFIX)?;
            s.set_up(tap)?;
            Ok(())
        })
    }

    /// Deletes the link `name` from the run's namespace; one already gone is no error.
    pub fn delete_link(&self, name: &str) -> Result<(), Error> {
        self.netlink(|s| match s.index(name) {
            Ok(index) => Ok(s.delete(index)?),
            Err(netlink::Error::Refused { source, .. })
                if source.raw_os_error() == Some(libc::ENODEV) =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_has_its_two_ends_and_names_the_kernel_takes() {
        let s = Subnet::new(3);
        assert_eq!(s.host(), Ipv4Addr::new(10, 200, 3, 1));
        assert_eq!(s.instance(), Ipv4Addr::new(10, 200, 3, 2));
        let widest = Subnet::new(255);
        for name in [widest.host_link(), widest.instance_link(), widest.tap()] {
            assert!(netlink::check_name(&name).is_ok(), "{name}");
        }
        // Both ends are in 10.200.0.0/16, a private range.
        assert!(s.host().is_private() && s.instance().is_private());
    }

    #[test]
    fn the_run_s_network_serves_its_peer_and_makes_and_deletes_its_links_inside_it() {
        use std::io::{Read, Write};
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: making a network namespace needs root");
            return;
        }
        let host_links = || std::fs::read_dir("/sys/class/net").unwrap().count();
        let before = host_links();
        let net = RunNet::create().unwrap();
        let path = net.namespace().path().to_owned();
        assert!(path.exists());
        // A client on the thread that lives inside reaches the peer on loopback there.
        let peer = net.peer(None);
        let echoed = net
            .inside(move || -> std::io::Result<[u8; 4]> {
                let mut c = std::net::TcpStream::connect(peer)?;
                c.write_all(&[workload::hostnet::ECHO])?;
                c.write_all(b"ping")?;
                let mut back = [0u8; 4];
                c.read_exact(&mut back)?;
                Ok(back)
            })
            .unwrap()
            .unwrap();
        assert_eq!(&echoed, b"ping");
        assert!(net.seen().iter().all(|a| a.ip().is_loopback()));
        assert_eq!(net.seen().len(), 1);
        // Links are made in the run's namespace, never the host's, and deleted.
        let (veth, tap) = (net.subnet().unwrap(), net.subnet().unwrap());
        net.create_veth(veth).unwrap();
        net.create_tap(tap).unwrap();
        assert_eq!(host_links(), before);
        let index = |name: String| net.netlink(move |s| Ok(s.index(&name)?));
        assert!(index(veth.host_link()).is_ok());
        assert!(index(veth.instance_link()).is_ok());
        assert!(index(tap.tap()).is_ok());
        net.delete_link(&veth.host_link()).unwrap();
        net.delete_link(&tap.tap()).unwrap();
        // A veth's peer goes with it; deleting what is gone is no error.
        assert!(index(veth.instance_link()).is_err());
        net.delete_link(&tap.tap()).unwrap();
        drop(net);
        assert!(!path.exists());
    }
}
