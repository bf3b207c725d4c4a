//! `steploop._steploop`: the Python binding of the steploop engine.
//!
//! Thin by design: conversions, pyclasses and GIL handling. The iteration itself is
//! `steploop::Core::run_once`; this crate only says how a Python handle runs.

mod asyncgen_hooks;
mod attr_cache;
mod context;
mod error;
mod fastcall;
mod freelist;
mod handle;
mod loop_core;
mod malloc_tuning;
mod py;
mod report;
mod runner;
mod sock;
mod transport;
mod transport_state;
mod transport_write;

use pyo3::prelude::*;

/// The native half of steploop; see the `steploop` package for the public API.
#[pymodule(gil_used = true)]
mod _steploop {
    #[pymodule_export]
    use crate::context::_current_context_known;
    #[pymodule_export]
    use crate::freelist::_free_handle_counts;
    #[pymodule_export]
    use crate::handle::{Handle, TimerHandle};
    #[pymodule_export]
    use crate::loop_core::LoopCore;
    #[pymodule_export]
    use crate::report::StepReport;
    #[pymodule_export]
    use crate::sock::_socket_layout_known;
    #[pymodule_export]
    use crate::transport_write::_register_socket_transport;

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        crate::malloc_tuning::raise_mmap_threshold();
        crate::handle::install_slots(m.py());
        crate::freelist::install(m.py());
        crate::fastcall::install(m.py())?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
