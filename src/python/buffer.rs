//! Import through the buffer protocol (`memoryview`, `bytearray`, `bytes`, `array.array`,
//! `mmap`, numpy, ...): the `Py_buffer` itself is the owner, released (with the GIL) when the
//! last view dies.

use std::ffi::CStr;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

use super::errors::to_py_err;
use super::runtime::with_gil;
use crate::tensor::Parts;
use crate::{Device, Flags, Owner, TensorView};

pub(crate) use crate::format::{parse_struct_format, ByteOrder};

/// An exported `Py_buffer`, released with the GIL when dropped (or leaked at shutdown).
pub(crate) struct BufferOwner {
    buffer: Box<ffi::Py_buffer>,
    /// The exporter, as a second strong reference next to `buffer.obj`, for the garbage
    /// collector (see [`BufferOwner::traverse`]).
    exporter: Option<Py<PyAny>>,
}

// SAFETY: the Py_buffer is only touched again in `drop`, which takes the GIL first; its data
// pointers are plain addresses. `Py<PyAny>` is Send + Sync.
unsafe impl Send for BufferOwner {}
// SAFETY: shared access never touches the Py_buffer.
unsafe impl Sync for BufferOwner {}

impl BufferOwner {
    /// Own a buffer filled by a successful `PyObject_GetBuffer` (released on drop).
    pub(crate) fn new(py: Python<'_>, buffer: Box<ffi::Py_buffer>) -> BufferOwner {
        // SAFETY: GIL held; a non-null `obj` is the strong reference the export holds.
        let exporter = (!buffer.obj.is_null())
            .then(|| unsafe { Bound::from_borrowed_ptr(py, buffer.obj) }.unbind());
        BufferOwner { buffer, exporter }
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
        let view: *mut ffi::Py_buffer = &mut *self.buffer;
        let mut exporter = self.exporter.take();
        let released = with_gil(|_py| {
            // SAFETY: the buffer was filled by a successful PyObject_GetBuffer and is released
            // exactly once, here, with the GIL held.
            unsafe { ffi::PyBuffer_Release(view) };
            drop(exporter.take());
        });
        if released.is_none() {
            // Interpreter shutting down: leave the exporter alone (its memory is leaked).
            let leaked = std::mem::replace(&mut self.buffer, Box::new(ffi::Py_buffer::new()));
            std::mem::forget(leaked);
            std::mem::forget(exporter);
        }
    }
}

/// A held buffer of `obj` and the view describing it (not yet copied or byte-swapped).
pub(crate) struct Exported {
    pub(crate) view: TensorView,
    pub(crate) order: ByteOrder,
}

/// `PyObject_GetBuffer(obj, PyBUF_RECORDS_RO)` as a view; `Ok(None)` when `obj` has no buffer
/// interface.
pub(crate) fn get_buffer(obj: &Bound<'_, PyAny>) -> PyResult<Option<Exported>> {
    // SAFETY: GIL held, live object.
    if unsafe { ffi::PyObject_CheckBuffer(obj.as_ptr()) } != 1 {
        return Ok(None);
    }
    let mut raw = Box::new(ffi::Py_buffer::new());
    // SAFETY: `raw` is a writable Py_buffer; on success we own the export until release.
    if unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *raw, ffi::PyBUF_RECORDS_RO) } != 0 {
        return Err(PyErr::fetch(obj.py()));
    }
    let filled = *raw;
    let owner = Owner::new(BufferOwner::new(obj.py(), raw));
    view_of_buffer(&filled, owner).map(Some)
}

/// Describe a filled `Py_buffer`; `owner` keeps it exported.
pub(crate) fn view_of_buffer(b: &ffi::Py_buffer, owner: Owner) -> PyResult<Exported> {
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
    let (shape, strides) = if ndim == 0 {
        (Vec::new(), Vec::new())
    } else if b.shape.is_null() {
        // Only possible for a flat request; ours asks for strides, but be lenient.
        let len = usize::try_from(b.len)
            .map_err(|_| PyBufferError::new_err(format!("negative buffer length {}", b.len)))?;
        (vec![len / itemsize], vec![1])
    } else {
        // SAFETY: a non-null shape holds `ndim` entries for the export's lifetime.
        let shape = unsafe { std::slice::from_raw_parts(b.shape, ndim) }
            .iter()
            .map(|&n| {
                usize::try_from(n).map_err(|_| {
                    PyBufferError::new_err(format!("negative extent {n} in the buffer's shape"))
                })
            })
            .collect::<PyResult<Vec<usize>>>()?;
        let strides = if b.strides.is_null() {
            crate::layout::c_strides(&shape).map_err(to_py_err)?
        } else {
            // SAFETY: non-null strides hold `ndim` entries for the export's lifetime.
            let raw = unsafe { std::slice::from_raw_parts(b.strides, ndim) };
            raw.iter()
                .map(|&s| {
                    if s % itemsize as isize != 0 {
                        Err(PyBufferError::new_err(format!(
                            "stride of {s} bytes is not a multiple of the {itemsize}-byte item"
                        )))
                    } else {
                        Ok(s / itemsize as isize)
                    }
                })
                .collect::<PyResult<Vec<isize>>>()?
        };
        (shape, strides)
    };
    let parts = Parts {
        data: b.buf.cast::<u8>(),
        byte_offset: 0,
        shape,
        strides: Some(strides),
        dtype,
        device: Device::CPU,
        flags: Flags {
            read_only: b.readonly != 0,
            ..Flags::default()
        },
        extent: None,
    };
    // SAFETY: the exporter keeps `buf` valid (and writable unless `readonly`) until the buffer
    // is released, which `owner` defers to the last view.
    let view = unsafe { TensorView::from_parts(parts, owner) }.map_err(to_py_err)?;
    Ok(Exported { view, order })
}
