//! Real micro guests on this machine's KVM. On software KVM (kvm_pvm) every guest
//! instruction is emulated, so instruction counts stay small. Skipped with a reason when
//! /dev/kvm cannot be used; a failure under CI=true.

mod common;

use std::time::Duration;

use microvm::config::Error as ConfigError;
use microvm::guest::{self, MARKER_DONE, MARKER_LOOP, MARKER_START};
use microvm::vm::{self, Config, End};

use common::kvm_usable;

fn config(payload: guest::Payload) -> Config {
    Config {
        vcpus: 1,
        memory_mib: 128,
        payload,
        timeout: Duration::from_secs(20),
        devices: Default::default(),
    }
}

#[test]
fn hello_marks_then_halts_with_every_phase_in_order() {
    if !kvm_usable() {
        return;
    }
    let report = vm::run(&config(guest::hello())).unwrap();
    assert_eq!(report.end, End::Halted);
    assert_eq!(report.markers.stamps.len(), 1);
    assert_eq!(report.markers.stamps[0].0, MARKER_START);
    let names: Vec<&str> = report.phases.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "vm_created",
            "memory_registered",
            "vcpus_created",
            "payload_loaded",
            "first_marker",
            "halted",
            "torn_down"
        ]
    );
    assert!(
        report.phases.windows(2).all(|w| w[0].1 <= w[1].1),
        "{:?}",
        report.phases
    );
    assert_eq!((report.exits.io_out, report.exits.hlt), (1, 1));
}

#[test]
fn exits_are_counted_and_markers_arrive_in_order() {
    if !kvm_usable() {
        return;
    }
    let report = vm::run(&config(guest::exits(200))).unwrap();
    assert_eq!(report.end, End::Halted);
    let codes: Vec<u8> = report.markers.stamps.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes.first(), Some(&MARKER_START));
    assert_eq!(codes.last(), Some(&MARKER_DONE));
    assert_eq!(codes.iter().filter(|c| **c == MARKER_LOOP).count(), 200);
    assert!(report.markers.stamps.windows(2).all(|w| w[0].1 <= w[1].1));
    assert_eq!(report.exits.io_out, 202);
}

#[test]
fn serial_output_is_captured() {
    if !kvm_usable() {
        return;
    }
    let report = vm::run(&config(guest::serial(b"hello from the guest\n"))).unwrap();
    assert_eq!(report.end, End::Halted);
    assert_eq!(report.serial.bytes, b"hello from the guest\n");
}

#[test]
fn touching_memory_raises_the_guest_resident_set() {
    if !kvm_usable() {
        return;
    }
    let idle = vm::run(&config(guest::hello()))
        .unwrap()
        .guest_touched_kib
        .unwrap();
    assert!(idle < 1024, "a hello guest touched {idle} KiB");
    let touched = vm::run(&config(guest::touch(64))).unwrap();
    assert_eq!(touched.end, End::Halted, "{:?}", touched.end);
    let raised = touched.guest_touched_kib.unwrap() - idle;
    // 64 MiB, give or take the pages the hypervisor itself touched.
    assert!(
        (64 * 1024 - 64..64 * 1024 + 1024).contains(&raised),
        "touch 64 raised touched guest memory by {raised} KiB"
    );
}

#[test]
fn a_spinning_guest_is_stopped_by_its_timeout() {
    if !kvm_usable() {
        return;
    }
    let mut c = config(guest::spin(u32::MAX));
    c.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let report = vm::run(&c).unwrap();
    assert_eq!(report.end, End::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_triple_fault_is_reported_with_registers() {
    if !kvm_usable() {
        return;
    }
    let report = vm::run(&config(guest::triple_fault())).unwrap();
    match report.end {
        End::Failed { reason, registers } => {
            assert!(
                reason.contains("triple") || reason.contains("internal"),
                "{reason}"
            );
            assert!(registers.contains("rip="), "{registers}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn an_mmio_access_to_nothing_is_reported() {
    if !kvm_usable() {
        return;
    }
    let report = vm::run(&config(guest::mmio_nowhere())).unwrap();
    assert!(
        matches!(&report.end, End::Failed { reason, .. } if reason.contains("0xe0000000")),
        "{:?}",
        report.end
    );
}

#[test]
fn bad_configurations_are_refused_before_anything_is_built() {
    let too_small = Config {
        memory_mib: 1,
        ..config(guest::hello())
    };
    assert!(matches!(
        vm::run(&too_small),
        Err(vm::Error::Config(ConfigError::MemoryTooSmall { mib: 1 }))
    ));
    let empty = config(guest::Payload {
        code: vec![],
        ..guest::hello()
    });
    assert!(matches!(
        vm::run(&empty),
        Err(vm::Error::Config(ConfigError::PayloadSize { len: 0, .. }))
    ));
}

#[test]
fn without_a_serial_console_its_ports_answer_nothing() {
    if !kvm_usable() {
        return;
    }
    let mut c = config(guest::serial(b"hi"));
    c.devices.serial = false;
    let report = vm::run(&c).unwrap();
    assert_eq!(report.end, End::Halted);
    assert!(report.serial.bytes.is_empty());
    assert_eq!(report.exits.io_unhandled, 2);
}

#[test]
fn extra_vcpus_are_created_and_wait() {
    if !kvm_usable() {
        return;
    }
    let report = vm::run(&Config {
        vcpus: 4,
        ..config(guest::hello())
    })
    .unwrap();
    assert_eq!(report.end, End::Halted);
    let err = vm::run(&Config {
        vcpus: 255,
        ..config(guest::hello())
    });
    // 255 is above what most KVMs allow; where it is not, the VM simply runs.
    if let Err(e) = err {
        assert!(
            matches!(
                e,
                vm::Error::Config(ConfigError::TooManyVcpus { asked: 255, .. })
            ),
            "{e:?}"
        );
    }
    assert!(matches!(
        vm::run(&Config {
            vcpus: 0,
            ..config(guest::hello())
        }),
        Err(vm::Error::Config(ConfigError::NoVcpus))
    ));
}

#[test]
fn a_long_mode_guest_runs() {
    if !kvm_usable() {
        return;
    }
    let report = vm::run(&config(guest::hello_long())).unwrap();
    assert_eq!(report.end, End::Halted, "{:?}", report.end);
    assert_eq!(report.markers.stamps.len(), 1);
}

#[test]
fn the_marker_also_answers_on_the_mmio_bus() {
    if !kvm_usable() {
        return;
    }
    let report = vm::run(&config(guest::hello_mmio())).unwrap();
    assert_eq!(report.end, End::Halted, "{:?}", report.end);
    assert_eq!(
        report.markers.stamps.first().map(|m| m.0),
        Some(MARKER_START)
    );
    assert_eq!(report.exits.mmio, 1);
}

#[test]
fn an_i8042_reset_ends_the_vm_cleanly() {
    if !kvm_usable() {
        return;
    }
    let report = vm::run(&config(guest::reset())).unwrap();
    assert_eq!(report.end, End::Reset);
    assert_eq!(report.exits.hlt, 0);
}
