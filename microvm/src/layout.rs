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
