//! The slow-callback hook, stats, and the host-loop API (`poll_fd`, `time_until_next`).

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use util::{new_loop, step};

fn busy(d: Duration) {
    let t = std::time::Instant::now();
    while t.elapsed() < d {}
}

#[test]
fn slow_callback_is_reported_with_its_type_name() {
    let lp = new_loop();
    let seen: Rc<RefCell<Vec<(String, Duration)>>> = Rc::default();
    let s = seen.clone();
    lp.set_slow_callback(Some(Duration::from_millis(20)), move |what, took| {
        s.borrow_mut().push((what.to_string(), took));
    });
    lp.call_soon(|| {}); // fast: not reported
    lp.call_soon(|| busy(Duration::from_millis(25)));
    step(&lp);
    let got = seen.borrow().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].0.contains("slow_callback_is_reported"),
        "{}",
        got[0].0
    );
    assert!(got[0].1 >= Duration::from_millis(25));
    // Tasks are reported with their future's type.
    lp.block_on(async { busy(Duration::from_millis(25)) })
        .unwrap();
    assert_eq!(seen.borrow().len(), 2);
    // Off.
    lp.set_slow_callback(None, |_, _| unreachable!());
    lp.call_soon(|| busy(Duration::from_millis(25)));
    step(&lp);
    assert_eq!(seen.borrow().len(), 2);
}

#[test]
fn stats_count_and_reset() {
    let lp = new_loop();
    lp.call_soon(|| {});
    lp.call_later(Duration::ZERO, || {});
    step(&lp);
    let s = lp.stats();
    assert_eq!((s.iterations, s.callbacks, s.timers), (1, 2, 1));
    lp.reset_stats();
    assert_eq!(lp.stats(), steploop::Stats::default());
}

#[test]
fn time_until_next_reports_work() {
    let lp = new_loop();
    assert_eq!(lp.time_until_next(), None);
    let t = lp.call_later(Duration::from_secs(5), || {});
    let left = lp.time_until_next().unwrap();
    assert!(left > Duration::from_secs(4) && left <= Duration::from_secs(5));
    t.cancel();
    assert_eq!(lp.time_until_next(), None);
    lp.remote().call_soon_threadsafe(|| {}).unwrap();
    assert_eq!(lp.time_until_next(), Some(Duration::ZERO));
    step(&lp);
    lp.stop();
    assert_eq!(lp.time_until_next(), Some(Duration::ZERO));
    lp.run_forever().unwrap();
    assert_eq!(lp.time_until_next(), None);
}

#[test]
#[cfg_attr(miri, ignore)] // poll(2) on the epoll fd
fn poll_fd_turns_readable_for_remote_calls_and_io() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let lp = new_loop();
    let fd = lp.poll_fd();
    let readable = |ms| {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut p, 1, ms) == 1 }
    };
    assert!(!readable(0));
    let remote = lp.remote();
    std::thread::spawn(move || remote.call_soon_threadsafe(|| {}).unwrap())
        .join()
        .unwrap();
    assert!(readable(1000));
    assert_eq!(step(&lp).callbacks, 1);
    assert!(!readable(0));
    let (mut a, b) = util::socketpair();
    lp.add_reader(b.as_raw_fd(), || {}).unwrap();
    assert!(!readable(0));
    a.write_all(b"x").unwrap();
    assert!(readable(1000));
    assert_eq!(step(&lp).callbacks, 1);
    lp.remove_reader(b.as_raw_fd()).unwrap();
}
