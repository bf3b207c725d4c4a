//! The state of asyncio's socket transport that the native read and write paths need
//! (`transport.rs`, `transport_write.rs`), read from the transport's instance dict once per
//! version of that dict.
//!
//! Reading seven attributes per message costs seven dict lookups (~130 instructions each).
//! In steady state a transport's dict does not change from one message to the next (its
//! buffer is a bytearray that changes in place, its socket an object of its own), so
//! [`TransportState::of`] keeps what it read per (dict, version) in a [`DictTable`]
//! (see `attr_cache` for why a version stands for the contents) and a hit costs the dict
//! fetch and one comparison. Only facts that cannot change without a change to the dict are
//! kept: which objects the attributes are, and the truth of `_conn_lost` and `_eof` when
//! they are an exact `int` and `bool`. The bytearray's length and the socket's fd and
//! timeout are read on every use.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyInt};
use pyo3::{ffi, intern};

use crate::attr_cache::{type_attr, DictTable};
use crate::py::{dict_version, imports, method_function, InstanceDict};

/// `_read_ready_cb` is the transport's own `_read_ready__data_received`.
const DATA_PATH: u8 = 1;
/// `_conn_lost` is true.
const CONN_LOST: u8 = 2;
/// `_eof` is true.
const EOF: u8 = 4;
/// `_empty_waiter` is not None (a sendfile is in progress).
const WAITING: u8 = 8;
/// The instance has its own `max_size`.
const OWN_MAX_SIZE: u8 = 16;

/// What a [`TransportState`] holds, with borrowed object addresses: the dict holds the
/// objects while it keeps the version the facts were stored at.
#[derive(Clone, Copy)]
struct Facts {
    protocol: usize,
    sock: usize,
    buffer: usize,
    flags: u8,
}

static FACTS: DictTable<Facts, 256> = DictTable::new();

/// Whether a dict's version stands for its contents on this interpreter: CPython 3.11 and
/// 3.12, where every store into a real instance dict goes through the dict and moves its
/// version. (From 3.13 an instance's inline values can be written while a dict object for
/// them exists; the facts are then not kept.)
static VERSIONS_TRUSTED: PyOnceLock<bool> = PyOnceLock::new();

/// A socket transport's state, as its `_read_ready__data_received` and `write` read it.
pub(crate) struct TransportState<'py> {
    dict: Bound<'py, PyDict>,
    /// The dict's version when the state was read, if the state is kept for it.
    kept: Option<u64>,
    /// `_protocol`.
    pub protocol: Bound<'py, PyAny>,
    /// `_sock`.
    pub sock: Bound<'py, PyAny>,
    /// `_buffer`.
    pub buffer: Bound<'py, PyAny>,
    flags: u8,
}

impl<'py> TransportState<'py> {
    /// The state of transport `t` (an instance of asyncio's `_SelectorSocketTransport` whose
    /// attributes are plain instance attributes: `transport::direct_attrs`).
    pub(crate) fn of(t: &Bound<'py, PyAny>) -> PyResult<Self> {
        let py = t.py();
        let attrs = InstanceDict::of(t)?;
        let dict = attrs.dict().clone();
        let trusted =
            *VERSIONS_TRUSTED.get_or_init(py, || crate::py::cpython_in(py, (3, 11), (3, 13)));
        let version = dict_version(&dict).filter(|_| trusted);
        if let Some(v) = version {
            if let Some(f) = FACTS.get(&dict, v) {
                // SAFETY: the dict is unchanged since the facts were stored (same dict, same
                // version), so it still holds the three objects; we take our own references.
                let obj =
                    |p: usize| unsafe { Bound::from_borrowed_ptr(py, p as *mut ffi::PyObject) };
                return Ok(TransportState {
                    protocol: obj(f.protocol),
                    sock: obj(f.sock),
                    buffer: obj(f.buffer),
                    dict,
                    kept: version,
                    flags: f.flags,
                });
            }
        }
        // Read everything; keep it only if every name was the instance's own and the truth
        // values came from types whose truth cannot change.
        let mut keep = version.is_some();
        let mut read = |name: &Bound<'py, pyo3::types::PyString>| -> PyResult<Bound<'py, PyAny>> {
            match attrs.own(name)? {
                Some(v) => Ok(v),
                None => {
                    keep = false;
                    t.getattr(name)
                }
            }
        };
        let cb = read(intern!(py, "_read_ready_cb"))?;
        let conn_lost = read(intern!(py, "_conn_lost"))?;
        let eof = read(intern!(py, "_eof"))?;
        let waiter = read(intern!(py, "_empty_waiter"))?;
        let protocol = read(intern!(py, "_protocol"))?;
        let sock = read(intern!(py, "_sock"))?;
        let buffer = read(intern!(py, "_buffer"))?;
        keep &= conn_lost.is_exact_instance_of::<PyInt>() && eof.is_exact_instance_of::<PyBool>();
        let mut flags = 0;
        if method_function(&cb) == Some(imports(py)?.transport_data_received.as_ptr()) {
            flags |= DATA_PATH;
        }
        if conn_lost.is_truthy()? {
            flags |= CONN_LOST;
        }
        if eof.is_truthy()? {
            flags |= EOF;
        }
        if !waiter.is_none() {
            flags |= WAITING;
        }
        if attrs.own(intern!(py, "max_size"))?.is_some() {
            flags |= OWN_MAX_SIZE;
        }
        // A truth test above could have run Python code that changed the dict.
        let kept = version.filter(|_| keep && dict_version(&dict) == version);
        if let Some(v) = kept {
            FACTS.put(
                &dict,
                v,
                Facts {
                    protocol: protocol.as_ptr() as usize,
                    sock: sock.as_ptr() as usize,
                    buffer: buffer.as_ptr() as usize,
                    flags,
                },
            );
        }
        Ok(TransportState {
            dict,
            kept,
            protocol,
            sock,
            buffer,
            flags,
        })
    }

    /// Whether `_read_ready_cb` is the transport's `_read_ready__data_received`.
    pub(crate) fn data_path(&self) -> bool {
        self.flags & DATA_PATH != 0
    }

    /// `bool(self._conn_lost)`.
    pub(crate) fn conn_lost(&self) -> bool {
        self.flags & CONN_LOST != 0
    }

    /// `bool(self._eof)`.
    pub(crate) fn eof(&self) -> bool {
        self.flags & EOF != 0
    }

    /// `self._empty_waiter is not None`.
    pub(crate) fn waiting(&self) -> bool {
        self.flags & WAITING != 0
    }

    /// `self._protocol` now: the one read with the state while the dict is unchanged (code
    /// run since, e.g. a signal handler during `recv`, may have set another).
    pub(crate) fn protocol_now(&self, t: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if self.kept.is_some() && dict_version(&self.dict) == self.kept {
            return Ok(self.protocol.clone());
        }
        t.getattr(intern!(t.py(), "_protocol"))
    }

    /// `self.max_size`: asyncio's class attribute, read through the type's lookup kept per
    /// type version when the instance has no `max_size` of its own.
    pub(crate) fn max_size(&self, t: &Bound<'py, PyAny>) -> PyResult<usize> {
        let py = t.py();
        let name = intern!(py, "max_size");
        if self.kept.is_some() && self.flags & OWN_MAX_SIZE == 0 {
            let found = type_attr(py, t.get_type_ptr(), name);
            // SAFETY: `found` is NULL or a live object the type's MRO holds; only its type is
            // read before taking a reference.
            if !found.is_null() && unsafe { ffi::PyLong_CheckExact(found) } != 0 {
                // SAFETY: as above; our own reference to a live int.
                let value = unsafe { Bound::from_borrowed_ptr(py, found) };
                return value.extract();
            }
        }
        t.getattr(name)?.extract()
    }
}
