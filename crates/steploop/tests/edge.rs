//! Edge-triggered readers (`Core::set_reader_edge`): the registration outlives its readers
//! (the next reader costs no syscall), reports only new data (nothing spins while an fd
//! without a reader holds unread data), gives way to a level-triggered watcher without
//! losing what is pending, and a registration left behind by a closed fd (kept alive by a
//! `dup`) cannot wake the reader of the fd that reuses its number.
#![cfg(not(miri))] // real sockets

mod util;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use steploop::{Core, TieBreak};
use util::{
    core_with, socketpair as pair, socketpair_reusing as pair_reusing, step_core as step, Named,
    Record,
};

fn core() -> Core<Named> {
    core_with(TieBreak::Fifo)
}

#[test]
fn reports_new_data_once_and_serves_the_next_reader() {
    let core = core();
    let (mut a, mut b) = pair();
    let fd = b.as_raw_fd();
    let mut rec = Record::default();
    core.set_reader_edge(fd, Named::new("r"), false).unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 0);
    a.write_all(b"xy").unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    // Not read and not removed: no new data, no new report (edge-triggered).
    assert_eq!(step(&core, &mut rec).callbacks, 0);
    let mut buf = [0u8; 1];
    b.read_exact(&mut buf).unwrap(); // a partial read, as sock_recv(1) would do
    core.set_watcher(fd, false, None).unwrap();
    // The registration stays with a byte unread: nothing reported, nothing spins.
    let s = step(&core, &mut rec);
    assert_eq!((s.io_events, s.callbacks), (0, 0));
    b.read_exact(&mut buf).unwrap(); // the next wait's first read finds it
    core.set_reader_edge(fd, Named::new("again"), true).unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 0);
    a.write_all(b"z").unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    assert_eq!(rec.0, ["r", "again"]);
}

#[test]
fn a_level_triggered_watcher_sees_what_is_pending() {
    let core = core();
    let (mut a, b) = pair();
    let fd = b.as_raw_fd();
    let mut rec = Record::default();
    core.set_reader_edge(fd, Named::new("edge"), false).unwrap();
    core.set_watcher(fd, false, None).unwrap();
    a.write_all(b"x").unwrap();
    // Reported while no reader was there: dropped.
    assert_eq!(step(&core, &mut rec).callbacks, 0);
    // A level-triggered reader (add_reader) must still see the unread byte, every time.
    core.set_watcher(fd, false, Some(Named::new("level")))
        .unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    // And a writer next to an edge reader turns the fd level-triggered too.
    core.set_watcher(fd, false, None).unwrap();
    core.set_reader_edge(fd, Named::new("edge2"), false)
        .unwrap();
    core.set_watcher(fd, true, Some(Named::new("writer")))
        .unwrap();
    let s = step(&core, &mut rec);
    assert_eq!(s.callbacks, 2); // readable (still the unread byte) and writable
    assert_eq!(rec.0, ["level", "level", "edge2", "writer"]);
}

#[test]
fn a_closed_fd_whose_number_is_reused_gets_a_fresh_registration() {
    let core = core();
    let (a, b) = pair();
    let fd = b.as_raw_fd();
    let mut rec = Record::default();
    core.set_reader_edge(fd, Named::new("old"), false).unwrap();
    core.set_watcher(fd, false, None).unwrap();
    drop(b); // the kernel drops the registration with the last reference
    drop(a);
    let mut keep = Vec::new();
    let (mut c, _d) = pair_reusing(fd, &mut keep);
    // The caller cannot vouch for the file: reuse = false re-registers it.
    core.set_reader_edge(fd, Named::new("new"), false).unwrap();
    c.write_all(b"x").unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    assert_eq!(rec.0, ["new"]);
}

#[test]
fn a_registration_left_behind_by_a_dup_cannot_wake_the_new_fd() {
    let core = core();
    let (mut a, b) = pair();
    let fd = b.as_raw_fd();
    let mut rec = Record::default();
    core.set_reader_edge(fd, Named::new("old"), false).unwrap();
    core.set_watcher(fd, false, None).unwrap();
    // A dup keeps the old file (and its epoll registration) alive after `fd` is closed.
    let keep = b.try_clone().expect("dup");
    let raw = b.into_raw_fd();
    // SAFETY: `raw` is the fd we just took out of `b`; closing it once is ours to do.
    drop(unsafe { OwnedFd::from_raw_fd(raw) });
    let mut pairs = Vec::new();
    let (mut c, _d) = pair_reusing(fd, &mut pairs);
    core.set_watcher(fd, false, Some(Named::new("new")))
        .unwrap();
    // Data for the old file: its left-behind registration reports it under `fd`'s number,
    // with the old tag; the new reader must not run.
    a.write_all(b"old").unwrap();
    let s = step(&core, &mut rec);
    assert_eq!(s.callbacks, 0);
    c.write_all(b"new").unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    assert_eq!(rec.0, ["new"]);
    drop(keep);
}

#[test]
fn a_writer_makes_the_next_edge_reader_level_triggered() {
    let core = core();
    let (mut a, b) = pair();
    let fd = b.as_raw_fd();
    let mut rec = Record::default();
    core.set_reader_edge(fd, Named::new("r"), false).unwrap();
    core.set_watcher(fd, true, Some(Named::new("w"))).unwrap();
    a.write_all(b"x").unwrap();
    for _ in 0..2 {
        step(&core, &mut rec);
    }
    // Level-triggered now: the unread byte is reported on every step.
    assert_eq!(rec.0, ["r", "w", "r", "w"]);
    // With a writer present, an edge reader is an ordinary one.
    core.set_reader_edge(fd, Named::new("r2"), true).unwrap();
    step(&core, &mut rec);
    assert_eq!(&rec.0[4..], ["r2", "w"]);
}

#[test]
fn a_closed_fd_whose_number_is_reused_takes_a_level_triggered_reader() {
    // The registration kept for the next edge reader dies with the closed socket; the new
    // socket that gets the same fd number must be registered for real.
    let core = core();
    let (mut a, mut b) = pair();
    let fd = b.as_raw_fd();
    let mut rec = Record::default();
    core.set_reader_edge(fd, Named::new("old"), false).unwrap();
    a.write_all(b"x").unwrap();
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    b.read_exact(&mut [0u8; 1]).unwrap();
    core.set_watcher(fd, false, None).unwrap(); // the registration stays
    drop((a, b));
    let mut keep = Vec::new();
    let (mut c, _d) = pair_reusing(fd, &mut keep);
    core.set_watcher(fd, false, Some(Named::new("new")))
        .unwrap();
    c.write_all(b"y").unwrap();
    rec.0.clear();
    assert_eq!(step(&core, &mut rec).callbacks, 1);
    assert_eq!(step(&core, &mut rec).callbacks, 1); // level-triggered
    assert_eq!(rec.0, ["new", "new"]);
}

#[test]
fn clear_forgets_edge_state() {
    // Whether the edge reader is still there (`clear` unregisters it) or has gone (the
    // registration stays in the kernel), the next edge reader registers again and sees
    // the data that is pending.
    for reader_stays in [true, false] {
        let core = core();
        let (mut a, b) = pair();
        let fd = b.as_raw_fd();
        let mut rec = Record::default();
        core.set_reader_edge(fd, Named::new("r"), false).unwrap();
        a.write_all(b"x").unwrap();
        step(&core, &mut rec);
        if !reader_stays {
            core.set_watcher(fd, false, None).unwrap();
        }
        let removed = core.clear();
        assert_eq!(removed.len(), usize::from(reader_stays));
        assert!(!core.has_watcher(fd, false));
        // `reuse` cannot skip the registration: the engine no longer knows of one.
        core.set_reader_edge(fd, Named::new("after"), true).unwrap();
        step(&core, &mut rec);
        assert_eq!(rec.0, ["r", "after"]);
    }
}
