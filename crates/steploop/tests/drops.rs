//! Dropping a loop drops every pending closure and future; cancelling drops at once.

mod util;

use std::time::Duration;

use util::{new_loop, step, DropCounter, SyncDropCounter};

#[test]
fn loop_drop_drops_every_pending_closure() {
    let lp = new_loop();
    let drops = DropCounter::default();
    let mut handles = Vec::new();
    for _ in 0..10 {
        let tok = drops.token();
        lp.call_soon(move || drop(tok));
    }
    for i in 0..10 {
        let tok = drops.token();
        handles.push(lp.call_later(Duration::from_secs(60 + i), move || drop(tok)));
    }
    for _ in 0..5 {
        let tok = drops.token();
        lp.spawn(async move {
            let _tok = tok;
            steploop::sleep(Duration::from_secs(60)).await;
        })
        .detach();
    }
    let sync = SyncDropCounter::default();
    for _ in 0..3 {
        let tok = sync.token();
        lp.remote().call_soon_threadsafe(move || drop(tok)).unwrap();
    }
    // Run one step so the tasks are parked on their sleeps, then queue more.
    step(&lp);
    assert_eq!(drops.dropped(), 10); // the call_soon closures ran
    assert_eq!(sync.dropped(), 3); // and the threadsafe ones
    for _ in 0..4 {
        let tok = drops.token();
        lp.call_soon(move || drop(tok));
    }
    for _ in 0..2 {
        let tok = sync.token();
        lp.remote().call_soon_threadsafe(move || drop(tok)).unwrap();
    }
    drop(lp);
    // 10 ran + 10 timers + 5 tasks + 4 ready.
    drops.assert_dropped(29);
    assert_eq!(sync.dropped(), 5);
    // Handles held by the user see their timers cancelled.
    assert!(handles.iter().all(|h| h.is_cancelled()));
}

#[test]
#[cfg_attr(miri, ignore)] // socketpair
fn loop_drop_drops_fd_watchers() {
    use std::os::fd::AsRawFd;
    let lp = new_loop();
    let drops = DropCounter::default();
    let (a, b) = util::socketpair();
    let (ta, tb) = (drops.token(), drops.token());
    lp.add_reader(a.as_raw_fd(), move || {
        let _ = &ta;
    })
    .unwrap();
    lp.add_writer(b.as_raw_fd(), move || {
        let _ = &tb;
    })
    .unwrap();
    drop(lp);
    drops.assert_dropped(2);
}

#[test]
fn cancel_drops_the_closure_now() {
    let lp = new_loop();
    let drops = DropCounter::default();
    let tok = drops.token();
    let h = lp.call_soon(move || drop(tok));
    let tok = drops.token();
    let t = lp.call_later(Duration::from_secs(1), move || drop(tok));
    h.cancel();
    t.cancel();
    drops.assert_dropped(2);
    assert_eq!(step(&lp).callbacks, 0);
}

#[test]
fn ran_closures_are_dropped_after_running() {
    let lp = new_loop();
    let drops = DropCounter::default();
    let tok = drops.token();
    let h = lp.call_soon(move || {
        let _ = &tok;
    });
    step(&lp);
    // The handle is still alive, the closure is not.
    drops.assert_dropped(1);
    drop(h);
}

#[test]
fn task_drop_cancels_and_drops_the_future() {
    let lp = new_loop();
    let drops = DropCounter::default();
    let tok = drops.token();
    let task = lp.spawn(async move {
        let _tok = tok;
        steploop::sleep(Duration::from_secs(60)).await;
    });
    step(&lp);
    assert_eq!(lp.scheduled_timers(), 1);
    drop(task);
    drops.assert_dropped(1);
    // Its sleep's timer was cancelled with it.
    step(&lp);
    assert_eq!(lp.scheduled_timers(), 0);
}

#[test]
fn drop_order_cancel_before_running() {
    // A closure dropped while the loop drops may schedule on a Remote: refused, not leaked.
    let lp = new_loop();
    let remote = lp.remote();
    struct Reschedule(steploop::Remote, SyncDropCounter);
    impl Drop for Reschedule {
        fn drop(&mut self) {
            let tok = self.1.token();
            let r = self.0.call_soon_threadsafe(move || drop(tok));
            assert!(r.is_err());
        }
    }
    let sync = SyncDropCounter::default();
    let guard = Reschedule(remote, sync.clone());
    lp.call_soon(move || drop(guard));
    drop(lp);
    assert_eq!(sync.dropped(), 1);
}
