//! The native write path of asyncio's socket transport.
//!
//! `transport.write(data)` is asyncio's `_SelectorSocketTransport.write`: four state checks,
//! then, with nothing buffered, `self._sock.send(data)`, and only if the kernel took less
//! than all of it, a writer and the buffer. Every echo reply, every HTTP response goes
//! through it. steploop's socket transports are a subclass
//! (`steploop._transport._SelectorSocketTransport`, made by `Loop._make_socket_transport`
//! for a non-blocking socket of exactly `socket.socket`) whose `write` is [`write`]: a
//! method descriptor that does the common case natively — exact `bytes`, nothing buffered,
//! no `write_eof`, no sendfile in progress, connection not lost — and hands every other call
//! to asyncio's own `write`, unchanged, before touching anything. A partial send, a full
//! socket buffer and a send error take asyncio's next steps (`_add_writer`, the buffer,
//! `_maybe_pause_protocol`; `_fatal_error` with asyncio's message) through the
//! transport's own methods.
//!
//! The transport's state is read from its instance dict, once per version of that dict
//! (`transport_state::TransportState`: no type lookup, checked once to be what `getattr`
//! returns), and the socket's fd and timeout from the socket object (`sock::socket_fields`,
//! a layout checked once at runtime), so the common case costs no Python-level attribute
//! lookup or method call.

use std::ffi::{c_char, CStr};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PySlice, PyType};
use pyo3::{ffi, intern};

use crate::py::imports;
use crate::sock::{send_bytes, socket_fields};
use crate::transport::fatal_error;
use crate::transport_state::TransportState;

/// asyncio's `_SelectorSocketTransport.write` (the function), for every call the native
/// path does not take.
static ORIGINAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The subclass whose `write` is native; `transport::native_reader` accepts it too.
static NATIVE_CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

const WRITE_DOC: &CStr = c"write($self, data)\n--\n\n\
Write some data bytes to the transport.\n\n\
This does not block; it buffers the data and arranges for it to be sent out\n\
asynchronously (asyncio's _SelectorSocketTransport.write, native for bytes).";

/// The transport class with the native `write`, once registered.
pub(crate) fn native_class(py: Python<'_>) -> Option<&Bound<'_, PyType>> {
    NATIVE_CLASS.get(py).map(|c| c.bind(py))
}

/// Makes `cls` (a direct subclass of asyncio's `_SelectorSocketTransport`) the native
/// transport class: its `write` becomes [`write`]. Called once, by `steploop._transport`.
#[pyfunction]
pub(crate) fn _register_socket_transport(cls: &Bound<'_, PyType>) -> PyResult<()> {
    let py = cls.py();
    let base = imports(py)?.socket_transport_type.bind(py);
    if !cls.is_subclass(base)? || cls.is(base) {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "expected a subclass of _SelectorSocketTransport",
        ));
    }
    if !crate::transport::direct_attrs(py)? {
        // asyncio's transport state is not plain instance attributes: keep its write.
        return Ok(());
    }
    if NATIVE_CLASS.get(py).is_some() {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "a socket transport class is already registered",
        ));
    }
    ORIGINAL.get_or_try_init(py, || base.getattr("write").map(Bound::unbind))?;
    let def = Box::into_raw(Box::new(ffi::PyMethodDef {
        ml_name: c"write".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: write,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: WRITE_DOC.as_ptr() as *const c_char,
    }));
    // SAFETY: GIL held; `def` is leaked on purpose (the descriptor points to it for the
    // process's life); `cls` is a live type object, so the descriptor checks `self` against
    // it on every call.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(cls.as_type_ptr(), def))?
    };
    cls.setattr("write", descr)?;
    let _ = NATIVE_CLASS.set(py, cls.clone().unbind());
    Ok(())
}

/// What the fast path did: the call is answered, or asyncio's `write` must take it.
enum Outcome {
    Done,
    Fallback,
}

/// `_SelectorSocketTransport.write(self, data)` for exact `bytes` on a transport in the
/// plain state; [`Outcome::Fallback`] (with nothing done) otherwise.
fn write_bytes(t: &Bound<'_, PyAny>, data: &Bound<'_, PyAny>) -> PyResult<Outcome> {
    let py = t.py();
    let Ok(bytes) = data.cast_exact::<PyBytes>() else {
        return Ok(Outcome::Fallback);
    };
    let payload = bytes.as_bytes();
    let state = TransportState::of(t)?;
    if payload.is_empty() || state.eof() || state.waiting() || state.conn_lost() {
        return Ok(Outcome::Fallback);
    }
    let Ok(buffer) = state.buffer.cast_exact::<PyByteArray>() else {
        return Ok(Outcome::Fallback);
    };
    if !buffer.is_empty() {
        return Ok(Outcome::Fallback);
    }
    let sock = &state.sock;
    let imp = imports(py)?;
    if !sock.get_type().is(imp.socket_type.bind(py)) {
        return Ok(Outcome::Fallback);
    }
    // `socket.send` on a socket with a timeout waits for room first: asyncio's path.
    let fd = match socket_fields(sock)? {
        Some((fd, true)) => fd,
        Some((_, false)) => return Ok(Outcome::Fallback),
        None => {
            let timeout = sock.call_method0(intern!(py, "gettimeout"))?;
            if !timeout.extract::<f64>().is_ok_and(|t| t == 0.0) {
                return Ok(Outcome::Fallback);
            }
            sock.call_method0(intern!(py, "fileno"))?.extract()?
        }
    };
    // `n = self._sock.send(data)`.
    let sent = send_bytes(py, fd, payload);
    let sent = match sent {
        Ok(n) => n,
        Err(err) => {
            fatal_error(t, err, "Fatal write error on socket transport")?;
            return Ok(Outcome::Done);
        }
    };
    if sent == payload.len() {
        return Ok(Outcome::Done);
    }
    // Not all was written: register the writer, buffer the rest, maybe pause the protocol.
    let lp = t.getattr(intern!(py, "_loop"))?;
    lp.call_method1(
        intern!(py, "_add_writer"),
        (
            t.getattr(intern!(py, "_sock_fd"))?,
            t.getattr(intern!(py, "_write_ready"))?,
        ),
    )?;
    let rest = data.get_item(PySlice::new(py, sent as isize, payload.len() as isize, 1))?;
    buffer.call_method1(intern!(py, "extend"), (rest,))?;
    t.call_method0(intern!(py, "_maybe_pause_protocol"))?;
    Ok(Outcome::Done)
}

/// asyncio's `write(self, *args, **kwargs)`, for the calls the native path does not take.
///
/// # Safety
/// As [`write`]'s arguments.
unsafe fn call_original(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    let original = ORIGINAL
        .get(py)
        .ok_or_else(|| PyErr::new::<pyo3::exceptions::PyRuntimeError, _>("not registered"))?;
    // SAFETY: the caller's array holds `nargs` positional values then one value per keyword
    // name; we prepend `self` to a copy and pass the same keyword names.
    unsafe {
        let nkw = if kwnames.is_null() {
            0
        } else {
            ffi::PyTuple_GET_SIZE(kwnames)
        };
        let mut all = Vec::with_capacity((1 + nargs + nkw) as usize);
        all.push(slf);
        all.extend_from_slice(std::slice::from_raw_parts(args, (nargs + nkw) as usize));
        let res = ffi::PyObject_Vectorcall(
            original.as_ptr(),
            all.as_ptr(),
            (nargs + 1) as usize,
            kwnames,
        );
        if res.is_null() {
            Err(PyErr::fetch(py))
        } else {
            Ok(res)
        }
    }
}

/// The `write` method descriptor's function (`METH_FASTCALL | METH_KEYWORDS`).
///
/// # Safety
/// Called by the interpreter (GIL held) with `slf` an instance of the registered class,
/// `args` pointing to `nargs` positional and `len(kwnames)` keyword values, and `kwnames`
/// NULL or a tuple of strings.
unsafe extern "C" fn write(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: see the function's contract.
    let result = std::panic::catch_unwind(|| unsafe {
        let py = Python::assume_attached();
        let nargs = ffi::PyVectorcall_NARGS(nargsf as usize);
        let plain = nargs == 1 && (kwnames.is_null() || ffi::PyTuple_GET_SIZE(kwnames) == 0);
        if plain {
            let t = Bound::from_borrowed_ptr(py, slf);
            let data = Bound::from_borrowed_ptr(py, *args);
            if let Outcome::Done = write_bytes(&t, &data)? {
                return Ok(py.None().into_ptr());
            }
        }
        call_original(py, slf, args, nargs, kwnames)
    });
    crate::py::raw_return(result, "_SelectorSocketTransport.write")
}
