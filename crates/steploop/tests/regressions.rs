//! Regression tests, one per engine bug (or near miss) found so far, named after the bug.
//! Each comment says what went wrong, or would have, and where the fix lives.

mod util;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use steploop::{Clock, Core, Error, TieBreak};
use util::{core_with, new_loop, step, Log, Named, Record};

fn core() -> Core<Named> {
    core_with(TieBreak::Asyncio)
}

/// A NaN deadline (Python's `loop.call_at(float('nan'), f)`) once reached
/// `Duration::from_secs_f64` through the poll timeout. asyncio treats it as due now
/// (`max(0, nan)` is 0; `nan >= end_time` is false); `clamp_timeout` in core.rs does too.
#[test]
fn nan_deadline_does_not_panic() {
    let core = core();
    core.push_timer(f64::NAN, Named::new("nan"));
    assert_eq!(core.time_until_next(), Some(0.0));
    let mut r = Record::default();
    let s = core
        .run_once(Some(Duration::from_millis(50)), &mut r)
        .unwrap();
    assert_eq!((s.timers, s.callbacks), (1, 1));
    assert_eq!(r.0, ["nan"]);
    let _ = core.stats();
}

/// A deadline of minus infinity (or any deadline far enough in the past) made the timer lag
/// infinite, and `Stats::lag_p50`/`lag_p99` panicked in `Duration::from_secs_f64`.
#[test]
fn infinite_timer_lag_does_not_panic_in_stats() {
    let core = core();
    core.push_timer(f64::NEG_INFINITY, Named::new("-inf"));
    core.push_timer(-1e300, Named::new("ancient"));
    let mut r = Record::default();
    core.run_once(Some(Duration::ZERO), &mut r).unwrap();
    assert_eq!(r.0, ["-inf", "ancient"]);
    let stats = core.stats();
    assert_eq!(stats.lag_p99, Duration::MAX);
}

/// An infinite deadline must neither panic nor make the poll block beyond a day.
#[test]
fn infinite_deadline_is_clamped_to_a_day() {
    let core = core();
    core.push_timer(f64::INFINITY, Named::new("never"));
    let wait = core.time_until_next().unwrap();
    assert_eq!(wait, steploop::MAX_POLL_TIMEOUT);
    let mut r = Record::default();
    let s = core.run_once(Some(Duration::ZERO), &mut r).unwrap();
    assert_eq!(s.timers, 0);
}

/// `run_once(Some(Duration::MAX))` turned the bound into `f64` and back, which overflows a
/// `Duration`: it panicked. Now it saturates (core.rs, step 3) and waits for the wake-up.
#[test]
#[cfg_attr(miri, ignore)] // blocks in epoll_wait until another thread wakes it
fn duration_max_run_once_timeout_does_not_panic() {
    let lp = new_loop();
    let remote = lp.remote();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        remote.call_soon_threadsafe(|| {}).unwrap();
    });
    // Nothing scheduled: the wait is the bound itself, `Duration::MAX`.
    let s = lp.run_once(Some(Duration::MAX)).unwrap();
    t.join().unwrap();
    let s = if s.callbacks == 0 { step(&lp) } else { s };
    assert_eq!(s.callbacks, 1);
}

/// `call_later(Duration::MAX)` and a far `call_at` must saturate, not overflow.
#[test]
fn duration_max_delay_saturates() {
    let lp = new_loop();
    let t = lp.call_later(Duration::MAX, || unreachable!());
    let u = lp.call_at(
        Instant::now() + Duration::from_secs(1 << 40),
        || unreachable!(),
    );
    assert!(t.when().is_finite() && u.when().is_finite());
    assert!(lp.time_until_next().unwrap() <= Duration::from_secs(86400));
    assert_eq!(step(&lp).timers, 0);
    t.cancel();
    u.cancel();
}

/// A `call_at` deadline before the loop's creation goes through the other branch of the
/// `Instant` → loop time conversion (`checked_duration_since` is `None`); it is due at once.
#[test]
fn call_at_before_the_loop_was_created_runs_next_step() {
    let before = Instant::now();
    std::thread::sleep(Duration::from_millis(2));
    let lp = new_loop();
    let log = Log::new();
    lp.call_at(before, log.push("past"));
    assert_eq!(step(&lp).timers, 1);
    log.assert_eq(&["past"]);
}

/// A wake-up pending on the eventfd (a `Remote` push after `poll_fd()`) was never consumed
/// by zero-timeout steps when no fd was watched (they skip the poll syscall), so the poll fd
/// stayed readable and a host loop waiting on it spun. Now a pending wake forces the poll.
#[test]
#[cfg_attr(miri, ignore)] // poll(2)
fn pending_wake_is_consumed_by_a_zero_timeout_step() {
    let lp = new_loop();
    let fd = lp.poll_fd();
    lp.remote().call_soon_threadsafe(|| {}).unwrap();
    let readable = || {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one live, initialised pollfd, and we pass a count of 1.
        unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
    };
    assert!(readable());
    assert_eq!(step(&lp).callbacks, 1);
    assert!(
        !readable(),
        "the poll fd stayed readable after the wake was handled"
    );
}

/// A virtual clock ignores NaN, infinite-negative and negative steps (it must never go
/// back, nor become NaN and poison every later comparison).
#[test]
fn virtual_clock_ignores_nan_and_negative_advance() {
    let c = Clock::virtual_at(10.0, false);
    c.advance(f64::NAN);
    c.advance(-1.0);
    c.advance(f64::NEG_INFINITY);
    assert_eq!(c.now(), 10.0);
    c.advance(0.5);
    assert_eq!(c.now(), 10.5);
}

/// A timer in the past must not make the poll block (negative timeouts clamp to zero).
#[test]
fn past_deadline_does_not_block_the_poll() {
    let core = core();
    core.push_timer(core.time() - 5.0, Named::new("late"));
    let mut r = Record::default();
    // No bound on the wait: only the clamp to zero keeps this from blocking.
    let s = core.run_once(None, &mut r).unwrap();
    assert_eq!(s.timers, 1);
    assert!(s.poll_time < Duration::from_secs(1));
}

/// A waker kept by a finished task must not wake the task that reuses its slot: task ids
/// carry a generation (task.rs, `TaskSlab`).
#[test]
fn stale_waker_does_not_wake_a_task_that_reused_its_slot() {
    struct Pending {
        polls: Rc<Cell<usize>>,
        keep: Rc<RefCell<Option<Waker>>>,
    }
    impl Future for Pending {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.set(self.polls.get() + 1);
            *self.keep.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }
    let lp = new_loop();
    let stale = Rc::new(RefCell::new(None::<Waker>));
    let s = stale.clone();
    // Task A: keeps its waker, then finishes.
    let a = lp.spawn(std::future::poll_fn(move |cx| {
        *s.borrow_mut() = Some(cx.waker().clone());
        Poll::Ready(())
    }));
    lp.run_until_idle().unwrap();
    assert!(a.is_finished());
    drop(a);
    // Task B reuses A's slot and waits forever.
    let polls = Rc::new(Cell::new(0));
    let b = lp.spawn(Pending {
        polls: polls.clone(),
        keep: Rc::default(),
    });
    lp.run_until_idle().unwrap();
    assert_eq!(polls.get(), 1);
    // A's stale waker: B must not be polled again.
    let w = stale.borrow_mut().take().unwrap();
    w.wake();
    lp.run_until_idle().unwrap();
    assert_eq!(polls.get(), 1, "a stale waker woke another task");
    b.cancel();
}

/// `Remote::call_soon_threadsafe` after the loop is dropped returns `Err(LoopGone)` and drops
/// the closure (no silent leak, no panic).
#[test]
fn remote_after_loop_drop_returns_loop_gone() {
    let lp = new_loop();
    let remote = lp.remote();
    drop(lp);
    assert!(remote.is_gone());
    assert!(matches!(
        remote.call_soon_threadsafe(|| {}),
        Err(Error::LoopGone)
    ));
}
