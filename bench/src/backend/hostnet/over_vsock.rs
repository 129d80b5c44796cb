//! A VM backend whose guests reach the host-side peer over vsock ([`super::vsock`]), for
//! the `vsock` scenario: the workload is pointed at the peer's port at the host's CID.

use std::sync::Arc;

use super::vsock::VsockPeer;
use crate::backend::protocol::{
    Availability, Backend, Error as LaunchError, Instance, Launch, Reach, Stamping,
};
use crate::scenario::Scenario;

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
