//! An instance that is one host child process whose standard output is watched: the
//! native workload, or the microVM monitor. Spawning, waiting with a deadline, killing
//! and teardown are the same for both; only how output lines become events differs.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use container::process::Child;

use super::protocol::{Error, Event, Exit, Instance};
use super::watch::{self, LineHandler, Watch};

/// A watched child process.
pub struct Supervised {
    child: Child,
    watch: Watch,
    /// Kill its whole process group, not just the process.
    group: bool,
}

impl Supervised {
    /// Spawns `command` with standard output read by `handler` in lines of at most
    /// `max_line` bytes (watching starts before the spawn, so no line is stamped late).
    pub fn spawn(
        command: &mut Command,
        handler: LineHandler,
        max_line: usize,
        group: bool,
    ) -> Result<Self, Error> {
        let (outputs, watch) = watch::watch(handler, max_line)?;
        die_with_parent(command);
        let child = command
            .stdin(Stdio::null())
            .stdout(outputs.stdout)
            .stderr(outputs.stderr)
            .spawn()
            .map_err(|source| Error::Spawn {
                what: command.get_program().to_string_lossy().into_owned(),
                source,
            })?;
        // The handle below reaps the child through its PID; std's handle is not needed
        // (dropping it neither waits nor kills).
        Ok(Supervised {
            child: Child::new(child.id()),
            watch,
            group,
        })
    }
}

impl Instance for Supervised {
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
        // Kill what is left: all of it on a timeout, stragglers otherwise.
        self.child.signal(libc::SIGKILL, self.group);
        let reaped = self.child.reap().map_err(Error::Wait)?;
        Ok(Exit::reaped(reaped, timed_out))
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

/// Makes the child die with SIGKILL if this process is killed before it could end it.
pub fn die_with_parent(command: &mut Command) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe
    // system calls (prctl, getppid, _exit): no allocation, no lock.
    unsafe { command.pre_exec(move || crate::registry::die_with_parent(parent)) };
}
