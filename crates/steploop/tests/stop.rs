//! `stop`/`run_forever` semantics, re-entrancy, `block_on` and huge delays.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use steploop::Error;
use util::{new_loop, step, Log};

#[test]
fn stop_then_run_forever_runs_exactly_one_iteration() {
    let lp = new_loop();
    let log = Log::new();
    lp.call_later(Duration::from_secs(60), log.push("never"));
    lp.stop();
    let before = lp.stats().iterations;
    lp.run_forever().unwrap();
    assert_eq!(lp.stats().iterations - before, 1);
    assert_eq!(log.len(), 0);
}

#[test]
fn callbacks_queued_after_stop_run_in_the_next_run() {
    let lp = new_loop();
    let log = Log::new();
    let (lp2, l2) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        l2.add("first");
        lp2.stop();
        lp2.call_soon(l2.push("after stop"));
    });
    lp.call_soon(log.push("same iteration"));
    lp.run_forever().unwrap();
    log.assert_eq(&["first", "same iteration"]);
    lp.stop();
    lp.run_forever().unwrap();
    log.assert_eq(&["after stop"]);
}

#[test]
fn stop_from_a_timer_ends_run_forever() {
    let lp = new_loop();
    let n = Rc::new(Cell::new(0));
    let (lp2, n2) = (lp.clone(), n.clone());
    fn tick(lp: steploop::EventLoop, n: Rc<Cell<u32>>) {
        n.set(n.get() + 1);
        if n.get() == 5 {
            lp.stop();
        } else {
            let lp2 = lp.clone();
            lp.call_later(Duration::from_millis(1), move || tick(lp2, n));
        }
    }
    lp.call_soon(move || tick(lp2, n2));
    lp.run_forever().unwrap();
    assert_eq!(n.get(), 5);
    assert!(!lp.is_running());
}

#[test]
fn stop_request_makes_run_once_not_block() {
    let lp = new_loop();
    lp.call_later(Duration::from_secs(60), || {});
    lp.stop();
    let t0 = Instant::now();
    lp.run_once(None).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The request stays until a run_forever consumes it.
    lp.run_forever().unwrap();
}

#[test]
fn reentrant_runs_are_refused() {
    let lp = new_loop();
    let errors = Log::new();
    let (lp2, e2) = (lp.clone(), errors.clone());
    lp.call_soon(move || {
        e2.add(matches!(lp2.run_once(None), Err(Error::AlreadyRunning)));
        e2.add(matches!(lp2.run_forever(), Err(Error::AlreadyRunning)));
        e2.add(matches!(lp2.run_until_idle(), Err(Error::AlreadyRunning)));
        e2.add(matches!(lp2.block_on(async {}), Err(Error::AlreadyRunning)));
        assert_eq!(
            Error::AlreadyRunning.to_string(),
            "This event loop is already running"
        );
    });
    step(&lp);
    errors.assert_eq(&[true, true, true, true]);
    // Still usable.
    assert_eq!(lp.block_on(async { 7 }).unwrap(), 7);
}

#[test]
fn block_on_returns_output_and_leaves_other_work_scheduled() {
    let lp = new_loop();
    let log = Log::new();
    lp.call_later(Duration::from_secs(60), log.push("later"));
    let out = lp
        .block_on(async {
            steploop::sleep(Duration::from_millis(1)).await;
            "done"
        })
        .unwrap();
    assert_eq!(out, "done");
    assert_eq!(lp.scheduled_timers(), 1);
}

#[test]
fn block_on_stopped_before_completion() {
    let lp = new_loop();
    let lp2 = lp.clone();
    lp.call_soon(move || lp2.stop());
    let res = lp.block_on(steploop::sleep(Duration::from_secs(60)));
    assert!(matches!(res, Err(Error::Stopped)));
    assert_eq!(
        Error::Stopped.to_string(),
        "Event loop stopped before Future completed."
    );
    // The future was dropped, its timer cancelled.
    step(&lp);
    assert_eq!(lp.time_until_next(), None);
}

#[test]
fn huge_delays_saturate() {
    let lp = new_loop();
    let t = lp.call_later(Duration::MAX, || unreachable!());
    assert!(t.when() > lp.time() + 1e18);
    let u = lp.call_at(
        Instant::now() + Duration::from_secs(u32::MAX.into()),
        || unreachable!(),
    );
    // The poll timeout is clamped to a day.
    let next = lp.time_until_next().unwrap();
    assert!(next <= Duration::from_secs(86400), "{next:?}");
    lp.call_soon(|| {});
    // A huge bound on the wait does not overflow either.
    assert_eq!(lp.run_once(Some(Duration::MAX)).unwrap().callbacks, 1);
    assert_eq!(
        lp.run_once(Some(Duration::from_millis(1))).unwrap().timers,
        0
    );
    t.cancel();
    u.cancel();
    step(&lp);
    assert_eq!(lp.scheduled_timers(), 0);
}

#[test]
fn current_loop_is_visible_only_while_running() {
    let lp = new_loop();
    assert!(steploop::EventLoop::current().is_none());
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    lp.call_soon(move || s.set(steploop::EventLoop::current().is_some()));
    step(&lp);
    assert!(seen.get());
    assert!(steploop::EventLoop::current().is_none());
}

/// asyncio's `run_until_complete` stops the loop from the future's done-callback, which runs
/// one iteration after the future completed: what was scheduled in that iteration (and the
/// timers due by then) runs before it returns, and nothing later.
#[test]
fn block_on_runs_one_more_iteration_after_completion() {
    let lp = new_loop();
    let log = Log::new();
    // Queued before the task's first poll: runs in the same iteration and schedules "after",
    // which therefore runs in the extra iteration.
    let (lp1, l1) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        lp1.call_soon(l1.push("after"));
    });
    let (lp2, l2) = (lp.clone(), log.clone());
    let out = lp
        .block_on(async move {
            let (lp3, l3) = (lp2.clone(), l2.clone());
            lp2.call_soon(move || {
                l3.add("soon");
                // Scheduled in the extra iteration: runs only in the next one.
                lp3.call_soon(l3.push("too late"));
            });
            lp2.call_later(Duration::ZERO, l2.push("timer"));
            "done"
        })
        .unwrap();
    assert_eq!(out, "done");
    log.assert_eq(&["after", "soon", "timer"]);
    step(&lp);
    log.assert_eq(&["too late"]);
}

#[test]
fn block_on_stopped_in_the_completing_iteration_returns_at_once() {
    let lp = new_loop();
    let log = Log::new();
    let (lp2, l2) = (lp.clone(), log.clone());
    let out = lp
        .block_on(async move {
            lp2.stop();
            lp2.call_soon(l2.push("next run"));
            7
        })
        .unwrap();
    // The future completed, so its output is returned; the extra iteration is skipped.
    assert_eq!(out, 7);
    log.assert_eq(&[]);
    // The stop request was cleared: run_forever runs until the timer stops it.
    let lp3 = lp.clone();
    let l3 = log.clone();
    lp.call_later(Duration::from_millis(1), move || {
        l3.add("stop");
        lp3.stop();
    });
    lp.run_forever().unwrap();
    log.assert_eq(&["next run", "stop"]);
}

/// `loop.stop(); loop.run_until_complete(f)` runs exactly one iteration, as `run_forever`.
#[test]
fn block_on_after_stop_runs_one_iteration() {
    let lp = new_loop();
    lp.stop();
    assert_eq!(lp.block_on(async { 5 }).unwrap(), 5);
    lp.stop();
    let res = lp.block_on(steploop::sleep(Duration::from_secs(60)));
    assert!(matches!(res, Err(Error::Stopped)));
    // The stop request does not outlive the call.
    assert_eq!(lp.block_on(async { 6 }).unwrap(), 6);
}
