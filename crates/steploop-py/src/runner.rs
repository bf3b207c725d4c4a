//! [`PyRunner`]: how the engine runs Python handles — debug-mode timing and the slow-callback
//! warning, the GIL released around the poll, signals checked on `EINTR`.

use std::io;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use crate::handle::{Handle, HandleRef};
use crate::py::imports;

/// Runs handles for one `run_once` call. Holds the GIL for the whole iteration except the poll.
pub(crate) struct PyRunner<'py> {
    pub py: Python<'py>,
    /// The loop object (the Python subclass instance), for `_current_handle` and settings.
    pub lp: &'py Bound<'py, PyAny>,
    /// The engine state of that loop.
    pub core: &'py crate::loop_core::LoopCore,
    /// Debug mode at the start of the iteration (asyncio reads `self._debug` per callback;
    /// the value is re-read when it changes through `set_debug`, see `run`).
    pub debug: bool,
}

impl PyRunner<'_> {
    fn run_debug(&mut self, handle: &Bound<'_, Handle>) -> PyResult<()> {
        let py = self.py;
        self.lp.setattr("_current_handle", handle)?;
        let t0 = self.core.core().time();
        let res = Handle::run(handle);
        let dt = self.core.core().time() - t0;
        self.lp.setattr("_current_handle", py.None())?;
        res?;
        let slow: f64 = self.lp.getattr("slow_callback_duration")?.extract()?;
        if dt >= slow {
            let imp = imports(py)?;
            let desc = imp.format_handle.call1(py, (handle,))?;
            imp.logger.call_method1(
                py,
                "warning",
                ("Executing %s took %.3f seconds", desc, dt),
            )?;
        }
        Ok(())
    }
}

impl steploop::Runner<HandleRef> for PyRunner<'_> {
    type Error = PyErr;

    #[inline]
    fn run(&mut self, cb: &HandleRef) -> PyResult<()> {
        let handle = cb.0.bind(self.py);
        if self.debug {
            self.run_debug(handle)
        } else {
            Handle::run(handle)
        }
    }

    fn timed(&self) -> bool {
        self.debug
    }

    fn blocking<T: Send>(&mut self, f: impl FnOnce() -> T + Send) -> T {
        self.py.detach(f)
    }

    fn poll_failed(&mut self, e: io::Error) -> PyResult<()> {
        if e.kind() == io::ErrorKind::Interrupted {
            // A signal arrived during the poll: run Python's handlers now (SIGINT raises
            // KeyboardInterrupt here), then carry on with an empty event list.
            return self.py.check_signals();
        }
        Err(PyOSError::new_err(e.to_string()))
    }
}
