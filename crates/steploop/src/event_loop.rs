//! [`EventLoop`]: the Rust face of the engine — scheduling, forced iteration, fd watchers,
//! futures.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::{Core, Runner};
use crate::handle::{Boxed, Cb, Handle, Job, Once, Repeat, TimerHandle};
use crate::remote::{Msg, Remote, Shared};
use crate::task::{Sleep, Task, TaskSlab};
use crate::timer::TieBreak;
use crate::{Clock, Error, Result, Stats, Step};

/// The slow-callback hook: called with the callback's description and how long it ran.
type SlowHook = Rc<dyn Fn(&str, Duration)>;

thread_local! {
    /// The loop running on this thread (innermost), for [`EventLoop::current`] and
    /// [`sleep`](crate::sleep).
    static CURRENT: RefCell<Option<Weak<LoopInner>>> = const { RefCell::new(None) };
}

/// The state behind an [`EventLoop`]. Everything here is touched by the loop's thread only,
/// except `shared` (the cross-thread queue, under its own lock).
pub(crate) struct LoopInner {
    pub(crate) core: Core<Cb>,
    pub(crate) shared: Arc<Shared>,
    /// Set while `run_once`, `run_forever`, `run_until_idle` or `block_on` runs.
    running: Cell<bool>,
    /// Reused buffer the cross-thread queue is swapped into.
    scratch: RefCell<Vec<Msg>>,
    /// Live tasks, by id (the target of `Msg::Wake`). Never borrowed while user code runs.
    pub(crate) tasks: RefCell<TaskSlab>,
    /// An `Instant` and the loop time read right after it: converts `call_at` deadlines
    /// (both clocks are `CLOCK_MONOTONIC`; the pair is off by the nanoseconds between reads).
    origin: (Instant, f64),
    /// Threshold (seconds) and hook of the slow-callback check.
    slow: RefCell<Option<(f64, SlowHook)>>,
}

/// The loop running on this thread, if any (what [`EventLoop::current`] returns).
pub(crate) fn current_inner() -> Option<Rc<LoopInner>> {
    CURRENT.with(|c| c.try_borrow().ok()?.as_ref()?.upgrade())
}

impl LoopInner {
    /// Moves the cross-thread queue into the ready queue, if it is not empty. Runs no user
    /// code (closures are wrapped, not called or dropped).
    pub(crate) fn drain_remote(&self) {
        if !self.shared.has_pending() {
            return;
        }
        let mut buf = std::mem::take(&mut *self.scratch.borrow_mut());
        self.shared.take_into(&mut buf);
        for msg in buf.drain(..) {
            match msg {
                Msg::Call(f, name) => self.core.push_ready(Cb(Boxed::new(f, name))),
                Msg::Wake(id) => {
                    let task = self.tasks.borrow().get(id);
                    if let Some(task) = task {
                        self.core.push_ready(Cb(task));
                    }
                }
            }
        }
        *self.scratch.borrow_mut() = buf;
    }

    /// Appends `job` to the ready queue, behind anything queued from other threads before.
    #[inline]
    pub(crate) fn push_ready(&self, job: Rc<dyn Job>) {
        self.drain_remote();
        self.core.push_ready(Cb(job));
    }

    /// Schedules `f` at loop time `when`.
    pub(crate) fn call_at_time<F: FnOnce() + 'static>(
        self: &Rc<Self>,
        when: f64,
        f: F,
    ) -> TimerHandle {
        let job: Rc<dyn Job> = Once::new(f, true);
        self.core.push_timer(when, Cb(job.clone()));
        TimerHandle {
            job,
            lp: Rc::downgrade(self),
            when,
        }
    }
}

impl Drop for LoopInner {
    fn drop(&mut self) {
        // Remotes see the loop gone from now on; then every pending closure and future is
        // cancelled (dropped), also those a user still holds a handle of.
        let queued = self.shared.close();
        let tasks = self.tasks.get_mut().drain();
        for t in &tasks {
            t.cancel();
        }
        let pending = self.core.clear();
        for cb in &pending {
            cb.0.cancel();
        }
        drop(pending);
        drop(tasks);
        drop(queued);
    }
}

/// Runs the core's iteration for the Rust loop: callbacks are called directly (a panic
/// unwinds to the caller of `run_once`), the cross-thread queue is drained after the poll,
/// and slow callbacks are reported to the hook.
struct LoopRunner<'a> {
    inner: &'a LoopInner,
    slow: Option<(f64, SlowHook)>,
}

impl Runner<Cb> for LoopRunner<'_> {
    type Error = Error;

    #[inline]
    fn run(&mut self, cb: &Cb) -> Result<()> {
        cb.0.run();
        Ok(())
    }

    fn poll_failed(&mut self, e: io::Error) -> Result<()> {
        if e.kind() == io::ErrorKind::Interrupted {
            Ok(())
        } else {
            Err(Error::Io(e))
        }
    }

    #[inline]
    fn has_pending(&mut self) -> bool {
        self.inner.shared.has_pending()
    }

    #[inline]
    fn after_poll(&mut self) {
        self.inner.drain_remote();
    }

    /// Callbacks are timed only while a slow-callback hook is set: two clock reads per
    /// iteration instead of one per callback otherwise.
    #[inline]
    fn timed(&self) -> bool {
        self.slow.is_some()
    }

    #[inline]
    fn ran(&mut self, cb: &Cb, seconds: f64) {
        if let Some((threshold, hook)) = &self.slow {
            if seconds >= *threshold {
                hook(cb.0.describe(), Duration::from_secs_f64(seconds.max(0.0)));
            }
        }
    }
}

/// Marks the loop running (and current on this thread) until dropped — also on a panic.
struct Running<'a> {
    inner: &'a Rc<LoopInner>,
    prev: Option<Weak<LoopInner>>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.inner.running.set(false);
        let prev = self.prev.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

/// Clears the stop request when dropped (the end of `run_forever` or `block_on`, also on an
/// error or a panic), as asyncio's `run_forever` does in its `finally`.
struct ClearStop<'a>(&'a Core<Cb>);

impl Drop for ClearStop<'_> {
    fn drop(&mut self) {
        self.0.set_stopping(false);
    }
}

/// An event loop: a ready queue of callbacks, timers, fd watchers and local futures, driven one
/// iteration at a time by [`run_once`](Self::run_once) or continuously by
/// [`run_forever`](Self::run_forever) and [`block_on`](Self::block_on).
///
/// `EventLoop` is a cheap handle (`Clone` shares the same loop) and is `!Send`: a loop belongs
/// to the thread that created it; other threads use a [`Remote`]. When the last handle is
/// dropped, every pending callback, timer, watcher and task is dropped. A closure or task that
/// holds a clone of the loop keeps it alive until it has run (or is cancelled).
///
/// ```
/// use std::time::Duration;
///
/// let lp = steploop::EventLoop::new().unwrap();
/// let out = lp
///     .block_on(async {
///         steploop::sleep(Duration::from_millis(1)).await;
///         steploop::yield_now().await;
///         42
///     })
///     .unwrap();
/// assert_eq!(out, 42);
/// ```
#[derive(Clone)]
pub struct EventLoop {
    pub(crate) inner: Rc<LoopInner>,
}

impl EventLoop {
    /// Creates a loop: its epoll instance and its waker (an eventfd), kept for the loop's
    /// whole life. Equal deadlines run in scheduling order.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new()?;
    /// assert!(!lp.is_running());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        let core = Core::new(Clock::monotonic(), TieBreak::Fifo)?;
        let shared = Shared::new(core.reactor().wake_handle());
        let origin = (Instant::now(), core.time());
        Ok(EventLoop {
            inner: Rc::new(LoopInner {
                core,
                shared,
                running: Cell::new(false),
                scratch: RefCell::new(Vec::new()),
                tasks: RefCell::new(TaskSlab::default()),
                origin,
                slow: RefCell::new(None),
            }),
        })
    }

    /// The loop running on this thread (the innermost one, from inside a callback or task), if
    /// any — asyncio's `get_running_loop()`.
    ///
    /// ```
    /// use steploop::EventLoop;
    /// assert!(EventLoop::current().is_none());
    /// let lp = EventLoop::new().unwrap();
    /// lp.call_soon(|| assert!(EventLoop::current().is_some()));
    /// lp.run_until_idle().unwrap();
    /// ```
    pub fn current() -> Option<EventLoop> {
        CURRENT.with(|c| {
            c.borrow()
                .as_ref()
                .and_then(Weak::upgrade)
                .map(|inner| EventLoop { inner })
        })
    }

    /// Schedules `f` to run in the next iteration, after the callbacks already ready (FIFO).
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let log = Rc::new(RefCell::new(Vec::new()));
    /// for i in 0..3 {
    ///     let log = log.clone();
    ///     lp.call_soon(move || log.borrow_mut().push(i));
    /// }
    /// lp.run_once(None).unwrap();
    /// assert_eq!(*log.borrow(), [0, 1, 2]);
    /// ```
    #[inline]
    pub fn call_soon<F: FnOnce() + 'static>(&self, f: F) -> Handle {
        let job: Rc<dyn Job> = Once::new(f, false);
        self.inner.push_ready(job.clone());
        Handle { job }
    }

    /// Schedules `f` to run `delay` from now (loop time). `Duration::ZERO` still makes a timer:
    /// it runs after the callbacks already ready. Huge delays saturate (the timer never comes
    /// due in practice).
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let t = lp.call_later(Duration::from_millis(5), || println!("later"));
    /// let never = lp.call_later(Duration::MAX, || unreachable!());
    /// while lp.run_once(None).unwrap().timers == 0 {}
    /// assert!(!t.is_cancelled());
    /// never.cancel();
    /// ```
    pub fn call_later<F: FnOnce() + 'static>(&self, delay: Duration, f: F) -> TimerHandle {
        let when = self.inner.core.time() + delay.as_secs_f64();
        self.inner.call_at_time(when, f)
    }

    /// Schedules `f` to run at `deadline` (a deadline in the past runs in the next
    /// iteration that processes timers). Timers run by deadline, equal deadlines in
    /// scheduling order.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let t = lp.call_at(Instant::now() + Duration::from_millis(1), || println!("at"));
    /// while lp.run_once(None).unwrap().timers == 0 {}
    /// assert!(lp.time() >= t.when());
    /// ```
    pub fn call_at<F: FnOnce() + 'static>(&self, deadline: Instant, f: F) -> TimerHandle {
        // Through the fixed origin, so that equal instants give equal loop times.
        let (origin, origin_time) = self.inner.origin;
        let when = match deadline.checked_duration_since(origin) {
            Some(ahead) => origin_time + ahead.as_secs_f64(),
            None => origin_time - origin.duration_since(deadline).as_secs_f64(),
        };
        self.inner.call_at_time(when, f)
    }

    /// A `Send + Sync + Clone` handle for scheduling on this loop from other threads.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let remote = lp.remote();
    /// std::thread::spawn(move || remote.call_soon_threadsafe(|| {}).unwrap())
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(lp.run_once(None).unwrap().callbacks, 1);
    /// ```
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.inner.shared.clone(),
        }
    }

    fn enter(&self) -> Result<Running<'_>> {
        if self.inner.running.replace(true) {
            return Err(Error::AlreadyRunning);
        }
        let me = Rc::downgrade(&self.inner);
        let prev = CURRENT.with(|c| c.borrow_mut().replace(me));
        Ok(Running {
            inner: &self.inner,
            prev,
        })
    }

    /// One iteration without the running check.
    fn step(&self, timeout: Option<Duration>) -> Result<Step> {
        let slow = self.inner.slow.borrow().clone();
        let mut runner = LoopRunner {
            inner: &self.inner,
            slow,
        };
        self.inner.core.run_once(timeout, &mut runner)
    }

    /// Runs one iteration, exactly asyncio 3.11's `_run_once`: drop cancelled timers; poll
    /// for I/O (not blocking if callbacks are ready or the loop is stopping, else until the
    /// first timer, else indefinitely — `timeout` bounds this wait from above); queue ready
    /// fd watchers and due timers; run exactly the callbacks ready at that point.
    ///
    /// Returns what the iteration did. A panic in a callback unwinds to the caller; the loop
    /// stays usable (the callbacks not yet run stay queued). Called from inside the loop,
    /// returns [`Error::AlreadyRunning`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// lp.call_soon(|| {});
    /// let step = lp.run_once(Some(Duration::ZERO)).unwrap();
    /// assert_eq!((step.callbacks, step.pending), (1, 0));
    /// // Nothing scheduled: waits at most the given timeout.
    /// let idle = lp.run_once(Some(Duration::from_millis(1))).unwrap();
    /// assert_eq!(idle.callbacks, 0);
    /// ```
    pub fn run_once(&self, timeout: Option<Duration>) -> Result<Step> {
        let _running = self.enter()?;
        self.step(timeout)
    }

    /// Runs iterations that do not block until nothing is ready or due; returns how many ran
    /// (at least one). A reader whose fd stays ready keeps it busy.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let lp2 = lp.clone();
    /// lp.call_soon(move || {
    ///     lp2.call_soon(|| {});
    /// });
    /// lp.call_later(Duration::from_secs(60), || unreachable!());
    /// assert_eq!(lp.run_until_idle().unwrap(), 2);
    /// ```
    pub fn run_until_idle(&self) -> Result<usize> {
        let _running = self.enter()?;
        let mut steps = 0;
        loop {
            let step = self.step(Some(Duration::ZERO))?;
            steps += 1;
            if step.pending == 0 && !self.inner.shared.has_pending() && !self.timer_due() {
                return Ok(steps);
            }
        }
    }

    fn timer_due(&self) -> bool {
        let core = &self.inner.core;
        core.next_deadline()
            .is_some_and(|when| when < core.time() + core.resolution())
    }

    /// Runs iterations until [`stop`](Self::stop) is called; then clears the stop request.
    /// As on asyncio, `stop(); run_forever()` runs exactly one iteration.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let lp2 = lp.clone();
    /// lp.call_later(Duration::from_millis(1), move || lp2.stop());
    /// lp.run_forever().unwrap();
    /// assert!(!lp.is_running());
    /// ```
    pub fn run_forever(&self) -> Result<()> {
        let _running = self.enter()?;
        let _clear = ClearStop(&self.inner.core);
        loop {
            self.step(None)?;
            if self.inner.core.is_stopping() {
                return Ok(());
            }
        }
    }

    /// Asks the loop to stop: the current iteration finishes, then
    /// [`run_forever`](Self::run_forever) returns. Callbacks scheduled meanwhile run in the
    /// next run. Outside `run_forever` the request waits for the next one (and makes its first
    /// poll non-blocking).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let n = Rc::new(Cell::new(0));
    /// lp.stop();
    /// let (lp2, n2) = (lp.clone(), n.clone());
    /// lp.call_soon(move || {
    ///     n2.set(n2.get() + 1);
    ///     let n3 = n2.clone();
    ///     lp2.call_soon(move || n3.set(n3.get() + 1));
    /// });
    /// lp.run_forever().unwrap(); // exactly one iteration
    /// assert_eq!(n.get(), 1);
    /// lp.stop();
    /// lp.run_forever().unwrap(); // the callback queued meanwhile runs now
    /// assert_eq!(n.get(), 2);
    /// ```
    pub fn stop(&self) {
        self.inner.core.stop();
    }

    /// Whether the loop is inside `run_once`, `run_forever`, `run_until_idle` or `block_on`.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let lp2 = lp.clone();
    /// lp.call_soon(move || assert!(lp2.is_running()));
    /// lp.run_until_idle().unwrap();
    /// assert!(!lp.is_running());
    /// ```
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// The loop time in seconds: `CLOCK_MONOTONIC`, the clock of Python's `time.monotonic()`.
    /// Read afresh on every call.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let t0 = lp.time();
    /// std::thread::sleep(std::time::Duration::from_millis(2));
    /// assert!(lp.time() - t0 >= 0.002);
    /// ```
    pub fn time(&self) -> f64 {
        self.inner.core.time()
    }

    /// Runs `fut` to completion on this loop (asyncio's `run_until_complete`): it is spawned
    /// as a task, and iterations run until it is done. Other tasks and callbacks run meanwhile
    /// and stay scheduled afterwards.
    ///
    /// As on asyncio (whose future stops the loop from a done-callback), one more iteration
    /// runs after the one that completed the future: callbacks scheduled in that iteration,
    /// and timers due by then, run before `block_on` returns — unless the loop was stopped in
    /// that same iteration. `stop(); block_on(f)` runs one iteration, as `run_forever` does.
    /// The stop request is cleared when `block_on` returns.
    ///
    /// Errors: [`Error::AlreadyRunning`] when called from inside the loop; [`Error::Stopped`]
    /// when [`stop`](Self::stop) ends the run before the future completes (the future is then
    /// dropped); [`Error::Io`] when the poll fails.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let task = lp.spawn(async { 20 });
    /// let sum = lp.block_on(async move { task.await.unwrap() + 22 }).unwrap();
    /// assert_eq!(sum, 42);
    ///
    /// // What the completing iteration schedules runs before block_on returns.
    /// let ran = Rc::new(Cell::new(false));
    /// let (lp2, r) = (lp.clone(), ran.clone());
    /// lp.block_on(async move {
    ///     lp2.call_soon(move || r.set(true));
    /// })
    /// .unwrap();
    /// assert!(ran.get());
    /// ```
    pub fn block_on<F>(&self, fut: F) -> Result<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.is_running() {
            return Err(Error::AlreadyRunning);
        }
        let task = self.spawn(fut);
        let _running = self.enter()?;
        // As `run_forever` (which asyncio's `run_until_complete` is made of), the stop request
        // is cleared on the way out, also on an error or a panic.
        let _clear = ClearStop(&self.inner.core);
        loop {
            self.step(None)?;
            if task.is_finished() {
                // asyncio stops the loop from the future's done-callback, which runs one
                // iteration after the one that completed the future: the callbacks scheduled
                // meanwhile (and the timers due by then) run before `run_until_complete`
                // returns. Unless the loop was stopped in that very iteration.
                if !self.inner.core.is_stopping() {
                    self.step(Some(Duration::ZERO))?;
                }
                return match task.try_take() {
                    Some(out) => out,
                    None => Err(Error::Cancelled),
                };
            }
            if self.inner.core.is_stopping() {
                return Err(Error::Stopped);
            }
        }
    }

    /// Spawns `fut` as a task: its first poll is queued like a `call_soon`, and every wake
    /// queues the next one (behind the callbacks already ready). The returned [`Task`] is a
    /// future of the output; dropping it cancels the task (see [`Task::detach`]).
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let t = lp.spawn(async { "done" });
    /// assert!(!t.is_finished());
    /// lp.run_once(None).unwrap();
    /// assert!(t.is_finished());
    /// assert_eq!(lp.block_on(t).unwrap().unwrap(), "done");
    /// ```
    pub fn spawn<F>(&self, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.inner.drain_remote();
        crate::task::spawn_on(&self.inner, fut)
    }

    /// A future that completes `delay` after its first poll (a timer on this loop). Unlike
    /// [`sleep`](crate::sleep) it does not need to be polled by a running loop to find it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let t0 = lp.time();
    /// lp.block_on(lp.sleep(Duration::from_millis(3))).unwrap();
    /// assert!(lp.time() - t0 >= 0.003);
    /// ```
    pub fn sleep(&self, delay: Duration) -> Sleep {
        Sleep::new(delay, Some(Rc::downgrade(&self.inner)))
    }

    /// Watches `fd` for readability: `f` runs in every iteration while the fd is readable
    /// (level-triggered, as asyncio). Registering again replaces the callback; `f` may remove
    /// or replace itself.
    ///
    /// Errors: [`Error::InvalidFd`] for a negative fd, [`Error::Io`] when the OS refuses it
    /// (e.g. `EBADF` for a closed fd, `EPERM` for a regular file).
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let (mut a, b) = UnixStream::pair().unwrap();
    /// let fd = b.as_raw_fd();
    /// let lp2 = lp.clone();
    /// lp.add_reader(fd, move || {
    ///     println!("readable");
    ///     lp2.remove_reader(fd).unwrap();
    /// })
    /// .unwrap();
    /// a.write_all(b"x").unwrap();
    /// assert_eq!(lp.run_once(None).unwrap().io_events, 1);
    /// assert!(!lp.remove_reader(fd).unwrap()); // it removed itself
    /// ```
    pub fn add_reader<F: FnMut() + 'static>(&self, fd: RawFd, f: F) -> Result<()> {
        self.add_watcher(fd, false, f)
    }

    /// Watches `fd` for writability; see [`add_reader`](Self::add_reader).
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// lp.add_writer(a.as_raw_fd(), || println!("writable")).unwrap();
    /// assert_eq!(lp.run_once(None).unwrap().callbacks, 1);
    /// assert!(lp.remove_writer(a.as_raw_fd()).unwrap());
    /// ```
    pub fn add_writer<F: FnMut() + 'static>(&self, fd: RawFd, f: F) -> Result<()> {
        self.add_watcher(fd, true, f)
    }

    fn add_watcher<F: FnMut() + 'static>(&self, fd: RawFd, write: bool, f: F) -> Result<()> {
        let job: Rc<dyn Job> = Repeat::new(f);
        let old = self.inner.core.set_watcher(fd, write, Some(Cb(job)))?;
        // The replaced watcher must not run even if it is already queued in this iteration.
        if let Some(old) = old {
            old.0.cancel();
        }
        Ok(())
    }

    /// Stops watching `fd` for readability. Returns whether a reader was registered. If the
    /// fd was closed while registered, the watch is removed and [`Error::FdClosed`] returned.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let fd = a.as_raw_fd();
    /// assert!(!lp.remove_reader(fd).unwrap());
    /// lp.add_reader(fd, || {}).unwrap();
    /// drop(a); // closed behind the loop's back
    /// assert!(matches!(lp.remove_reader(fd), Err(steploop::Error::FdClosed(_))));
    /// ```
    pub fn remove_reader(&self, fd: RawFd) -> Result<bool> {
        self.remove_watcher(fd, false)
    }

    /// Stops watching `fd` for writability; see [`remove_reader`](Self::remove_reader).
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// lp.add_writer(a.as_raw_fd(), || {}).unwrap();
    /// assert!(lp.remove_writer(a.as_raw_fd()).unwrap());
    /// ```
    pub fn remove_writer(&self, fd: RawFd) -> Result<bool> {
        self.remove_watcher(fd, true)
    }

    fn remove_watcher(&self, fd: RawFd, write: bool) -> Result<bool> {
        let current = self.inner.core.watcher(fd, write);
        let res = self.inner.core.set_watcher(fd, write, None);
        // Cancelled (and its closure dropped) after the fd left the epoll set: the closure may
        // own the fd.
        if let Some(cb) = &current {
            cb.0.cancel();
        }
        drop(current);
        Ok(res?.is_some())
    }

    /// Sets the slow-callback check: every callback, watcher or task poll that runs for
    /// `threshold` or longer is reported to `hook` with its description (the type name of the
    /// closure or future) and its duration, right after it returns. `None` turns it off.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// lp.set_slow_callback(Some(Duration::from_millis(5)), |what, took| {
    ///     println!("Executing {what} took {:.3} seconds", took.as_secs_f64());
    /// });
    /// lp.call_soon(|| std::thread::sleep(Duration::from_millis(6)));
    /// lp.run_until_idle().unwrap();
    /// lp.set_slow_callback(None, |_, _| {});
    /// ```
    pub fn set_slow_callback(
        &self,
        threshold: Option<Duration>,
        hook: impl Fn(&str, Duration) + 'static,
    ) {
        let new = threshold.map(|t| (t.as_secs_f64(), Rc::new(hook) as SlowHook));
        let old = self.inner.slow.replace(new);
        drop(old);
    }

    /// Number of timers in the heap, cancelled ones not yet dropped included (cancelled timers
    /// leave lazily: off the top of the heap, or all at once when more than 100 are scheduled
    /// and more than half of them are cancelled — asyncio's rule).
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let t = lp.call_later(Duration::from_secs(1), || {});
    /// assert_eq!(lp.scheduled_timers(), 1);
    /// t.cancel();
    /// assert_eq!(lp.scheduled_timers(), 1); // still in the heap
    /// lp.run_once(Some(Duration::ZERO)).unwrap();
    /// assert_eq!(lp.scheduled_timers(), 0);
    /// ```
    pub fn scheduled_timers(&self) -> usize {
        self.inner.core.timers_len()
    }

    /// A snapshot of the loop's statistics. Callbacks are timed one by one only while a
    /// slow-callback hook is set ([`set_slow_callback`](Self::set_slow_callback)), so
    /// `max_callback_time` stays zero otherwise.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// lp.call_soon(|| {});
    /// lp.run_once(None).unwrap();
    /// assert_eq!(lp.stats().callbacks, 1);
    /// ```
    pub fn stats(&self) -> Stats {
        self.inner.core.stats()
    }

    /// Resets the statistics to zero.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// lp.run_once(Some(std::time::Duration::ZERO)).unwrap();
    /// lp.reset_stats();
    /// assert_eq!(lp.stats().iterations, 0);
    /// ```
    pub fn reset_stats(&self) {
        self.inner.core.reset_stats();
    }

    /// Sets how long a wait that may block first polls without blocking: an adaptive
    /// window up to `limit`, as KVM's halt polling (see [`BusyPoll`](crate::BusyPoll));
    /// [`BusyPoll::default_limit`](crate::BusyPoll::default_limit) unless set, zero turns it
    /// off. It changes how the loop waits, never what an iteration sees.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// assert_eq!(lp.busy_poll(), steploop::BusyPoll::default_limit());
    /// lp.set_busy_poll(Duration::ZERO); // block at once, as asyncio does
    /// lp.call_later(Duration::from_millis(1), || {});
    /// lp.run_once(None).unwrap();
    /// assert_eq!(lp.stats().busy_polls, 0);
    /// ```
    pub fn set_busy_poll(&self, limit: Duration) {
        self.inner.core.reactor().set_busy_poll(limit);
    }

    /// The busy-poll limit (see [`set_busy_poll`](Self::set_busy_poll)).
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// lp.set_busy_poll(std::time::Duration::from_micros(50));
    /// assert_eq!(lp.busy_poll().as_micros(), 50);
    /// ```
    pub fn busy_poll(&self) -> Duration {
        self.inner.core.reactor().busy_poll()
    }

    /// An fd (the loop's epoll fd) that turns readable when a watched fd is ready or another
    /// thread scheduled work. Together with [`time_until_next`](Self::time_until_next), it lets
    /// a host loop (GUI toolkit, game loop) drive this loop with `run_once(Some(ZERO))`.
    /// After the first call, every [`Remote`] push writes the loop's waker.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let fd = lp.poll_fd();
    /// let remote = lp.remote();
    /// remote.call_soon_threadsafe(|| {}).unwrap();
    /// let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    /// // SAFETY: `pfd` is one live, initialised pollfd.
    /// assert_eq!(unsafe { libc::poll(&mut pfd, 1, 1000) }, 1);
    /// assert_eq!(lp.run_once(Some(std::time::Duration::ZERO)).unwrap().callbacks, 1);
    /// ```
    pub fn poll_fd(&self) -> RawFd {
        self.inner.shared.set_host_driven();
        self.inner.core.reactor().fd()
    }

    /// How long until an iteration would have work: `Some(ZERO)` if callbacks are ready (or
    /// queued by other threads, or the loop is stopping), the time to the first timer, or
    /// `None` if nothing is scheduled (I/O aside: watch [`poll_fd`](Self::poll_fd)).
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// assert_eq!(lp.time_until_next(), None);
    /// lp.call_later(Duration::from_secs(10), || {});
    /// assert!(lp.time_until_next().unwrap() > Duration::from_secs(9));
    /// lp.call_soon(|| {});
    /// assert_eq!(lp.time_until_next(), Some(Duration::ZERO));
    /// ```
    pub fn time_until_next(&self) -> Option<Duration> {
        if self.inner.shared.has_pending() {
            return Some(Duration::ZERO);
        }
        self.inner
            .core
            .time_until_next()
            .map(|s| Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO))
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("running", &self.is_running())
            .field("ready", &self.inner.core.ready_len())
            .field("timers", &self.inner.core.timers_len())
            .field("watched_fds", &self.inner.core.watched_fds())
            .finish()
    }
}
