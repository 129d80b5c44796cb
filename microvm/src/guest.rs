//! Micro guests: a few instructions written by the monitor itself, to measure the
//! hypervisor's own costs (VM creation, first instruction, exit round trip, teardown)
//! without a kernel. Each is assembled here byte by byte, every instruction commented.
//!
//! Marker codes: 1 = the guest's first instruction ran, 2 = its work is done, 3 = one
//! exit of the `exits` loop.

use crate::layout::{MARKER_PORT, SERIAL_PORT, TOUCH_START};

/// Marker code written first.
pub const MARKER_START: u8 = 1;
/// Marker code written when the work is done.
pub const MARKER_DONE: u8 = 2;
/// Marker code of each exit in the `exits` loop.
pub const MARKER_LOOP: u8 = 3;

/// The CPU mode a payload starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 16-bit real mode, segments at 0.
    Real,
    /// 32-bit protected mode, flat 4 GiB segments, no paging, no IDT.
    Protected,
    /// 64-bit long mode as the Linux 64-bit boot protocol leaves it: paging on with the
    /// first GiB identity-mapped, a GDT with the boot code and data segments.
    Long,
}

/// A payload: code and the mode it starts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Machine code, loaded at `layout::PAYLOAD_START` and entered at its first byte.
    pub code: Vec<u8>,
    /// The starting mode.
    pub mode: Mode,
    /// What it is, for reports.
    pub name: String,
}

// `MARKER_PORT` fits the one-byte immediate of `out imm8, al`.
const MARKER: u8 = MARKER_PORT as u8;
// So does the i8042 command port.
const I8042: u8 = crate::layout::I8042_COMMAND_PORT as u8;

/// `mov al, code; out MARKER, al` (the same bytes in 16- and 32-bit code).
fn marker(code: u8) -> [u8; 4] {
    [0xb0, code, 0xe6, MARKER]
}

/// `hello`: marker 1, then `hlt` (real mode).
pub fn hello() -> Payload {
    let mut code = marker(MARKER_START).to_vec();
    code.push(0xf4); // hlt
    Payload {
        code,
        mode: Mode::Real,
        name: "hello".into(),
    }
}

/// `hello` in 64-bit long mode (the same bytes: `mov al, 1; out 0x80, al; hlt`).
pub fn hello_long() -> Payload {
    Payload {
        mode: Mode::Long,
        name: "hello (long mode)".into(),
        ..hello()
    }
}

/// `spin N`: marker 1, a loop of `count` iterations, marker 2, `hlt` (real mode).
pub fn spin(count: u32) -> Payload {
    let mut code = marker(MARKER_START).to_vec();
    code.extend([0x66, 0xb9]); // mov ecx, imm32 (operand-size prefix in 16-bit code)
    code.extend(count.max(1).to_le_bytes());
    code.extend([0x66, 0x49]); // loop: dec ecx
    code.extend([0x75, 0xfc]); //       jnz loop (-4)
    code.extend(marker(MARKER_DONE));
    code.push(0xf4); // hlt
    Payload {
        code,
        mode: Mode::Real,
        name: format!("spin {count}"),
    }
}

/// Port writes per pass of the `exits` loop: unrolled so that the loop's own instructions
/// (`dec`, `jnz`), which software KVM emulates at about a microsecond each, add a sixteenth
/// of their cost to each exit instead of all of it.
pub const EXITS_UNROLLED: u32 = 16;

/// `exits N`: marker 1, `count` writes of code 3 to the marker port (each one exit round
/// trip), marker 2, `hlt` (real mode). The writes come [`EXITS_UNROLLED`] to a loop pass,
/// the remainder after the loop.
pub fn exits(count: u32) -> Payload {
    let out = [0xe6, MARKER]; // out MARKER, al   (one exit)
    let mut code = marker(MARKER_START).to_vec();
    code.extend([0xb0, MARKER_LOOP]); // mov al, 3
    let passes = count / EXITS_UNROLLED;
    if passes > 0 {
        code.extend([0x66, 0xb9]); // mov ecx, imm32 (operand-size prefix in 16-bit code)
        code.extend(passes.to_le_bytes());
        let body = code.len();
        for _ in 0..EXITS_UNROLLED {
            code.extend(out); // loop: out MARKER, al (x16)
        }
        code.extend([0x66, 0x49]); //       dec ecx
        let back = i8::try_from(body).unwrap_or(0) - i8::try_from(code.len() + 2).unwrap_or(0);
        code.extend([0x75, back.to_le_bytes()[0]]); // jnz loop (-36)
    }
    for _ in 0..count % EXITS_UNROLLED {
        code.extend(out); // out MARKER, al (the remainder)
    }
    code.extend(marker(MARKER_DONE));
    code.push(0xf4); // hlt
    Payload {
        code,
        mode: Mode::Real,
        name: format!("exits {count}"),
    }
}

/// `touch N`: marker 1, one byte written in each 4 KiB page of `mib` MiB from
/// `TOUCH_START`, marker 2, `hlt` (32-bit protected mode, to reach above 1 MiB).
pub fn touch(mib: u32) -> Payload {
    let mut code = marker(MARKER_START).to_vec();
    code.extend(each_page(mib, &[0xc6, 0x07, 0x01])); // mov byte [edi], 1
    code.extend(marker(MARKER_DONE));
    code.push(0xf4); // hlt
    Payload {
        code,
        mode: Mode::Protected,
        name: format!("touch {mib}"),
    }
}

/// A loop over each 4 KiB page of `mib` MiB from `TOUCH_START` (32-bit code): `edi` points
/// into the page, `access` does something with it, e.g. `mov byte [edi], 1`.
fn each_page(mib: u32, access: &[u8]) -> Vec<u8> {
    let pages = mib.max(1) * 256;
    let mut code = vec![0xbf]; // mov edi, TOUCH_START
    code.extend(u32::try_from(TOUCH_START).unwrap_or(0).to_le_bytes());
    code.push(0xb9); // mov ecx, pages
    code.extend(pages.to_le_bytes());
    let body = code.len();
    code.extend(access); // loop: access
    code.extend([0x81, 0xc7, 0x00, 0x10, 0x00, 0x00]); //       add edi, 4096
    code.push(0x49); //       dec ecx
    let back = i8::try_from(body).unwrap_or(0) - i8::try_from(code.len() + 2).unwrap_or(0);
    code.extend([0x75, back.to_le_bytes()[0]]); //       jnz loop
    code
}

/// `ready N`: a guest with a warm half, for snapshots (32-bit protected mode). Cold: marker
/// 1, one byte written in each page of `mib` MiB from `TOUCH_START` (its state), `hlt`:
/// the point a snapshot is taken. Restored (or simply run on): marker 1 again, the first
/// thing the restored guest does, then a read of one byte in each of those pages (its
/// working set coming back), marker 2, `hlt`.
pub fn ready(mib: u32) -> Payload {
    let mut code = marker(MARKER_START).to_vec();
    code.extend(each_page(mib, &[0xc6, 0x07, 0x01])); // mov byte [edi], 1
    code.push(0xf4); // hlt: the snapshot point
    code.extend(marker(MARKER_START)); // the restored guest's first instruction
    code.extend(each_page(mib, &[0x8a, 0x07])); // mov al, [edi]
    code.extend(marker(MARKER_DONE));
    code.push(0xf4); // hlt
    Payload {
        code,
        mode: Mode::Protected,
        name: format!("ready {mib}"),
    }
}

/// Writes `text` to the serial console, then marker 2 and `hlt` (real mode).
pub fn serial(text: &[u8]) -> Payload {
    let mut code = marker(MARKER_START).to_vec();
    code.push(0xba); // mov dx, imm16
    code.extend(SERIAL_PORT.to_le_bytes());
    for &byte in text {
        code.extend([0xb0, byte]); // mov al, byte
        code.push(0xee); // out dx, al
    }
    code.extend(marker(MARKER_DONE));
    code.push(0xf4); // hlt
    Payload {
        code,
        mode: Mode::Real,
        name: "serial".into(),
    }
}

/// Marker 1, then a reset through the i8042 (`mov al, 0xfe; out 0x64, al`): the clean end
/// a guest without ACPI asks for (real mode).
pub fn reset() -> Payload {
    let mut code = marker(MARKER_START).to_vec();
    code.extend([0xb0, crate::layout::I8042_RESET]); // mov al, 0xfe
    code.extend([0xe6, I8042]); // out 0x64, al
    code.push(0xf4); // hlt (not reached)
    Payload {
        code,
        mode: Mode::Real,
        name: "reset".into(),
    }
}

/// `int3` in protected mode with an empty IDT: #GP, double fault, triple fault.
pub fn triple_fault() -> Payload {
    let mut code = marker(MARKER_START).to_vec();
    code.push(0xcc); // int3
    Payload {
        code,
        mode: Mode::Protected,
        name: "triple fault".into(),
    }
}

/// `hello` through the MMIO marker: `mov byte [MARKER_MMIO], 1; hlt` (protected mode).
pub fn hello_mmio() -> Payload {
    let mut code = vec![0xc6, 0x05]; // mov byte [imm32], imm8
    code.extend(
        u32::try_from(crate::layout::MARKER_MMIO)
            .unwrap_or(0)
            .to_le_bytes(),
    );
    code.push(MARKER_START);
    code.push(0xf4); // hlt
    Payload {
        code,
        mode: Mode::Protected,
        name: "hello (MMIO marker)".into(),
    }
}

/// A write to guest-physical 0xE000_0000, where nothing is mapped (protected mode).
pub fn mmio_nowhere() -> Payload {
    let mut code = marker(MARKER_START).to_vec();
    code.extend([0xc6, 0x05]); // mov byte [imm32], imm8
    code.extend(0xe000_0000u32.to_le_bytes());
    code.push(0x01);
    code.push(0xf4); // hlt
    Payload {
        code,
        mode: Mode::Protected,
        name: "mmio nowhere".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offset a rel8 jump at `at` (opcode first) lands on.
    fn jump_target(code: &[u8], at: usize) -> usize {
        let rel = i8::from_ne_bytes([code[at + 1]]);
        (at + 2).checked_add_signed(isize::from(rel)).unwrap()
    }

    #[test]
    fn loops_jump_back_to_their_first_instruction() {
        let s = spin(5).code;
        let jnz = s.iter().position(|b| *b == 0x75).unwrap();
        assert_eq!(
            &s[jump_target(&s, jnz)..jump_target(&s, jnz) + 2],
            &[0x66, 0x49]
        );
        // Fewer writes than one pass: no loop, the writes in a row.
        let e = exits(5).code;
        assert!(!e.contains(&0x75));
        assert_eq!(&e[6..16], &[0xe6, MARKER].repeat(5)[..]);
        // 2 passes of 16 and 3 more: the loop jumps back to its first write.
        let e = exits(35).code;
        let jnz = 6 + 6 + 32 + 2;
        assert_eq!(e[jnz], 0x75);
        assert_eq!(&e[8..12], &2u32.to_le_bytes());
        assert_eq!(jump_target(&e, jnz), 12);
        assert_eq!(&e[12..44], &[0xe6, MARKER].repeat(16)[..]);
        assert_eq!(&e[jnz + 2..jnz + 8], &[0xe6, MARKER].repeat(3)[..]);
        assert_eq!(&e[jnz + 8..], &[0xb0, MARKER_DONE, 0xe6, MARKER, 0xf4]);
        let t = touch(1).code;
        let jnz = t.iter().rposition(|b| *b == 0x75).unwrap();
        assert_eq!(
            &t[jump_target(&t, jnz)..jump_target(&t, jnz) + 3],
            &[0xc6, 0x07, 0x01]
        );
        // Both loops of `ready` jump back to their first instruction: the write, then the read.
        let r = ready(1).code;
        let jnzs: Vec<usize> = (0..r.len() - 1)
            .filter(|&i| r[i] == 0x75 && (r[i + 1] == 0xf4 || r[i + 1] == 0xf5))
            .collect();
        assert_eq!(jnzs.len(), 2);
        assert_eq!(&r[jump_target(&r, jnzs[0])..][..3], &[0xc6, 0x07, 0x01]);
        assert_eq!(&r[jump_target(&r, jnzs[1])..][..2], &[0x8a, 0x07]);
        // The snapshot point: a hlt right after the first loop, then marker 1 again.
        assert_eq!(r[jnzs[0] + 2], 0xf4);
        assert_eq!(&r[jnzs[0] + 3..jnzs[0] + 7], &marker(MARKER_START));
    }

    #[test]
    fn every_guest_starts_with_its_marker_and_fits() {
        for p in [
            hello(),
            hello_long(),
            spin(1),
            exits(1),
            touch(1),
            ready(1),
            serial(b"hi"),
            reset(),
            triple_fault(),
            mmio_nowhere(),
        ] {
            assert_eq!(&p.code[..4], &marker(MARKER_START), "{}", p.name);
            assert!(p.code.len() <= crate::layout::PAYLOAD_MAX);
        }
        // The MMIO hello writes its marker with a memory store instead.
        let mmio = hello_mmio().code;
        assert_eq!(&mmio[..2], &[0xc6, 0x05]);
        assert_eq!(&mmio[2..6], &0xd000_0000u32.to_le_bytes());
        assert_eq!(mmio[6], MARKER_START);
    }
}
