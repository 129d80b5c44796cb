//! An instance that is one host child process whose standard output is watched: the
//! native workload, or the microVM monitor. Spawning, waiting with a deadline, killing
//! and teardown are the same for both; only how output lines become events differs.

use std::ffi::{CString, OsStr};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
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

impl Supervised {
    /// As [`Supervised::spawn`], without a copy of this process's memory: the child is
    /// cloned with `CLONE_VM | CLONE_VFORK` (as posix_spawn does) and dies with this
    /// process. A fork copies the harness's memory and its threads' stacks, at a cost that
    /// grows with the harness, once at the fork and again at the child's exec.
    ///
    /// Only the command's program, arguments, environment changes and working directory
    /// are used (anything else set on it is not); `group` puts the child in a process
    /// group of its own.
    pub fn spawn_vfork(
        command: &Command,
        handler: LineHandler,
        max_line: usize,
        group: bool,
    ) -> Result<Self, Error> {
        let what = || command.get_program().to_string_lossy().into_owned();
        let spawn_error = |source| Error::Spawn {
            what: what(),
            source,
        };
        let exec = Exec::from_command(command).map_err(spawn_error)?;
        let (outputs, watch) = watch::watch(handler, max_line)?;
        let null = std::fs::File::open("/dev/null").map_err(spawn_error)?;
        let stdio = [
            null.as_raw_fd(),
            outputs.stdout.as_raw_fd(),
            outputs.stderr.as_raw_fd(),
        ];
        let pid = exec.spawn(stdio, group).map_err(spawn_error)?;
        Ok(Supervised {
            child: Child::new(pid),
            watch,
            group,
        })
    }
}

/// A program and its arguments, environment and directory as C strings, prepared before
/// the clone so that the child only makes system calls.
struct Exec {
    program: CString,
    /// Owners of what `argv` and `envp` point into.
    strings: Vec<CString>,
    argc: usize,
    dir: Option<CString>,
}

fn c_string(s: &OsStr) -> std::io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} holds a NUL byte", s.to_string_lossy()),
        )
    })
}

/// The program as execve(2) needs it: a name without a slash is looked up in PATH.
fn resolve(program: &OsStr) -> std::io::Result<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| {
            std::fs::metadata(path).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
}

impl Exec {
    fn from_command(command: &Command) -> std::io::Result<Self> {
        let program = resolve(command.get_program())?;
        let mut env: std::collections::BTreeMap<_, _> = std::env::vars_os().collect();
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => env.insert(key.to_owned(), value.to_owned()),
                None => env.remove(key),
            };
        }
        let mut strings = vec![c_string(command.get_program())?];
        for arg in command.get_args() {
            strings.push(c_string(arg)?);
        }
        let argc = strings.len();
        for (key, value) in env {
            let mut pair = key;
            pair.push("=");
            pair.push(value);
            strings.push(c_string(&pair)?);
        }
        Ok(Exec {
            program: c_string(program.as_os_str())?,
            strings,
            argc,
            dir: command
                .get_current_dir()
                .map(Path::as_os_str)
                .map(c_string)
                .transpose()?,
        })
    }

    /// Starts the program with `stdio` as its descriptors 0, 1 and 2; returns its PID
    /// once it has exec'ed, or why it could not.
    fn spawn(&self, stdio: [libc::c_int; 3], group: bool) -> std::io::Result<u32> {
        let pointers = |range: std::ops::Range<usize>| -> Vec<*const libc::c_char> {
            self.strings[range]
                .iter()
                .map(|s| s.as_ptr())
                .chain([std::ptr::null()])
                .collect()
        };
        let argv = pointers(0..self.argc);
        let envp = pointers(self.argc..self.strings.len());
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // What the child failed at, as an errno: it shares this memory until it ends.
        let failed = AtomicI32::new(0);
        let pid_slot = AtomicI32::new(0);
        let mut child = || -> libc::c_int {
            let fail = || -> libc::c_int {
                let errno = std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO);
                failed.store(errno, Ordering::Relaxed);
                // SAFETY: ends the child at once; the parent resumes.
                unsafe { libc::_exit(127) }
            };
            // SAFETY: setpgid on the calling process only.
            if group && unsafe { libc::setpgid(0, 0) } != 0 {
                return fail();
            }
            if crate::registry::die_with_parent(parent).is_err() {
                return fail();
            }
            for (target, fd) in (0..).zip(stdio) {
                // SAFETY: dup2 on descriptors this process holds open until the call returns.
                if unsafe { libc::dup2(fd, target) } < 0 {
                    return fail();
                }
            }
            if let Some(dir) = &self.dir {
                // SAFETY: a valid C string.
                if unsafe { libc::chdir(dir.as_ptr()) } != 0 {
                    return fail();
                }
            }
            // SAFETY: a C string and null-terminated arrays of pointers into `strings`.
            unsafe { libc::execve(self.program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            fail()
        };
        // SAFETY: the child runs only system calls (setpgid, prctl, getppid, dup2, chdir,
        // execve, _exit) on data prepared above, and an atomic store of its errno.
        let pid = unsafe { container::process::clone_vfork(0, &pid_slot, &mut child) }?;
        match failed.load(Ordering::Relaxed) {
            0 => Ok(pid),
            errno => {
                // It has exited: reap it.
                drop(Child::new(pid));
                Err(std::io::Error::from_raw_os_error(errno))
            }
        }
    }
}

impl Instance for Supervised {
    fn pids(&self) -> Vec<u32> {
        if self.child.reaped().is_some() {
            Vec::new()
        } else if self.group {
            // Its process group is its own: what it started (a user's program under the
            // workload, say) is part of the instance.
            crate::procfs::with_descendants(self.child.pid())
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
