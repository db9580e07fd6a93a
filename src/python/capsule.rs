//! DLPack capsules, both ways, with raw `pyo3::ffi` (pyo3's `PyCapsule` cannot rename-aware
//! destruct): an unconsumed capsule's destructor calls the deleter; a consumed one (renamed
//! `used_*`) does nothing. The destructor preserves any pending Python exception.

use std::ffi::{c_void, CStr};

use dlpark::ffi::{DLManagedTensor, DLManagedTensorVersioned, DLTensor};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;

use super::errors::to_py_err;
use crate::{Device, ManagedTensorLegacy, ManagedTensorVersioned, TensorView};

pub(crate) const DLTENSOR: &CStr = c"dltensor";
pub(crate) const USED_DLTENSOR: &CStr = c"used_dltensor";
pub(crate) const DLTENSOR_VERSIONED: &CStr = c"dltensor_versioned";
pub(crate) const USED_DLTENSOR_VERSIONED: &CStr = c"used_dltensor_versioned";

/// Run `f` with the pending exception (if any) saved and restored around it, so that a
/// destructor running during exception propagation cannot clobber or observe it.
///
/// # Safety
/// The GIL must be held.
pub(crate) unsafe fn preserving_exception(f: impl FnOnce()) {
    let (mut ty, mut value, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // SAFETY: GIL held (contract); the three out-pointers are valid locals. Fetch/Restore is the
    // stable-ABI pair (PyErr_GetRaisedException needs 3.12).
    unsafe { ffi::PyErr_Fetch(&mut ty, &mut value, &mut tb) };
    // Never unwind into the interpreter.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    // SAFETY: GIL held; restores exactly the references fetched above (steals them).
    unsafe { ffi::PyErr_Restore(ty, value, tb) };
}

unsafe extern "C" fn destroy_versioned(capsule: *mut ffi::PyObject) {
    // SAFETY: CPython calls capsule destructors with the GIL held and a live capsule.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, DLTENSOR_VERSIONED.as_ptr()) != 1 {
            return; // consumed (renamed): the consumer owns the tensor now
        }
        preserving_exception(|| {
            let ptr = ffi::PyCapsule_GetPointer(capsule, DLTENSOR_VERSIONED.as_ptr());
            // SAFETY: an unconsumed "dltensor_versioned" capsule owns its managed tensor;
            // dropping the handle runs the deleter once.
            drop(ManagedTensorVersioned::from_raw(ptr.cast()));
        });
    }
}

unsafe extern "C" fn destroy_legacy(capsule: *mut ffi::PyObject) {
    // SAFETY: as in `destroy_versioned`.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, DLTENSOR.as_ptr()) != 1 {
            return;
        }
        preserving_exception(|| {
            let ptr = ffi::PyCapsule_GetPointer(capsule, DLTENSOR.as_ptr());
            // SAFETY: as in `destroy_versioned`.
            drop(ManagedTensorLegacy::from_raw(ptr.cast()));
        });
    }
}

/// Wrap an owned versioned managed tensor in a `"dltensor_versioned"` capsule.
pub(crate) fn versioned_capsule(
    py: Python<'_>,
    managed: ManagedTensorVersioned,
) -> PyResult<Bound<'_, PyAny>> {
    let raw = managed.into_raw();
    // SAFETY: `raw` is a live managed tensor we own; the capsule takes ownership and its
    // destructor frees it unless a consumer renames the capsule first.
    let capsule = unsafe {
        ffi::PyCapsule_New(
            raw.cast::<c_void>(),
            DLTENSOR_VERSIONED.as_ptr(),
            Some(destroy_versioned),
        )
    };
    if capsule.is_null() {
        // SAFETY: the capsule was not created, so we still own `raw`: delete it.
        drop(unsafe { ManagedTensorVersioned::from_raw(raw) });
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `capsule` is a new (owned) reference.
    Ok(unsafe { Bound::from_owned_ptr(py, capsule) })
}

/// Wrap an owned legacy managed tensor in a `"dltensor"` capsule.
pub(crate) fn legacy_capsule(
    py: Python<'_>,
    managed: ManagedTensorLegacy,
) -> PyResult<Bound<'_, PyAny>> {
    let raw = managed.into_raw();
    // SAFETY: as in `versioned_capsule`.
    let capsule = unsafe {
        ffi::PyCapsule_New(
            raw.cast::<c_void>(),
            DLTENSOR.as_ptr(),
            Some(destroy_legacy),
        )
    };
    if capsule.is_null() {
        // SAFETY: as in `versioned_capsule`.
        drop(unsafe { ManagedTensorLegacy::from_raw(raw) });
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `capsule` is a new (owned) reference.
    Ok(unsafe { Bound::from_owned_ptr(py, capsule) })
}

/// True when `obj` is a PyCapsule.
pub(crate) fn is_capsule(obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: GIL held (we have a Bound); `obj` is a live object.
    unsafe { ffi::PyCapsule_CheckExact(obj.as_ptr()) == 1 }
}

/// Consume a DLPack capsule: take its managed tensor, rename it `used_*` so its destructor
/// leaves the tensor alone, and wrap it (the deleter runs when the last view dies).
pub(crate) fn consume_capsule(obj: &Bound<'_, PyAny>) -> PyResult<TensorView> {
    let py = obj.py();
    if !is_capsule(obj) {
        return Err(PyTypeError::new_err(format!(
            "__dlpack__ returned a {} instead of a DLPack capsule",
            obj.get_type().name()?
        )));
    }
    let cap = obj.as_ptr();
    // SAFETY: `cap` is a live capsule (checked) and we hold the GIL. IsValid never raises.
    unsafe {
        if ffi::PyCapsule_IsValid(cap, DLTENSOR_VERSIONED.as_ptr()) == 1 {
            let ptr = ffi::PyCapsule_GetPointer(cap, DLTENSOR_VERSIONED.as_ptr());
            if ffi::PyCapsule_SetName(cap, USED_DLTENSOR_VERSIONED.as_ptr()) != 0 {
                return Err(PyErr::fetch(py));
            }
            // SAFETY: the renamed capsule no longer owns the tensor; this handle now does.
            let managed = ManagedTensorVersioned::from_raw(ptr.cast::<DLManagedTensorVersioned>())
                .ok_or_else(|| PyValueError::new_err("DLPack capsule holds a null pointer"))?;
            return TensorView::from_dlpack_versioned(managed).map_err(to_py_err);
        }
        if ffi::PyCapsule_IsValid(cap, DLTENSOR.as_ptr()) == 1 {
            let ptr = ffi::PyCapsule_GetPointer(cap, DLTENSOR.as_ptr());
            if ffi::PyCapsule_SetName(cap, USED_DLTENSOR.as_ptr()) != 0 {
                return Err(PyErr::fetch(py));
            }
            // SAFETY: as above.
            let managed = ManagedTensorLegacy::from_raw(ptr.cast::<DLManagedTensor>())
                .ok_or_else(|| PyValueError::new_err("DLPack capsule holds a null pointer"))?;
            return TensorView::from_dlpack_legacy(managed).map_err(to_py_err);
        }
        if ffi::PyCapsule_IsValid(cap, USED_DLTENSOR_VERSIONED.as_ptr()) == 1
            || ffi::PyCapsule_IsValid(cap, USED_DLTENSOR.as_ptr()) == 1
        {
            return Err(PyValueError::new_err(
                "the DLPack capsule was already consumed (a capsule can be consumed only once)",
            ));
        }
    }
    Err(PyValueError::new_err(
        "the capsule is not a DLPack capsule (expected \"dltensor\" or \"dltensor_versioned\")",
    ))
}

/// Whether the unconsumed DLPack capsule `obj` describes exactly `view`'s elements: address,
/// device, dtype, shape and strides (NULL strides counting as C order). The capsule is left
/// as it is.
pub(crate) fn describes(obj: &Bound<'_, PyAny>, view: &TensorView) -> PyResult<bool> {
    if !is_capsule(obj) {
        return Ok(false);
    }
    let cap = obj.as_ptr();
    // SAFETY: `cap` is a live capsule (checked) and we hold the GIL. A valid DLPack capsule
    // points at a live managed tensor its producer owns until the capsule is consumed or
    // destroyed, which cannot happen during this call (we hold a reference and the GIL); its
    // shape and strides hold `ndim` entries, as for every import.
    let tensor: &DLTensor = unsafe {
        if ffi::PyCapsule_IsValid(cap, DLTENSOR_VERSIONED.as_ptr()) == 1 {
            let m = ffi::PyCapsule_GetPointer(cap, DLTENSOR_VERSIONED.as_ptr())
                .cast::<DLManagedTensorVersioned>();
            if m.is_null() || (*m).version.major != 1 {
                return Ok(false);
            }
            &(*m).dl_tensor
        } else if ffi::PyCapsule_IsValid(cap, DLTENSOR.as_ptr()) == 1 {
            let m = ffi::PyCapsule_GetPointer(cap, DLTENSOR.as_ptr()).cast::<DLManagedTensor>();
            if m.is_null() {
                return Ok(false);
            }
            &(*m).dl_tensor
        } else {
            return Ok(false);
        }
    };
    let ndim = view.ndim();
    if usize::try_from(tensor.ndim) != Ok(ndim)
        || Device::from_dlpack(tensor.device) != view.device()
        || tensor.dtype != view.dtype().to_dlpack()
        || (tensor.data as usize).wrapping_add(tensor.byte_offset as usize)
            != view.data_ptr() as usize
    {
        return Ok(false);
    }
    if ndim == 0 {
        return Ok(true);
    }
    if tensor.shape.is_null() {
        return Ok(false);
    }
    // SAFETY: see above: `ndim` readable entries each.
    let shape = unsafe { std::slice::from_raw_parts(tensor.shape, ndim) };
    let same_shape = shape
        .iter()
        .zip(view.shape())
        .all(|(&a, &b)| u64::try_from(a) == Ok(b as u64));
    if !same_shape {
        return Ok(false);
    }
    if tensor.strides.is_null() {
        return Ok(view.is_c_contiguous());
    }
    // SAFETY: as above.
    let strides = unsafe { std::slice::from_raw_parts(tensor.strides, ndim) };
    Ok(strides
        .iter()
        .zip(view.strides())
        .zip(view.shape())
        // Strides of extent-1 axes carry no meaning; producers differ on them.
        .all(|((&a, &b), &n)| n <= 1 || a == b as i64))
}
