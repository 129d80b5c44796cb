//! The `native` backend: fork/exec of the workload on the host, the baseline.
//!
//! The workload writes its records on standard output (a pipe watched from before the
//! spawn). It runs in a process group of its own so that everything it starts can be
//! killed together, and it is reaped with wait4(2).

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use container::process::Child;
use workload::channel;

use super::watch::{self, Watch};
use super::{Availability, Backend, Error, Event, Exit, Instance, Launch};
use crate::clock::Stamp;
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
        let (outputs, watch) = watch::watch()?;
        let child = Command::new(&launch.workload)
            .args(&launch.args)
            .env(channel::ENV, "stdout")
            .stdin(Stdio::null())
            .stdout(outputs.stdout)
            .stderr(outputs.stderr)
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                what: launch.workload.display().to_string(),
                source,
            })?;
        // The handle below reaps the child through its PID; std's handle is not needed
        // (dropping it neither waits nor kills).
        let child = Child::new(child.id());
        Ok(Box::new(NativeInstance { child, watch }))
    }
}

struct NativeInstance {
    child: Child,
    watch: Watch,
}

impl Instance for NativeInstance {
    fn pids(&self) -> Vec<u32> {
        if self.child.reaped().is_some() {
            Vec::new()
        } else {
            vec![self.child.pid()]
        }
    }

    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        self.watch.next_event(until)
    }

    fn release(&mut self) {
        self.child.signal(libc::SIGTERM, false);
    }

    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        let timed_out = !self.child.exited_by(until);
        // Kill what is left of the group: all of it on a timeout, stragglers otherwise.
        self.child.signal(libc::SIGKILL, true);
        let reaped = self.child.reap().map_err(Error::Wait)?;
        Ok(Exit {
            status: reaped.status,
            at: Stamp::now(),
            maxrss_kib: Some(reaped.maxrss_kib),
            timed_out,
        })
    }

    fn diagnostics(&mut self) -> String {
        self.watch.diagnostics()
    }

    fn teardown(mut self: Box<Self>) {
        if self.child.reaped().is_none() {
            // Not waited for: kill and reap it so nothing is left behind.
            drop(self.wait(Instant::now()));
        }
        self.watch.join();
    }
}
