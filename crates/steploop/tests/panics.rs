//! A panicking callback reaches the caller of `run_once`; the loop stays usable.

mod util;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use util::{new_loop, step, Log};

#[test]
fn panic_reaches_caller_and_loop_stays_usable() {
    let lp = new_loop();
    let log = Log::new();
    lp.call_soon(log.push("before"));
    lp.call_soon(|| panic!("boom"));
    lp.call_soon(log.push("after"));
    let err = catch_unwind(AssertUnwindSafe(|| lp.run_once(Some(Duration::ZERO))))
        .expect_err("the panic must not be swallowed");
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom"));
    log.assert_eq(&["before"]);
    assert!(!lp.is_running());
    // The callback after the panicking one is still queued and runs next.
    let s = step(&lp);
    assert_eq!(s.callbacks, 1);
    log.assert_eq(&["after"]);
    // Scheduling and running still work, also from other threads.
    lp.remote().call_soon_threadsafe(|| {}).unwrap();
    assert_eq!(lp.run_until_idle().unwrap(), 1);
    assert_eq!(lp.block_on(async { 5 }).unwrap(), 5);
}

#[test]
fn panic_in_run_forever_clears_running_state() {
    let lp = new_loop();
    lp.call_later(Duration::ZERO, || panic!("in a timer"));
    let r = catch_unwind(AssertUnwindSafe(|| lp.run_forever()));
    assert!(r.is_err());
    assert!(!lp.is_running());
    assert!(steploop::EventLoop::current().is_none());
    let lp2 = lp.clone();
    lp.call_soon(move || lp2.stop());
    lp.run_forever().unwrap();
}

#[test]
fn panicking_task_is_dropped_and_reports_cancelled() {
    let lp = new_loop();
    let task = lp.spawn(async {
        steploop::yield_now().await;
        panic!("task boom");
    });
    step(&lp);
    let r = catch_unwind(AssertUnwindSafe(|| step(&lp)));
    assert!(r.is_err());
    assert!(task.is_finished());
    assert!(matches!(
        lp.block_on(task).unwrap(),
        Err(steploop::Error::Cancelled)
    ));
}

#[test]
#[cfg_attr(miri, ignore)] // socketpair
fn panicking_reader_stays_registered() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let lp = new_loop();
    let (mut a, b) = util::socketpair();
    let mut first = true;
    let log = Log::new();
    let l = log.clone();
    lp.add_reader(b.as_raw_fd(), move || {
        if std::mem::take(&mut first) {
            panic!("reader boom");
        }
        l.add("second run");
    })
    .unwrap();
    a.write_all(b"x").unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| step(&lp))).is_err());
    step(&lp);
    log.assert_eq(&["second run"]);
    assert!(lp.remove_reader(b.as_raw_fd()).unwrap());
}
