//! Free lists for `Handle` and `TimerHandle` objects, kept under the GIL.
//!
//! A `call_soon` chain creates and frees one handle per callback; reusing the memory skips
//! the allocator and, more importantly, the collector's allocation count (a fresh GC object
//! counts towards the next young collection, a reused one does not). pyo3's own
//! `#[pyclass(freelist = N)]` does the same behind a mutex (it supports free-threaded
//! builds); this module is built with `gil_used = true`, so the GIL is the lock.
//!
//! Installed over the types' `tp_alloc`/`tp_free` by [`install`]; objects of other types
//! (Python subclasses of `Handle`) never come here: their type has its own slots.

use std::ffi::c_void;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::handle::{Handle, TimerHandle};
use crate::py::GilCell;

/// Objects kept per type while a loop is busy (8 MiB each at most). A thread calling
/// `call_soon_threadsafe` fills the ready queue for a whole GIL switch interval (~15,000
/// handles on this machine) before the loop runs them; with 4096 kept, the rest went back
/// to pymalloc, whose emptied arenas went back to the kernel, and every burst faulted its
/// pages in again (measured: 2.5x the page faults of rloop, a quarter of the run's time).
const CAPACITY: usize = 65536;

/// Objects kept per type once no loop is busy ([`trim`]): ~0.5 MiB each.
const RETAINED: usize = 4096;

/// A poll that blocked this long counts as idle: the lists are trimmed after it.
pub(crate) const IDLE_TRIM: std::time::Duration = std::time::Duration::from_secs(1);

/// `Handle`'s list is `lists[0]`, `TimerHandle`'s `lists[1]`.
struct Lists {
    types: [*mut ffi::PyTypeObject; 2],
    free: [Vec<*mut ffi::PyObject>; 2],
}

// SAFETY: the pointers are only read or written with the GIL held (through `GilCell`), which
// serialises every thread that could reach them.
unsafe impl Send for Lists {}

static LISTS: GilCell<Lists> = GilCell::new(Lists {
    types: [std::ptr::null_mut(); 2],
    free: [Vec::new(), Vec::new()],
});

/// `tp_alloc` of the type at `lists.types[K]`.
unsafe extern "C" fn alloc<const K: usize>(
    subtype: *mut ffi::PyTypeObject,
    nitems: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // SAFETY: the interpreter calls tp_alloc with the GIL held. A listed object is the
    // memory of a freed instance of exactly this type (see `free`), untracked by the
    // collector, so re-initialising its header (type, reference count) makes it a fresh
    // object, as pyo3's own free list does; pyo3 then writes the whole Rust payload.
    unsafe {
        let lists = LISTS.get_unchecked();
        if nitems == 0 && std::ptr::eq(subtype, lists.types[K]) {
            if let Some(obj) = lists.free[K].pop() {
                ffi::PyObject_Init(obj, subtype);
                return obj;
            }
        }
        ffi::PyType_GenericAlloc(subtype, nitems)
    }
}

/// `tp_free` of the type at `lists.types[K]`.
unsafe extern "C" fn free<const K: usize>(obj: *mut c_void) {
    // SAFETY: tp_free is called by the type's tp_dealloc with the GIL held, on an object
    // whose payload was dropped and that the collector no longer tracks; its memory came
    // from `PyType_GenericAlloc` (directly or through the list), so `PyObject_GC_Del`
    // is its inverse.
    unsafe {
        let obj = obj.cast::<ffi::PyObject>();
        let lists = LISTS.get_unchecked();
        if std::ptr::eq(ffi::Py_TYPE(obj), lists.types[K]) && lists.free[K].len() < CAPACITY {
            lists.free[K].push(obj);
            return;
        }
        ffi::PyObject_GC_Del(obj.cast());
    }
}

/// A freed `Handle` object to reuse, if the list has one, and the `Handle` type: the object
/// is uninitialised (no type, no reference count) and untracked by the collector; its memory
/// is that of a `Handle` instance.
pub(crate) fn pop_handle(py: Python<'_>) -> Option<(*mut ffi::PyObject, *mut ffi::PyTypeObject)> {
    let lists = LISTS.get(py);
    let obj = lists.free[0].pop()?;
    Some((obj, lists.types[0]))
}

/// Installs the free lists on `Handle` and `TimerHandle`. Called once, from the module's
/// init, before any instance exists.
pub(crate) fn install(py: Python<'_>) {
    let handle = py.get_type::<Handle>().as_type_ptr();
    let timer = py.get_type::<TimerHandle>().as_type_ptr();
    // SAFETY: GIL held (`py`); no instance of either type exists yet, so no object can be
    // freed by a slot other than the one that allocated it.
    unsafe {
        let lists = LISTS.get(py);
        lists.types = [handle, timer];
        lists.free = [Vec::with_capacity(RETAINED), Vec::with_capacity(RETAINED)];
        (*handle).tp_alloc = Some(alloc::<0>);
        (*handle).tp_free = Some(free::<0>);
        (*timer).tp_alloc = Some(alloc::<1>);
        (*timer).tp_free = Some(free::<1>);
    }
}

/// Gives all but [`RETAINED`] kept objects of each type back to the allocator: called after
/// a poll that blocked for [`IDLE_TRIM`] or more, when a loop stops running and when one is
/// closed, so memory held for a burst does not stay with an idle, stopped or closed loop.
pub(crate) fn trim(py: Python<'_>) {
    let lists = LISTS.get(py);
    for free in &mut lists.free {
        if free.len() <= RETAINED {
            continue;
        }
        for obj in free.drain(RETAINED..) {
            // SAFETY: GIL held (`py`); a listed object is the memory of a freed instance,
            // untracked by the collector, from `PyType_GenericAlloc` (see `free`), so
            // `PyObject_GC_Del` is its inverse. It runs no Python code.
            unsafe { ffi::PyObject_GC_Del(obj.cast()) };
        }
        free.shrink_to(RETAINED);
    }
}

/// How many freed `Handle` and `TimerHandle` objects the lists hold now (for the tests of
/// [`trim`]).
#[pyfunction]
pub(crate) fn _free_handle_counts(py: Python<'_>) -> (usize, usize) {
    let lists = LISTS.get(py);
    (lists.free[0].len(), lists.free[1].len())
}
