//! Busy polling before a blocking wait (`BusyPoll`, `EventLoop::set_busy_poll`): it changes
//! how the loop waits, never what an iteration sees. No test here depends on how fast the
//! machine is: the waits are timers of a millisecond or more, far above the windows they
//! teach, and the limit is a whole second.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use steploop::EventLoop;

/// A loop whose busy-poll window has been opened: with a one-second limit, every wait of a
/// millisecond is "short", so the window doubles from 10 µs on each of them.
fn trained_loop() -> EventLoop {
    let lp = EventLoop::new().unwrap();
    lp.set_busy_poll(Duration::from_secs(1));
    for _ in 0..12 {
        lp.call_later(Duration::from_millis(1), || {});
        lp.run_once(None).unwrap();
    }
    lp
}

#[test]
fn short_waits_open_the_window_and_spinning_then_catches_them() {
    let lp = trained_loop();
    let s = lp.stats();
    // The first wait blocks at once (the window starts closed); every later one spins.
    assert_eq!(s.busy_polls, 11);
    // From 1.28 ms on, the window covers the whole 1 ms timeout: those waits end spinning.
    assert!(s.busy_poll_hits >= 1, "{s:?}");
    lp.reset_stats();
    assert_eq!((lp.stats().busy_polls, lp.stats().busy_poll_hits), (0, 0));
}

#[test]
fn long_waits_never_spin() {
    let lp = EventLoop::new().unwrap(); // the default limit, 100 µs
    for _ in 0..3 {
        lp.call_later(Duration::from_millis(2), || {});
        lp.run_once(None).unwrap();
    }
    assert_eq!(lp.stats().busy_polls, 0);
}

#[test]
fn a_spinning_wait_still_waits_for_its_timer() {
    let lp = trained_loop();
    for ms in [1, 3, 5] {
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let start = lp.time();
        lp.call_later(Duration::from_millis(ms), move || f.set(true));
        // One iteration: the wait (spin, then block for the rest) lasts until the timer is
        // due, as a blocking wait does; it does not come back early with nothing to run.
        let step = lp.run_once(None).unwrap();
        assert_eq!((step.timers, step.callbacks), (1, 1), "{ms} ms");
        assert!(fired.get());
        assert!(lp.time() - start >= ms as f64 / 1000.0);
    }
}

#[test]
fn a_spinning_wait_sees_io_and_wake_ups() {
    let lp = trained_loop();
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let got = Rc::new(Cell::new(0u8));
    let g = got.clone();
    let reader = ours.try_clone().unwrap();
    lp.add_reader(ours.as_raw_fd(), move || {
        let mut b = [0u8; 1];
        if let Ok(1) = (&reader).read(&mut b) {
            g.set(b[0]);
        }
    })
    .unwrap();
    let remote = lp.remote();
    let (tx, rx) = mpsc::channel::<u8>();
    let peer = std::thread::spawn(move || {
        for byte in rx {
            if byte == 0 {
                remote.call_soon_threadsafe(|| {}).unwrap();
            } else {
                theirs.write_all(&[byte]).unwrap();
            }
        }
    });
    for byte in [1u8, 0, 2, 0, 3] {
        tx.send(byte).unwrap();
        // Nothing is scheduled: only the byte or the wake-up can end this wait.
        let step = lp.run_once(None).unwrap();
        if byte == 0 {
            assert_eq!((step.io_events, step.callbacks), (0, 1));
        } else {
            assert_eq!((step.io_events, step.callbacks), (1, 1));
            assert_eq!(got.get(), byte);
        }
    }
    drop(tx);
    peer.join().unwrap();
    lp.remove_reader(ours.as_raw_fd()).unwrap();
}

#[test]
fn zero_turns_busy_polling_off() {
    let lp = EventLoop::new().unwrap();
    lp.set_busy_poll(Duration::ZERO);
    for _ in 0..5 {
        lp.call_later(Duration::from_millis(1), || {});
        lp.run_once(None).unwrap();
    }
    assert_eq!(lp.stats().busy_polls, 0);
}
