//! `call_soon` and `call_soon_threadsafe` as raw `METH_FASTCALL | METH_KEYWORDS` methods.
//!
//! They are the loop's most called methods: every task step comes through
//! `loop.call_soon(step, context=ctx)` from CPython's C `Task`. pyo3's generic argument
//! extraction (`*args` collected, keywords matched by name) cost about as much as the rest
//! of the call; this parser knows the one signature, `(callback, *args, context=None)`,
//! compares the keyword with the interned `"context"` by pointer first, and hands over to
//! the same `LoopCore` methods. Installed over pyo3's descriptors by [`install`] at module
//! init, before any subclass exists; the behaviour and the error messages are pyo3's (see
//! tests/test_bad_input.py).
//!
//! Called without a pyo3 trampoline, the thread does not count as "attached" for pyo3 here
//! (the GIL is held all the same): a `Py` dropped on these paths is released at pyo3's next
//! entry instead of at once, and `Py::clone` would panic (caught below and raised as a
//! `PanicException`), so these paths use `clone_ref`/`Bound` only.

use std::ffi::{c_char, CStr};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use pyo3::{ffi, intern};

use crate::loop_core::LoopCore;
use crate::py::GilCell;

/// The two methods, with their text signatures and docs (what `inspect.signature` and
/// `help()` read).
const CALL_SOON_DOC: &CStr = c"call_soon($self, callback, *args, context=None)\n--\n\n\
Arrange for a callback to be called as soon as possible.\n\n\
This operates as a FIFO queue: callbacks are called in the order in which they are\n\
registered. Each callback will be called exactly once.";
const CALL_SOON_THREADSAFE_DOC: &CStr =
    c"call_soon_threadsafe($self, callback, *args, context=None)\n--\n\n\
Like call_soon(), but thread-safe.";

/// Which `LoopCore` method a raw entry point forwards to.
#[derive(Clone, Copy, Debug)]
enum Method {
    CallSoon,
    CallSoonThreadsafe,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::CallSoon => "call_soon",
            Method::CallSoonThreadsafe => "call_soon_threadsafe",
        }
    }
}

/// The last keyword-names tuple found to be `("context",)`, kept alive (so its address is
/// not reused by another tuple). CPython's C `Task` passes the same tuple (made once per
/// interpreter, with a string that is not the interned one) on every step.
static CONTEXT_KWNAMES: GilCell<Option<Py<PyTuple>>> = GilCell::new(None);

/// Whether the keyword name `name` (a string) is `"context"`: the interned string by
/// identity first, then by value.
///
/// # Safety
/// GIL held; `name` a live string.
unsafe fn is_context_name(py: Python<'_>, name: *mut ffi::PyObject) -> bool {
    // SAFETY: forwarded from the caller; `PyUnicode_CompareWithASCIIString` does not fail on
    // a string.
    name == intern!(py, "context").as_ptr()
        || unsafe { ffi::PyUnicode_CompareWithASCIIString(name, c"context".as_ptr()) } == 0
}

/// Whether the vectorcall keyword names `kwnames` (a tuple of strings) are `("context",)`.
///
/// # Safety
/// GIL held; `kwnames` a live tuple of strings (the vectorcall protocol's).
unsafe fn only_context(py: Python<'_>, kwnames: *mut ffi::PyObject) -> bool {
    let cached = CONTEXT_KWNAMES.get(py);
    if cached.as_ref().is_some_and(|t| t.as_ptr() == kwnames) {
        return true;
    }
    // SAFETY: forwarded from the caller: a live tuple of strings; the item is borrowed from
    // it, and `PyUnicode_CompareWithASCIIString` does not fail on a string.
    let is_context = unsafe {
        ffi::PyTuple_GET_SIZE(kwnames) == 1
            && is_context_name(py, ffi::PyTuple_GET_ITEM(kwnames, 0))
    };
    if is_context {
        // SAFETY: GIL held; `kwnames` is live (borrowed from the caller), the new reference
        // keeps it alive while it is cached.
        let tuple = unsafe { Bound::from_borrowed_ptr(py, kwnames).cast_into_unchecked() };
        let old = cached.replace(tuple.unbind());
        // Released now (not through pyo3's deferred pool: this path is outside its
        // trampolines); a tuple of strings runs no code when it goes.
        drop(old.map(|o| o.into_bound(py)));
    }
    is_context
}

/// Parses `(callback, *args, context=None)` from a vectorcall and runs `method`.
///
/// # Safety
/// Called by the interpreter (GIL held) with `slf` an instance of `LoopCore` or of a
/// subclass, `args` pointing to `nargs` positional and `len(kwnames)` keyword values, and
/// `kwnames` NULL or a tuple of strings.
unsafe fn dispatch(
    method: Method,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: see the function's contract; every pointer read below is within the
    // vectorcall's argument array or is a borrowed reference the caller keeps alive.
    let result = std::panic::catch_unwind(|| unsafe {
        let py = Python::assume_attached();
        let nargs = ffi::PyVectorcall_NARGS(nargsf as usize);
        let positional = std::slice::from_raw_parts(args, nargs as usize);
        let mut context: Option<Bound<'_, PyAny>> = None;
        if !kwnames.is_null() && only_context(py, kwnames) {
            // `context=` alone (every task step): no loop over the names.
            context = Some(Bound::from_borrowed_ptr(py, *args.add(nargs as usize)));
        } else if !kwnames.is_null() {
            let names = Bound::from_borrowed_ptr(py, kwnames).cast_into_unchecked::<PyTuple>();
            for (i, name) in names.iter().enumerate() {
                if !is_context_name(py, name.as_ptr()) {
                    return Err(PyTypeError::new_err(format!(
                        "LoopCore.{}() got an unexpected keyword argument '{}'",
                        method.name(),
                        name
                    )));
                }
                let value = *args.add(nargs as usize + i);
                context = Some(Bound::from_borrowed_ptr(py, value));
            }
        }
        let Some((&callback, rest)) = positional.split_first() else {
            return Err(PyTypeError::new_err(format!(
                "LoopCore.{}() missing 1 required positional argument: 'callback'",
                method.name()
            )));
        };
        // Borrowed, not Bound: no reference count traffic for what the caller keeps alive.
        let callback = pyo3::Borrowed::from_ptr(py, callback);
        // No extra arguments (the common case, and every task step): the empty tuple, with
        // no iterator to drive.
        let rest = if rest.is_empty() {
            PyTuple::empty(py)
        } else {
            PyTuple::new(py, rest.iter().map(|&p| Bound::from_borrowed_ptr(py, p)))?
        };
        let slf = pyo3::Borrowed::from_ptr(py, slf).cast_unchecked::<LoopCore>();
        let handle = match method {
            Method::CallSoon => LoopCore::call_soon(&slf, &callback, &rest, context),
            Method::CallSoonThreadsafe => {
                LoopCore::call_soon_threadsafe(&slf, &callback, &rest, context)
            }
        }?;
        Ok(handle.into_ptr())
    });
    crate::py::raw_return(result, method.name())
}

unsafe extern "C" fn call_soon(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: forwarded from the interpreter's vectorcall (see `dispatch`).
    unsafe { dispatch(Method::CallSoon, slf, args, nargs, kwnames) }
}

unsafe extern "C" fn call_soon_threadsafe(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: forwarded from the interpreter's vectorcall (see `dispatch`).
    unsafe { dispatch(Method::CallSoonThreadsafe, slf, args, nargs, kwnames) }
}

/// A `PyMethodDef` the interpreter may keep a pointer to for the process's life.
fn method_def(
    name: &'static CStr,
    f: ffi::PyCFunctionFastWithKeywords,
    doc: &'static CStr,
) -> *mut ffi::PyMethodDef {
    Box::into_raw(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: f,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: doc.as_ptr() as *const c_char,
    }))
}

/// Replaces pyo3's `call_soon` and `call_soon_threadsafe` descriptors on `LoopCore`.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<LoopCore>();
    let defs = [
        (
            c"call_soon",
            call_soon as ffi::PyCFunctionFastWithKeywords,
            CALL_SOON_DOC,
        ),
        (
            c"call_soon_threadsafe",
            call_soon_threadsafe as ffi::PyCFunctionFastWithKeywords,
            CALL_SOON_THREADSAFE_DOC,
        ),
    ];
    for (name, f, doc) in defs {
        let def = method_def(name, f, doc);
        // SAFETY: GIL held; `def` lives for the process (leaked on purpose: the descriptor
        // points to it); the type is fully initialised and has no subclass yet (module
        // init), so writing its dict and invalidating its attribute cache is all it takes.
        unsafe {
            let descr =
                Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), def))?;
            let dict = Bound::from_borrowed_ptr(py, (*ty.as_type_ptr()).tp_dict);
            dict.set_item(PyString::new(py, name.to_str().unwrap_or_default()), descr)?;
            ffi::PyType_Modified(ty.as_type_ptr());
        }
    }
    Ok(())
}
