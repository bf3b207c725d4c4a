//! `Handle` and `TimerHandle`: what `call_soon`/`call_later`/`call_at`/`add_reader` return,
//! with asyncio's behaviour, repr and exception reporting.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyTuple};
use pyo3::{ffi, PyTraverseError, PyVisit};

use crate::loop_core::LoopCore;
use crate::py::{imports, run_in_context, GilCell};

/// The references a handle holds; cleared by `cancel()` (callback and args, as asyncio does)
/// and by the garbage collector.
#[derive(Default)]
pub(crate) struct Refs {
    callback: Option<Py<PyAny>>,
    args: Option<Py<PyTuple>>,
    context: Option<Py<PyAny>>,
    source_traceback: Option<Py<PyAny>>,
    /// The repr kept when a handle is cancelled in debug mode.
    repr: Option<String>,
    /// `context` is a snapshot shared with other handles: a run puts back what it changed
    /// (see context.rs).
    shared_context: bool,
}

/// Releases `obj` at once.
///
/// # Safety
/// The GIL is held.
#[inline(always)]
unsafe fn release<T>(obj: Option<Py<T>>) {
    if let Some(obj) = obj {
        // SAFETY: the GIL is held (see `# Safety`); we own the reference.
        unsafe { ffi::Py_DECREF(obj.into_ptr()) };
    }
}

impl Drop for Refs {
    // Inlined, so the field drops that follow see the fields taken (a handle is freed once
    // per callback).
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `Refs` lives only inside a `Handle`, which is dropped by its `tp_dealloc` or
        // cleared by `tp_clear`, both called by the interpreter with the GIL held; so the
        // references can be released now instead of going through pyo3's deferred pool
        // (which checks a thread-local on every drop). One after the other, straight-line:
        // this runs once per callback.
        unsafe {
            release(self.callback.take());
            release(self.args.take());
            release(self.context.take());
            release(self.source_traceback.take());
        }
    }
}

/// A callback scheduled on the loop (asyncio's `Handle`).
#[pyclass(subclass, frozen, module = "steploop")]
pub struct Handle {
    /// Callback, args, context. Locked only to copy or clear references; never across a call.
    refs: GilCell<Refs>,
    /// The loop that owns the handle (for the exception handler and timer bookkeeping).
    lp: Py<LoopCore>,
    cancelled: AtomicBool,
    /// Deadline in loop time for timers; `None` for plain handles.
    when: Option<f64>,
    /// Whether the timer is in the loop's heap (asyncio's `_scheduled`).
    scheduled: AtomicBool,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("cancelled", &self.cancelled)
            .field("when", &self.when)
            .finish_non_exhaustive()
    }
}

/// A timer (asyncio's `TimerHandle`): a `Handle` with a deadline.
#[pyclass(extends = Handle, frozen, module = "steploop")]
#[derive(Debug)]
pub struct TimerHandle;

/// Where pyo3 keeps a `Handle` object's Rust value, in bytes from the object's start (learnt
/// from the first handle pyo3 builds; 0 until then). See [`Handle::reuse`].
static PAYLOAD_OFFSET: GilCell<usize> = GilCell::new(0);

/// `tp_traverse` for `Handle` and `TimerHandle`, installed over pyo3's by
/// [`install_slots`].
///
/// pyo3's generic slot walks the type's bases on every call to find the next traverse
/// function; with many pending timers the collector calls this millions of times, and that
/// walk made up most of the cost of `call_later`. The layout is known here: the instance's
/// (heap) type, then the handle's references.
unsafe extern "C" fn traverse_handle(
    obj: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut std::ffi::c_void,
) -> std::ffi::c_int {
    // SAFETY: the collector calls tp_traverse with the GIL held, on a live instance of a
    // type whose tp_traverse this is: `Handle`, `TimerHandle` or a Python subclass of them
    // (whose `subtype_traverse` calls its base's). So `obj` has `Handle`'s layout.
    unsafe {
        let py = Python::assume_attached();
        let handle = pyo3::Borrowed::from_ptr(py, obj).cast_unchecked::<Handle>();
        let this = handle.get();
        // All pyo3 types are heap types whose base (`object`) is not: visiting the type
        // falls to us (see `subtype_traverse` in CPython's typeobject.c).
        let ret = visit(ffi::Py_TYPE(obj).cast(), arg);
        if ret != 0 {
            return ret;
        }
        for obj in this.referents().into_iter().flatten() {
            let ret = visit(obj.as_ptr(), arg);
            if ret != 0 {
                return ret;
            }
        }
        0
    }
}

/// `tp_dealloc` for `Handle` and `TimerHandle`, installed over pyo3's by [`install_slots`].
///
/// pyo3's generic slot wraps the drop in its trampoline (thread-local bookkeeping, a panic
/// guard) and releases the `Py` fields through its deferred-or-not logic; a handle is freed
/// once per callback, so that was a tenth of a `call_soon` chain's cost. The payload is known
/// here: the handle's references (released directly, the GIL is held), nothing else to drop.
unsafe extern "C" fn dealloc_handle(obj: *mut ffi::PyObject) {
    // SAFETY: the interpreter calls tp_dealloc with the GIL held, once, on an instance whose
    // reference count reached zero, of `Handle` or `TimerHandle` (no Python subclass can be
    // instantiated: the types have no constructor). Both are pyo3 objects whose only payload
    // needing a drop is the `Handle` value (`TimerHandle` is a unit struct; frozen classes
    // have no borrow flag, these have no `__dict__` or weakref slot), which is read out once
    // and dropped. Then the memory goes back through the type's tp_free (the free list, or
    // `PyObject_GC_Del`), and the reference every instance holds on its heap type is released.
    unsafe {
        ffi::PyObject_GC_UnTrack(obj.cast());
        let py = Python::assume_attached();
        let this: *const Handle = pyo3::Borrowed::from_ptr(py, obj)
            .cast_unchecked::<Handle>()
            .get();
        let Handle { refs, lp, .. } = std::ptr::read(this);
        drop(refs); // `Refs::drop` releases its references directly
        ffi::Py_DECREF(lp.into_ptr());
        let ty = ffi::Py_TYPE(obj);
        match (*ty).tp_free {
            Some(free) => free(obj.cast()),
            None => ffi::PyObject_GC_Del(obj.cast()),
        }
        ffi::Py_DECREF(ty.cast());
    }
}

/// Replaces pyo3's `tp_traverse` and `tp_dealloc` of `Handle` and `TimerHandle` by
/// [`traverse_handle`] and [`dealloc_handle`].
pub(crate) fn install_slots(py: Python<'_>) {
    for ty in [py.get_type::<Handle>(), py.get_type::<TimerHandle>()] {
        // SAFETY: GIL held; the types were just created by pyo3 and no instance exists yet
        // (this runs in the module's init). `traverse_handle` visits exactly what pyo3's
        // slot visits for these types (`__traverse__` below plus the type object), and
        // `dealloc_handle` frees what pyo3's slot frees.
        unsafe {
            (*ty.as_type_ptr()).tp_traverse = Some(traverse_handle);
            (*ty.as_type_ptr()).tp_dealloc = Some(dealloc_handle);
        }
    }
}

/// A handle as the engine holds it (a local type, so the engine's trait can be implemented).
/// Cloned and dropped only with the GIL held: the engine clones fd watchers while dispatching
/// events, which happens after the poll has re-acquired it.
///
/// # Handles the loop alone holds are not tracked by the garbage collector
///
/// A handle is created untracked ([`Handle::create`]). While one of the loop's queues holds
/// the only reference to it, the loop's own `tp_traverse` visits the handle's references in
/// its stead ([`HandleRef::visit`]), so a cycle through a pending callback is still found.
/// When the queue lets go of a handle that something else still references (the caller kept
/// what `call_soon` returned), the handle is tracked from then on like any object.
///
/// Why: with many pending timers or callbacks, every young collection used to traverse every
/// handle (asyncio pays the same for its Python handles); now the collector sees only the
/// loop, in the rare collections of the oldest generation. While the caller also holds a
/// queued handle, the handle is neither tracked nor visited until the next full collection:
/// its references count as external, so nothing is freed early; before each full collection
/// the loop tracks such handles (`LoopCore._track_shared_handles`, called from a `gc.callbacks`
/// hook in `steploop._loop`), so a cycle through one is found there, as on asyncio.
///
/// # Dropped with the GIL held
///
/// A `HandleRef` lives in the loop's engine queues, which are only touched with the GIL held
/// (`GilLock`, py.rs), or in the iteration running its batch (the GIL held too): its drop
/// releases the reference directly, with no check of pyo3's thread-local GIL count (a busy
/// loop drops one per callback).
#[derive(Clone)]
pub(crate) struct HandleRef(pub std::mem::ManuallyDrop<Py<Handle>>);

impl HandleRef {
    /// The engine's reference to `handle`.
    #[inline]
    pub(crate) fn new(handle: Py<Handle>) -> Self {
        HandleRef(std::mem::ManuallyDrop::new(handle))
    }
}

impl HandleRef {
    /// For the loop's `tp_traverse`: visits the handle itself if the collector tracks it, or
    /// its references if the loop is its only owner (see the type's documentation).
    pub(crate) fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        let ptr = self.0.as_ptr();
        // SAFETY: tp_traverse runs with the GIL held and `ptr` is alive (we hold it).
        let owned = unsafe { ffi::Py_REFCNT(ptr) == 1 && ffi::PyObject_GC_IsTracked(ptr) == 0 };
        if !owned {
            return visit.call(&*self.0);
        }
        // SAFETY: called from the loop's tp_traverse (see `Handle::referents`).
        for obj in unsafe { self.0.get().referents() } {
            visit.call(obj)?;
        }
        Ok(())
    }
}

impl HandleRef {
    /// Tracks the handle if something besides the loop references it (called before full
    /// collections, so that a cycle through a handle the caller kept is found even while
    /// the loop still holds it). With the GIL held.
    pub(crate) fn track_if_shared(&self, _py: Python<'_>) {
        let ptr = self.0.as_ptr();
        // SAFETY: GIL held (`_py`); `ptr` is alive (we hold it); tracking an untracked GC
        // object outside a collection is valid.
        unsafe {
            if ffi::Py_REFCNT(ptr) > 1 && ffi::PyObject_GC_IsTracked(ptr) == 0 {
                ffi::PyObject_GC_Track(ptr.cast());
            }
        }
    }
}

impl Drop for HandleRef {
    #[inline]
    fn drop(&mut self) {
        let ptr = self.0.as_ptr();
        debug_assert!(
            // SAFETY: PyGILState_Check has no preconditions.
            unsafe { ffi::PyGILState_Check() } == 1,
            "steploop: a handle dropped without the GIL"
        );
        // SAFETY: `ptr` is a live handle and this is our reference, released once (it is in a
        // `ManuallyDrop` that is not touched again). The GIL is held (see the type's
        // documentation), so the reference count may be read and released directly, and an
        // untracked GC object may be tracked. The count is read first because the common
        // case (we hold the last reference) needs nothing else.
        unsafe {
            if ffi::Py_REFCNT(ptr) > 1 && ffi::PyObject_GC_IsTracked(ptr) == 0 {
                ffi::PyObject_GC_Track(ptr.cast());
            }
            ffi::Py_DECREF(ptr);
        }
    }
}

impl steploop::Callback for HandleRef {
    #[inline]
    fn is_cancelled(&self) -> bool {
        self.0.get().cancelled.load(Ordering::Relaxed)
    }
    fn unscheduled(&self) {
        self.0.get().scheduled.store(false, Ordering::Relaxed);
    }
}

/// Arguments to build a handle.
pub(crate) struct NewHandle {
    pub callback: Py<PyAny>,
    pub args: Py<PyTuple>,
    pub context: Py<PyAny>,
    /// `context` is a shared snapshot (see context.rs).
    pub shared_context: bool,
    pub lp: Py<LoopCore>,
    pub when: Option<f64>,
    pub source_traceback: Option<Py<PyAny>>,
}

impl Handle {
    fn refs(&self, py: Python<'_>) -> &mut Refs {
        self.refs.get(py)
    }

    /// Every reference the handle holds (the loop, then callback, args, context and source
    /// traceback), for the collector: `__traverse__`, [`traverse_handle`] and
    /// [`HandleRef::visit`] visit exactly these.
    ///
    /// # Safety
    /// Called by the collector (GIL held, nothing of ours holding the cell: we never allocate
    /// Python objects while holding it).
    unsafe fn referents(&self) -> [Option<&Py<PyAny>>; 5] {
        // SAFETY: forwarded to the caller (see `# Safety`).
        let r = unsafe { self.refs.get_unchecked() };
        [
            Some(self.lp.as_any()),
            r.callback.as_ref(),
            r.args.as_ref().map(Py::as_any),
            r.context.as_ref(),
            r.source_traceback.as_ref(),
        ]
    }

    /// Creates a plain handle or, with `when`, a timer handle; returns it as a `Handle`,
    /// untracked by the garbage collector: the caller puts it in one of the loop's queues
    /// at once (see [`HandleRef`]).
    pub(crate) fn create(py: Python<'_>, h: NewHandle) -> PyResult<Py<Handle>> {
        let timer = h.when.is_some();
        let base = Handle {
            refs: GilCell::new(Refs {
                callback: Some(h.callback),
                args: Some(h.args),
                context: Some(h.context),
                source_traceback: h.source_traceback,
                repr: None,
                shared_context: h.shared_context,
            }),
            lp: h.lp,
            cancelled: AtomicBool::new(false),
            when: h.when,
            scheduled: AtomicBool::new(timer),
        };
        let handle = if timer {
            let init = PyClassInitializer::from(base).add_subclass(TimerHandle);
            Bound::new(py, init)?.into_super().unbind()
        } else {
            match Self::reuse(py, base) {
                Ok(handle) => return Ok(handle),
                Err(base) => {
                    let handle = Py::new(py, base)?;
                    let payload = handle.get() as *const Handle as usize;
                    *PAYLOAD_OFFSET.get(py) = payload - handle.as_ptr() as usize;
                    handle
                }
            }
        };
        // SAFETY: GIL held; `handle` is a live object of a GC type. A new handle goes straight
        // into one of the loop's queues, which stands in for it with the collector (see
        // `HandleRef`). `PyType_GenericAlloc` tracks it; one reused from the free list
        // (see freelist.rs) is only re-initialised and comes untracked.
        unsafe {
            if ffi::PyObject_GC_IsTracked(handle.as_ptr()) == 1 {
                ffi::PyObject_GC_UnTrack(handle.as_ptr().cast());
            }
        }
        Ok(handle)
    }

    /// A plain handle made in the memory of a freed one (freelist.rs), without pyo3's
    /// generic initialiser (a third of `call_soon`'s own cost): the object header is
    /// initialised and `value` written where pyo3 keeps it. Gives `value` back when the free
    /// list is empty or no handle was built by pyo3 yet (which tells where the value goes).
    fn reuse(py: Python<'_>, value: Handle) -> Result<Py<Handle>, Handle> {
        let offset = *PAYLOAD_OFFSET.get(py);
        if offset == 0 {
            return Err(value);
        }
        let Some((obj, ty)) = crate::freelist::pop_handle(py) else {
            return Err(value);
        };
        // SAFETY: GIL held. `obj` is the memory of a freed instance of exactly `Handle`
        // (freelist.rs lists only those), untracked by the collector, as `PyType_GenericAlloc`
        // would have sized it; `PyObject_Init` makes it a new object of the type (type,
        // reference to the heap type, reference count 1, tracemalloc), as the list's
        // `tp_alloc` does. pyo3 keeps a frozen pyclass's value at `PAYLOAD_OFFSET` (measured on
        // a handle pyo3 built) and nothing else there needs initialising: `Handle` has no
        // borrow flag (frozen), no `__dict__` or weakref slot, and its thread checker is a
        // zero-sized marker (it is `Send`) — the same layout facts `dealloc_handle` reads it
        // back with. A new handle comes untracked, as `create` returns it.
        unsafe {
            ffi::PyObject_Init(obj, ty);
            obj.cast::<u8>().add(offset).cast::<Handle>().write(value);
            Ok(Bound::from_owned_ptr(py, obj)
                .cast_into_unchecked::<Handle>()
                .unbind())
        }
    }

    /// Runs the callback in its context, as `Handle._run` does: an exception goes to the
    /// loop's exception handler, except `SystemExit` and `KeyboardInterrupt`, which propagate.
    pub(crate) fn run(slf: &Bound<'_, Handle>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        // Owned while the call runs (a callback may cancel its own handle, which clears these).
        let (callback, args, context, shared) = {
            let r = this.refs(py);
            match (&r.callback, &r.args, &r.context) {
                (Some(c), Some(a), Some(x)) => (
                    c.bind(py).clone(),
                    a.bind(py).clone(),
                    x.bind(py).clone(),
                    r.shared_context,
                ),
                // Cancelled (or cleared by the GC) after it was queued: nothing to run.
                _ => return Ok(()),
            }
        };
        let res = if shared {
            this.lp.get().contexts().retire(py, &context);
            crate::context::run_shared(py, &context, &callback, &args)
        } else {
            run_in_context(py, &context, &callback, &args)
        };
        let Err(err) = res else { return Ok(()) };
        if crate::py::escapes(py, &err) {
            return Err(err);
        }
        // asyncio formats `self._callback`/`self._args` *after* the call: a callback that
        // cancelled its own handle (e.g. `remove_reader` from a reader) shows as `None()`.
        let (cb_now, args_now) = {
            let r = this.refs(py);
            (
                r.callback.as_ref().map(|c| c.clone_ref(py)),
                r.args.as_ref().map(|a| a.clone_ref(py)),
            )
        };
        let cb_now = cb_now.unwrap_or_else(|| py.None());
        let args_now = args_now.map_or_else(|| py.None(), |a| a.into_any());
        let cb = imports(py)?
            .format_callback_source
            .call1(py, (cb_now, args_now))?;
        let ctx = PyDict::new(py);
        ctx.set_item("message", format!("Exception in callback {cb}"))?;
        ctx.set_item("exception", err.value(py))?;
        ctx.set_item("handle", slf)?;
        let tb = this
            .refs(py)
            .source_traceback
            .as_ref()
            .map(|t| t.clone_ref(py));
        if let Some(tb) = tb {
            if tb.bind(py).is_truthy()? {
                ctx.set_item("source_traceback", tb)?;
            }
        }
        this.lp
            .bind(py)
            .call_method1("call_exception_handler", (ctx,))?;
        Ok(())
    }

    fn repr_info(slf: &Bound<'_, Handle>) -> PyResult<Vec<String>> {
        let py = slf.py();
        let this = slf.get();
        let name = slf.get_type().name()?.to_string();
        let mut info = vec![name];
        let cancelled = this.cancelled.load(Ordering::Relaxed);
        if cancelled {
            info.push("cancelled".into());
        }
        if let Some(when) = this.when {
            let pos = if cancelled { 2 } else { 1 };
            info.insert(pos, format!("when={}", PyFloat::new(py, when).repr()?));
        }
        let (callback, args, tb) = {
            let r = this.refs(py);
            (
                r.callback.as_ref().map(|c| c.clone_ref(py)),
                r.args.as_ref().map(|a| a.clone_ref(py)),
                r.source_traceback.as_ref().map(|t| t.clone_ref(py)),
            )
        };
        if let Some(callback) = callback {
            let args = args.map_or_else(|| py.None(), |a| a.into_any());
            let src = imports(py)?
                .format_callback_source
                .call1(py, (callback, args))?;
            info.push(src.bind(py).str()?.to_string());
        }
        if let Some(tb) = tb {
            let tb = tb.bind(py);
            if tb.is_truthy()? {
                let frame = tb.get_item(-1)?;
                info.push(format!(
                    "created at {}:{}",
                    frame.get_item(0)?.str()?,
                    frame.get_item(1)?.str()?
                ));
            }
        }
        Ok(info)
    }

    /// `handle.cancel()` from Rust.
    pub(crate) fn cancel_handle(slf: &Bound<'_, Handle>) -> PyResult<()> {
        Self::cancel(slf)
    }
}

#[pymethods]
impl Handle {
    /// Cancel the call. If the callback is already canceled or executed, this method has no
    /// effect.
    fn cancel(slf: &Bound<'_, Handle>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.cancelled.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        if this.when.is_some() && this.scheduled.load(Ordering::Relaxed) {
            this.lp.get().core().timer_cancelled();
        }
        let debug = this.lp.get().debug();
        let keep_repr = if debug {
            // Keep a representation in debug mode, for the "Executing <Handle ...>" warning.
            Some(Self::__repr__(slf)?)
        } else {
            None
        };
        let (cb, args) = {
            let r = this.refs(py);
            if keep_repr.is_some() {
                r.repr = keep_repr;
            }
            (r.callback.take(), r.args.take())
        };
        // Dropped here, with no lock held: their finalizers may call back into the loop.
        drop((cb, args));
        Ok(())
    }

    /// Return True if the callback was cancelled.
    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Return the `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.refs(py)
            .context
            .as_ref()
            .map_or_else(|| py.None(), |c| c.clone_ref(py))
    }

    /// Run the callback now (asyncio's private `Handle._run`).
    fn _run(slf: &Bound<'_, Handle>) -> PyResult<()> {
        Handle::run(slf)
    }

    #[getter]
    fn _cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> Py<PyAny> {
        self.refs(py)
            .callback
            .as_ref()
            .map_or_else(|| py.None(), |c| c.clone_ref(py))
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Py<PyAny> {
        self.refs(py)
            .args
            .as_ref()
            .map_or_else(|| py.None(), |a| a.clone_ref(py).into_any())
    }

    #[getter]
    fn _context(&self, py: Python<'_>) -> Py<PyAny> {
        self.get_context(py)
    }

    #[getter]
    fn _loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.lp.clone_ref(py).into_any()
    }

    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Py<PyAny> {
        self.refs(py)
            .source_traceback
            .as_ref()
            .map_or_else(|| py.None(), |t| t.clone_ref(py))
    }

    #[getter]
    fn _repr(&self, py: Python<'_>) -> Option<String> {
        self.refs(py).repr.clone()
    }

    fn __repr__(slf: &Bound<'_, Handle>) -> PyResult<String> {
        if let Some(r) = slf.get().refs(slf.py()).repr.clone() {
            return Ok(r);
        }
        Ok(format!("<{}>", Self::repr_info(slf)?.join(" ")))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // SAFETY: the garbage collector traverses with the GIL held (see `referents`).
        for obj in unsafe { self.referents() } {
            visit.call(obj)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        // SAFETY: tp_clear runs with the GIL held; the references are moved out and dropped
        // after the cell is let go (their finalizers may touch this handle).
        let old = std::mem::take(unsafe { self.refs.get_unchecked() });
        drop(old);
    }
}

#[pymethods]
impl TimerHandle {
    /// Return a scheduled callback time: an absolute timestamp in loop time.
    fn when(slf: &Bound<'_, TimerHandle>) -> f64 {
        slf.as_super().get().when.unwrap_or(f64::NAN)
    }

    #[getter]
    fn _when(slf: &Bound<'_, TimerHandle>) -> f64 {
        Self::when(slf)
    }

    #[getter]
    fn _scheduled(slf: &Bound<'_, TimerHandle>) -> bool {
        slf.as_super().get().scheduled.load(Ordering::Relaxed)
    }

    fn __hash__(slf: &Bound<'_, TimerHandle>) -> PyResult<isize> {
        PyFloat::new(slf.py(), Self::when(slf)).hash()
    }

    fn __richcmp__(
        slf: &Bound<'_, TimerHandle>,
        other: &Bound<'_, PyAny>,
        op: pyo3::basic::CompareOp,
    ) -> PyResult<Py<PyAny>> {
        use pyo3::basic::CompareOp::*;
        let py = slf.py();
        let Ok(other) = other.cast::<TimerHandle>() else {
            return Ok(py.NotImplemented());
        };
        let (a, b) = (Self::when(slf), Self::when(other));
        let r = match op {
            Lt => a < b,
            Gt => a > b,
            Le => a < b || Self::equal(slf, other)?,
            Ge => a > b || Self::equal(slf, other)?,
            Eq => Self::equal(slf, other)?,
            Ne => !Self::equal(slf, other)?,
        };
        Ok(pyo3::types::PyBool::new(py, r)
            .to_owned()
            .into_any()
            .unbind())
    }
}

impl TimerHandle {
    /// asyncio's `TimerHandle.__eq__`: same deadline, callback, args and cancelled state.
    fn equal(a: &Bound<'_, TimerHandle>, b: &Bound<'_, TimerHandle>) -> PyResult<bool> {
        let py = a.py();
        if Self::when(a) != Self::when(b) {
            return Ok(false);
        }
        let (x, y) = (a.as_super().get(), b.as_super().get());
        if x.cancelled.load(Ordering::Relaxed) != y.cancelled.load(Ordering::Relaxed) {
            return Ok(false);
        }
        // Copy the references out first: `==` runs Python code, never under a lock.
        let cb = |h: &Handle| (h._callback(py), h._args(py));
        let ((c1, a1), (c2, a2)) = (cb(x), cb(y));
        Ok(c1.bind(py).eq(c2.bind(py))? && a1.bind(py).eq(a2.bind(py))?)
    }
}
