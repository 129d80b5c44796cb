//! The `qemu` backend: QEMU's `-M microvm` with KVM running the same guests as the
//! `microvm` backend, so the monitors are compared on equal work.
//!
//! **Linux guests** (where the `microvm` backend boots them: a guest kernel and
//! hardware-assisted KVM): QEMU boots the same kernel (through its PVH entry) with the same
//! initramfs and the same command line, so the byte-identical workload runs as init. The
//! guest's serial console and an `isa-debugcon` device on the marker port share one
//! multiplexed character device on QEMU's standard output: the workload's marker bytes
//! (init reached, powering off) and its record lines arrive on one stream, each stamped
//! the moment it is read. The guest halts after its power-off marker (no ACPI) and QEMU is
//! then asked to quit.
//!
//! **Micro guests**: QEMU starts a vCPU at the reset vector, so the guest is entered through a 64 KiB
//! firmware image of one instruction (a far jump to the payload at `PAYLOAD_START`,
//! which QEMU's generic loader places in guest memory). The guest's marker writes to port
//! 0x80 reach the host through an `isa-debugcon` device on that port whose output is
//! QEMU's standard output: each byte is stamped the moment it is read, as the project's
//! monitor stamps the exit. QEMU's memory is split the same way too: the resident part of
//! its guest-RAM mapping (from smaps) is guest memory, the rest its overhead.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use container::process::Child;
use microvm::guest::{self, MARKER_START};
use microvm::layout::{MARKER_PORT, PAYLOAD_START};
use reports::document::Part;
use workload::record::Record;

use super::console::Console;
use super::microvm::{GuestKernel, Guests, MicroVm, GUEST_MIB, LINUX_HOLD_MS};
use super::protocol::{
    Availability, Backend, Calls, Error, Event, Exit, Footprint, Instance, Launch, Reach,
};
use super::watch::{self, ByteHandler, Watch};
use crate::clock::Stamp;
use crate::procfs;
use crate::scenario::Scenario;

/// The QEMU binary.
const QEMU: &str = "qemu-system-x86_64";
/// The CPU model: `host` with the MSR that software KVM (kvm_pvm) cannot set turned off,
/// and the guest CPU the microvm backend gives: no PMU (QEMU already leaves the invariant
/// TSC out, offers the TSC-deadline timer where KVM emulates it, and asks for AMX's
/// permission itself).
const CPU: &str = "host,-arch-capabilities,pmu=off";

/// The longest console line kept, bytes: the rest of a longer line is dropped.
const MAX_CONSOLE_LINE: usize = 64 * 1024;

/// The QEMU backend.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// Guest memory, MiB.
    pub memory_mib: u64,
    /// vCPUs of a Linux guest.
    pub vcpus: u8,
    /// The guests it boots: the `microvm` backend's, so both boot the same kernel.
    pub guests: Guests,
    /// Show the guest kernel's log (no `quiet`).
    pub console: bool,
    /// The tap a Linux guest's network device is attached to, in the network namespace
    /// QEMU is started in; none without a network.
    pub tap: Option<String>,
    /// The context ID of a Linux guest's vsock device (`vhost-vsock-device`), served by
    /// the host kernel; none without one.
    pub vsock_cid: Option<u32>,
}

impl Default for Qemu {
    /// The guests the `microvm` backend boots by default.
    fn default() -> Self {
        Self::with_guests(MicroVm::guests_for(None))
    }
}

/// The disk's virtio-mmio transport as Linux is told of it: QEMU's `-M microvm` without
/// ACPI has eight transports of 512 bytes from 0xfeb00000 on IRQs 5 to 12, and the disk
/// goes on the first (`virtio-mmio-bus.0`).
const QEMU_DISK_DEVICE: &str = "virtio_mmio.device=512@0xfeb00000:5";

/// The `virtio_mmio.device=` parameter of QEMU's virtio-mmio transport `n` (`n` is 0 to 7):
/// 512 bytes at 0xfeb00000 + 512 n, on IRQ 5 + n.
fn qemu_mmio_device(n: usize) -> String {
    format!(
        "virtio_mmio.device=512@{:#x}:{}",
        0xfeb0_0000 + 512 * n,
        5 + n
    )
}

impl Qemu {
    /// The default settings, booting `guests`.
    pub fn with_guests(guests: Guests) -> Self {
        Qemu {
            memory_mib: GUEST_MIB,
            vcpus: 1,
            guests,
            console: false,
            tap: None,
            vsock_cid: None,
        }
    }

    fn linux(&self) -> Option<&GuestKernel> {
        match &self.guests {
            Guests::Linux(kernel) => Some(kernel),
            _ => None,
        }
    }
}

impl Backend for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn describe(&self) -> &'static str {
        "QEMU -M microvm with KVM (peer VMM) booting the same Linux guest, or running the same micro guest"
    }

    fn version(&self) -> Option<String> {
        Some(crate::host::tool_version(QEMU).unwrap_or_else(|why| why))
    }

    fn reach(&self) -> Reach {
        Reach {
            filter: "none on QEMU's process: it runs without -sandbox, as it does by default"
                .to_owned(),
            calls: Calls::All,
            conditional: Vec::new(),
            vm_exits: vec![
                "port I/O and MMIO of QEMU's emulated microvm devices".to_owned(),
                "HLT, shutdown and KVM's system events".to_owned(),
            ],
        }
    }

    fn availability(&self) -> Availability {
        if let Err(why) = crate::host::tool_version(QEMU) {
            return Availability::Unavailable(format!("{why} (package qemu-system-x86)"));
        }
        match crate::host::kvm_access() {
            Ok(()) => Availability::Available,
            Err(why) => Availability::Unavailable(why),
        }
    }

    fn in_default_set(&self) -> bool {
        false
    }

    fn settings(&self) -> String {
        let version = crate::host::tool_version(QEMU).unwrap_or_default();
        match self.linux() {
            Some(kernel) => format!(
                "{version}; -M microvm -accel kvm -cpu {CPU}; Linux guests ({}), {} vCPU{}, {} MiB",
                kernel.describe(),
                self.vcpus,
                if self.vcpus == 1 { "" } else { "s" },
                self.memory_mib
            ),
            None => format!(
                "{version}; -M microvm -accel kvm -cpu {CPU}; {} MiB; micro guest hello",
                self.memory_mib
            ),
        }
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        match (&self.guests, scenario) {
            (_, Scenario::Exits) => {
                Err("the exits guest is timed in this project's monitor only".to_owned())
            }
            (_, Scenario::Density | Scenario::Interference) => {
                Err("the qemu backend is compared one instance at a time".to_owned())
            }
            (Guests::Linux(_), Scenario::File) => super::microvm::disk_formatter(),
            (Guests::Linux(_), _) => Ok(()),
            (Guests::Micro(_), Scenario::Footprint) => Err(
                "QEMU enters a micro guest in real mode, where the microvm backend's footprint \
                 guest (touch 64 MiB, 32-bit code) cannot run, so its footprint would not be \
                 like the microvm's"
                    .to_owned(),
            ),
            (Guests::Micro(_), Scenario::Startup | Scenario::Isolation) => Ok(()),
            (Guests::Micro(why) | Guests::Unbootable(why), _) => Err(why.clone()),
        }
    }

    fn networked(
        &self,
        net: &std::sync::Arc<super::hostnet::RunNet>,
    ) -> Result<Box<dyn Backend>, String> {
        // Micro guests have no network: the same reason as every Linux-only scenario.
        self.supports(Scenario::Hostnet)?;
        super::hostnet::joined::over_tap(self, net, |vm, tap| vm.tap = Some(tap))
    }

    fn over_vsock(
        &self,
        peer: &std::sync::Arc<super::hostnet::vsock::VsockPeer>,
    ) -> Result<Box<dyn Backend>, String> {
        // Micro guests have no vsock driver: the same reason as every Linux-only scenario.
        self.supports(Scenario::Vsock)?;
        super::hostnet::over_vsock::reaching(self, peer, 1, |vm, cid| vm.vsock_cid = Some(cid))
    }

    fn runs_programs(&self) -> Result<(), String> {
        match &self.guests {
            Guests::Linux(_) => Ok(()),
            Guests::Micro(why) | Guests::Unbootable(why) => {
                Err(format!("micro guests run no program to probe: {why}"))
            }
        }
    }

    fn runs_user_images(&self) -> Result<(), String> {
        match &self.guests {
            Guests::Linux(_) => Ok(()),
            Guests::Micro(why) | Guests::Unbootable(why) => Err(why.clone()),
        }
    }

    fn prepare(&self, launch: &Launch) -> Result<(), String> {
        match self.linux() {
            Some(_) => super::image::linux_guest(&launch.args, self.memory_mib)
                .map(drop)
                .map_err(|e| super::protocol::error_chain(&e)),
            None => Ok(()),
        }
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
        if let Some(kernel) = self.linux() {
            return self.launch_linux(kernel, launch);
        }
        let hold = match launch.args.first().map(String::as_str) {
            Some("hello") => false,
            // The footprint holds the hello guest: QEMU enters it in real mode, where the
            // `touch` guest's 32-bit code cannot run, so its guest memory is only what the
            // firmware and the payload touched.
            Some("alloc") => true,
            other => {
                return Err(Error::Spawn {
                    what: format!("a micro guest for {other:?}"),
                    source: std::io::Error::other("the qemu backend runs hello only"),
                })
            }
        };
        let spawn_error = |what: &str| {
            let what = what.to_owned();
            move |source| Error::Spawn { what, source }
        };
        let dir = tempfile::Builder::new()
            .prefix(&crate::registry::temp_prefix("qemu"))
            .tempdir()
            .map_err(spawn_error("the QEMU files"))?;
        let bios = dir.path().join("bios.bin");
        let payload = dir.path().join("payload.bin");
        std::fs::write(&bios, firmware()).map_err(spawn_error("the QEMU firmware"))?;
        std::fs::write(&payload, guest::hello().code).map_err(spawn_error("the payload"))?;
        let mut command = Command::new(QEMU);
        command
            .arg("-M")
            .arg("microvm,x-option-roms=off,rtc=off,isa-serial=off")
            .args(["-accel", "kvm", "-cpu", CPU, "-nodefaults", "-no-reboot"])
            .args(["-display", "none", "-monitor", "none", "-serial", "none"])
            .arg("-m")
            .arg(self.memory_mib.to_string())
            .arg("-bios")
            .arg(&bios)
            .arg("-device")
            .arg(format!(
                "loader,file={},addr={PAYLOAD_START:#x},force-raw=on",
                payload.display()
            ))
            .args(["-chardev", "stdio,id=markers"])
            .arg("-device")
            .arg(format!(
                "isa-debugcon,iobase={MARKER_PORT:#x},chardev=markers"
            ));
        let mut instance = QemuInstance::start(&mut command, markers())?;
        instance.hold = hold;
        instance.memory_kib = self.memory_mib * 1024;
        instance._dir = Some(dir);
        Ok(Box::new(instance))
    }
}

impl Qemu {
    /// Boots `kernel` with the image's initramfs and the workload's command line.
    fn launch_linux(
        &self,
        kernel: &GuestKernel,
        launch: &Launch,
    ) -> Result<Box<dyn Instance>, Error> {
        // A user's image: its own initramfs, and the line its init runs.
        let user = super::image::linux_guest(&launch.args, self.memory_mib)?;
        let initramfs = match &user {
            Some(guest) => guest.initramfs.clone(),
            None => images::initramfs::install(
                &images::image::cache_dir(),
                images::initramfs::Compression::None,
            )
            .map_err(|e| Error::Spawn {
                what: "the initramfs".to_owned(),
                source: std::io::Error::other(e),
            })?,
        };
        let mut args = user.map_or_else(|| launch.args.clone(), |guest| guest.args);
        let hold = args.first().map(String::as_str) == Some("alloc");
        if hold && !args.iter().any(|a| a == "--hold-ms") {
            args.extend(["--hold-ms".to_owned(), LINUX_HOLD_MS.to_string()]);
        }
        // The `file` work writes to a disk, as in the microvm backend: a per-instance ext4
        // image on the host, a virtio-blk device on the machine's first virtio-mmio
        // transport, announced among the kernel's parameters (QEMU's own announcement
        // would come after init's `--`).
        let disk = match args.first().map(String::as_str) == Some("file") {
            true => {
                args.extend(["--dir".to_owned(), workload::disk::MOUNT.to_owned()]);
                Some(super::microvm::DiskImage::create(&std::env::temp_dir())?)
            }
            false => None,
        };
        let mut cmdline = super::microvm::linux_cmdline_with(self.console, disk.is_some(), &args);
        if disk.is_some() {
            cmdline = microvm::linux::cmdline::with_kernel_param(&cmdline, QEMU_DISK_DEVICE);
        }
        // The network device goes on the next transport after the disk's, announced the
        // same way.
        let net_transport = usize::from(disk.is_some());
        if self.tap.is_some() {
            cmdline = microvm::linux::cmdline::with_kernel_param(
                &cmdline,
                &qemu_mmio_device(net_transport),
            );
        }
        // The vsock device, on the transport after those.
        let vsock_transport = net_transport + usize::from(self.tap.is_some());
        if self.vsock_cid.is_some() {
            cmdline = microvm::linux::cmdline::with_kernel_param(
                &cmdline,
                &qemu_mmio_device(vsock_transport),
            );
        }
        super::image::check_cmdline(&cmdline)?;
        let mut command = Command::new(QEMU);
        command
            .arg("-M")
            .arg("microvm,x-option-roms=off,rtc=off,isa-serial=on,acpi=off,auto-kernel-cmdline=off")
            .args(["-accel", "kvm", "-cpu", CPU, "-nodefaults", "-no-reboot"])
            .args(["-display", "none", "-monitor", "none"])
            .arg("-m")
            .arg(self.memory_mib.to_string())
            .arg("-smp")
            .arg(self.vcpus.to_string())
            .arg("-kernel")
            .arg(&kernel.path)
            .arg("-initrd")
            .arg(&initramfs)
            .arg("-append")
            .arg(&cmdline)
            .args(["-chardev", "stdio,mux=on,id=out"])
            .args(["-serial", "chardev:out"])
            .arg("-device")
            .arg(format!("isa-debugcon,iobase={MARKER_PORT:#x},chardev=out"));
        if let Some(image) = &disk {
            // QEMU's option syntax doubles a comma inside a value.
            let file = image.path().display().to_string().replace(',', ",,");
            command
                .arg("-drive")
                .arg(format!("id=disk0,file={file},format=raw,if=none"))
                .args([
                    "-device",
                    "virtio-blk-device,drive=disk0,bus=virtio-mmio-bus.0",
                ]);
        }
        if let Some(tap) = &self.tap {
            command
                .arg("-netdev")
                .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"))
                .arg("-device")
                .arg(format!(
                    "virtio-net-device,netdev=n0,bus=virtio-mmio-bus.{net_transport}"
                ));
        }
        if let Some(cid) = self.vsock_cid {
            command.arg("-device").arg(format!(
                "vhost-vsock-device,guest-cid={cid},bus=virtio-mmio-bus.{vsock_transport}"
            ));
        }
        let linux = Arc::new(Mutex::new(LinuxFacts::default()));
        let mut instance = QemuInstance::start(&mut command, linux_output(Arc::clone(&linux)))?;
        instance.hold = hold;
        instance.memory_kib = self.memory_mib * 1024;
        instance.linux = Some(linux);
        instance._disk = disk;
        Ok(Box::new(instance))
    }
}

/// What a Linux guest's output told, for phases, counters and failure reports.
#[derive(Debug, Default)]
struct LinuxFacts {
    /// The phases its marker bytes stamped: init reached, powered off.
    markers: Vec<(String, Stamp)>,
    console: Console,
}

impl LinuxFacts {
    /// Every phase, in the order they happened.
    fn phases(&self) -> Vec<(String, Stamp)> {
        let mut phases = self.markers.clone();
        phases.extend(self.console.phases());
        // Read in one piece, two phases share a stamp: then they come in boot order.
        let rank = |name: &str| {
            ["init_reached", "workload_started", "result", "powered_off"]
                .iter()
                .position(|n| *n == name)
        };
        phases.sort_by_key(|(name, at)| (*at, rank(name)));
        phases
    }

    fn mark(&mut self, name: &str, at: Stamp) {
        if !self.markers.iter().any(|(n, _)| n == name) {
            self.markers.push((name.to_owned(), at));
        }
    }
}

/// Reads a Linux guest's multiplexed output: marker bytes (stamped as they arrive) and the
/// console's lines, of which the workload's records become events stamped when their line
/// ended. The power-off marker closes the stream, and the instance then ends QEMU (the
/// guest only halts). A console line is bounded: a guest cannot make the host buffer
/// without end.
fn linux_output(facts: Arc<Mutex<LinuxFacts>>) -> ByteHandler {
    let mut line = Vec::new();
    Box::new(move |bytes, at| {
        let Ok(mut f) = facts.lock() else {
            return Vec::new();
        };
        let mut events = Vec::new();
        for &byte in bytes {
            match byte {
                workload::marker::INIT => f.mark("init_reached", at),
                workload::marker::POWEROFF => {
                    f.mark("powered_off", at);
                    events.push(Ok(Event::Closed { at }));
                }
                b'\n' => {
                    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                    line.clear();
                    events.extend(f.console.line(&text, at));
                }
                _ if line.len() < MAX_CONSOLE_LINE => line.push(byte),
                _ => {}
            }
        }
        events
    })
}

/// A 64 KiB firmware image whose reset vector jumps to the payload (`jmp far 0:PAYLOAD`),
/// every other byte `hlt`.
pub fn firmware() -> Vec<u8> {
    let mut image = vec![0xf4_u8; 64 * 1024];
    let target = u16::try_from(PAYLOAD_START).unwrap_or(0x1000).to_le_bytes();
    // The reset vector is 16 bytes below the top of the image.
    let at = image.len() - 16;
    image[at..at + 5].copy_from_slice(&[0xea, target[0], target[1], 0x00, 0x00]);
    image
}

/// Reads the marker bytes as they arrive: the first marker is the guest's first
/// instruction (the workload "started"), and with nothing more to do it has its result.
fn markers() -> ByteHandler {
    let mut started = false;
    Box::new(move |bytes, at| {
        if started || !bytes.contains(&MARKER_START) {
            return Vec::new();
        }
        started = true;
        let workload = "micro guest".to_owned();
        vec![
            Ok(Event::Record {
                record: Record::Started {
                    workload: workload.clone(),
                    pid: 0,
                    pid1: true,
                },
                at,
            }),
            Ok(Event::Record {
                record: Record::Result {
                    workload,
                    metrics: Vec::new(),
                    facts: Vec::new(),
                },
                at,
            }),
        ]
    })
}

struct QemuInstance {
    child: Child,
    watch: Watch,
    /// Keep the guest after its result (footprint) until released.
    hold: bool,
    memory_kib: u64,
    /// QEMU was asked to quit after the guest's work: its exit is the instance's end.
    ended_by_us: bool,
    closed: bool,
    /// A Linux guest's phases and console.
    linux: Option<Arc<Mutex<LinuxFacts>>>,
    /// The firmware and payload files of a micro guest.
    _dir: Option<tempfile::TempDir>,
    /// A Linux guest's disk, removed once QEMU is gone (fields drop in order).
    _disk: Option<super::microvm::DiskImage>,
}

impl QemuInstance {
    /// Spawns QEMU with `command`, with `handler` turning its standard output into events
    /// (watching starts before the spawn, so nothing is stamped late).
    fn start(command: &mut Command, handler: ByteHandler) -> Result<Self, Error> {
        let (outputs, watch) = watch::watch_bytes(handler)?;
        super::supervised::die_with_parent(command);
        let spawned = command
            .stdin(Stdio::null())
            .stdout(outputs.stdout)
            .stderr(outputs.stderr)
            .spawn()
            .map_err(|source| Error::Spawn {
                what: QEMU.to_owned(),
                source,
            })?;
        Ok(QemuInstance {
            child: Child::new(spawned.id()),
            watch,
            hold: false,
            memory_kib: 0,
            ended_by_us: false,
            closed: false,
            linux: None,
            _dir: None,
            _disk: None,
        })
    }

    /// Asks QEMU to quit (it shuts the VM down on SIGTERM).
    fn end(&mut self) {
        self.ended_by_us = true;
        self.child.signal(libc::SIGTERM, false);
    }
}

impl Instance for QemuInstance {
    fn pids(&self) -> Vec<u32> {
        if self.child.reaped().is_some() {
            Vec::new()
        } else {
            vec![self.child.pid()]
        }
    }

    fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Error> {
        if self.closed {
            return Ok(None);
        }
        match self.watch.next_event(until)? {
            Some(event) => {
                match &event {
                    // A Linux guest halts after its power-off marker: QEMU is asked to quit.
                    Event::Closed { .. } if self.linux.is_some() => {
                        self.closed = true;
                        self.end();
                    }
                    Event::Closed { .. } => self.closed = true,
                    // A Linux guest ends by itself (its workload powers it off).
                    Event::Record { .. } if self.linux.is_some() => {}
                    // A halted guest never ends by itself.
                    Event::Record {
                        record: Record::Result { .. },
                        ..
                    } if !self.hold => self.end(),
                    Event::Record { .. } => {}
                }
                Ok(Some(event))
            }
            None => Ok(None),
        }
    }

    fn release(&mut self) {
        // A Linux guest's workload ends its hold on its own, and powers the guest off.
        if self.linux.is_none() {
            self.end();
        }
    }

    fn wait(&mut self, until: Instant) -> Result<Exit, Error> {
        let timed_out = !self.child.exited_by(until);
        self.child.signal(libc::SIGKILL, false);
        let reaped = self.child.reap().map_err(Error::Wait)?;
        let mut exit = Exit::reaped(reaped, timed_out);
        // Ended on request after the guest's work: QEMU reports the signal it quit on.
        if self.ended_by_us && !timed_out && exit.status == 128 + libc::SIGTERM {
            exit.status = 0;
        }
        Ok(exit)
    }

    fn diagnostics(&mut self) -> String {
        let mut text = self.watch.diagnostics();
        if let Some(Ok(f)) = self.linux.as_ref().map(|l| l.lock()) {
            let lines: Vec<&str> = f.console.tail().collect();
            if !lines.is_empty() {
                text.push_str("\nthe guest console's last lines:\n");
                text.push_str(&lines.join("\n"));
            }
        }
        text
    }

    fn phases(&mut self) -> Vec<(String, Stamp)> {
        match self.linux.as_ref().map(|l| l.lock()) {
            Some(Ok(f)) => f.phases(),
            _ => Vec::new(),
        }
    }

    fn counters(&mut self) -> Vec<(String, u64)> {
        match self.linux.as_ref().map(|l| l.lock()) {
            Some(Ok(f)) => f.console.counters(),
            _ => Vec::new(),
        }
    }

    fn footprint(&self) -> Footprint {
        let processes = procfs::memory_of(&self.pids());
        let mut parts = Vec::new();
        if let Some(guest) = self
            .pids()
            .first()
            .and_then(|pid| procfs::mapping_rss_kib(*pid, self.memory_kib))
        {
            parts.push((Part::GuestTouched, guest));
            if let Some(m) = processes {
                parts.push((Part::MonitorOverhead, m.rss_kib.saturating_sub(guest)));
            }
        }
        Footprint { processes, parts }
    }

    fn teardown(mut self: Box<Self>) {
        if self.child.reaped().is_none() {
            drop(self.wait(Instant::now()));
        }
        self.watch.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a Linux guest's multiplexed output gives: the events in order, and the facts.
    fn read(bytes: &[u8]) -> (Vec<Event>, LinuxFacts) {
        let facts = Arc::new(Mutex::new(LinuxFacts::default()));
        let mut handler = linux_output(Arc::clone(&facts));
        // As the pipe may cut it: in pieces.
        let mut events: Vec<Event> = bytes
            .chunks(7)
            .flat_map(|piece| handler(piece, Stamp::now()))
            .map(|e| e.expect("no malformed record"))
            .collect();
        events.push(Event::Closed { at: Stamp::now() });
        drop(handler);
        let facts = Arc::into_inner(facts).and_then(|m| m.into_inner().ok());
        (events, facts.unwrap_or_default())
    }

    #[test]
    fn markers_and_records_of_a_linux_guest_are_told_apart_on_one_stream() {
        // A marker byte may land inside a console line (the kernel's own output is still
        // draining when init starts): it is taken out of the line.
        let mut out = b"Unable to read current ".to_vec();
        out.push(workload::marker::INIT);
        out.extend_from_slice(b"time from RTC\r\n");
        out.extend_from_slice(
            b"@vcbench {\"record\":\"started\",\"workload\":\"hello\",\"pid\":1,\"pid1\":true}\r\n",
        );
        out.extend_from_slice(b"@vcbench {\"record\":\"result\",\"workload\":\"hello\",");
        out.extend_from_slice(
            b"\"metrics\":[{\"name\":\"cpus_online\",\"value\":2.0,\"unit\":\"CPUs\"}]}\r\n",
        );
        // The workload drains the console before its power-off marker.
        out.push(workload::marker::POWEROFF);
        out.extend_from_slice(b"reboot: System halted\r\n");
        let (events, facts) = read(&out);
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| match e {
                Event::Record {
                    record: Record::Started { .. },
                    ..
                } => "started",
                Event::Record {
                    record: Record::Result { .. },
                    ..
                } => "result",
                Event::Record { .. } => "other",
                Event::Closed { .. } => "closed",
            })
            .collect();
        // The power-off marker closes the stream for the runner, and so does the end of
        // QEMU's output.
        assert_eq!(kinds, ["started", "result", "closed", "closed"]);
        let phases = facts.phases();
        let names: Vec<&str> = phases.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["init_reached", "workload_started", "result", "powered_off"]
        );
        assert_eq!(facts.console.cpus_online, Some(2));
        assert_eq!(
            facts.console.tail().collect::<Vec<_>>(),
            [
                "Unable to read current time from RTC",
                "reboot: System halted"
            ]
        );
    }

    #[test]
    fn the_network_device_goes_on_the_transport_after_the_disks() {
        assert_eq!(qemu_mmio_device(0), QEMU_DISK_DEVICE);
        assert_eq!(qemu_mmio_device(1), "virtio_mmio.device=512@0xfeb00200:6");
    }

    #[test]
    fn a_guest_that_floods_one_line_is_held_to_a_bounded_buffer() {
        let mut out = vec![b'x'; 3 * MAX_CONSOLE_LINE];
        out.push(b'\n');
        let (events, facts) = read(&out);
        assert_eq!(events.len(), 1, "only the end of the stream");
        assert_eq!(
            facts.console.tail().next().map(str::len),
            Some(MAX_CONSOLE_LINE)
        );
    }
}
