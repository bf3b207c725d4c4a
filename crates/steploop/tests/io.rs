//! fd readiness on socketpairs and pipes: level-triggered readers, writers, replacement,
//! self-removal, closed fds.
#![cfg(not(miri))] // real sockets and pipes

mod util;

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;

use steploop::Error;
use util::{new_loop, socketpair, step, Log};

fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a live array of two c_ints, as pipe2 requires.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (r.into(), w.into())
}

#[test]
fn reader_that_does_not_drain_runs_every_iteration() {
    let lp = new_loop();
    let (mut a, b) = socketpair();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    lp.add_reader(b.as_raw_fd(), move || n2.set(n2.get() + 1))
        .unwrap();
    assert_eq!(step(&lp).callbacks, 0);
    a.write_all(b"hello").unwrap();
    for i in 1..=3 {
        let s = step(&lp);
        assert_eq!((s.io_events, s.callbacks), (1, 1));
        assert_eq!(n.get(), i);
    }
    assert!(lp.remove_reader(b.as_raw_fd()).unwrap());
    assert_eq!(step(&lp).callbacks, 0);
}

#[test]
fn reader_that_drains_runs_once() {
    let lp = new_loop();
    let (mut a, b) = socketpair();
    let fd = b.as_raw_fd();
    let got = Rc::new(Cell::new(0usize));
    let g = got.clone();
    let mut b = b;
    lp.add_reader(fd, move || {
        let mut buf = [0; 64];
        while let Ok(k) = b.read(&mut buf) {
            if k == 0 {
                break;
            }
            g.set(g.get() + k);
        }
    })
    .unwrap();
    a.write_all(b"12345").unwrap();
    assert_eq!(step(&lp).callbacks, 1);
    assert_eq!(got.get(), 5);
    assert_eq!(step(&lp).callbacks, 0);
    lp.remove_reader(fd).unwrap();
}

#[test]
fn pipe_reader_and_writer() {
    let lp = new_loop();
    let (mut r, mut w) = pipe();
    let log = Log::new();
    let l = log.clone();
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    let lp2 = lp.clone();
    lp.add_writer(wfd, move || {
        w.write_all(b"ping").unwrap();
        l.add("wrote");
        lp2.remove_writer(wfd).unwrap();
    })
    .unwrap();
    let (l, lp3) = (log.clone(), lp.clone());
    lp.add_reader(rfd, move || {
        let mut buf = [0; 4];
        r.read_exact(&mut buf).unwrap();
        l.add("read");
        lp3.remove_reader(rfd).unwrap();
    })
    .unwrap();
    step(&lp);
    log.assert_eq(&["wrote"]);
    step(&lp);
    log.assert_eq(&["read"]);
    assert_eq!(step(&lp).callbacks, 0);
}

#[test]
fn writer_on_socketpair_is_ready_at_once() {
    let lp = new_loop();
    let (a, _b) = socketpair();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    lp.add_writer(a.as_raw_fd(), move || n2.set(n2.get() + 1))
        .unwrap();
    step(&lp);
    step(&lp);
    assert_eq!(n.get(), 2);
    assert!(lp.remove_writer(a.as_raw_fd()).unwrap());
    assert!(!lp.remove_writer(a.as_raw_fd()).unwrap());
}

#[test]
fn reader_and_writer_on_one_fd() {
    let lp = new_loop();
    let (mut a, b) = socketpair();
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    lp.add_reader(b.as_raw_fd(), move || l1.add("r")).unwrap();
    lp.add_writer(b.as_raw_fd(), move || l2.add("w")).unwrap();
    step(&lp);
    log.assert_eq(&["w"]);
    a.write_all(b"x").unwrap();
    step(&lp);
    let mut got = log.take();
    got.sort();
    assert_eq!(got, ["r", "w"]);
    assert!(lp.remove_writer(b.as_raw_fd()).unwrap());
    step(&lp);
    log.assert_eq(&["r"]);
    assert!(lp.remove_reader(b.as_raw_fd()).unwrap());
}

#[test]
fn re_registering_replaces_the_callback() {
    let lp = new_loop();
    let (mut a, b) = socketpair();
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    lp.add_reader(b.as_raw_fd(), move || l1.add("old")).unwrap();
    lp.add_reader(b.as_raw_fd(), move || l2.add("new")).unwrap();
    a.write_all(b"x").unwrap();
    let s = step(&lp);
    assert_eq!(s.callbacks, 1);
    log.assert_eq(&["new"]);
    lp.remove_reader(b.as_raw_fd()).unwrap();
}

#[test]
fn replacement_in_the_same_iteration_skips_the_old_one() {
    let lp = new_loop();
    let (mut a, b) = socketpair();
    let (a2, b2) = socketpair();
    let fd = b.as_raw_fd();
    let log = Log::new();
    a.write_all(b"x").unwrap();
    // Both fds are ready in the same poll; whichever watcher runs first replaces the
    // other fd's watcher: the replaced one must not run.
    let (l, lp2) = (log.clone(), lp.clone());
    let fd2 = a2.as_raw_fd();
    lp.add_reader(fd, move || {
        l.add("reader");
        let l2 = l.clone();
        lp2.add_writer(fd2, move || l2.add("new writer")).unwrap();
    })
    .unwrap();
    let (l, lp3) = (log.clone(), lp.clone());
    lp.add_writer(fd2, move || {
        l.add("old writer");
        let l3 = l.clone();
        lp3.add_reader(fd, move || l3.add("new reader")).unwrap();
    })
    .unwrap();
    step(&lp);
    let got = log.take();
    assert_eq!(got.len(), 1, "{got:?}");
    lp.remove_reader(fd).unwrap();
    lp.remove_writer(fd2).unwrap();
    drop(b2);
}

#[test]
fn callback_removes_itself_and_drops_its_closure_after_returning() {
    let lp = new_loop();
    let (mut a, b) = socketpair();
    let fd = b.as_raw_fd();
    let lp2 = lp.clone();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    // The closure owns the socket: dropping it early would close the fd mid-callback.
    lp.add_reader(fd, move || {
        r.set(r.get() + 1);
        assert!(lp2.remove_reader(b.as_raw_fd()).unwrap());
        let mut buf = [0; 8];
        let _ = (&b).read(&mut buf);
    })
    .unwrap();
    a.write_all(b"x").unwrap();
    step(&lp);
    step(&lp);
    assert_eq!(runs.get(), 1);
    // The socket was dropped with the closure: the peer sees EOF.
    let mut buf = [0; 1];
    assert_eq!(a.read(&mut buf).unwrap(), 0);
}

#[test]
fn closed_fd_is_reported_on_removal() {
    let lp = new_loop();
    let (_a, b) = socketpair();
    let fd = b.as_raw_fd();
    lp.add_reader(fd, || {}).unwrap();
    drop(b);
    assert!(matches!(lp.remove_reader(fd), Err(Error::FdClosed(f)) if f == fd));
    // The watch is gone anyway.
    assert!(!lp.remove_reader(fd).unwrap());
    step(&lp);
}

#[test]
fn closed_fd_while_registered_never_hangs() {
    let lp = new_loop();
    let (a, b) = socketpair();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    lp.add_reader(b.as_raw_fd(), move || n2.set(n2.get() + 1))
        .unwrap();
    let fd = b.as_raw_fd();
    drop(b);
    drop(a);
    // The kernel dropped the closed fd from the epoll set: no event, no hang.
    let s = lp
        .run_once(Some(std::time::Duration::from_millis(5)))
        .unwrap();
    assert_eq!(s.callbacks, 0);
    assert!(lp.remove_reader(fd).is_err());
}

#[test]
fn bad_fds_are_refused() {
    let lp = new_loop();
    assert!(matches!(
        lp.add_reader(-1, || {}),
        Err(Error::InvalidFd(-1))
    ));
    // An fd that is not open. Not one we close ourselves: another test running in parallel
    // may get the same number from the OS before we use it (that made this test flaky).
    let fd = 1 << 30;
    assert!(matches!(lp.add_reader(fd, || {}), Err(Error::Io(_))));
    assert!(!lp.remove_reader(fd).unwrap());
    // A regular file: epoll refuses it (EPERM).
    let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    assert!(matches!(
        lp.add_reader(file.as_raw_fd(), || {}),
        Err(Error::Io(_))
    ));
}

#[test]
fn peer_hangup_makes_reader_ready() {
    let lp = new_loop();
    let (a, b) = socketpair();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    lp.add_reader(b.as_raw_fd(), move || n2.set(n2.get() + 1))
        .unwrap();
    drop(a);
    step(&lp);
    assert_eq!(n.get(), 1);
    lp.remove_reader(b.as_raw_fd()).unwrap();
}
