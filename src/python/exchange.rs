//! The DLPack C exchange API (`__dlpack_c_exchange_api__`):
//! - import: the producer type's table, looked up once per type and cached, called without any
//!   Python method call or capsule;
//! - export: the parts of [`Tensor`](super::Tensor)'s table that do not depend on the tensor
//!   type (the allocator, the stream query, the C-entry wrapper); the table itself and the
//!   functions reading tensors are in `tensor.rs`.

use super::spin::GilLock;
use std::ffi::{c_char, c_int, c_void, CStr};

use dlpark::ffi::{
    DLDeviceType, DLManagedTensorVersioned, DLPackExchangeAPI, DLPackExchangeAPIHeader, DLTensor,
};
use pyo3::exceptions::{PyAttributeError, PyBufferError, PyRuntimeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};

use super::errors::to_py_err;
use crate::owner::AlignedBuffer;
use crate::tensor::Parts;
use crate::{DType, Device, ManagedTensorVersioned, Owner, TensorView};

const CAPSULE_NAME: &CStr = c"dlpack_exchange_api";

/// A `"dlpack_exchange_api"` capsule over `table`, for a type's `__dlpack_c_exchange_api__`.
pub(crate) fn table_capsule(
    py: Python<'_>,
    table: &'static DLPackExchangeAPI,
) -> PyResult<Py<PyAny>> {
    let ptr = std::ptr::from_ref(table).cast_mut().cast::<c_void>();
    // SAFETY: the pointer is to a table that lives for the whole process; the capsule has no
    // destructor, so it never frees it. GIL held (we have `py`).
    let cap = unsafe { ffi::PyCapsule_New(ptr, CAPSULE_NAME.as_ptr(), None) };
    if cap.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `cap` is a new reference.
    Ok(unsafe { Bound::from_owned_ptr(py, cap) }.unbind())
}

/// Raise `err` as the pending Python exception and return -1 (the C convention).
pub(crate) fn fail(py: Python<'_>, err: PyErr) -> c_int {
    err.restore(py);
    -1
}

/// Run a C entry point body attached to Python, containing panics.
pub(crate) fn entry(body: impl for<'py> FnOnce(Python<'py>) -> PyResult<()>) -> c_int {
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

/// The exchange API's `current_work_stream` for CPU tensors: no stream (NULL).
pub(crate) unsafe extern "C" fn current_work_stream(
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
    let block = AlignedBuffer::new_zeroed(nbytes).map_err(|_| "out of memory")?;
    let start = block.as_ptr() as usize;
    let mut parts = Parts::contiguous(block.as_ptr(), shape, dtype);
    parts.extent = Some(start..start + nbytes);
    // SAFETY: a fresh, zeroed, writable block of `nbytes` owned by the new owner; the extent
    // is exactly that block.
    let view =
        unsafe { TensorView::from_parts(parts, Owner::new(block)) }.map_err(|e| e.to_string())?;
    Ok(view.into_dlpack_versioned())
}

/// The exchange API's `managed_tensor_allocator`: zeroed, C-contiguous CPU tensors.
pub(crate) unsafe extern "C" fn managed_tensor_allocator(
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

/// What the import path needs to know about a type.
#[derive(Clone, Copy)]
pub(crate) struct TypeInfo {
    /// The producer's exchange API (major version 1), when using it is equivalent to calling
    /// `__dlpack__`: the exact type defines the API itself and does not inherit an API past
    /// its own (or a subclass's) `__dlpack__` override.
    pub(crate) api: Option<ApiRef>,
    /// The type has a `__dlpack__` attribute.
    pub(crate) has_dlpack: bool,
    /// The type has PyTorch's autograd/lazy-bit queries (`requires_grad`, `is_conj`, `is_neg`):
    /// PyTorch's `__dlpack__` refuses such tensors, its C exchange API does not check them.
    pub(crate) torch_checks: bool,
}

/// A producer's exchange table, which lives for the whole process.
#[derive(Clone, Copy)]
pub(crate) struct ApiRef(&'static DLPackExchangeAPI);

// SAFETY: the DLPack contract makes the table immutable and process-lived; its functions are
// called only with the GIL held.
unsafe impl Send for ApiRef {}
// SAFETY: as above.
unsafe impl Sync for ApiRef {}

/// The attributes a [`TypeInfo`] was computed from, by identity, to notice later changes of
/// mutable (Python-defined) types.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    dlpack: usize,
    api: usize,
}

/// One cached type: a weak reference (the cache never keeps a type alive; a dead referent means
/// the address may belong to another type now), whether the type can change, and what it had.
struct CacheEntry {
    key: usize,
    type_ref: Py<PyAny>,
    mutable: bool,
    fingerprint: Fingerprint,
    info: TypeInfo,
}

/// Per-type cache, keyed by the type object's address and confirmed by a weak reference.
static TYPE_CACHE: GilLock<Vec<CacheEntry>> = GilLock::new(Vec::new());
const TYPE_CACHE_LIMIT: usize = 64;

/// The attribute `name` of `ty`, or `None` (an attribute error) .
fn type_attr<'py>(
    ty: &Bound<'py, PyType>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match ty.getattr(name) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_instance_of::<PyAttributeError>(ty.py()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `ty` resolves `__dlpack__` and `__dlpack_c_exchange_api__` to now.
struct Resolved<'py> {
    dlpack: Option<Bound<'py, PyAny>>,
    api: Option<Bound<'py, PyAny>>,
}

impl Resolved<'_> {
    fn fingerprint(&self) -> Fingerprint {
        let id = |o: &Option<Bound<'_, PyAny>>| o.as_ref().map_or(0, |o| o.as_ptr() as usize);
        Fingerprint {
            dlpack: id(&self.dlpack),
            api: id(&self.api),
        }
    }
}

fn resolve<'py>(ty: &Bound<'py, PyType>) -> PyResult<Resolved<'py>> {
    let py = ty.py();
    Ok(Resolved {
        dlpack: type_attr(ty, pyo3::intern!(py, "__dlpack__"))?,
        api: type_attr(ty, pyo3::intern!(py, "__dlpack_c_exchange_api__"))?,
    })
}

/// Whether `name` is in `ty`'s own `__dict__` (not inherited).
fn defines(ty: &Bound<'_, PyType>, name: &Bound<'_, PyString>) -> PyResult<bool> {
    ty.getattr(pyo3::intern!(ty.py(), "__dict__"))?
        .contains(name)
}

fn lookup_type(ty: &Bound<'_, PyType>) -> PyResult<(Fingerprint, TypeInfo)> {
    let py = ty.py();
    let resolved = resolve(ty)?;
    let print = resolved.fingerprint();
    let Resolved { dlpack, api } = resolved;
    let api_names = pyo3::intern!(py, "__dlpack_c_exchange_api__");
    // The exchange API stands in for `__dlpack__` only where nothing overrides it: the exact
    // type must define the API itself, and `__dlpack__` (if any) in the same class. A subclass
    // (a torch.Tensor subclass with its own `__dlpack__` or `__torch_function__`) goes through
    // its `__dlpack__`, which is what the user wrote.
    let own_api = api.is_some()
        && defines(ty, api_names)?
        && (dlpack.is_none() || defines(ty, pyo3::intern!(py, "__dlpack__"))?);
    let api = match api.filter(|cap| own_api && super::capsule::is_capsule(cap)) {
        // SAFETY: a live capsule, GIL held. IsValid checks the name without raising.
        Some(cap) => unsafe {
            if ffi::PyCapsule_IsValid(cap.as_ptr(), CAPSULE_NAME.as_ptr()) == 1 {
                let ptr = ffi::PyCapsule_GetPointer(cap.as_ptr(), CAPSULE_NAME.as_ptr());
                // SAFETY: the exchange API contract: the table lives for the whole process.
                compatible(ptr.cast::<DLPackExchangeAPIHeader>()).map(ApiRef)
            } else {
                None
            }
        },
        None => None,
    };
    let torch_checks = ty.hasattr(pyo3::intern!(py, "requires_grad"))?
        && ty.hasattr(pyo3::intern!(py, "is_conj"))?
        && ty.hasattr(pyo3::intern!(py, "is_neg"))?;
    Ok((
        print,
        TypeInfo {
            api,
            has_dlpack: dlpack.is_some(),
            torch_checks,
        },
    ))
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

/// Whether `weak` (a weak reference) still refers to `ty`.
fn refers_to(weak: &Py<PyAny>, ty: &Bound<'_, PyType>) -> bool {
    // SAFETY: GIL held (we have a Bound); `weak` is a live weakref; the result is borrowed and
    // only compared by address.
    unsafe { ffi::PyWeakref_GetObject(weak.as_ptr()) == ty.as_ptr() }
}

/// The [`TypeInfo`] of `obj`'s type: cached per type, re-checked for types that can change.
pub(crate) fn type_info(obj: &Bound<'_, PyAny>) -> PyResult<TypeInfo> {
    let ty = obj.get_type();
    let key = ty.as_ptr() as usize;
    // SAFETY: comparisons and weakref reads only (no Python code, nothing dropped).
    let cached = unsafe {
        TYPE_CACHE.with(obj.py(), |cache| {
            cache
                .iter()
                .find(|e| e.key == key && refers_to(&e.type_ref, &ty))
                .map(|e| (e.mutable, e.fingerprint, e.info))
        })
    };
    if let Some((mutable, print, info)) = cached {
        // An immutable type cannot change. A Python class can gain `__dlpack__` (or the API)
        // later: a type cached without them is looked at again (it is on a slow path anyway).
        // One cached with `__dlpack__` that loses it is noticed where the call fails
        // ([`forget`]). Replacing a method of a class with an exchange API (monkeypatching
        // `torch.Tensor.__dlpack__`) is not observed: the API stays in use.
        if !mutable || info.has_dlpack || resolve(&ty)?.fingerprint() == print {
            return Ok(info);
        }
    }
    let (print, info) = lookup_type(&ty)?;
    // SAFETY: GIL held; `ty` is a live type object.
    let flags = unsafe { ffi::PyType_GetFlags(ty.as_ptr().cast()) };
    let mutable = flags & ffi::Py_TPFLAGS_IMMUTABLETYPE == 0;
    // SAFETY: GIL held; a new reference (or NULL with an exception) to a weakref of `ty`.
    let weak = unsafe { ffi::PyWeakref_NewRef(ty.as_ptr(), std::ptr::null_mut()) };
    if weak.is_null() {
        // Types without weak reference support are simply not cached.
        PyErr::take(obj.py());
        return Ok(info);
    }
    // SAFETY: a new reference.
    let type_ref = unsafe { Bound::from_owned_ptr(obj.py(), weak) }.unbind();
    let entry = CacheEntry {
        key,
        type_ref,
        mutable,
        fingerprint: print,
        info,
    };
    let update = |cache: &mut Vec<CacheEntry>| {
        // Replace this type's stale entry, else a dead type's, else the oldest when full.
        let slot = cache
            .iter()
            .position(|e| e.key == key)
            .or_else(|| {
                cache.iter().position(|e| {
                    // SAFETY: GIL held; a live weakref.
                    unsafe { ffi::PyWeakref_GetObject(e.type_ref.as_ptr()) == ffi::Py_None() }
                })
            })
            .or_else(|| (cache.len() >= TYPE_CACHE_LIMIT).then_some(0));
        match slot {
            Some(i) => Some(std::mem::replace(&mut cache[i], entry)),
            None => {
                cache.push(entry);
                None
            }
        }
    };
    // SAFETY: `update` searches, reads weakrefs and moves entries; the one it replaces is
    // dropped after the lock.
    let old = unsafe { TYPE_CACHE.with(obj.py(), update) };
    drop(old); // releases a weakref: outside the lock
    Ok(info)
}

/// Drop the cache entry of `obj`'s type (its attributes changed under us).
pub(crate) fn forget(obj: &Bound<'_, PyAny>) {
    let key = obj.get_type().as_ptr() as usize;
    // SAFETY: a search and a move out; the entry is dropped after the lock.
    let old = unsafe {
        TYPE_CACHE.with(obj.py(), |cache| {
            cache
                .iter()
                .position(|e| e.key == key)
                .map(|i| cache.swap_remove(i))
        })
    };
    drop(old); // releases a weakref: outside the lock
}

/// Import `obj` through its type's exchange API: an owned managed tensor, no Python call.
/// `Ok(None)` when the producer's own `__dlpack__` must decide instead: the C call failed (its
/// errors are not the spec's), or the tensor carries state DLPack cannot express that PyTorch's
/// `__dlpack__` refuses (`requires_grad`, a conjugate or negative bit).
pub(crate) fn import_via_api(
    obj: &Bound<'_, PyAny>,
    info: TypeInfo,
) -> PyResult<Option<TensorView>> {
    let py = obj.py();
    let Some(api) = info.api else {
        return Ok(None);
    };
    let Some(from_py) = api.0.managed_tensor_from_py_object_no_sync else {
        return Ok(None);
    };
    let mut out: *mut DLManagedTensorVersioned = std::ptr::null_mut();
    // SAFETY: the producer's function, called with the GIL held on an object of the type the
    // table was found on, and a valid out slot.
    let rc = unsafe { from_py(obj.as_ptr().cast::<c_void>(), &mut out) };
    if rc != 0 {
        let err = PyErr::take(py).unwrap_or_else(|| {
            PyBufferError::new_err("the producer's exchange API failed without an exception")
        });
        if info.has_dlpack {
            return Ok(None);
        }
        let buffer_err =
            PyBufferError::new_err(format!("the producer's exchange API failed: {err}"));
        buffer_err.set_cause(py, Some(err));
        return Err(buffer_err);
    }
    // SAFETY: on success the producer hands us an owned managed tensor.
    let managed = unsafe { ManagedTensorVersioned::from_raw(out) }
        .ok_or_else(|| PyBufferError::new_err("the producer's exchange API returned NULL"))?;
    let view = TensorView::from_dlpack_versioned(managed).map_err(to_py_err)?;
    if info.torch_checks {
        match torch_state(obj, view.dtype())? {
            TorchState::Plain => {}
            // Dropping `view` hands the tensor back (its deleter runs).
            TorchState::Refused if info.has_dlpack => return Ok(None),
            TorchState::Refused => {
                return Err(PyBufferError::new_err(
                    "the tensor requires grad or has its conjugate bit set",
                ))
            }
            TorchState::Negative => return Err(negative_bit_error()),
        }
    }
    Ok(Some(view))
}

/// What PyTorch's lazy bits and autograd say about exporting a tensor.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TorchState {
    /// Nothing DLPack cannot express.
    Plain,
    /// `requires_grad` or a conjugate bit: PyTorch's `__dlpack__` refuses it (its C exchange
    /// function does not check).
    Refused,
    /// A negative bit: the memory holds the negated values. PyTorch 2.13 exports these
    /// silently on every path (no upstream report yet; `__dlpack__` got its checks in
    /// pytorch/pytorch#57110, which left this one out), so dlbridge refuses them itself.
    Negative,
}

/// The `BufferError` for a tensor with PyTorch's negative bit.
pub(crate) fn negative_bit_error() -> PyErr {
    PyBufferError::new_err(
        "can't import a torch tensor with the negative bit set: its memory holds the negated \
         values (call .resolve_neg() first)",
    )
}

/// Query a torch tensor's state. Only floating and complex tensors reach these states through
/// public API (integer `_neg_view`s are private), so the queries run for those alone.
pub(crate) fn torch_state(obj: &Bound<'_, PyAny>, dtype: DType) -> PyResult<TorchState> {
    use crate::DTypeCode;
    let code = dtype.code();
    if matches!(code, DTypeCode::Int | DTypeCode::UInt | DTypeCode::Bool) {
        return Ok(TorchState::Plain);
    }
    let queries = TorchQueries::for_exact_tensor(obj);
    if queries.ask(obj, TorchQuery::RequiresGrad)? {
        return Ok(TorchState::Refused);
    }
    if queries.ask(obj, TorchQuery::IsNeg)? {
        return Ok(TorchState::Negative);
    }
    let conj = code == DTypeCode::Complex && queries.ask(obj, TorchQuery::IsConj)?;
    Ok(if conj {
        TorchState::Refused
    } else {
        TorchState::Plain
    })
}

/// The queries of [`torch_state`]: an attribute and two methods.
#[derive(Clone, Copy)]
enum TorchQuery {
    RequiresGrad,
    IsNeg,
    IsConj,
}

impl TorchQuery {
    fn name(self, py: Python<'_>) -> &Bound<'_, PyString> {
        match self {
            TorchQuery::RequiresGrad => pyo3::intern!(py, "requires_grad"),
            TorchQuery::IsNeg => pyo3::intern!(py, "is_neg"),
            TorchQuery::IsConj => pyo3::intern!(py, "is_conj"),
        }
    }
}

/// PyTorch's queries as `torch.Tensor` defines them, found once: the getter of
/// `requires_grad` and the methods `is_neg` and `is_conj` (all three are torch's C functions).
/// Calling them directly spares an attribute lookup per call (which, for a tensor, includes a
/// search of its instance dict), about a fifth of what the queries cost. Used for objects of
/// exactly `torch.Tensor`; subclasses (which may override them) look them up as attributes.
/// Replacing them on `torch.Tensor` after the first import, or on one tensor object
/// (`t.is_neg = ...`), is not observed (as with the exchange API).
struct ExactTensorQueries {
    tensor_type: Py<PyType>,
    requires_grad: Py<PyAny>,
    requires_grad_get: DescrGet,
    is_neg: Py<PyAny>,
    is_conj: Py<PyAny>,
}

/// How [`torch_state`] asks: through the cached descriptors, or by attribute.
enum TorchQueries<'a> {
    Exact(&'a ExactTensorQueries),
    ByAttribute,
}

impl TorchQueries<'static> {
    fn for_exact_tensor(obj: &Bound<'_, PyAny>) -> TorchQueries<'static> {
        static QUERIES: pyo3::sync::PyOnceLock<Option<ExactTensorQueries>> =
            pyo3::sync::PyOnceLock::new();
        let py = obj.py();
        let found = match QUERIES.get(py) {
            Some(found) => found.as_ref(),
            // Found at the first `torch.Tensor` (torch is imported then).
            None if is_torch_tensor_type(&obj.get_type()) => QUERIES
                .get_or_init(py, || ExactTensorQueries::find(py).ok())
                .as_ref(),
            None => None,
        };
        match found {
            Some(q) if obj.get_type().is(q.tensor_type.bind(py)) => TorchQueries::Exact(q),
            _ => TorchQueries::ByAttribute,
        }
    }
}

/// Whether `ty` is named `torch.Tensor`.
fn is_torch_tensor_type(ty: &Bound<'_, PyType>) -> bool {
    ty.name().is_ok_and(|n| n == "Tensor") && ty.module().is_ok_and(|m| m == "torch")
}

/// A `descrgetfunc`: `__get__(descriptor, instance, owner)`.
type DescrGet = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *mut ffi::PyObject,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

impl ExactTensorQueries {
    fn find(py: Python<'_>) -> PyResult<ExactTensorQueries> {
        let tensor_type = py
            .import("torch")?
            .getattr("Tensor")?
            .cast_into::<PyType>()?;
        // On the type, a getter is the descriptor itself.
        let requires_grad = tensor_type.getattr("requires_grad")?;
        // SAFETY: GIL held; the descriptor's type is a live type object; the slot is a
        // `descrgetfunc` (or NULL).
        let get = unsafe {
            ffi::PyType_GetSlot(ffi::Py_TYPE(requires_grad.as_ptr()), ffi::Py_tp_descr_get)
        };
        if get.is_null() {
            return Err(PyRuntimeError::new_err(
                "torch.Tensor.requires_grad is no descriptor",
            ));
        }
        Ok(ExactTensorQueries {
            // SAFETY: `Py_tp_descr_get` holds a `descrgetfunc`.
            requires_grad_get: unsafe { std::mem::transmute::<*mut c_void, DescrGet>(get) },
            requires_grad: requires_grad.unbind(),
            is_neg: tensor_type.getattr("is_neg")?.unbind(),
            is_conj: tensor_type.getattr("is_conj")?.unbind(),
            tensor_type: tensor_type.unbind(),
        })
    }
}

impl TorchQueries<'_> {
    /// The truth of `query` on `obj`.
    fn ask(&self, obj: &Bound<'_, PyAny>, query: TorchQuery) -> PyResult<bool> {
        let py = obj.py();
        let TorchQueries::Exact(q) = self else {
            let answer = match query {
                TorchQuery::RequiresGrad => obj.getattr(query.name(py))?,
                TorchQuery::IsNeg | TorchQuery::IsConj => obj.call_method0(query.name(py))?,
            };
            return answer.is_truthy();
        };
        let call = |method: &Py<PyAny>| {
            // SAFETY: GIL held; a method descriptor of `obj`'s exact type, called with `obj`
            // as its only argument (the NULL ends the list).
            unsafe {
                ffi::PyObject_CallFunctionObjArgs(
                    method.as_ptr(),
                    obj.as_ptr(),
                    std::ptr::null_mut::<ffi::PyObject>(),
                )
            }
        };
        let value = match query {
            // SAFETY: GIL held; the getter of the descriptor it was found on, called on an
            // object of that very type.
            TorchQuery::RequiresGrad => unsafe {
                (q.requires_grad_get)(
                    q.requires_grad.as_ptr(),
                    obj.as_ptr(),
                    q.tensor_type.as_ptr(),
                )
            },
            TorchQuery::IsNeg => call(&q.is_neg),
            TorchQuery::IsConj => call(&q.is_conj),
        };
        // SAFETY: both calls above return a new reference or NULL with an exception set.
        unsafe { Bound::from_owned_ptr_or_err(py, value) }?.is_truthy()
    }
}
