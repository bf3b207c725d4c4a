//! [`Core`]: the iteration machinery shared by the Rust [`EventLoop`](crate::EventLoop) and the
//! Python binding, generic over the callback type.
//!
//! Locking rule: every lock is held only for a queue operation; no callback, no drop of a
//! callback (which may run arbitrary destructors that schedule more work) and no poll happens
//! while a queue lock is held. Removed callbacks are handed back to the caller to drop.

use parking_lot::{Mutex, MutexGuard};
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::reactor::{IoTable, Reactor, Readiness};
use crate::stats::StatsState;
use crate::timer::{TieBreak, TimerHeap};
use crate::{Clock, Result, Stats, Step};

/// asyncio's `MAXIMUM_SELECT_TIMEOUT`: the longest single poll, one day.
pub const MAX_POLL_TIMEOUT: f64 = 24.0 * 3600.0;

/// What the core needs to know about a scheduled callback.
pub trait Callback: Clone {
    /// Whether the callback was cancelled (it is then skipped, or dropped from the heap).
    fn is_cancelled(&self) -> bool;
    /// Called when a timer leaves the heap (came due, dropped as cancelled, or cleared).
    fn unscheduled(&self) {}
}

/// How a loop runs its callbacks and waits; lets the binding release the GIL around the poll
/// and turn errors into Python exceptions.
pub trait Runner<C> {
    /// The error a callback or the poll can end the iteration with.
    type Error;
    /// Runs one callback. An `Err` ends the iteration at once and reaches the caller of
    /// `run_once`; the callbacks not yet run stay in the ready queue.
    fn run(&mut self, cb: &C) -> std::result::Result<(), Self::Error>;
    /// Runs the blocking poll `f` (the binding releases the GIL here).
    fn blocking<T: Send>(&mut self, f: impl FnOnce() -> T + Send) -> T {
        f()
    }
    /// The poll failed with `e` (`EINTR` included: check for signals here).
    fn poll_failed(&mut self, e: io::Error) -> std::result::Result<(), Self::Error>;
    /// Whether work is waiting outside the core's queues (e.g. a cross-thread queue): checked
    /// after the loop has published that it is about to poll, so the poll does not block.
    fn has_pending(&mut self) -> bool {
        false
    }
    /// Called right after the poll, before fd events and timers are queued (e.g. to move a
    /// cross-thread queue into the ready queue).
    fn after_poll(&mut self) {}
    /// Whether each callback is timed (for `ran`, slow-callback reports and
    /// `Stats::max_callback_time`); untimed iterations read the clock twice in all.
    fn timed(&self) -> bool {
        true
    }
    /// Called after each timed callback with its duration in seconds.
    fn ran(&mut self, _cb: &C, _seconds: f64) {}
}

/// asyncio's `min(max(0, t), MAXIMUM_SELECT_TIMEOUT)`, where a NaN deadline (Python's `max`
/// keeps its first argument when comparisons are false) means "now".
fn clamp_timeout(t: f64) -> f64 {
    if t > 0.0 {
        t.min(MAX_POLL_TIMEOUT)
    } else {
        0.0
    }
}

/// Seconds to a `Duration`, cheaply; negative (clock skew) and NaN give zero.
#[inline]
fn secs(t: f64) -> Duration {
    if t > 0.0 {
        Duration::from_nanos((t * 1e9) as u64)
    } else {
        Duration::ZERO
    }
}

/// Locks `m`. These locks never see user code run under them and are uncontended on the
/// loop's thread; `parking_lot` makes that a single compare-and-swap, with no poisoning.
#[inline]
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

/// The engine state of one loop: ready queue, timers, fd table, reactor, clock, statistics.
#[derive(Debug)]
pub struct Core<C> {
    /// FIFO of callbacks ready to run. Pushed by any scheduling call, popped by step 5.
    ready: Mutex<VecDeque<C>>,
    /// Pending timers.
    timers: Mutex<TimerHeap<C>>,
    /// fd watchers; the reactor's epoll set mirrors its interests.
    io: Mutex<IoTable<C>>,
    reactor: Reactor,
    /// Set by `stop()`, cleared by the caller of `run_forever` when it returns.
    stopping: AtomicBool,
    clock: Clock,
    resolution: f64,
    stats: Mutex<StatsState>,
    /// Reused buffer for poll results (loop thread only).
    events: Mutex<Vec<Readiness>>,
}

impl<C: Callback> Core<C> {
    /// A core on `clock`, with equal deadlines ordered by `tie`.
    pub fn new(clock: Clock, tie: TieBreak) -> Result<Self> {
        let resolution = clock.resolution();
        Ok(Core {
            ready: Mutex::new(VecDeque::with_capacity(64)),
            timers: Mutex::new(TimerHeap::new(tie)),
            io: Mutex::new(IoTable::default()),
            reactor: Reactor::new()?,
            stopping: AtomicBool::new(false),
            clock,
            resolution,
            stats: Mutex::new(StatsState::default()),
            events: Mutex::new(Vec::with_capacity(64)),
        })
    }

    /// The loop's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Current loop time in seconds.
    #[inline]
    pub fn time(&self) -> f64 {
        self.clock.now()
    }

    /// The clock resolution used in the due test (`deadline < now + resolution`).
    pub fn resolution(&self) -> f64 {
        self.resolution
    }

    /// The reactor (for wake-ups and the poll fd).
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// Appends `cb` to the ready queue.
    #[inline]
    pub fn push_ready(&self, cb: C) {
        lock(&self.ready).push_back(cb);
    }

    /// Appends `cb` to the ready queue and wakes the loop if it is blocked in a poll.
    pub fn push_ready_threadsafe(&self, cb: C) -> Result<()> {
        self.push_ready(cb);
        self.reactor.wake()
    }

    /// Appends `cb` to the ready queue from outside the loop's callbacks (another thread, or
    /// a host between steps): the loop is woken, and the poll fd turns readable.
    pub fn push_ready_notify(&self, cb: C) -> Result<()> {
        self.push_ready(cb);
        self.reactor.notify()
    }

    /// Number of callbacks in the ready queue.
    pub fn ready_len(&self) -> usize {
        lock(&self.ready).len()
    }

    /// Schedules `cb` at loop time `when`.
    pub fn push_timer(&self, when: f64, cb: C) {
        lock(&self.timers).push(when, cb);
    }

    /// Records the cancellation of a timer that is still scheduled (for compaction).
    pub fn timer_cancelled(&self) {
        lock(&self.timers).note_cancelled();
    }

    /// Number of timers in the heap (cancelled ones not yet dropped included).
    pub fn timers_len(&self) -> usize {
        lock(&self.timers).len()
    }

    /// Calls `f` on every ready callback, scheduled timer and fd watcher. Skips a queue whose
    /// lock is taken (this is for the garbage collector's traversal, which must never block).
    pub fn for_each_pending(&self, mut f: impl FnMut(&C)) {
        if let Some(ready) = self.ready.try_lock() {
            ready.iter().for_each(&mut f);
        }
        if let Some(timers) = self.timers.try_lock() {
            timers.iter().for_each(&mut f);
        }
        if let Some(io) = self.io.try_lock() {
            io.for_each(&mut f);
        }
    }

    /// Sets (`Some`) or removes (`None`) the reader (`write == false`) or writer of `fd`.
    /// Returns the previous watcher, which the caller drops (or cancels) outside the lock.
    pub fn set_watcher(&self, fd: RawFd, write: bool, cb: Option<C>) -> Result<Option<C>> {
        let mut io = lock(&self.io);
        let old_interest = io.interest(fd);
        let mut new_interest = old_interest;
        if write {
            new_interest.1 = cb.is_some();
        } else {
            new_interest.0 = cb.is_some();
        }
        let res = self.reactor.set_interest(fd, old_interest, new_interest);
        match res {
            Ok(()) => Ok(io.set(fd, write, cb)),
            Err(e) => {
                if cb.is_none() {
                    // Removal of a closed fd: forget it anyway, report the closure.
                    let old = io.set(fd, write, None);
                    drop(io);
                    drop(old);
                }
                Err(e)
            }
        }
    }

    /// Whether `fd` has a reader (`write == false`) or writer registered.
    pub fn has_watcher(&self, fd: RawFd, write: bool) -> bool {
        let (r, w) = lock(&self.io).interest(fd);
        if write {
            w
        } else {
            r
        }
    }

    /// Returns a clone of the reader or writer of `fd`.
    pub fn watcher(&self, fd: RawFd, write: bool) -> Option<C> {
        let io = lock(&self.io);
        let w = io.get(fd)?;
        if write {
            w.writer.clone()
        } else {
            w.reader.clone()
        }
    }

    /// Number of watched fds.
    pub fn watched_fds(&self) -> usize {
        lock(&self.io).len()
    }

    /// Asks the loop to stop after the current iteration.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        // A stop from another thread must end a blocking poll.
        let _ = self.reactor.wake();
    }

    /// Whether `stop()` was called since the last reset.
    #[inline]
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Sets the stopping flag (`run_forever` clears it when it returns).
    pub fn set_stopping(&self, v: bool) {
        self.stopping.store(v, Ordering::Release);
    }

    /// Removes every callback, timer and fd watcher, returning them for the caller to drop.
    pub fn clear(&self) -> Vec<C> {
        let mut out: Vec<C> = lock(&self.ready).drain(..).collect();
        out.extend(lock(&self.timers).clear());
        let watchers = lock(&self.io).drain();
        for (fd, w) in watchers {
            let interest = (w.reader.is_some(), w.writer.is_some());
            let _ = self.reactor.set_interest(fd, interest, (false, false));
            out.extend(w.reader);
            out.extend(w.writer);
        }
        out
    }

    /// Closes the reactor's fds now (for `loop.close()`); the fd table is locked meanwhile so
    /// no registration races the close.
    pub fn close_reactor(&self) {
        let _io = lock(&self.io);
        self.reactor.close();
    }

    /// Drops cancelled timers off the top of the heap and returns the deadline of the first
    /// live one.
    pub fn next_deadline(&self) -> Option<f64> {
        let mut garbage = Vec::new();
        let when = {
            let mut t = lock(&self.timers);
            t.drop_cancelled(&mut garbage);
            t.first_deadline()
        };
        drop(garbage);
        when
    }

    /// Seconds until the next step has work: `Some(0.0)` if callbacks are ready or the loop
    /// is stopping, the time to the first timer, or `None` if nothing is scheduled.
    pub fn time_until_next(&self) -> Option<f64> {
        if self.ready_len() > 0 || self.is_stopping() {
            return Some(0.0);
        }
        let when = self.next_deadline()?;
        Some(clamp_timeout(when - self.time()))
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        lock(&self.stats).snapshot()
    }

    /// Resets the statistics.
    pub fn reset_stats(&self) {
        *lock(&self.stats) = StatsState::default();
    }

    /// One iteration, exactly asyncio 3.11's `BaseEventLoop._run_once`:
    /// 1. drop cancelled timers (compaction rule, else pop cancelled heads);
    /// 2. poll timeout: 0 if callbacks are ready or the loop is stopping, else time to the first
    ///    timer clamped to `[0, 86400]` s, else block; `max_wait` bounds it from above;
    /// 3. poll, and append every ready reader/writer to the ready queue;
    /// 4. move every timer with `deadline < now + resolution` to the ready queue;
    /// 5. run the callbacks that are ready at this point, and only those.
    pub fn run_once<R: Runner<C>>(
        &self,
        max_wait: Option<Duration>,
        runner: &mut R,
    ) -> std::result::Result<Step, R::Error> {
        let mut step = Step::default();
        let step_start = self.time();

        // 1. Drop cancelled timers; they are dropped here, outside the lock.
        let first_deadline = self.next_deadline();

        // 2. The poll timeout. `begin_wait` is published before the ready queue is checked,
        // so a thread that pushes after our check sees `polling` and wakes us.
        self.reactor.begin_wait();
        let mut timeout: Option<f64> =
            if self.ready_len() > 0 || self.is_stopping() || runner.has_pending() {
                Some(0.0)
            } else if let Some(when) = first_deadline {
                if self.clock.is_virtual() {
                    // Virtual time does not pass while we wait: with autojump, look for I/O
                    // without blocking and jump after; without it, only I/O or a wake ends the wait.
                    if self.clock.autojump() {
                        Some(0.0)
                    } else {
                        None
                    }
                } else {
                    Some(clamp_timeout(when - step_start))
                }
            } else {
                None
            };
        if let Some(cap) = max_wait {
            let cap = cap.as_secs_f64();
            timeout = Some(timeout.map_or(cap, |t| t.min(cap)));
        }

        // 3. Poll. A zero timeout does not give up the GIL (nothing can block), and with no
        // fd watched it makes no syscall at all: the poll could only report a wake-up, and
        // whatever woke us is already in the ready queue.
        let zero = timeout == Some(0.0);
        let mut polled_at = step_start;
        if zero && !self.reactor.wake_pending() && lock(&self.io).is_empty() {
            self.reactor.cancel_wait();
            runner.after_poll();
        } else {
            // A huge `max_wait` (e.g. `Duration::MAX`) does not fit back into a `Duration`
            // after the round trip through `f64`: saturate instead of panicking.
            let wait = timeout.map(|t| Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX));
            let mut events = std::mem::take(&mut *lock(&self.events));
            let reactor = &self.reactor;
            let res = if zero {
                reactor.wait(wait, &mut events)
            } else {
                runner.blocking(|| reactor.wait(wait, &mut events))
            };
            polled_at = self.time();
            step.poll_time = secs(polled_at - step_start);
            match res {
                Ok(n) => step.io_events = n,
                Err(e) => {
                    events.clear();
                    *lock(&self.events) = events;
                    runner.poll_failed(e)?;
                    events = std::mem::take(&mut *lock(&self.events));
                }
            }
            runner.after_poll();
            self.dispatch_io(&mut events);
            *lock(&self.events) = events;
        }

        // Autojump: nothing ready and no I/O: jump the virtual clock to the first timer.
        if self.clock.autojump() && step.io_events == 0 && self.ready_len() == 0 {
            if let Some(when) = first_deadline {
                self.clock.jump_to(when);
                polled_at = self.time();
            }
        }

        // 4. Move due timers to the ready queue, in heap order.
        if first_deadline.is_some() {
            let end_time = polled_at + self.resolution;
            let mut lags = Vec::new();
            {
                let mut timers = lock(&self.timers);
                let mut ready = lock(&self.ready);
                while let Some((when, cb)) = timers.pop_due(end_time) {
                    lags.push(polled_at - when);
                    ready.push_back(cb);
                }
            }
            step.timers = lags.len();
            if !lags.is_empty() {
                let mut stats = lock(&self.stats);
                for lag in lags {
                    stats.record_lag(lag);
                }
            }
        }

        // 5. Run exactly the callbacks ready now; what they schedule runs next time.
        let ntodo = self.ready_len();
        let run_start = polled_at;
        let mut last = run_start;
        let mut max_cb: f64 = 0.0;
        let timed = runner.timed();
        let mut failed = None;
        for _ in 0..ntodo {
            let Some(cb) = lock(&self.ready).pop_front() else {
                break; // the loop was cleared (closed) by a callback
            };
            if cb.is_cancelled() {
                continue;
            }
            let res = runner.run(&cb);
            step.callbacks += 1;
            if timed {
                let now = self.time();
                let dt = now - last;
                last = now;
                max_cb = max_cb.max(dt);
                runner.ran(&cb, dt);
            }
            drop(cb);
            if let Err(e) = res {
                failed = Some(e);
                break;
            }
        }
        if (!timed || failed.is_some()) && step.callbacks > 0 {
            last = self.time();
        }
        step.run_time = secs(last - run_start);
        lock(&self.stats).record_iteration(&step, max_cb, last - step_start);
        if let Some(e) = failed {
            return Err(e);
        }
        step.pending = self.ready_len();
        step.next_deadline = lock(&self.timers).first_deadline();
        Ok(step)
    }

    /// Step 3's second half: queue the watchers of ready fds (asyncio's `_process_events`).
    /// A cancelled watcher is unregistered instead.
    fn dispatch_io(&self, events: &mut Vec<Readiness>) {
        if events.is_empty() {
            return;
        }
        let mut dead: Vec<(RawFd, bool)> = Vec::new();
        {
            let io = lock(&self.io);
            let mut ready = lock(&self.ready);
            for ev in events.iter() {
                let Some(w) = io.get(ev.fd) else { continue };
                for (hit, slot, write) in [(ev.read, &w.reader, false), (ev.write, &w.writer, true)]
                {
                    if let (true, Some(cb)) = (hit, slot) {
                        if cb.is_cancelled() {
                            dead.push((ev.fd, write));
                        } else {
                            ready.push_back(cb.clone());
                        }
                    }
                }
            }
        }
        events.clear();
        for (fd, write) in dead {
            let old = self.set_watcher(fd, write, None);
            drop(old);
        }
    }
}
