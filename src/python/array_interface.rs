//! Import through numpy's `__array_interface__` (version 3): the exposing object is the owner.

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::buffer::{self, Exported};
use super::errors::to_py_err;
use super::runtime::PyObjectOwner;
use crate::format::parse_typestr;
use crate::{Flags, Owner, TensorView};

/// Describe `obj.__array_interface__`; `Ok(None)` when `obj` has none.
pub(crate) fn get_interface(obj: &Bound<'_, PyAny>) -> PyResult<Option<Exported>> {
    let py = obj.py();
    let iface = match obj.getattr(pyo3::intern!(py, "__array_interface__")) {
        Ok(i) => i,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => return Ok(None),
        Err(e) => return Err(e),
    };
    let d = iface
        .cast::<PyDict>()
        .map_err(|_| PyValueError::new_err("__array_interface__ is not a dict"))?;
    let get = |key: &str| d.get_item(key);
    let version: i64 = match get("version")? {
        Some(v) => v.extract()?,
        None => return Err(PyValueError::new_err("__array_interface__ has no version")),
    };
    if version != 3 {
        return Err(PyValueError::new_err(format!(
            "__array_interface__ version {version} is not supported (expected 3)"
        )));
    }
    if let Some(mask) = get("mask")? {
        if !mask.is_none() {
            return Err(PyBufferError::new_err("masked arrays have no DLPack form"));
        }
    }
    let shape =
        get("shape")?.ok_or_else(|| PyValueError::new_err("__array_interface__ has no shape"))?;
    let shape: Vec<usize> = non_negative(&shape, "shape")?;
    let typestr: String = get("typestr")?
        .ok_or_else(|| PyValueError::new_err("__array_interface__ has no typestr"))?
        .extract()?;
    let (dtype, order) =
        parse_typestr(&typestr).map_err(|e| PyBufferError::new_err(e.to_string()))?;
    let strides = match get("strides")? {
        Some(s) if !s.is_none() => {
            let bytes: Vec<isize> = s.extract().map_err(|_| {
                PyValueError::new_err("__array_interface__ strides must be integers within isize")
            })?;
            if bytes.len() != shape.len() {
                return Err(PyValueError::new_err("strides and shape differ in length"));
            }
            Some(bytes)
        }
        _ => None,
    };
    let mut extent = None;
    let data = get("data")?;
    let (ptr, offset, read_only, owner) = match data {
        Some(t) if t.is_instance_of::<PyTuple>() => {
            // A raw pointer: the protocol (and numpy) ignore `offset` here, since the pointer
            // already names the first element. Nothing bounds it: the exposing object vouches.
            let t = t.cast::<PyTuple>()?;
            if t.len() != 2 {
                return Err(PyValueError::new_err(
                    "__array_interface__ data must be a (pointer, read_only) pair",
                ));
            }
            let ptr: usize = t.get_item(0)?.extract().map_err(|_| {
                PyValueError::new_err("__array_interface__ data pointer is not an address")
            })?;
            // Any truthy marker means read-only, as numpy reads it.
            let ro = t.get_item(1)?.is_truthy()?;
            (
                ptr as *mut u8,
                0,
                ro,
                Owner::new(PyObjectOwner::new(obj.clone().unbind())),
            )
        }
        other => {
            // A buffer object (or None: the object's own buffer), plus `offset` in bytes.
            let offset: usize = match get("offset")? {
                Some(o) if !o.is_none() => non_negative(&o, "offset")?,
                _ => 0,
            };
            let source = match other {
                Some(o) if !o.is_none() => o,
                _ => obj.clone(),
            };
            let Some(held) = buffer::get_buffer(&source)? else {
                return Err(PyValueError::new_err(
                    "__array_interface__ data is neither a tuple nor a buffer",
                ));
            };
            if !held.view.is_c_contiguous() {
                return Err(PyBufferError::new_err(
                    "__array_interface__ data names a non-contiguous buffer",
                ));
            }
            let base = held.view.data_ptr().cast_mut();
            let ro = held.view.is_read_only();
            // Shape, strides and offset must stay inside the named buffer (numpy checks this
            // too): bound the view by the buffer's bytes.
            extent = Some(held.view.byte_span());
            // Keep both the exposing object and the held buffer.
            let both = Owner::with_dependencies(
                PyObjectOwner::new(obj.clone().unbind()),
                vec![held.view.owner().clone()],
            );
            (base, offset, ro, both)
        }
    };
    let flags = Flags::default().with_read_only(read_only);
    let (parts, elements) =
        buffer::parts_for_byte_strides(ptr, offset, shape, strides, dtype, flags, extent);
    // SAFETY: the array-interface contract: the described memory stays valid (and writable
    // unless flagged read-only) while the exposing object (and the buffer it named) lives,
    // which `owner` guarantees.
    let view = unsafe { TensorView::from_parts(parts, owner) }.map_err(to_py_err)?;
    Ok(Some(Exported {
        view,
        order,
        elements,
    }))
}

/// A non-negative integer (or sequence of them) of the interface, or a `ValueError` naming it.
fn non_negative<'py, T: FromPyObjectOwned<'py>>(
    value: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<T> {
    value.extract().map_err(|_| {
        PyValueError::new_err(format!(
            "__array_interface__ {what} must be non-negative integers within the address space, \
             got {}",
            value.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })
}
