//! The native backend's instance protocol: records with host timestamps, release, timeouts,
//! failures with the workload's own words, and nothing left running afterwards.

use std::time::{Duration, Instant};

use images::image;
use vcbench::backend::{native::Native, Backend, Event, Instance, Launch};
use vcbench::clock::Stamp;
use workload::record::Record;

fn launch(args: &[&str]) -> (tempfile::TempDir, Box<dyn Instance>) {
    let dir = tempfile::tempdir().unwrap();
    let workload = image::install_workload(dir.path()).unwrap();
    let spec = Launch {
        workload,
        args: args.iter().map(|s| (*s).to_owned()).collect(),
    };
    let instance = Native.launch(&spec).unwrap();
    (dir, instance)
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Reads events until the result record (or gives up after 10 s).
fn until_result(instance: &mut dyn Instance) -> Vec<Event> {
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    while let Some(e) = instance.next_event(give_up).unwrap() {
        let done = matches!(
            &e,
            Event::Record {
                record: Record::Result { .. },
                ..
            }
        );
        events.push(e);
        if done {
            break;
        }
    }
    events
}

#[test]
fn records_arrive_in_order_with_host_timestamps() {
    let before = Stamp::now();
    let (_dir, mut instance) = launch(&["hello"]);
    let events = until_result(instance.as_mut());
    let times: Vec<Stamp> = events
        .iter()
        .map(|e| match e {
            Event::Record { at, .. } | Event::Closed { at } => *at,
        })
        .collect();
    assert!(matches!(
        events[0],
        Event::Record {
            record: Record::Started { .. },
            ..
        }
    ));
    assert!(before <= times[0] && times[0] <= times[1]);
    let exit = instance
        .wait(Instant::now() + Duration::from_secs(10))
        .unwrap();
    assert_eq!(exit.status, 0);
    assert!(!exit.timed_out);
    assert!(exit.at >= times[1]);
    instance.teardown();
}

#[test]
fn a_held_instance_is_sampled_and_released() {
    let (_dir, mut instance) = launch(&["alloc", "--mib", "16"]);
    until_result(instance.as_mut());
    let pids = instance.pids();
    let memory = vcbench::procfs::memory_of(&pids).expect("a live instance has memory");
    assert!(memory.rss_kib >= 16 * 1024, "{memory:?}");
    instance.release();
    let exit = instance
        .wait(Instant::now() + Duration::from_secs(10))
        .unwrap();
    assert_eq!(exit.status, 0);
    assert!(!exit.timed_out);
    instance.teardown();
    assert!(!alive(pids[0]));
}

#[test]
fn an_instance_past_its_deadline_is_killed() {
    let (_dir, mut instance) = launch(&["alloc", "--mib", "1"]);
    until_result(instance.as_mut());
    let pid = instance.pids()[0];
    let exit = instance
        .wait(Instant::now() + Duration::from_millis(100))
        .unwrap();
    assert!(exit.timed_out);
    assert_eq!(exit.status, 128 + libc::SIGKILL);
    instance.teardown();
    assert!(!alive(pid), "the killed instance is still there");
}

#[test]
fn a_failing_workload_explains_itself() {
    let (_dir, mut instance) = launch(&["cpu", "--mib", "zero"]);
    let exit = instance
        .wait(Instant::now() + Duration::from_secs(10))
        .unwrap();
    assert_eq!(exit.status, 2);
    assert!(instance.diagnostics().contains("--mib"));
    instance.teardown();
}

#[test]
fn a_missing_executable_is_a_launch_error() {
    let spec = Launch {
        workload: "/nonexistent/workload".into(),
        args: vec!["hello".into()],
    };
    let err = Native.launch(&spec).err().expect("launch must fail");
    assert!(err.to_string().contains("/nonexistent/workload"));
}
