//! Scheduled callbacks of the Rust [`EventLoop`](crate::EventLoop): the type-erased [`Job`]
//! the core queues, and the [`Handle`]/[`TimerHandle`] users cancel them with.
//!
//! A job is one `Rc` allocation holding the closure itself (no second box). Only the loop's
//! thread touches a job (`Rc` makes sure of it).

use std::cell::Cell;
use std::fmt;
use std::rc::{Rc, Weak};

use crate::core::Callback;
use crate::event_loop::LoopInner;

/// Something the loop can run: a one-shot callback, an fd watcher or a task.
pub(crate) trait Job {
    /// Runs the job. Panics propagate to the caller of `run_once`.
    fn run(&self);
    /// Whether the job was cancelled (the core then skips it).
    fn is_cancelled(&self) -> bool;
    /// Cancels the job and drops its closure (or future) now, unless it is running: then it is
    /// dropped as soon as it returns.
    fn cancel(&self);
    /// Called when a timer leaves the heap.
    fn unscheduled(&self) {}
    /// Whether the job is a timer still in the heap.
    fn is_scheduled(&self) -> bool {
        false
    }
    /// What the slow-callback hook reports: the type name of the closure or future.
    fn describe(&self) -> &'static str;
}

/// The core's callback type for the Rust loop.
#[derive(Clone)]
pub(crate) struct Cb(pub(crate) Rc<dyn Job>);

impl fmt::Debug for Cb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cb").field(&self.0.describe()).finish()
    }
}

impl Callback for Cb {
    #[inline]
    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    fn unscheduled(&self) {
        self.0.unscheduled();
    }
}

/// A callback that runs once (`call_soon`, `call_later`, `call_at`).
pub(crate) struct Once<F> {
    /// The closure; taken out when it runs or is cancelled.
    f: Cell<Option<F>>,
    cancelled: Cell<bool>,
    /// Whether it sits in the timer heap (for asyncio's cancelled-timer count).
    scheduled: Cell<bool>,
}

impl<F: FnOnce() + 'static> Once<F> {
    pub(crate) fn new(f: F, scheduled: bool) -> Rc<Self> {
        Rc::new(Once {
            f: Cell::new(Some(f)),
            cancelled: Cell::new(false),
            scheduled: Cell::new(scheduled),
        })
    }
}

impl<F: FnOnce() + 'static> Job for Once<F> {
    #[inline]
    fn run(&self) {
        if let Some(f) = self.f.take() {
            f();
        }
    }

    #[inline]
    fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    fn cancel(&self) {
        self.cancelled.set(true);
        drop(self.f.take());
    }

    fn unscheduled(&self) {
        self.scheduled.set(false);
    }

    fn is_scheduled(&self) -> bool {
        self.scheduled.get()
    }

    fn describe(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

/// A callback that runs every time its fd is ready (`add_reader`, `add_writer`).
pub(crate) struct Repeat<F> {
    /// The closure; out of the cell while it runs (so it may remove or replace itself).
    f: Cell<Option<F>>,
    cancelled: Cell<bool>,
}

impl<F: FnMut() + 'static> Repeat<F> {
    pub(crate) fn new(f: F) -> Rc<Self> {
        Rc::new(Repeat {
            f: Cell::new(Some(f)),
            cancelled: Cell::new(false),
        })
    }
}

/// Puts a watcher's closure back after it ran — also when it panicked — unless the watcher
/// was removed (cancelled) meanwhile, in which case the closure is dropped.
struct PutBack<'a, F>(&'a Repeat<F>, Option<F>);

impl<F> Drop for PutBack<'_, F> {
    fn drop(&mut self) {
        if let Some(f) = self.1.take() {
            if !self.0.cancelled.get() {
                self.0.f.set(Some(f));
            }
        }
    }
}

impl<F: FnMut() + 'static> Job for Repeat<F> {
    fn run(&self) {
        let mut slot = PutBack(self, self.f.take());
        if let Some(f) = slot.1.as_mut() {
            f();
        }
    }

    #[inline]
    fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    fn cancel(&self) {
        self.cancelled.set(true);
        drop(self.f.take());
    }

    fn describe(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

/// A callback scheduled with [`EventLoop::call_soon`](crate::EventLoop::call_soon), which can
/// be cancelled until it runs.
///
/// Dropping the handle does not cancel the callback.
///
/// ```
/// let lp = steploop::EventLoop::new().unwrap();
/// let h = lp.call_soon(|| unreachable!("cancelled"));
/// assert!(!h.is_cancelled());
/// h.cancel();
/// assert!(h.is_cancelled());
/// assert_eq!(lp.run_once(Some(std::time::Duration::ZERO)).unwrap().callbacks, 0);
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) job: Rc<dyn Job>,
}

impl Handle {
    /// Cancels the callback: it will not run, and its closure is dropped now (asyncio's
    /// `Handle.cancel()`). No effect if it already ran or was cancelled.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let h = lp.call_soon(|| unreachable!());
    /// h.cancel();
    /// h.cancel(); // idempotent
    /// lp.run_until_idle().unwrap();
    /// ```
    pub fn cancel(&self) {
        if !self.job.is_cancelled() {
            self.job.cancel();
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let h = lp.call_soon(|| {});
    /// lp.run_until_idle().unwrap();
    /// assert!(!h.is_cancelled()); // it ran, it was not cancelled
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.job.is_cancelled()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("callback", &self.job.describe())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// A callback scheduled with [`EventLoop::call_later`](crate::EventLoop::call_later) or
/// [`call_at`](crate::EventLoop::call_at), which can be cancelled until it runs.
///
/// Dropping the handle does not cancel the timer.
///
/// ```
/// use std::time::Duration;
/// let lp = steploop::EventLoop::new().unwrap();
/// let t = lp.call_later(Duration::from_secs(3600), || unreachable!());
/// assert!(t.when() > lp.time());
/// t.cancel();
/// assert_eq!(lp.time_until_next(), None);
/// ```
#[derive(Clone)]
pub struct TimerHandle {
    pub(crate) job: Rc<dyn Job>,
    pub(crate) lp: Weak<LoopInner>,
    pub(crate) when: f64,
}

impl TimerHandle {
    /// Cancels the timer: it will not run, and its closure is dropped now. The heap entry
    /// goes lazily, with asyncio's compaction rule. No effect if it already ran or was
    /// cancelled.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let t = lp.call_later(Duration::ZERO, || unreachable!());
    /// t.cancel();
    /// assert_eq!(lp.run_once(Some(Duration::ZERO)).unwrap().timers, 0);
    /// ```
    pub fn cancel(&self) {
        if self.job.is_cancelled() {
            return;
        }
        self.job.cancel();
        if self.job.is_scheduled() {
            if let Some(lp) = self.lp.upgrade() {
                lp.core.timer_cancelled();
            }
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let t = lp.call_later(std::time::Duration::from_secs(1), || {});
    /// assert!(!t.is_cancelled());
    /// t.cancel();
    /// assert!(t.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.job.is_cancelled()
    }

    /// The loop time (seconds, as [`EventLoop::time`](crate::EventLoop::time)) the timer is
    /// due at.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let t = lp.call_later(std::time::Duration::from_secs(2), || {});
    /// let left = t.when() - lp.time();
    /// assert!(left > 1.9 && left <= 2.0);
    /// ```
    pub fn when(&self) -> f64 {
        self.when
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("callback", &self.job.describe())
            .field("when", &self.when)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// A `call_soon_threadsafe` callback moved into the ready queue: already boxed by the sending
/// thread, with its closure's type name kept for the slow-callback hook.
pub(crate) struct Boxed {
    f: Cell<Option<Box<dyn FnOnce() + Send>>>,
    name: &'static str,
    cancelled: Cell<bool>,
}

impl Boxed {
    pub(crate) fn new(f: Box<dyn FnOnce() + Send>, name: &'static str) -> Rc<Self> {
        Rc::new(Boxed {
            f: Cell::new(Some(f)),
            name,
            cancelled: Cell::new(false),
        })
    }
}

impl Job for Boxed {
    fn run(&self) {
        if let Some(f) = self.f.take() {
            f();
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    fn cancel(&self) {
        self.cancelled.set(true);
        drop(self.f.take());
    }

    fn describe(&self) -> &'static str {
        self.name
    }
}
