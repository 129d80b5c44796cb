//! The virtio-mmio transport (virtio 1.2, 4.2.2; version 2, no legacy): a page of 32-bit
//! registers through which the driver learns the device, negotiates features, places its
//! queues and notifies them, followed by the device's configuration space at 0x100.
//!
//! The driver notifies a queue by writing its index to `QueueNotify`. Where KVM offers
//! `KVM_CAP_IOEVENTFD`, that write never leaves the kernel: KVM signals an eventfd (one
//! per queue, told apart by the value written) and a [`Notifier`] thread of the monitor
//! serves the queue while the vCPU runs on; elsewhere the write is an MMIO exit and the
//! vCPU's thread serves the queue before it re-enters. A device with work of its own (a
//! network device's frames from the host, [`Device::source`]) is served by the same
//! thread when its descriptor becomes readable.
//! The device interrupts the guest by writing an eventfd that KVM turns into an interrupt
//! on its line (`KVM_IRQFD`), without a system call into the vCPU.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_mmio::{
    VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_CONFIG_GENERATION, VIRTIO_MMIO_DEVICE_FEATURES,
    VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_DRIVER_FEATURES,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS,
    VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
    VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DESC_LOW,
    VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_NUM_MAX,
    VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_USED_HIGH,
    VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_VERSION,
};
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::Device;
use crate::bus::{Action, BusDevice};

/// Bytes of guest-physical address space each device's registers take.
pub const MMIO_SIZE: u64 = 0x1000;
/// `MagicValue`: "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// `Version`: 2, the virtio 1.x (non-legacy) transport.
pub const VERSION: u32 = 2;
/// `VendorID`: "vcb" and a zero, the project's own.
pub const VENDOR_ID: u32 = 0x0062_6376;
/// Offset of `QueueNotify`, where KVM may catch the driver's notifications.
pub const QUEUE_NOTIFY: u64 = VIRTIO_MMIO_QUEUE_NOTIFY as u64;

/// The kernel command-line word that announces a virtio-mmio device at `base` with
/// interrupt line `irq` to Linux (`CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`).
pub fn cmdline_entry(base: u64, irq: u32) -> String {
    format!("virtio_mmio.device={}K@{base:#x}:{irq}", MMIO_SIZE >> 10)
}

/// Errors starting a notifier thread.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An eventfd or the epoll instance could not be made.
    #[error("cannot create the {what}")]
    Host {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A device behind its registers.
pub struct Transport<D: Device> {
    device: D,
    memory: GuestMemoryMmap,
    queues: Vec<Queue>,
    queue_select: u32,
    device_features_select: u32,
    driver_features_select: u32,
    driver_features: u64,
    status: u32,
    interrupt_status: u32,
    interrupt: EventFd,
    /// Times the device was woken for each queue, by either path (notifications that KVM
    /// caught while the notifier was busy are read from the eventfd as one).
    notifications: Vec<u64>,
    /// Notifications of queues the device does not have.
    stray_notifications: u64,
    /// Signalled when the device ends a turn with work left ([`Device::source_pending`]),
    /// so that its [`Notifier`] serves it again, whichever thread served it.
    wake: Option<EventFd>,
}

impl<D: Device> std::fmt::Debug for Transport<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("device_id", &self.device.device_id())
            .field("status", &self.status)
            .field("notifications", &self.notifications())
            .finish()
    }
}

impl<D: Device> Transport<D> {
    /// `device` on guest memory `memory`, interrupting the guest through `interrupt`.
    pub fn new(device: D, memory: GuestMemoryMmap, interrupt: EventFd) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            // A queue's size is a power of two up to 32768; a device that asks otherwise
            // gets no queue rather than a panic.
            .filter_map(|&max| Queue::new(max).ok())
            .collect::<Vec<_>>();
        let notifications = vec![0; queues.len()];
        Transport {
            device,
            memory,
            queues,
            queue_select: 0,
            device_features_select: 0,
            driver_features_select: 0,
            driver_features: 0,
            status: 0,
            interrupt_status: 0,
            interrupt,
            notifications,
            stray_notifications: 0,
            wake: None,
        }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device status the driver last wrote (`VIRTIO_CONFIG_S_*` bits).
    pub fn status(&self) -> u32 {
        self.status
    }

    /// Queue notifications received so far, all queues together (including those of a
    /// queue index the device does not have).
    pub fn notifications(&self) -> u64 {
        self.notifications.iter().sum::<u64>() + self.stray_notifications
    }

    /// Notifications of queue `index` received so far.
    pub fn queue_notifications(&self, index: usize) -> u64 {
        self.notifications.get(index).copied().unwrap_or(0)
    }

    fn selected(&mut self) -> Option<&mut Queue> {
        let index = usize::try_from(self.queue_select).ok()?;
        self.queues.get_mut(index)
    }

    fn driver_ok(&self) -> bool {
        self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0
    }

    /// Whether the driver may still set the selected queue up.
    fn queue_settable(&mut self) -> Option<&mut Queue> {
        if self.driver_ok() {
            return None;
        }
        self.selected().filter(|q| !q.ready())
    }

    fn register(&mut self, offset: u32) -> u32 {
        let features = self.device.features();
        match offset {
            VIRTIO_MMIO_MAGIC_VALUE => MAGIC,
            VIRTIO_MMIO_VERSION => VERSION,
            VIRTIO_MMIO_DEVICE_ID => self.device.device_id(),
            VIRTIO_MMIO_VENDOR_ID => VENDOR_ID,
            VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_select {
                0 => features as u32,
                1 => (features >> 32) as u32,
                _ => 0,
            },
            VIRTIO_MMIO_QUEUE_NUM_MAX => self.selected().map_or(0, |q| u32::from(q.max_size())),
            VIRTIO_MMIO_QUEUE_READY => self.selected().map_or(0, |q| u32::from(q.ready())),
            VIRTIO_MMIO_INTERRUPT_STATUS => match self.device.interrupts_by_itself() {
                true if self.driver_ok() => self.interrupt_status | VIRTIO_MMIO_INT_VRING,
                _ => self.interrupt_status,
            },
            VIRTIO_MMIO_STATUS => self.status,
            VIRTIO_MMIO_CONFIG_GENERATION => 0,
            _ => 0,
        }
    }

    fn set_register(&mut self, offset: u32, value: u32) {
        match offset {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_select = value,
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_select = value,
            VIRTIO_MMIO_DRIVER_FEATURES => {
                let negotiating = self.status & VIRTIO_CONFIG_S_DRIVER != 0
                    && self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0;
                if negotiating {
                    let value = u64::from(value);
                    match self.driver_features_select {
                        0 => self.driver_features = (self.driver_features & !0xffff_ffff) | value,
                        1 => {
                            self.driver_features =
                                (self.driver_features & 0xffff_ffff) | (value << 32)
                        }
                        _ => {}
                    }
                }
            }
            VIRTIO_MMIO_QUEUE_SEL => self.queue_select = value,
            VIRTIO_MMIO_QUEUE_NUM => {
                if let Some(q) = self.queue_settable() {
                    // A size that is not a power of two up to the maximum is refused by
                    // the queue, which keeps its old one.
                    q.set_size(u16::try_from(value).unwrap_or(0));
                }
            }
            VIRTIO_MMIO_QUEUE_READY => {
                if let Some(q) = self.selected().filter(|_| value <= 1) {
                    q.set_ready(value == 1);
                }
            }
            VIRTIO_MMIO_QUEUE_DESC_LOW => {
                self.with_queue(|q| q.set_desc_table_address(Some(value), None))
            }
            VIRTIO_MMIO_QUEUE_DESC_HIGH => {
                self.with_queue(|q| q.set_desc_table_address(None, Some(value)))
            }
            VIRTIO_MMIO_QUEUE_AVAIL_LOW => {
                self.with_queue(|q| q.set_avail_ring_address(Some(value), None))
            }
            VIRTIO_MMIO_QUEUE_AVAIL_HIGH => {
                self.with_queue(|q| q.set_avail_ring_address(None, Some(value)))
            }
            VIRTIO_MMIO_QUEUE_USED_LOW => {
                self.with_queue(|q| q.set_used_ring_address(Some(value), None))
            }
            VIRTIO_MMIO_QUEUE_USED_HIGH => {
                self.with_queue(|q| q.set_used_ring_address(None, Some(value)))
            }
            VIRTIO_MMIO_QUEUE_NOTIFY => self.notify(value),
            VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt_status &= !value,
            VIRTIO_MMIO_STATUS => self.set_status(value),
            _ => {}
        }
    }

    fn with_queue(&mut self, set: impl FnOnce(&mut Queue)) {
        if let Some(q) = self.queue_settable() {
            set(q);
        }
    }

    /// The driver wrote the device status: 0 resets the device; `FEATURES_OK` is kept only
    /// for a feature set the device offered that includes `VIRTIO_F_VERSION_1` (the driver
    /// reads the status back to learn whether the device took its features).
    fn set_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let mut value = value;
        if value & VIRTIO_CONFIG_S_FEATURES_OK != 0
            && self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0
        {
            let offered = self.device.features();
            let acceptable = self.driver_features & !offered == 0
                && self.driver_features & (1 << VIRTIO_F_VERSION_1) != 0;
            if acceptable {
                self.device.set_driver_features(self.driver_features);
                let event_idx = self.driver_features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
                for q in &mut self.queues {
                    q.set_event_idx(event_idx);
                }
            } else {
                value &= !VIRTIO_CONFIG_S_FEATURES_OK;
            }
        }
        // DRIVER_OK without FEATURES_OK is a driver that skipped negotiation: not kept.
        if value & VIRTIO_CONFIG_S_DRIVER_OK != 0 && value & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
            value &= !VIRTIO_CONFIG_S_DRIVER_OK;
        }
        let activating = value & VIRTIO_CONFIG_S_DRIVER_OK != 0 && !self.driver_ok();
        self.status = value | (self.status & VIRTIO_CONFIG_S_NEEDS_RESET);
        if activating && !self.device.activate(&self.queues, &self.memory) {
            self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
        }
    }

    fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.queue_select = 0;
        self.device_features_select = 0;
        self.driver_features_select = 0;
        self.driver_features = 0;
        self.status = 0;
        self.interrupt_status = 0;
    }

    /// The driver notified queue `index`: once the driver is ready, the device serves it
    /// and the guest is interrupted if the device asks.
    pub fn notify(&mut self, index: u32) {
        let Some(index) = usize::try_from(index)
            .ok()
            .filter(|&i| i < self.queues.len())
        else {
            self.stray_notifications += 1;
            return;
        };
        self.notifications[index] += 1;
        self.serve(index);
    }

    /// The device's [`Device::source`] has data for queue `index`: served as a
    /// notification would be, once the driver is ready, without counting one.
    pub fn serve_source(&mut self, index: usize) {
        if index < self.queues.len() {
            self.serve(index);
        }
    }

    /// Serves every queue, as after a notification of each.
    pub fn serve_all(&mut self) {
        for index in 0..self.queues.len() {
            self.serve(index);
        }
    }

    fn serve(&mut self, index: usize) {
        if !self.driver_ok() {
            return;
        }
        let Transport {
            device,
            queues,
            memory,
            ..
        } = self;
        if device.process(index, &mut queues[index], memory) {
            self.interrupt_status |= VIRTIO_MMIO_INT_VRING;
            // A full eventfd counter already holds an interrupt for the guest.
            let _ = self.interrupt.write(1);
        }
        if let (true, Some(wake)) = (self.device.source_pending(), &self.wake) {
            // A full counter already holds a wake-up.
            let _ = wake.write(1);
        }
    }

    /// A guest read at `offset`: registers are 32-bit, read whole; the configuration
    /// space may be read at any width.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        let config = u64::from(VIRTIO_MMIO_CONFIG);
        if offset >= config {
            self.device.read_config(offset - config, data);
            return;
        }
        match (u32::try_from(offset), data.len()) {
            (Ok(register), 4) if register.is_multiple_of(4) => {
                data.copy_from_slice(&self.register(register).to_le_bytes());
            }
            _ => data.fill(0),
        }
    }

    /// A guest write at `offset`: registers take whole 32-bit writes; anything else, and
    /// any write to the configuration space (virtio-blk's is read-only), is ignored.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(register), Ok(bytes)) = (u32::try_from(offset), <[u8; 4]>::try_from(data)) {
            if register.is_multiple_of(4) && offset < u64::from(VIRTIO_MMIO_CONFIG) {
                self.set_register(register, u32::from_le_bytes(bytes));
            }
        }
    }
}

/// A transport shared between the bus (the vCPUs' accesses) and a [`Notifier`].
pub struct Shared<D: Device>(pub Arc<Mutex<Transport<D>>>);

impl<D: Device> BusDevice for Shared<D> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match self.0.lock() {
            Ok(mut transport) => transport.read(offset, data),
            Err(_) => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Action {
        if let Ok(mut transport) = self.0.lock() {
            transport.write(offset, data);
        }
        Action::None
    }
}

/// A thread that serves a transport's queues whenever KVM signals one of their
/// notification eventfds (registered with `KVM_IOEVENTFD` on `QueueNotify`), and the
/// device's own [`Device::source`] whenever it becomes readable; it ends when dropped.
#[derive(Debug)]
pub struct Notifier {
    stop: EventFd,
    /// Times its thread woke from `epoll_wait`.
    wakeups: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// The epoll token of the stop eventfd; a queue's notification eventfd has its queue's
/// index as its token.
const STOP_TOKEN: u64 = u64::MAX;
/// The epoll token of the device's own source.
const SOURCE_TOKEN: u64 = u64::MAX - 1;
/// The epoll token of the transport's wake-up, for a device with work left.
const WAKE_TOKEN: u64 = u64::MAX - 2;

impl Notifier {
    /// Starts a thread that serves `transport`'s queue 0 each time `notify` is signalled.
    pub fn spawn<D: Device + 'static>(
        transport: Arc<Mutex<Transport<D>>>,
        notify: EventFd,
    ) -> Result<Notifier, Error> {
        Self::spawn_queues(transport, vec![(notify, 0)])
    }

    /// Starts a thread that serves queue `index` of `transport` each time its eventfd of
    /// `notify` is signalled, the device's source (if it has one) each time that becomes
    /// readable, and all its queues again whenever a turn ended with work left (on this
    /// thread or a vCPU's). With no eventfds (KVM without ioeventfd: the vCPUs serve the
    /// notifications) the thread serves the source and the work left alone.
    pub fn spawn_queues<D: Device + 'static>(
        transport: Arc<Mutex<Transport<D>>>,
        notify: Vec<(EventFd, u32)>,
    ) -> Result<Notifier, Error> {
        let host = |what| move |source| Error::Host { what, source };
        let stop = EventFd::new(EFD_NONBLOCK).map_err(host("notifier's stop eventfd"))?;
        let epoll = Epoll::new().map_err(host("notifier's epoll instance"))?;
        let mut watched: Vec<(RawFd, EventSet, u64)> = notify
            .iter()
            .map(|(fd, index)| (fd.as_raw_fd(), EventSet::IN, u64::from(*index)))
            .collect();
        watched.push((stop.as_raw_fd(), EventSet::IN, STOP_TOKEN));
        let wake = EventFd::new(EFD_NONBLOCK).map_err(host("notifier's wake-up eventfd"))?;
        watched.push((wake.as_raw_fd(), EventSet::IN, WAKE_TOKEN));
        let source = match transport.lock() {
            Ok(mut t) => {
                t.wake = Some(
                    wake.try_clone()
                        .map_err(host("notifier's wake-up eventfd"))?,
                );
                t.device().source()
            }
            Err(_) => None,
        };
        if let Some((fd, _)) = source {
            // Edge-triggered: a device that cannot take more from its source (no buffers
            // from the guest) leaves it unread until the guest's notification, and is not
            // woken again and again meanwhile.
            watched.push((fd, EventSet::IN | EventSet::EDGE_TRIGGERED, SOURCE_TOKEN));
        }
        for (fd, events, token) in watched {
            epoll
                .ctl(ControlOperation::Add, fd, EpollEvent::new(events, token))
                .map_err(host("notifier's epoll registration"))?;
        }
        let stopper = stop.try_clone().map_err(host("notifier's stop eventfd"))?;
        let source_queue = source.map(|(_, queue)| queue);
        let wakeups = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&wakeups);
        let thread = std::thread::Builder::new()
            .name("virtio-notify".to_owned())
            .spawn(move || {
                let events = Events {
                    notify: &notify,
                    source_queue,
                    wake: &wake,
                    stop: &stopper,
                    epoll: &epoll,
                    wakeups: &counted,
                };
                serve(&transport, &events)
            })
            .map_err(host("notifier thread"))?;
        Ok(Notifier {
            stop,
            wakeups,
            thread: Some(thread),
        })
    }

    /// Times its thread woke from `epoll_wait` so far: each wake-up is that system call
    /// returning, before the eventfd reads and the device's own calls it leads to.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }
}

/// What a notifier's thread waits on.
struct Events<'a> {
    /// Each queue's notification eventfd, with the queue's index.
    notify: &'a [(EventFd, u32)],
    /// The queue the device's source feeds.
    source_queue: Option<usize>,
    /// The transport's wake-up, for a device with work left.
    wake: &'a EventFd,
    stop: &'a EventFd,
    epoll: &'a Epoll,
    wakeups: &'a AtomicU64,
}

fn serve<D: Device>(transport: &Mutex<Transport<D>>, events_of: &Events<'_>) {
    let Events {
        notify,
        source_queue,
        wake,
        stop,
        epoll,
        wakeups,
    } = *events_of;
    // From here on the thread makes only the calls serving the guest needs; a thread
    // that cannot install the filter serves nothing (the vCPU threads fail the run the
    // same way).
    if crate::seccomp::on_guest_thread().is_err() {
        return;
    }
    let mut events = [EpollEvent::default(); 8];
    loop {
        let ready = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        wakeups.fetch_add(1, Ordering::Relaxed);
        let (mut source_ready, mut woken) = (false, false);
        for event in &events[..ready] {
            match event.data() {
                STOP_TOKEN => {
                    let _ = stop.read();
                    return;
                }
                SOURCE_TOKEN => source_ready = true,
                WAKE_TOKEN => woken = wake.read().is_ok(),
                token => {
                    let Some((eventfd, index)) =
                        notify.iter().find(|(_, i)| u64::from(*i) == token)
                    else {
                        continue;
                    };
                    // The counter: how many notifications KVM caught since the last read.
                    if eventfd.read().is_ok() {
                        match transport.lock() {
                            Ok(mut t) => t.notify(*index),
                            Err(_) => return,
                        }
                    }
                }
            }
        }
        if !source_ready && !woken {
            continue;
        }
        let Ok(mut t) = transport.lock() else { return };
        match (woken, source_queue) {
            (true, _) => t.serve_all(),
            (false, Some(queue)) => t.serve_source(queue),
            (false, None) => {}
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::block::{Block, QUEUE_SIZE};
    use virtio_bindings::virtio_config::VIRTIO_CONFIG_S_ACKNOWLEDGE;
    use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
    use vm_memory::{Address, Bytes, GuestAddress};

    fn transport() -> (
        Transport<Block<std::fs::File>>,
        EventFd,
        tempfile::NamedTempFile,
    ) {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(4096).unwrap();
        let device = Block::new(file.reopen().unwrap(), 4096, false, "t");
        let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let interrupt = EventFd::new(EFD_NONBLOCK).unwrap();
        let seen = interrupt.try_clone().unwrap();
        (Transport::new(device, memory, interrupt), seen, file)
    }

    fn get(t: &mut Transport<Block<std::fs::File>>, offset: u32) -> u32 {
        let mut data = [0u8; 4];
        t.read(u64::from(offset), &mut data);
        u32::from_le_bytes(data)
    }

    fn set(t: &mut Transport<Block<std::fs::File>>, offset: u32, value: u32) {
        t.write(u64::from(offset), &value.to_le_bytes());
    }

    /// What Linux's virtio_mmio driver does to bring a device up, with `features`.
    fn negotiate(t: &mut Transport<Block<std::fs::File>>, features: u64) -> u32 {
        set(t, VIRTIO_MMIO_STATUS, 0);
        set(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
        set(
            t,
            VIRTIO_MMIO_STATUS,
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
        );
        set(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        set(t, VIRTIO_MMIO_DRIVER_FEATURES, features as u32);
        set(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        set(t, VIRTIO_MMIO_DRIVER_FEATURES, (features >> 32) as u32);
        let status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
        set(t, VIRTIO_MMIO_STATUS, status | VIRTIO_CONFIG_S_FEATURES_OK);
        get(t, VIRTIO_MMIO_STATUS)
    }

    #[test]
    fn the_registers_identify_a_version_2_block_device() {
        let (mut t, _, _file) = transport();
        assert_eq!(get(&mut t, VIRTIO_MMIO_MAGIC_VALUE), MAGIC);
        assert_eq!(get(&mut t, VIRTIO_MMIO_MAGIC_VALUE).to_le_bytes(), *b"virt");
        assert_eq!(get(&mut t, VIRTIO_MMIO_VERSION), 2);
        assert_eq!(get(&mut t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
        assert_eq!(
            get(&mut t, VIRTIO_MMIO_QUEUE_NUM_MAX),
            u32::from(QUEUE_SIZE)
        );
        set(&mut t, VIRTIO_MMIO_QUEUE_SEL, 1);
        assert_eq!(get(&mut t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "only one queue");
        set(&mut t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        assert_eq!(
            get(&mut t, VIRTIO_MMIO_DEVICE_FEATURES),
            1,
            "VIRTIO_F_VERSION_1 is bit 32"
        );
        // Narrow or misaligned register reads give zeros; the config space any width.
        let mut two = [0xffu8; 2];
        t.read(0, &mut two);
        assert_eq!(two, [0, 0]);
        let mut one = [0u8];
        t.read(u64::from(VIRTIO_MMIO_CONFIG), &mut one);
        assert_eq!(one, [8], "capacity: 8 sectors");
        assert_eq!(
            cmdline_entry(0xd000_1000, 5),
            "virtio_mmio.device=4K@0xd0001000:5"
        );
    }

    #[test]
    fn features_without_version_1_or_not_offered_are_refused() {
        let (mut t, _, _file) = transport();
        let version_1 = 1u64 << VIRTIO_F_VERSION_1;
        assert_eq!(negotiate(&mut t, 0) & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        assert_eq!(
            negotiate(&mut t, version_1 | 1 << 40) & VIRTIO_CONFIG_S_FEATURES_OK,
            0
        );
        // DRIVER_OK without accepted features is not kept.
        set(&mut t, VIRTIO_MMIO_STATUS, 0x7);
        assert_eq!(
            get(&mut t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK,
            0
        );
        assert_ne!(
            negotiate(&mut t, version_1) & VIRTIO_CONFIG_S_FEATURES_OK,
            0
        );
    }

    #[test]
    fn a_notified_queue_is_served_and_interrupts_until_acknowledged_and_reset_clears_all() {
        let (mut t, interrupt, file) = transport();
        let version_1 = 1u64 << VIRTIO_F_VERSION_1;
        assert_ne!(
            negotiate(&mut t, version_1) & VIRTIO_CONFIG_S_FEATURES_OK,
            0
        );
        // Queue 0 at 0x1000 (descriptors), 0x2000 (available), 0x3000 (used), 16 entries.
        set(&mut t, VIRTIO_MMIO_QUEUE_SEL, 0);
        set(&mut t, VIRTIO_MMIO_QUEUE_NUM, 16);
        set(&mut t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
        set(&mut t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x2000);
        set(&mut t, VIRTIO_MMIO_QUEUE_USED_LOW, 0x3000);
        set(&mut t, VIRTIO_MMIO_QUEUE_READY, 1);
        assert_eq!(get(&mut t, VIRTIO_MMIO_QUEUE_READY), 1);
        let status = get(&mut t, VIRTIO_MMIO_STATUS);
        set(
            &mut t,
            VIRTIO_MMIO_STATUS,
            status | VIRTIO_CONFIG_S_DRIVER_OK,
        );
        // A ready queue cannot be moved.
        set(&mut t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x5000);

        // A write of one sector: header, data, status.
        let memory = t.memory.clone();
        let descriptors: [(u64, u32, u16); 3] = [(0x8000, 16, 1), (0x9000, 512, 1), (0xa000, 1, 2)];
        for (i, (address, len, flags)) in descriptors.iter().enumerate() {
            let at = GuestAddress(0x1000 + 16 * i as u64);
            memory.write_obj(*address, at).unwrap();
            memory.write_obj(*len, at.unchecked_add(8)).unwrap();
            memory.write_obj(*flags, at.unchecked_add(12)).unwrap();
            memory
                .write_obj(i as u16 + 1, at.unchecked_add(14))
                .unwrap();
        }
        memory.write_obj(1u32, GuestAddress(0x8000)).unwrap();
        memory.write_obj(1u64, GuestAddress(0x8008)).unwrap();
        memory
            .write_slice(&[0x5a; 512], GuestAddress(0x9000))
            .unwrap();
        memory.write_obj(0u16, GuestAddress(0x2004)).unwrap();
        memory.write_obj(1u16, GuestAddress(0x2002)).unwrap();
        assert!(
            interrupt.read().is_err(),
            "no interrupt before the notification"
        );
        set(&mut t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
        assert_eq!(interrupt.read().unwrap(), 1);
        assert_eq!(
            get(&mut t, VIRTIO_MMIO_INTERRUPT_STATUS),
            VIRTIO_MMIO_INT_VRING
        );
        assert_eq!(memory.read_obj::<u8>(GuestAddress(0xa000)).unwrap(), 0);
        assert_eq!(memory.read_obj::<u16>(GuestAddress(0x3002)).unwrap(), 1);
        assert_eq!(
            &std::fs::read(file.path()).unwrap()[512..1024],
            &[0x5a; 512]
        );
        set(&mut t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
        assert_eq!(get(&mut t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
        assert_eq!(t.notifications(), 1);
        // A notification of a queue that does not exist does nothing.
        set(&mut t, VIRTIO_MMIO_QUEUE_NOTIFY, 7);
        assert!(interrupt.read().is_err());

        set(&mut t, VIRTIO_MMIO_STATUS, 0);
        assert_eq!(get(&mut t, VIRTIO_MMIO_STATUS), 0);
        assert_eq!(get(&mut t, VIRTIO_MMIO_QUEUE_READY), 0);
        // A reset device serves nothing until the driver is ready again.
        set(&mut t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
        assert!(interrupt.read().is_err());
    }

    /// A device that asks for three more turns after each notification, counting them.
    struct Eager {
        turns: Arc<std::sync::atomic::AtomicU32>,
        sizes: [u16; 1],
    }

    impl Device for Eager {
        fn device_id(&self) -> u32 {
            VIRTIO_ID_BLOCK
        }
        fn features(&self) -> u64 {
            1 << VIRTIO_F_VERSION_1
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &self.sizes
        }
        fn read_config(&self, _offset: u64, data: &mut [u8]) {
            data.fill(0);
        }
        fn set_driver_features(&mut self, _features: u64) {}
        fn process(
            &mut self,
            _index: usize,
            _queue: &mut Queue,
            _memory: &GuestMemoryMmap,
        ) -> bool {
            self.turns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            false
        }
        fn reset(&mut self) {}
        fn source_pending(&self) -> bool {
            self.turns.load(std::sync::atomic::Ordering::SeqCst) < 4
        }
    }

    #[test]
    fn a_turn_that_leaves_work_is_followed_by_another_on_the_notifiers_thread() {
        let turns = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let device = Eager {
            turns: Arc::clone(&turns),
            sizes: [16],
        };
        let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let mut t = Transport::new(device, memory, EventFd::new(EFD_NONBLOCK).unwrap());
        let mut set = |offset: u32, value: u32| t.write(u64::from(offset), &value.to_le_bytes());
        set(
            VIRTIO_MMIO_STATUS,
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
        );
        set(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        set(VIRTIO_MMIO_DRIVER_FEATURES, 1);
        set(VIRTIO_MMIO_STATUS, 0xb);
        set(VIRTIO_MMIO_STATUS, 0xf);
        assert_eq!(
            t.status() & VIRTIO_CONFIG_S_DRIVER_OK,
            VIRTIO_CONFIG_S_DRIVER_OK
        );
        let shared = Arc::new(Mutex::new(t));
        // No notification eventfds: the notifications come as MMIO exits, on a vCPU's
        // thread, which is this one.
        let notifier = Notifier::spawn_queues(Arc::clone(&shared), Vec::new()).unwrap();
        shared.lock().unwrap().notify(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while turns.load(std::sync::atomic::Ordering::SeqCst) < 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "the work left was never served"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(notifier);
        assert_eq!(
            turns.load(std::sync::atomic::Ordering::SeqCst),
            4,
            "no turn more"
        );
        assert_eq!(shared.lock().unwrap().notifications(), 1);
    }

    #[test]
    fn a_notifier_serves_the_queue_when_its_eventfd_is_signalled_and_stops_when_dropped() {
        let (t, _interrupt, _file) = transport();
        let shared = Arc::new(Mutex::new(t));
        let notify = EventFd::new(EFD_NONBLOCK).unwrap();
        let kick = notify.try_clone().unwrap();
        let notifier = Notifier::spawn(Arc::clone(&shared), notify).unwrap();
        kick.write(1).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while shared.lock().unwrap().notifications() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the notifier never served"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(notifier);
        assert_eq!(
            Arc::strong_count(&shared),
            1,
            "the thread let the transport go"
        );
    }
}
