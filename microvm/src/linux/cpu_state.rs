//! The vCPU state Linux expects at its 64-bit entry, beyond the long-mode segments and
//! page tables of [`crate::vcpu`]: model-specific registers, the local APIC's LINT pins,
//! the FPU, and the general registers of the boot protocol.

use kvm_bindings::{kvm_fpu, kvm_lapic_state, kvm_msr_entry, kvm_regs};

use crate::layout::{BOOT_STACK, ZERO_PAGE_START};
use crate::vcpu::RFLAGS_RESERVED;

/// MSRs.
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// IA32_MISC_ENABLE: fast string operations enabled, as firmware leaves it.
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// MTRRdefType: MTRRs enabled, default memory type write-back.
const MTRR_ENABLE_WRITEBACK: u64 = (1 << 11) | 6;

/// Local APIC registers (offsets into the APIC page) and delivery modes.
const APIC_LVT_LINT0: usize = 0x350;
const APIC_LVT_LINT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// The x87 control word and SSE control/status after FNINIT and reset.
const FPU_CONTROL_WORD: u16 = 0x37f;
const MXCSR_DEFAULT: u32 = 0x1f80;

/// The MSRs set on every vCPU before it starts: the system-call MSRs cleared, the TSC at
/// zero, fast strings on, MTRRs on with write-back memory (as firmware would leave them).
pub fn boot_msrs() -> Vec<kvm_msr_entry> {
    let entry = |index, data| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    };
    vec![
        entry(MSR_IA32_SYSENTER_CS, 0),
        entry(MSR_IA32_SYSENTER_ESP, 0),
        entry(MSR_IA32_SYSENTER_EIP, 0),
        entry(MSR_STAR, 0),
        entry(MSR_CSTAR, 0),
        entry(MSR_KERNEL_GS_BASE, 0),
        entry(MSR_SYSCALL_MASK, 0),
        entry(MSR_LSTAR, 0),
        entry(MSR_IA32_TSC, 0),
        entry(MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        entry(MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WRITEBACK),
    ]
}

fn lapic_register(lapic: &kvm_lapic_state, offset: usize) -> u32 {
    let bytes: [u8; 4] = std::array::from_fn(|i| lapic.regs[offset + i].to_ne_bytes()[0]);
    u32::from_le_bytes(bytes)
}

fn set_lapic_register(lapic: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (i, byte) in value.to_le_bytes().iter().enumerate() {
        lapic.regs[offset + i] = std::ffi::c_char::from_ne_bytes([*byte]);
    }
}

/// Wires the local APIC's pins as a PC's firmware does: LINT0 delivers the 8259's ExtINT,
/// LINT1 delivers NMI. The other bits of each LVT entry (mask, trigger) are kept.
pub fn wire_lint_pins(lapic: &mut kvm_lapic_state) {
    for (offset, mode) in [
        (APIC_LVT_LINT0, APIC_MODE_EXTINT),
        (APIC_LVT_LINT1, APIC_MODE_NMI),
    ] {
        let value = lapic_register(lapic, offset);
        set_lapic_register(lapic, offset, (value & !0x700) | (mode << 8));
    }
}

/// Local APIC register offsets of the timer.
const APIC_LVT_TIMER: usize = 0x320;
const APIC_TIMER_INITIAL: usize = 0x380;
const APIC_TIMER_CURRENT: usize = 0x390;

/// The local APIC timer as one line: its mode, whether it is masked, its vector, and its
/// counts (one-shot and periodic modes count down; TSC-deadline mode counts nothing here).
pub fn lapic_timer(lapic: &kvm_lapic_state) -> String {
    let lvt = lapic_register(lapic, APIC_LVT_TIMER);
    let mode = match (lvt >> 17) & 0b11 {
        0 => "one-shot",
        1 => "periodic",
        2 => "TSC-deadline",
        _ => "reserved mode",
    };
    let masked = if lvt & (1 << 16) != 0 { ", masked" } else { "" };
    format!(
        "APIC timer {mode}{masked}, vector {:#x}, initial count {}, current count {}",
        lvt & 0xff,
        lapic_register(lapic, APIC_TIMER_INITIAL),
        lapic_register(lapic, APIC_TIMER_CURRENT)
    )
}

/// The FPU as FNINIT leaves it, with SSE exceptions masked.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: FPU_CONTROL_WORD,
        mxcsr: MXCSR_DEFAULT,
        ..Default::default()
    }
}

/// The boot vCPU's general registers at the 64-bit entry: RIP at the kernel's entry, RSI
/// pointing to the boot parameters, a stack, interrupts off.
pub fn boot_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsi: ZERO_PAGE_START,
        rsp: BOOT_STACK,
        rbp: BOOT_STACK,
        rflags: RFLAGS_RESERVED,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apic_timer_is_described_from_its_registers() {
        let mut lapic = kvm_lapic_state::default();
        set_lapic_register(&mut lapic, APIC_LVT_TIMER, (2 << 17) | 0xec);
        assert_eq!(
            lapic_timer(&lapic),
            "APIC timer TSC-deadline, vector 0xec, initial count 0, current count 0"
        );
        set_lapic_register(&mut lapic, APIC_LVT_TIMER, (1 << 16) | 0xef);
        set_lapic_register(&mut lapic, APIC_TIMER_INITIAL, 1000);
        set_lapic_register(&mut lapic, APIC_TIMER_CURRENT, 250);
        assert_eq!(
            lapic_timer(&lapic),
            "APIC timer one-shot, masked, vector 0xef, initial count 1000, current count 250"
        );
    }

    #[test]
    fn lint0_is_extint_and_lint1_nmi_other_bits_kept() {
        let mut lapic = kvm_lapic_state::default();
        // Masked (bit 16) and level-triggered (bit 15), fixed delivery.
        set_lapic_register(&mut lapic, APIC_LVT_LINT0, 0x1_8000);
        set_lapic_register(&mut lapic, APIC_LVT_LINT1, 0x1_0000);
        wire_lint_pins(&mut lapic);
        assert_eq!(lapic_register(&lapic, APIC_LVT_LINT0), 0x1_8700);
        assert_eq!(lapic_register(&lapic, APIC_LVT_LINT1), 0x1_0400);
        assert_eq!(lapic.regs[APIC_LVT_LINT0 + 1].cast_unsigned(), 0x87);
    }

    #[test]
    fn the_boot_registers_follow_the_64_bit_protocol() {
        let regs = boot_regs(0x100_0000);
        assert_eq!((regs.rip, regs.rsi), (0x100_0000, 0x7000));
        assert_eq!(regs.rflags & 0x200, 0, "interrupts off");
        assert!(regs.rsp > 0x7000 + 0x1000 - 1 && regs.rsp < 0x9000);
        let msrs = boot_msrs();
        assert!(msrs.iter().any(|m| m.index == 0x2ff && m.data == 0x806));
        assert_eq!(boot_fpu().fcw, 0x37f);
    }
}
