//! The `native` backend: fork/exec of the workload on the host, the baseline.
//!
//! The workload writes its records on standard output (a pipe watched from before the
//! spawn). It runs in a process group of its own so that everything it starts can be
//! killed together, and it is reaped with wait4(2). With a user's image (`exec --root
//! DIR`), the workload chroots the user's program into the image, which needs root.

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

    fn runs_user_images(&self) -> Result<(), String> {
        Ok(())
    }

    fn networked(
        &self,
        net: &std::sync::Arc<super::hostnet::RunNet>,
    ) -> Result<Box<dyn Backend>, String> {
        use super::hostnet::{Attach, Joined};
        Ok(Box::new(Joined::new(
            std::sync::Arc::new(*self),
            net,
            Attach::Loopback,
        )))
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        if super::image::split_root(&launch.args).is_some() && !super::image::is_root() {
            return Err(Error::Spawn {
                what: "the program natively in its image".to_owned(),
                source: std::io::Error::other(
                    "the native backend chroots a user's image, which needs root",
                ),
            });
        }
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
