//! `LoopCore`: the native base of `steploop.Loop`. It implements the hot half of
//! `asyncio.AbstractEventLoop` — scheduling, timers, the iteration, `run_forever`, fd watchers —
//! and the forced-iteration API; the Python subclass adds the rest from asyncio's own layers.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pyo3::exceptions::{PyOverflowError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyTuple, PyWeakrefReference};
use pyo3::{PyTraverseError, PyVisit};

use steploop::{Clock, Core, TieBreak};

use crate::asyncgen_hooks;
use crate::context::SharedContexts;
use crate::error::EngineError;
use crate::handle::{Handle, HandleRef, NewHandle};
use crate::py::{imports, thread_ident, GilCell, GilLock};
use crate::report::StepReport;
use crate::runner::PyRunner;
use crate::sock::SockRecv;
use crate::transport;

/// The engine state of one Python loop.
#[pyclass(subclass, frozen, module = "steploop._steploop")]
pub struct LoopCore {
    /// The engine. Its queues are guarded by the GIL (see [`GilLock`]).
    core: Core<HandleRef, GilLock>,
    /// `loop._debug`.
    debug: AtomicBool,
    /// `loop._closed`.
    closed: AtomicBool,
    /// `loop._coroutine_origin_tracking_enabled` (read by every loop exit).
    origin_tracking: AtomicBool,
    /// The context snapshot shared by handles scheduled without `context=` (context.rs).
    contexts: SharedContexts,
    /// `loop._thread_id` (`threading.get_ident()` of the running thread); 0 when not running.
    thread_id: AtomicU64,
    /// Nested `run_*` calls are allowed (`new_event_loop(reentrant=True)`).
    reentrant: AtomicBool,
    /// Set once `fileno()` was asked for: a host may be waiting on the poll fd, so work
    /// scheduled while the loop is not running must make it readable.
    host_driven: AtomicBool,
    /// The blocking watchdog: threshold in seconds (`f64` bits; 0 = off) and the callback
    /// running now with its start time and sequence number, published for the watchdog thread.
    watchdog: AtomicU64,
    current: parking_lot::Mutex<Option<(Py<Handle>, f64, u64)>>,
    /// The loop's bound `_asyncgen_firstiter_hook` and `_asyncgen_finalizer_hook`, made on
    /// the first run and reused by every entry.
    hooks: parking_lot::Mutex<Option<(Py<PyAny>, Py<PyAny>)>>,
    /// For each fd a `sock_recv` waited on: a weak reference to its socket. The next wait of
    /// the same socket object on that fd reuses the edge registration (no syscall; see
    /// `Core::set_reader_edge`); another socket with the same fd number registers again.
    edge_owners: GilCell<std::collections::HashMap<RawFd, Py<PyAny>>>,
}

impl std::fmt::Debug for LoopCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopCore")
            .field("debug", &self.debug)
            .field("closed", &self.closed)
            .field("thread_id", &self.thread_id)
            .finish_non_exhaustive()
    }
}

/// What `enter` changed, for `exit` to restore.
struct Entered {
    old_hooks: asyncgen_hooks::Saved,
    old_thread: u64,
    old_running: Py<PyAny>,
    nested: bool,
    /// The task a nested run was started from: it is "left" for the nested run (so other
    /// tasks can step) and entered again afterwards.
    suspended_task: Option<Py<PyAny>>,
}

/// `selectors._fileobj_to_fd`: an int, or an object with `fileno()`; negative is a
/// ValueError. `Ok(None)`: a valid Python int too large for a C int (never registered; epoll
/// would raise OverflowError for it).
fn fd_of(obj: &Bound<'_, PyAny>) -> PyResult<Option<i32>> {
    let as_int = if obj.is_instance_of::<PyInt>() {
        obj.clone()
    } else {
        let fileno = obj.call_method0(intern!(obj.py(), "fileno")).and_then(|f| {
            f.call_method0("__index__")
                .or_else(|_| f.call_method0("__int__"))
        });
        match fileno {
            Ok(fd) => fd,
            Err(_) => {
                return Err(PyValueError::new_err(format!(
                    "Invalid file object: {}",
                    obj.repr()?
                )))
            }
        }
    };
    if as_int.lt(0)? {
        return Err(PyValueError::new_err(format!(
            "Invalid file descriptor: {}",
            as_int.str()?
        )));
    }
    Ok(as_int.extract::<i32>().ok())
}

fn too_big_fd() -> PyErr {
    PyOverflowError::new_err("Python int too large to convert to C int")
}

impl LoopCore {
    /// The engine.
    pub(crate) fn core(&self) -> &Core<HandleRef, GilLock> {
        &self.core
    }

    /// The context snapshots shared by its handles (context.rs).
    pub(crate) fn contexts(&self) -> &SharedContexts {
        &self.contexts
    }

    /// Debug mode.
    pub(crate) fn debug(&self) -> bool {
        self.debug.load(Ordering::Relaxed)
    }

    /// Work scheduled while the loop is not running (by a host between steps, or before a
    /// run) makes the poll fd readable, so a host that waits on `fileno()` steps the loop.
    /// One eventfd write per pending wake-up, none while the loop runs.
    #[inline]
    fn notify_host(&self) -> PyResult<()> {
        if self.thread_id.load(Ordering::Relaxed) == 0 && self.host_driven.load(Ordering::Relaxed) {
            self.core.reactor().notify().map_err(EngineError)?;
        }
        Ok(())
    }

    /// `(firstiter, finalizer)`: the loop's async-generator hooks as bound methods.
    fn asyncgen_hooks(&self, slf: &Bound<'_, LoopCore>) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let py = slf.py();
        if let Some((a, b)) = self.hooks.lock().as_ref() {
            return Ok((a.clone_ref(py), b.clone_ref(py)));
        }
        let a = slf
            .getattr(intern!(py, "_asyncgen_firstiter_hook"))?
            .unbind();
        let b = slf
            .getattr(intern!(py, "_asyncgen_finalizer_hook"))?
            .unbind();
        *self.hooks.lock() = Some((a.clone_ref(py), b.clone_ref(py)));
        Ok((a, b))
    }

    /// The watchdog threshold in seconds, 0.0 when off.
    pub(crate) fn watchdog_threshold(&self) -> f64 {
        f64::from_bits(self.watchdog.load(Ordering::Relaxed))
    }

    /// Publishes (or clears) the callback running now for the watchdog thread.
    pub(crate) fn set_current(&self, cur: Option<(Py<Handle>, f64, u64)>) {
        let old = std::mem::replace(&mut *self.current.lock(), cur);
        drop(old);
    }

    fn check_closed(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PyRuntimeError::new_err("Event loop is closed"));
        }
        Ok(())
    }

    fn check_thread(&self) -> PyResult<()> {
        let tid = self.thread_id.load(Ordering::Relaxed);
        if tid != 0 && tid != thread_ident() {
            return Err(PyRuntimeError::new_err(
                "Non-thread-safe operation invoked on an event loop other than the current one",
            ));
        }
        Ok(())
    }

    fn check_callback(py: Python<'_>, callback: &Bound<'_, PyAny>, method: &str) -> PyResult<()> {
        let imp = imports(py)?;
        if imp.iscoroutine.call1(py, (callback,))?.is_truthy(py)?
            || imp
                .iscoroutinefunction
                .call1(py, (callback,))?
                .is_truthy(py)?
        {
            return Err(PyTypeError::new_err(format!(
                "coroutines cannot be used with {method}()"
            )));
        }
        if !callback.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "a callable object was expected by {method}(), got {}",
                callback.repr()?
            )));
        }
        Ok(())
    }

    /// Validation shared by the scheduling methods, in asyncio's order. An open loop out of
    /// debug mode has nothing to check: that test is inlined, the checks are not.
    #[inline(always)]
    fn precheck(&self, callback: &Bound<'_, PyAny>, method: &str) -> PyResult<()> {
        if !self.closed.load(Ordering::Relaxed) && !self.debug() {
            return Ok(());
        }
        self.precheck_checks(callback, method)
    }

    /// The checks of [`LoopCore::precheck`].
    #[inline(never)]
    fn precheck_checks(&self, callback: &Bound<'_, PyAny>, method: &str) -> PyResult<()> {
        self.check_closed()?;
        if self.debug() {
            if method != "call_soon_threadsafe" {
                self.check_thread()?;
            }
            Self::check_callback(callback.py(), callback, method)?;
        }
        Ok(())
    }

    fn new_handle(
        slf: &Bound<'_, LoopCore>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
        when: Option<f64>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let (context, shared_context) = match context {
            Some(c) if !c.is_none() => (c.unbind(), false),
            _ => slf.get().contexts.for_new_handle(py)?,
        };
        let source_traceback = if slf.get().debug() {
            let imp = imports(py)?;
            let frame = imp.getframe.call1(py, (0,))?;
            Some(imp.extract_stack.call1(py, (frame,))?)
        } else {
            None
        };
        Handle::create(
            py,
            NewHandle {
                callback: callback.clone().unbind(),
                args: args.clone().unbind(),
                context,
                shared_context,
                lp: slf.clone().unbind(),
                when,
                source_traceback,
            },
        )
    }

    /// Makes the loop "running" in this thread (asyncio's `run_forever` prologue).
    fn enter(slf: &Bound<'_, LoopCore>) -> PyResult<Entered> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let imp = imports(py)?;
        let me = thread_ident();
        let old_thread = this.thread_id.load(Ordering::Relaxed);
        let old_running = imp
            .call_events_fn(py, intern!(py, "_get_running_loop"), None)?
            .unbind();
        let nested = this.reentrant.load(Ordering::Relaxed)
            && old_thread == me
            && old_running.bind(py).is(slf);
        if nested {
            // The loop is already set up as running in this thread: only the task that is
            // stepping (if any) is suspended, so that other tasks can step meanwhile.
            let task = imp.current_task.call1(py, (slf,))?;
            let suspended_task = if task.is_none(py) {
                None
            } else {
                imp.leave_task.call1(py, (slf, &task))?;
                Some(task)
            };
            return Ok(Entered {
                old_hooks: asyncgen_hooks::Saved::Nothing,
                old_thread,
                old_running,
                nested,
                suspended_task,
            });
        }
        if old_thread != 0 {
            return Err(PyRuntimeError::new_err(
                "This event loop is already running",
            ));
        }
        if !old_running.is_none(py) {
            return Err(PyRuntimeError::new_err(
                "Cannot run the event loop while another loop is running",
            ));
        }
        if this.debug() {
            slf.call_method1("_set_coroutine_origin_tracking", (true,))?;
        }
        let (firstiter, finalizer) = this.asyncgen_hooks(slf)?;
        this.thread_id.store(me, Ordering::Relaxed);
        let old_hooks = match asyncgen_hooks::install(py, &firstiter, &finalizer) {
            Ok(saved) => saved,
            Err(e) => {
                this.thread_id.store(old_thread, Ordering::Relaxed);
                return Err(e);
            }
        };
        let res = imp.call_events_fn(py, intern!(py, "_set_running_loop"), Some(slf.as_any()));
        if let Err(e) = res {
            this.thread_id.store(old_thread, Ordering::Relaxed);
            // The error that stopped the entry is the one to report.
            let _ = asyncgen_hooks::restore(py, old_hooks);
            return Err(e);
        }
        Ok(Entered {
            old_hooks,
            old_thread,
            old_running,
            nested,
            suspended_task: None,
        })
    }

    /// Undoes `enter` (asyncio's `run_forever` epilogue).
    fn exit(slf: &Bound<'_, LoopCore>, e: Entered) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let imp = imports(py)?;
        this.thread_id.store(e.old_thread, Ordering::Relaxed);
        if e.nested {
            if let Some(task) = e.suspended_task {
                imp.enter_task.call1(py, (slf, task))?;
            }
            return Ok(());
        }
        let r1 = imp.call_events_fn(
            py,
            intern!(py, "_set_running_loop"),
            Some(e.old_running.bind(py)),
        );
        let r2 = if this.origin_tracking.load(Ordering::Relaxed) {
            slf.call_method1("_set_coroutine_origin_tracking", (false,))
                .map(|_| ())
        } else {
            Ok(())
        };
        let r3 = asyncgen_hooks::restore(py, e.old_hooks);
        // The loop stops: what the handle free lists kept for a burst goes back.
        crate::freelist::trim(py);
        r1?;
        r2?;
        r3?;
        Ok(())
    }

    /// One iteration with the GIL released around the poll.
    fn step(slf: &Bound<'_, LoopCore>, max_wait: Option<Duration>) -> PyResult<steploop::Step> {
        Self::step_with(slf, max_wait, false)
    }

    /// One iteration; `continuing` for the iterations of `run_forever` after its first, which
    /// start at the time the previous one ended (`Core::run_once_continuing`).
    fn step_with(
        slf: &Bound<'_, LoopCore>,
        max_wait: Option<Duration>,
        continuing: bool,
    ) -> PyResult<steploop::Step> {
        let this = slf.get();
        let any = slf.as_any();
        let mut runner = PyRunner {
            py: slf.py(),
            lp: any,
            core: this,
            debug: this.debug(),
            watchdog: this.watchdog_threshold(),
        };
        let res = if continuing {
            this.core.run_once_continuing(max_wait, &mut runner)
        } else {
            this.core.run_once(max_wait, &mut runner)
        };
        res.map_err(|e| *e)
    }

    fn parse_timeout(timeout: Option<f64>) -> PyResult<Option<Duration>> {
        match timeout {
            None => Ok(None),
            Some(t) if t.is_nan() || t < 0.0 => Err(PyValueError::new_err(format!(
                "timeout must be a non-negative number or None, got {t}"
            ))),
            Some(t) => Ok(Some(Duration::from_secs_f64(
                t.min(steploop::MAX_POLL_TIMEOUT),
            ))),
        }
    }

    fn set_watcher(
        slf: &Bound<'_, LoopCore>,
        fd: &Bound<'_, PyAny>,
        write: bool,
        callback: Option<(&Bound<'_, PyAny>, &Bound<'_, PyTuple>)>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        match callback {
            Some((cb, args)) => Self::add_watcher(slf, fd, write, None, cb, args),
            None => {
                let no = || Ok(false.into_pyobject(py)?.to_owned().into_any().unbind());
                if this.closed.load(Ordering::Relaxed) {
                    return no();
                }
                let Some(fd) = fd_of(fd)? else { return no() };
                let removed = Self::remove_watcher_fd(slf, fd, write)?;
                Ok(removed.into_pyobject(py)?.to_owned().into_any().unbind())
            }
        }
    }

    /// Adds the reader or writer of `fd`: level-triggered (`Core::set_watcher`), or, for a
    /// reader with `edge = Some(reuse)`, on an edge-triggered registration
    /// (`Core::set_reader_edge`). The watcher it replaces is cancelled, as asyncio does.
    fn add_watcher(
        slf: &Bound<'_, LoopCore>,
        fd: &Bound<'_, PyAny>,
        write: bool,
        edge: Option<bool>,
        cb: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        // asyncio's order: a closed loop first, then the fd.
        this.check_closed()?;
        let fd = fd_of(fd)?.ok_or_else(too_big_fd)?;
        let handle = Self::new_handle(slf, cb, args, None, None)?;
        let h = HandleRef::new(handle.clone_ref(py));
        let old = if let (Some(reuse), false) = (edge, write) {
            this.core.set_reader_edge(fd, h, reuse)
        } else {
            this.core.set_watcher(fd, write, Some(h))
        }
        .map_err(EngineError)?;
        if let Some(old) = old {
            Handle::cancel_handle(old.0.bind(py))?;
        }
        Ok(handle.into_any())
    }

    /// Removes (and cancels) the reader or writer of `fd`; whether there was one.
    pub(crate) fn remove_watcher_fd(
        slf: &Bound<'_, LoopCore>,
        fd: RawFd,
        write: bool,
    ) -> PyResult<bool> {
        let this = slf.get();
        if !this.core.has_watcher(fd, write) {
            return Ok(false);
        }
        // A closed fd is forgotten all the same; asyncio ignores that error too.
        let old = this.core.set_watcher(fd, write, None).unwrap_or(None);
        if let Some(old) = old {
            Handle::cancel_handle(old.0.bind(slf.py()))?;
        }
        Ok(true)
    }
}

#[pymethods]
impl LoopCore {
    #[new]
    #[pyo3(signature = (*_args, **kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        // `virtual_time=<start>` (and `autojump=`) make a virtual-clock loop for tests
        // (`steploop.testing`); the other keyword arguments belong to the Python subclass.
        let mut clock = Clock::monotonic();
        if let Some(kw) = kwargs {
            if let Some(start) = kw.get_item("virtual_time")? {
                if !start.is_none() {
                    let autojump = match kw.get_item("autojump")? {
                        Some(a) => a.is_truthy()?,
                        None => true,
                    };
                    clock = Clock::virtual_at(start.extract()?, autojump);
                }
            }
        }
        let core = Core::with_lock(clock, TieBreak::Asyncio).map_err(EngineError)?;
        Ok(LoopCore {
            core,
            debug: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            thread_id: AtomicU64::new(0),
            reentrant: AtomicBool::new(false),
            host_driven: AtomicBool::new(false),
            watchdog: AtomicU64::new(0),
            current: parking_lot::Mutex::new(None),
            hooks: parking_lot::Mutex::new(None),
            origin_tracking: AtomicBool::new(false),
            contexts: SharedContexts::default(),
            edge_owners: GilCell::new(std::collections::HashMap::new()),
        })
    }

    /// Move a virtual clock forward by `seconds` (virtual-clock loops only).
    fn advance(&self, seconds: f64) -> PyResult<()> {
        if !self.core.clock().is_virtual() {
            return Err(PyRuntimeError::new_err(
                "advance() needs a loop with a virtual clock (steploop.testing)",
            ));
        }
        if seconds.is_nan() || seconds < 0.0 {
            return Err(PyValueError::new_err(format!(
                "seconds must be a non-negative number, got {seconds}"
            )));
        }
        self.core.clock().advance(seconds);
        self.core.reactor().notify().map_err(EngineError)?;
        Ok(())
    }

    /// Whether this loop runs on a virtual clock.
    fn _is_virtual(&self) -> bool {
        self.core.clock().is_virtual()
    }

    /// Whether this virtual clock jumps to the next timer when the loop is idle.
    #[getter]
    fn _autojump(&self) -> bool {
        self.core.clock().autojump()
    }

    /// Set the busy-poll limit in seconds (`0` never spins); see `Loop.set_busy_poll`.
    fn _set_busy_poll(&self, limit: f64) -> PyResult<()> {
        if !(limit >= 0.0 && limit.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "limit must be a non-negative number of seconds, got {limit}"
            )));
        }
        // The engine cuts limits to a second anyway; cutting first keeps a huge float from
        // overflowing `Duration::from_secs_f64` (which panics).
        self.core
            .reactor()
            .set_busy_poll(Duration::from_secs_f64(limit.min(1.0)));
        Ok(())
    }

    /// The busy-poll limit in seconds.
    fn _busy_poll(&self) -> f64 {
        self.core.reactor().busy_poll().as_secs_f64()
    }

    /// Turn the blocking watchdog's bookkeeping on (`threshold` seconds) or off (`None`).
    fn _set_watchdog(&self, threshold: Option<f64>) -> PyResult<()> {
        let t = match threshold {
            None => 0.0,
            Some(t) if t > 0.0 && t.is_finite() => t,
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "threshold must be a positive number or None, got {t}"
                )))
            }
        };
        self.watchdog.store(t.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    /// The callback running now, for the watchdog: `(handle, started_at, sequence)` or None.
    fn _watchdog_current(&self, py: Python<'_>) -> Option<(Py<Handle>, f64, u64)> {
        self.current
            .lock()
            .as_ref()
            .map(|(h, t, n)| (h.clone_ref(py), *t, *n))
    }

    /// Return the time according to the event loop's clock (`time.monotonic()`).
    fn time(&self) -> f64 {
        self.core.time()
    }

    /// Arrange for a callback to be called as soon as possible.
    ///
    /// This operates as a FIFO queue: callbacks are called in the order in which they are
    /// registered. Each callback will be called exactly once.
    #[pyo3(signature = (callback, *args, context=None))]
    pub(crate) fn call_soon(
        slf: &Bound<'_, LoopCore>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let this = slf.get();
        this.precheck(callback, "call_soon")?;
        let handle = Self::new_handle(slf, callback, args, context, None)?;
        this.core
            .push_ready(HandleRef::new(handle.clone_ref(slf.py())));
        this.notify_host()?;
        Ok(handle)
    }

    /// asyncio's private `_call_soon(callback, args, context)`.
    fn _call_soon(
        slf: &Bound<'_, LoopCore>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let handle = Self::new_handle(slf, callback, args, context, None)?;
        slf.get()
            .core
            .push_ready(HandleRef::new(handle.clone_ref(slf.py())));
        Ok(handle)
    }

    /// Like call_soon(), but thread-safe.
    #[pyo3(signature = (callback, *args, context=None))]
    pub(crate) fn call_soon_threadsafe(
        slf: &Bound<'_, LoopCore>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let this = slf.get();
        this.precheck(callback, "call_soon_threadsafe")?;
        let handle = Self::new_handle(slf, callback, args, context, None)?;
        let h = HandleRef::new(handle.clone_ref(slf.py()));
        let running_in = this.thread_id.load(Ordering::Relaxed);
        if running_in == thread_ident() {
            // From one of the loop's own callbacks: the loop is not polling.
            this.core.push_ready(h);
        } else if running_in != 0 {
            // Another thread while the loop runs: wake it only if it is blocked in its poll
            // (asyncio writes its self-pipe every time; one write per blocking poll is enough).
            this.core.push_ready_threadsafe(h).map_err(EngineError)?;
        } else if this.host_driven.load(Ordering::Relaxed) {
            // The loop is not running and a host steps it: make the poll fd readable, once
            // per pending wake-up, so a host waiting on `fileno()` comes back to step it.
            this.core.push_ready_notify(h).map_err(EngineError)?;
        } else {
            // Not running, nobody waiting on it: the next run finds the callback ready.
            this.core.push_ready(h);
        }
        Ok(handle)
    }

    /// Arrange for a callback to be called at a given time.
    ///
    /// Return a Handle: an opaque object with a cancel() method that can be used to cancel
    /// the call. The delay can be an int or float, expressed in seconds. It is always
    /// relative to the current time.
    #[pyo3(signature = (delay, callback, *args, context=None))]
    fn call_later(
        slf: &Bound<'_, LoopCore>,
        delay: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        if delay.is_none() {
            return Err(PyTypeError::new_err("delay must not be None"));
        }
        let now = slf.get().core.time();
        let when = match delay.extract::<f64>() {
            Ok(d) => PyFloat::new(slf.py(), now + d).into_any(),
            // Not a float: let Python's `+` decide (and raise its own TypeError).
            Err(_) => PyFloat::new(slf.py(), now).add(delay)?,
        };
        Self::call_at(slf, &when, callback, args, context)
    }

    /// Like call_later(), but uses an absolute time.
    ///
    /// Absolute time corresponds to the event loop's time() method.
    #[pyo3(signature = (when, callback, *args, context=None))]
    fn call_at(
        slf: &Bound<'_, LoopCore>,
        when: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        if when.is_none() {
            return Err(PyTypeError::new_err("when cannot be None"));
        }
        let this = slf.get();
        this.precheck(callback, "call_at")?;
        let when: f64 = when.extract()?;
        let handle = Self::new_handle(slf, callback, args, context, Some(when))?;
        this.core
            .push_timer(when, HandleRef::new(handle.clone_ref(slf.py())));
        this.notify_host()?;
        Ok(handle)
    }

    /// Stop running the event loop.
    ///
    /// Every callback already scheduled will still run. This simply informs run_forever to
    /// stop looping after a complete iteration.
    fn stop(&self) {
        self.core.stop();
    }

    /// Return whether the event loop is currently running.
    fn is_running(&self) -> bool {
        self.thread_id.load(Ordering::Relaxed) != 0
    }

    /// Returns True if the event loop was closed.
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn get_debug(&self) -> bool {
        self.debug()
    }

    fn set_debug(slf: &Bound<'_, LoopCore>, enabled: &Bound<'_, PyAny>) -> PyResult<()> {
        let enabled = enabled.is_truthy()?;
        let this = slf.get();
        this.debug.store(enabled, Ordering::Relaxed);
        if this.is_running() {
            let cb = slf.getattr("_set_coroutine_origin_tracking")?;
            let args = PyTuple::new(slf.py(), [enabled])?;
            Self::call_soon_threadsafe(slf, &cb, &args, None)?;
        }
        Ok(())
    }

    #[getter(_debug)]
    fn get_debug_attr(&self) -> bool {
        self.debug()
    }

    #[setter(_debug)]
    fn set_debug_attr(&self, v: bool) {
        self.debug.store(v, Ordering::Relaxed);
    }

    #[getter(_coroutine_origin_tracking_enabled)]
    fn get_origin_tracking_attr(&self) -> bool {
        self.origin_tracking.load(Ordering::Relaxed)
    }

    #[setter(_coroutine_origin_tracking_enabled)]
    fn set_origin_tracking_attr(&self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.origin_tracking
            .store(v.is_truthy()?, Ordering::Relaxed);
        Ok(())
    }

    #[getter(_closed)]
    fn get_closed_attr(&self) -> bool {
        self.is_closed()
    }

    #[setter(_closed)]
    fn set_closed_attr(&self, v: bool) {
        self.closed.store(v, Ordering::Relaxed);
    }

    #[getter(_stopping)]
    fn get_stopping_attr(&self) -> bool {
        self.core.is_stopping()
    }

    #[setter(_stopping)]
    fn set_stopping_attr(&self, v: bool) {
        self.core.set_stopping(v);
    }

    #[getter(_thread_id)]
    fn get_thread_id_attr(&self) -> Option<u64> {
        match self.thread_id.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    #[setter(_thread_id)]
    fn set_thread_id_attr(&self, v: Option<u64>) {
        self.thread_id.store(v.unwrap_or(0), Ordering::Relaxed);
    }

    #[getter(_reentrant)]
    fn get_reentrant(&self) -> bool {
        self.reentrant.load(Ordering::Relaxed)
    }

    #[setter(_reentrant)]
    fn set_reentrant(&self, v: bool) {
        self.reentrant.store(v, Ordering::Relaxed);
    }

    /// Run the event loop until stop() is called.
    fn run_forever(slf: &Bound<'_, LoopCore>) -> PyResult<()> {
        let entered = Self::enter(slf)?;
        let this = slf.get();
        let mut continuing = false;
        let res = loop {
            if let Err(e) = Self::step_with(slf, None, continuing) {
                break Err(e);
            }
            if this.core.is_stopping() {
                break Ok(());
            }
            continuing = true;
        };
        // As asyncio's `finally: self._stopping = False` (a nested run consumes the stop
        // that ended it, so the outer run goes on).
        this.core.set_stopping(false);
        let exited = Self::exit(slf, entered);
        res?;
        exited
    }

    /// Schedule a coroutine object: return a Task object.
    ///
    /// asyncio's `create_task` (the task factory, `name=` and `context=` included), without
    /// the Python frame.
    #[pyo3(signature = (coro, *, name=None, context=None))]
    fn create_task(
        slf: &Bound<'_, LoopCore>,
        coro: &Bound<'_, PyAny>,
        name: Option<Bound<'_, PyAny>>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let imp = imports(py)?;
        if this.debug() {
            // asyncio's own create_task: the tasks' source tracebacks (printed in debug mode)
            // then point where asyncio's point.
            let kw = PyDict::new(py);
            kw.set_item(intern!(py, "name"), &name)?;
            kw.set_item(intern!(py, "context"), &context)?;
            return Ok(imp
                .py_create_task
                .bind(py)
                .call((slf, coro), Some(&kw))?
                .unbind());
        }
        let name = name.filter(|n| !n.is_none());
        let context = context.filter(|c| !c.is_none());
        let factory = slf.getattr(intern!(py, "_task_factory"))?;
        if factory.is_none() {
            let kw = PyDict::new(py);
            kw.set_item(intern!(py, "loop"), slf)?;
            if let Some(name) = &name {
                kw.set_item(intern!(py, "name"), name)?;
            }
            if let Some(context) = &context {
                kw.set_item(intern!(py, "context"), context)?;
            }
            // In debug mode the task's `_source_traceback` already ends at our caller (no
            // Python frame of ours to drop, which is what asyncio's `del [-1]` does).
            let task = imp.task_type.bind(py).call((coro,), Some(&kw))?;
            return Ok(task.unbind());
        }
        let task = match &context {
            None => factory.call1((slf, coro))?,
            Some(context) => {
                let kw = PyDict::new(py);
                kw.set_item(intern!(py, "context"), context)?;
                factory.call((slf, coro), Some(&kw))?
            }
        };
        imp.set_task_name
            .bind(py)
            .call1((&task, name.map_or_else(|| py.None(), |n| n.unbind())))?;
        Ok(task.unbind())
    }

    /// Run until the future (an asyncio Future, or a coroutine wrapped in a Task) is done.
    ///
    /// Return the Future's result, or raise its exception. asyncio's `run_until_complete`,
    /// step for step, without the Python frames.
    fn run_until_complete(
        slf: &Bound<'_, LoopCore>,
        future: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        // `_check_running` (the Python subclass lets a reentrant loop through).
        slf.call_method0(intern!(py, "_check_running"))?;
        let imp = imports(py)?;
        let new_task = !imp.isfuture.bind(py).call1((future,))?.is_truthy()?;
        // Debug mode goes asyncio's way (ensure_future), so that tasks' "created at" is the
        // same line as on asyncio.
        let fut = if new_task
            && !this.debug()
            && imp.iscoroutine.bind(py).call1((future,))?.is_truthy()?
        {
            // ensure_future(coro, loop=self) is loop.create_task(coro).
            slf.call_method1(intern!(py, "create_task"), (future,))?
        } else {
            let kw = PyDict::new(py);
            kw.set_item(intern!(py, "loop"), slf)?;
            imp.ensure_future.bind(py).call((future,), Some(&kw))?
        };
        if new_task {
            // An exception of a task we made ourselves is reported by raising it here, not
            // by "Task was destroyed but it is pending!".
            fut.setattr(intern!(py, "_log_destroy_pending"), false)?;
        }
        let cb = imp.run_until_complete_cb.bind(py);
        fut.call_method1(intern!(py, "add_done_callback"), (cb,))?;
        let ran = Self::run_forever(slf);
        if ran.is_err()
            && new_task
            && fut.call_method0(intern!(py, "done"))?.is_truthy()?
            && !fut.call_method0(intern!(py, "cancelled"))?.is_truthy()?
        {
            // Mark the exception retrieved: it is about to propagate in another form.
            let _ = fut.call_method0(intern!(py, "exception"));
        }
        fut.call_method1(intern!(py, "remove_done_callback"), (cb,))?;
        ran?;
        if !fut.call_method0(intern!(py, "done"))?.is_truthy()? {
            return Err(PyRuntimeError::new_err(
                "Event loop stopped before Future completed.",
            ));
        }
        Ok(fut.call_method0(intern!(py, "result"))?.unbind())
    }

    /// asyncio's private `_run_once()`: one iteration, with no running-state bookkeeping.
    fn _run_once(slf: &Bound<'_, LoopCore>) -> PyResult<()> {
        Self::step(slf, None).map(|_| ())
    }

    /// Run one iteration of the event loop and report what it did.
    ///
    /// `timeout` bounds the wait for I/O or timers (0 never blocks; None waits as long as
    /// asyncio would). The loop is running for the duration of the step.
    #[pyo3(signature = (timeout=None))]
    fn run_once(slf: &Bound<'_, LoopCore>, timeout: Option<f64>) -> PyResult<StepReport> {
        let max_wait = Self::parse_timeout(timeout)?;
        let entered = Self::enter(slf)?;
        let res = Self::step(slf, max_wait);
        let exited = Self::exit(slf, entered);
        let step = res?;
        exited?;
        Ok(step.into())
    }

    /// Iterate with timeout 0 until no callback is ready and no timer is due.
    ///
    /// Returns the number of iterations that ran callbacks.
    #[pyo3(signature = (max_steps=None))]
    fn run_until_idle(slf: &Bound<'_, LoopCore>, max_steps: Option<i64>) -> PyResult<usize> {
        if let Some(m) = max_steps {
            if m < 0 {
                return Err(PyValueError::new_err(format!(
                    "max_steps must be a non-negative integer or None, got {m}"
                )));
            }
        }
        let limit = max_steps.map_or(usize::MAX, |m| m as usize);
        let entered = Self::enter(slf)?;
        let mut n = 0usize;
        let res = loop {
            if n >= limit {
                break Ok(());
            }
            match Self::step(slf, Some(Duration::ZERO)) {
                Err(e) => break Err(e),
                Ok(step) => {
                    if step.callbacks == 0 && step.timers == 0 && step.pending == 0 {
                        break Ok(());
                    }
                    n += 1;
                }
            }
        };
        let exited = Self::exit(slf, entered);
        res?;
        exited?;
        Ok(n)
    }

    /// A file descriptor that turns readable when the loop has I/O or a wake-up to process.
    ///
    /// Asking for it marks the loop host-driven: from then on, work scheduled while the loop
    /// is not running (a `call_soon` between steps, a `call_soon_threadsafe` from another
    /// thread) also makes the fd readable, so a host waiting on it comes back to step.
    fn fileno(&self) -> PyResult<i32> {
        self.check_closed()?;
        self.host_driven.store(true, Ordering::Relaxed);
        Ok(self.core.reactor().fd())
    }

    /// Seconds until the next step has work: 0.0 if callbacks are ready, the delay to the
    /// next timer, or None if nothing is scheduled.
    fn time_until_next(&self) -> Option<f64> {
        self.core.time_until_next()
    }

    /// Loop statistics as a dict (see DESIGN.md).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core.stats();
        let d = PyDict::new(py);
        d.set_item("iterations", s.iterations)?;
        d.set_item("callbacks", s.callbacks)?;
        d.set_item("timers", s.timers)?;
        d.set_item("io_events", s.io_events)?;
        d.set_item("poll_time", s.poll_time.as_secs_f64())?;
        d.set_item("busy_time", s.busy_time.as_secs_f64())?;
        d.set_item("utilization", s.utilization)?;
        d.set_item("max_callback_time", s.max_callback_time.as_secs_f64())?;
        d.set_item("lag_p50", s.lag_p50.as_secs_f64())?;
        d.set_item("lag_p99", s.lag_p99.as_secs_f64())?;
        d.set_item("busy_polls", s.busy_polls)?;
        d.set_item("busy_poll_hits", s.busy_poll_hits)?;
        Ok(d)
    }

    /// Reset the statistics.
    fn reset_stats(&self) {
        self.core.reset_stats();
    }

    #[pyo3(signature = (fd, callback, *args))]
    fn _add_reader(
        slf: &Bound<'_, LoopCore>,
        fd: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        // Only for a live loop and a valid fd: anything else gets asyncio's errors, in
        // asyncio's order, from `set_watcher`.
        if args.is_empty() && !slf.get().is_closed() {
            if let Ok(Some(raw)) = fd_of(fd) {
                if let Some(reader) = transport::native_reader(slf.py(), raw, callback)? {
                    let reader = Bound::new(slf.py(), reader)?;
                    return Self::set_watcher(slf, fd, false, Some((reader.as_any(), args)));
                }
            }
        }
        Self::set_watcher(slf, fd, false, Some((callback, args)))
    }

    #[pyo3(signature = (fd, callback, *args))]
    fn _add_writer(
        slf: &Bound<'_, LoopCore>,
        fd: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        Self::set_watcher(slf, fd, true, Some((callback, args)))
    }

    fn _remove_reader(slf: &Bound<'_, LoopCore>, fd: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Self::set_watcher(slf, fd, false, None)
    }

    fn _remove_writer(slf: &Bound<'_, LoopCore>, fd: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Self::set_watcher(slf, fd, true, None)
    }

    /// `sock_recv`'s first attempt: `socket.recv(n)` on a non-blocking socket, without the
    /// `BlockingIOError` (raising and catching it in Python costs more than the syscall):
    /// the data, or None if the socket has nothing yet.
    fn _sock_recv_try(&self, py: Python<'_>, fd: RawFd, n: isize) -> PyResult<Option<Py<PyAny>>> {
        let n =
            usize::try_from(n).map_err(|_| PyValueError::new_err("negative buffersize in recv"))?;
        crate::sock::recv_bytes(py, fd, n)
    }

    /// `sock_sendall`'s first attempt: `send(fd, data)` as `socket.send` does it; the number
    /// of bytes sent, 0 when the socket buffer is full (see `sock::send_bytes`).
    fn _sock_send_try(
        &self,
        py: Python<'_>,
        fd: RawFd,
        data: &Bound<'_, PyBytes>,
    ) -> PyResult<usize> {
        crate::sock::send_bytes(py, fd, data.as_bytes())
    }

    /// `sock_recv`'s wait, right after a read of `sock` found nothing: a reader on `fd` that
    /// reads `n` bytes into `fut` natively and removes itself (see sock.rs), on an
    /// edge-triggered registration that stays for the socket's next wait
    /// (`Core::set_reader_edge`: no `epoll_ctl` per wait once registered). Returns the
    /// reader's handle.
    fn _sock_recv_native(
        slf: &Bound<'_, LoopCore>,
        fd: &Bound<'_, PyAny>,
        fut: &Bound<'_, PyAny>,
        n: usize,
        sock: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let raw = fd_of(fd)?.ok_or_else(too_big_fd)?;
        // The registration on `raw` is this socket's if the last wait on it was this same
        // socket object (alive, so its fd was not closed and reused meanwhile).
        let reuse = slf.get().edge_owners.get(py).get(&raw).is_some_and(|w| {
            // SAFETY: GIL held; `w` is a weak reference we made; the result is borrowed.
            unsafe { pyo3::ffi::PyWeakref_GetObject(w.as_ptr()) == sock.as_ptr() }
        });
        if !reuse {
            let weak = PyWeakrefReference::new(sock)?.into_any().unbind();
            let old = slf.get().edge_owners.get(py).insert(raw, weak);
            drop(old); // a weak reference without a callback: no Python code runs
        }
        let reader = Bound::new(
            py,
            SockRecv::new(raw, n, fut.clone().unbind(), slf.clone().unbind()),
        )?;
        Self::add_watcher(
            slf,
            fd,
            false,
            Some(reuse),
            reader.as_any(),
            &PyTuple::empty(py),
        )
    }

    /// Before a full garbage collection: track the queued handles that something besides
    /// the loop references (see `HandleRef` in handle.rs).
    fn _track_shared_handles(&self, py: Python<'_>) {
        self.core.for_each_pending(|h| h.track_if_shared(py));
    }

    /// The reader handle of `fd`, or None.
    fn _get_reader(&self, fd: &Bound<'_, PyAny>) -> PyResult<Option<Py<Handle>>> {
        Ok(fd_of(fd)?
            .and_then(|fd| self.core.watcher(fd, false))
            .map(|h| Py::clone(&h.0)))
    }

    /// The writer handle of `fd`, or None.
    fn _get_writer(&self, fd: &Bound<'_, PyAny>) -> PyResult<Option<Py<Handle>>> {
        Ok(fd_of(fd)?
            .and_then(|fd| self.core.watcher(fd, true))
            .map(|h| Py::clone(&h.0)))
    }

    /// Number of callbacks in the ready queue.
    fn _ready_count(&self) -> usize {
        self.core.ready_len()
    }

    /// Number of timers in the heap.
    fn _timer_count(&self) -> usize {
        self.core.timers_len()
    }

    /// Mark the loop closed and drop every pending callback, timer and fd watcher.
    fn _close_core(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Relaxed);
        let garbage = self.core.clear();
        // Dropped with no engine lock held: finalizers may call into the loop.
        drop(garbage);
        self.contexts.clear(py);
        let owners = std::mem::take(self.edge_owners.get(py));
        drop(owners);
        // The handles just freed went to the free lists: a closed loop keeps none of them.
        crate::freelist::trim(py);
        // The epoll fd and the eventfd go now, as asyncio closes its selector and self-pipe.
        self.core.close_reactor();
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(hooks) = self.hooks.try_lock() {
            if let Some((a, b)) = hooks.as_ref() {
                visit.call(a)?;
                visit.call(b)?;
            }
        }
        if let Some(cur) = self.current.try_lock() {
            if let Some((h, _, _)) = cur.as_ref() {
                visit.call(h)?;
            }
        }
        self.contexts.visit(&visit)?;
        let mut res = Ok(());
        self.core.for_each_pending(|h| {
            if res.is_ok() {
                res = h.visit(&visit);
            }
        });
        res
    }

    fn __clear__(&self) {
        let garbage = self.core.clear();
        drop(garbage);
        Python::attach(|py| self.contexts.clear(py));
        let hooks = self.hooks.lock().take();
        drop(hooks);
    }
}
