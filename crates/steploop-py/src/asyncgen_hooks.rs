//! Installing the loop's async-generator hooks on entry and restoring the previous ones on
//! exit, as asyncio's `run_forever` does with `sys.get_asyncgen_hooks()` and
//! `sys.set_asyncgen_hooks()`.
//!
//! Those two calls cost ~600 ns per entry (a named tuple, keyword parsing, three calls): more
//! than half of a forced iteration of an idle loop. CPython 3.11 exports no C function for
//! them, but the hooks are two adjacent fields of the thread state
//! (`tstate->async_gen_firstiter`, `tstate->async_gen_finalizer`, public in
//! `Include/cpython/pystate.h` from 3.6 to 3.13). The first entries go through the `sys`
//! functions and then look for the exact pair of pointers they installed (the loop's bound
//! hook methods) in the thread state ([`learn`]); once two entries agree on the offset, every
//! entry swaps the two fields directly, raising the same audit events as
//! `sys.set_asyncgen_hooks`. When the pair is not found — another interpreter or layout —
//! every entry keeps using the `sys` functions.
//!
//! ```python
//! import sys, steploop
//! loop = steploop.new_event_loop()
//! seen = []
//! loop.call_soon(lambda: seen.append(sys.get_asyncgen_hooks().firstiter))
//! loop.run_once(0)
//! assert seen == [loop._asyncgen_firstiter_hook]
//! assert sys.get_asyncgen_hooks().firstiter is None
//! ```

use std::ffi::{c_char, c_int};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::py::imports;

extern "C" {
    /// `int PySys_Audit(const char *event, const char *format, ...)` (Python 3.8+; not
    /// declared by pyo3-ffi).
    fn PySys_Audit(event: *const c_char, format: *const c_char, ...) -> c_int;
}

/// How far into the thread state the search goes (3.11 has the hooks at byte 216; later
/// versions a little further). The search stops at the first match, which lies inside the
/// structure on every version that has the fields.
const SEARCH_BYTES: usize = 512;

/// What is known of the hook fields' place in `PyThreadState`: [`UNKNOWN`], [`UNAVAILABLE`],
/// or `offset + 2` once two entries in a row found them at the same offset. Only changed
/// with the GIL held.
static SLOT_STATE: AtomicUsize = AtomicUsize::new(UNKNOWN);
/// `offset + 2` of the first sighting, while `SLOT_STATE` is still [`UNKNOWN`].
static FIRST_SIGHTING: AtomicUsize = AtomicUsize::new(UNKNOWN);
const UNKNOWN: usize = 0;
const UNAVAILABLE: usize = 1;

/// The hooks that were installed before the loop's own, to put back on exit.
pub(crate) enum Saved {
    /// Owned references (or null for "no hook") taken out of the thread state at `offset`.
    Slots {
        offset: usize,
        firstiter: *mut ffi::PyObject,
        finalizer: *mut ffi::PyObject,
    },
    /// The `sys.get_asyncgen_hooks()` tuple.
    Tuple(Py<PyAny>),
    /// Nothing was changed (a nested run).
    Nothing,
}

// SAFETY: the raw pointers are owned references that are only touched with the GIL held
// (`install` and `restore` take a `Python` token).
unsafe impl Send for Saved {}
// SAFETY: as above; `Saved` is never read without the GIL.
unsafe impl Sync for Saved {}

/// Pointer to the hook pair of the current thread's state.
///
/// # Safety
/// The GIL must be held and `offset` must be a confirmed offset from `SLOT_STATE`.
unsafe fn slots(offset: usize) -> *mut [*mut ffi::PyObject; 2] {
    // SAFETY: with the GIL held the current thread state is valid; `offset` was found to
    // hold the two hook fields by `learn`.
    unsafe {
        ffi::PyThreadState_Get()
            .cast::<u8>()
            .add(offset)
            .cast::<[*mut ffi::PyObject; 2]>()
    }
}

/// Whether the thread-state layout may be searched: CPython 3.6 to 3.13, where
/// `async_gen_firstiter` and `async_gen_finalizer` are adjacent fields of `PyThreadState`
/// within its first [`SEARCH_BYTES`].
fn searchable(py: Python<'_>) -> bool {
    crate::py::cpython_in(py, (3, 6), (3, 14))
}

/// Looks for the adjacent pair `(a, b)` among the first [`SEARCH_BYTES`] of the current
/// thread state, which `sys.set_asyncgen_hooks(a, b)` has just installed.
fn scan(a: *mut ffi::PyObject, b: *mut ffi::PyObject) -> Option<usize> {
    let word = std::mem::size_of::<*mut ffi::PyObject>();
    // SAFETY: the caller holds the GIL, so the thread state is valid; the search stops at
    // the first match, and `learn` only calls it on versions where the hook fields lie
    // within SEARCH_BYTES of the start of the structure.
    unsafe {
        let base = ffi::PyThreadState_Get().cast::<*mut ffi::PyObject>();
        (0..SEARCH_BYTES / word - 1)
            .find(|&i| ptr::read(base.add(i)) == a && ptr::read(base.add(i + 1)) == b)
            .map(|i| i * word)
    }
}

/// After an entry through the `sys` functions installed the loop's `(a, b)`: finds where
/// they sit in the thread state. The offset is used once two entries agree on it (with
/// different hook objects, a bound method pair per loop); any disagreement or miss turns
/// the fast path off for the process.
fn learn(py: Python<'_>, a: &Py<PyAny>, b: &Py<PyAny>) {
    let found = if searchable(py) {
        scan(a.as_ptr(), b.as_ptr())
    } else {
        None
    };
    let first = FIRST_SIGHTING.load(Ordering::Relaxed);
    let next = match found {
        None => UNAVAILABLE,
        Some(offset) if first == UNKNOWN => {
            FIRST_SIGHTING.store(offset + 2, Ordering::Relaxed);
            return;
        }
        Some(offset) if first == offset + 2 => offset + 2,
        Some(_) => UNAVAILABLE,
    };
    SLOT_STATE.store(next, Ordering::Relaxed);
}

/// `PySys_Audit(event, NULL)`: what `sys.set_asyncgen_hooks` raises before changing a hook
/// (an audit hook may refuse it).
fn audit(py: Python<'_>, event: &std::ffi::CStr) -> PyResult<()> {
    // SAFETY: the GIL is held; a null format means no arguments.
    if unsafe { PySys_Audit(event.as_ptr(), ptr::null()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(())
}

/// Installs `(firstiter, finalizer)` as the current thread's hooks and returns the previous
/// ones. On an error (an audit hook refused), the thread's hooks are as they were.
pub(crate) fn install(
    py: Python<'_>,
    firstiter: &Py<PyAny>,
    finalizer: &Py<PyAny>,
) -> PyResult<Saved> {
    let state = SLOT_STATE.load(Ordering::Relaxed);
    if state == UNKNOWN || state == UNAVAILABLE {
        let imp = imports(py)?;
        let old = imp.get_asyncgen_hooks.call0(py)?;
        if let Err(e) = imp.set_asyncgen_hooks.call1(py, (firstiter, finalizer)) {
            // `sys.set_asyncgen_hooks` may have set the finalizer before refusing the first
            // hook; asyncio's `finally` puts the old ones back too.
            let _ = restore(py, Saved::Tuple(old));
            return Err(e);
        }
        if state == UNKNOWN {
            learn(py, firstiter, finalizer);
        }
        return Ok(Saved::Tuple(old));
    }
    let offset = state - 2;
    audit(py, c"sys.set_asyncgen_hook_finalizer")?;
    audit(py, c"sys.set_asyncgen_hook_firstiter")?;
    // SAFETY: the GIL is held and `offset` was confirmed by `learn`. The fields own their
    // references: the old ones move into `Saved`, the new ones are increfed before they are
    // stored.
    unsafe {
        let pair = &mut *slots(offset);
        ffi::Py_INCREF(firstiter.as_ptr());
        ffi::Py_INCREF(finalizer.as_ptr());
        let old = *pair;
        *pair = [firstiter.as_ptr(), finalizer.as_ptr()];
        Ok(Saved::Slots {
            offset,
            firstiter: old[0],
            finalizer: old[1],
        })
    }
}

/// Puts back the hooks `install` replaced.
pub(crate) fn restore(py: Python<'_>, saved: Saved) -> PyResult<()> {
    match saved {
        Saved::Nothing => Ok(()),
        Saved::Tuple(old) => {
            imports(py)?
                .set_asyncgen_hooks
                .call1(py, old.bind(py).cast::<PyTuple>()?)?;
            Ok(())
        }
        Saved::Slots {
            offset,
            firstiter,
            finalizer,
        } => {
            let audits = audit(py, c"sys.set_asyncgen_hook_finalizer")
                .and_then(|()| audit(py, c"sys.set_asyncgen_hook_firstiter"));
            // SAFETY: `offset` was confirmed by `learn` (`install` made the `Slots`). The saved references move back into
            // the fields; the loop's hooks that were there are released once the fields are
            // consistent again (a decref may run code).
            unsafe {
                let pair = &mut *slots(offset);
                let current = *pair;
                if audits.is_ok() {
                    *pair = [firstiter, finalizer];
                    ffi::Py_XDECREF(current[0]);
                    ffi::Py_XDECREF(current[1]);
                } else {
                    ffi::Py_XDECREF(firstiter);
                    ffi::Py_XDECREF(finalizer);
                }
            }
            audits
        }
    }
}
