//! vCPU state for the modes a payload starts in.
//!
//! Real mode: every segment at base 0, so `cs:ip` = `0:PAYLOAD_START`. Protected mode:
//! flat 4 GiB code and data segments (the descriptors a GDT would hold, loaded straight
//! into the segment registers), `CR0.PE` set, paging off, an empty IDT (so any exception
//! escalates to a triple fault, which the monitor reports). 64-bit long mode, with page
//! tables and a GDT in guest memory, comes with Linux guests.

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

use crate::guest::Mode;
use crate::layout::PAYLOAD_START;

/// CR0 protection enable.
pub const CR0_PE: u64 = 1;
/// RFLAGS bit 1 is reserved and always set; interrupts stay off (IF clear).
pub const RFLAGS_RESERVED: u64 = 0x2;
/// Selector of the flat code segment.
pub const CODE_SELECTOR: u16 = 0x08;
/// Selector of the flat data segment.
pub const DATA_SELECTOR: u16 = 0x10;

/// A flat 4 GiB, 32-bit, ring-0, present segment of `type_` (0xb code, 0x3 data).
pub fn flat_segment(selector: u16, type_: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Sets `sregs` up for `mode`, starting from the vCPU's reset state.
pub fn setup_sregs(sregs: &mut kvm_sregs, mode: Mode) {
    match mode {
        Mode::Real => {
            for seg in [
                &mut sregs.cs,
                &mut sregs.ds,
                &mut sregs.es,
                &mut sregs.fs,
                &mut sregs.gs,
                &mut sregs.ss,
            ] {
                seg.base = 0;
                seg.selector = 0;
            }
        }
        Mode::Protected => {
            sregs.cs = flat_segment(CODE_SELECTOR, 0xb);
            let data = flat_segment(DATA_SELECTOR, 0x3);
            sregs.ds = data;
            sregs.es = data;
            sregs.fs = data;
            sregs.gs = data;
            sregs.ss = data;
            sregs.cr0 |= CR0_PE;
            sregs.idt.base = 0;
            sregs.idt.limit = 0;
        }
    }
}

/// General registers: entry at the payload, interrupts off.
pub fn entry_regs() -> kvm_regs {
    kvm_regs {
        rip: PAYLOAD_START,
        rflags: RFLAGS_RESERVED,
        ..kvm_regs::default()
    }
}

/// The registers worth reporting when a guest fails.
pub fn describe(regs: &kvm_regs, sregs: &kvm_sregs) -> String {
    format!(
        "rip={:#x} rsp={:#x} rax={:#x} rcx={:#x} rdi={:#x} rflags={:#x} cs={:#x}(base {:#x}) cr0={:#x}",
        regs.rip, regs.rsp, regs.rax, regs.rcx, regs.rdi, regs.rflags, sregs.cs.selector, sregs.cs.base, sregs.cr0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_is_flat_32_bit_ring_0() {
        let mut sregs = kvm_sregs::default();
        setup_sregs(&mut sregs, Mode::Protected);
        assert_eq!(sregs.cr0 & CR0_PE, 1);
        for seg in [sregs.cs, sregs.ds, sregs.ss] {
            assert_eq!(
                (seg.base, seg.limit, seg.g, seg.db, seg.dpl, seg.present),
                (0, 0xffff_ffff, 1, 1, 0, 1)
            );
        }
        assert_eq!((sregs.cs.type_, sregs.cs.selector), (0xb, CODE_SELECTOR));
        assert_eq!((sregs.ds.type_, sregs.ds.selector), (0x3, DATA_SELECTOR));
        assert_eq!(sregs.idt.limit, 0);
    }

    #[test]
    fn real_mode_segments_are_at_zero_and_entry_is_the_payload() {
        let mut sregs = kvm_sregs::default();
        sregs.cs.base = 0xffff_0000;
        sregs.cs.selector = 0xf000;
        setup_sregs(&mut sregs, Mode::Real);
        assert_eq!((sregs.cs.base, sregs.cs.selector), (0, 0));
        assert_eq!(sregs.cr0 & CR0_PE, 0);
        let regs = entry_regs();
        assert_eq!((regs.rip, regs.rflags & 0x200), (PAYLOAD_START, 0));
    }
}
