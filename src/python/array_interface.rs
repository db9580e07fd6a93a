//! Import through numpy's `__array_interface__` (version 3): the exposing object is the owner.

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::buffer::{self, ByteOrder, Exported};
use super::{to_py_err, PyObjectOwner};
use crate::tensor::Parts;
use crate::{DType, Device, Flags, Owner, TensorView};

/// Parse a numpy `typestr` (`"<f4"`, `">i8"`, `"|b1"`, `"<c8"`, ...) into a dtype and byte order.
pub(crate) fn parse_typestr(s: &str) -> Result<(DType, ByteOrder), String> {
    let bad = || format!("unsupported array-interface typestr {s:?}");
    let b = s.as_bytes();
    if b.len() < 3 {
        return Err(bad());
    }
    let little = cfg!(target_endian = "little");
    let order = match b[0] {
        b'<' if little => ByteOrder::Native,
        b'>' if !little => ByteOrder::Native,
        b'<' | b'>' => ByteOrder::Swapped,
        b'|' | b'=' => ByteOrder::Native,
        _ => return Err(bad()),
    };
    let size: usize = s[2..].parse().map_err(|_| bad())?;
    let dtype = match (b[1], size) {
        (b'b', 1) => DType::BOOL,
        (b'i', 1) => DType::I8,
        (b'i', 2) => DType::I16,
        (b'i', 4) => DType::I32,
        (b'i', 8) => DType::I64,
        (b'u', 1) => DType::U8,
        (b'u', 2) => DType::U16,
        (b'u', 4) => DType::U32,
        (b'u', 8) => DType::U64,
        (b'f', 2) => DType::F16,
        (b'f', 4) => DType::F32,
        (b'f', 8) => DType::F64,
        (b'c', 8) => DType::C64,
        (b'c', 16) => DType::C128,
        _ => return Err(bad()),
    };
    let order = if size == 1 { ByteOrder::Native } else { order };
    Ok((dtype, order))
}

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
    let shape: Vec<usize> = get("shape")?
        .ok_or_else(|| PyValueError::new_err("__array_interface__ has no shape"))?
        .extract()?;
    let typestr: String = get("typestr")?
        .ok_or_else(|| PyValueError::new_err("__array_interface__ has no typestr"))?
        .extract()?;
    let (dtype, order) = parse_typestr(&typestr).map_err(PyBufferError::new_err)?;
    let itemsize = dtype.itemsize().unwrap_or(1) as isize;
    let strides = match get("strides")? {
        Some(s) if !s.is_none() => {
            let bytes: Vec<isize> = s.extract()?;
            if bytes.len() != shape.len() {
                return Err(PyValueError::new_err("strides and shape differ in length"));
            }
            let mut out = Vec::with_capacity(bytes.len());
            for b in bytes {
                if b % itemsize != 0 {
                    return Err(PyBufferError::new_err(format!(
                        "stride of {b} bytes is not a multiple of the {itemsize}-byte item"
                    )));
                }
                out.push(b / itemsize);
            }
            Some(out)
        }
        _ => None,
    };
    let offset: usize = match get("offset")? {
        Some(o) if !o.is_none() => o.extract()?,
        _ => 0,
    };
    let keep = Owner::new(PyObjectOwner::new(obj.clone().unbind()));
    let data = get("data")?;
    let (ptr, read_only, owner) = match data {
        Some(t) if t.is_instance_of::<PyTuple>() => {
            let (ptr, ro): (usize, bool) = t.extract()?;
            (ptr as *mut u8, ro, keep)
        }
        other => {
            // A buffer object (or None: the object's own buffer), plus `offset`.
            let source = match other {
                Some(o) if !o.is_none() => o,
                _ => obj.clone(),
            };
            let Some(held) = buffer::get_buffer(&source)? else {
                return Err(PyValueError::new_err(
                    "__array_interface__ data is neither a tuple nor a buffer",
                ));
            };
            let base = held.view.data_ptr().cast_mut();
            let ro = held.view.is_read_only();
            // Keep both the exposing object and the held buffer.
            let both = Owner::new((keep, held.view.owner().clone()));
            (base, ro, both)
        }
    };
    let parts = Parts {
        data: ptr,
        byte_offset: offset,
        shape,
        strides,
        dtype,
        device: Device::CPU,
        flags: Flags {
            read_only,
            ..Flags::default()
        },
        extent: None,
    };
    // SAFETY: the array-interface contract: the described memory stays valid (and writable
    // unless flagged read-only) while the exposing object (and the buffer it named) lives,
    // which `owner` guarantees.
    let view = unsafe { TensorView::from_parts(parts, owner) }.map_err(to_py_err)?;
    Ok(Some(Exported { view, order }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typestrs() {
        assert_eq!(
            parse_typestr("<f4").unwrap(),
            (DType::F32, ByteOrder::Native)
        );
        assert_eq!(
            parse_typestr(">i8").unwrap(),
            (DType::I64, ByteOrder::Swapped)
        );
        assert_eq!(parse_typestr("|b1").unwrap().0, DType::BOOL);
        assert_eq!(parse_typestr("<c16").unwrap().0, DType::C128);
        assert_eq!(parse_typestr(">u1").unwrap().1, ByteOrder::Native);
        for bad in ["<V2", "|O8", "<M8[s]", "<U4", "f4", "<f16", "<f"] {
            assert!(parse_typestr(bad).is_err(), "{bad}");
        }
    }
}
