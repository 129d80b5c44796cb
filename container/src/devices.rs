//! Which devices a container may use, and the two forms its cgroup enforces that in: the
//! allow-list ([`ALLOWED`]: the nodes the runtime puts in `/dev` and the container's own
//! pseudo-terminals), its cgroup v1 form (`devices.deny` and `devices.allow` lines), and
//! its cgroup v2 form: an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`, assembled
//! here instruction by instruction, loaded and attached to the instance's cgroup with raw
//! bpf(2) calls. The kernel detaches it when the cgroup is removed. A process loads each
//! program once ([`loaded`]) and attaches that one to every instance's cgroup: the load,
//! where the kernel's verifier checks the program, took about 140 µs, the attach 8 µs.
//!
//! The program does what the usual runtimes' device programs do (the same context fields,
//! one block per rule, deny by default), written from the kernel's interface
//! (`struct bpf_cgroup_dev_ctx`, `BPF_DEVCG_*`), with no BPF library.
//!
//! Without a cgroup (a container started by an unprivileged user) nothing is attached, and
//! no device beyond the ones in its `/dev` (the host's, bound: such a container has a user
//! namespace) is reachable all the same: mknod(2) of a device needs
//! `CAP_MKNOD` in the initial user namespace, which no process in a user namespace has,
//! and the file systems a user namespace mounts never honour device nodes. A root
//! container run without a cgroup relies on its capabilities instead: the default set
//! has no `CAP_MKNOD`, and every mount the runtime makes but `/dev` and `/dev/pts` is
//! `nodev`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Errors loading or attaching a device program.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused the program.
    #[error("the kernel refused the cgroup device program{}", verifier(.log))]
    Load {
        /// Why.
        #[source]
        source: std::io::Error,
        /// The verifier's log, when it gave one.
        log: String,
    },
    /// The cgroup directory could not be opened.
    #[error("cannot open the cgroup {path}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The program could not be attached to the cgroup.
    #[error("cannot attach the device program to the cgroup {path}")]
    Attach {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn verifier(log: &str) -> String {
    match log.trim() {
        "" => String::new(),
        log => format!(" (verifier: {log})"),
    }
}

/// Character or block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A character device.
    Char,
    /// A block device.
    Block,
}

/// Reading, writing and making nodes (mknod), as both cgroup versions name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// Make a node with mknod(2).
    pub mknod: bool,
}

impl Access {
    /// Everything: `rwm`.
    pub const ALL: Access = Access {
        read: true,
        write: true,
        mknod: true,
    };

    /// The v1 letters, `rwm` or a part of it.
    pub fn letters(self) -> String {
        [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')]
            .into_iter()
            .filter_map(|(on, c)| on.then_some(c))
            .collect()
    }

    /// The `BPF_DEVCG_ACC_*` bits.
    fn bits(self) -> i32 {
        (i32::from(self.mknod) * ACC_MKNOD)
            | (i32::from(self.read) * ACC_READ)
            | (i32::from(self.write) * ACC_WRITE)
    }
}

/// One allowed device, or a range of minors of one major.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Its kind.
    pub kind: Kind,
    /// Its major number.
    pub major: u32,
    /// Its minor number; `None` for every minor.
    pub minor: Option<u32>,
    /// What is allowed.
    pub access: Access,
    /// The node it is, for reports: `/dev/null`, `/dev/pts/*`.
    pub node: &'static str,
}

impl Rule {
    /// The line written to a v1 `devices.allow`: `c 1:3 rwm`.
    pub fn v1_line(&self) -> String {
        let kind = match self.kind {
            Kind::Char => 'c',
            Kind::Block => 'b',
        };
        let minor = self.minor.map_or_else(|| "*".to_owned(), |m| m.to_string());
        format!("{kind} {}:{minor} {}", self.major, self.access.letters())
    }
}

const fn char_device(major: u32, minor: Option<u32>, node: &'static str) -> Rule {
    Rule {
        kind: Kind::Char,
        major,
        minor,
        access: Access::ALL,
        node,
    }
}

/// The devices every container may use: those the mount plan binds from the host into
/// `/dev` (their numbers are fixed by the kernel's device list), the `ptmx` of the
/// container's own devpts instance, and that instance's terminals (major 136, the first
/// block of Unix98 pseudo-terminal slaves; a slave opens only through its devpts, so these
/// reach no other instance's terminals). Everything else is denied.
pub const ALLOWED: [Rule; 8] = [
    char_device(1, Some(3), "/dev/null"),
    char_device(1, Some(5), "/dev/zero"),
    char_device(1, Some(7), "/dev/full"),
    char_device(1, Some(8), "/dev/random"),
    char_device(1, Some(9), "/dev/urandom"),
    char_device(5, Some(0), "/dev/tty"),
    char_device(5, Some(2), "/dev/pts/ptmx"),
    char_device(136, None, "/dev/pts/*"),
];

// The cgroup device program's interface (linux/bpf.h).
/// `BPF_DEVCG_ACC_MKNOD`.
const ACC_MKNOD: i32 = 1;
/// `BPF_DEVCG_ACC_READ`.
const ACC_READ: i32 = 2;
/// `BPF_DEVCG_ACC_WRITE`.
const ACC_WRITE: i32 = 4;
/// `BPF_DEVCG_DEV_BLOCK`.
const DEV_BLOCK: i32 = 1;
/// `BPF_DEVCG_DEV_CHAR`.
const DEV_CHAR: i32 = 2;
/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE`, the attach type.
const ATTACH_CGROUP_DEVICE: u32 = 6;
/// `BPF_PROG_LOAD`.
const CMD_PROG_LOAD: libc::c_int = 5;
/// `BPF_PROG_ATTACH`.
const CMD_PROG_ATTACH: libc::c_int = 8;

// eBPF instruction encoding (linux/bpf_common.h, linux/bpf.h).
const LDX: u8 = 0x01;
const ALU32: u8 = 0x04;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const MEM_W: u8 = 0x60; // BPF_MEM | BPF_W
const K: u8 = 0x00;
const X: u8 = 0x08;
const AND: u8 = 0x50;
const RSH: u8 = 0x70;
const MOV: u8 = 0xb0;
const JNE: u8 = 0x50;
const EXIT: u8 = 0x90;

/// One eBPF instruction, `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Operation.
    pub code: u8,
    /// Destination register in the low four bits, source register in the high four.
    pub regs: u8,
    /// Signed offset: of a memory access, or of a jump (in instructions).
    pub off: i16,
    /// Immediate operand.
    pub imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | src << 4,
        off,
        imm,
    }
}

/// The device program for `rules`: 1 (allow) for a device access one of them covers, 0
/// (deny, `EPERM`) for every other.
///
/// The context is `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
/// with the device kind in the low 16 bits of `access_type` and the access in the high 16.
/// The program loads the four values into r2 to r5 once, then has one block per rule that
/// jumps to the next block on the first mismatch and returns 1 at its end.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX | MEM_W, 2, 1, 0, 0),          // r2 = ctx->access_type
        insn(ALU32 | AND | K, 2, 0, 0, 0xffff), // r2 &= 0xffff: the kind
        insn(LDX | MEM_W, 3, 1, 0, 0),          // r3 = ctx->access_type
        insn(ALU32 | RSH | K, 3, 0, 0, 16),     // r3 >>= 16: the access
        insn(LDX | MEM_W, 4, 1, 4, 0),          // r4 = ctx->major
        insn(LDX | MEM_W, 5, 1, 8, 0),          // r5 = ctx->minor
    ];
    for rule in rules {
        let mut block = Vec::new();
        let kind = match rule.kind {
            Kind::Char => DEV_CHAR,
            Kind::Block => DEV_BLOCK,
        };
        // Each jump's offset is patched below to land after the block.
        block.push(insn(JMP | JNE | K, 2, 0, 0, kind));
        let access = rule.access.bits();
        if access != Access::ALL.bits() {
            // Refused if any asked bit is outside the allowed ones.
            block.push(insn(ALU64 | MOV | X, 1, 3, 0, 0)); // r1 = access
            block.push(insn(ALU32 | AND | K, 1, 0, 0, !access)); // r1 &= ~allowed
            block.push(insn(JMP | JNE | K, 1, 0, 0, 0));
        }
        block.push(insn(JMP | JNE | K, 4, 0, 0, imm(rule.major)));
        if let Some(minor) = rule.minor {
            block.push(insn(JMP | JNE | K, 5, 0, 0, imm(minor)));
        }
        block.push(insn(ALU64 | MOV | K, 0, 0, 0, 1)); // r0 = 1: allow
        block.push(insn(JMP | EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP | JNE | K {
                // From the instruction after the jump to the first after the block.
                ins.off = i16::try_from(len - i - 1).unwrap_or(i16::MAX);
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU64 | MOV | K, 0, 0, 0, 0)); // r0 = 0: deny
    p.push(insn(JMP | EXIT, 0, 0, 0, 0));
    p
}

/// A device number as an immediate: the kernel compares the 32-bit context field with the
/// immediate sign-extended, so numbers above `i32::MAX` (none exist) would never match.
fn imm(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(-1)
}

/// `union bpf_attr` as `BPF_PROG_LOAD` reads it, up to `expected_attach_type`.
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` as `BPF_PROG_ATTACH` reads it, up to `replace_bpf_fd`.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> libc::c_long {
    // SAFETY: `attr` is a `union bpf_attr` prefix of the layout the command reads, valid
    // for its whole size; the kernel copies it and zero-fills what it knows beyond it.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>(),
        )
    }
}

/// Loads `program` as a cgroup device program; its descriptor keeps it alive.
pub fn load(program: &[Insn]) -> Result<OwnedFd, Error> {
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"vcbench_dev");
    let mut log = vec![0u8; 0];
    let attempt = |log: &mut Vec<u8>| {
        let mut attr = ProgLoad {
            prog_type: PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: u32::try_from(program.len()).unwrap_or(u32::MAX),
            insns: program.as_ptr() as u64,
            license: c"Apache-2.0".as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: u32::try_from(log.len()).unwrap_or(0),
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            kern_version: 0,
            prog_flags: 0,
            prog_name: name,
            prog_ifindex: 0,
            expected_attach_type: ATTACH_CGROUP_DEVICE,
        };
        let fd = bpf(CMD_PROG_LOAD, &mut attr);
        match libc::c_int::try_from(fd) {
            // SAFETY: the kernel just returned this descriptor, owned by nothing else.
            Ok(fd) if fd >= 0 => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            _ => Err(std::io::Error::last_os_error()),
        }
    };
    attempt(&mut log).or_else(|_| {
        // Again with the verifier's log, to say why.
        log = vec![0u8; 64 * 1024];
        attempt(&mut log).map_err(|source| Error::Load {
            source,
            log: String::from_utf8_lossy(log.split(|b| *b == 0).next().unwrap_or(&[])).into_owned(),
        })
    })
}

/// Attaches a loaded device program to the cgroup directory `dir` (v2). Without
/// `BPF_F_ALLOW_OVERRIDE` or `BPF_F_ALLOW_MULTI`, so nothing inside the cgroup can put a
/// program of its own in its place; programs on the cgroup's ancestors apply as well.
pub fn attach(dir: &Path, program: &OwnedFd) -> Result<(), Error> {
    let cgroup = std::fs::File::open(dir).map_err(|source| Error::Open {
        path: dir.to_owned(),
        source,
    })?;
    let mut attr = ProgAttach {
        target_fd: u32::try_from(cgroup.as_raw_fd()).unwrap_or(u32::MAX),
        attach_bpf_fd: u32::try_from(program.as_raw_fd()).unwrap_or(u32::MAX),
        attach_type: ATTACH_CGROUP_DEVICE,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    if bpf(CMD_PROG_ATTACH, &mut attr) < 0 {
        return Err(Error::Attach {
            path: dir.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Every program this process has loaded, by its instructions, with the descriptor that
/// keeps it loaded (close-on-exec, as bpf(2) makes every descriptor).
static LOADED: Mutex<Vec<(Vec<Insn>, Arc<OwnedFd>)>> = Mutex::new(Vec::new());

/// `program`, loaded once by this process ([`load`]) and kept loaded until it exits:
/// every instance of a run attaches the same one.
pub fn loaded(program: &[Insn]) -> Result<Arc<OwnedFd>, Error> {
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, fd)) = loaded.iter().find(|(p, _)| p.as_slice() == program) {
        return Ok(Arc::clone(fd));
    }
    let fd = Arc::new(load(program)?);
    loaded.push((program.to_vec(), Arc::clone(&fd)));
    Ok(fd)
}

/// Allows exactly `rules` to every process in the v2 cgroup `dir`: attaches their
/// program, loaded once per process.
pub fn restrict(dir: &Path, rules: &[Rule]) -> Result<(), Error> {
    attach(dir, &*loaded(&program(rules))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a device program on one access: the subset [`program`] emits.
    fn run(p: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [u32::try_from(access << 16 | kind).unwrap(), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            pc += 1;
            let (dst, src) = (usize::from(i.regs & 0xf), usize::from(i.regs >> 4));
            let imm64 = i64::from(i.imm).cast_unsigned();
            match i.code {
                c if c == LDX | MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[usize::try_from(i.off / 4).unwrap()]);
                }
                c if c == ALU32 | AND | K => r[dst] = (r[dst] & imm64) & 0xffff_ffff,
                c if c == ALU32 | RSH | K => r[dst] = (r[dst] & 0xffff_ffff) >> i.imm,
                c if c == ALU64 | MOV | X => r[dst] = r[src],
                c if c == ALU64 | MOV | K => r[dst] = imm64,
                c if c == JMP | JNE | K => {
                    if r[dst] != imm64 {
                        pc += usize::try_from(i.off).unwrap();
                    }
                }
                c if c == JMP | EXIT => return r[0],
                c => panic!("unexpected instruction {c:#x}"),
            }
        }
    }

    #[test]
    fn the_program_allows_exactly_the_rules() {
        let p = program(&ALLOWED);
        let rwm = ACC_READ | ACC_WRITE | ACC_MKNOD;
        for access in [ACC_READ, ACC_WRITE, ACC_MKNOD, rwm] {
            for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
                assert_eq!(
                    run(&p, DEV_CHAR, access, major, minor),
                    1,
                    "{major}:{minor}"
                );
                // The same numbers as a block device are another device.
                assert_eq!(run(&p, DEV_BLOCK, access, major, minor), 0);
            }
            for minor in [0, 1, 7, 4095, 1 << 19] {
                assert_eq!(run(&p, DEV_CHAR, access, 136, minor), 1);
            }
            // /dev/mem, /dev/kmsg, /dev/port, a console, the host's disks, kvm.
            for (major, minor) in [(1, 1), (1, 11), (1, 4), (4, 0), (5, 1), (10, 232)] {
                assert_eq!(
                    run(&p, DEV_CHAR, access, major, minor),
                    0,
                    "{major}:{minor}"
                );
            }
            for (major, minor) in [(8, 0), (254, 0), (259, 0), (7, 0)] {
                assert_eq!(
                    run(&p, DEV_BLOCK, access, major, minor),
                    0,
                    "{major}:{minor}"
                );
            }
        }
        // An empty list denies everything.
        assert_eq!(run(&program(&[]), DEV_CHAR, ACC_READ, 1, 3), 0);
    }

    #[test]
    fn partial_access_is_checked_bit_by_bit() {
        let read_only = Rule {
            kind: Kind::Block,
            major: 7,
            minor: None,
            access: Access {
                read: true,
                write: false,
                mknod: false,
            },
            node: "/dev/loop*",
        };
        let p = program(&[read_only]);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 7, 3), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 7, 3), 0);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ | ACC_WRITE, 7, 3), 0);
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD, 7, 3), 0);
        assert_eq!(read_only.v1_line(), "b 7:* r");
    }

    #[test]
    fn v1_lines_name_each_device() {
        let lines: Vec<String> = ALLOWED.iter().map(Rule::v1_line).collect();
        assert_eq!(
            lines,
            [
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:2 rwm",
                "c 136:* rwm"
            ]
        );
    }

    #[test]
    fn every_device_of_dev_is_allowed_under_its_real_number() {
        use std::os::unix::fs::FileTypeExt;
        use std::os::unix::fs::MetadataExt;
        for (name, major, minor) in crate::mounts::DEVICES {
            let node = format!("/dev/{name}");
            let rule = ALLOWED
                .iter()
                .find(|r| r.node == node)
                .unwrap_or_else(|| panic!("{node} is in /dev but not allowed"));
            // The host's node has the number the rule allows, and the one it is made with.
            assert_eq!((rule.major, rule.minor), (major, Some(minor)), "{node}");
            let meta = std::fs::metadata(&node).unwrap();
            assert!(meta.file_type().is_char_device(), "{node}");
            let rdev = meta.rdev();
            assert_eq!(
                (libc::major(rdev), Some(libc::minor(rdev))),
                (rule.major, rule.minor),
                "{node}"
            );
        }
    }
}
