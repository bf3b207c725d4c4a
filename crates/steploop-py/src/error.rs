//! Engine errors as Python exceptions (mapped once, here).

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

/// `OSError(errno, strerror)`, as Python raises it (CPython picks the subclass from the
/// errno: `PermissionError`, `FileNotFoundError`...); errors without an OS code keep pyo3's
/// conversion.
pub(crate) fn os_error(e: std::io::Error) -> PyErr {
    match e.raw_os_error() {
        Some(code) => {
            let text = e.to_string();
            let suffix = format!(" (os error {code})");
            let msg = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
            PyOSError::new_err((code, msg))
        }
        None => PyErr::from(e),
    }
}

/// A `steploop::Error` on its way to Python (a local type, so `From` can be implemented).
pub(crate) struct EngineError(pub steploop::Error);

impl From<steploop::Error> for EngineError {
    fn from(e: steploop::Error) -> Self {
        EngineError(e)
    }
}

impl From<EngineError> for PyErr {
    fn from(EngineError(e): EngineError) -> PyErr {
        match e {
            steploop::Error::Io(io) => os_error(io),
            steploop::Error::InvalidFd(fd) => {
                PyValueError::new_err(format!("Invalid file descriptor: {fd}"))
            }
            steploop::Error::FdClosed(fd) => {
                PyOSError::new_err((libc::EBADF, format!("file descriptor {fd} is closed")))
            }
            other => PyRuntimeError::new_err(other.to_string()),
        }
    }
}
