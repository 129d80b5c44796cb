//! The `native` backend: fork/exec of the workload on the host, the baseline.
//!
//! The workload writes its records on standard output (a pipe watched from before the
//! spawn). It runs in a process group of its own so that everything it starts can be
//! killed together, and it is reaped with wait4(2).

use std::os::unix::process::CommandExt;
use std::process::Command;

use workload::channel;

use super::protocol::{Availability, Backend, Calls, Error, Instance, Launch, Reach};
use super::supervised::Supervised;
use super::watch;
use crate::scenario::Scenario;

/// The native backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Native;

impl Backend for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn describe(&self) -> &'static str {
        "fork/exec of the workload on the host: the baseline the others are compared with"
    }

    fn reach(&self) -> Reach {
        Reach {
            filter: "none: a plain process makes any system call".to_owned(),
            calls: Calls::All,
            conditional: Vec::new(),
            vm_exits: Vec::new(),
        }
    }

    fn availability(&self) -> Availability {
        Availability::Available
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        match scenario {
            Scenario::Exits => Err("VM exits exist only in a VM".to_owned()),
            _ => Ok(()),
        }
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        let mut command = Command::new(&launch.workload);
        command
            .args(&launch.args)
            .env(channel::ENV, "stdout")
            .process_group(0);
        Ok(Box::new(Supervised::spawn_vfork(
            &command,
            watch::records(),
            watch::MAX_LINE,
            true,
        )?))
    }
}
