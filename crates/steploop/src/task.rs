//! Local futures on the loop: [`Task`], [`sleep`], [`yield_now`].
//!
//! A task is one `Rc` allocation holding its future; it is itself the callback the ready queue
//! holds, so a wake-up allocates nothing. Its [`Waker`] is thread-safe (`Waker` must be): it
//! carries only the task's id and the loop's cross-thread queue. A wake from another thread
//! goes through the [`Remote`](crate::Remote) path, and the loop's thread turns the id back
//! into the task; a wake on the thread of the running loop queues the task directly. Wakes
//! are deduplicated by an atomic flag.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::event_loop::{EventLoop, LoopInner};
use crate::handle::{Job, TimerHandle};
use crate::remote::{Msg, Shared};
use crate::{Error, Result};

/// Live tasks by id: `index | generation << 32`, so a stale waker never reaches a newer task.
#[derive(Default)]
pub(crate) struct TaskSlab {
    slots: Vec<(u32, Option<Rc<dyn Job>>)>,
    free: Vec<u32>,
}

impl TaskSlab {
    /// Reserves an id for a task about to be inserted.
    fn reserve(&mut self) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, None));
                (self.slots.len() - 1) as u32
            }
        };
        let gen = self.slots[index as usize].0;
        u64::from(index) | (u64::from(gen) << 32)
    }

    fn slot(&self, id: u64) -> Option<&(u32, Option<Rc<dyn Job>>)> {
        let s = self.slots.get((id & 0xffff_ffff) as usize)?;
        (u64::from(s.0) == id >> 32).then_some(s)
    }

    fn set(&mut self, id: u64, task: Rc<dyn Job>) {
        if let Some(s) = self.slots.get_mut((id & 0xffff_ffff) as usize) {
            s.1 = Some(task);
        }
    }

    /// The task with this id, if it is still live.
    pub(crate) fn get(&self, id: u64) -> Option<Rc<dyn Job>> {
        self.slot(id)?.1.clone()
    }

    /// Removes a task; returns it for the caller to drop outside the borrow.
    fn remove(&mut self, id: u64) -> Option<Rc<dyn Job>> {
        self.slot(id)?;
        let index = (id & 0xffff_ffff) as u32;
        let s = &mut self.slots[index as usize];
        s.0 = s.0.wrapping_add(1);
        self.free.push(index);
        s.1.take()
    }

    /// Removes every task.
    pub(crate) fn drain(&mut self) -> Vec<Rc<dyn Job>> {
        self.free.clear();
        let out = self.slots.iter_mut().filter_map(|s| s.1.take()).collect();
        self.slots.clear();
        out
    }
}

/// The `Send + Sync` half of a task, behind its `Waker`.
struct TaskWaker {
    id: u64,
    shared: Arc<Shared>,
    /// Set while the task is queued (or being queued) to run: later wakes are no-ops.
    /// Cleared by the loop's thread right before each poll.
    scheduled: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        // Fast path: woken on the thread of its own running loop (a task waking itself or a
        // sibling, a timer callback): queue the task directly, behind anything queued from
        // other threads before (`push_ready` drains them first, so FIFO order holds).
        if let Some(lp) = crate::event_loop::current_inner() {
            if Arc::ptr_eq(&lp.shared, &self.shared) {
                if let Ok(tasks) = lp.tasks.try_borrow() {
                    let task = tasks.get(self.id);
                    drop(tasks);
                    if let Some(task) = task {
                        lp.push_ready(task);
                    }
                    return;
                }
            }
        }
        // Any other thread (or the loop is not running): the cross-thread queue. A loop that
        // is gone has dropped the task: nothing to wake.
        let _ = self.shared.push(Msg::Wake(self.id));
    }
}

enum State<F: Future> {
    Running(F),
    Done(F::Output),
    /// The output was taken by the `Task` handle.
    Taken,
    Cancelled,
}

/// A spawned future and everything its polls need.
struct TaskCell<F: Future> {
    id: u64,
    /// The future (pinned: the cell never moves, and the future is dropped in place) or its
    /// output. Borrowed mutably only during a poll, a cancel or the taking of the output.
    state: RefCell<State<F>>,
    /// Set once the task completed or was cancelled.
    finished: Cell<bool>,
    /// A cancel requested while the task was being polled, carried out after the poll.
    cancel_requested: Cell<bool>,
    flag: Arc<TaskWaker>,
    waker: Waker,
    /// The waker of whoever awaits the [`Task`].
    join: Cell<Option<Waker>>,
    lp: Weak<LoopInner>,
}

impl<F: Future + 'static> TaskCell<F> {
    /// One poll; returns whether the future completed.
    fn poll_once(&self) -> bool {
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return false;
        };
        let State::Running(fut) = &mut *state else {
            return false;
        };
        // SAFETY: the future lives inside the `Rc` allocation of this cell, which never moves,
        // and it is never moved out of `state`: it leaves only by being dropped in place when
        // `*state` is assigned (completion, cancellation, or the cell's drop).
        let fut = unsafe { Pin::new_unchecked(fut) };
        let mut cx = Context::from_waker(&self.waker);
        match fut.poll(&mut cx) {
            Poll::Ready(out) => {
                *state = State::Done(out);
                true
            }
            Poll::Pending => false,
        }
    }

    /// Marks the task finished, forgets it in the loop and wakes whoever awaits it.
    fn finish(&self) {
        self.finished.set(true);
        if let Some(lp) = self.lp.upgrade() {
            let removed = lp.tasks.borrow_mut().remove(self.id);
            drop(removed);
        }
        if let Some(w) = self.join.take() {
            w.wake();
        }
    }
}

impl<F: Future + 'static> Job for TaskCell<F> {
    fn run(&self) {
        if self.finished.get() {
            return;
        }
        self.flag.scheduled.store(false, Ordering::Release);
        match panic::catch_unwind(AssertUnwindSafe(|| self.poll_once())) {
            Ok(true) => self.finish(),
            Ok(false) => {
                if self.cancel_requested.get() {
                    self.cancel();
                }
            }
            Err(payload) => {
                // A future that panicked must not be polled again: drop it, then let the
                // panic reach the caller of `run_once`.
                self.cancel();
                panic::resume_unwind(payload);
            }
        }
    }

    #[inline]
    fn is_cancelled(&self) -> bool {
        self.finished.get()
    }

    fn cancel(&self) {
        if self.finished.get() {
            return;
        }
        let Ok(mut state) = self.state.try_borrow_mut() else {
            // Being polled (the future cancels its own task): done after the poll.
            self.cancel_requested.set(true);
            return;
        };
        self.finished.set(true);
        *state = State::Cancelled;
        drop(state);
        self.finish();
    }

    fn describe(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

/// What a [`Task`] handle needs from its cell, without the future's type.
trait Join<T> {
    fn poll_join(&self, cx: Option<&mut Context<'_>>) -> Poll<Result<T>>;
    fn job(&self) -> &dyn Job;
}

impl<F: Future + 'static> Join<F::Output> for TaskCell<F> {
    fn poll_join(&self, cx: Option<&mut Context<'_>>) -> Poll<Result<F::Output>> {
        if let Ok(mut state) = self.state.try_borrow_mut() {
            match &*state {
                State::Running(_) => {}
                State::Cancelled | State::Taken => return Poll::Ready(Err(Error::Cancelled)),
                State::Done(_) => {
                    if let State::Done(out) = std::mem::replace(&mut *state, State::Taken) {
                        return Poll::Ready(Ok(out));
                    }
                }
            }
        }
        if let Some(cx) = cx {
            let old = self.join.take();
            let new = match old {
                Some(w) if w.will_wake(cx.waker()) => w,
                _ => cx.waker().clone(),
            };
            self.join.set(Some(new));
        }
        Poll::Pending
    }

    fn job(&self) -> &dyn Job {
        self
    }
}

pub(crate) fn spawn_on<F>(inner: &Rc<LoopInner>, fut: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let id = inner.tasks.borrow_mut().reserve();
    let flag = Arc::new(TaskWaker {
        id,
        shared: inner.shared.clone(),
        scheduled: AtomicBool::new(true),
    });
    let cell = Rc::new(TaskCell {
        id,
        state: RefCell::new(State::Running(fut)),
        finished: Cell::new(false),
        cancel_requested: Cell::new(false),
        waker: Waker::from(flag.clone()),
        flag,
        join: Cell::new(None),
        lp: Rc::downgrade(inner),
    });
    let job: Rc<dyn Job> = cell.clone();
    inner.tasks.borrow_mut().set(id, job);
    inner.core.push_ready(crate::handle::Cb(cell.clone()));
    Task {
        cell,
        detached: false,
        _not_send: PhantomData,
    }
}

/// A spawned future ([`EventLoop::spawn`]): itself a future of the task's output, or of
/// [`Error::Cancelled`] if the task was cancelled first. Dropping it cancels the task unless
/// it was [detached](Self::detach).
///
/// ```
/// let lp = steploop::EventLoop::new().unwrap();
/// let task = lp.spawn(async { 1 + 1 });
/// assert_eq!(lp.block_on(task).unwrap().unwrap(), 2);
/// ```
pub struct Task<T> {
    cell: Rc<dyn Join<T>>,
    detached: bool,
    _not_send: PhantomData<*const ()>,
}

impl<T> Task<T> {
    /// Cancels the task: its future is dropped now (or right after its current poll, if it
    /// cancels itself), and awaiting the task gives [`Error::Cancelled`]. No effect on a
    /// finished task.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let task = lp.spawn(async { steploop::sleep(Duration::from_secs(60)).await });
    /// task.cancel();
    /// assert!(task.is_finished());
    /// assert!(matches!(lp.block_on(task).unwrap(), Err(steploop::Error::Cancelled)));
    /// ```
    pub fn cancel(&self) {
        self.cell.job().cancel();
    }

    /// Whether the task completed or was cancelled.
    ///
    /// ```
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let task = lp.spawn(async {});
    /// assert!(!task.is_finished());
    /// lp.run_until_idle().unwrap();
    /// assert!(task.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.cell.job().is_cancelled()
    }

    /// Lets the task run to completion without this handle (its output is dropped).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// let lp = steploop::EventLoop::new().unwrap();
    /// let ran = Rc::new(Cell::new(false));
    /// let r = ran.clone();
    /// lp.spawn(async move { r.set(true) }).detach();
    /// lp.run_until_idle().unwrap();
    /// assert!(ran.get());
    /// ```
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// The output if the task is finished (`Err(Cancelled)` if it was cancelled), without
    /// waiting.
    pub(crate) fn try_take(&self) -> Option<Result<T>> {
        match self.cell.poll_join(None) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        self.cell.poll_join(Some(cx))
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if !self.detached {
            self.cell.job().cancel();
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("future", &self.cell.job().describe())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Yields to the loop once: the task is queued again behind the callbacks already ready, and
/// resumes in the next iteration — the `await asyncio.sleep(0)` of Rust.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// let lp = steploop::EventLoop::new().unwrap();
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let (l1, l2) = (log.clone(), log.clone());
/// lp.block_on(async move {
///     let lp = steploop::EventLoop::current().unwrap();
///     lp.call_soon(move || l1.borrow_mut().push("callback"));
///     steploop::yield_now().await;
///     l2.borrow_mut().push("task");
/// })
/// .unwrap();
/// assert_eq!(*log.borrow(), ["callback", "task"]);
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`]: pending once (after waking its task), then ready.
///
/// ```
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Poll, Wake, Waker};
/// struct Count(std::sync::atomic::AtomicUsize);
/// impl Wake for Count {
///     fn wake(self: std::sync::Arc<Self>) {
///         self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///     }
/// }
/// let count = std::sync::Arc::new(Count(Default::default()));
/// let waker = Waker::from(count.clone());
/// let mut cx = Context::from_waker(&waker);
/// let mut y = pin!(steploop::yield_now());
/// assert!(y.as_mut().poll(&mut cx).is_pending());
/// assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1); // re-queued itself
/// assert!(y.as_mut().poll(&mut cx).is_ready());
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Completes `delay` after its first poll, on the loop that polls it (asyncio's
/// `asyncio.sleep`). `Duration::ZERO` is [`yield_now`], as `asyncio.sleep(0)` is.
///
/// # Panics
///
/// When first polled outside a running [`EventLoop`] (e.g. by another executor) with a
/// nonzero delay; use [`EventLoop::sleep`] to name the loop explicitly.
///
/// ```
/// use std::time::Duration;
/// let lp = steploop::EventLoop::new().unwrap();
/// let t0 = lp.time();
/// lp.block_on(steploop::sleep(Duration::from_millis(2))).unwrap();
/// assert!(lp.time() - t0 >= 0.002);
/// ```
pub fn sleep(delay: Duration) -> Sleep {
    Sleep::new(delay, None)
}

/// State shared by a [`Sleep`] and its timer callback.
#[derive(Default)]
struct SleepState {
    fired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// The future of [`sleep`] and [`EventLoop::sleep`]. Its timer starts at the first poll;
/// dropping it cancels the timer.
///
/// ```
/// use std::time::Duration;
/// let lp = steploop::EventLoop::new().unwrap();
/// let lp2 = lp.clone();
/// let timed_out = lp
///     .block_on(async move {
///         let long = lp2.spawn(steploop::sleep(Duration::from_secs(60)));
///         steploop::sleep(Duration::from_millis(1)).await;
///         drop(long); // cancels the task, and with it its 60 s timer
///         lp2.scheduled_timers()
///     })
///     .unwrap();
/// assert_eq!(timed_out, 1); // still in the heap, cancelled: dropped at the next step
/// lp.run_once(Some(Duration::ZERO)).unwrap();
/// assert_eq!(lp.scheduled_timers(), 0);
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    delay: Duration,
    lp: Option<Weak<LoopInner>>,
    timer: Option<(TimerHandle, Rc<SleepState>)>,
    yielded: bool,
}

impl Sleep {
    pub(crate) fn new(delay: Duration, lp: Option<Weak<LoopInner>>) -> Self {
        Sleep {
            delay,
            lp,
            timer: None,
            yielded: false,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.delay.is_zero() {
            if self.yielded {
                return Poll::Ready(());
            }
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some((_, state)) = &self.timer {
            if state.fired.get() {
                return Poll::Ready(());
            }
            let new = match state.waker.take() {
                Some(w) if w.will_wake(cx.waker()) => w,
                _ => cx.waker().clone(),
            };
            state.waker.set(Some(new));
            return Poll::Pending;
        }
        let lp = match &self.lp {
            Some(weak) => weak.upgrade().map(|inner| EventLoop { inner }),
            None => EventLoop::current(),
        };
        let Some(lp) = lp else {
            panic!("steploop::sleep polled outside a running steploop::EventLoop");
        };
        let state = Rc::new(SleepState::default());
        state.waker.set(Some(cx.waker().clone()));
        let st = state.clone();
        let timer = lp.call_later(self.delay, move || {
            st.fired.set(true);
            if let Some(w) = st.waker.take() {
                w.wake();
            }
        });
        self.timer = Some((timer, state));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((timer, state)) = self.timer.take() {
            if !state.fired.get() {
                timer.cancel();
            }
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("delay", &self.delay)
            .field("started", &self.timer.is_some())
            .finish()
    }
}
