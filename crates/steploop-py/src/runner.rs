//! [`PyRunner`]: how the engine runs Python handles — debug-mode timing and the slow-callback
//! warning, the GIL released around the poll, signals checked on `EINTR`.

use std::io;

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
    /// The blocking watchdog's threshold in seconds (0.0: off).
    pub watchdog: f64,
}

/// Sequence numbers of watched callbacks (so the watchdog reports each one once).
static WATCH_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
            imp.logger
                .call_method1(py, "warning", ("Executing %s took %.3f seconds", desc, dt))?;
        }
        Ok(())
    }
}

impl PyRunner<'_> {
    /// Runs a handle with the watchdog on: publish it with its start time, and when it ran
    /// past the threshold, tell the Python side (which logs the total duration).
    fn run_watched(&mut self, handle: &Bound<'_, Handle>) -> PyResult<()> {
        let seq = WATCH_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        // A blocking callback blocks in real time whatever the loop's clock (virtual loops):
        // the watchdog measures with `time.monotonic()`'s clock.
        let real = steploop::Clock::monotonic();
        let t0 = real.now();
        self.core
            .set_current(Some((handle.clone().unbind(), t0, seq)));
        let res = if self.debug {
            self.run_debug(handle)
        } else {
            Handle::run(handle)
        };
        self.core.set_current(None);
        let dt = real.now() - t0;
        if dt >= self.watchdog {
            self.lp
                .call_method1("_watchdog_finished", (handle, dt, seq))?;
        }
        res
    }
}

impl steploop::Runner<HandleRef> for PyRunner<'_> {
    /// Boxed: the engine moves a callback's result around once per callback, and a `PyErr`
    /// is several words; a box is one (and is only allocated when a callback raised out of
    /// its handle, which ends the iteration).
    type Error = Box<PyErr>;
    /// Cross-thread callbacks go straight into the ready queue (`call_soon_threadsafe`).
    const AFTER_POLL_QUEUES: bool = false;

    #[inline]
    fn run(&mut self, cb: &HandleRef) -> Result<(), Box<PyErr>> {
        let handle = cb.0.bind(self.py);
        let res = if self.watchdog > 0.0 {
            self.run_watched(handle)
        } else if self.debug {
            self.run_debug(handle)
        } else {
            Handle::run(handle)
        };
        res.map_err(Box::new)
    }

    fn timed(&self) -> bool {
        self.debug || self.watchdog > 0.0
    }

    fn blocking<T: Send>(&mut self, f: impl FnOnce() -> T + Send) -> T {
        let t0 = std::time::Instant::now();
        let res = self.py.detach(f);
        // A loop that sat idle gives back what the handle free lists kept for a burst (a
        // loop woken often, e.g. by another thread's bursts, keeps it).
        if t0.elapsed() >= crate::freelist::IDLE_TRIM {
            crate::freelist::trim(self.py);
        }
        res
    }

    fn before_block(&mut self) -> Result<(), Box<PyErr>> {
        // A signal that arrived while the loop spun (GIL released, no syscall to interrupt)
        // would otherwise wait for the next event: run Python's handlers now, as an
        // interrupted poll does.
        self.py.check_signals().map_err(Box::new)
    }

    fn poll_failed(&mut self, e: io::Error) -> Result<(), Box<PyErr>> {
        if e.kind() == io::ErrorKind::Interrupted {
            // A signal arrived during the poll: run Python's handlers now (SIGINT raises
            // KeyboardInterrupt here), then carry on with an empty event list.
            return self.py.check_signals().map_err(Box::new);
        }
        Err(Box::new(crate::error::os_error(e)))
    }
}
