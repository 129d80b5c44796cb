//! The guest's memory map and I/O ports: every address and port the monitor uses, in one
//! place.
//!
//! Micro guests are loaded at [`PAYLOAD_START`] and entered there; the memory they touch
//! lies above [`TOUCH_START`]. Ports follow the PC conventions guests expect.

/// Where the boot GDT lives (guest-physical), for 64-bit guests.
pub const GDT_START: u64 = 0x500;
/// The top-level page table (PML4) of a 64-bit guest; the PDPT and the page directory
/// follow in the next two pages. Together they identity-map the first [`IDENTITY_MAPPED`].
pub const PML4_START: u64 = 0x9000;
/// Page-directory-pointer table.
pub const PDPT_START: u64 = 0xa000;
/// Page directory (512 entries of 2 MiB pages).
pub const PD_START: u64 = 0xb000;
/// How much of guest-physical memory a 64-bit guest sees identity-mapped: 1 GiB.
pub const IDENTITY_MAPPED: u64 = 1 << 30;

/// Where guest RAM starts (guest-physical).
pub const RAM_START: u64 = 0;
/// Where a micro guest's code is loaded and entered (guest-physical; 4 KiB in).
pub const PAYLOAD_START: u64 = 0x1000;
/// The most bytes of payload (it must end before [`TOUCH_START`]).
pub const PAYLOAD_MAX: usize = 0x1000;
/// Where a `touch` guest starts writing (1 MiB, above the real-mode area).
pub const TOUCH_START: u64 = 0x10_0000;
/// The smallest guest memory that holds a payload and the touch area's start.
pub const MIN_MEMORY: u64 = 2 << 20;

/// The marker port: the guest writes a byte code, the monitor stamps the host time.
/// 0x80 is the PC's POST-code port, free on a machine without firmware.
pub const MARKER_PORT: u16 = 0x80;
/// The marker's MMIO address, for guests that prefer memory writes (above RAM, in the
/// 32-bit hole where PCs keep devices).
pub const MARKER_MMIO: u64 = 0xd000_0000;
/// The first 16550 UART (COM1) and its eight registers.
pub const SERIAL_PORT: u16 = 0x3f8;
/// Registers of a 16550 UART.
pub const SERIAL_PORTS: u16 = 8;
/// The i8042 controller's command port: writing 0xFE pulses the CPU reset line.
pub const I8042_COMMAND_PORT: u16 = 0x64;
/// The i8042 command that resets the machine.
pub const I8042_RESET: u8 = 0xfe;

// --- Linux guests -------------------------------------------------------------------------
//
// The guest-physical map of a Linux guest (the x86 boot protocol,
// Documentation/arch/x86/boot.rst, and the MultiProcessor Specification 1.4):
//
// | range                      | what                                                  |
// | -------------------------- | ----------------------------------------------------- |
// | 0x500..0x520               | boot GDT ([`GDT_START`])                              |
// | 0x7000..0x8000             | boot parameters, the "zero page" ([`ZERO_PAGE_START`])|
// | ..0x8ff0                   | the boot stack, growing down ([`BOOT_STACK`])         |
// | 0x9000..0xc000             | identity-mapping page tables ([`PML4_START`])         |
// | 0x20000..0x20800           | kernel command line ([`CMDLINE_START`])               |
// | 0x9fc00..0x100000          | reserved: the MP table, then the legacy video and ROM |
// | 0x100000..                 | RAM: the kernel (at its own load address), the initrd |
// |                            | at the top of low RAM                                 |
// | 0xc0000000..0x100000000    | the 32-bit hole: marker MMIO, virtio-mmio devices,    |
// |                            | IOAPIC, LAPIC                                         |
// | 0x100000000..              | RAM beyond 3 GiB                                      |

/// The boot parameters ("zero page", `struct boot_params`) of a Linux guest.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// The boot stack's top (the boot protocol enters with a usable stack).
pub const BOOT_STACK: u64 = 0x8ff0;
/// The kernel command line.
pub const CMDLINE_START: u64 = 0x2_0000;
/// The longest command line accepted, NUL included (the kernel's COMMAND_LINE_SIZE).
pub const CMDLINE_MAX: usize = 2048;
/// Where the MP table goes: the first KiB of the EBDA, the first place Linux scans.
pub const MPTABLE_START: u64 = 0x9_fc00;
/// Start of the area below 1 MiB that is not RAM (EBDA, video memory, ROMs).
pub const EBDA_START: u64 = MPTABLE_START;
/// Where memory above the legacy area starts.
pub const HIGH_MEMORY_START: u64 = 0x10_0000;
/// Start of the 32-bit hole, where devices live and RAM does not.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End of the 32-bit hole (4 GiB): RAM continues here.
pub const MMIO_GAP_END: u64 = 1 << 32;
/// The IOAPIC's registers (KVM's in-kernel IOAPIC).
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// The local APICs' registers.
pub const LAPIC_START: u64 = 0xfee0_0000;
/// The TSS KVM needs on Intel hosts, three pages just below the BIOS area at 4 GiB.
pub const KVM_TSS_START: u64 = 0xfffb_d000;
/// The serial console's interrupt line (COM1 is ISA IRQ 4).
pub const SERIAL_IRQ: u32 = 4;
/// The first virtio-mmio device's registers (one page each, [`crate::virtio::mmio::MMIO_SIZE`]),
/// just above the marker's page in the 32-bit hole.
pub const VIRTIO_MMIO_START: u64 = 0xd000_1000;
/// The first virtio-mmio device's interrupt line: ISA IRQ 5, which no legacy device of
/// this machine uses (routed to IOAPIC pin 5 by the MP table).
pub const VIRTIO_IRQ: u32 = 5;
/// The vsock device's registers: the third virtio-mmio slot.
pub const VSOCK_MMIO_START: u64 = VIRTIO_MMIO_START + 2 * 0x1000;
/// The vsock device's interrupt line: ISA IRQ 7, unused by this machine's legacy devices.
pub const VSOCK_IRQ: u32 = 7;
/// The network device's registers: the second virtio-mmio slot, after the disk's.
pub const NET_MMIO_START: u64 = VIRTIO_MMIO_START + 0x1000;
/// The network device's interrupt line: ISA IRQ 6, which no legacy device of this
/// machine uses (no floppy controller).
pub const NET_IRQ: u32 = 6;
/// ISA interrupt lines, each routed to the IOAPIC pin of the same number.
pub const ISA_IRQS: u8 = 16;

/// Marker code a Linux guest's init writes first: "init reached".
pub const MARKER_INIT: u8 = 0x11;
/// Marker code a Linux guest's init writes just before it powers the machine off.
pub const MARKER_POWEROFF: u8 = 0x12;

/// The guest-physical RAM ranges of `size` bytes of guest memory: one range from
/// [`RAM_START`] up to the 32-bit hole, the rest above 4 GiB.
pub fn ram_ranges(size: u64) -> Vec<(u64, u64)> {
    let low = size.min(MMIO_GAP_START - RAM_START);
    let mut ranges = vec![(RAM_START, low)];
    if size > low {
        ranges.push((MMIO_GAP_END, size - low));
    }
    ranges
}
