//! The one place for raw CPython calls and cached imports.

use pyo3::exceptions::PyAttributeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

/// Python objects the loop needs on its paths, imported once.
pub struct Imports {
    /// `asyncio.log.logger`.
    pub logger: Py<PyAny>,
    /// `asyncio.format_helpers._format_callback_source`.
    pub format_callback_source: Py<PyAny>,
    /// `asyncio.format_helpers.extract_stack`.
    pub extract_stack: Py<PyAny>,
    /// `asyncio.base_events._format_handle`.
    pub format_handle: Py<PyAny>,
    /// `asyncio.events.__dict__`: `_get_running_loop`/`_set_running_loop` are looked up in
    /// it at each use, as asyncio looks them up on the module (tests swap in the pure-Python
    /// versions); see [`Imports::call_events_fn`].
    pub events: Py<PyDict>,
    /// The two functions of `events` the loop calls, with the version of the dict they were
    /// read at (see [`Imports::call_events_fn`]).
    events_fns: GilCell<EventsFns>,
    /// `asyncio.selector_events._SelectorSocketTransport`, its `_read_ready` and its
    /// `_read_ready__data_received` (functions), and `socket.socket`: what
    /// `transport::native_reader` recognises.
    pub socket_transport_type: Py<PyAny>,
    pub transport_read_ready: Py<PyAny>,
    pub transport_data_received: Py<PyAny>,
    pub socket_type: Py<PyAny>,
    /// `sys.get_asyncgen_hooks`.
    pub get_asyncgen_hooks: Py<PyAny>,
    /// `sys.set_asyncgen_hooks`.
    pub set_asyncgen_hooks: Py<PyAny>,
    /// `sys._getframe`.
    pub getframe: Py<PyAny>,
    /// `asyncio.coroutines.iscoroutine`.
    pub iscoroutine: Py<PyAny>,
    /// `asyncio.coroutines.iscoroutinefunction`.
    pub iscoroutinefunction: Py<PyAny>,
    /// `asyncio.tasks.current_task`.
    pub current_task: Py<PyAny>,
    /// `asyncio.tasks._enter_task`.
    pub enter_task: Py<PyAny>,
    /// `asyncio.tasks._leave_task`.
    pub leave_task: Py<PyAny>,
    /// `asyncio.futures.isfuture`.
    pub isfuture: Py<PyAny>,
    /// `asyncio.tasks.ensure_future`.
    pub ensure_future: Py<PyAny>,
    /// `asyncio.base_events._run_until_complete_cb`.
    pub run_until_complete_cb: Py<PyAny>,
    /// `asyncio.tasks.Task` (the C Task).
    pub task_type: Py<PyAny>,
    /// `asyncio.tasks._set_task_name`.
    pub set_task_name: Py<PyAny>,
    /// `asyncio.base_events.BaseEventLoop.create_task` (debug mode: its frames are part of
    /// the tasks' `_source_traceback`, which asyncio prints).
    pub py_create_task: Py<PyAny>,
}

impl Imports {
    /// Calls `asyncio.events.<name>([arg])` (`_get_running_loop()` or `_set_running_loop(loop)`),
    /// with the function as the module has it now: tests replace them with the pure-Python
    /// versions, and asyncio looks them up at each call. A dict lookup costs ~130
    /// instructions and a loop entry makes three calls, so the functions are kept with the
    /// dict's version tag (which changes with any change to the dict) and looked up again
    /// only when it moved; interpreters without the tag look up every time.
    pub fn call_events_fn<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyString>,
        arg: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let f = self.events_fn(py, name)?;
        // SAFETY: GIL held; `f` is a strong reference for the duration of the call and the
        // argument is borrowed from a live `Bound`.
        unsafe {
            let res = match arg {
                None => ffi::compat::PyObject_CallNoArgs(f.as_ptr()),
                Some(a) => ffi::PyObject_CallOneArg(f.as_ptr(), a.as_ptr()),
            };
            Bound::from_owned_ptr_or_err(py, res)
        }
    }

    /// `asyncio.events.<name>`, from the cache while the module's dict is unchanged.
    fn events_fn<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyString>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let version = dict_version(self.events.bind(py));
        if let Some(v) = version {
            if let Some(hit) = self.events_fns.get(py).get(v, name) {
                return Ok(hit.bind(py).clone());
            }
        }
        let f = match self.events.bind(py).get_item(name)? {
            Some(f) => f,
            None => {
                return Err(PyAttributeError::new_err(format!(
                    "module 'asyncio.events' has no attribute '{name}'"
                )))
            }
        };
        if let Some(v) = version {
            self.events_fns.get(py).put(v, name, f.clone().unbind());
        }
        Ok(f)
    }
}

/// The cached `asyncio.events` functions (`(name, function)`) and the dict version they
/// belong to.
#[derive(Default)]
struct EventsFns {
    version: u64,
    entries: Vec<(Py<PyString>, Py<PyAny>)>,
}

impl EventsFns {
    fn get(&self, version: u64, name: &Bound<'_, PyString>) -> Option<&Py<PyAny>> {
        if version != self.version {
            return None;
        }
        self.entries
            .iter()
            .find(|(n, _)| n.as_ptr() == name.as_ptr())
            .map(|(_, f)| f)
    }

    fn put(&mut self, version: u64, name: &Bound<'_, PyString>, f: Py<PyAny>) {
        if version != self.version {
            self.entries.clear();
            self.version = version;
        }
        self.entries.retain(|(n, _)| n.as_ptr() != name.as_ptr());
        self.entries.push((name.clone().unbind(), f));
    }
}

/// The dict's version tag (changed by every insertion, deletion or replacement), where the
/// interpreter keeps one: CPython up to 3.13.
#[allow(deprecated)] // `ma_version_tag` is deprecated from 3.12, still maintained to 3.13
pub(crate) fn dict_version(d: &Bound<'_, PyDict>) -> Option<u64> {
    #[cfg(not(any(Py_3_14, PyPy, GraalPy, Py_LIMITED_API)))]
    {
        // SAFETY: `d` is a live exact-or-subclass dict; reading a field of its struct.
        let tag = unsafe { (*d.as_ptr().cast::<ffi::PyDictObject>()).ma_version_tag };
        // 0 would be "never versioned"; real tags start above it.
        if tag != 0 {
            return Some(tag);
        }
    }
    let _ = d;
    None
}

static IMPORTS: PyOnceLock<Imports> = PyOnceLock::new();

/// The cached imports (imported on first use).
pub fn imports(py: Python<'_>) -> PyResult<&'static Imports> {
    IMPORTS.get_or_try_init(py, || {
        let get = |module: &str, name: &str| -> PyResult<Py<PyAny>> {
            Ok(py.import(module)?.getattr(name)?.unbind())
        };
        Ok(Imports {
            logger: get("asyncio.log", "logger")?,
            format_callback_source: get("asyncio.format_helpers", "_format_callback_source")?,
            extract_stack: get("asyncio.format_helpers", "extract_stack")?,
            format_handle: get("asyncio.base_events", "_format_handle")?,
            events: py.import("asyncio.events")?.dict().unbind(),
            events_fns: GilCell::new(EventsFns::default()),
            socket_transport_type: get("asyncio.selector_events", "_SelectorSocketTransport")?,
            transport_read_ready: py
                .import("asyncio.selector_events")?
                .getattr("_SelectorSocketTransport")?
                .getattr("_read_ready")?
                .unbind(),
            transport_data_received: py
                .import("asyncio.selector_events")?
                .getattr("_SelectorSocketTransport")?
                .getattr("_read_ready__data_received")?
                .unbind(),
            socket_type: get("socket", "socket")?,
            get_asyncgen_hooks: get("sys", "get_asyncgen_hooks")?,
            set_asyncgen_hooks: get("sys", "set_asyncgen_hooks")?,
            getframe: get("sys", "_getframe")?,
            iscoroutine: get("asyncio.coroutines", "iscoroutine")?,
            iscoroutinefunction: get("asyncio.coroutines", "iscoroutinefunction")?,
            current_task: get("asyncio.tasks", "current_task")?,
            enter_task: get("asyncio.tasks", "_enter_task")?,
            leave_task: get("asyncio.tasks", "_leave_task")?,
            isfuture: get("asyncio.futures", "isfuture")?,
            ensure_future: get("asyncio.tasks", "ensure_future")?,
            run_until_complete_cb: get("asyncio.base_events", "_run_until_complete_cb")?,
            task_type: get("asyncio.tasks", "Task")?,
            set_task_name: get("asyncio.tasks", "_set_task_name")?,
            py_create_task: py
                .import("asyncio.base_events")?
                .getattr("BaseEventLoop")?
                .getattr("create_task")?
                .unbind(),
        })
    })
}

/// `contextvars.copy_context()`.
pub fn copy_context(py: Python<'_>) -> PyResult<Py<PyAny>> {
    // SAFETY: we hold the GIL (`py`); PyContext_CopyCurrent returns a new reference or NULL
    // with an exception set, which `from_owned_ptr_or_err` turns into a PyErr.
    unsafe { Ok(Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent())?.unbind()) }
}

/// `callback(*args)`: a vectorcall on the tuple's items when the callable has one (what
/// `PyObject_Call` ends up doing, without its generic entry: a handle's run is one such call
/// per callback), `PyObject_Call` otherwise.
#[inline]
pub fn call_with_tuple<'py>(
    callback: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = callback.py();
    let f = callback.as_ptr();
    // SAFETY: GIL held (`py`); `f` and `args` are live objects we hold references to for the
    // whole call, and `args` is an exact tuple (`Bound<PyTuple>`), so its first `len` item
    // slots are the argument vector; the call returns a new reference or NULL with an
    // exception set.
    unsafe {
        let res = if ffi::PyVectorcall_Function(f).is_some() {
            let t = args.as_ptr().cast::<ffi::PyTupleObject>();
            let n = ffi::PyTuple_GET_SIZE(args.as_ptr()) as usize;
            ffi::PyObject_Vectorcall(f, (*t).ob_item.as_ptr(), n, std::ptr::null_mut())
        } else {
            ffi::PyObject_Call(f, args.as_ptr(), std::ptr::null_mut())
        };
        Bound::from_owned_ptr_or_err(py, res)
    }
}

/// `context.run(callback, *args)` without building a bound method: enter, call, exit. A
/// context that is not a `contextvars.Context` (asyncio accepts anything) gets asyncio's
/// literal `context.run(...)`: an `int` raises `AttributeError` as it does there.
pub fn run_in_context<'py>(
    py: Python<'py>,
    context: &Bound<'py, PyAny>,
    callback: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: GIL held; a type check of a live object.
    if unsafe { ffi::PyContext_CheckExact(context.as_ptr()) } == 0 {
        let run = context.getattr(pyo3::intern!(py, "run"))?;
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(callback.clone());
        all.extend(args.iter());
        return run.call1(PyTuple::new(py, all)?);
    }
    // SAFETY: GIL held; `context` is a live object. PyContext_Enter type-checks it and fails
    // with an exception (RuntimeError if already entered, TypeError if not a Context).
    if unsafe { ffi::PyContext_Enter(context.as_ptr()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    let res = call_with_tuple(callback, args);
    // SAFETY: GIL held; we entered this very context just above, so exiting it is valid.
    // Exit only fails when the context is not the current one, which cannot happen here
    // because the call above restores the context stack when it returns.
    if unsafe { ffi::PyContext_Exit(context.as_ptr()) } < 0 {
        let exit_err = PyErr::fetch(py);
        return match res {
            Ok(_) => Err(exit_err),
            Err(e) => Err(e),
        };
    }
    res
}

/// Whether `err` must leave a callback instead of being reported (asyncio's
/// `except (SystemExit, KeyboardInterrupt): raise`).
pub fn escapes(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<pyo3::exceptions::PySystemExit>(py)
        || err.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
}

/// Whether this is CPython from `first` up to, not including, `end` (`(major, minor)`): the
/// versions whose private structure layouts a module relies on.
pub fn cpython_in(py: Python<'_>, first: (u8, u8), end: (u8, u8)) -> bool {
    let version = py.version_info();
    let cpython = py
        .import("sys")
        .and_then(|sys| {
            sys.getattr("implementation")?
                .getattr("name")?
                .extract::<String>()
        })
        .is_ok_and(|name| name == "cpython");
    cpython && (first..end).contains(&(version.major, version.minor))
}

/// `threading.get_ident()`.
pub fn thread_ident() -> u64 {
    // SAFETY: PyThread_get_thread_ident has no preconditions (it wraps pthread_self).
    unsafe { ffi::PyThread_get_thread_ident() as u64 }
}

/// Interior mutability for data that is only touched with the GIL held (the module is
/// declared `gil_used = true`, so even a free-threaded build runs it under the GIL). Costs
/// nothing, unlike a lock: a handle's references are read on every callback run.
///
/// Callers must not run Python code while they hold the `&mut` they get (it could re-enter
/// and take a second one): they copy or take what they need and let go.
pub(crate) struct GilCell<T>(std::cell::UnsafeCell<T>);

// SAFETY: the contents are only reached through `get`, which requires a `Python` token (the
// GIL is held, so only one thread at a time), or through `get_unchecked` from places where
// the GIL is held by construction (tp_traverse, tp_clear). `T: Send` because the thread
// holding the GIL may change between accesses.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    /// Wraps `value`.
    pub(crate) const fn new(value: T) -> Self {
        GilCell(std::cell::UnsafeCell::new(value))
    }

    /// The contents, for a holder of the GIL. See the type's doc for the re-entrancy rule.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) fn get(&self, _py: Python<'_>) -> &mut T {
        // SAFETY: the GIL is held (`_py`), so no other thread touches the cell; callers do not
        // run Python code while they hold the reference, so no second `&mut` is alive.
        unsafe { &mut *self.0.get() }
    }

    /// The contents without a GIL token.
    ///
    /// # Safety
    /// The caller holds the GIL (e.g. in `__traverse__`/`__clear__`) and follows the
    /// re-entrancy rule.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn get_unchecked(&self) -> &mut T {
        // SAFETY: forwarded to the caller (see `# Safety`).
        unsafe { &mut *self.0.get() }
    }
}

/// Instance attributes read straight from an object's `__dict__`, without the type lookup of
/// `getattr` (and its method-cache misses, which walk the whole MRO): for the hot paths on
/// asyncio's transports, whose state lives in the instance dict. Only valid for names that
/// no class of the object's MRO defines as a data descriptor (see [`dict_names_ok`]); a
/// name missing from the dict falls back to `getattr` (class attributes, the error).
pub struct InstanceDict<'a, 'py> {
    obj: &'a Bound<'py, PyAny>,
    dict: Bound<'py, PyDict>,
}

impl<'a, 'py> InstanceDict<'a, 'py> {
    /// The dict of `obj` (made if the interpreter kept the attributes inline).
    pub fn of(obj: &'a Bound<'py, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        // SAFETY: GIL held; `obj` is live. `PyObject_GenericGetDict` returns a new reference
        // to the instance dict (creating it if needed), or NULL with an exception set (an
        // object without one: then the caller should not be here, and gets the error).
        let dict = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyObject_GenericGetDict(obj.as_ptr(), std::ptr::null_mut()),
            )?
        };
        Ok(InstanceDict {
            obj,
            dict: dict.cast_into::<PyDict>()?,
        })
    }

    /// `obj.<name>`.
    pub fn get(&self, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
        match self.own(name)? {
            Some(found) => Ok(found),
            None => self.obj.getattr(name),
        }
    }

    /// `obj.__dict__.get(name)`: the instance's own attribute only.
    pub fn own(&self, name: &Bound<'py, PyString>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = self.obj.py();
        // SAFETY: GIL held; the dict and the (interned, hash cached) name are live.
        // `PyDict_GetItemWithError` returns a borrowed reference, or NULL: not found, or an
        // error (then set).
        let found = unsafe { ffi::PyDict_GetItemWithError(self.dict.as_ptr(), name.as_ptr()) };
        if found.is_null() {
            return match PyErr::take(py) {
                Some(err) => Err(err),
                None => Ok(None),
            };
        }
        // SAFETY: `found` is a live object the dict holds; we take our own reference.
        Ok(Some(unsafe { Bound::from_borrowed_ptr(py, found) }))
    }

    /// The dict itself.
    pub fn dict(&self) -> &Bound<'py, PyDict> {
        &self.dict
    }
}

/// Whether none of `names` is a data descriptor (a property, a slot) in `ty`'s MRO, so that
/// [`InstanceDict::get`] reads what `getattr` would.
pub fn dict_names_ok(ty: &Bound<'_, PyAny>, names: &[&str]) -> PyResult<bool> {
    for cls in ty.getattr("__mro__")?.try_iter()? {
        let cls = cls?;
        let dict = cls.getattr("__dict__")?;
        for name in names {
            if dict.contains(*name)? {
                let value = dict.get_item(*name)?;
                let vt = value.get_type();
                if vt.hasattr("__set__")? || vt.hasattr("__delete__")? {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

unsafe extern "C" {
    /// The type of bound methods, and the accessor of their function (exported by libpython,
    /// not wrapped by pyo3-ffi).
    static mut PyMethod_Type: ffi::PyTypeObject;
    fn PyMethod_Function(method: *mut ffi::PyObject) -> *mut ffi::PyObject;
}

/// `m.__func__` (borrowed) if `m` is a bound method, without an attribute lookup.
pub fn method_function(m: &Bound<'_, PyAny>) -> Option<*mut ffi::PyObject> {
    // SAFETY: GIL held; comparing the type pointer with the exported method type, then
    // `PyMethod_Function` on an object of exactly that type returns its borrowed function.
    unsafe {
        if ffi::Py_TYPE(m.as_ptr()) == std::ptr::addr_of_mut!(PyMethod_Type) {
            Some(PyMethod_Function(m.as_ptr()))
        } else {
            None
        }
    }
}

/// The lock around a loop's engine queues (`Core::with_lock`): the GIL, which every caller
/// holds already, instead of an atomic compare-and-swap pair per queue operation (a third
/// of the engine's cost of a one-callback iteration was those).
///
/// Why the GIL is enough: every call into a `LoopCore`'s engine is made with the GIL held
/// (pyo3 methods and slots, the raw `call_soon` entry points, the collector), from Python
/// threads only, and the module is declared `gil_used = true`, so a free-threaded build
/// runs it under the GIL too. The engine's critical sections run no Python code and never
/// release the GIL: its locking rule allows no callback, no drop of a callback and no poll
/// under the queue lock (the GIL is released around the poll only, which touches the
/// reactor, not the queues). So two threads are never in them at once. What is left is
/// re-entry on the thread that holds the section, which the rule also excludes; the flag
/// catches it if that ever changes (a panic, where a mutex would deadlock).
#[derive(Debug)]
pub(crate) struct GilLock {
    /// A critical section is running. Read and written only with the GIL held, so `Relaxed`
    /// is enough: taking the GIL orders everything done before its last release.
    held: std::sync::atomic::AtomicBool,
}

// SAFETY: mutual exclusion as argued in the type's documentation: every locker holds the GIL
// and keeps it until it unlocks, so no two threads lock at once; a lock taken again before
// it is released (same thread) panics instead of being granted.
unsafe impl steploop::RawMutex for GilLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: GilLock = GilLock {
        held: std::sync::atomic::AtomicBool::new(false),
    };
    type GuardMarker = parking_lot::lock_api::GuardNoSend;

    #[inline]
    fn lock(&self) {
        if !self.try_lock() {
            panic!("steploop: engine queue lock taken twice (re-entered critical section)");
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        debug_assert!(
            // SAFETY: PyGILState_Check has no preconditions.
            unsafe { ffi::PyGILState_Check() } == 1,
            "steploop: engine queues used without the GIL"
        );
        if self.held.load(Relaxed) {
            return false;
        }
        self.held.store(true, Relaxed);
        true
    }

    #[inline]
    unsafe fn unlock(&self) {
        self.held.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The return value of a raw CPython entry point (one called without a pyo3 trampoline):
/// the result, or NULL with the error set; a panic becomes a `PanicException` naming
/// `what`.
pub fn raw_return(
    result: std::thread::Result<PyResult<*mut ffi::PyObject>>,
    what: &str,
) -> *mut ffi::PyObject {
    // SAFETY: raw entry points are called by the interpreter with the GIL held; restoring
    // an error makes NULL a valid return value.
    let py = unsafe { Python::assume_attached() };
    match result {
        Ok(Ok(ptr)) => ptr,
        Ok(Err(err)) => {
            err.restore(py);
            std::ptr::null_mut()
        }
        Err(_) => {
            pyo3::panic::PanicException::new_err(format!("panic in {what}")).restore(py);
            std::ptr::null_mut()
        }
    }
}
