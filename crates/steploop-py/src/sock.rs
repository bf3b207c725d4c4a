//! The native half of `loop.sock_recv`: a reader callback that reads the socket and resolves
//! the future itself, where asyncio runs `_sock_recv` (Python) and then, one iteration later,
//! the future's done callback `_sock_read_done` (Python) to remove the reader.
//!
//! `steploop.Loop.sock_recv` (python/steploop/_loop.py) keeps asyncio's checks and its first
//! non-blocking `sock.recv`; only the wait goes through [`SockRecv`], and only for sockets of
//! exactly `socket.socket` (a subclass may override `recv`).

use std::io;
use std::os::fd::RawFd;

use pyo3::prelude::*;
use pyo3::{ffi, intern, PyTraverseError, PyVisit};

use crate::error::os_error;
use crate::loop_core::LoopCore;

unsafe extern "C" {
    /// CPython's own resize of a fresh bytes object (what `socket.recv` uses to trim its
    /// buffer); exported by libpython, but not wrapped by pyo3-ffi.
    fn _PyBytes_Resize(bytes: *mut *mut ffi::PyObject, newsize: ffi::Py_ssize_t)
        -> std::ffi::c_int;
}

/// The reader callback of a pending `sock_recv(sock, n)`: on readiness, `recv(fd, n)`; on
/// data or an error, remove the reader and resolve the future (asyncio's `_sock_recv`).
#[pyclass(frozen, module = "steploop")]
pub(crate) struct SockRecv {
    fd: RawFd,
    n: usize,
    fut: Py<PyAny>,
    lp: Py<LoopCore>,
}

impl std::fmt::Debug for SockRecv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockRecv")
            .field("fd", &self.fd)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl SockRecv {
    pub(crate) fn new(fd: RawFd, n: usize, fut: Py<PyAny>, lp: Py<LoopCore>) -> Self {
        SockRecv { fd, n, fut, lp }
    }
}

/// `recv(fd, n)` into a new bytes object, as `socket.recv` does; `None` when the socket has
/// nothing yet (`EAGAIN`, or `EINTR`: asyncio tries again at the next readiness).
pub(crate) fn recv_bytes(py: Python<'_>, fd: RawFd, n: usize) -> PyResult<Option<Py<PyAny>>> {
    let len = ffi::Py_ssize_t::try_from(n)
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("buffer size too large"))?;
    if len == 0 {
        return Ok(Some(pyo3::types::PyBytes::new(py, b"").into_any().unbind()));
    }
    // SAFETY: GIL held. `PyBytes_FromStringAndSize(NULL, len)` returns a new, unshared bytes
    // object with `len` writable bytes (or NULL with an exception set); `recv` writes at most
    // `len` bytes into it; `_PyBytes_Resize` may only be used on such a fresh object, and on
    // failure it frees it and sets the pointer to NULL (with an exception set).
    unsafe {
        let mut obj = ffi::PyBytes_FromStringAndSize(std::ptr::null(), len);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        let buf = ffi::PyBytes_AsString(obj);
        let got = libc::recv(fd, buf.cast(), n, 0);
        if got < 0 {
            let err = io::Error::last_os_error();
            ffi::Py_DECREF(obj);
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(os_error(err)),
            };
        }
        if got != len && _PyBytes_Resize(&mut obj, got) < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(Some(Bound::from_owned_ptr(py, obj).unbind()))
    }
}

/// `send(fd, data)` as `socket.send` does it on a non-blocking socket: `EINTR` runs the
/// signal handlers (an exception they raise is returned) and tries again; `Ok(0)` when the
/// socket buffer is full (`EAGAIN`, where `socket.send` raises `BlockingIOError`); other
/// errors as `OSError`.
pub(crate) fn send_bytes(py: Python<'_>, fd: RawFd, data: &[u8]) -> PyResult<usize> {
    loop {
        // SAFETY: `data` is a live buffer the caller holds; `send` reads at most `data.len()`
        // bytes of it.
        let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {
                // SAFETY: GIL held; runs the pending signal handlers, as socket.send does.
                if unsafe { ffi::PyErr_CheckSignals() } < 0 {
                    return Err(PyErr::fetch(py));
                }
            }
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(os_error(err)),
        }
    }
}

#[pymethods]
impl SockRecv {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let fut = self.fut.bind(py);
        if fut.call_method0(intern!(py, "done"))?.is_truthy()? {
            // Cancelled while waiting: `sock_recv` removes the reader as it unwinds.
            return Ok(());
        }
        let res = match recv_bytes(py, self.fd, self.n) {
            Ok(None) => return Ok(()),
            Ok(Some(data)) => Ok(data),
            Err(e) => Err(e),
        };
        LoopCore::remove_watcher_fd(self.lp.bind(py), self.fd, false)?;
        match res {
            Ok(data) => fut.call_method1(intern!(py, "set_result"), (data,))?,
            // `recv_bytes` fails only with OSError (or MemoryError): no SystemExit or
            // KeyboardInterrupt to let through, as asyncio's `_sock_recv` does.
            Err(e) => fut.call_method1(intern!(py, "set_exception"), (e.value(py),))?,
        };
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("Loop._sock_recv(fd={}, n={})", self.fd, self.n)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.fut)?;
        visit.call(&self.lp)
    }
}
