//! A VM backend whose guests reach the host-side peer over vsock ([`super::vsock`]), for
//! the `vsock` scenario: the workload is pointed at the peer's port at the host's CID.

use std::sync::Arc;

use super::vsock::VsockPeer;
use crate::backend::protocol::{
    Availability, Backend, Error as LaunchError, Instance, Launch, Reach, Stamping,
};
use crate::scenario::Scenario;

/// A VM backend reaching `peer` over vsock: a copy of `vm`, given a guest CID of this
/// run's own for the backend in `slot` by `set_cid`. Refused on a host that serves no
/// guest's vsock device.
pub fn reaching<B: Backend + Clone + Send + 'static>(
    vm: &B,
    peer: &Arc<VsockPeer>,
    slot: u32,
    set_cid: impl FnOnce(&mut B, u32),
) -> Result<Box<dyn Backend>, String> {
    super::vsock::available()?;
    let mut guest = vm.clone();
    set_cid(&mut guest, super::vsock::guest_cid(slot));
    Ok(Box::new(OverVsock::new(Arc::new(guest), peer)))
}

/// `base`, whose guests have a vsock device, with its workload pointed at `peer`.
pub struct OverVsock {
    base: Arc<dyn Backend + Send>,
    peer: Arc<VsockPeer>,
}

impl OverVsock {
    /// `base` (already set to give its guests a vsock device) reaching `peer`.
    pub fn new(base: Arc<dyn Backend + Send>, peer: &Arc<VsockPeer>) -> Self {
        OverVsock {
            base,
            peer: Arc::clone(peer),
        }
    }
}

impl Backend for OverVsock {
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
    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, LaunchError> {
        let peer = workload::hostnet::Peer::Vsock {
            cid: workload::hostnet::HOST_CID,
            port: self.peer.port(),
        };
        let mut args = launch.args.clone();
        args.extend(["--peer".to_owned(), peer.to_string()]);
        self.base.launch(&Launch {
            workload: launch.workload.clone(),
            args,
        })
    }
}
