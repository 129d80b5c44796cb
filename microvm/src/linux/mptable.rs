//! The MP table (Intel MultiProcessor Specification 1.4, chapter 4): how a guest without
//! ACPI learns its CPUs, its IOAPIC and how the ISA interrupts reach it.
//!
//! Layout at [`MPTABLE_START`] (all little-endian, every checksum making its bytes sum to 0):
//!
//! | offset           | size | what                                                      |
//! | ---------------- | ---- | --------------------------------------------------------- |
//! | 0                | 16   | floating pointer: "_MP_", table address, length 1, rev 4  |
//! | 16               | 44   | table header: "PCMP", length, rev 4, OEM "VCBENCH ", product "MICROVM     ", entries, LAPIC address |
//! | 60               | 20 × N | one processor entry per vCPU: APIC ID = index, enabled, the first the BSP |
//! | 60 + 20N         | 8    | bus 0: "ISA   "                                           |
//! | 68 + 20N         | 8    | the IOAPIC: ID N, version 0x11, enabled, at [`IOAPIC_START`] |
//! | 76 + 20N         | 8 × 16 | I/O interrupts: ISA IRQ i to IOAPIC pin i, i = 0..16    |
//! | 204 + 20N        | 8    | local interrupt: ExtINT to LINT0 of every local APIC      |
//! | 212 + 20N        | 8    | local interrupt: NMI to LINT1 of every local APIC         |

use crate::layout::{IOAPIC_START, ISA_IRQS, LAPIC_START, MPTABLE_START};

/// The most vCPUs an MP table here describes: APIC IDs 0..N-1 and the IOAPIC's ID N must
/// stay below the broadcast ID 0xff.
pub const MAX_VCPUS: u8 = 254;

/// Entry types.
const PROCESSOR: u8 = 0;
const BUS: u8 = 1;
const IOAPIC: u8 = 2;
const IO_INTERRUPT: u8 = 3;
const LOCAL_INTERRUPT: u8 = 4;
/// Interrupt types.
const INT: u8 = 0;
const NMI: u8 = 1;
const EXTINT: u8 = 3;
/// Local APIC version (an integrated APIC, as KVM's).
const LAPIC_VERSION: u8 = 0x14;
/// IOAPIC version (KVM's in-kernel IOAPIC).
const IOAPIC_VERSION: u8 = 0x11;
/// Processor flags.
const CPU_ENABLED: u8 = 1;
const CPU_BSP: u8 = 2;
/// CPU signature: family 6 (the value only informs, the CPUID is authoritative).
const CPU_SIGNATURE: u32 = 0x600;
/// Feature flags: FPU and APIC.
const CPU_FEATURES: u32 = 0x201;

/// Errors building the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Zero, or more vCPUs than APIC IDs.
    #[error("an MP table describes 1..={MAX_VCPUS} vCPUs, not {0}")]
    Vcpus(u8),
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, b| sum.wrapping_add(*b))
        .wrapping_neg()
}

/// The MP table for `vcpus` vCPUs, to be written at [`MPTABLE_START`].
pub fn mptable(vcpus: u8) -> Result<Vec<u8>, Error> {
    if vcpus == 0 || vcpus > MAX_VCPUS {
        return Err(Error::Vcpus(vcpus));
    }
    let ioapic_id = vcpus;
    let mut entries: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    for id in 0..vcpus {
        let flags = if id == 0 {
            CPU_ENABLED | CPU_BSP
        } else {
            CPU_ENABLED
        };
        entries.extend([PROCESSOR, id, LAPIC_VERSION, flags]);
        entries.extend(CPU_SIGNATURE.to_le_bytes());
        entries.extend(CPU_FEATURES.to_le_bytes());
        entries.extend([0u8; 8]);
        count += 1;
    }
    entries.extend([BUS, 0]);
    entries.extend(b"ISA   ");
    count += 1;
    entries.extend([IOAPIC, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend(u32::try_from(IOAPIC_START).unwrap_or(0).to_le_bytes());
    count += 1;
    for irq in 0..ISA_IRQS {
        // Type, interrupt type, flags (conforming polarity and trigger), bus, bus IRQ,
        // destination IOAPIC, its pin.
        entries.extend([IO_INTERRUPT, INT, 0, 0, 0, irq, ioapic_id, irq]);
        count += 1;
    }
    // To every local APIC (0xff): the 8259's ExtINT on LINT0, NMI on LINT1.
    entries.extend([LOCAL_INTERRUPT, EXTINT, 0, 0, 0, 0, 0xff, 0]);
    entries.extend([LOCAL_INTERRUPT, NMI, 0, 0, 0, 0, 0xff, 1]);
    count += 2;

    let table_address = MPTABLE_START + 16;
    let length = u16::try_from(44 + entries.len()).unwrap_or(u16::MAX);
    let mut header = Vec::with_capacity(44);
    header.extend(b"PCMP");
    header.extend(length.to_le_bytes());
    header.push(4); // specification revision 1.4
    header.push(0); // checksum, below
    header.extend(b"VCBENCH ");
    header.extend(b"MICROVM     ");
    header.extend(0u32.to_le_bytes()); // no OEM table
    header.extend(0u16.to_le_bytes());
    header.extend(count.to_le_bytes());
    header.extend(u32::try_from(LAPIC_START).unwrap_or(0).to_le_bytes());
    header.extend(0u16.to_le_bytes()); // no extended table
    header.push(0);
    header.push(0);
    let mut table = header;
    table.extend(entries);
    table[7] = checksum(&table);

    let mut pointer = Vec::with_capacity(16);
    pointer.extend(b"_MP_");
    pointer.extend(u32::try_from(table_address).unwrap_or(0).to_le_bytes());
    pointer.push(1); // length in 16-byte units
    pointer.push(4); // revision 1.4
    pointer.push(0); // checksum, below
    pointer.extend([0u8; 5]); // feature bytes: no default configuration, no IMCR
    pointer[10] = checksum(&pointer);

    let mut bytes = pointer;
    bytes.extend(table);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
    }

    #[test]
    fn one_vcpu_byte_for_byte() {
        let t = mptable(1).unwrap();
        assert_eq!(t.len(), 16 + 44 + 20 + 8 + 8 + 16 * 8 + 2 * 8);
        // Floating pointer.
        assert_eq!(&t[0..4], b"_MP_");
        assert_eq!(&t[4..8], &0x9_fc10u32.to_le_bytes());
        assert_eq!((t[8], t[9]), (1, 4));
        assert_eq!(&t[11..16], &[0; 5]);
        assert_eq!(sum(&t[..16]), 0);
        // Header.
        let h = &t[16..];
        assert_eq!(&h[0..4], b"PCMP");
        assert_eq!(u16::from_le_bytes([h[4], h[5]]) as usize, t.len() - 16);
        assert_eq!(h[6], 4);
        assert_eq!(&h[8..16], b"VCBENCH ");
        assert_eq!(&h[16..28], b"MICROVM     ");
        assert_eq!(&h[28..34], &[0; 6]);
        assert_eq!(u16::from_le_bytes([h[34], h[35]]), 1 + 1 + 1 + 16 + 2);
        assert_eq!(&h[36..40], &0xfee0_0000u32.to_le_bytes());
        assert_eq!(&h[40..44], &[0; 4]);
        assert_eq!(sum(h), 0);
        // The processor: APIC ID 0, version 0x14, enabled BSP.
        assert_eq!(
            &h[44..64],
            &[0, 0, 0x14, 3, 0, 6, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&h[64..72], &[1, 0, b'I', b'S', b'A', b' ', b' ', b' ']);
        assert_eq!(&h[72..80], &[2, 1, 0x11, 1, 0x00, 0x00, 0xc0, 0xfe]);
        for irq in 0..16u8 {
            let at = 80 + usize::from(irq) * 8;
            assert_eq!(&h[at..at + 8], &[3, 0, 0, 0, 0, irq, 1, irq]);
        }
        assert_eq!(&h[208..216], &[4, 3, 0, 0, 0, 0, 0xff, 0]);
        assert_eq!(&h[216..224], &[4, 1, 0, 0, 0, 0, 0xff, 1]);
    }

    #[test]
    fn n_vcpus_have_one_entry_each_and_one_bsp() {
        for n in [2u8, 4, 32, MAX_VCPUS] {
            let t = mptable(n).unwrap();
            let h = &t[16..];
            assert_eq!(sum(h), 0);
            assert_eq!(sum(&t[..16]), 0);
            for id in 0..n {
                let at = 44 + usize::from(id) * 20;
                assert_eq!(h[at], 0, "processor entry");
                assert_eq!(h[at + 1], id, "APIC ID");
                assert_eq!(h[at + 3], if id == 0 { 3 } else { 1 });
            }
            let ioapic = 44 + usize::from(n) * 20 + 8;
            assert_eq!((h[ioapic], h[ioapic + 1]), (2, n), "IOAPIC after the CPUs");
            // Fits between the EBDA and 1 MiB.
            assert!(MPTABLE_START + t.len() as u64 <= 0x10_0000);
        }
        assert_eq!(mptable(0), Err(Error::Vcpus(0)));
        assert_eq!(mptable(255), Err(Error::Vcpus(255)));
    }
}
