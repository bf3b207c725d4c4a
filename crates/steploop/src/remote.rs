//! The cross-thread queue and [`Remote`], the `Send + Sync` door to a loop.
//!
//! Other threads (and thread-safe task wakers) push [`Msg`]s under a short lock; the loop's
//! thread moves them into its ready queue: right after each poll (the core's `after_poll`
//! hook), and before any `call_soon`/`spawn` made on the loop's thread when the queue is not
//! empty (one atomic load) — so that, from the loop's own thread, `call_soon_threadsafe` keeps
//! FIFO order with `call_soon`, as on asyncio.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::reactor::WakeHandle;
use crate::{Error, Result};

/// A message for the loop's thread.
pub(crate) enum Msg {
    /// A `call_soon_threadsafe` callback and the type name of its closure.
    Call(Box<dyn FnOnce() + Send>, &'static str),
    /// A task woken through its (thread-safe) waker: queue its next poll.
    Wake(u64),
}

/// The state a loop shares with its [`Remote`]s and task wakers.
pub(crate) struct Shared {
    /// The queue; `None` once the loop is gone. Held only to push or swap, never while a
    /// callback runs or a closure is dropped.
    queue: Mutex<Option<Vec<Msg>>>,
    /// Whether `queue` may be non-empty. Written under the lock, read without it (`SeqCst`,
    /// paired with the reactor's `polling` flag: a push either sees the loop polling and wakes
    /// it, or the loop sees `pending` before it blocks).
    pending: AtomicBool,
    /// Set once a host loop asked for the poll fd: every push then writes the waker, so the
    /// fd turns readable even when the loop is not inside a poll.
    host_driven: AtomicBool,
    waker: WakeHandle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No user code runs under this lock, so poisoning cannot leave the queue inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(waker: WakeHandle) -> Arc<Self> {
        Arc::new(Shared {
            queue: Mutex::new(Some(Vec::new())),
            pending: AtomicBool::new(false),
            host_driven: AtomicBool::new(false),
            waker,
        })
    }

    /// Queues `msg` and wakes the loop if needed. Gives `msg` back if the loop is gone (for
    /// the caller to drop outside the lock).
    pub(crate) fn push(&self, msg: Msg) -> std::result::Result<(), Msg> {
        {
            let mut q = lock(&self.queue);
            match q.as_mut() {
                Some(v) => v.push(msg),
                None => {
                    drop(q);
                    return Err(msg);
                }
            }
            self.pending.store(true, Ordering::SeqCst);
        }
        // A failed eventfd write cannot lose the message: it is queued, and the loop drains
        // the queue on its next iteration.
        let _ = if self.host_driven.load(Ordering::Relaxed) {
            self.waker.notify()
        } else {
            self.waker.wake()
        };
        Ok(())
    }

    /// Whether messages may be waiting (one atomic load).
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst)
    }

    /// Moves every queued message into `out` (which must be empty), keeping both buffers'
    /// capacity.
    pub(crate) fn take_into(&self, out: &mut Vec<Msg>) {
        let mut q = lock(&self.queue);
        if let Some(v) = q.as_mut() {
            std::mem::swap(v, out);
        }
        self.pending.store(false, Ordering::SeqCst);
    }

    /// Marks the loop gone and returns what was still queued (to be dropped by the caller).
    pub(crate) fn close(&self) -> Vec<Msg> {
        let old = lock(&self.queue).take();
        self.pending.store(false, Ordering::SeqCst);
        old.unwrap_or_default()
    }

    pub(crate) fn set_host_driven(&self) {
        self.host_driven.store(true, Ordering::Relaxed);
    }
}

/// A `Send + Sync + Clone` handle on an [`EventLoop`](crate::EventLoop), for other threads
/// (asyncio's `call_soon_threadsafe`).
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let lp = steploop::EventLoop::new().unwrap();
/// let remote = lp.remote();
/// let done = Arc::new(AtomicBool::new(false));
/// let d = done.clone();
/// std::thread::spawn(move || {
///     remote.call_soon_threadsafe(move || d.store(true, Ordering::SeqCst)).unwrap();
/// });
/// while !done.load(Ordering::SeqCst) {
///     lp.run_once(None).unwrap(); // blocks until the other thread wakes the loop
/// }
/// ```
#[derive(Clone)]
pub struct Remote {
    pub(crate) shared: Arc<Shared>,
}

impl Remote {
    /// Schedules `f` to run on the loop's thread, in FIFO order with the loop's other
    /// callbacks, and wakes the loop if it is blocked in its poll.
    ///
    /// Returns [`Error::LoopGone`] (and drops `f`) if the loop was dropped.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let remote = lp.remote();
    /// remote.call_soon_threadsafe(|| println!("on the loop")).unwrap();
    /// assert_eq!(lp.run_once(None).unwrap().callbacks, 1);
    /// drop(lp);
    /// assert!(matches!(
    ///     remote.call_soon_threadsafe(|| {}),
    ///     Err(steploop::Error::LoopGone)
    /// ));
    /// ```
    pub fn call_soon_threadsafe<F>(&self, f: F) -> Result<()>
    where
        F: FnOnce() + Send + 'static,
    {
        let msg = Msg::Call(Box::new(f), std::any::type_name::<F>());
        match self.shared.push(msg) {
            Ok(()) => Ok(()),
            Err(msg) => {
                drop(msg);
                Err(Error::LoopGone)
            }
        }
    }

    /// Whether the loop is gone (dropped).
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let remote = lp.remote();
    /// assert!(!remote.is_gone());
    /// drop(lp);
    /// assert!(remote.is_gone());
    /// ```
    pub fn is_gone(&self) -> bool {
        lock(&self.shared.queue).is_none()
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("gone", &self.is_gone())
            .finish()
    }
}
