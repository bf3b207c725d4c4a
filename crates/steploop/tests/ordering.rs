//! Ordering: FIFO callbacks, timers by deadline then sequence, `call_later(0)` behind ready
//! callbacks, what a step runs and what it leaves for the next one.

mod util;

use std::time::{Duration, Instant};

use util::{new_loop, step, Log};

#[test]
fn call_soon_is_fifo() {
    let lp = new_loop();
    let log = Log::new();
    for i in 0..100 {
        lp.call_soon(log.push(i));
    }
    let s = step(&lp);
    assert_eq!(s.callbacks, 100);
    log.assert_eq(&(0..100).collect::<Vec<_>>());
}

#[test]
fn callbacks_scheduled_by_a_step_run_in_the_next() {
    let lp = new_loop();
    let log = Log::new();
    let (lp2, l2) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        l2.add("a");
        lp2.call_soon(l2.push("c"));
    });
    lp.call_soon(log.push("b"));
    let s = step(&lp);
    assert_eq!((s.callbacks, s.pending), (2, 1));
    log.assert_eq(&["a", "b"]);
    assert_eq!(step(&lp).callbacks, 1);
    log.assert_eq(&["c"]);
}

#[test]
fn call_later_zero_runs_after_ready_callbacks() {
    let lp = new_loop();
    let log = Log::new();
    lp.call_later(Duration::ZERO, log.push("timer"));
    lp.call_soon(log.push("soon1"));
    lp.call_soon(log.push("soon2"));
    let s = step(&lp);
    assert_eq!((s.callbacks, s.timers), (3, 1));
    log.assert_eq(&["soon1", "soon2", "timer"]);
}

#[test]
fn timers_run_by_deadline_then_scheduling_order() {
    let lp = new_loop();
    let log = Log::new();
    let base = Instant::now();
    // Scheduled out of order, with ties: (deadline ms, name).
    for (ms, name) in [
        (3, "c1"),
        (1, "a1"),
        (2, "b1"),
        (1, "a2"),
        (3, "c2"),
        (1, "a3"),
    ] {
        lp.call_at(base + Duration::from_millis(ms), log.push(name));
    }
    std::thread::sleep(Duration::from_millis(5));
    let s = step(&lp);
    assert_eq!(s.timers, 6);
    log.assert_eq(&["a1", "a2", "a3", "b1", "c1", "c2"]);
}

#[test]
fn many_equal_deadlines_keep_fifo() {
    let lp = new_loop();
    let log = Log::new();
    let at = Instant::now();
    // Fewer under miri, which interprets every heap operation.
    let n = if cfg!(miri) { 100 } else { 1000 };
    for i in 0..n {
        lp.call_at(at, log.push(i));
    }
    step(&lp);
    log.assert_eq(&(0..n).collect::<Vec<_>>());
}

#[test]
fn call_at_in_the_past_runs_next_step() {
    let lp = new_loop();
    let log = Log::new();
    let past = Instant::now();
    std::thread::sleep(Duration::from_millis(1));
    let t = lp.call_at(past, log.push("past"));
    assert!(t.when() < lp.time());
    assert_eq!(step(&lp).timers, 1);
    log.assert_eq(&["past"]);
}

#[test]
fn timer_not_due_does_not_run() {
    let lp = new_loop();
    let log = Log::new();
    lp.call_later(Duration::from_secs(60), log.push("later"));
    let s = step(&lp);
    assert_eq!((s.callbacks, s.timers), (0, 0));
    let next = s.next_deadline.expect("a deadline");
    assert!(next > lp.time() + 59.0);
    assert_eq!(log.len(), 0);
}

#[test]
fn threadsafe_from_loop_thread_keeps_fifo_with_call_soon() {
    let lp = new_loop();
    let remote = lp.remote();
    let log = Log::new();
    lp.call_soon(log.push(1));
    let l = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let l2 = l.clone();
    remote
        .call_soon_threadsafe(move || l2.lock().unwrap().push(2))
        .unwrap();
    let (l3, log3) = (l.clone(), log.clone());
    lp.call_soon(move || {
        // Record the threadsafe callback's position when this one runs.
        let seen = l3.lock().unwrap().len();
        log3.add(if seen == 1 { 3 } else { -3 });
    });
    let s = step(&lp);
    assert_eq!(s.callbacks, 3);
    log.assert_eq(&[1, 3]);
    assert_eq!(*l.lock().unwrap(), [2]);
}

#[test]
fn threadsafe_calls_made_during_a_step_run_in_the_next() {
    let lp = new_loop();
    let log = Log::new();
    let remote = lp.remote();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    lp.call_soon(move || {
        remote
            .call_soon_threadsafe(move || {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .unwrap();
    });
    lp.call_soon(log.push("b"));
    assert_eq!(step(&lp).callbacks, 2);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(lp.time_until_next(), Some(Duration::ZERO));
    assert_eq!(step(&lp).callbacks, 1);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn yield_now_goes_behind_ready_callbacks() {
    let lp = new_loop();
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let lp2 = lp.clone();
    let task = lp.spawn(async move {
        l1.add("task start");
        lp2.call_soon(l1.push("soon from task"));
        steploop::yield_now().await;
        l1.add("task resumed");
    });
    lp.call_soon(l2.push("soon"));
    step(&lp);
    log.assert_eq(&["task start", "soon"]);
    step(&lp);
    log.assert_eq(&["soon from task", "task resumed"]);
    assert!(task.is_finished());
}

#[test]
fn cancelled_callback_is_skipped_and_not_counted() {
    let lp = new_loop();
    let log = Log::new();
    lp.call_soon(log.push(1));
    let h = lp.call_soon(log.push(2));
    lp.call_soon(log.push(3));
    h.cancel();
    assert_eq!(step(&lp).callbacks, 2);
    log.assert_eq(&[1, 3]);
}

#[test]
fn run_until_idle_counts_steps() {
    let lp = new_loop();
    let log = Log::new();
    let (lp2, l2) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        let (lp3, l3) = (lp2.clone(), l2.clone());
        lp2.call_soon(move || {
            lp3.call_later(Duration::ZERO, l3.push("timer"));
        });
    });
    // step 1: outer; step 2: inner (schedules a due timer); step 3: timer.
    assert_eq!(lp.run_until_idle().unwrap(), 3);
    log.assert_eq(&["timer"]);
    // Nothing to do: one step.
    assert_eq!(lp.run_until_idle().unwrap(), 1);
}
