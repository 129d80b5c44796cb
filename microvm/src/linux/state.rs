//! What a snapshot of a running Linux guest holds besides its memory: each vCPU's
//! architectural state, the VM's in-kernel interrupt controllers, PIT and KVM clock, and
//! the serial console's registers. Saved while every vCPU is out of `KVM_RUN` with its last
//! exit completed, and set back into a fresh VM and fresh vCPUs in the order KVM needs.
//!
//! Per vCPU: CPUID, MSRs, general, segment and control registers, the FPU and extended
//! state (`KVM_GET_XSAVE`), the extended control registers, the debug registers, the local
//! APIC, the pending events (exceptions, interrupts, NMIs) and the run state. The MSRs are
//! the ones KVM lists (`KVM_GET_MSR_INDEX_LIST`, which includes the TSC, the TSC deadline
//! and the KVM clock's MSRs) that it lets this vCPU read; one that it then refuses to set
//! back on restore is skipped and counted.
//!
//! The order on restore matters: the local APIC before the MSRs, since KVM keeps a TSC
//! deadline only for a local APIC whose timer is in TSC-deadline mode (set before, the
//! deadline would be dropped and a tickless guest never woken); the pending events last.
//!
//! The VM: the two PICs and the IOAPIC (`KVM_GET_IRQCHIP`), the PIT (`KVM_GET_PIT2`), and
//! the KVM clock (`KVM_GET_CLOCK`), set back with no flags, so the guest's clock resumes
//! where it stopped: the time a snapshot spent on disk never passes for the guest.
//!
//! The marker and the i8042 hold no state the guest can see; a guest with a disk is not
//! snapshotted (see [`super::machine::snapshot_to`]).

use kvm_bindings::{
    kvm_clock_data, kvm_cpuid_entry2, kvm_debugregs, kvm_irqchip, kvm_lapic_state, kvm_mp_state,
    kvm_msr_entry, kvm_pit_state2, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
    CpuId, Msrs, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
    KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use serde::{Deserialize, Serialize};

/// Errors saving or restoring a guest's state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A KVM call failed.
    #[error("KVM: cannot {what}")]
    Kvm {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// More entries than KVM's lists can hold.
    #[error("too many {0} for one KVM call")]
    TooMany(&'static str),
    /// The saved state does not fit the machine it is restored into.
    #[error("the snapshot's state does not fit: {0}")]
    Mismatch(String),
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
    move |source| Error::Kvm { what, source }
}

/// One vCPU's state.
#[derive(Debug, Serialize, Deserialize)]
pub struct VcpuState {
    /// Its CPUID, as set at boot.
    pub cpuid: Vec<kvm_cpuid_entry2>,
    /// Its MSRs (index and value).
    pub msrs: Vec<kvm_msr_entry>,
    /// General registers.
    pub regs: kvm_regs,
    /// Segment and control registers.
    pub sregs: kvm_sregs,
    /// FPU, SSE and AVX state.
    pub xsave: kvm_xsave,
    /// Extended control registers (XCR0).
    pub xcrs: kvm_xcrs,
    /// Debug registers.
    pub debugregs: kvm_debugregs,
    /// Local APIC registers.
    pub lapic: kvm_lapic_state,
    /// Run state (runnable, halted, waiting for its start-up IPI).
    pub mp_state: kvm_mp_state,
    /// Pending exceptions, interrupts and NMIs.
    pub events: kvm_vcpu_events,
}

/// The VM's state outside its vCPUs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmState {
    /// The master PIC.
    pub pic_master: kvm_irqchip,
    /// The slave PIC.
    pub pic_slave: kvm_irqchip,
    /// The IOAPIC.
    pub ioapic: kvm_irqchip,
    /// The PIT's channels.
    pub pit: kvm_pit_state2,
    /// The KVM clock.
    pub clock: kvm_clock_data,
}

// KVM's XSAVE area has a flexible array member and its interrupt controllers are unions,
// so neither derives equality (nor the XSAVE area a copy): both are compared as what they
// are written down as, byte for byte.
impl PartialEq for VcpuState {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

impl PartialEq for VmState {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

impl Clone for VcpuState {
    fn clone(&self) -> Self {
        VcpuState {
            cpuid: self.cpuid.clone(),
            msrs: self.msrs.clone(),
            regs: self.regs,
            sregs: self.sregs,
            xsave: kvm_xsave {
                region: self.xsave.region,
                ..Default::default()
            },
            xcrs: self.xcrs,
            debugregs: self.debugregs,
            lapic: self.lapic,
            mp_state: self.mp_state,
            events: self.events,
        }
    }
}

/// The 16550's registers and receive buffer (vm-superio's `SerialState`, in a form that
/// can be written down).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialState {
    /// Divisor latch, low byte.
    pub baud_divisor_low: u8,
    /// Divisor latch, high byte.
    pub baud_divisor_high: u8,
    /// Interrupt enable register.
    pub interrupt_enable: u8,
    /// Interrupt identification register.
    pub interrupt_identification: u8,
    /// Line control register.
    pub line_control: u8,
    /// Line status register.
    pub line_status: u8,
    /// Modem control register.
    pub modem_control: u8,
    /// Modem status register.
    pub modem_status: u8,
    /// Scratch register.
    pub scratch: u8,
    /// Bytes received and not yet read by the guest.
    pub in_buffer: Vec<u8>,
}

impl From<&vm_superio::serial::SerialState> for SerialState {
    fn from(s: &vm_superio::serial::SerialState) -> Self {
        SerialState {
            baud_divisor_low: s.baud_divisor_low,
            baud_divisor_high: s.baud_divisor_high,
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            in_buffer: s.in_buffer.clone(),
        }
    }
}

impl From<&SerialState> for vm_superio::serial::SerialState {
    fn from(s: &SerialState) -> Self {
        vm_superio::serial::SerialState {
            baud_divisor_low: s.baud_divisor_low,
            baud_divisor_high: s.baud_divisor_high,
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            in_buffer: s.in_buffer.clone(),
        }
    }
}

/// Everything a Linux guest's snapshot holds besides its memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinuxState {
    /// The kernel release that was running, as its image announced it.
    pub kernel: Option<String>,
    /// Each vCPU, by index.
    pub vcpus: Vec<VcpuState>,
    /// The VM.
    pub vm: VmState,
    /// The serial console.
    pub serial: SerialState,
}

/// The MSRs worth saving: those KVM lists (`KVM_GET_MSR_INDEX_LIST`).
pub fn msr_indices(system: &Kvm) -> Result<Vec<u32>, Error> {
    Ok(system
        .get_msr_index_list()
        .map_err(kvm("list the MSRs"))?
        .as_slice()
        .to_vec())
}

/// Reads the MSRs of `indices` that KVM lets `vcpu` read: `KVM_GET_MSRS` stops at the
/// first it refuses, which is left out, and the rest are read on.
fn read_msrs(vcpu: &VcpuFd, indices: &[u32]) -> Result<Vec<kvm_msr_entry>, Error> {
    let mut read = Vec::with_capacity(indices.len());
    let mut rest: &[u32] = indices;
    while !rest.is_empty() {
        let entries: Vec<kvm_msr_entry> = rest
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries).map_err(|_| Error::TooMany("MSRs"))?;
        let n = vcpu
            .get_msrs(&mut msrs)
            .map_err(kvm("read the vCPU's MSRs"))?;
        read.extend_from_slice(&msrs.as_slice()[..n.min(rest.len())]);
        // The one at `n` was refused: skip it.
        rest = rest.get(n + 1..).unwrap_or(&[]);
    }
    Ok(read)
}

/// Sets `entries` on `vcpu`, skipping any KVM refuses (`KVM_SET_MSRS` stops at the first);
/// returns the indices skipped.
fn write_msrs(vcpu: &VcpuFd, entries: &[kvm_msr_entry]) -> Result<Vec<u32>, Error> {
    let mut skipped = Vec::new();
    let mut rest = entries;
    while !rest.is_empty() {
        let msrs = Msrs::from_entries(rest).map_err(|_| Error::TooMany("MSRs"))?;
        let n = vcpu.set_msrs(&msrs).map_err(kvm("set the vCPU's MSRs"))?;
        if let Some(refused) = rest.get(n) {
            skipped.push(refused.index);
        }
        rest = rest.get(n + 1..).unwrap_or(&[]);
    }
    Ok(skipped)
}

impl VcpuState {
    /// Reads `vcpu`'s state; `msr_indices` from [`msr_indices`]. The vCPU must be out of
    /// `KVM_RUN` with its last exit completed (re-entered once with `immediate_exit` set),
    /// or the registers would miss the instruction it was emulating.
    pub fn save(vcpu: &VcpuFd, msr_indices: &[u32]) -> Result<Self, Error> {
        // Tells the guest's kvm-clock that it was paused, so its soft-lockup watchdog does
        // not count the pause (KVM refuses it when the guest has no kvm-clock; no matter).
        let _ = vcpu.kvmclock_ctrl();
        let mp_state = vcpu.get_mp_state().map_err(kvm("read the run state"))?;
        let regs = vcpu.get_regs().map_err(kvm("read the registers"))?;
        let sregs = vcpu
            .get_sregs()
            .map_err(kvm("read the special registers"))?;
        let xsave = vcpu.get_xsave().map_err(kvm("read the extended state"))?;
        let xcrs = vcpu
            .get_xcrs()
            .map_err(kvm("read the extended control registers"))?;
        let debugregs = vcpu
            .get_debug_regs()
            .map_err(kvm("read the debug registers"))?;
        let lapic = vcpu.get_lapic().map_err(kvm("read the local APIC"))?;
        let msrs = read_msrs(vcpu, msr_indices)?;
        let events = vcpu
            .get_vcpu_events()
            .map_err(kvm("read the pending events"))?;
        let cpuid = vcpu
            .get_cpuid2(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm("read the CPUID"))?
            .as_slice()
            .to_vec();
        Ok(VcpuState {
            cpuid,
            msrs,
            regs,
            sregs,
            xsave,
            xcrs,
            debugregs,
            lapic,
            mp_state,
            events,
        })
    }

    /// Sets this state on a freshly created `vcpu`; returns the MSRs KVM refused.
    pub fn restore(&self, vcpu: &VcpuFd) -> Result<Vec<u32>, Error> {
        let cpuid =
            CpuId::from_entries(&self.cpuid).map_err(|_| Error::TooMany("CPUID entries"))?;
        vcpu.set_cpuid2(&cpuid).map_err(kvm("set the CPUID"))?;
        vcpu.set_mp_state(self.mp_state)
            .map_err(kvm("set the run state"))?;
        vcpu.set_regs(&self.regs)
            .map_err(kvm("set the registers"))?;
        vcpu.set_sregs(&sregs_to_set(&self.sregs, &self.cpuid))
            .map_err(kvm("set the special registers"))?;
        // SAFETY: KVM_SET_XSAVE reads as many bytes as the guest's XSAVE area takes, which is
        // more than `kvm_xsave`'s 4 KiB only with the dynamically enabled features (AMX); the
        // guest's CPUID, just set from the saved one, which the boot filtered, withholds them.
        unsafe { vcpu.set_xsave(&self.xsave) }.map_err(kvm("set the extended state"))?;
        vcpu.set_xcrs(&self.xcrs)
            .map_err(kvm("set the extended control registers"))?;
        vcpu.set_debug_regs(&self.debugregs)
            .map_err(kvm("set the debug registers"))?;
        vcpu.set_lapic(&self.lapic)
            .map_err(kvm("set the local APIC"))?;
        // After the local APIC: the TSC deadline holds only in TSC-deadline mode.
        let skipped = write_msrs(vcpu, &self.msrs)?;
        vcpu.set_vcpu_events(&self.events)
            .map_err(kvm("set the pending events"))?;
        Ok(skipped)
    }
}

/// CPUID leaf 0's vendor string in EBX: "Auth" of "AuthenticAMD".
const VENDOR_AMD_EBX: u32 = u32::from_le_bytes(*b"Auth");
/// A 64-bit TSS descriptor's type, available and busy.
const TSS_AVAILABLE: u8 = 9;
const TSS_BUSY: u8 = 11;

/// The segment registers to set back. On AMD, KVM reports the task register as busy
/// whatever SVM holds for it (a VMCB does not always carry the busy bit), and SVM itself
/// never checks that type: it matters only to a task switch, which a 64-bit guest never
/// makes. An emulated SVM (QEMU's) does check it, for the I/O permission bitmap of a
/// user-mode `in`/`out`, and accepts only the type `ltr` cached, available: so on AMD the
/// task register goes back as available. Intel's VMX requires it busy, as reported.
fn sregs_to_set(sregs: &kvm_sregs, cpuid: &[kvm_cpuid_entry2]) -> kvm_sregs {
    let amd = cpuid
        .iter()
        .any(|e| e.function == 0 && e.ebx == VENDOR_AMD_EBX);
    let mut sregs = *sregs;
    if amd && sregs.tr.type_ == TSS_BUSY {
        sregs.tr.type_ = TSS_AVAILABLE;
    }
    sregs
}

/// `KVM_GET_IRQCHIP` of one chip.
fn irqchip(vm: &VmFd, chip_id: u32) -> Result<kvm_irqchip, Error> {
    let mut chip = kvm_irqchip {
        chip_id,
        ..Default::default()
    };
    vm.get_irqchip(&mut chip)
        .map_err(kvm("read the interrupt controllers"))?;
    Ok(chip)
}

impl VmState {
    /// Reads the VM's interrupt controllers, PIT and clock (every vCPU stopped).
    pub fn save(vm: &VmFd) -> Result<Self, Error> {
        let clock = vm.get_clock().map_err(kvm("read the KVM clock"))?;
        Ok(VmState {
            pic_master: irqchip(vm, KVM_IRQCHIP_PIC_MASTER)?,
            pic_slave: irqchip(vm, KVM_IRQCHIP_PIC_SLAVE)?,
            ioapic: irqchip(vm, KVM_IRQCHIP_IOAPIC)?,
            pit: vm.get_pit2().map_err(kvm("read the PIT"))?,
            clock,
        })
    }

    /// Checks that each interrupt controller was saved as the one it is restored as.
    pub fn check(&self) -> Result<(), Error> {
        for (chip, id) in [
            (&self.pic_master, KVM_IRQCHIP_PIC_MASTER),
            (&self.pic_slave, KVM_IRQCHIP_PIC_SLAVE),
            (&self.ioapic, KVM_IRQCHIP_IOAPIC),
        ] {
            if chip.chip_id != id {
                return Err(Error::Mismatch(format!(
                    "interrupt controller {} saved as {id}",
                    chip.chip_id
                )));
            }
        }
        Ok(())
    }

    /// Sets this state on a VM whose in-kernel interrupt controllers and PIT exist.
    pub fn restore(&self, vm: &VmFd) -> Result<(), Error> {
        self.check()?;
        vm.set_pit2(&self.pit).map_err(kvm("set the PIT"))?;
        // No flags: the clock resumes at the value saved, not at the host's time now.
        let clock = kvm_clock_data {
            clock: self.clock.clock,
            ..Default::default()
        };
        vm.set_clock(&clock).map_err(kvm("set the KVM clock"))?;
        for chip in [&self.pic_master, &self.pic_slave, &self.ioapic] {
            vm.set_irqchip(chip)
                .map_err(kvm("set the interrupt controllers"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A state with something other than zeroes in every part.
    pub(crate) fn sample(vcpus: usize) -> LinuxState {
        let vcpu = |i: u64| {
            let mut lapic = kvm_lapic_state::default();
            lapic.regs[0x20] = i8::try_from(i).unwrap();
            let mut xsave = kvm_xsave::default();
            xsave.region[7] = 0x1f80 + u32::try_from(i).unwrap();
            VcpuState {
                cpuid: vec![kvm_cpuid_entry2 {
                    function: 1,
                    eax: 0x806f8,
                    ..Default::default()
                }],
                msrs: vec![
                    kvm_msr_entry {
                        index: 0x10,
                        data: 123_456_789 + i,
                        ..Default::default()
                    },
                    kvm_msr_entry {
                        index: 0x6e0,
                        data: u64::MAX - i,
                        ..Default::default()
                    },
                ],
                regs: kvm_regs {
                    rip: 0xffff_ffff_8100_0000 + i,
                    rflags: 0x246,
                    ..Default::default()
                },
                sregs: kvm_sregs {
                    cr3: 0x1000 * (i + 1),
                    efer: 0xd01,
                    ..Default::default()
                },
                xsave,
                xcrs: kvm_xcrs {
                    nr_xcrs: 1,
                    ..Default::default()
                },
                debugregs: kvm_debugregs {
                    dr7: 0x400,
                    ..Default::default()
                },
                lapic,
                mp_state: kvm_mp_state {
                    mp_state: u32::try_from(i % 4).unwrap(),
                },
                events: kvm_vcpu_events {
                    flags: 7,
                    ..Default::default()
                },
            }
        };
        let chip = |chip_id| kvm_irqchip {
            chip_id,
            ..Default::default()
        };
        let mut pit = kvm_pit_state2::default();
        pit.channels[0].count = 0x4a9c;
        LinuxState {
            kernel: Some("6.1.0".to_owned()),
            vcpus: (0..vcpus as u64).map(vcpu).collect(),
            vm: VmState {
                pic_master: chip(KVM_IRQCHIP_PIC_MASTER),
                pic_slave: chip(KVM_IRQCHIP_PIC_SLAVE),
                ioapic: chip(KVM_IRQCHIP_IOAPIC),
                pit,
                clock: kvm_clock_data {
                    clock: 987_654_321,
                    flags: 2,
                    ..Default::default()
                },
            },
            serial: SerialState {
                baud_divisor_low: 1,
                baud_divisor_high: 0,
                interrupt_enable: 2,
                interrupt_identification: 0xc1,
                line_control: 3,
                line_status: 0x60,
                modem_control: 0xb,
                modem_status: 0xb0,
                scratch: 0x5a,
                in_buffer: vec![b'x'],
            },
        }
    }

    #[test]
    fn a_linux_state_reads_back_as_written() {
        let state = sample(2);
        let text = serde_json::to_string(&state).unwrap();
        let back: LinuxState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.vcpus[1].msrs[1].data, u64::MAX - 1);
        assert_eq!(back.vcpus[1].xsave.region[7], 0x1f81);
        assert_eq!(back.vm.pit.channels[0].count, 0x4a9c);
    }

    #[test]
    fn the_task_register_goes_back_available_on_amd_only() {
        let mut sregs = kvm_sregs::default();
        sregs.tr.type_ = TSS_BUSY;
        let vendor = |ebx| {
            vec![kvm_cpuid_entry2 {
                function: 0,
                ebx,
                ..Default::default()
            }]
        };
        let amd = sregs_to_set(&sregs, &vendor(VENDOR_AMD_EBX));
        assert_eq!(amd.tr.type_, TSS_AVAILABLE);
        let intel = sregs_to_set(&sregs, &vendor(u32::from_le_bytes(*b"Genu")));
        assert_eq!(intel.tr.type_, TSS_BUSY);
        assert_eq!(intel, sregs);
    }

    #[test]
    fn the_serial_state_converts_both_ways() {
        let ours = sample(1).serial;
        let theirs = vm_superio::serial::SerialState::from(&ours);
        assert_eq!(SerialState::from(&theirs), ours);
    }

    #[test]
    fn irqchips_saved_under_other_ids_are_refused() {
        let mut state = sample(1).vm;
        state.check().unwrap();
        state.pic_slave.chip_id = KVM_IRQCHIP_IOAPIC;
        let e = state.check().unwrap_err();
        assert!(
            e.to_string().contains("interrupt controller 2 saved as 1"),
            "{e}"
        );
    }
}
