//! The floor: what the kernel asks, at least, for each way of starting a program, measured
//! with system calls only so that `vcbench run -s startup` can be read against it on any
//! host (`cargo bench -p vcbench --bench floor`).
//!
//! - `process`: fork + exec + exit + wait of the smallest static program (an ELF of three
//!   instructions that calls exit_group), and of the workload itself (`hello`, as the
//!   native backend runs it: C library start-up and its records included); the same
//!   through posix_spawn, as `std::process::Command` does it.
//! - `namespaces`: the same fork + exec with all seven namespaces, as a container's
//!   clone(2) makes them, before any mount, pivot_root or cgroup.
//! - `kvm`: open /dev/kvm, create a VM, register one memory region (128 MiB, not
//!   pre-faulted), create one vCPU, set its registers and run it to its first exit (a
//!   port write), as a monitor must before a guest's first marker; the teardown comes
//!   after the clock stops.
//!
//! The namespace figures need root, the KVM figure a usable /dev/kvm: each group says why
//! it is skipped and the others run.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};

/// Where the smallest program is loaded.
const ELF_BASE: u64 = 0x40_0000;
/// The ELF header's size, then the one program header's.
const EHDR: usize = 64;
const PHDR: usize = 56;

/// The smallest static x86-64 program: one loadable segment whose code is
/// `xor edi, edi; mov eax, 231 (exit_group); syscall`.
fn smallest_elf() -> Vec<u8> {
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

/// A program to exec, prepared before any child exists: the child runs system calls only.
struct Program {
    path: CString,
    argv: Vec<CString>,
    /// Where the child's standard output and error go.
    null: std::fs::File,
}

impl Program {
    fn new(path: &Path, args: &[&str]) -> Self {
        let c = |s: &str| CString::new(s).expect("no NUL");
        let path_str = path.to_str().expect("a UTF-8 temporary path");
        Program {
            path: c(path_str),
            argv: std::iter::once(path_str)
                .chain(args.iter().copied())
                .map(c)
                .collect(),
            null: std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .expect("open /dev/null"),
        }
    }

    /// clone(2) with `flags` (fork-like), exec in the child, wait for it to exit.
    fn clone_exec_wait(&self, flags: libc::c_int) {
        let argv: Vec<*const libc::c_char> = self
            .argv
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let envp = [std::ptr::null::<libc::c_char>()];
        let null = self.null.as_raw_fd();
        // SAFETY: the child below runs only dup2, execve and _exit on data prepared above.
        let pid = unsafe { container::process::clone_fork(flags) }.expect("clone");
        if pid == 0 {
            // SAFETY: dup2 on a descriptor the fork copied, open until the exec.
            unsafe { libc::dup2(null, 1) };
            // SAFETY: as above.
            unsafe { libc::dup2(null, 2) };
            // SAFETY: a C string and null-terminated pointer arrays the fork copied.
            unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            // SAFETY: ends the child at once when the exec failed.
            unsafe { libc::_exit(127) };
        }
        wait_ok(pid);
    }
}

fn wait_ok(pid: u32) {
    let mut status = 0;
    // SAFETY: a valid out-pointer; the PID is this process's unreaped child.
    let reaped = unsafe { libc::waitpid(libc::pid_t::try_from(pid).unwrap_or(0), &mut status, 0) };
    assert!(
        reaped > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed: status {status}"
    );
}

fn processes(c: &mut Criterion, smallest: &Path, workload: &Path) {
    let tiny = Program::new(smallest, &[]);
    let hello = Program::new(workload, &["hello"]);
    let mut group = c.benchmark_group("process");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("fork + exec smallest static program + wait", |b| {
        b.iter(|| tiny.clone_exec_wait(0))
    });
    group.bench_function("posix_spawn smallest static program + wait", |b| {
        b.iter(|| {
            let status = std::process::Command::new(smallest)
                .status()
                .expect("spawn");
            assert!(status.success());
        })
    });
    group.bench_function("fork + exec workload hello + wait", |b| {
        b.iter(|| hello.clone_exec_wait(0))
    });
    group.finish();

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped namespaces: clone with all seven namespaces needs root here");
        return;
    }
    let mut group = c.benchmark_group("namespaces");
    group.measurement_time(Duration::from_secs(3));
    let all = container::Namespaces::ALL.clone_flags();
    group.bench_function(
        "clone with all seven + exec smallest static program + wait",
        |b| b.iter(|| tiny.clone_exec_wait(all)),
    );
    group.bench_function("clone with all seven but net + exec smallest + wait", |b| {
        b.iter(|| tiny.clone_exec_wait(all & !libc::CLONE_NEWNET))
    });
    group.finish();
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
    fn new(len: usize) -> Self {
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
        assert_ne!(addr, libc::MAP_FAILED, "mmap guest memory");
        Mapping { addr, len }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range was mapped by `new` and nothing refers to it any more (the VM
        // that registered it is dropped first, see `first_exit`).
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

/// What one measured build leaves, dropped in field order: vCPU, VM, memory, /dev/kvm.
struct Built {
    _vcpu: kvm_ioctls::VcpuFd,
    _vm: kvm_ioctls::VmFd,
    _memory: Mapping,
    _kvm: Kvm,
}

/// Builds a VM from nothing and runs it to its first exit; returns the time that took and
/// what must be dropped afterwards, outside the clock.
fn first_exit() -> (Duration, Built) {
    let start = Instant::now();
    let kvm = Kvm::new().expect("open /dev/kvm");
    let vm = kvm.create_vm().expect("KVM_CREATE_VM");
    let memory = Mapping::new(GUEST_BYTES);
    let code_at = usize::try_from(CODE_AT).expect("a small offset");
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
    unsafe { vm.set_user_memory_region(region) }.expect("KVM_SET_USER_MEMORY_REGION");
    let mut vcpu = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
    let mut sregs = vcpu.get_sregs().expect("KVM_GET_SREGS");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).expect("KVM_SET_SREGS");
    let regs = kvm_bindings::kvm_regs {
        rip: CODE_AT,
        rflags: 2,
        rax: 0,
        ..Default::default()
    };
    vcpu.set_regs(&regs).expect("KVM_SET_REGS");
    match vcpu.run().expect("KVM_RUN") {
        VcpuExit::IoOut(0x80, [1]) => {}
        other => panic!("the guest's first exit was not its port write: {other:?}"),
    }
    let took = start.elapsed();
    (
        took,
        Built {
            _vcpu: vcpu,
            _vm: vm,
            _memory: memory,
            _kvm: kvm,
        },
    )
}

fn kvm(c: &mut Criterion) {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        eprintln!("skipped kvm: /dev/kvm is not usable: {e}");
        return;
    }
    let mut group = c.benchmark_group("kvm");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function(
        "open + create VM + 128 MiB region + vCPU + run to first exit",
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (took, built) = first_exit();
                    total += took;
                    drop(built);
                }
                total
            })
        },
    );
    group.finish();
}

fn all(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Searchable by the unmapped user a new user namespace runs as.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("open the temporary directory");
    let smallest = dir.path().join("smallest");
    let mut file = std::fs::File::create(&smallest).expect("write the smallest program");
    file.write_all(&smallest_elf())
        .expect("write the smallest program");
    file.set_permissions(std::fs::Permissions::from_mode(0o755))
        .expect("make it executable");
    drop(file);
    let workload = images::image::install_workload(dir.path()).expect("install the workload");
    processes(c, &smallest, &workload);
    kvm(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
