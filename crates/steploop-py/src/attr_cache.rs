//! Attribute reads that are done once and then kept while the objects they came from are
//! unchanged, the way CPython's own specialised `LOAD_ATTR`/`LOAD_METHOD` keep them.
//!
//! Two public CPython version stamps say "unchanged":
//! - a dict's version tag (PEP 509, [`crate::py::dict_version`]) changes with every change
//!   to the dict and is unique over all dicts of the process, so whatever was derived from
//!   a dict at one version still holds while the dict has that version: the objects it held
//!   are still alive (the dict holds them), and what was read from immutable objects (an
//!   `int`'s truth, a bound method's function) is the same;
//! - a type's version tag changes (or becomes invalid) whenever the type or one of its bases
//!   is modified, and is never reused for another type or version, so an attribute found on
//!   the type at one tag is still what the type's MRO holds while the tag is the same.
//!
//! [`DictTable`] keeps derived facts per (dict, version); [`type_attr`] keeps what
//! `_PyType_Lookup` found per (type, tag). Both are small direct-mapped tables under the
//! GIL: a miss costs what the plain lookup costs, plus the store.
//!
//! Not done here: calling a protocol's method through the function kept per type tag. It
//! must check that the instance does not hide the method, and reading an instance dict
//! through the C API makes CPython move the attributes out of the object's inline values
//! into a real dict, after which the protocol's own Python code reads its attributes more
//! slowly (measured: the check cost more than the lookup it saved).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::py::GilCell;

unsafe extern "C" {
    /// The MRO lookup behind `getattr` (no descriptor call, borrowed result or NULL without
    /// an exception); exported by libpython (`Include/cpython/object.h`), not wrapped by
    /// pyo3-ffi.
    fn _PyType_Lookup(ty: *mut ffi::PyTypeObject, name: *mut ffi::PyObject) -> *mut ffi::PyObject;
}

/// A slot of a [`DictTable`]: the dict (its address), its version, the facts.
#[derive(Clone, Copy)]
struct Slot<P> {
    dict: usize,
    version: u64,
    facts: P,
}

/// Facts derived from dicts, per (dict, version), in `N` slots chosen by the dict's address.
pub(crate) struct DictTable<P: Copy, const N: usize> {
    slots: GilCell<[Option<Slot<P>>; N]>,
}

impl<P: Copy + Send, const N: usize> DictTable<P, N> {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        DictTable {
            slots: GilCell::new([None; N]),
        }
    }

    fn index(dict: &Bound<'_, PyDict>) -> usize {
        // Dicts are 16-byte aligned and usually further apart than that.
        (dict.as_ptr() as usize >> 6) % N
    }

    /// The facts kept for `dict` at `version` (its current one, from `dict_version`).
    #[inline]
    pub(crate) fn get(&self, dict: &Bound<'_, PyDict>, version: u64) -> Option<P> {
        let slot = self.slots.get(dict.py())[Self::index(dict)]?;
        (slot.dict == dict.as_ptr() as usize && slot.version == version).then_some(slot.facts)
    }

    /// Keeps `facts` for `dict` at `version`, replacing whatever shared its slot.
    pub(crate) fn put(&self, dict: &Bound<'_, PyDict>, version: u64, facts: P) {
        self.slots.get(dict.py())[Self::index(dict)] = Some(Slot {
            dict: dict.as_ptr() as usize,
            version,
            facts,
        });
    }
}

/// The valid version tag of `ty`, if it has one.
#[inline]
pub(crate) fn type_tag(ty: *mut ffi::PyTypeObject) -> Option<u32> {
    // SAFETY: `ty` is a live type object (the type of a live object); reading two fields.
    let (flags, tag) = unsafe { ((*ty).tp_flags, (*ty).tp_version_tag) };
    (flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG != 0 && tag != 0).then_some(tag)
}

/// What `_PyType_Lookup(type, name)` returned at a type's tag (borrowed: the type's MRO
/// holds it while the tag is unchanged).
#[derive(Clone, Copy)]
struct TypeSlot {
    ty: usize,
    tag: u32,
    name: usize,
    found: usize,
}

/// A raw pointer that only travels with the GIL.
struct TypeSlots([Option<TypeSlot>; 16]);

// SAFETY: the slots hold addresses only, read and written with the GIL held (`GilCell`).
unsafe impl Send for TypeSlots {}

static TYPE_SLOTS: GilCell<TypeSlots> = GilCell::new(TypeSlots([None; 16]));

/// `_PyType_Lookup(ty, name)`: the attribute `name` as the MRO of `ty` holds it (a function,
/// not a bound method; no descriptor is called), borrowed, or NULL. Kept per (type, tag,
/// name) (`name` should be interned, as `intern!` strings are).
pub(crate) fn type_attr(
    py: Python<'_>,
    ty: *mut ffi::PyTypeObject,
    name: &Bound<'_, PyString>,
) -> *mut ffi::PyObject {
    let index = ((ty as usize >> 4) ^ (name.as_ptr() as usize >> 4)) % 16;
    if let Some(tag) = type_tag(ty) {
        if let Some(s) = TYPE_SLOTS.get(py).0[index] {
            if s.ty == ty as usize && s.tag == tag && s.name == name.as_ptr() as usize {
                return s.found as *mut ffi::PyObject;
            }
        }
    }
    // SAFETY: GIL held; `ty` is live and `name` is a str. `_PyType_Lookup` runs no Python
    // code (it reads the MRO's dicts with str keys) and may assign the type a version tag.
    let found = unsafe { _PyType_Lookup(ty, name.as_ptr()) };
    if let Some(tag) = type_tag(ty) {
        TYPE_SLOTS.get(py).0[index] = Some(TypeSlot {
            ty: ty as usize,
            tag,
            name: name.as_ptr() as usize,
            found: found as usize,
        });
    }
    found
}
