//! One-shot readers (`Core::set_reader_oneshot`): they fire like level-triggered readers,
//! park their registration when they remove themselves after firing, and stay correct when
//! a parked fd is closed behind the engine's back and its number is reused.
#![cfg(not(miri))] // real sockets

mod util;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use steploop::{Core, TieBreak};
use util::{
    core_with, socketpair as pair, socketpair_reusing as pair_reusing, step_core as step, Named,
    Record,
};

fn core() -> Core<Named> {
    core_with(TieBreak::Fifo)
}

#[test]
fn fires_once_per_readiness_and_parks_when_removed() {
    let core = core();
    let (mut a, mut b) = pair();
    let fd = b.as_raw_fd();
    let mut rec = Record::default();
    core.set_reader_oneshot(fd, Named::new("r")).unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 0);
    a.write_all(b"x").unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    // The callback's job is done: read and remove (parked, nothing fires any more).
    let mut buf = [0u8; 8];
    assert_eq!(b.read(&mut buf).unwrap(), 1);
    core.set_watcher(fd, false, None).unwrap();
    a.write_all(b"y").unwrap();
    let s = step(&core, &mut rec);
    assert_eq!((s.io_events, s.callbacks), (0, 0));
    // The next wait re-arms the parked registration: pending data is reported at once.
    core.set_reader_oneshot(fd, Named::new("again")).unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    assert_eq!(rec.0, ["r", "again"]);
}

#[test]
fn a_reader_that_stays_fires_again_while_readable() {
    let core = core();
    let (mut a, b) = pair();
    let mut rec = Record::default();
    core.set_reader_oneshot(b.as_raw_fd(), Named::new("r"))
        .unwrap();
    a.write_all(b"x").unwrap();
    for n in 1..=3 {
        assert_eq!(step(&core, &mut rec).callbacks, 1);
        assert_eq!(rec.0.len(), n);
    }
}

#[test]
fn removed_before_firing_is_unregistered() {
    let core = core();
    let (mut a, b) = pair();
    let fd = b.as_raw_fd();
    let mut rec = Record::default();
    core.set_reader_oneshot(fd, Named::new("cancelled"))
        .unwrap();
    core.set_watcher(fd, false, None).unwrap();
    a.write_all(b"x").unwrap();
    assert_eq!(step(&core, &mut rec).io_events, 0);
    assert!(!core.has_watcher(fd, false));
    // A level-triggered reader afterwards works as usual.
    core.set_watcher(fd, false, Some(Named::new("level")))
        .unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    assert_eq!(rec.0, ["level", "level"]);
}

#[test]
fn a_writer_turns_the_fd_level_triggered() {
    let core = core();
    let (mut a, b) = pair();
    let fd = b.as_raw_fd();
    let mut rec = Record::default();
    core.set_reader_oneshot(fd, Named::new("r")).unwrap();
    core.set_watcher(fd, true, Some(Named::new("w"))).unwrap();
    a.write_all(b"x").unwrap();
    for _ in 0..2 {
        step(&core, &mut rec);
    }
    assert_eq!(rec.0, ["r", "w", "r", "w"]);
    // With a writer present, a one-shot reader is an ordinary one.
    core.set_reader_oneshot(fd, Named::new("r2")).unwrap();
    step(&core, &mut rec);
    assert_eq!(&rec.0[4..], ["r2", "w"]);
}

#[test]
fn parked_fd_closed_and_reused_by_a_new_socket() {
    // The parked registration dies with the closed socket; the new socket that gets the
    // same fd number must be registered for real, whichever kind of reader it gets.
    let core = core();
    let mut rec = Record::default();
    for oneshot_next in [true, false] {
        let (mut a, mut b) = pair();
        let fd = b.as_raw_fd();
        core.set_reader_oneshot(fd, Named::new("old")).unwrap();
        a.write_all(b"x").unwrap();
        assert_eq!(step(&core, &mut rec).callbacks, 1);
        let mut buf = [0u8; 8];
        let _ = b.read(&mut buf).unwrap();
        core.set_watcher(fd, false, None).unwrap(); // parked
        drop((a, b));
        // Sockets are created until one reuses the number (the lowest free one).
        let mut keep = Vec::new();
        let (mut c, d) = pair_reusing(fd, &mut keep);
        let name = if oneshot_next {
            "new-oneshot"
        } else {
            "new-level"
        };
        if oneshot_next {
            core.set_reader_oneshot(fd, Named::new(name)).unwrap();
        } else {
            core.set_watcher(fd, false, Some(Named::new(name))).unwrap();
        }
        c.write_all(b"y").unwrap();
        rec.0.clear();
        assert_eq!(step(&core, &mut rec).callbacks, 1);
        assert_eq!(rec.0, [name]);
        core.set_watcher(fd, false, None).unwrap();
        drop(d);
    }
}

#[test]
fn clear_forgets_oneshot_state() {
    let core = core();
    let (mut a, b) = pair();
    let fd = b.as_raw_fd();
    let mut rec = Record::default();
    core.set_reader_oneshot(fd, Named::new("r")).unwrap();
    a.write_all(b"x").unwrap();
    step(&core, &mut rec);
    let removed = core.clear();
    assert_eq!(removed.len(), 1);
    assert!(!core.has_watcher(fd, false));
    core.set_reader_oneshot(fd, Named::new("after")).unwrap();
    step(&core, &mut rec);
    assert_eq!(rec.0, ["r", "after"]);
}
