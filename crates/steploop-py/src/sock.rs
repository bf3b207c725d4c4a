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
use pyo3::sync::PyOnceLock;
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

/// The head of CPython's `PySocketSockObject` (Modules/socketmodule.h, unchanged from 3.5 to
/// 3.13 on Unix): the fd and the timeout (`_PyTime_t`, nanoseconds; 0 for non-blocking,
/// negative for blocking) are read from it directly instead of calling `fileno()` and
/// `gettimeout()` on every `transport.write`. [`socket_fields`] checks the layout once at
/// runtime.
#[repr(C)]
struct SocketHead {
    ob_base: ffi::PyObject,
    sock_fd: libc::c_int,
    sock_family: libc::c_int,
    sock_type: libc::c_int,
    sock_proto: libc::c_int,
    errorhandler: *const std::ffi::c_void,
    sock_timeout: i64,
}

/// Whether [`SocketHead`] matches this interpreter's sockets (checked on a probe socket).
static SOCKET_LAYOUT_OK: PyOnceLock<bool> = PyOnceLock::new();

fn probe_socket_layout(py: Python<'_>) -> PyResult<bool> {
    if !crate::py::cpython_in(py, (3, 5), (3, 14)) {
        return Ok(false);
    }
    let socket = py.import("socket")?;
    let sock = socket
        .getattr("socket")?
        .call1((socket.getattr("AF_UNIX")?, socket.getattr("SOCK_DGRAM")?))?;
    let read = |s: &Bound<'_, PyAny>| {
        // SAFETY: `s` is a live `socket.socket`, whose C part starts with at least
        // `PyObject_HEAD` and the fields below on the versions allowed above; the values
        // are only trusted after this check passes.
        unsafe {
            let head = &*(s.as_ptr() as *const SocketHead);
            (
                head.sock_fd,
                head.sock_family,
                head.sock_type,
                head.sock_timeout,
            )
        }
    };
    let fd: libc::c_int = sock.call_method0("fileno")?.extract()?;
    let (got_fd, family, kind, timeout) = read(&sock);
    // A blocking socket's timeout is negative (-1 s in nanoseconds on CPython).
    let mut ok = (got_fd, family, kind) == (fd, libc::AF_UNIX, libc::SOCK_DGRAM) && timeout < 0;
    sock.call_method1("settimeout", (0.0,))?;
    ok &= read(&sock).3 == 0;
    sock.call_method1("settimeout", (1.5,))?;
    ok &= read(&sock).3 == 1_500_000_000;
    sock.call_method0("close")?;
    ok &= read(&sock).0 == -1;
    Ok(ok)
}

/// Whether the fast socket-field reads are in use on this interpreter (for the tests: on
/// CPython 3.11 they must be).
#[pyfunction]
pub(crate) fn _socket_layout_known(py: Python<'_>) -> PyResult<bool> {
    SOCKET_LAYOUT_OK
        .get_or_try_init(py, || probe_socket_layout(py))
        .copied()
}

/// The fd of `sock` (an instance of exactly `socket.socket`) and whether it is non-blocking
/// (timeout 0); `None` when the layout is not the known one (then call the methods).
pub(crate) fn socket_fields(sock: &Bound<'_, PyAny>) -> PyResult<Option<(RawFd, bool)>> {
    if !_socket_layout_known(sock.py())? {
        return Ok(None);
    }
    // SAFETY: the caller checked that `sock` is exactly `socket.socket`, and the probe
    // confirmed that such objects start with `SocketHead`.
    let head = unsafe { &*(sock.as_ptr() as *const SocketHead) };
    Ok(Some((head.sock_fd, head.sock_timeout == 0)))
}

/// `recv(fd, n)` into a new bytes object, as `socket.recv` does; `None` when the socket has
/// nothing yet (`EAGAIN`). `EINTR` runs the signal handlers and tries again, as
/// `socket.recv` does: so `None` always means the socket was drained, which the
/// edge-triggered `sock_recv` wait relies on.
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
        let got = match sock_call(py, || libc::recv(fd, buf.cast(), n, 0)) {
            Ok(Some(got)) => got as ffi::Py_ssize_t,
            nothing_or_error => {
                ffi::Py_DECREF(obj);
                return nothing_or_error.map(|_| None);
            }
        };
        if got != len && _PyBytes_Resize(&mut obj, got) < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(Some(Bound::from_owned_ptr(py, obj).unbind()))
    }
}

/// One call of a non-blocking socket syscall (`call` returns its result, -1 with `errno`
/// set on failure) as CPython's `socket` methods make it: `EINTR` runs the signal handlers
/// (an exception they raise is returned) and tries again; `Ok(None)` for `EAGAIN`, where
/// the methods raise `BlockingIOError`; other errors as `OSError`.
fn sock_call(py: Python<'_>, mut call: impl FnMut() -> isize) -> PyResult<Option<usize>> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {
                // SAFETY: GIL held; runs the pending signal handlers, as `socket` does.
                if unsafe { ffi::PyErr_CheckSignals() } < 0 {
                    return Err(PyErr::fetch(py));
                }
            }
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(os_error(err)),
        }
    }
}

/// `send(fd, data)` as `socket.send` does it on a non-blocking socket; `Ok(0)` when the
/// socket buffer is full (see [`sock_call`]).
pub(crate) fn send_bytes(py: Python<'_>, fd: RawFd, data: &[u8]) -> PyResult<usize> {
    // SAFETY: `data` is a live buffer the caller holds; `send` reads at most `data.len()`
    // bytes of it.
    let sent = sock_call(py, || unsafe {
        libc::send(fd, data.as_ptr().cast(), data.len(), 0)
    })?;
    Ok(sent.unwrap_or(0))
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
            Ok(None) => return Ok(()), // drained (an old edge report): wait for new data
            Ok(Some(data)) => Ok(data),
            // From a signal handler: out of the loop, as from asyncio's `_sock_recv`.
            Err(e) if crate::py::escapes(py, &e) => return Err(e),
            Err(e) => Err(e),
        };
        LoopCore::remove_watcher_fd(self.lp.bind(py), self.fd, false)?;
        match res {
            Ok(data) => fut.call_method1(intern!(py, "set_result"), (data,))?,
            // OSError, MemoryError, or what a signal handler raised (as asyncio's
            // `_sock_recv` sets it on the future).
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
