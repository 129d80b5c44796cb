//! The floor: what the kernel asks, at least, for each way of starting a program, measured
//! with system calls only. The `floor` criterion bench times these on their own
//! (`cargo bench -p vcbench --bench floor`); the startup scenario times them in the same
//! run as the backends, so that a start can be read as a ratio or a difference against
//! the floor of its own host and moment.
//!
//! - [`Program`]: spawn + exec + exit + wait of the smallest static program (an ELF of
//!   three instructions that calls exit_group, [`smallest_elf`]), by fork or, as the
//!   backends spawn, by clone with `CLONE_VM | CLONE_VFORK`; with namespace flags, the
//!   namespaces a container's clone(2) makes, before any mount, pivot_root or cgroup.
//! - [`first_exit`]: open /dev/kvm, create a VM, register one memory region (128 MiB, not
//!   pre-faulted), create one vCPU, set its registers and run it to its first exit (a port
//!   write), as a monitor must before a guest's first marker; the teardown comes after the
//!   clock stops.
//! - [`Sampler`]: each floor that can run here, timed one sample at a time, so that a
//!   run can interleave the floors' samples with the backends' starts.
//!
//! This module is a leaf: it uses the container crate's clone and KVM, nothing of the
//! harness.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;
use std::time::{Duration, Instant};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};

/// Errors measuring a floor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory for the smallest program could not be made.
    #[error("cannot write the smallest program to {path}")]
    Write {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path held a NUL byte or was not UTF-8.
    #[error("the program path {0} cannot be passed to execve")]
    Path(PathBuf),
    /// The clone failed.
    #[error("cannot clone a child (flags {flags:#x})")]
    Clone {
        /// The namespace flags asked for.
        flags: i32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The child did not exit with status 0 (its exec failed, or it was killed).
    #[error("the child of {program} ended with wait status {status}")]
    Child {
        /// The program.
        program: String,
        /// The raw wait status.
        status: i32,
    },
    /// A KVM step failed.
    #[error("KVM: {step} failed")]
    Kvm {
        /// The ioctl or step.
        step: &'static str,
        /// Why.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The guest memory could not be mapped.
    #[error("cannot map the guest's memory")]
    Map(#[source] std::io::Error),
    /// The guest's first exit was not its port write.
    #[error("the guest's first exit was not its port write but {0}")]
    FirstExit(String),
}

/// Where the smallest program is loaded.
const ELF_BASE: u64 = 0x40_0000;
/// The ELF header's size, then the one program header's.
const EHDR: usize = 64;
const PHDR: usize = 56;

/// The smallest static x86-64 program: one loadable segment whose code is
/// `xor edi, edi; mov eax, 231 (exit_group); syscall`.
pub fn smallest_elf() -> Vec<u8> {
    let code: [u8; 9] = [0x31, 0xff, 0xb8, 0xe7, 0, 0, 0, 0x0f, 0x05];
    let size = (EHDR + PHDR + code.len()) as u64;
    let entry = ELF_BASE + (EHDR + PHDR) as u64;
    let mut elf = Vec::with_capacity(EHDR + PHDR + code.len());
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI, padding.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // e_machine: x86-64
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&entry.to_le_bytes()); // e_entry
    elf.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&(EHDR as u16).to_le_bytes()); // e_ehsize
    elf.extend_from_slice(&(PHDR as u16).to_le_bytes()); // e_phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: read + execute
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&ELF_BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&ELF_BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&size.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&size.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    elf.extend_from_slice(&code);
    elf
}

/// Writes the smallest program into `dir` (which it makes searchable by anyone, as the
/// unmapped user a new user namespace runs as must reach it); returns its path.
pub fn write_smallest(dir: &Path) -> Result<PathBuf, Error> {
    let path = dir.join("smallest");
    let write = |path: &Path| -> std::io::Result<()> {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        images::image::write_executable(path, &smallest_elf())
    };
    write(&path).map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// A program to exec, prepared before any child exists: the child runs system calls only.
#[derive(Debug)]
pub struct Program {
    path: CString,
    argv: Vec<CString>,
    /// Where the child's standard output and error go.
    null: std::fs::File,
}

impl Program {
    /// `path` with `args`, its output to /dev/null.
    pub fn new(path: &Path, args: &[&str]) -> Result<Self, Error> {
        let bad = || Error::Path(path.to_owned());
        let path_str = path.to_str().ok_or_else(bad)?;
        let argv = std::iter::once(path_str)
            .chain(args.iter().copied())
            .map(|s| CString::new(s).map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|source| Error::Write {
                path: PathBuf::from("/dev/null"),
                source,
            })?;
        Ok(Program {
            path: CString::new(path_str).map_err(|_| bad())?,
            argv,
            null,
        })
    }

    /// clone(2) with namespace `flags` like fork (a copy of this process's memory), exec
    /// in the child, wait for it to exit.
    pub fn fork_exec_wait(&self, flags: libc::c_int) -> Result<(), Error> {
        let (argv, envp) = self.pointers();
        // SAFETY: the child below runs only dup2, execve and _exit on data prepared above.
        let pid = unsafe { container::process::clone_fork(flags) }
            .map_err(|source| Error::Clone { flags, source })?;
        if pid == 0 {
            // SAFETY: as above: the forked child's last acts.
            unsafe { self.exec(&argv, &envp) }
        }
        self.wait(pid)
    }

    /// clone(2) with namespace `flags` and `CLONE_VM | CLONE_VFORK`, as posix_spawn and
    /// the backends spawn (no copy of this process's memory), exec in the child, wait for
    /// it to exit.
    pub fn vfork_exec_wait(&self, flags: libc::c_int) -> Result<(), Error> {
        let (argv, envp) = self.pointers();
        let slot = AtomicI32::new(0);
        let mut child = || -> libc::c_int {
            // SAFETY: the child shares this process's memory and runs only dup2, execve
            // and _exit on data prepared above.
            unsafe { self.exec(&argv, &envp) }
        };
        // SAFETY: the child confines itself to system calls and ends in execve or _exit.
        let pid = unsafe { container::process::clone_vfork(flags, &slot, &mut child) }
            .map_err(|source| Error::Clone { flags, source })?;
        self.wait(pid)
    }

    /// The argv and envp pointer arrays, null-terminated.
    fn pointers(&self) -> (Vec<*const libc::c_char>, [*const libc::c_char; 1]) {
        let argv = self
            .argv
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        (argv, [std::ptr::null()])
    }

    /// The child's side: output to /dev/null, then execve; _exit(127) if it fails.
    ///
    /// # Safety
    ///
    /// Only in a child between clone and exec; `argv` and `envp` from [`Self::pointers`].
    unsafe fn exec(&self, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> ! {
        let null = self.null.as_raw_fd();
        // SAFETY: dup2 on a descriptor open until the exec.
        unsafe { libc::dup2(null, 1) };
        // SAFETY: as above.
        unsafe { libc::dup2(null, 2) };
        // SAFETY: a C string and null-terminated pointer arrays that outlive the call.
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        // SAFETY: ends the child at once when the exec failed.
        unsafe { libc::_exit(127) }
    }

    fn wait(&self, pid: u32) -> Result<(), Error> {
        let mut status = 0;
        let pid = libc::pid_t::try_from(pid).unwrap_or(libc::pid_t::MAX);
        loop {
            // SAFETY: a valid out-pointer; the PID is this process's unreaped child.
            let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
            if reaped >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else {
            Err(Error::Child {
                program: self.path.to_string_lossy().into_owned(),
                status,
            })
        }
    }
}

/// Guest memory: 128 MiB, anonymous, not reserved or touched (as a monitor maps it).
const GUEST_BYTES: usize = 128 << 20;
/// Where the guest's code is, and what it is (real mode): `mov al, 1; out 0x80, al; hlt`.
const CODE_AT: u64 = 0x1000;
const CODE: [u8; 5] = [0xb0, 0x01, 0xe6, 0x80, 0xf4];

/// Anonymous memory, unmapped on drop.
struct Mapping {
    addr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> Result<Self, Error> {
        // SAFETY: a fresh anonymous private mapping; the result is checked.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Error::Map(std::io::Error::last_os_error()));
        }
        Ok(Mapping { addr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range was mapped by `new` and nothing refers to it any more (the VM
        // that registered it is dropped first, see `Built`).
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

/// What one measured build leaves, dropped in field order: vCPU, VM, memory, /dev/kvm.
pub struct Built {
    _vcpu: kvm_ioctls::VcpuFd,
    _vm: kvm_ioctls::VmFd,
    _memory: Mapping,
    _kvm: Kvm,
}

/// Builds a VM from nothing and runs it to its first exit; returns the time that took and
/// what must be dropped afterwards, outside the clock.
pub fn first_exit() -> Result<(Duration, Built), Error> {
    let kvm_error = |step| move |source| Error::Kvm { step, source };
    let start = Instant::now();
    let kvm = Kvm::new().map_err(kvm_error("open /dev/kvm"))?;
    let vm = kvm.create_vm().map_err(kvm_error("KVM_CREATE_VM"))?;
    let memory = Mapping::new(GUEST_BYTES)?;
    let code_at = usize::try_from(CODE_AT).unwrap_or(0);
    // SAFETY: `code_at` is well inside the mapping just made.
    let target = unsafe { memory.addr.cast::<u8>().add(code_at) };
    // SAFETY: the code fits at `target`, in a mapping nothing else uses.
    unsafe { std::ptr::copy_nonoverlapping(CODE.as_ptr(), target, CODE.len()) };
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: GUEST_BYTES as u64,
        userspace_addr: memory.addr as u64,
    };
    // SAFETY: the region is the mapping above, which `Built` drops only after the VM.
    unsafe { vm.set_user_memory_region(region) }
        .map_err(kvm_error("KVM_SET_USER_MEMORY_REGION"))?;
    let mut vcpu = vm.create_vcpu(0).map_err(kvm_error("KVM_CREATE_VCPU"))?;
    let mut sregs = vcpu.get_sregs().map_err(kvm_error("KVM_GET_SREGS"))?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).map_err(kvm_error("KVM_SET_SREGS"))?;
    let regs = kvm_bindings::kvm_regs {
        rip: CODE_AT,
        rflags: 2,
        rax: 0,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(kvm_error("KVM_SET_REGS"))?;
    match vcpu.run().map_err(kvm_error("KVM_RUN"))? {
        VcpuExit::IoOut(0x80, [1]) => {}
        other => return Err(Error::FirstExit(format!("{other:?}"))),
    }
    let took = start.elapsed();
    Ok((
        took,
        Built {
            _vcpu: vcpu,
            _vm: vm,
            _memory: memory,
            _kvm: kvm,
        },
    ))
}

/// Whether /dev/kvm can be opened for reading and writing; `Err` says why not.
pub fn kvm_usable() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm is not usable: {e}"))
}

/// A floor of the startup scenario, by its metric name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// Spawn (clone with `CLONE_VM | CLONE_VFORK`, as native is spawned) + exec + exit +
    /// wait of the smallest static program.
    Spawn,
    /// The same with all seven namespaces.
    Namespaces,
    /// /dev/kvm opened to a VM's first exit ([`first_exit`]).
    Kvm,
}

impl Floor {
    /// Every floor, in the order they are measured.
    pub const ALL: [Floor; 3] = [Floor::Spawn, Floor::Namespaces, Floor::Kvm];

    /// The metric's name in the results.
    pub fn metric(self) -> &'static str {
        match self {
            Floor::Spawn => "spawn_exec",
            Floor::Namespaces => "namespaces_exec",
            Floor::Kvm => "kvm_first_exit",
        }
    }

    /// One line on what it times.
    pub fn describe(self) -> &'static str {
        match self {
            Floor::Spawn => {
                "spawn (clone with CLONE_VM | CLONE_VFORK) + exec + exit + wait of the smallest static program"
            }
            Floor::Namespaces => "the same with all seven namespaces",
            Floor::Kvm => {
                "open /dev/kvm, create a VM, register 128 MiB, create a vCPU, run to its first exit"
            }
        }
    }

    /// Why it cannot be measured here, if it cannot.
    pub fn unavailable(self) -> Option<String> {
        match self {
            Floor::Spawn => None,
            // SAFETY: geteuid has no preconditions.
            Floor::Namespaces if unsafe { libc::geteuid() } != 0 => {
                Some("clone with all seven namespaces needs root".to_owned())
            }
            Floor::Namespaces => None,
            Floor::Kvm => kvm_usable().err(),
        }
    }

    /// Times one: milliseconds.
    fn once(self, program: &Program) -> Result<f64, Error> {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        match self {
            Floor::Spawn | Floor::Namespaces => {
                let flags = match self {
                    Floor::Spawn => 0,
                    _ => container::Namespaces::ALL.clone_flags(),
                };
                let start = Instant::now();
                program.vfork_exec_wait(flags)?;
                Ok(ms(start.elapsed()))
            }
            Floor::Kvm => {
                let (took, built) = first_exit()?;
                drop(built);
                Ok(ms(took))
            }
        }
    }
}

/// What measuring one floor gave: its samples (ms), or why it was not measured.
#[derive(Debug)]
pub struct Measured {
    /// The floor.
    pub floor: Floor,
    /// One sample per measured run, ms; `Err` with the reason it was skipped or failed.
    pub samples: Result<Vec<f64>, String>,
}

/// Every floor, timed one sample at a time, so that a run can interleave their samples
/// with the backends' starts and time both under the same conditions.
#[derive(Debug)]
pub struct Sampler {
    /// The smallest program, when it could be written and prepared.
    program: Option<Program>,
    /// One per floor of [`Floor::ALL`], in that order.
    measured: Vec<Measured>,
}

impl Sampler {
    /// The floors, with the smallest program written into `dir` (which must outlive the
    /// sampler); a floor that cannot run here holds the reason from the start.
    pub fn new(dir: &Path) -> Self {
        let program = write_smallest(dir).and_then(|path| Program::new(&path, &[]));
        let measured = Floor::ALL
            .into_iter()
            .map(|floor| Measured {
                floor,
                samples: match (&program, floor.unavailable()) {
                    (_, Some(reason)) => Err(reason),
                    (Err(e), None) => Err(crate_error(e)),
                    (Ok(_), None) => Ok(Vec::new()),
                },
            })
            .collect();
        Sampler {
            program: program.ok(),
            measured,
        }
    }

    /// The floors, none of which can be timed, for `reason`.
    pub fn unable(reason: &str) -> Self {
        Sampler {
            program: None,
            measured: Floor::ALL
                .into_iter()
                .map(|floor| Measured {
                    floor,
                    samples: Err(reason.to_owned()),
                })
                .collect(),
        }
    }

    /// Times the floor at `index` (into [`Floor::ALL`]) once, and keeps the sample unless
    /// it is a `warmup`. A floor that cannot run, or once failed, is left as it is; a
    /// failure ends the floor with its reason.
    pub fn once(&mut self, index: usize, warmup: bool) {
        let (Some(program), Some(m)) = (&self.program, self.measured.get_mut(index)) else {
            return;
        };
        let Ok(samples) = &mut m.samples else {
            return;
        };
        match m.floor.once(program) {
            Ok(ms) if !warmup => samples.push(ms),
            Ok(_) => {}
            Err(e) => m.samples = Err(crate_error(&e)),
        }
    }

    /// What every floor gave, in the order of [`Floor::ALL`].
    pub fn finish(self) -> Vec<Measured> {
        self.measured
    }
}

/// An error and its causes, in one line.
fn crate_error(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_program_runs_and_exits_0() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_smallest(dir.path()).unwrap();
        let program = Program::new(&path, &[]).unwrap();
        program.fork_exec_wait(0).unwrap();
        program.vfork_exec_wait(0).unwrap();
        let mut sampler = Sampler::new(dir.path());
        for (index, _) in Floor::ALL.iter().enumerate() {
            for warmup in [true, false, false, false] {
                sampler.once(index, warmup);
            }
        }
        let measured = sampler.finish();
        let spawn = &measured[0];
        assert_eq!(spawn.floor, Floor::Spawn);
        let samples = spawn.samples.as_ref().unwrap();
        assert_eq!(samples.len(), 3);
        assert!(
            samples.iter().all(|ms| *ms > 0.0 && *ms < 1000.0),
            "{samples:?}"
        );
        for m in &measured[1..] {
            if let Err(reason) = &m.samples {
                assert_eq!(Some(reason.clone()), m.floor.unavailable(), "{reason}");
            }
        }
    }

    #[test]
    fn a_program_that_cannot_be_run_is_an_error_naming_it() {
        let program = Program::new(Path::new("/nonexistent/program"), &[]).unwrap();
        let e = program.vfork_exec_wait(0).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/program"), "{e}");
    }
}
