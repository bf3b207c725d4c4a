//! Timer cancellation (before and after it is due) and asyncio's compaction rule.

mod util;

use std::time::Duration;

use util::{new_loop, step, DropCounter, Log};

#[test]
fn cancel_before_due() {
    let lp = new_loop();
    let log: Log<&str> = Log::new();
    let drops = DropCounter::default();
    let tok = drops.token();
    let t = lp.call_later(Duration::from_millis(1), move || {
        let _tok = tok;
        unreachable!()
    });
    t.cancel();
    // The closure is dropped at cancel time, the heap entry at the next step.
    drops.assert_dropped(1);
    assert!(t.is_cancelled());
    assert_eq!(lp.scheduled_timers(), 1);
    std::thread::sleep(Duration::from_millis(2));
    let s = step(&lp);
    assert_eq!((s.timers, s.callbacks), (0, 0));
    assert_eq!(lp.scheduled_timers(), 0);
    assert_eq!(log.len(), 0);
}

#[test]
fn cancel_after_due_by_an_earlier_callback_of_the_same_step() {
    let lp = new_loop();
    let log = Log::new();
    let victim = lp.call_later(Duration::ZERO, log.push("victim"));
    let l = log.clone();
    // Both are due in the same step; the first cancels the second.
    let v2 = victim.clone();
    lp.call_soon(move || {
        l.add("killer");
        v2.cancel();
    });
    let s = step(&lp);
    assert_eq!(s.timers, 1); // it came due
    assert_eq!(s.callbacks, 1); // but did not run
    log.assert_eq(&["killer"]);
}

#[test]
fn cancel_after_it_ran_has_no_effect() {
    let lp = new_loop();
    let log = Log::new();
    let t = lp.call_later(Duration::ZERO, log.push("ran"));
    step(&lp);
    log.assert_eq(&["ran"]);
    t.cancel();
    assert!(t.is_cancelled());
    assert_eq!(lp.scheduled_timers(), 0);
    step(&lp);
}

#[test]
fn cancelled_head_is_popped_without_compaction() {
    let lp = new_loop();
    let first = lp.call_later(Duration::from_secs(1), || {});
    let _second = lp.call_later(Duration::from_secs(2), || {});
    let third = lp.call_later(Duration::from_secs(3), || {});
    first.cancel();
    third.cancel();
    step(&lp);
    // Only the head left (3 timers: below the compaction minimum).
    assert_eq!(lp.scheduled_timers(), 2);
}

#[test]
#[cfg_attr(miri, ignore)] // 10^5 timers: too slow under miri
fn compaction_with_1e5_cancelled_timers() {
    let lp = new_loop();
    let drops = DropCounter::default();
    let n = 100_000;
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let tok = drops.token();
        // Deadlines far away and interleaved, so the head is live.
        let d = Duration::from_secs(1000 + (i as u64 * 7919) % n as u64);
        handles.push(lp.call_later(d, move || drop(tok)));
    }
    // Exactly half cancelled: asyncio compacts only when *more* than half are.
    for h in handles.iter().skip(1).step_by(2) {
        h.cancel();
    }
    drops.assert_dropped(n / 2);
    step(&lp);
    assert_eq!(lp.scheduled_timers(), n);
    // One more: now more than half are cancelled, the heap is rebuilt without them.
    handles[0].cancel();
    step(&lp);
    assert_eq!(lp.scheduled_timers(), n / 2 - 1);
    // The survivors still come out in deadline order.
    let first_live = handles
        .iter()
        .filter(|h| !h.is_cancelled())
        .map(|h| h.when())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(step(&lp).next_deadline, Some(first_live));
    drop(lp);
    drops.assert_dropped(n);
}

#[test]
fn cancelled_timers_below_minimum_are_not_compacted() {
    let lp = new_loop();
    let hs: Vec<_> = (0..100)
        .map(|i| lp.call_later(Duration::from_secs(100 - i), || {}))
        .collect();
    for h in &hs[..99] {
        h.cancel();
    }
    step(&lp);
    // 100 scheduled is not "more than 100": no rebuild; the live head (index 99, the
    // earliest) stays on top, so nothing is popped either.
    assert_eq!(lp.scheduled_timers(), 100);
}
