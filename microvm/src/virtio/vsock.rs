//! The virtio-vsock device (virtio 1.2, 5.10) with its data path in the host kernel
//! (`vhost-vsock`): the guest's `AF_VSOCK` sockets reach the host's own, with the guest
//! at its context ID (CID) and the host at CID 2.
//!
//! The monitor only sets the device up. Before the guest runs it opens
//! `/dev/vhost-vsock`, becomes its owner, hands it the guest's memory map and claims the
//! guest's CID (a CID another VM on the host holds is refused here, before the guest
//! boots). When the driver sets `DRIVER_OK`, the monitor hands the kernel the two data
//! queues (receive and transmit): their size and addresses, the eventfd KVM signals when
//! the driver notifies them (`KVM_IOEVENTFD` with the queue's index as the value written)
//! and the eventfd that interrupts the guest (`KVM_IRQFD`). From then on a packet crosses
//! between guest and host without the monitor: notification, copy and interrupt all
//! happen in the host kernel. The event queue (transport resets) stays with the monitor,
//! which never posts an event on it.
//!
//! Because the kernel, not the transport, interrupts the guest, the transport cannot set
//! the used-ring bit of `InterruptStatus` first; the device says so
//! ([`super::Device::interrupts_by_itself`]) and the transport always reports that bit,
//! so Linux's interrupt handler looks at the rings each time.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use vhost::vhost_kern::vsock::Vsock as Vhost;
use vhost::vsock::VhostVsock;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

/// `VIRTIO_ID_VSOCK`.
pub const DEVICE_ID: u32 = 19;
/// The largest size of each of the three queues.
pub const QUEUE_SIZE: u16 = 256;
/// The data queues the kernel serves: receive (0) and transmit (1).
pub const DATA_QUEUES: usize = 2;
/// The event queue's index.
const EVENT_QUEUE: usize = 2;
/// The host's own CID; 0 and 1 are reserved, and `u32::MAX` means any.
pub const HOST_CID: u64 = 2;
/// The features the monitor passes on when the kernel offers them: the virtio 1.x
/// layout, and the ring features vhost implements for any device.
const PASSED_ON: u64 =
    (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_RING_F_EVENT_IDX) | (1 << VIRTIO_RING_F_INDIRECT_DESC);

/// Errors setting the device up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CID a guest cannot have.
    #[error(
        "the guest's vsock CID {0} is reserved: 0, 1 and 2 (the host) and 4294967295 (any) \
         are taken; give 3 to 4294967294"
    )]
    ReservedCid(u64),
    /// `/dev/vhost-vsock` could not be opened.
    #[error(
        "cannot open /dev/vhost-vsock for the guest's vsock device (is the vhost_vsock \
         module loaded, and may this user open it?)"
    )]
    Open(#[source] vhost::Error),
    /// A vhost call failed.
    #[error("vhost-vsock: cannot {what}")]
    Vhost {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: vhost::Error,
    },
    /// Another VM on this host holds the CID.
    #[error("the vsock CID {cid} is taken by another VM on this host: give another")]
    CidTaken {
        /// The CID.
        cid: u64,
    },
    /// The kernel does not offer virtio 1.x.
    #[error("this host's vhost-vsock does not offer VIRTIO_F_VERSION_1 (features {0:#x})")]
    NoVersion1(u64),
}

fn vhost(what: &'static str) -> impl FnOnce(vhost::Error) -> Error {
    move |source| Error::Vhost { what, source }
}

/// What the device did, for the monitor's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Times the driver handed the kernel its queues (`DRIVER_OK`).
    pub activations: u64,
    /// Times handing them over failed (the device then asks the driver for a reset).
    pub activation_errors: u64,
    /// Notifications of a data queue that came as MMIO exits and were passed on to the
    /// kernel by the monitor (none where KVM catches them).
    pub kicks_passed_on: u64,
}

/// The vsock device: the vhost handle, the guest's CID, and the eventfds of the queues.
pub struct Vsock {
    vhost: Vhost<Arc<GuestMemoryMmap>>,
    cid: u64,
    features: u64,
    acked: u64,
    /// The eventfd the kernel reads each data queue's notifications from.
    kicks: [EventFd; DATA_QUEUES],
    /// The eventfd that interrupts the guest (registered with `KVM_IRQFD`).
    interrupt: EventFd,
    running: bool,
    counters: Counters,
}

impl std::fmt::Debug for Vsock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vsock")
            .field("cid", &self.cid)
            .field("running", &self.running)
            .field("counters", &self.counters)
            .finish()
    }
}

/// Checks a guest CID: 3 up to `u32::MAX - 1` (virtio-vsock's CIDs are 32-bit in practice,
/// and `u32::MAX` is `VMADDR_CID_ANY`).
pub fn check_cid(cid: u64) -> Result<u64, Error> {
    match cid {
        3..=0xffff_fffe => Ok(cid),
        _ => Err(Error::ReservedCid(cid)),
    }
}

impl Vsock {
    /// Opens `/dev/vhost-vsock` for a guest at `cid` on `memory`, with `kicks` the
    /// eventfds that carry the data queues' notifications and `interrupt` the guest's
    /// interrupt line. Every call here runs before the guest does (and before the
    /// monitor's system call filter).
    pub fn new(
        cid: u64,
        memory: &GuestMemoryMmap,
        kicks: [EventFd; DATA_QUEUES],
        interrupt: EventFd,
    ) -> Result<Self, Error> {
        let cid = check_cid(cid)?;
        let handle = Vhost::new(Arc::new(memory.clone())).map_err(Error::Open)?;
        handle
            .set_owner()
            .map_err(vhost("become the device's owner"))?;
        let offered = handle.get_features().map_err(vhost("read its features"))?;
        if offered & (1 << VIRTIO_F_VERSION_1) == 0 {
            return Err(Error::NoVersion1(offered));
        }
        // The kernel needs each region's guest address, size and address in this process
        // (guest memory is anonymous: there is no file to describe).
        let regions: Vec<VhostUserMemoryRegionInfo> = memory
            .iter()
            .map(|region| VhostUserMemoryRegionInfo {
                guest_phys_addr: region.start_addr().raw_value(),
                memory_size: region.len(),
                userspace_addr: region.as_ptr() as u64,
                mmap_offset: 0,
                mmap_handle: -1,
            })
            .collect();
        handle
            .set_mem_table(&regions)
            .map_err(vhost("hand it the guest's memory"))?;
        match handle.set_guest_cid(cid) {
            Ok(()) => {}
            Err(vhost::Error::IoctlError(e)) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                return Err(Error::CidTaken { cid });
            }
            Err(source) => return Err(vhost("claim the guest's CID")(source)),
        }
        Ok(Vsock {
            vhost: handle,
            cid,
            features: offered & PASSED_ON,
            acked: 0,
            kicks,
            interrupt,
            running: false,
            counters: Counters::default(),
        })
    }

    /// The guest's CID.
    pub fn cid(&self) -> u64 {
        self.cid
    }

    /// What the device did so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Hands the data queues to the kernel and starts it.
    fn hand_over(&mut self, queues: &[Queue]) -> Result<(), Error> {
        self.vhost
            .set_features(self.acked)
            .map_err(vhost("set the negotiated features"))?;
        for (index, queue) in queues.iter().enumerate().take(DATA_QUEUES) {
            let ring = VringConfigData {
                queue_max_size: queue.max_size(),
                queue_size: queue.size(),
                flags: 0,
                desc_table_addr: queue.desc_table(),
                used_ring_addr: queue.used_ring(),
                avail_ring_addr: queue.avail_ring(),
                log_addr: None,
            };
            self.vhost
                .set_vring_num(index, queue.size())
                .map_err(vhost("set a queue's size"))?;
            self.vhost
                .set_vring_addr(index, &ring)
                .map_err(vhost("place a queue"))?;
            self.vhost
                .set_vring_base(index, 0)
                .map_err(vhost("set a queue's first index"))?;
            self.vhost
                .set_vring_call(index, &self.interrupt)
                .map_err(vhost("give a queue its interrupt"))?;
            self.vhost
                .set_vring_kick(index, &self.kicks[index])
                .map_err(vhost("give a queue its notifications"))?;
        }
        self.vhost.start().map_err(vhost("start"))?;
        self.running = true;
        Ok(())
    }
}

impl super::Device for Vsock {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; 3]
    }

    /// The configuration space: the guest's CID, a little-endian u64.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let config = self.cid.to_le_bytes();
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|at| config.get(at))
                .copied()
                .unwrap_or(0);
        }
    }

    fn set_driver_features(&mut self, features: u64) {
        self.acked = features & self.features;
    }

    /// A data queue notified through an MMIO exit (KVM caught none): passed on to the
    /// kernel through the queue's eventfd. The event queue needs nothing: the monitor
    /// posts no events.
    fn process(&mut self, index: usize, _queue: &mut Queue, _memory: &GuestMemoryMmap) -> bool {
        if let Some(kick) = self.kicks.get(index).filter(|_| index != EVENT_QUEUE) {
            if kick.write(1).is_ok() {
                self.counters.kicks_passed_on += 1;
            }
        }
        false
    }

    fn activate(&mut self, queues: &[Queue], _memory: &GuestMemoryMmap) -> bool {
        if queues.len() < DATA_QUEUES || queues[..DATA_QUEUES].iter().any(|q| !q.ready()) {
            self.counters.activation_errors += 1;
            return false;
        }
        match self.hand_over(queues) {
            Ok(()) => {
                self.counters.activations += 1;
                true
            }
            Err(_) => {
                self.counters.activation_errors += 1;
                false
            }
        }
    }

    fn interrupts_by_itself(&self) -> bool {
        true
    }

    fn reset(&mut self) {
        if self.running {
            // The kernel stops touching the queues; a driver that resets and comes back
            // gets them handed over again at its next DRIVER_OK.
            let _ = self.vhost.stop();
            self.running = false;
        }
        self.acked = 0;
    }
}

impl AsRawFd for Vsock {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.vhost.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::virtio::mmio::Transport;
    use crate::virtio::Device;
    use virtio_bindings::virtio_config::{
        VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
        VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
    };
    use virtio_bindings::virtio_mmio::{
        VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_INTERRUPT_STATUS,
        VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_STATUS,
    };

    /// A device served elsewhere, as the vsock device is, that can refuse its queues.
    struct Elsewhere {
        accept: bool,
        activated: usize,
    }

    impl Device for Elsewhere {
        fn device_id(&self) -> u32 {
            DEVICE_ID
        }
        fn features(&self) -> u64 {
            1 << VIRTIO_F_VERSION_1
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[QUEUE_SIZE; 3]
        }
        fn read_config(&self, _: u64, data: &mut [u8]) {
            data.fill(0);
        }
        fn set_driver_features(&mut self, _: u64) {}
        fn process(&mut self, _: usize, _: &mut Queue, _: &GuestMemoryMmap) -> bool {
            false
        }
        fn reset(&mut self) {}
        fn activate(&mut self, _: &[Queue], _: &GuestMemoryMmap) -> bool {
            self.activated += 1;
            self.accept
        }
        fn interrupts_by_itself(&self) -> bool {
            true
        }
    }

    fn bring_up(accept: bool) -> Transport<Elsewhere> {
        let memory =
            GuestMemoryMmap::from_ranges(&[(vm_memory::GuestAddress(0), 1 << 20)]).unwrap();
        let device = Elsewhere {
            accept,
            activated: 0,
        };
        let mut t = Transport::new(device, memory, EventFd::new(0).unwrap());
        let set = |t: &mut Transport<Elsewhere>, offset: u32, value: u32| {
            t.write(u64::from(offset), &value.to_le_bytes())
        };
        let driver = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
        set(&mut t, VIRTIO_MMIO_STATUS, driver);
        set(&mut t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        set(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, 1);
        set(
            &mut t,
            VIRTIO_MMIO_STATUS,
            driver | VIRTIO_CONFIG_S_FEATURES_OK,
        );
        let ok = driver | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
        set(&mut t, VIRTIO_MMIO_STATUS, ok);
        // A second DRIVER_OK write hands nothing over again.
        set(&mut t, VIRTIO_MMIO_STATUS, ok);
        t
    }

    fn get(t: &mut Transport<Elsewhere>, offset: u32) -> u32 {
        let mut data = [0u8; 4];
        t.read(u64::from(offset), &mut data);
        u32::from_le_bytes(data)
    }

    #[test]
    fn a_device_served_elsewhere_is_handed_its_queues_once_and_its_interrupts_name_the_rings() {
        let mut t = bring_up(true);
        assert_eq!(t.device().activated, 1);
        assert_eq!(
            get(&mut t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
            0
        );
        // The host kernel interrupts the guest without the transport: every interrupt
        // must send Linux to the rings.
        assert_eq!(
            get(&mut t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING,
            VIRTIO_MMIO_INT_VRING
        );
    }

    #[test]
    fn a_device_that_cannot_take_its_queues_asks_for_a_reset() {
        let mut t = bring_up(false);
        assert_eq!(
            get(&mut t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
            VIRTIO_CONFIG_S_NEEDS_RESET
        );
        t.write(u64::from(VIRTIO_MMIO_STATUS), &0u32.to_le_bytes());
        assert_eq!(
            get(&mut t, VIRTIO_MMIO_INTERRUPT_STATUS),
            0,
            "reset: no interrupt"
        );
    }

    #[test]
    fn only_guest_cids_are_taken() {
        for reserved in [0, 1, HOST_CID, 0xffff_ffff, 1 << 40] {
            let e = check_cid(reserved).unwrap_err();
            assert!(e.to_string().contains(&reserved.to_string()), "{e}");
        }
        assert_eq!(check_cid(3).unwrap(), 3);
        assert_eq!(check_cid(0xffff_fffe).unwrap(), 0xffff_fffe);
    }

    #[test]
    fn a_host_without_vhost_vsock_gets_a_clear_error() {
        if std::path::Path::new("/dev/vhost-vsock").exists() {
            eprintln!("skipped: this host has /dev/vhost-vsock; the rig test covers it");
            return;
        }
        let memory =
            GuestMemoryMmap::from_ranges(&[(vm_memory::GuestAddress(0), 1 << 20)]).unwrap();
        let kicks = [EventFd::new(0).unwrap(), EventFd::new(0).unwrap()];
        let e = Vsock::new(3, &memory, kicks, EventFd::new(0).unwrap()).unwrap_err();
        assert!(matches!(e, Error::Open(_)), "{e:?}");
        assert!(e.to_string().contains("/dev/vhost-vsock"), "{e}");
    }
}
