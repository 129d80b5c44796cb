//! vCPU state for the modes a payload starts in.
//!
//! Real mode: every segment at base 0, so `cs:ip` = `0:PAYLOAD_START`. Protected mode:
//! flat 4 GiB code and data segments (the descriptors a GDT would hold, loaded straight
//! into the segment registers), `CR0.PE` set, paging off, an empty IDT (so any exception
//! escalates to a triple fault, which the monitor reports). Long mode: what the Linux
//! 64-bit boot protocol (Documentation/arch/x86/boot.rst) requires: paging on with the
//! kernel's range identity-mapped (here the first GiB, in 2 MiB pages), a loaded GDT whose
//! flat segments `__BOOT_CS` (0x10, execute/read) and `__BOOT_DS` (0x18, read/write) are in
//! CS and DS/ES/SS, and interrupts off.

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

use crate::guest::Mode;
use crate::layout::{GDT_START, IDENTITY_MAPPED, PAYLOAD_START, PDPT_START, PD_START, PML4_START};

/// CR0 paging.
pub const CR0_PG: u64 = 1 << 31;
/// CR4 physical address extension (required by long mode).
pub const CR4_PAE: u64 = 1 << 5;
/// EFER long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// The boot protocol's code segment selector.
pub const BOOT_CS: u16 = 0x10;
/// The boot protocol's data segment selector.
pub const BOOT_DS: u16 = 0x18;
/// Page table entry: present and writable.
const PRESENT_WRITABLE: u64 = 0b11;
/// Page directory entry: a 2 MiB page.
const HUGE: u64 = 1 << 7;

/// A GDT descriptor from its flags (the 12 bits of type, S, DPL, P, AVL, L, D/B, G, as in
/// bits 40..55 of the descriptor), base and limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let flags = flags as u64;
    let base = base as u64;
    let limit = limit as u64;
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
}

/// The boot GDT: null, null, `__BOOT_CS` (64-bit code), `__BOOT_DS` (flat data).
pub const BOOT_GDT: [u64; 4] = [
    0,
    0,
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
];

/// The segment register value a GDT descriptor loads as selector `index * 8`.
pub fn segment_from_gdt(entry: u64, index: u16) -> kvm_segment {
    let bit = |n: u32| u8::from(entry >> n & 1 == 1);
    kvm_segment {
        base: ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: {
            let raw = u32::try_from((entry & 0xffff) | ((entry >> 32) & 0xf_0000)).unwrap_or(0);
            // With G set the limit counts 4 KiB pages.
            if bit(55) == 1 {
                (raw << 12) | 0xfff
            } else {
                raw
            }
        },
        selector: index * 8,
        type_: u8::try_from((entry >> 40) & 0xf).unwrap_or(0),
        present: bit(47),
        dpl: u8::try_from((entry >> 45) & 0x3).unwrap_or(0),
        db: bit(54),
        s: bit(44),
        l: bit(53),
        g: bit(55),
        avl: bit(52),
        unusable: u8::from(bit(47) == 0),
        padding: 0,
    }
}

/// What a long-mode guest needs in memory before it starts: (guest-physical address,
/// bytes) of the GDT and the identity-mapping page tables.
pub fn long_mode_tables() -> Vec<(u64, Vec<u8>)> {
    let gdt: Vec<u8> = BOOT_GDT.iter().flat_map(|e| e.to_le_bytes()).collect();
    let pml4 = (PDPT_START | PRESENT_WRITABLE).to_le_bytes().to_vec();
    let pdpt = (PD_START | PRESENT_WRITABLE).to_le_bytes().to_vec();
    let pd: Vec<u8> = (0..IDENTITY_MAPPED / (2 << 20))
        .flat_map(|i| ((i * (2 << 20)) | PRESENT_WRITABLE | HUGE).to_le_bytes())
        .collect();
    vec![
        (GDT_START, gdt),
        (PML4_START, pml4),
        (PDPT_START, pdpt),
        (PD_START, pd),
    ]
}

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
        Mode::Long => {
            sregs.gdt.base = GDT_START;
            sregs.gdt.limit = u16::try_from(BOOT_GDT.len() * 8 - 1).unwrap_or(0);
            sregs.idt.base = 0;
            sregs.idt.limit = 0;
            sregs.cs = segment_from_gdt(BOOT_GDT[2], 2);
            let data = segment_from_gdt(BOOT_GDT[3], 3);
            sregs.ds = data;
            sregs.es = data;
            sregs.fs = data;
            sregs.gs = data;
            sregs.ss = data;
            sregs.cr3 = PML4_START;
            sregs.cr4 |= CR4_PAE;
            sregs.cr0 |= CR0_PE | CR0_PG;
            sregs.efer |= EFER_LME | EFER_LMA;
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
    fn long_mode_state_is_what_the_64_bit_boot_protocol_requires() {
        let mut sregs = kvm_sregs::default();
        setup_sregs(&mut sregs, Mode::Long);
        assert_eq!(sregs.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
        assert_eq!(sregs.cr4 & CR4_PAE, CR4_PAE);
        assert_eq!(sregs.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(sregs.cr3, PML4_START);
        // __BOOT_CS: 64-bit (L=1, D=0), execute/read, ring 0, flat.
        assert_eq!(
            (sregs.cs.selector, sregs.cs.l, sregs.cs.db, sregs.cs.type_),
            (BOOT_CS, 1, 0, 0xb)
        );
        assert_eq!(
            (
                sregs.cs.base,
                sregs.cs.limit,
                sregs.cs.dpl,
                sregs.cs.present
            ),
            (0, 0xffff_ffff, 0, 1)
        );
        // __BOOT_DS in DS, ES and SS: read/write, flat 4 GiB.
        for seg in [sregs.ds, sregs.es, sregs.ss] {
            assert_eq!(
                (seg.selector, seg.type_, seg.base, seg.limit, seg.db),
                (BOOT_DS, 0x3, 0, 0xffff_ffff, 1)
            );
        }
        assert_eq!((sregs.gdt.base, sregs.gdt.limit), (GDT_START, 31));
        assert_eq!(entry_regs().rflags & 0x200, 0, "interrupts must be off");
    }

    #[test]
    fn gdt_entries_encode_the_usual_descriptors() {
        assert_eq!(BOOT_GDT[2], 0x00af_9b00_0000_ffff);
        assert_eq!(BOOT_GDT[3], 0x00cf_9300_0000_ffff);
        assert_eq!(segment_from_gdt(0, 0).unusable, 1);
    }

    #[test]
    fn page_tables_identity_map_the_first_gib() {
        let tables = long_mode_tables();
        let find = |at: u64| &tables.iter().find(|(a, _)| *a == at).unwrap().1;
        let word = |bytes: &[u8], i: usize| {
            u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap())
        };
        assert_eq!(word(find(PML4_START), 0), PDPT_START | 0b11);
        assert_eq!(word(find(PDPT_START), 0), PD_START | 0b11);
        let pd = find(PD_START);
        assert_eq!(pd.len(), 512 * 8);
        for i in [0usize, 1, 511] {
            // Present, writable, 2 MiB page, mapping virtual i * 2 MiB to physical i * 2 MiB.
            assert_eq!(word(pd, i), ((i as u64) * (2 << 20)) | 0b11 | (1 << 7));
        }
        // The tables and the GDT overlap neither each other nor the payload.
        let mut spans: Vec<(u64, u64)> = tables
            .iter()
            .map(|(a, b)| (*a, *a + b.len() as u64))
            .collect();
        spans.sort_unstable();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0));
        assert!(spans
            .iter()
            .all(|(_, end)| *end <= PAYLOAD_START || *end <= PD_START + 4096));
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
