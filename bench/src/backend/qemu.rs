//! The `qemu` backend: QEMU's `-M microvm` with KVM running the same micro guest as the
//! `microvm` backend, so the monitors are compared on equal work.
//!
//! QEMU starts a vCPU at the reset vector, so the guest is entered through a 64 KiB
//! firmware image of one instruction (a far jump to the payload at `PAYLOAD_START`,
//! which QEMU's generic loader places in guest memory). The guest's marker writes to port
//! 0x80 reach the host through an `isa-debugcon` device on that port whose output is
//! QEMU's standard output: each byte is stamped the moment it is read, as the project's
//! monitor stamps the exit. QEMU's memory is split the same way too: the resident part of
//! its guest-RAM mapping (from smaps) is guest memory, the rest its overhead.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Instant;

use container::process::Child;
use microvm::guest::{self, MARKER_START};
use microvm::layout::{MARKER_PORT, PAYLOAD_START};
use workload::record::Record;

use super::watch::{tail, DIAGNOSTIC_TAIL};
use super::{Availability, Backend, Error, Event, Exit, Footprint, Instance, Launch};
use crate::clock::Stamp;
use crate::procfs;
use crate::scenario::Scenario;

/// The QEMU binary.
const QEMU: &str = "qemu-system-x86_64";
/// The CPU model: `host` with the MSR that software KVM (kvm_pvm) cannot set turned off.
const CPU: &str = "host,-arch-capabilities";

/// The QEMU backend.
#[derive(Debug, Clone, Copy)]
pub struct Qemu {
    /// Guest memory, MiB.
    pub memory_mib: u64,
}

impl Default for Qemu {
    fn default() -> Self {
        Qemu { memory_mib: 128 }
    }
}

impl Backend for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn describe(&self) -> &'static str {
        "QEMU -M microvm with KVM (peer VMM) running the same micro guest"
    }

    fn availability(&self) -> Availability {
        if let Err(why) = super::oci::version(QEMU) {
            return Availability::Unavailable(format!("{why} (package qemu-system-x86)"));
        }
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
        {
            Ok(_) => Availability::Available,
            Err(e) => Availability::Unavailable(format!("/dev/kvm is not usable: {e}")),
        }
    }

    fn in_default_set(&self) -> bool {
        false
    }

    fn settings(&self) -> String {
        format!(
            "{}; -M microvm -accel kvm -cpu {CPU}; {} MiB; micro guest hello",
            super::oci::version(QEMU).unwrap_or_default(),
            self.memory_mib
        )
    }

    fn supports(&self, scenario: Scenario) -> Result<(), String> {
        match scenario {
            Scenario::Startup | Scenario::Footprint => Ok(()),
            Scenario::Isolation => Ok(()),
            _ => Err(
                "the qemu backend runs the micro guest for startup and footprint only".to_owned(),
            ),
        }
    }

    fn runs_programs(&self) -> Result<(), String> {
        Err("micro guests run no program to probe".to_owned())
    }

    fn launch(&self, launch: &Launch) -> Result<Box<dyn Instance>, Error> {
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
            .prefix("vcbench-qemu-")
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
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut spawned = command.spawn().map_err(spawn_error(QEMU))?;
        let (Some(stdout), Some(stderr)) = (spawned.stdout.take(), spawned.stderr.take()) else {
            return Err(Error::Spawn {
                what: QEMU.to_owned(),
                source: std::io::Error::other("no pipes"),
            });
        };
        let child = Child::new(spawned.id());
        let (sender, events) = mpsc::channel();
        let markers = std::thread::spawn(move || read_markers(stdout, &sender));
        let diagnostics = std::thread::spawn(move || tail(stderr, DIAGNOSTIC_TAIL));
        Ok(Box::new(QemuInstance {
            child,
            events,
            markers: Some(markers),
            diagnostics: Some(diagnostics),
            hold,
            memory_kib: self.memory_mib * 1024,
            ended_by_us: false,
            closed: false,
            _dir: dir,
        }))
    }
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
fn read_markers(mut stdout: impl Read, sender: &mpsc::Sender<Event>) {
    let mut byte = [0u8; 1];
    let mut started = false;
    while let Ok(1) = stdout.read(&mut byte) {
        let at = Stamp::now();
        if byte[0] == MARKER_START && !started {
            started = true;
            let workload = "micro guest".to_owned();
            let records = [
                Record::Started {
                    workload: workload.clone(),
                    pid: 0,
                    pid1: true,
                },
                Record::Result {
                    workload,
                    metrics: Vec::new(),
                    facts: Vec::new(),
                },
            ];
            for record in records {
                drop(sender.send(Event::Record { record, at }));
            }
        }
    }
    drop(sender.send(Event::Closed { at: Stamp::now() }));
}

struct QemuInstance {
    child: Child,
    events: Receiver<Event>,
    markers: Option<JoinHandle<()>>,
    diagnostics: Option<JoinHandle<String>>,
    /// Keep the guest after its result (footprint) until released.
    hold: bool,
    memory_kib: u64,
    /// QEMU was asked to quit after the guest's work: its exit is the instance's end.
    ended_by_us: bool,
    closed: bool,
    /// The firmware and payload files.
    _dir: tempfile::TempDir,
}

impl QemuInstance {
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
        let timeout = until.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(timeout) {
            Ok(event) => {
                match &event {
                    Event::Closed { .. } => self.closed = true,
                    // A halted guest never ends by itself.
                    Event::Record {
                        record: Record::Result { .. },
                        ..
                    } if !self.hold => self.end(),
                    Event::Record { .. } => {}
                }
                Ok(Some(event))
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Ok(None),
        }
    }

    fn release(&mut self) {
        self.end();
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
        self.diagnostics
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    fn footprint(&self) -> Footprint {
        let processes = procfs::memory_of(&self.pids());
        let mut parts = Vec::new();
        if let Some(guest) = self
            .pids()
            .first()
            .and_then(|pid| procfs::mapping_rss_kib(*pid, self.memory_kib))
        {
            parts.push(("guest_touched".to_owned(), guest));
            if let Some(m) = processes {
                parts.push((
                    "monitor_overhead".to_owned(),
                    m.rss_kib.saturating_sub(guest),
                ));
            }
        }
        Footprint { processes, parts }
    }

    fn teardown(mut self: Box<Self>) {
        if self.child.reaped().is_none() {
            drop(self.wait(Instant::now()));
        }
        if let Some(markers) = self.markers.take() {
            drop(markers.join());
        }
        drop(self.diagnostics());
    }
}
