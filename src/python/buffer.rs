//! Import through the buffer protocol (`memoryview`, `bytearray`, `bytes`, `array.array`,
//! `mmap`, numpy, ...): the `Py_buffer` itself is the owner, released (with the GIL) when the
//! last view dies.

use std::ffi::CStr;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

use super::errors::to_py_err;
use super::runtime::with_gil;
use crate::dims::OwnedDims;
use crate::tensor::{Parts, RawParts};
use crate::{DType, Device, Flags, Owner, TensorView, MAX_NDIM};

pub(crate) use crate::format::{parse_struct_format, ByteOrder};

/// An exported `Py_buffer`, released with the GIL when dropped (at interpreter shutdown the
/// export's reference to its object is leaked instead; the struct itself is freed).
///
/// The `Py_buffer` lives inside the owner and is filled there ([`BufferOwner::export`]): it never
/// moves while exported, which matters because an exporter may point its `shape` and `strides`
/// into the struct itself (`PyBuffer_FillInfo` points them at `len` and `itemsize`).
pub(crate) struct BufferOwner {
    /// Zeroed until filled; `obj` is NULL unless an export holds it, and releasing a buffer
    /// with a NULL `obj` does nothing.
    buffer: ffi::Py_buffer,
    /// The exporter, as a second strong reference next to `buffer.obj`, for the garbage
    /// collector (see [`BufferOwner::traverse`]).
    exporter: Option<Py<PyAny>>,
}

// SAFETY: the Py_buffer is only touched again in `drop`, which takes the GIL first; its data
// pointers are plain addresses. `Py<PyAny>` is Send + Sync.
unsafe impl Send for BufferOwner {}
// SAFETY: shared access only reads the filled Py_buffer, which nothing changes until `drop`.
unsafe impl Sync for BufferOwner {}

impl BufferOwner {
    /// `PyObject_GetBuffer(obj, flags)` straight into a new owner (one allocation, no copy of
    /// the struct). Returns the owner (which releases the export when its last handle goes)
    /// and the filled buffer, valid and unchanged while the owner lives.
    pub(crate) fn export(
        obj: &Bound<'_, PyAny>,
        flags: std::ffi::c_int,
    ) -> PyResult<(Owner, *const ffi::Py_buffer)> {
        let py = obj.py();
        let empty = BufferOwner {
            buffer: ffi::Py_buffer::new(),
            exporter: None,
        };
        let (owner, filled) = Owner::new_inspected(empty, |held| {
            // SAFETY: GIL held, live object; `held.buffer` is a zeroed, writable Py_buffer in its
            // final place. On failure the exporter leaves `obj` NULL, so the owner's release is
            // a no-op.
            if unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut held.buffer, flags) } != 0 {
                return Err(PyErr::fetch(py));
            }
            if !held.buffer.obj.is_null() {
                // SAFETY: GIL held; a non-null `obj` is the strong reference the export holds.
                held.exporter =
                    Some(unsafe { Bound::from_borrowed_ptr(py, held.buffer.obj) }.unbind());
            }
            Ok(())
        });
        filled?;
        // Taken from the owner in its final state (not from the closure's `&mut`), so the
        // pointer stays valid for as long as the owner does.
        let held = owner
            .value_ref::<BufferOwner>()
            .expect("the owner was just made from a BufferOwner");
        let buffer: *const ffi::Py_buffer = &held.buffer;
        Ok((owner, buffer))
    }

    /// Report both references to the exporter (`buffer.obj` and ours) to the collector.
    pub(crate) fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if !self.buffer.obj.is_null() {
            visit.call(&self.exporter)?;
            visit.call(&self.exporter)?;
        }
        Ok(())
    }
}

impl Drop for BufferOwner {
    fn drop(&mut self) {
        if self.buffer.obj.is_null() {
            return; // never filled, or an export that holds no object: nothing to release
        }
        let view: *mut ffi::Py_buffer = &mut self.buffer;
        let mut exporter = self.exporter.take();
        let released = with_gil(|_py| {
            // SAFETY: the buffer was filled by a successful PyObject_GetBuffer and is released
            // exactly once, here, with the GIL held.
            unsafe { ffi::PyBuffer_Release(view) };
            drop(exporter.take());
        });
        if released.is_none() {
            // Interpreter shutting down: leave the exporter alone (its memory is leaked).
            std::mem::forget(exporter);
        }
    }
}

/// A held buffer of `obj` and the view describing it (not yet copied or byte-swapped).
pub(crate) struct Exported {
    pub(crate) view: TensorView,
    pub(crate) order: ByteOrder,
    /// `Some(dtype)` when the byte strides are not whole elements of `dtype`, which a tensor
    /// cannot describe: `view` is then the elements' bytes (`uint8`, one more axis of the
    /// item size, byte strides), to be gathered by a copy.
    pub(crate) elements: Option<DType>,
}

/// Parts for `shape` elements of `dtype` with byte strides `byte_strides`: the typed parts when
/// every stride is a whole number of elements, else the parts of the elements' bytes (see
/// [`Exported::elements`]) and `Some(dtype)`.
#[inline]
pub(crate) fn parts_for_byte_strides(
    data: *mut u8,
    byte_offset: usize,
    mut shape: Vec<usize>,
    byte_strides: Option<Vec<isize>>,
    dtype: DType,
    flags: Flags,
    extent: Option<std::ops::Range<usize>>,
) -> (Parts, Option<DType>) {
    let size = dtype.itemsize().unwrap_or(1) as isize;
    let whole = byte_strides
        .as_ref()
        .is_none_or(|b| b.iter().all(|&s| s % size == 0));
    let parts = |shape, strides, dtype| Parts {
        data,
        byte_offset,
        shape,
        strides,
        dtype,
        device: Device::CPU,
        flags,
        extent,
    };
    match byte_strides {
        Some(mut bytes) if !whole => {
            shape.push(size as usize);
            bytes.push(1);
            (parts(shape, Some(bytes), DType::U8), Some(dtype))
        }
        strides => {
            // Whole elements: the same allocation, now counting elements.
            let strides = strides.map(|mut b| {
                b.iter_mut().for_each(|s| *s /= size);
                b
            });
            (parts(shape, strides, dtype), None)
        }
    }
}

/// `PyObject_GetBuffer(obj, PyBUF_RECORDS_RO)` as a view; `Ok(None)` when `obj` has no buffer
/// interface.
pub(crate) fn get_buffer(obj: &Bound<'_, PyAny>) -> PyResult<Option<Exported>> {
    // SAFETY: GIL held, live object.
    if unsafe { ffi::PyObject_CheckBuffer(obj.as_ptr()) } != 1 {
        return Ok(None);
    }
    let (owner, filled) = BufferOwner::export(obj, ffi::PyBUF_RECORDS_RO)?;
    // SAFETY: `filled` is valid and unchanged while `owner` lives, which `view_of_buffer`
    // keeps until it has read the buffer.
    unsafe { view_of_buffer(filled, owner) }.map(Some)
}

/// Describe the filled `Py_buffer` at `b`; `owner` keeps it exported.
///
/// # Safety
/// `b` points to a filled `Py_buffer` that stays valid and unchanged while `owner` lives.
pub(crate) unsafe fn view_of_buffer(b: *const ffi::Py_buffer, owner: Owner) -> PyResult<Exported> {
    // SAFETY: per the contract; `owner` is held until the last read of `b` (it moves into the
    // view only after), and the reference is not used past that point.
    let b = unsafe { &*b };
    let format = if b.format.is_null() {
        "B"
    } else {
        // SAFETY: a non-null format is a NUL-terminated string owned by the export.
        unsafe { CStr::from_ptr(b.format) }
            .to_str()
            .map_err(|_| PyBufferError::new_err("non-UTF-8 buffer format"))?
    };
    let (dtype, order) =
        parse_struct_format(format).map_err(|e| PyBufferError::new_err(e.to_string()))?;
    let itemsize = dtype.itemsize().unwrap_or(1);
    if usize::try_from(b.itemsize).ok() != Some(itemsize) {
        return Err(PyBufferError::new_err(format!(
            "buffer format {format:?} means {itemsize}-byte items, the exporter says {}",
            b.itemsize
        )));
    }
    if !b.suboffsets.is_null() {
        return Err(PyBufferError::new_err(
            "indirect (suboffset) buffers are not supported",
        ));
    }
    let ndim = usize::try_from(b.ndim).map_err(|_| PyBufferError::new_err("negative ndim"))?;
    if ndim > MAX_NDIM {
        return Err(PyBufferError::new_err(format!(
            "a buffer of {ndim} dimensions exceeds dlbridge's limit of {MAX_NDIM}"
        )));
    }
    let flags = Flags::default().with_read_only(b.readonly != 0);
    let size = itemsize as isize;
    let shape: &[ffi::Py_ssize_t] = if ndim == 0 || b.shape.is_null() {
        &[]
    } else {
        // SAFETY: a filled Py_buffer with non-null `shape` has `ndim` extents, valid until it is
        // released (after this function: `owner` holds it).
        unsafe { std::slice::from_raw_parts(b.shape, ndim) }
    };
    let byte_strides: Option<&[ffi::Py_ssize_t]> = if shape.is_empty() || b.strides.is_null() {
        None
    } else {
        // SAFETY: as for `shape`.
        Some(unsafe { std::slice::from_raw_parts(b.strides, ndim) })
    };
    let extent = |k: usize| {
        usize::try_from(shape[k]).map_err(|_| {
            PyBufferError::new_err(format!(
                "negative extent {} in the buffer's shape",
                shape[k]
            ))
        })
    };
    let elements = match byte_strides {
        // Byte strides that are not whole elements: bytes with an extra axis (rare; `Vec`s).
        Some(bytes) if bytes.iter().any(|&s| s % size != 0) => {
            let extents = (0..ndim).map(extent).collect::<PyResult<Vec<usize>>>()?;
            let (parts, elements) = parts_for_byte_strides(
                b.buf.cast::<u8>(),
                0,
                extents,
                Some(bytes.to_vec()),
                dtype,
                flags,
                None,
            );
            // SAFETY: the exporter keeps `buf` valid (and writable unless `readonly`) until the
            // buffer is released, which `owner` defers to the last view.
            let view = unsafe { TensorView::from_parts(parts, owner) }.map_err(to_py_err)?;
            return Ok(Exported {
                view,
                order,
                elements,
            });
        }
        _ => None,
    };
    let dims = if ndim == 0 {
        OwnedDims::scalar()
    } else if b.shape.is_null() {
        // A 1-D buffer may leave out its shape: `len` bytes of items.
        let len = usize::try_from(b.len)
            .map_err(|_| PyBufferError::new_err(format!("negative buffer length {}", b.len)))?;
        OwnedDims::from_slices(&[len / itemsize], &[1])
    } else if let Some(bytes) = byte_strides {
        OwnedDims::try_from_fn(ndim, |k| Ok::<_, PyErr>((extent(k)?, bytes[k] / size)))?
    } else {
        let mut dims = OwnedDims::try_from_fn(ndim, |k| Ok::<_, PyErr>((extent(k)?, 0)))?;
        dims.set_c_strides().map_err(to_py_err)?;
        dims
    };
    let parts = RawParts {
        data: b.buf.cast::<u8>(),
        byte_offset: 0,
        dims,
        dtype,
        device: Device::CPU,
        flags,
        extent: None,
    };
    // SAFETY: the exporter keeps `buf` valid (and writable unless `readonly`) until the buffer
    // is released, which `owner` defers to the last view.
    let view = unsafe { TensorView::from_raw_parts(parts, owner) }.map_err(to_py_err)?;
    Ok(Exported {
        view,
        order,
        elements,
    })
}
