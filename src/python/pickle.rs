//! Pickling (`Tensor.__reduce_ex__`): the data travels as one contiguous run of bytes, out of
//! band under protocol 5 (PEP 574), and comes back as a view of whatever buffer the unpickler
//! hands over, the way multiprocessing, Ray, Dask and joblib move numpy arrays.
//!
//! The pickled form is `dlbridge._rebuild_tensor(data, (code, bits, lanes), shape, strides,
//! flags)`: DLPack's dtype triple, strides in elements and DLPack's flag bits
//! (`READ_ONLY`, `IS_SUBBYTE_TYPE_PADDED`), so every dtype round-trips, bfloat16 and float8
//! included. `data` is a `PickleBuffer` under protocol 5 (pickle itself writes it in-band as
//! `bytes` or `bytearray` when no `buffer_callback` takes it) and a `bytearray` copy under
//! protocols 2 to 4.

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyByteArray;

use super::buffer::BufferOwner;
use super::errors::to_py_err;
use crate::tensor::Parts;
use crate::{DType, Flags, Order, Owner, TensorView};

/// DLPack's `DLPACK_FLAG_BITMASK_READ_ONLY`.
const READ_ONLY: u64 = 1;
/// DLPack's `DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED`.
const SUBBYTE_PADDED: u64 = 4;

/// What `__reduce_ex__` pickles: the tensor's bytes as one 1-D `uint8` view (of the tensor's
/// own memory when it is C- or F-contiguous, else of a C-order copy) and the metadata that
/// puts them back together.
pub(crate) struct Payload {
    /// A 1-D `uint8` view of exactly the bytes `strides` reach from its first byte.
    pub(crate) bytes: TensorView,
    pub(crate) dtype: (u8, u8, u16),
    pub(crate) shape: Vec<usize>,
    pub(crate) strides: Vec<isize>,
    pub(crate) flags: u64,
}

pub(crate) fn payload(view: &TensorView) -> PyResult<Payload> {
    if !view.device().is_host_accessible() {
        return Err(PyBufferError::new_err(format!(
            "cannot pickle memory on {}: dlbridge never reads device memory (import a host copy \
             with dlbridge.from_dlpack(x, device=\"cpu\") first)",
            view.device()
        )));
    }
    let dense = if view.is_c_contiguous() || view.is_f_contiguous() {
        view.clone()
    } else {
        view.to_contiguous(Order::C).map_err(to_py_err)?
    };
    let span = dense.byte_span();
    let parts = Parts {
        data: span.start as *mut u8,
        byte_offset: 0,
        shape: vec![span.len()],
        strides: Some(vec![1]),
        dtype: DType::U8,
        device: dense.device(),
        flags: Flags::default().with_read_only(dense.is_read_only()),
        extent: Some(span.clone()),
    };
    // SAFETY: a dense view reaches exactly the bytes of its span, which its owner keeps valid
    // (and writable unless it is read-only); the byte view keeps that owner.
    let bytes =
        unsafe { TensorView::from_parts(parts, dense.owner().clone()) }.map_err(to_py_err)?;
    let raw = dense.dtype().to_dlpack();
    let mut flags = 0;
    if dense.is_read_only() {
        flags |= READ_ONLY;
    }
    if dense.flags().subbyte_padded {
        flags |= SUBBYTE_PADDED;
    }
    Ok(Payload {
        bytes,
        dtype: (raw.code.0, raw.bits, raw.lanes),
        shape: dense.shape().to_vec(),
        strides: dense.strides().to_vec(),
        flags,
    })
}

/// A `bytearray` copy of a payload's bytes (protocols 2 to 4 pickle in-band).
pub(crate) fn in_band<'py>(
    py: Python<'py>,
    bytes: &TensorView,
) -> PyResult<Bound<'py, PyByteArray>> {
    let src = bytes.data_ptr();
    PyByteArray::new_with(py, bytes.nbytes(), |dst| {
        // SAFETY: `bytes` is a host view of exactly `nbytes` readable bytes from `src`, kept
        // alive by the borrow; `dst` is the fresh bytearray's storage of that length.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    })
}

/// The view `_rebuild_tensor` returns: `data`'s bytes (any contiguous buffer: the
/// `PickleBuffer`, a `memoryview` over shared memory, `bytes`, `bytearray`) seen as the pickled
/// tensor, without copying. A read-only buffer, or a tensor pickled read-only, gives a
/// read-only view. Data the dtype's alignment does not allow (a buffer cut at an odd offset) is
/// copied once, and the result says `is_copied`.
pub(crate) fn rebuild(
    data: &Bound<'_, PyAny>,
    dtype: (u8, u8, u16),
    shape: Vec<usize>,
    strides: Vec<isize>,
    flags: u64,
) -> PyResult<TensorView> {
    let dtype = DType::new(dtype.0, dtype.1, dtype.2).map_err(to_py_err)?;
    if shape.len() != strides.len() {
        return Err(PyValueError::new_err(format!(
            "a pickled tensor of {} dimensions with {} strides",
            shape.len(),
            strides.len()
        )));
    }
    let padded = flags & SUBBYTE_PADDED != 0;
    let need = shape
        .iter()
        .try_fold(1usize, |n, &extent| n.checked_mul(extent))
        .and_then(|n| match dtype.storage_size(padded) {
            Some(size) => n.checked_mul(size),
            None => n
                .checked_mul(dtype.element_bits() as usize)
                .map(|b| b.div_ceil(8)),
        })
        .ok_or_else(|| PyValueError::new_err(format!("a pickled shape {shape:?} overflows")))?;
    let (start, len, read_only, owner) = contiguous_bytes(data)?;
    if need != len {
        return Err(PyValueError::new_err(format!(
            "the pickled data has {len} bytes, a {dtype} tensor of shape {shape:?} needs {need}"
        )));
    }
    let parts = Parts {
        data: start as *mut u8,
        byte_offset: 0,
        shape,
        strides: Some(strides),
        dtype,
        device: crate::Device::CPU,
        flags: Flags::default()
            .with_read_only(read_only || flags & READ_ONLY != 0)
            .with_subbyte_padded(padded),
        extent: Some(start..start + len),
    };
    // SAFETY: the exporter keeps the `len` bytes at `start` valid (and writable unless the
    // buffer is read-only) until the buffer is released, which `owner` defers to the last view;
    // `from_parts` checks that the layout stays inside them.
    let view = unsafe { TensorView::from_parts(parts, owner) }.map_err(to_py_err)?;
    if !crate::layout::is_aligned(view.data_ptr() as usize, dtype.alignment(), view.numel()) {
        // Keep the layout's order; the copy is aligned.
        let order = if view.is_f_contiguous() && !view.is_c_contiguous() {
            Order::F
        } else {
            Order::C
        };
        let copy = view.to_contiguous(order).map_err(to_py_err)?;
        return Ok(if view.is_read_only() {
            copy.into_read_only()
        } else {
            copy
        });
    }
    Ok(view)
}

/// `PyObject_GetBuffer(obj, PyBUF_SIMPLE)`: the address, length and read-only flag of a
/// contiguous run of bytes, and the owner that releases the export.
fn contiguous_bytes(obj: &Bound<'_, PyAny>) -> PyResult<(usize, usize, bool, Owner)> {
    let (owner, filled) = BufferOwner::export(obj, ffi::PyBUF_SIMPLE)?;
    // SAFETY: `filled` is valid while `owner` lives, which it does here.
    let (start, len, read_only) = unsafe {
        (
            (*filled).buf as usize,
            (*filled).len,
            (*filled).readonly != 0,
        )
    };
    let len = usize::try_from(len)
        .map_err(|_| PyBufferError::new_err(format!("negative buffer length {len}")))?;
    Ok((start, len, read_only, owner))
}
