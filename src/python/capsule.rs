//! DLPack capsules, both ways, with raw `pyo3::ffi` (pyo3's `PyCapsule` cannot rename-aware
//! destruct): an unconsumed capsule's destructor calls the deleter; a consumed one (renamed
//! `used_*`) does nothing. The destructor preserves any pending Python exception.

use std::ffi::{c_void, CStr};

use dlpark::ffi::{DLManagedTensor, DLManagedTensorVersioned, DLPackVersion, DLTensor};
use dlpark::DlpackFlags;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;

use super::to_py_err;
use crate::{ManagedTensorLegacy, ManagedTensorVersioned, Owner, TensorView};

pub(crate) const DLTENSOR: &CStr = c"dltensor";
pub(crate) const USED_DLTENSOR: &CStr = c"used_dltensor";
pub(crate) const DLTENSOR_VERSIONED: &CStr = c"dltensor_versioned";
pub(crate) const USED_DLTENSOR_VERSIONED: &CStr = c"used_dltensor_versioned";

/// Run `f` with the pending exception (if any) saved and restored around it, so that a
/// destructor running during exception propagation cannot clobber or observe it.
///
/// # Safety
/// The GIL must be held.
unsafe fn preserving_exception(f: impl FnOnce()) {
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

/// Shape and strides of an export: inline up to 8 dimensions (one allocation per export).
enum Dims {
    Inline([i64; 16]),
    Heap(Box<[i64]>),
}

/// The context of a `__dlpack__` export: the managed tensor first (so the two pointers
/// coincide), then the owner handle that keeps the memory alive, then shape and strides.
#[repr(C)]
struct Export {
    managed: DLManagedTensorVersioned,
    owner: Owner,
    dims: Dims,
}

unsafe extern "C" fn delete_export(m: *mut DLManagedTensorVersioned) {
    if m.is_null() {
        return;
    }
    // SAFETY: installed only on tensors built by `export_versioned`, whose managed tensor is
    // the first field of a boxed `Export` (repr(C)); the deleter runs once, freeing it.
    let ctx = unsafe { Box::from_raw(m.cast::<Export>()) };
    // Called from C: never unwind. Dropping the owner may release Python objects (GIL taken
    // by their own drop).
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(ctx)));
}

/// Export `view` as a DLPack 1.3 versioned managed tensor: like
/// [`TensorView::to_dlpack_versioned`], but one allocation instead of four (the hot path of
/// `np.from_dlpack(tensor)`): only the owner handle is cloned, not the view.
pub(crate) fn export_versioned(view: &TensorView) -> ManagedTensorVersioned {
    let ndim = view.ndim();
    let flags = view.flags();
    let mut bits = DlpackFlags::empty();
    bits.set(DlpackFlags::READ_ONLY, flags.read_only);
    bits.set(DlpackFlags::IS_COPIED, flags.is_copied);
    bits.set(DlpackFlags::IS_SUBBYTE_TYPE_PADDED, flags.subbyte_padded);
    let mut dims = if ndim <= 8 {
        Dims::Inline([0; 16])
    } else {
        Dims::Heap(vec![0; 2 * ndim].into_boxed_slice())
    };
    let slots: &mut [i64] = match &mut dims {
        Dims::Inline(a) => &mut a[..2 * ndim],
        Dims::Heap(b) => b,
    };
    for (slot, &n) in slots.iter_mut().zip(view.shape()) {
        *slot = n as i64;
    }
    for (slot, &s) in slots[ndim..].iter_mut().zip(view.strides()) {
        *slot = s as i64;
    }
    let ctx = Box::into_raw(Box::new(Export {
        managed: DLManagedTensorVersioned {
            version: DLPackVersion {
                major: crate::dlpack::DLPACK_VERSION.0,
                minor: crate::dlpack::DLPACK_VERSION.1,
            },
            manager_ctx: std::ptr::null_mut(),
            deleter: Some(delete_export),
            flags: bits,
            dl_tensor: DLTensor {
                data: view.base_ptr().cast::<c_void>(),
                device: view.device().to_dlpack(),
                ndim: ndim as i32,
                dtype: view.dtype().to_dlpack(),
                shape: std::ptr::null_mut(),
                strides: std::ptr::null_mut(),
                byte_offset: view.byte_offset() as u64,
            },
        },
        owner: view.owner().clone(),
        dims,
    }));
    // SAFETY: `ctx` is a fresh, exclusively owned allocation; the dims live inside it (or in
    // its heap box) until the deleter frees the whole context, so the pointers stay valid.
    unsafe {
        let dims = match &mut (*ctx).dims {
            Dims::Inline(a) => a.as_mut_ptr(),
            Dims::Heap(b) => b.as_mut_ptr(),
        };
        if ndim > 0 {
            (*ctx).managed.dl_tensor.shape = dims;
            (*ctx).managed.dl_tensor.strides = dims.add(ndim);
        }
        (*ctx).managed.manager_ctx = ctx.cast::<c_void>();
        // SAFETY: a live managed tensor whose deleter frees it exactly once.
        ManagedTensorVersioned::from_raw(ctx.cast::<DLManagedTensorVersioned>())
            .expect("Box::into_raw is never null")
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
