//! `fault`: misbehave on purpose, so the host's handling of a failing workload can be
//! tested on every backend with the one program that runs everywhere.
//!
//! Each kind is one way a real workload goes wrong. The ones that would hurt a host
//! without limits (`forkbomb`, `oom`) stop by themselves at `--limit` processes or MiB and
//! then report that no limit stopped them.

use std::hint::black_box;
use std::io::Write;

use super::Error;
use crate::args::FaultKind;

/// Bytes written per write by `flood`: no line ending anywhere.
const FLOOD_CHUNK: usize = 64 * 1024;

/// Does the fault; returns only for the kinds that end in an error of their own.
pub fn run(kind: FaultKind, limit: u64) -> Result<(), Error> {
    match kind {
        FaultKind::Segv => {
            // The runtime's own handler (for stack overflows) would let a raised SIGSEGV
            // return; the default action ends the process as a wild pointer's would.
            // SAFETY: signal with SIG_DFL installs no code of ours; no memory effects.
            unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
            // SAFETY: raise has no memory effects.
            unsafe { libc::raise(libc::SIGSEGV) };
            Err(Error::Fault("SIGSEGV did not end the process".to_owned()))
        }
        FaultKind::Exit => {
            eprintln!("workload: fault: giving up with status 3");
            std::process::exit(3)
        }
        FaultKind::Hang | FaultKind::Mute => loop {
            // SAFETY: pause has no preconditions; it returns only when a handled signal
            // arrives, and then the loop waits again.
            unsafe { libc::pause() };
        },
        FaultKind::Flood => flood(),
        FaultKind::Forkbomb => forkbomb(limit),
        FaultKind::Oom => eat_memory(limit),
    }
}

/// Writes without end, and without a line ending, on standard output and error.
fn flood() -> Result<(), Error> {
    let chunk = vec![b'x'; FLOOD_CHUNK];
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    loop {
        stdout
            .write_all(&chunk)
            .and_then(|()| stderr.write_all(&chunk))
            .map_err(|e| Error::io("flood", e))?;
    }
}

/// Forks children that wait forever until fork fails or `limit` children live; then kills
/// them and reports how far it got.
fn forkbomb(limit: u64) -> Result<(), Error> {
    let mut children: Vec<libc::pid_t> = Vec::new();
    let outcome = loop {
        if children.len() as u64 >= limit {
            break Error::Fault(format!("forked {limit} processes and no limit stopped it"));
        }
        // SAFETY: the child only calls pause and _exit, both async-signal-safe, so forking
        // while other threads may hold locks is sound.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            loop {
                // SAFETY: as above; the child waits until it is killed.
                unsafe { libc::pause() };
            }
        }
        if pid < 0 {
            let source = std::io::Error::last_os_error();
            break Error::io(
                format!("fork failed after {} processes", children.len()),
                source,
            );
        }
        children.push(pid);
    };
    for &pid in &children {
        // SAFETY: kill and waitpid have no memory effects; each PID is our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    for &pid in &children {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; `pid` is our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    Err(outcome)
}

/// Touches memory 1 MiB at a time and keeps it, until something stops it or `limit` MiB
/// are held.
fn eat_memory(limit: u64) -> Result<(), Error> {
    let mut held: Vec<Vec<u8>> = Vec::new();
    while (held.len() as u64) < limit {
        // Non-zero bytes, so every page is really written.
        held.push(vec![1u8; 1 << 20]);
        black_box(&held);
    }
    Err(Error::Fault(format!(
        "touched {limit} MiB and no limit stopped it"
    )))
}
