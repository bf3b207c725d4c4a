//! The native read path of asyncio's socket transport.
//!
//! steploop uses asyncio's own `_SelectorSocketTransport` (flow control, buffering, close and
//! abort semantics, `sslproto` on top). Its reader callback is `transport._read_ready`, which
//! runs `_read_ready__data_received`: `self._sock.recv(self.max_size)`, then
//! `self._protocol.data_received(data)` — three Python frames and a method call per readiness
//! report. When a transport of exactly that class registers that reader for a socket of
//! exactly `socket.socket` (`LoopCore._add_reader`), the loop installs a [`TransportReader`]
//! instead, which does the same steps natively and calls the transport's own Python methods
//! for everything else: the end of the stream (`_read_ready__on_eof`), errors
//! (`_fatal_error`, with asyncio's messages), and protocols it does not handle — a
//! `BufferedProtocol` (`_read_ready__get_buffer`), or any replacement of `_read_ready_cb`.
//!
//! The handle prints as asyncio's does (`<Handle _SelectorSocketTransport._read_ready()>`):
//! the reader has the bound method's `__qualname__`.

use std::os::fd::RawFd;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::py::{dict_names_ok, escapes, imports, InstanceDict};
use crate::sock::recv_bytes;
use crate::transport_state::TransportState;

/// The reader of a `_SelectorSocketTransport`'s socket (see the module docs).
#[pyclass(module = "steploop")]
pub(crate) struct TransportReader {
    fd: RawFd,
    /// Cleared by the collector (`__clear__`), after which a call does nothing.
    transport: Option<Py<PyAny>>,
}

impl std::fmt::Debug for TransportReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportReader")
            .field("fd", &self.fd)
            .finish_non_exhaustive()
    }
}

/// If `callback` is the bound `_read_ready` of a `_SelectorSocketTransport` (exactly that
/// class or steploop's subclass with the native `write`, over a socket of exactly
/// `socket.socket`, read through `_read_ready__data_received` for now), the reader that
/// replaces it.
pub(crate) fn native_reader(
    py: Python<'_>,
    fd: RawFd,
    callback: &Bound<'_, PyAny>,
) -> PyResult<Option<TransportReader>> {
    let imp = imports(py)?;
    let Ok(func) = callback.getattr(intern!(py, "__func__")) else {
        return Ok(None);
    };
    if !func.is(imp.transport_read_ready.bind(py)) {
        return Ok(None);
    }
    let transport = callback.getattr(intern!(py, "__self__"))?;
    if !direct_attrs(py)? {
        return Ok(None);
    }
    let ty = transport.get_type();
    let ours = crate::transport_write::native_class(py).is_some_and(|c| ty.is(c));
    if !ty.is(imp.socket_transport_type.bind(py)) && !ours {
        return Ok(None);
    }
    let sock = transport.getattr(intern!(py, "_sock"))?;
    if !sock.get_type().is(imp.socket_type.bind(py))
        || sock.call_method0("fileno")?.extract::<RawFd>()? != fd
    {
        return Ok(None);
    }
    Ok(Some(TransportReader {
        fd,
        transport: Some(transport.unbind()),
    }))
}

/// asyncio's `except (SystemExit, KeyboardInterrupt): raise` then `except BaseException as
/// exc: self._fatal_error(exc, message)`, for an error of transport `t`'s native paths.
pub(crate) fn fatal_error(t: &Bound<'_, PyAny>, err: PyErr, message: &str) -> PyResult<()> {
    let py = t.py();
    if escapes(py, &err) {
        return Err(err);
    }
    t.call_method1(intern!(py, "_fatal_error"), (err.value(py), message))?;
    Ok(())
}

/// The transport attributes the native paths read from the instance dict.
pub(crate) const DICT_NAMES: &[&str] = &[
    "_read_ready_cb",
    "_conn_lost",
    "_protocol",
    "_eof",
    "_empty_waiter",
    "_buffer",
    "_sock",
];

static DIRECT_ATTRS: PyOnceLock<bool> = PyOnceLock::new();

/// Whether asyncio's transport keeps [`DICT_NAMES`] as plain instance attributes (checked
/// once): the native paths are used only then.
pub(crate) fn direct_attrs(py: Python<'_>) -> PyResult<bool> {
    DIRECT_ATTRS
        .get_or_try_init(py, || {
            dict_names_ok(imports(py)?.socket_transport_type.bind(py), DICT_NAMES)
        })
        .copied()
}

#[pymethods]
impl TransportReader {
    /// `transport._read_ready()`.
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let Some(transport) = &self.transport else {
            return Ok(());
        };
        let t = transport.bind(py);
        let state = TransportState::of(t)?;
        if !state.data_path() {
            // A BufferedProtocol (or a replaced callback): the transport's own path.
            InstanceDict::of(t)?
                .get(intern!(py, "_read_ready_cb"))?
                .call0()?;
            return Ok(());
        }
        // `_read_ready__data_received`, step by step.
        if state.conn_lost() {
            return Ok(());
        }
        let max_size = state.max_size(t)?;
        let data = match recv_bytes(py, self.fd, max_size) {
            Ok(None) => return Ok(()), // BlockingIOError / InterruptedError
            Ok(Some(data)) => data.into_bound(py),
            Err(err) => return fatal_error(t, err, "Fatal read error on socket transport"),
        };
        let empty = data
            .cast::<PyBytes>()
            .is_ok_and(|b| b.as_bytes().is_empty());
        if empty {
            t.call_method0(intern!(py, "_read_ready__on_eof"))?;
            return Ok(());
        }
        let protocol = state.protocol_now(t)?;
        match protocol.call_method1(intern!(py, "data_received"), (data,)) {
            Ok(_) => Ok(()),
            Err(err) => fatal_error(t, err, "Fatal error: protocol.data_received() call failed."),
        }
    }

    /// What asyncio's handle repr shows for the bound method it replaces.
    #[getter]
    fn __qualname__(&self) -> &'static str {
        "_SelectorSocketTransport._read_ready"
    }

    #[getter]
    fn __name__(&self) -> &'static str {
        "_read_ready"
    }

    /// The transport, as the bound method's `__self__`.
    #[getter]
    fn __self__(&self, py: Python<'_>) -> Py<PyAny> {
        self.transport
            .as_ref()
            .map_or_else(|| py.None(), |t| t.clone_ref(py))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let transport = match &self.transport {
            Some(t) => t.bind(py).repr()?.to_string(),
            None => "None".to_string(),
        };
        Ok(format!(
            "<native _SelectorSocketTransport._read_ready of {transport}>"
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(t) = &self.transport {
            visit.call(t)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.transport = None;
    }
}
