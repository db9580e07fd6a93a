//! The DLPack C exchange API (`__dlpack_c_exchange_api__`), both ways:
//! - export: a static `DLPackExchangeAPI` for `dlbridge.Tensor` (version 1.3, CPU only);
//! - import: the producer type's table, looked up once per type and cached, called without any
//!   Python method call or capsule.

use std::alloc::{self, Layout};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::NonNull;
use std::sync::Mutex;

use dlpark::ffi::{
    DLDeviceType, DLManagedTensorVersioned, DLPackExchangeAPI, DLPackExchangeAPIHeader,
    DLPackVersion, DLTensor,
};
use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

use super::{tensor::Tensor, to_py_err};
use crate::tensor::Parts;
use crate::{DType, Device, ManagedTensorVersioned, Owner, TensorView};

const CAPSULE_NAME: &CStr = c"dlpack_exchange_api";

/// The table is plain function pointers and a null `prev_api`: safe to share between threads.
#[repr(transparent)]
struct StaticApi(DLPackExchangeAPI);

// SAFETY: the table is immutable, its only pointer (`prev_api`) is null, and every function it
// points to may be called from any thread (they take the GIL contract from the caller).
unsafe impl Sync for StaticApi {}

static API: StaticApi = StaticApi(DLPackExchangeAPI {
    header: DLPackExchangeAPIHeader {
        version: DLPackVersion {
            major: crate::dlpack::DLPACK_VERSION.0,
            minor: crate::dlpack::DLPACK_VERSION.1,
        },
        prev_api: std::ptr::null_mut(),
    },
    managed_tensor_allocator: Some(managed_tensor_allocator),
    managed_tensor_from_py_object_no_sync: Some(managed_tensor_from_py_object),
    managed_tensor_to_py_object_no_sync: Some(managed_tensor_to_py_object),
    dltensor_from_py_object_no_sync: Some(dltensor_from_py_object),
    current_work_stream: Some(current_work_stream),
});

/// The `"dlpack_exchange_api"` capsule set on `dlbridge.Tensor`.
pub(crate) fn api_capsule(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let ptr = std::ptr::from_ref(&API.0).cast_mut().cast::<c_void>();
    // SAFETY: the pointer is to a static that lives for the whole process; the capsule has no
    // destructor, so it never frees it. GIL held (we have `py`).
    let cap = unsafe { ffi::PyCapsule_New(ptr, CAPSULE_NAME.as_ptr(), None) };
    if cap.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `cap` is a new reference.
    Ok(unsafe { Bound::from_owned_ptr(py, cap) }.unbind())
}

/// Raise `err` as the pending Python exception and return -1 (the C convention).
fn fail(py: Python<'_>, err: PyErr) -> c_int {
    err.restore(py);
    -1
}

/// Run a C entry point body attached to Python, containing panics.
fn entry(body: impl for<'py> FnOnce(Python<'py>) -> PyResult<()>) -> c_int {
    // The exchange API functions that take PyObjects are called with the GIL held.
    Python::attach(
        |py| match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(py))) {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => fail(py, e),
            Err(_) => fail(
                py,
                PyRuntimeError::new_err("panic in dlbridge exchange API"),
            ),
        },
    )
}

/// Borrow `py_object` as a `dlbridge.Tensor`.
///
/// # Safety
/// `py_object` must be a live Python object and the GIL held.
unsafe fn as_tensor<'a, 'py>(
    py: Python<'py>,
    py_object: *mut c_void,
) -> PyResult<Borrowed<'a, 'py, Tensor>> {
    if py_object.is_null() {
        return Err(PyTypeError::new_err("NULL object"));
    }
    // SAFETY: per the contract, a live object borrowed for the duration of the call.
    let any = unsafe { Borrowed::from_ptr(py, py_object.cast::<ffi::PyObject>()) };
    any.cast::<Tensor>()
        .map_err(|_| PyTypeError::new_err("expected a dlbridge.Tensor"))
}

unsafe extern "C" fn managed_tensor_from_py_object(
    py_object: *mut c_void,
    out: *mut *mut DLManagedTensorVersioned,
) -> c_int {
    entry(|py| {
        if out.is_null() {
            return Err(PyTypeError::new_err("NULL out pointer"));
        }
        // SAFETY: the exchange API contract: a live object of our type, GIL held.
        let t = unsafe { as_tensor(py, py_object) }?;
        let managed = t.get().view.to_dlpack_versioned();
        // SAFETY: `out` is non-null (checked) and points to the caller's slot.
        unsafe { *out = managed.into_raw() };
        Ok(())
    })
}

unsafe extern "C" fn managed_tensor_to_py_object(
    tensor: *mut DLManagedTensorVersioned,
    out_py_object: *mut *mut c_void,
) -> c_int {
    entry(|py| {
        // SAFETY: the contract hands us ownership of `tensor` (stolen, even on failure: the
        // import below runs the deleter when it refuses the tensor).
        let managed = unsafe { ManagedTensorVersioned::from_raw(tensor) }
            .ok_or_else(|| PyTypeError::new_err("NULL managed tensor"))?;
        let view = TensorView::from_dlpack_versioned(managed).map_err(to_py_err)?;
        view.require_host("dlbridge tensors live in host memory")
            .map_err(to_py_err)?;
        if out_py_object.is_null() {
            return Err(PyTypeError::new_err("NULL out pointer"));
        }
        let obj = Bound::new(py, Tensor::from_view(view))?;
        // SAFETY: `out_py_object` is non-null; the caller receives a new reference.
        unsafe { *out_py_object = obj.into_ptr().cast::<c_void>() };
        Ok(())
    })
}

unsafe extern "C" fn dltensor_from_py_object(py_object: *mut c_void, out: *mut DLTensor) -> c_int {
    entry(|py| {
        if out.is_null() {
            return Err(PyTypeError::new_err("NULL out pointer"));
        }
        // SAFETY: the exchange API contract: a live object of our type, GIL held.
        let t = unsafe { as_tensor(py, py_object) }?;
        let tensor = t.get();
        let v = &tensor.view;
        if v.is_read_only() {
            // A borrowed DLTensor has no flags: it would hand read-only memory out as writable.
            return Err(PyBufferError::new_err(
                "read-only tensor: a borrowed DLTensor cannot carry READ_ONLY; \
                 use managed_tensor_from_py_object_no_sync",
            ));
        }
        let dims = tensor.dims_i64();
        let ndim = v.ndim();
        let dims_ptr = dims.as_ptr().cast_mut();
        // SAFETY: `out` is non-null; the shape/strides arrays live inside the Tensor object,
        // which the caller keeps alive while it uses the borrowed DLTensor (DLPack contract).
        unsafe {
            *out = DLTensor {
                data: v.base_ptr().cast::<c_void>(),
                device: v.device().to_dlpack(),
                ndim: ndim as i32,
                dtype: v.dtype().to_dlpack(),
                shape: dims_ptr,
                strides: dims_ptr.add(ndim),
                byte_offset: v.byte_offset() as u64,
            };
        }
        Ok(())
    })
}

unsafe extern "C" fn current_work_stream(
    _device_type: DLDeviceType,
    _device_id: i32,
    out_current_stream: *mut *mut c_void,
) -> c_int {
    if !out_current_stream.is_null() {
        // SAFETY: non-null out pointer supplied by the caller. CPU has no stream: NULL.
        unsafe { *out_current_stream = std::ptr::null_mut() };
    }
    0
}

/// A zero-filled, 64-byte aligned heap block: the memory of tensors made by the allocator.
struct ZeroedBlock {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: plain bytes owned uniquely by this value; nothing thread-bound.
unsafe impl Send for ZeroedBlock {}
// SAFETY: `&ZeroedBlock` exposes only the address.
unsafe impl Sync for ZeroedBlock {}

impl ZeroedBlock {
    fn new(len: usize) -> Option<ZeroedBlock> {
        let layout = Layout::from_size_align(len.max(1), 64).ok()?;
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc::alloc_zeroed(layout) })?;
        Some(ZeroedBlock { ptr, layout })
    }
}

impl Drop for ZeroedBlock {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc_zeroed` with this layout, freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Allocate a fresh zeroed C-contiguous CPU tensor shaped like `prototype`.
///
/// # Safety
/// `prototype` must point to a valid `DLTensor` whose `shape` holds `ndim` entries.
unsafe fn allocate(prototype: *const DLTensor) -> Result<ManagedTensorVersioned, String> {
    // SAFETY: per the contract.
    let p = unsafe { prototype.as_ref() }.ok_or("NULL prototype")?;
    let device = Device::from_dlpack(p.device);
    if device != Device::CPU {
        return Err(format!("dlbridge allocates CPU tensors only, not {device}"));
    }
    let dtype = DType::from_dlpack(p.dtype).map_err(|e| e.to_string())?;
    let ndim = usize::try_from(p.ndim).map_err(|_| "negative ndim")?;
    let shape: Vec<usize> = if ndim == 0 {
        Vec::new()
    } else if p.shape.is_null() {
        return Err("NULL prototype shape".into());
    } else {
        // SAFETY: per the contract, `ndim` readable entries.
        unsafe { std::slice::from_raw_parts(p.shape, ndim) }
            .iter()
            .map(|&n| usize::try_from(n).map_err(|_| format!("negative extent {n}")))
            .collect::<Result<_, _>>()?
    };
    let mut numel: usize = 1;
    for &n in &shape {
        numel = numel.checked_mul(n).ok_or("element count overflows")?;
    }
    let bits = (numel as u128) * u128::from(dtype.element_bits());
    let nbytes = usize::try_from(bits.div_ceil(8)).map_err(|_| "byte size overflows")?;
    let block = ZeroedBlock::new(nbytes).ok_or("out of memory")?;
    let start = block.ptr.as_ptr() as usize;
    let mut parts = Parts::contiguous(block.ptr.as_ptr(), shape, dtype);
    parts.extent = Some(start..start + nbytes);
    // SAFETY: a fresh, zeroed, writable block of `nbytes` owned by the new owner; the extent
    // is exactly that block.
    let view =
        unsafe { TensorView::from_parts(parts, Owner::new(block)) }.map_err(|e| e.to_string())?;
    Ok(view.into_dlpack_versioned())
}

unsafe extern "C" fn managed_tensor_allocator(
    prototype: *mut DLTensor,
    out: *mut *mut DLManagedTensorVersioned,
    error_ctx: *mut c_void,
    set_error: Option<unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char)>,
) -> c_int {
    let result = std::panic::catch_unwind(|| {
        // SAFETY: the allocator contract: a valid prototype.
        unsafe { allocate(prototype) }
    })
    .unwrap_or_else(|_| Err("panic in dlbridge allocator".into()));
    match result {
        Ok(managed) if !out.is_null() => {
            // SAFETY: non-null out slot supplied by the caller.
            unsafe { *out = managed.into_raw() };
            0
        }
        other => {
            let msg = match other {
                Err(m) => m,
                Ok(_) => "NULL out pointer".to_string(),
            };
            if let Some(set_error) = set_error {
                let kind = if msg == "out of memory" {
                    c"MemoryError"
                } else {
                    c"BufferError"
                };
                let msg = std::ffi::CString::new(msg.replace('\0', " ")).unwrap_or_default();
                // SAFETY: the caller's error callback with its own context and two valid
                // NUL-terminated strings that live through the call.
                unsafe { set_error(error_ctx, kind.as_ptr(), msg.as_ptr()) };
            }
            if !out.is_null() {
                // SAFETY: non-null out slot.
                unsafe { *out = std::ptr::null_mut() };
            }
            -1
        }
    }
}

// ------------------------------------------------------------------------------------------
// Import side.

/// What the import path needs to know about a type, computed once per type.
#[derive(Clone, Copy)]
pub(crate) struct TypeInfo {
    /// The producer's exchange API (major version 1), if it has one.
    pub(crate) api: Option<ApiRef>,
    /// The type has a `__dlpack__` attribute.
    pub(crate) has_dlpack: bool,
}

/// A producer's exchange table, which lives for the whole process.
#[derive(Clone, Copy)]
pub(crate) struct ApiRef(&'static DLPackExchangeAPI);

// SAFETY: the DLPack contract makes the table immutable and process-lived; its functions are
// called only with the GIL held.
unsafe impl Send for ApiRef {}
// SAFETY: as above.
unsafe impl Sync for ApiRef {}

/// Per-type cache, keyed by the type object's address; each entry holds a strong reference to
/// its type, so the address cannot be reused by another type while cached.
static TYPE_CACHE: Mutex<Vec<(usize, Py<PyType>, TypeInfo)>> = Mutex::new(Vec::new());
const TYPE_CACHE_LIMIT: usize = 64;

fn lookup_type(ty: &Bound<'_, PyType>) -> PyResult<TypeInfo> {
    let py = ty.py();
    let has_dlpack = ty.hasattr(pyo3::intern!(py, "__dlpack__"))?;
    let api = match ty.getattr(pyo3::intern!(py, "__dlpack_c_exchange_api__")) {
        Ok(cap) if super::capsule::is_capsule(&cap) => {
            // SAFETY: a live capsule, GIL held. IsValid checks the name without raising.
            unsafe {
                if ffi::PyCapsule_IsValid(cap.as_ptr(), CAPSULE_NAME.as_ptr()) == 1 {
                    let ptr = ffi::PyCapsule_GetPointer(cap.as_ptr(), CAPSULE_NAME.as_ptr());
                    // SAFETY: the exchange API contract: the table lives for the whole process.
                    compatible(ptr.cast::<DLPackExchangeAPIHeader>()).map(ApiRef)
                } else {
                    None
                }
            }
        }
        _ => None,
    };
    Ok(TypeInfo { api, has_dlpack })
}

/// Walk the version chain to a major-1 table with the functions the import needs.
///
/// # Safety
/// `header` must be null or point to a table that lives for the whole process.
unsafe fn compatible(
    mut header: *const DLPackExchangeAPIHeader,
) -> Option<&'static DLPackExchangeAPI> {
    for _ in 0..16 {
        // SAFETY: per the contract.
        let h = unsafe { header.as_ref() }?;
        if h.version.major == 1 {
            // SAFETY: a major-1 header is the head of a full DLPackExchangeAPI.
            let api = unsafe { &*header.cast::<DLPackExchangeAPI>() };
            return api.managed_tensor_from_py_object_no_sync.map(|_| api);
        }
        header = h.prev_api;
    }
    None
}

/// The cached [`TypeInfo`] of `obj`'s type.
pub(crate) fn type_info(obj: &Bound<'_, PyAny>) -> PyResult<TypeInfo> {
    let ty = obj.get_type();
    let key = ty.as_ptr() as usize;
    {
        let cache = TYPE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, info)) = cache.iter().find(|(k, _, _)| *k == key) {
            return Ok(*info);
        }
    }
    let info = lookup_type(&ty)?;
    let mut cache = TYPE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() < TYPE_CACHE_LIMIT && !cache.iter().any(|(k, _, _)| *k == key) {
        cache.push((key, ty.unbind(), info));
    }
    Ok(info)
}

/// Import `obj` through its type's exchange API: an owned managed tensor, no Python call.
pub(crate) fn import_via_api(obj: &Bound<'_, PyAny>, api: ApiRef) -> PyResult<TensorView> {
    let py = obj.py();
    let Some(from_py) = api.0.managed_tensor_from_py_object_no_sync else {
        return Err(PyRuntimeError::new_err(
            "exchange API without from_py_object",
        ));
    };
    let mut out: *mut DLManagedTensorVersioned = std::ptr::null_mut();
    // SAFETY: the producer's function, called with the GIL held on an object of the type the
    // table was found on, and a valid out slot.
    let rc = unsafe { from_py(obj.as_ptr().cast::<c_void>(), &mut out) };
    if rc != 0 {
        return Err(PyErr::take(py).unwrap_or_else(|| {
            PyBufferError::new_err("the producer's exchange API failed without an exception")
        }));
    }
    // SAFETY: on success the producer hands us an owned managed tensor.
    let managed = unsafe { ManagedTensorVersioned::from_raw(out) }
        .ok_or_else(|| PyBufferError::new_err("the producer's exchange API returned NULL"))?;
    TensorView::from_dlpack_versioned(managed).map_err(to_py_err)
}
