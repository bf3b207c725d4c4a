//! [`Core`]: the iteration machinery shared by the Rust [`EventLoop`](crate::EventLoop) and the
//! Python binding, generic over the callback type.
//!
//! Locking rule: every lock is held only for a queue operation; no callback, no drop of a
//! callback (which may run arbitrary destructors that schedule more work) and no poll happens
//! while a queue lock is held. Removed callbacks are handed back to the caller to drop.

use parking_lot::lock_api::{Mutex, MutexGuard, RawMutex};
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::reactor::{IoTable, Reactor, Readiness};
use crate::stats::StatsState;
use crate::timer::{TieBreak, TimerHeap};
use crate::{Clock, Result, Stats, Step};

/// asyncio's `MAXIMUM_SELECT_TIMEOUT`: the longest single poll, one day.
///
/// ```
/// assert_eq!(steploop::MAX_POLL_TIMEOUT, 86400.0);
/// ```
pub const MAX_POLL_TIMEOUT: f64 = 24.0 * 3600.0;

/// What the core needs to know about a scheduled callback.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// /// A callback for the core: a closure and a cancel flag.
/// #[derive(Clone)]
/// struct Cb(Rc<dyn Fn()>, Rc<Cell<bool>>);
///
/// impl steploop::Callback for Cb {
///     fn is_cancelled(&self) -> bool {
///         self.1.get()
///     }
/// }
///
/// let cb = Cb(Rc::new(|| println!("hi")), Rc::new(Cell::new(false)));
/// let core = steploop::Core::new(steploop::Clock::monotonic(), steploop::TieBreak::Fifo)?;
/// core.push_ready(cb.clone());
/// cb.1.set(true); // cancelled: the core skips it
/// assert_eq!(core.ready_len(), 1);
/// # Ok::<(), steploop::Error>(())
/// ```
pub trait Callback: Clone {
    /// Whether the callback was cancelled (it is then skipped, or dropped from the heap).
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// let (a, b) = (job("a"), job("b"));
    /// core.push_ready(a.clone());
    /// core.push_ready(b);
    /// a.1.set(true);
    /// let mut log = Log::default();
    /// let step = core.run_once(Some(std::time::Duration::ZERO), &mut log)?;
    /// assert_eq!(log.0, ["b"]); // the cancelled one was skipped, and not counted
    /// assert_eq!(step.callbacks, 1);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    fn is_cancelled(&self) -> bool;
    /// Called when a timer leaves the heap (came due, dropped as cancelled, or cleared).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use steploop::{Callback, Clock, Core, Runner, TieBreak};
    ///
    /// /// A timer callback that knows whether it is still in the heap.
    /// #[derive(Clone)]
    /// struct Timer(Rc<Cell<bool>>);
    /// impl Callback for Timer {
    ///     fn is_cancelled(&self) -> bool {
    ///         false
    ///     }
    ///     fn unscheduled(&self) {
    ///         self.0.set(false);
    ///     }
    /// }
    /// struct Nop;
    /// impl Runner<Timer> for Nop {
    ///     type Error = std::io::Error;
    ///     fn run(&mut self, _: &Timer) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    ///     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    ///         Err(e)
    ///     }
    /// }
    /// let core = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// let scheduled = Rc::new(Cell::new(true));
    /// core.push_timer(core.time() - 1.0, Timer(scheduled.clone()));
    /// core.run_once(Some(std::time::Duration::ZERO), &mut Nop)?;
    /// assert!(!scheduled.get()); // left the heap when it came due
    /// # Ok::<(), steploop::Error>(())
    /// ```
    fn unscheduled(&self) {}
}

/// How a loop runs its callbacks and waits; lets the binding release the GIL around the poll
/// and turn errors into Python exceptions.
///
/// ```
/// use steploop::{Callback, Clock, Core, Runner, TieBreak};
///
/// #[derive(Clone)]
/// struct Job(u32);
/// impl Callback for Job {
///     fn is_cancelled(&self) -> bool {
///         false
///     }
/// }
///
/// /// Runs jobs by adding them up; stops the iteration at a zero.
/// #[derive(Default)]
/// struct Sum(u32);
/// impl Runner<Job> for Sum {
///     type Error = &'static str;
///     fn run(&mut self, cb: &Job) -> Result<(), &'static str> {
///         if cb.0 == 0 {
///             return Err("zero");
///         }
///         self.0 += cb.0;
///         Ok(())
///     }
///     fn poll_failed(&mut self, _: std::io::Error) -> Result<(), &'static str> {
///         Err("poll failed")
///     }
/// }
///
/// let core = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
/// for n in [1, 2, 0, 4] {
///     core.push_ready(Job(n));
/// }
/// let mut sum = Sum::default();
/// assert_eq!(core.run_once(None, &mut sum), Err("zero"));
/// assert_eq!(sum.0, 3);
/// assert_eq!(core.ready_len(), 1); // the 4 stays queued
/// # Ok::<(), steploop::Error>(())
/// ```
pub trait Runner<C> {
    /// The error a callback or the poll can end the iteration with.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// // `Log` uses `std::io::Error`; the Python binding uses `PyErr`.
    /// let mut log = Log::default();
    /// let res: Result<steploop::Step, std::io::Error> = core.run_once(Some(std::time::Duration::ZERO), &mut log);
    /// assert!(res.is_ok());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    type Error;
    /// Runs one callback. An `Err` ends the iteration at once and reaches the caller of
    /// `run_once`; the callbacks not yet run stay in the ready queue.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.push_ready(job("a"));
    /// core.push_ready(job("b"));
    /// let mut log = Log::default();
    /// core.run_once(Some(std::time::Duration::ZERO), &mut log)?;
    /// assert_eq!(log.0, ["a", "b"]); // `run` was called once per callback, in order
    /// # Ok::<(), steploop::Error>(())
    /// ```
    fn run(&mut self, cb: &C) -> std::result::Result<(), Self::Error>;
    /// Runs the blocking poll `f` (the binding releases the GIL here).
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// /// Counts the blocking polls (the binding releases the GIL around them instead).
    /// #[derive(Default)]
    /// struct Blocking(u32);
    /// impl Runner<Job> for Blocking {
    ///     type Error = std::io::Error;
    ///     fn run(&mut self, _: &Job) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    ///     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    ///         Err(e)
    ///     }
    ///     fn blocking<T: Send>(&mut self, f: impl FnOnce() -> T + Send) -> T {
    ///         self.0 += 1;
    ///         f()
    ///     }
    /// }
    /// let mut r = Blocking::default();
    /// core.run_once(Some(std::time::Duration::from_millis(1)), &mut r)?; // may block: counted
    /// core.push_ready(job("a"));
    /// core.run_once(None, &mut r)?; // callbacks ready: zero timeout, not "blocking"
    /// assert_eq!(r.0, 1);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    fn blocking<T: Send>(&mut self, f: impl FnOnce() -> T + Send) -> T {
        f()
    }
    /// The poll failed with `e` (`EINTR` included: check for signals here).
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.close_reactor(); // every poll fails from now on
    /// let mut log = Log::default();
    /// // Nothing ready: the core polls, the poll fails, `poll_failed` turns it into the error.
    /// assert!(core.run_once(Some(std::time::Duration::from_millis(1)), &mut log).is_err());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    fn poll_failed(&mut self, e: io::Error) -> std::result::Result<(), Self::Error>;
    /// Whether work is waiting outside the core's queues (e.g. a cross-thread queue): checked
    /// after the loop has published that it is about to poll, so the poll does not block.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// /// Work waits in a queue of its own: the poll must not block.
    /// struct Outside;
    /// impl Runner<Job> for Outside {
    ///     type Error = std::io::Error;
    ///     fn run(&mut self, _: &Job) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    ///     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    ///         Err(e)
    ///     }
    ///     fn has_pending(&mut self) -> bool {
    ///         true
    ///     }
    /// }
    /// let t0 = std::time::Instant::now();
    /// core.run_once(Some(std::time::Duration::from_secs(5)), &mut Outside)?;
    /// assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    fn has_pending(&mut self) -> bool {
        false
    }
    /// Called when a wait's busy polling (see [`BusyPoll`](crate::BusyPoll)) found nothing
    /// and the thread is about to block for the rest of it, outside
    /// [`blocking`](Self::blocking): the binding runs the handlers of signals that arrived
    /// while it spun here, since only a blocking poll is interrupted by them. An `Err` ends
    /// the iteration with no events, as `poll_failed` can. Work it schedules keeps the
    /// poll from blocking.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// /// Counts the waits whose spin found nothing.
    /// struct Sleepy(u32);
    /// impl Runner<Job> for Sleepy {
    ///     type Error = std::io::Error;
    ///     fn run(&mut self, _: &Job) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    ///     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    ///         Err(e)
    ///     }
    ///     fn before_block(&mut self) -> std::io::Result<()> {
    ///         self.0 += 1;
    ///         Ok(())
    ///     }
    /// }
    /// core.reactor().set_busy_poll(std::time::Duration::from_secs(1));
    /// let mut r = Sleepy(0);
    /// for _ in 0..3 {
    ///     core.run_once(Some(std::time::Duration::from_millis(1)), &mut r)?;
    /// }
    /// // The first wait blocked at once; the next two spun 10 and 20 µs, then blocked.
    /// assert_eq!(r.0, 2);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    fn before_block(&mut self) -> std::result::Result<(), Self::Error> {
        Ok(())
    }
    /// Called right after the poll, before fd events and timers are queued (e.g. to move a
    /// cross-thread queue into the ready queue).
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// /// Moves work from elsewhere into the ready queue right after the poll.
    /// struct Feed<'a>(&'a Core<Job>, Vec<&'static str>);
    /// impl Runner<Job> for Feed<'_> {
    ///     type Error = std::io::Error;
    ///     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    ///         self.1.push(cb.0);
    ///         Ok(())
    ///     }
    ///     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    ///         Err(e)
    ///     }
    ///     fn after_poll(&mut self) {
    ///         self.0.push_ready(job("fed"));
    ///     }
    /// }
    /// let mut feed = Feed(&core, Vec::new());
    /// core.run_once(Some(std::time::Duration::ZERO), &mut feed)?;
    /// assert_eq!(feed.1, ["fed"]); // queued before step 5 counted the ready callbacks
    /// # Ok::<(), steploop::Error>(())
    /// ```
    fn after_poll(&mut self) {}
    /// Whether [`Runner::after_poll`] may add callbacks to the ready queue (it may, by
    /// default). A runner whose `after_poll` never does lets an iteration that does not poll
    /// (callbacks ready, no timer, no fd watched) take its batch in its first critical
    /// section, instead of locking the queues a second time for it.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// /// Has nothing to move into the ready queue after a poll.
    /// struct Plain(Vec<&'static str>);
    /// impl Runner<Job> for Plain {
    ///     type Error = std::io::Error;
    ///     const AFTER_POLL_QUEUES: bool = false;
    ///     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    ///         self.0.push(cb.0);
    ///         Ok(())
    ///     }
    ///     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    ///         Err(e)
    ///     }
    /// }
    /// core.push_ready(job("a"));
    /// let mut r = Plain(Vec::new());
    /// core.run_once(None, &mut r)?;
    /// assert_eq!(r.0, ["a"]);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    const AFTER_POLL_QUEUES: bool = true;
    /// Whether each callback is timed (for `ran`, slow-callback reports and
    /// `Stats::max_callback_time`); untimed iterations read the clock twice in all.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// /// Not timed: `ran` is never called, two clock reads per iteration in all.
    /// struct Untimed(u32);
    /// impl Runner<Job> for Untimed {
    ///     type Error = std::io::Error;
    ///     fn run(&mut self, _: &Job) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    ///     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    ///         Err(e)
    ///     }
    ///     fn timed(&self) -> bool {
    ///         false
    ///     }
    ///     fn ran(&mut self, _: &Job, _: f64) {
    ///         self.0 += 1;
    ///     }
    /// }
    /// core.push_ready(job("a"));
    /// let mut r = Untimed(0);
    /// core.run_once(Some(std::time::Duration::ZERO), &mut r)?;
    /// assert_eq!(r.0, 0);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    fn timed(&self) -> bool {
        true
    }
    /// Called after each timed callback with its duration in seconds.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// /// Reports callbacks slower than 1 ms (what the slow-callback warning is made of).
    /// #[derive(Default)]
    /// struct Slow(Vec<&'static str>);
    /// impl Runner<Job> for Slow {
    ///     type Error = std::io::Error;
    ///     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    ///         if cb.0 == "slow" {
    ///             std::thread::sleep(std::time::Duration::from_millis(2));
    ///         }
    ///         Ok(())
    ///     }
    ///     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    ///         Err(e)
    ///     }
    ///     fn ran(&mut self, cb: &Job, seconds: f64) {
    ///         if seconds >= 0.001 {
    ///             self.0.push(cb.0);
    ///         }
    ///     }
    /// }
    /// core.push_ready(job("fast"));
    /// core.push_ready(job("slow"));
    /// let mut r = Slow::default();
    /// core.run_once(Some(std::time::Duration::ZERO), &mut r)?;
    /// assert_eq!(r.0, ["slow"]);
    /// # Ok::<(), steploop::Error>(())
    /// ```
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
/// loop's thread; `parking_lot` makes that a single compare-and-swap, with no poisoning (and
/// a core whose user serialises every call to it some other way can make it less, see
/// [`Core::with_lock`]).
#[inline]
fn lock<L: RawMutex, T>(m: &Mutex<L, T>) -> MutexGuard<'_, L, T> {
    m.lock()
}

/// The queues of a loop, under one lock: one compare-and-swap pair per queue operation, and an
/// iteration takes it only a handful of times (locked atomics dominate a busy loop's cost).
#[derive(Debug)]
struct Queues<C> {
    /// FIFO of callbacks ready to run. Pushed by any scheduling call, popped by step 5.
    ready: VecDeque<C>,
    /// Pending timers.
    timers: TimerHeap<C>,
    /// fd watchers; the reactor's epoll set mirrors its interests.
    io: IoTable<C>,
    stats: StatsState,
    /// Reused buffer for poll results (taken out for the poll).
    events: Vec<Readiness>,
    /// An empty ready buffer: step 5 swaps it with `ready` to take its batch, and puts it
    /// back empty. `None` while an iteration holds it (a nested iteration, run from one of
    /// its callbacks, starts a buffer of its own).
    spare: Option<VecDeque<C>>,
}

impl<C> Queues<C> {
    /// Takes the ready queue out as the batch step 5 runs; the spare buffer takes new work.
    /// No allocation once the two buffers exist.
    #[inline]
    fn take_batch(&mut self) -> VecDeque<C> {
        let spare = self.spare.take().unwrap_or_default();
        std::mem::replace(&mut self.ready, spare)
    }
}

/// The engine state of one loop: ready queue, timers, fd table, reactor, clock, statistics.
///
/// ```
/// # use std::{cell::Cell, rc::Rc};
/// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
/// # #[derive(Clone)]
/// # struct Job(&'static str, Rc<Cell<bool>>);
/// # impl Callback for Job {
/// #     fn is_cancelled(&self) -> bool {
/// #         self.1.get()
/// #     }
/// # }
/// # fn job(name: &'static str) -> Job {
/// #     Job(name, Rc::new(Cell::new(false)))
/// # }
/// # #[derive(Default)]
/// # struct Log(Vec<&'static str>);
/// # impl Runner<Job> for Log {
/// #     type Error = std::io::Error;
/// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
/// #         self.0.push(cb.0);
/// #         Ok(())
/// #     }
/// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
/// #         Err(e)
/// #     }
/// # }
/// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
/// // Schedule: a timer due now, then a ready callback.
/// core.push_timer(core.time(), job("timer"));
/// core.push_ready(job("soon"));
/// let mut log = Log::default();
/// let step = core.run_once(None, &mut log)?;
/// // Ready callbacks first, then the timers that came due in this iteration.
/// assert_eq!(log.0, ["soon", "timer"]);
/// assert_eq!((step.callbacks, step.timers, step.pending), (2, 1, 0));
/// # Ok::<(), steploop::Error>(())
/// ```
///
/// `L` is the lock around the queues: `parking_lot`'s by default (see [`Core::with_lock`]).
pub struct Core<C, L: RawMutex = parking_lot::RawMutex> {
    /// Ready queue, timers, fd table and statistics. Never held across a callback, a drop of
    /// a callback or a poll.
    q: Mutex<L, Queues<C>>,
    reactor: Reactor,
    /// Set by `stop()`, cleared by the caller of `run_forever` when it returns.
    stopping: AtomicBool,
    /// Bumped by `clear()`, so an iteration running its batch notices a close.
    epoch: AtomicU64,
    clock: Clock,
    resolution: f64,
    /// When the last iteration ended (`f64` bits; NaN before the first), for
    /// [`Core::run_once_continuing`]; while `clock_stale`, the last clock read, after which
    /// continuing iterations ran callbacks without reading the clock.
    last_end: AtomicU64,
    /// Continuing iterations with no timer, no poll and no timing ran since `last_end` and
    /// did not read the clock at their end: the next iteration that needs the time (or
    /// [`Core::stats`]) reads it and counts the whole span as busy, since no poll happened
    /// in it.
    clock_stale: AtomicBool,
}

/// Where an iteration's clock starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// A fresh clock read (`run_once`), or the end of the previous iteration
    /// (`run_once_continuing`; `continuing` allows skipping the end-of-iteration read).
    Known { at: f64, continuing: bool },
    /// `run_once_continuing` after iterations that did not read the clock: the time of the
    /// last read, earlier than now by the callbacks run since.
    Stale(f64),
}

/// What step 1 of an iteration found, for the steps after it.
#[derive(Clone, Copy, Debug)]
struct First {
    /// The earliest pending timer's deadline (cancelled heads dropped).
    deadline: Option<f64>,
    /// Callbacks are ready.
    has_work: bool,
    /// No fd is watched.
    nothing_watched: bool,
}

/// An iteration's start time, as it may be brought up to date before a poll or timers need it.
#[derive(Debug)]
struct Span {
    /// When the iteration started, as far as it knows.
    step_start: f64,
    /// `step_start` is the last clock read, earlier than now by callbacks run since (see
    /// `Core::clock_stale`).
    stale: bool,
    /// Busy time found by a refresh: the callbacks run before this iteration since the last
    /// clock read, added to this iteration's run time.
    carried: f64,
}

impl<C: std::fmt::Debug, L: RawMutex> std::fmt::Debug for Core<C, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("q", &self.q)
            .field("reactor", &self.reactor)
            .field("stopping", &self.stopping)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Span {
    /// Reads the clock if `step_start` is stale.
    fn refresh<C: Callback, L: RawMutex>(&mut self, core: &Core<C, L>) {
        if self.stale {
            let now = core.time();
            self.carried += now - self.step_start;
            self.step_start = now;
            self.stale = false;
        }
    }
}

impl<C: Callback> Core<C> {
    /// A core on `clock`, with equal deadlines ordered by `tie`.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// let virtual_core: Core<Job> = Core::new(Clock::virtual_at(0.0, true), TieBreak::Asyncio)?;
    /// assert_eq!(virtual_core.time(), 0.0);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn new(clock: Clock, tie: TieBreak) -> Result<Self> {
        Core::with_lock(clock, tie)
    }
}

impl<C: Callback, L: RawMutex> Core<C, L> {
    /// A core on `clock` whose queues are guarded by the lock `L` instead of `parking_lot`'s
    /// mutex. For a user that already serialises every call to the core (the Python binding:
    /// the GIL) and can make `L` cheaper than an atomic compare-and-swap per queue
    /// operation. `L` must be a real mutual exclusion for the way the core is used: two
    /// threads in the core's critical sections at once is a data race.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// // `parking_lot`'s mutex, named: the same as `Core::new`.
    /// let core: Core<Job, steploop::DefaultLock> = Core::with_lock(Clock::monotonic(), TieBreak::Fifo)?;
    /// assert_eq!(core.ready_len(), 0);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn with_lock(clock: Clock, tie: TieBreak) -> Result<Self> {
        let resolution = clock.resolution();
        Ok(Core {
            q: Mutex::const_new(
                L::INIT,
                Queues {
                    ready: VecDeque::with_capacity(64),
                    timers: TimerHeap::new(tie),
                    io: IoTable::default(),
                    stats: StatsState::default(),
                    events: Vec::with_capacity(64),
                    spare: Some(VecDeque::with_capacity(64)),
                },
            ),
            reactor: Reactor::new()?,
            stopping: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            clock,
            resolution,
            last_end: AtomicU64::new(f64::NAN.to_bits()),
            clock_stale: AtomicBool::new(false),
        })
    }

    /// The loop's clock.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// assert!(!core.clock().is_virtual());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Current loop time in seconds.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// let t0 = core.time();
    /// std::thread::sleep(std::time::Duration::from_millis(1));
    /// assert!(core.time() - t0 >= 0.001);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    #[inline]
    pub fn time(&self) -> f64 {
        self.clock.now()
    }

    /// The clock resolution used in the due test (`deadline < now + resolution`).
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// assert!(core.resolution() > 0.0);
    /// // A timer is due when `deadline < now + resolution`: one due "now" runs in this step.
    /// core.push_timer(core.time(), job("now"));
    /// let mut log = Log::default();
    /// assert_eq!(core.run_once(Some(std::time::Duration::ZERO), &mut log)?.timers, 1);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn resolution(&self) -> f64 {
        self.resolution
    }

    /// The reactor (for wake-ups and the poll fd).
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// assert!(core.reactor().fd() >= 0);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// Appends `cb` to the ready queue.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.push_ready(job("a"));
    /// core.push_ready(job("b"));
    /// assert_eq!(core.ready_len(), 2);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    #[inline]
    pub fn push_ready(&self, cb: C) {
        lock(&self.q).ready.push_back(cb);
    }

    /// Appends `cb` to the ready queue and wakes the loop if it is blocked in a poll.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.push_ready_threadsafe(job("a"))?; // not polling: no wake-up needed
    /// assert_eq!(core.ready_len(), 1);
    /// assert!(!core.reactor().wake_pending());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn push_ready_threadsafe(&self, cb: C) -> Result<()> {
        self.push_ready(cb);
        self.reactor.wake()
    }

    /// Appends `cb` to the ready queue from outside the loop's callbacks (another thread, or
    /// a host between steps): the loop is woken, and the poll fd turns readable.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.push_ready_notify(job("a"))?;
    /// assert!(core.reactor().wake_pending()); // a host watching the poll fd sees it
    /// let mut log = Log::default();
    /// core.run_once(Some(std::time::Duration::ZERO), &mut log)?;
    /// assert_eq!(log.0, ["a"]);
    /// assert!(!core.reactor().wake_pending()); // consumed by the step's poll
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn push_ready_notify(&self, cb: C) -> Result<()> {
        self.push_ready(cb);
        self.reactor.notify()
    }

    /// Number of callbacks in the ready queue.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// assert_eq!(core.ready_len(), 0);
    /// core.push_ready(job("a"));
    /// assert_eq!(core.ready_len(), 1);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn ready_len(&self) -> usize {
        lock(&self.q).ready.len()
    }

    /// Schedules `cb` at loop time `when`.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.push_timer(core.time() + 60.0, job("later"));
    /// core.push_timer(core.time() - 1.0, job("overdue"));
    /// let mut log = Log::default();
    /// core.run_once(Some(std::time::Duration::ZERO), &mut log)?;
    /// assert_eq!(log.0, ["overdue"]);
    /// assert_eq!(core.timers_len(), 1);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn push_timer(&self, when: f64, cb: C) {
        lock(&self.q).timers.push(when, cb);
    }

    /// Records the cancellation of a timer that is still scheduled (for compaction).
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// let t = job("t");
    /// core.push_timer(core.time() + 60.0, t.clone());
    /// t.1.set(true); // the callback's own flag...
    /// core.timer_cancelled(); // ...and the count behind asyncio's compaction rule
    /// assert_eq!(core.next_deadline(), None); // dropped off the top of the heap
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn timer_cancelled(&self) {
        lock(&self.q).timers.note_cancelled();
    }

    /// Number of timers in the heap (cancelled ones not yet dropped included).
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.push_timer(core.time() + 60.0, job("t"));
    /// assert_eq!(core.timers_len(), 1);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn timers_len(&self) -> usize {
        lock(&self.q).timers.len()
    }

    /// Calls `f` on every ready callback, scheduled timer and fd watcher. Skips everything
    /// if the lock is taken (this is for the garbage collector's traversal, which must never
    /// block).
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.push_ready(job("a"));
    /// core.push_timer(core.time() + 60.0, job("b"));
    /// let mut names = Vec::new();
    /// core.for_each_pending(|j| names.push(j.0));
    /// assert_eq!(names, ["a", "b"]);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn for_each_pending(&self, mut f: impl FnMut(&C)) {
        if let Some(q) = self.q.try_lock() {
            q.ready.iter().for_each(&mut f);
            q.timers.iter().for_each(&mut f);
            q.io.for_each(&mut f);
        }
    }

    /// Sets (`Some`) or removes (`None`) the reader (`write == false`) or writer of `fd`.
    /// Returns the previous watcher, which the caller drops (or cancels) outside the lock.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// use std::os::fd::AsRawFd;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let fd = a.as_raw_fd();
    /// assert!(core.set_watcher(fd, true, Some(job("writer")))?.is_none());
    /// let mut log = Log::default();
    /// core.run_once(Some(std::time::Duration::ZERO), &mut log)?;
    /// assert_eq!(log.0, ["writer"]); // the socket is writable
    /// let old = core.set_watcher(fd, true, None)?; // removed: the old watcher comes back
    /// assert_eq!(old.map(|j| j.0), Some("writer"));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn set_watcher(&self, fd: RawFd, write: bool, cb: Option<C>) -> Result<Option<C>> {
        let mut q = lock(&self.q);
        if q.io.edge(fd).is_some() {
            if !write && cb.is_none() {
                // An edge reader goes: the registration stays for the next one (it reports
                // only new data, so nothing spins meanwhile).
                return Ok(q.io.set(fd, false, None));
            }
            // Another watcher: back to one level-triggered registration (`MOD` makes the
            // kernel look at the fd's readiness again, so nothing pending is missed).
            q.io.set_edge(fd, None);
            return self.to_level_triggered(&mut q.io, fd, write, cb);
        }
        let old_interest = q.io.interest(fd);
        let mut new_interest = old_interest;
        if write {
            new_interest.1 = cb.is_some();
        } else {
            new_interest.0 = cb.is_some();
        }
        let res = self.reactor.set_interest(fd, old_interest, new_interest);
        match res {
            Ok(()) => Ok(q.io.set(fd, write, cb)),
            Err(e) => {
                if cb.is_none() {
                    // Removal of a closed fd: forget it anyway, report the closure.
                    let old = q.io.set(fd, write, None);
                    drop(q);
                    drop(old);
                }
                Err(e)
            }
        }
    }

    /// Whether `fd` has a reader (`write == false`) or writer registered.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// use std::os::fd::AsRawFd;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// core.set_watcher(a.as_raw_fd(), false, Some(job("reader")))?;
    /// assert!(core.has_watcher(a.as_raw_fd(), false));
    /// assert!(!core.has_watcher(a.as_raw_fd(), true));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn has_watcher(&self, fd: RawFd, write: bool) -> bool {
        let (r, w) = lock(&self.q).io.interest(fd);
        if write {
            w
        } else {
            r
        }
    }

    /// Returns a clone of the reader or writer of `fd`.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// use std::os::fd::AsRawFd;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// core.set_watcher(a.as_raw_fd(), false, Some(job("reader")))?;
    /// assert_eq!(core.watcher(a.as_raw_fd(), false).map(|j| j.0), Some("reader"));
    /// assert!(core.watcher(a.as_raw_fd(), true).is_none());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn watcher(&self, fd: RawFd, write: bool) -> Option<C> {
        let q = lock(&self.q);
        let w = q.io.get(fd)?;
        if write {
            w.writer.clone()
        } else {
            w.reader.clone()
        }
    }

    /// Number of watched fds.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// use std::os::fd::AsRawFd;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// core.set_watcher(a.as_raw_fd(), false, Some(job("r")))?;
    /// core.set_watcher(a.as_raw_fd(), true, Some(job("w")))?;
    /// assert_eq!(core.watched_fds(), 1);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn watched_fds(&self) -> usize {
        lock(&self.q).io.len()
    }

    /// Asks the loop to stop after the current iteration.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.stop();
    /// assert!(core.is_stopping());
    /// // A stopping loop does not block in its poll, whatever is scheduled.
    /// let mut log = Log::default();
    /// core.run_once(None, &mut log)?;
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        // A stop from another thread must end a blocking poll.
        let _ = self.reactor.wake();
    }

    /// Whether `stop()` was called since the last reset.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// assert!(!core.is_stopping());
    /// core.stop();
    /// assert!(core.is_stopping());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    #[inline]
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Sets the stopping flag (`run_forever` clears it when it returns).
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.stop();
    /// core.set_stopping(false); // what `run_forever` does on its way out
    /// assert!(!core.is_stopping());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn set_stopping(&self, v: bool) {
        self.stopping.store(v, Ordering::Release);
    }

    /// Removes every callback, timer and fd watcher, returning them for the caller to drop.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.push_ready(job("a"));
    /// core.push_timer(core.time() + 60.0, job("b"));
    /// let removed = core.clear();
    /// assert_eq!(removed.len(), 2);
    /// assert_eq!((core.ready_len(), core.timers_len()), (0, 0));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn clear(&self) -> Vec<C> {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut q = lock(&self.q);
        let mut out: Vec<C> = q.ready.drain(..).collect();
        out.extend(q.timers.clear());
        for (fd, w) in q.io.drain() {
            let interest = (w.reader.is_some(), w.writer.is_some());
            let _ = self.reactor.set_interest(fd, interest, (false, false));
            out.extend(w.reader);
            out.extend(w.writer);
        }
        out
    }

    /// Closes the reactor's fds now (for `loop.close()`); the queues are locked meanwhile so
    /// no registration races the close.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.close_reactor();
    /// assert!(core.reactor().is_closed());
    /// assert!(matches!(
    ///     core.set_watcher(0, false, Some(job("r"))),
    ///     Err(steploop::Error::Closed)
    /// ));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn close_reactor(&self) {
        let _q = lock(&self.q);
        self.reactor.close();
    }

    /// Drops cancelled timers off the top of the heap and returns the deadline of the first
    /// live one.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// assert_eq!(core.next_deadline(), None);
    /// let when = core.time() + 60.0;
    /// core.push_timer(when, job("t"));
    /// assert_eq!(core.next_deadline(), Some(when));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn next_deadline(&self) -> Option<f64> {
        let mut garbage = Vec::new();
        let when = {
            let mut q = lock(&self.q);
            q.timers.drop_cancelled(&mut garbage);
            q.timers.first_deadline()
        };
        drop(garbage);
        when
    }

    /// Seconds until the next step has work: `Some(0.0)` if callbacks are ready or the loop
    /// is stopping, the time to the first timer, or `None` if nothing is scheduled.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// assert_eq!(core.time_until_next(), None);
    /// core.push_timer(core.time() + 60.0, job("t"));
    /// assert!(core.time_until_next().unwrap() > 59.0);
    /// core.push_ready(job("a"));
    /// assert_eq!(core.time_until_next(), Some(0.0));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn time_until_next(&self) -> Option<f64> {
        if self.ready_len() > 0 || self.is_stopping() {
            return Some(0.0);
        }
        let when = self.next_deadline()?;
        Some(clamp_timeout(when - self.time()))
    }

    /// A snapshot of the statistics.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.push_ready(job("a"));
    /// let mut log = Log::default();
    /// core.run_once(Some(std::time::Duration::ZERO), &mut log)?;
    /// let s = core.stats();
    /// assert_eq!((s.iterations, s.callbacks), (1, 1));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        // Back-to-back iterations that skipped their clock read: all the time since the
        // last read went to callbacks (see `clock_stale`).
        let unaccounted = if self.clock_stale.load(Ordering::Relaxed) {
            (self.time() - f64::from_bits(self.last_end.load(Ordering::Relaxed))).max(0.0)
        } else {
            0.0
        };
        let mut s = lock(&self.q).stats.snapshot(unaccounted);
        (s.busy_polls, s.busy_poll_hits) = self.reactor.busy_poll_counts();
        s
    }

    /// Resets the statistics.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// let mut log = Log::default();
    /// core.run_once(Some(std::time::Duration::ZERO), &mut log)?;
    /// core.reset_stats();
    /// assert_eq!(core.stats().iterations, 0);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn reset_stats(&self) {
        let mut q = lock(&self.q);
        q.stats = StatsState::default();
        self.reactor.reset_busy_poll_counts();
        if self.clock_stale.load(Ordering::Relaxed) {
            // The busy span before the reset is not the new statistics' business.
            self.last_end
                .store(self.time().to_bits(), Ordering::Relaxed);
        }
    }

    /// One iteration, exactly asyncio 3.11's `BaseEventLoop._run_once`:
    /// 1. drop cancelled timers (compaction rule, else pop cancelled heads);
    /// 2. poll timeout: 0 if callbacks are ready or the loop is stopping, else time to the first
    ///    timer clamped to `[0, 86400]` s, else block; `max_wait` bounds it from above;
    /// 3. poll, and append every ready reader/writer to the ready queue;
    /// 4. move every timer with `deadline < now + resolution` to the ready queue;
    /// 5. run the callbacks that are ready at this point, and only those.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// # let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// core.push_ready(job("a"));
    /// let mut log = Log::default();
    /// let step = core.run_once(None, &mut log)?; // callbacks ready: does not block
    /// assert_eq!(step.callbacks, 1);
    /// // Nothing scheduled: the bound is the only limit on the wait.
    /// let idle = core.run_once(Some(std::time::Duration::from_millis(1)), &mut log)?;
    /// assert_eq!(idle.callbacks, 0);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn run_once<R: Runner<C>>(
        &self,
        max_wait: Option<Duration>,
        runner: &mut R,
    ) -> std::result::Result<Step, R::Error> {
        let start = Start::Known {
            at: self.time(),
            continuing: false,
        };
        self.run_once_at(start, max_wait, runner)
    }

    /// [`Core::run_once`] for a driver that runs iterations back to back (`run_forever`):
    /// the iteration starts at the time the previous one ended instead of reading the clock
    /// again. A clock read costs as much as a third of a one-callback iteration on some
    /// machines (70 ns on a VM); what it misses is only the driver's own bookkeeping between
    /// the two calls. With a virtual clock (which another thread may advance between
    /// iterations) or before any iteration, this is `run_once`.
    ///
    /// An iteration that needs no time at all — no timer scheduled, no poll (callbacks
    /// ready, no fd watched), no per-callback timing, not stopping, no callback failed —
    /// does not read the clock at its end either: the next iteration that needs the time
    /// reads it and counts everything since the last read as busy time (nothing polled in
    /// between), so [`Core::stats`] stays exact; only the [`Step::run_time`] of such an
    /// iteration is 0. The iteration that sees the stop flag always reads the clock, so a
    /// driver that returns on `is_stopping()` leaves nothing unaccounted.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// let mut log = Log::default();
    /// core.push_ready(job("a"));
    /// core.run_once(Some(std::time::Duration::ZERO), &mut log)?;
    /// core.push_timer(core.time() - 1.0, job("due"));
    /// core.run_once_continuing(Some(std::time::Duration::ZERO), &mut log)?;
    /// assert_eq!(log.0, ["a", "due"]);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn run_once_continuing<R: Runner<C>>(
        &self,
        max_wait: Option<Duration>,
        runner: &mut R,
    ) -> std::result::Result<Step, R::Error> {
        let last = f64::from_bits(self.last_end.load(Ordering::Relaxed));
        let start = if self.clock.is_virtual() || last.is_nan() {
            Start::Known {
                at: self.time(),
                continuing: false,
            }
        } else if self.clock_stale.load(Ordering::Relaxed) {
            Start::Stale(last)
        } else {
            Start::Known {
                at: last,
                continuing: true,
            }
        };
        self.run_once_at(start, max_wait, runner)
    }

    fn run_once_at<R: Runner<C>>(
        &self,
        start: Start,
        max_wait: Option<Duration>,
        runner: &mut R,
    ) -> std::result::Result<Step, R::Error> {
        let mut step = Step::default();
        let (step_start, continuing, stale) = match start {
            Start::Known { at, continuing } => (at, continuing, false),
            Start::Stale(at) => (at, true, true),
        };
        // The iteration's wall time starts where the unaccounted span began.
        let wall_start = step_start;
        let mut span = Span {
            step_start,
            stale,
            carried: 0.0,
        };

        // 1. Drop cancelled timers (dropped after the lock is released), and look at what
        // is ready, in one critical section. When callbacks are ready and there is no timer,
        // no fd watched, no wake-up pending and nothing `after_poll` could add, steps 2 to 4
        // have nothing to do (the timeout is 0, the poll is skipped, no timer comes due): the
        // batch is taken here, in the same critical section.
        let mut garbage: Option<Vec<C>> = None;
        let mut early_batch: Option<VecDeque<C>> = None;
        let first = {
            let mut q = lock(&self.q);
            if !q.timers.is_empty() {
                let mut dropped = Vec::new();
                q.timers.drop_cancelled(&mut dropped);
                garbage = Some(dropped);
            }
            let first = First {
                deadline: q.timers.first_deadline(),
                has_work: !q.ready.is_empty(),
                nothing_watched: q.io.is_empty(),
            };
            if !R::AFTER_POLL_QUEUES
                && first.has_work
                && first.deadline.is_none()
                && first.nothing_watched
                && !self.reactor.wake_pending()
            {
                early_batch = Some(q.take_batch());
            }
            first
        };
        drop(garbage);
        let (mut batch, polled_at, polls) = match early_batch {
            Some(batch) => {
                // What steps 2 and 3 do when they skip the poll.
                runner.after_poll();
                (batch, span.step_start, false)
            }
            None => self.poll_and_collect(first, max_wait, runner, &mut step, &mut span)?,
        };
        let carried = span.carried;
        let mut stale = span.stale;

        // 5. Run exactly the callbacks ready now; what they schedule runs next time.
        let run_start = polled_at;
        let mut last = run_start;
        let mut max_cb: f64 = 0.0;
        let timed = runner.timed();
        let mut failed = None;
        let epoch = self.epoch.load(Ordering::Acquire);
        while let Some(cb) = batch.pop_front() {
            if self.epoch.load(Ordering::Relaxed) != epoch {
                // The loop was cleared (closed) by a callback: the rest goes with it.
                batch.push_front(cb);
                break;
            }
            if cb.is_cancelled() {
                continue;
            }
            // A panicking callback (Rust API) unwinds to the caller of `run_once`; the rest of
            // the batch goes back to the ready queue first, so the loop stays usable.
            let res =
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run(&cb))) {
                    Ok(res) => res,
                    Err(panic) => {
                        drop(cb);
                        let mut q = lock(&self.q);
                        while let Some(cb) = batch.pop_back() {
                            q.ready.push_front(cb);
                        }
                        drop(q);
                        std::panic::resume_unwind(panic);
                    }
                };
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
        let same_epoch = self.epoch.load(Ordering::Acquire) == epoch;
        let skip_read = continuing
            && !timed
            && failed.is_none()
            && first.deadline.is_none()
            && !polls
            && same_epoch
            && !self.is_stopping();
        if step.callbacks > 0 {
            if timed && failed.is_none() {
                stale = false; // `last` was read after the last callback
            } else if skip_read {
                stale = true; // `last` stays the start: callbacks ran since
            } else {
                last = self.time();
                stale = false;
            }
        }
        step.run_time = secs(last - run_start + carried);
        self.last_end.store(last.to_bits(), Ordering::Relaxed);
        self.clock_stale.store(stale, Ordering::Relaxed);
        // A close during the batch: what was not run goes the way of the cleared queues
        // (dropped below, outside the lock).
        let leftovers: Option<Vec<C>> = (!same_epoch).then(|| batch.drain(..).collect());
        let mut q = lock(&self.q);
        // After a callback raised: what it did not get to goes back to the head of the queue,
        // in order, as asyncio leaves it in `_ready`.
        while let Some(cb) = batch.pop_back() {
            q.ready.push_front(cb);
        }
        // Empty again: the next iteration's buffer (unless a nested iteration already put
        // one back; then this one goes, empty, so nothing runs under the lock).
        if q.spare.is_none() {
            q.spare = Some(batch);
        }
        q.stats
            .record_iteration(&step, max_cb, (!stale).then_some(last - wall_start));
        step.pending = q.ready.len();
        step.next_deadline = q.timers.first_deadline();
        drop(q);
        drop(leftovers);
        match failed {
            Some(e) => Err(e),
            None => Ok(step),
        }
    }

    /// Steps 2 to 4 of an iteration (see [`Core::run_once`]): the poll timeout, the poll and
    /// its events, the timers that came due; returns the batch step 5 runs, the time the
    /// callbacks start at and whether the poll ran.
    fn poll_and_collect<R: Runner<C>>(
        &self,
        first: First,
        max_wait: Option<Duration>,
        runner: &mut R,
        step: &mut Step,
        span: &mut Span,
    ) -> std::result::Result<(VecDeque<C>, f64, bool), R::Error> {
        let First {
            deadline: first_deadline,
            mut has_work,
            nothing_watched,
        } = first;
        has_work = has_work || self.is_stopping() || runner.has_pending();
        if first_deadline.is_some() {
            span.refresh(self);
        }

        // 2. The poll timeout. Only a wait that may block is published (`begin_wait`), and
        // the queues are checked again after it: a thread that pushed before the mark is
        // seen by that check, one that pushes after it sees the mark and wakes us.
        let mut published = false;
        if !has_work && max_wait != Some(Duration::ZERO) {
            self.reactor.begin_wait();
            published = true;
            has_work = self.ready_len() > 0 || self.is_stopping() || runner.has_pending();
        }
        let mut timeout: Option<f64> = if has_work {
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
                Some(clamp_timeout(when - span.step_start))
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
        let polls = !(zero && nothing_watched && !self.reactor.wake_pending());
        if polls {
            span.refresh(self);
        }
        let mut polled_at = span.step_start;
        if !polls {
            if published {
                self.reactor.cancel_wait();
            }
            runner.after_poll();
        } else {
            // A huge `max_wait` (e.g. `Duration::MAX`) does not fit back into a `Duration`
            // after the round trip through `f64`: saturate instead of panicking.
            let wait = timeout.map(|t| Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX));
            let mut events = std::mem::take(&mut lock(&self.q).events);
            let reactor = &self.reactor;
            let res = if zero {
                reactor.wait(wait, &mut events)
            } else if reactor.spin_window(wait).is_zero() {
                runner.blocking(|| reactor.wait(wait, &mut events))
            } else {
                // Busy polling: spin first; if nothing came, let the runner look around
                // (signals) before the thread sleeps, then block for the rest of the wait.
                match runner.blocking(|| reactor.spin(wait, &mut events)) {
                    Ok(Some(n)) => Ok(n),
                    Err(e) => Err(e),
                    Ok(None) => {
                        if let Err(e) = runner.before_block() {
                            reactor.cancel_wait();
                            lock(&self.q).events = events;
                            return Err(e);
                        }
                        if self.ready_len() > 0 || self.is_stopping() || runner.has_pending() {
                            reactor.wait(Some(Duration::ZERO), &mut events)
                        } else {
                            runner.blocking(|| reactor.wait(wait, &mut events))
                        }
                    }
                }
            };
            polled_at = self.time();
            step.poll_time = secs(polled_at - span.step_start);
            match res {
                Ok(n) => step.io_events = n,
                Err(e) => {
                    events.clear();
                    lock(&self.q).events = events;
                    runner.poll_failed(e)?;
                    events = std::mem::take(&mut lock(&self.q).events);
                }
            }
            runner.after_poll();
            self.dispatch_io(&mut events);
            lock(&self.q).events = events;
        }

        // Autojump: nothing ready and no I/O: jump the virtual clock to the first timer.
        if self.clock.autojump() && step.io_events == 0 && self.ready_len() == 0 {
            if let Some(when) = first_deadline {
                self.clock.jump_to(when);
                polled_at = self.time();
            }
        }

        // 4. Move due timers to the ready queue, in heap order; and take out what step 5 runs,
        // all in one critical section. What the callbacks schedule lands behind it, for the
        // next iteration.
        let mut q = lock(&self.q);
        if first_deadline.is_some() {
            let end_time = polled_at + self.resolution;
            let q = &mut *q;
            while let Some((when, cb)) = q.timers.pop_due(end_time) {
                // A cancelled timer still goes through the ready queue (asyncio appends
                // it and skips it there) but is not counted as come due.
                if !cb.is_cancelled() {
                    q.stats.record_lag(polled_at - when);
                    step.timers += 1;
                }
                q.ready.push_back(cb);
            }
        }
        // The ready buffer becomes the batch; the spare (empty) one takes new work. No
        // allocation, one lock for the whole batch.
        Ok((q.take_batch(), polled_at, polls))
    }

    /// Sets `fd`'s reader on an edge-triggered registration (`EPOLLET`) that outlives its
    /// readers: for waits that start right after a read found nothing (`sock_recv`). While
    /// the fd has no other watcher, the registration stays when the reader goes, and the next
    /// `set_reader_edge` with `reuse` costs no syscall at all (a level-triggered reader costs
    /// an add and a remove per wait).
    ///
    /// The caller promises two things: the fd would block when this is called (it has just
    /// seen `EAGAIN`), so any data from now on is reported; and its reader copes with a
    /// report that finds nothing (a report queued before the promise). `reuse` is the
    /// caller's word that `fd` still names the file it named when it last set an edge reader
    /// on it; without it the registration is made again (one `epoll_ctl`). Events of a
    /// registration a closed fd left behind in the kernel (a `dup` kept it alive, and the fd
    /// number was reused) carry an old tag and are dropped. With a writer or a
    /// level-triggered reader on the fd, this is [`Core::set_watcher`]. Returns the previous
    /// reader.
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, Clock, Core, Runner, TieBreak};
    /// # #[derive(Clone)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// # #[derive(Default)]
    /// # struct Log(Vec<&'static str>);
    /// # impl Runner<Job> for Log {
    /// #     type Error = std::io::Error;
    /// #     fn run(&mut self, cb: &Job) -> std::io::Result<()> {
    /// #         self.0.push(cb.0);
    /// #         Ok(())
    /// #     }
    /// #     fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
    /// #         Err(e)
    /// #     }
    /// # }
    /// let core: Core<Job> = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
    /// let (mut a, mut b) = UnixStream::pair()?;
    /// let fd = a.as_raw_fd();
    /// core.set_reader_edge(fd, job("first"), false)?; // registered: one syscall
    /// b.write_all(b"x")?;
    /// let mut log = Log::default();
    /// core.run_once(None, &mut log)?;
    /// a.read_exact(&mut [0])?;
    /// core.set_watcher(fd, false, None)?; // the reader goes, the registration stays
    /// core.set_reader_edge(fd, job("second"), true)?; // no syscall
    /// b.write_all(b"y")?;
    /// core.run_once(None, &mut log)?;
    /// assert_eq!(log.0, ["first", "second"]);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn set_reader_edge(&self, fd: RawFd, cb: C, reuse: bool) -> Result<Option<C>> {
        let mut q = lock(&self.q);
        let (reading, writing) = q.io.interest(fd);
        let edge = q.io.edge(fd);
        if writing || (reading && edge.is_none()) {
            drop(q);
            return self.set_watcher(fd, false, Some(cb));
        }
        // Past this point the fd's only watcher, if any, is an edge reader: a registration
        // is believed to exist exactly when `edge` is set (`arm_edge` copes if it is gone).
        if !(reuse && edge.is_some()) {
            let tag = q.io.next_tag();
            self.reactor.arm_edge(fd, tag, edge.is_some())?;
            q.io.set_edge(fd, Some(tag));
        }
        Ok(q.io.set(fd, false, Some(cb)))
    }

    /// Sets a watcher on an fd whose registration is edge-triggered, turning it
    /// into one level-triggered registration with the fd's resulting interest.
    fn to_level_triggered(
        &self,
        io: &mut IoTable<C>,
        fd: RawFd,
        write: bool,
        cb: Option<C>,
    ) -> Result<Option<C>> {
        let mut new = io.interest(fd);
        if write {
            new.1 = cb.is_some();
        } else {
            new.0 = cb.is_some();
        }
        self.reactor.reset_interest(fd, new)?;
        Ok(io.set(fd, write, cb))
    }

    /// Step 3's second half: queue the watchers of ready fds (asyncio's `_process_events`).
    /// A cancelled watcher is unregistered instead.
    fn dispatch_io(&self, events: &mut Vec<Readiness>) {
        if events.is_empty() {
            return;
        }
        let mut dead: Vec<(RawFd, bool)> = Vec::new();
        {
            let mut q = lock(&self.q);
            let q = &mut *q;
            let (io, ready) = (&q.io, &mut q.ready);
            for ev in events.iter() {
                if !io.is_current(ev.fd, ev.tag) {
                    continue; // a registration a closed fd left behind
                }
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
