//! Exposes pyo3's interpreter cfgs (`Py_3_12`, `Py_3_14`, ...) to this crate, for the few
//! CPython structure fields whose presence depends on the version (see `py.rs`).

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
