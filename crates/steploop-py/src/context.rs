//! The `contextvars` context of a handle scheduled without `context=`: one snapshot shared by
//! the handles scheduled from the same context, and a private copy for each run.
//!
//! asyncio gives every such handle its own `contextvars.copy_context()`: a new context object,
//! tracked by the garbage collector, that lives as long as the handle is pending. With 10^6
//! pending timers or callbacks those are 10^6 objects that every full collection walks, and
//! their allocations trigger the collections in the first place: most of the time of
//! `call_later` and `call_soon_threadsafe` under load went to the collector.
//!
//! A context's content is an immutable mapping (a HAMT) that copies share; two copies of the
//! same context hold the very same mapping object. So a handle needs only *a* context with
//! that mapping: [`SharedContexts::for_new_handle`] copies the current context as asyncio does,
//! and if the copy holds the same mapping as the last snapshot handed out, it hands out that
//! snapshot instead and lets the copy go (back to CPython's free list of contexts). What a
//! callback changes must stay its own, as it does with asyncio's private copy: a handle with a
//! shared snapshot runs in it and the snapshot gets its mapping back afterwards
//! ([`run_shared`]). A `context=` given by the caller is used as is (a task's context keeps
//! what its steps set).
//!
//! The mapping is read (and put back) in the context object's second field (`ctx_vars`, after
//! `ctx_prev`;
//! `Include/internal/pycore_context.h`, unchanged from 3.7 to 3.13). [`vars_offset_ok`]
//! checks that layout once against contexts with known sharing; on any other interpreter or
//! layout every handle gets its own copy, as before.

use std::ffi::CStr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::py::{copy_context, GilCell};

/// Whether `ctx_vars` sits where [`vars_of`] reads it (checked once per process).
static LAYOUT_OK: PyOnceLock<bool> = PyOnceLock::new();

/// The field holding a context's mapping (`ctx_vars`): the word after `ob_base` and
/// `ctx_prev`.
///
/// # Safety
/// `ctx` must be a live `contextvars.Context` and the layout must have been checked
/// ([`vars_offset_ok`]); the GIL must be held while the pointer is used.
unsafe fn vars_slot(ctx: *mut ffi::PyObject) -> *mut *mut ffi::PyObject {
    // SAFETY: forwarded to the caller; the struct starts with a `PyObject` header followed
    // by `ctx_prev` and `ctx_vars`, pointer-aligned.
    unsafe {
        ctx.cast::<u8>()
            .add(std::mem::size_of::<ffi::PyObject>())
            .cast::<*mut ffi::PyObject>()
            .add(1)
    }
}

/// The mapping of a context (see [`vars_slot`]).
///
/// # Safety
/// As for [`vars_slot`].
unsafe fn vars_of(ctx: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: forwarded to the caller.
    unsafe { *vars_slot(ctx) }
}

/// `Py_TYPE(obj)->tp_name == "hamt"`.
///
/// # Safety
/// `obj` must be a live object (the GIL held).
unsafe fn is_hamt(obj: *mut ffi::PyObject) -> bool {
    // SAFETY: forwarded; every type has a NUL-terminated `tp_name`.
    !obj.is_null() && unsafe { CStr::from_ptr((*ffi::Py_TYPE(obj)).tp_name) } == c"hamt"
}

/// Checks the layout against contexts whose sharing is known: two copies of one context hold
/// the same mapping; after a `ContextVar.set` inside one of them, they hold different ones;
/// every such word is a HAMT.
fn check_layout(py: Python<'_>) -> PyResult<bool> {
    if !crate::py::cpython_in(py, (3, 7), (3, 14)) {
        return Ok(false);
    }
    let var = py
        .import("contextvars")?
        .getattr("ContextVar")?
        .call1(("steploop_layout_probe",))?;
    let a = copy_context(py)?;
    // SAFETY: GIL held; `a` is a live context; PyContext_Copy returns a new reference or NULL
    // with an exception set.
    let b = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_Copy(a.as_ptr()))? };
    // SAFETY: `a` and `b` are live contexts; reading a pointer-sized word inside the object
    // (the struct is larger than three words on every version) is in bounds.
    let (va, vb) = unsafe { (vars_of(a.as_ptr()), vars_of(b.as_ptr())) };
    // SAFETY: `va`/`vb` are only dereferenced (for the type name) when they are non-null,
    // and only if they point into live objects: a HAMT check on a wrong word could read a
    // non-object, so the equality between two copies is checked first.
    if va.is_null() || va != vb || !unsafe { is_hamt(va) } {
        return Ok(false);
    }
    // `b.run(var.set, 1)`: b gets a new mapping, a keeps the old one.
    b.call_method1("run", (var.getattr("set")?, 1))?;
    // SAFETY: as above.
    let (va2, vb2) = unsafe { (vars_of(a.as_ptr()), vars_of(b.as_ptr())) };
    // SAFETY: `vb2` is dereferenced only when non-null and different from the checked `va`
    // (the set above must have replaced the mapping).
    Ok(va2 == va && vb2 != va && !vb2.is_null() && unsafe { is_hamt(vb2) })
}

/// Whether two contexts hold the very same mapping. Only after [`vars_offset_ok`].
fn same_vars(a: *mut ffi::PyObject, b: *mut ffi::PyObject) -> bool {
    // SAFETY: the callers pass live contexts (they hold references) and checked the layout
    // first.
    unsafe { vars_of(a) == vars_of(b) }
}

/// Whether the context layout was checked and found as expected.
pub(crate) fn vars_offset_ok(py: Python<'_>) -> bool {
    *LAYOUT_OK.get_or_init(py, || check_layout(py).unwrap_or(false))
}

/// Where a thread state keeps its current context (`PyThreadState.context`, a word of the
/// public but unstable `struct _ts`), found once by [`find_current_slot`], or `None`.
static CURRENT_SLOT: PyOnceLock<Option<usize>> = PyOnceLock::new();

/// The words of `PyThreadState` searched for the context field: the field is word 31 on
/// 3.11, and the struct is over 40 words long on 3.11 to 3.13.
const TSTATE_WORDS: usize = 36;

/// Finds the word of this thread's `PyThreadState` that holds the current context: the one
/// word that is the entered context while each of two contexts is entered, and changes back
/// when they are exited.
fn find_current_slot(py: Python<'_>) -> PyResult<Option<usize>> {
    if !crate::py::cpython_in(py, (3, 11), (3, 14)) || !vars_offset_ok(py) {
        return Ok(None);
    }
    // SAFETY: GIL held; `PyThreadState_Get` returns this thread's live thread state, whose
    // struct is more than `TSTATE_WORDS` pointer-sized words on the versions allowed above,
    // so reading those words is in bounds.
    let words = || unsafe {
        let ts = ffi::PyThreadState_Get().cast::<usize>();
        (0..TSTATE_WORDS).map(|i| *ts.add(i)).collect::<Vec<_>>()
    };
    let a = copy_context(py)?.into_bound(py);
    let b = copy_context(py)?.into_bound(py);
    let before = words();
    let mut inside = Vec::new();
    for ctx in [&a, &b] {
        // SAFETY: GIL held; entering a fresh context (not entered anywhere) and exiting it
        // right after, with nothing run in between.
        unsafe {
            if ffi::PyContext_Enter(ctx.as_ptr()) < 0 {
                return Err(PyErr::fetch(py));
            }
            inside.push(words());
            if ffi::PyContext_Exit(ctx.as_ptr()) < 0 {
                return Err(PyErr::fetch(py));
            }
        }
    }
    let after = words();
    let found: Vec<usize> = (0..TSTATE_WORDS)
        .filter(|&i| {
            inside[0][i] == a.as_ptr() as usize
                && inside[1][i] == b.as_ptr() as usize
                && before[i] == after[i]
        })
        .collect();
    Ok(match found[..] {
        [i] => Some(i),
        _ => None,
    })
}

/// The thread state's context field ([`CURRENT_SLOT`]), probed on first use.
fn current_slot(py: Python<'_>) -> Option<usize> {
    *CURRENT_SLOT.get_or_init(py, || find_current_slot(py).unwrap_or(None))
}

/// Whether the current context is read from the thread state on this interpreter (for the
/// tests: on CPython 3.11 it must be).
#[pyfunction]
pub(crate) fn _current_context_known(py: Python<'_>) -> bool {
    current_slot(py).is_some()
}

/// The context current on this thread (borrowed), without copying it; `None` when it has
/// none yet or the field was not found.
fn current_context(py: Python<'_>) -> Option<*mut ffi::PyObject> {
    let slot = current_slot(py)?;
    // SAFETY: GIL held; `slot` was found to be the thread state's context field (the same
    // struct for every thread), which holds NULL or a live context the thread state owns.
    let ctx = unsafe {
        *ffi::PyThreadState_Get()
            .cast::<*mut ffi::PyObject>()
            .add(slot)
    };
    (!ctx.is_null()).then_some(ctx)
}

/// The loop's last handed-out snapshot. A cell under the GIL: it is only borrowed for a
/// pointer comparison or a swap, never across an allocation or a call into Python (which is
/// when the collector could run the loop's `tp_traverse`).
pub(crate) struct SharedContexts {
    last: GilCell<Option<Py<PyAny>>>,
}

impl Default for SharedContexts {
    fn default() -> Self {
        SharedContexts {
            last: GilCell::new(None),
        }
    }
}

impl std::fmt::Debug for SharedContexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedContexts").finish_non_exhaustive()
    }
}

impl SharedContexts {
    /// The context for a handle scheduled without `context=`, and whether it is a shared
    /// snapshot (run with [`run_shared`]).
    pub(crate) fn for_new_handle(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, bool)> {
        // `Bound`s, not `Py`s, for what is let go here: this runs on `call_soon`'s raw entry
        // point (fastcall.rs), outside pyo3's trampolines, where a dropped `Py` would wait in
        // pyo3's pool for the next entry instead of being released (and, a context being a
        // GC object, the collector would walk every one of them meanwhile).
        // The current context holds the last snapshot's mapping: a copy would too, so the
        // snapshot is handed out without making one.
        // (The cell is let go before `current_context`, whose first call runs the probe.)
        if self.last.get(py).is_some() {
            if let Some(current) = current_context(py) {
                if let Some(snapshot) = self.last.get(py).as_ref() {
                    if same_vars(snapshot.as_ptr(), current) {
                        return Ok((snapshot.clone_ref(py), true));
                    }
                }
            }
        }
        let fresh = copy_context(py)?.into_bound(py);
        if !vars_offset_ok(py) {
            return Ok((fresh.unbind(), false));
        }
        let shared = {
            let last = self.last.get(py);
            match last.as_ref() {
                Some(snapshot) if same_vars(snapshot.as_ptr(), fresh.as_ptr()) => {
                    Some(snapshot.clone_ref(py))
                }
                _ => None,
            }
        };
        if let Some(shared) = shared {
            drop(fresh); // released now: back to CPython's free list of contexts
            return Ok((shared, true));
        }
        let old = self.last.get(py).replace(fresh.clone().unbind());
        // After the swap, and released now: a context's release may run code (its values'
        // `__del__`).
        drop(old.map(|o| o.into_bound(py)));
        Ok((fresh.unbind(), true))
    }

    /// Before a handle runs in `snapshot`: a snapshot being run is not handed out any more.
    /// Its mapping is what the running callback sets until the run ends, so a handle
    /// scheduled meanwhile must get a context of its own (the copy `for_new_handle` makes,
    /// which then becomes the snapshot handed out).
    pub(crate) fn retire(&self, py: Python<'_>, snapshot: &Bound<'_, PyAny>) {
        let last = self.last.get(py);
        let old = if last
            .as_ref()
            .is_some_and(|s| s.as_ptr() == snapshot.as_ptr())
        {
            last.take()
        } else {
            None
        };
        // Released now (the running handle holds another reference: no code runs here).
        drop(old.map(|o| o.into_bound(py)));
    }

    /// For the loop's `tp_traverse`.
    pub(crate) fn visit(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        // SAFETY: the collector runs with the GIL held, and never while the cell is borrowed
        // (see the type's documentation).
        if let Some(ctx) = unsafe { self.last.get_unchecked() }.as_ref() {
            visit.call(ctx)?;
        }
        Ok(())
    }

    /// Lets the snapshot go (the loop's `tp_clear`, `close()`).
    pub(crate) fn clear(&self, py: Python<'_>) {
        let old = self.last.get(py).take();
        drop(old.map(|o| o.into_bound(py)));
    }
}

/// The snapshots being run (entered by [`run_shared`]) with the mapping they had before,
/// innermost last: a nested run that meets one of them again runs in a copy of that
/// mapping, not of what the outer callback has set since.
static RUNNING: GilCell<Vec<(usize, usize)>> = GilCell::new(Vec::new());

/// Runs `callback(*args)` in a shared snapshot, as if in a private copy of it: what the
/// callback sets (`ContextVar.set` replaces the context's mapping) is undone when it returns,
/// so the other handles sharing the snapshot see it unchanged; the callback's own children
/// copied the context while it ran, changes included, as they would from a private copy. A
/// snapshot already entered (a nested run of the loop from inside a handle that runs in it)
/// cannot be entered twice: the handle then runs in a fresh context with the snapshot's
/// mapping from before the outer run.
pub(crate) fn run_shared<'py>(
    py: Python<'py>,
    snapshot: &Bound<'py, PyAny>,
    callback: &Bound<'py, PyAny>,
    args: &Bound<'py, pyo3::types::PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let ctx = snapshot.as_ptr();
    // SAFETY: GIL held; `snapshot` is a live context made by `for_new_handle`, which only
    // shares when the layout was checked, so `vars_slot` points to its mapping field. We own
    // a reference to `orig` from the INCREF until it is put back into the context or
    // released.
    unsafe {
        let slot = vars_slot(ctx);
        if ffi::PyContext_Enter(ctx) < 0 {
            ffi::PyErr_Clear();
            return run_in_pristine_copy(py, ctx, callback, args);
        }
        let orig = *slot;
        ffi::Py_INCREF(orig);
        RUNNING.get(py).push((ctx as usize, orig as usize));
        let res = crate::py::call_with_tuple(callback, args);
        RUNNING.get(py).pop();
        let exited = ffi::PyContext_Exit(ctx);
        let now = *slot;
        if now == orig {
            ffi::Py_DECREF(orig);
        } else {
            // The callback set a variable: the snapshot gets its mapping back (our
            // reference moves into it) and the changed one is released.
            *slot = orig;
            ffi::Py_DECREF(now);
        }
        if exited < 0 {
            let exit_err = PyErr::fetch(py);
            return res.and(Err(exit_err));
        }
        res
    }
}

/// A nested run met a snapshot that an outer callback is running in: run in a new context
/// holding the mapping the snapshot had when the outer run entered it.
fn run_in_pristine_copy<'py>(
    py: Python<'py>,
    ctx: *mut ffi::PyObject,
    callback: &Bound<'py, PyAny>,
    args: &Bound<'py, pyo3::types::PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let pristine = RUNNING
        .get(py)
        .iter()
        .rev()
        .find(|(c, _)| *c == ctx as usize)
        .map(|&(_, vars)| vars as *mut ffi::PyObject);
    // SAFETY: GIL held; `ctx` is a live context (the caller's snapshot); PyContext_Copy
    // returns a new reference or NULL with an exception set. `pristine` is kept alive by the outer `run_shared` (its
    // reference is released only after its callback, and so this nested run, returned); the
    // copy is not entered yet, so replacing its mapping (releasing the one it had) is what
    // `ContextVar.set` does to an entered one.
    unsafe {
        let copy = Bound::from_owned_ptr_or_err(py, ffi::PyContext_Copy(ctx))?;
        if let Some(vars) = pristine {
            let slot = vars_slot(copy.as_ptr());
            let replaced = *slot;
            ffi::Py_INCREF(vars);
            *slot = vars;
            ffi::Py_DECREF(replaced);
        }
        crate::py::run_in_context(py, &copy, callback, args)
    }
}
