//! Engine errors as Python exceptions (mapped once, here).

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

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
            steploop::Error::Io(io) => PyErr::from(io),
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
