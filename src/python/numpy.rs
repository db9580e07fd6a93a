//! numpy's C ABI, on the two paths where a protocol round trip costs more than the work itself:
//! reading a `numpy.ndarray` argument, and answering with a `numpy.ndarray`.
//!
//! What is read and called is numpy's public ABI, the same in numpy 1.x and 2.x (the fields of
//! `PyArrayObject_fields` up to `flags`, the leading fields of `PyArray_Descr`, and three entries
//! of the `_ARRAY_API` table), found at run time through the `_ARRAY_API` capsule: dlbridge
//! neither links numpy nor needs its headers, and nothing here runs until numpy is imported.
//!
//! Both paths describe exactly what numpy's own DLPack export would: an ndarray argument gives
//! the view `ndarray.__dlpack__` describes (same address, shape, strides, dtype and read-only
//! flag), and an answered ndarray is what `numpy.from_dlpack` would build (a view whose `base`
//! keeps the memory alive, read-only when the view is). Anything else (subclasses, byte-swapped
//! or misaligned data, dtypes outside the table below, strides that are not whole elements)
//! takes the protocol path.

use std::convert::Infallible;
use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::ptr::NonNull;

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::borrow;
use super::capsule::preserving_exception;
use super::runtime::PyObjectOwner;
use crate::dims::OwnedDims;
use crate::tensor::{Access, CheckedParts, Dims, RawParts};
use crate::{DType, Device, Flags, Owner, TensorView, MAX_NDIM};

/// The leading fields of `PyArrayObject_fields` (numpy's `ndarraytypes.h`, unchanged since 1.7).
#[repr(C)]
#[allow(dead_code)] // fields that are only there for the layout
struct ArrayFields {
    ob_base: ffi::PyObject,
    data: *mut u8,
    nd: c_int,
    dimensions: *const isize,
    strides: *const isize,
    base: *mut ffi::PyObject,
    descr: *const DescrFields,
    flags: c_int,
}

/// The leading fields of `PyArray_Descr` that numpy 1.x and 2.x share.
#[repr(C)]
#[allow(dead_code)] // fields that are only there for the layout
struct DescrFields {
    ob_base: ffi::PyObject,
    typeobj: *mut ffi::PyTypeObject,
    kind: c_char,
    type_char: c_char,
    byteorder: c_char,
    former_flags: c_char,
    type_num: c_int,
}

const NPY_ARRAY_ALIGNED: c_int = 0x0100;
const NPY_ARRAY_WRITEABLE: c_int = 0x0400;

/// `_ARRAY_API` entries (numpy's `numpy_api.py`; the table is append-only).
const API_ABI_VERSION: usize = 0; // PyArray_GetNDArrayCVersion
const API_NDARRAY_TYPE: usize = 2; // PyArray_Type
const API_DESCR_FROM_TYPE: usize = 45; // PyArray_DescrFromType
const API_NEW_FROM_DESCR: usize = 94; // PyArray_NewFromDescr
const API_SET_BASE_OBJECT: usize = 282; // PyArray_SetBaseObject

type DescrFromType = unsafe extern "C" fn(c_int) -> *mut ffi::PyObject;
type NewFromDescr = unsafe extern "C" fn(
    *mut ffi::PyTypeObject,
    *mut ffi::PyObject,
    c_int,
    *const isize,
    *const isize,
    *mut c_void,
    c_int,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;
type SetBaseObject = unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> c_int;

/// The parts of numpy's C API used here, resolved once.
struct NumpyApi {
    ndarray: *mut ffi::PyTypeObject,
    descr_from_type: DescrFromType,
    new_from_descr: NewFromDescr,
    set_base_object: SetBaseObject,
}

// SAFETY: the fields are process-lived addresses in numpy's extension module (which is never
// unloaded) and are only used with the GIL held.
unsafe impl Send for NumpyApi {}
// SAFETY: as above; the struct is immutable.
unsafe impl Sync for NumpyApi {}

/// numpy's API, once numpy has been imported (an object can only be an ndarray then); `None`
/// before that, or when numpy's ABI is not one this module knows (numpy 1.x and 2.x are).
fn loaded(py: Python<'_>) -> Option<&'static NumpyApi> {
    static API: PyOnceLock<Option<NumpyApi>> = PyOnceLock::new();
    if let Some(api) = API.get(py) {
        return api.as_ref();
    }
    let name = pyo3::intern!(py, "numpy");
    // SAFETY: GIL held; `sys.modules` and the lookup result are borrowed references, and
    // PyDict_GetItem raises nothing.
    let imported =
        unsafe { !ffi::PyDict_GetItem(ffi::PyImport_GetModuleDict(), name.as_ptr()).is_null() };
    if !imported {
        return None;
    }
    API.get_or_init(py, || load(py)).as_ref()
}

/// numpy's API, importing numpy if needed (`None` when it is not installed or unknown).
fn imported(py: Python<'_>) -> Option<&'static NumpyApi> {
    loaded(py).or_else(|| {
        py.import("numpy").ok()?;
        loaded(py)
    })
}

fn load(py: Python<'_>) -> Option<NumpyApi> {
    let module = [
        "numpy._core._multiarray_umath",
        "numpy.core._multiarray_umath",
    ]
    .into_iter()
    .find_map(|name| py.import(name).ok())?;
    let capsule = module.getattr("_ARRAY_API").ok()?;
    // SAFETY: GIL held; numpy's `_ARRAY_API` is an unnamed capsule over its function table.
    // Any other object makes GetPointer fail (cleared below).
    let table = unsafe { ffi::PyCapsule_GetPointer(capsule.as_ptr(), std::ptr::null()) };
    if table.is_null() {
        PyErr::take(py);
        return None;
    }
    let table = table.cast::<*const c_void>().cast_const();
    // SAFETY: the table has (far) more than 283 entries in every numpy since 1.7; entries are
    // function or object addresses that live as long as numpy's module, which is never
    // unloaded (the capsule is also held by the module for the life of the process).
    unsafe {
        let entry = |k: usize| *table.add(k);
        let abi_version: unsafe extern "C" fn() -> u32 =
            std::mem::transmute(entry(API_ABI_VERSION));
        // numpy 1.x (0x01000009) and 2.x (0x02000000) share every field and entry used here.
        if !matches!(abi_version(), 0x0100_0009 | 0x0200_0000) {
            return None;
        }
        let slots = [API_DESCR_FROM_TYPE, API_NEW_FROM_DESCR, API_SET_BASE_OBJECT];
        if slots.iter().any(|&k| entry(k).is_null()) || entry(API_NDARRAY_TYPE).is_null() {
            return None;
        }
        Some(NumpyApi {
            ndarray: entry(API_NDARRAY_TYPE).cast_mut().cast(),
            descr_from_type: std::mem::transmute::<*const c_void, DescrFromType>(entry(
                API_DESCR_FROM_TYPE,
            )),
            new_from_descr: std::mem::transmute::<*const c_void, NewFromDescr>(entry(
                API_NEW_FROM_DESCR,
            )),
            set_base_object: std::mem::transmute::<*const c_void, SetBaseObject>(entry(
                API_SET_BASE_OBJECT,
            )),
        })
    }
}

/// numpy's builtin type numbers (`NPY_TYPES`) for the dtypes both sides have.
fn dtype_of_type_num(type_num: c_int) -> Option<DType> {
    let long = if std::mem::size_of::<c_long>() == 8 {
        DType::I64
    } else {
        DType::I32
    };
    let ulong = if std::mem::size_of::<c_long>() == 8 {
        DType::U64
    } else {
        DType::U32
    };
    Some(match type_num {
        0 => DType::BOOL,
        1 => DType::I8,
        2 => DType::U8,
        3 => DType::I16,
        4 => DType::U16,
        5 => DType::I32,
        6 => DType::U32,
        7 => long,
        8 => ulong,
        9 => DType::I64,
        10 => DType::U64,
        11 => DType::F32,
        12 => DType::F64,
        14 => DType::C64,
        15 => DType::C128,
        23 => DType::F16,
        _ => return None,
    })
}

/// The inverse of [`dtype_of_type_num`]: the first builtin type number with that dtype, which
/// makes int64 numpy's default `long` where that has 64 bits.
fn type_num_of_dtype(dtype: DType) -> Option<c_int> {
    let long_is_64 = std::mem::size_of::<c_long>() == 8;
    Some(match dtype {
        DType::BOOL => 0,
        DType::I8 => 1,
        DType::U8 => 2,
        DType::I16 => 3,
        DType::U16 => 4,
        DType::I32 => 5,
        DType::U32 => 6,
        DType::I64 if long_is_64 => 7,
        DType::U64 if long_is_64 => 8,
        DType::I64 => 9,
        DType::U64 => 10,
        DType::F32 => 11,
        DType::F64 => 12,
        DType::C64 => 14,
        DType::C128 => 15,
        DType::F16 => 23,
        _ => return None,
    })
}

/// The byte-order character of data in this machine's order (`'='` and `'|'` always are).
fn is_native_order(byteorder: c_char) -> bool {
    let foreign = if cfg!(target_endian = "little") {
        b'>'
    } else {
        b'<'
    };
    byteorder as u8 != foreign
}

/// `obj` as a view when it is exactly a `numpy.ndarray` that DLPack describes as it is (see
/// the module docs), owned by the array; `None` sends it down the protocol path.
#[inline]
pub(crate) fn view_of_ndarray(obj: &Bound<'_, PyAny>) -> Option<TensorView> {
    let header = Header::of(obj)?;
    let owner = || Owner::new(PyObjectOwner::new(obj.clone().unbind()));
    if let Some(numel) = header.c_dense_numel() {
        // SAFETY: `c_dense_numel` checked the header, and the owner holds the array.
        return Some(unsafe { header.c_dense_view(numel, owner()) });
    }
    let parts = header.checked_parts()?;
    // SAFETY: the parts are the array's, and the owner holds the array.
    Some(unsafe { parts.with_owner(owner()) })
}

/// [`view_of_ndarray`] holding a shared borrow of the memory (what `asarray` returns to Rust),
/// with the array and the borrow in one owner.
#[inline]
pub(crate) fn borrowed_view_of_ndarray(obj: &Bound<'_, PyAny>) -> Option<PyResult<TensorView>> {
    let py = obj.py();
    // The registry before the header: finding it the first time runs Python code, which could
    // reshape the array (and free the dimensions the header lends) between the check and the
    // read below.
    let registry = match borrow::registry(py) {
        Ok(registry) => registry,
        Err(e) => return Some(Err(e)),
    };
    let header = Header::of(obj)?;
    let object = obj.clone().unbind();
    if let Some(numel) = header.c_dense_numel() {
        let start = header.data as usize;
        let bytes = start..start + (numel << header.shift);
        // The common argument. Its dimensions are read only once the borrow and the owner
        // exist, straight into the view: nothing built before those calls has to be kept
        // (and moved) across them.
        return Some(borrow::share_object_with(
            registry,
            bytes,
            object,
            |owner| {
                // SAFETY: `c_dense_numel` checked the header; the owner holds the array. Between
                // that check and this read only Rust code ran (the registry was found before the
                // header was read; then its table and the allocator), no Python code, so the
                // array's header is the one checked.
                unsafe { header.c_dense_view(numel, owner) }
            },
        ));
    }
    let parts = header.checked_parts()?;
    // SAFETY: the parts are the array's, and the owner will hold the array.
    Some(unsafe { borrow::share_object(py, parts, object) })
}

/// What an exact `numpy.ndarray` of a builtin dtype, aligned and in native byte order, says
/// of its memory: the parts DLPack describes it with, still in numpy's terms (strides in
/// bytes). Its data stays allocated while the array lives (numpy's own DLPack export relies on
/// the same: `resize` refuses arrays referenced elsewhere), and the memory is writable exactly
/// when numpy says WRITEABLE.
struct Header<'a> {
    data: *mut u8,
    dtype: DType,
    /// log2 of the element size (every builtin numpy dtype has a power-of-two size).
    shift: u32,
    /// The array's `dimensions` and `strides` (never negative extents; at most `MAX_NDIM`).
    shape: &'a [isize],
    byte_strides: &'a [isize],
    read_only: bool,
}

impl<'a> Header<'a> {
    /// The header of `obj` when it is exactly a `numpy.ndarray` that DLPack describes as it is
    /// (see the module docs).
    #[inline(always)]
    fn of(obj: &'a Bound<'_, PyAny>) -> Option<Header<'a>> {
        let api = loaded(obj.py())?;
        let raw = obj.as_ptr();
        // SAFETY: GIL held, live object: reading its type pointer.
        if unsafe { ffi::Py_TYPE(raw) } != api.ndarray {
            return None;
        }
        // SAFETY: `obj` is exactly a numpy.ndarray, whose instance layout starts with these
        // fields; `descr` is a live dtype object the array holds a reference to.
        let (array, descr) = unsafe {
            let array = &*raw.cast::<ArrayFields>();
            (array, &*array.descr)
        };
        if array.flags & NPY_ARRAY_ALIGNED == 0 || !is_native_order(descr.byteorder) {
            return None;
        }
        let dtype = dtype_of_type_num(descr.type_num)?;
        let itemsize = dtype.itemsize()?;
        if !itemsize.is_power_of_two() {
            return None;
        }
        let ndim = usize::try_from(array.nd).ok().filter(|&n| n <= MAX_NDIM)?;
        let (shape, byte_strides) = if ndim == 0 {
            (&[][..], &[][..])
        } else {
            // SAFETY: an ndarray's `dimensions` and `strides` hold `nd` entries while it
            // lives, and change only when Python code runs (`a.shape = ...`); the header is
            // read while `obj` is borrowed, and its users read the slices before any Python
            // code can run.
            unsafe {
                (
                    std::slice::from_raw_parts(array.dimensions, ndim),
                    std::slice::from_raw_parts(array.strides, ndim),
                )
            }
        };
        Some(Header {
            data: array.data,
            dtype,
            shift: itemsize.trailing_zeros(),
            shape,
            byte_strides,
            read_only: array.flags & NPY_ARRAY_WRITEABLE == 0,
        })
    }

    /// The element count when the array is C-contiguous with at least one element, checked
    /// here from its strides (not numpy's flags): each stride of an axis longer than 1 is
    /// the byte size of the axes after it, every stride is whole elements and its magnitude
    /// fits `isize`, the byte length fits `isize`, and the bytes end below the address
    /// space's end. `None` sends every other array to [`Header::checked_parts`].
    #[inline(always)]
    fn c_dense_numel(&self) -> Option<usize> {
        let item = 1isize << self.shift;
        let mut expected = item; // the byte stride of a C-contiguous axis, from the last
        for (&n, &s) in self.shape.iter().zip(self.byte_strides).rev() {
            if n == 1 {
                // Reaches nothing; its stride is only converted (numpy leaves any there).
                if s & (item - 1) != 0 || s == isize::MIN {
                    return None;
                }
            } else {
                if n <= 0 || s != expected {
                    return None;
                }
                expected = expected.checked_mul(n)?;
            }
        }
        let bytes = expected as usize;
        if self.data.is_null() || (self.data as usize).checked_add(bytes).is_none() {
            return None;
        }
        Some(bytes >> self.shift)
    }

    /// The view of a header [`Header::c_dense_numel`] accepted, owned by `owner`.
    ///
    /// # Safety
    /// `numel` is `c_dense_numel`'s answer for this header, unchanged since; `owner` keeps
    /// the array alive.
    #[inline(always)]
    unsafe fn c_dense_view(&self, numel: usize, owner: Owner) -> TensorView {
        let Ok(dims) = OwnedDims::try_from_fn(self.shape.len(), |k| {
            Ok::<_, Infallible>((self.shape[k] as usize, self.byte_strides[k] >> self.shift))
        });
        let size = 1 << self.shift;
        // SAFETY: `numel > 0` elements of `size` whole bytes, C-contiguous (the strides of
        // extent-1 axes are whole elements whose magnitude fits `isize` in bytes), `numel *
        // size` fitting `isize` and ending below the address space's end (`c_dense_numel`),
        // in memory the array keeps allocated while it lives; at most MAX_NDIM axes (`of`).
        let parts = unsafe {
            CheckedParts::over_whole_elements(
                self.data,
                numel,
                size,
                dims,
                self.dtype,
                if self.read_only {
                    Access::ReadOnly
                } else {
                    Access::Writable
                },
            )
        };
        // SAFETY: the owner holds the array, which keeps the memory (see `Header`).
        unsafe { parts.with_owner(owner) }
    }

    /// The checked parts of any array: whole-element strides in elements, then the general
    /// checks. They are valid for [`CheckedParts::with_owner`] with any owner that holds a
    /// strong reference to the array (see `Header`).
    fn checked_parts(&self) -> Option<CheckedParts> {
        let (item, shift) = (1isize << self.shift, self.shift);
        let dims = OwnedDims::try_from_fn(self.shape.len(), |k| {
            let s = self.byte_strides[k];
            if s & (item - 1) != 0 {
                return Err(());
            }
            Ok((self.shape[k] as usize, s >> shift)) // numpy's extents are never negative
        })
        .ok()?;
        let parts = RawParts {
            data: self.data,
            byte_offset: 0,
            dims,
            dtype: self.dtype,
            device: Device::CPU,
            flags: Flags {
                read_only: self.read_only,
                ..Flags::default()
            },
            extent: None,
        };
        CheckedParts::new(parts).ok()
    }
}

/// What numpy needs to describe a view as an ndarray besides its extents: its C API, the
/// builtin type number, and the strides in bytes.
pub(crate) struct ArrayLayout {
    api: &'static NumpyApi,
    type_num: c_int,
    byte_strides: Dims<isize>,
}

impl ArrayLayout {
    /// `None` when numpy is not installed, has no builtin dtype for the view's, or cannot hold
    /// its memory as it is (the caller then goes through `numpy.from_dlpack`).
    pub(crate) fn of(py: Python<'_>, view: &TensorView) -> Option<ArrayLayout> {
        // numpy allocates memory of its own for a NULL data pointer (an empty view may have
        // one).
        if !view.device().is_host_accessible()
            || view.flags().subbyte_padded
            || view.data_ptr().is_null()
        {
            return None;
        }
        let api = imported(py)?;
        let type_num = type_num_of_dtype(view.dtype())?;
        let itemsize = view.itemsize()? as isize;
        let mut byte_strides = Dims::new();
        // `from_parts` checked that every stride fits in bytes.
        byte_strides.extend(view.strides().iter().map(|&s| s * itemsize));
        Some(ArrayLayout {
            api,
            type_num,
            byte_strides,
        })
    }

    /// A new `numpy.ndarray` with this layout over `view`'s memory, writable when `writable`,
    /// without a base yet.
    ///
    /// # Safety
    /// The caller makes the array's base an object that keeps the memory alive (and that
    /// grants the writes when `writable`) before anything else can reach the array.
    unsafe fn new_array<'py>(
        &self,
        py: Python<'py>,
        view: &TensorView,
        writable: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let shape = view.shape();
        const _: () = assert!(std::mem::size_of::<usize>() == std::mem::size_of::<isize>());
        let flags = if writable { NPY_ARRAY_WRITEABLE } else { 0 };
        // SAFETY: GIL held. DescrFromType returns a new reference to a builtin dtype (or NULL
        // with an exception); NewFromDescr steals it, copies `ndim` extents (the view's, each
        // at most `isize::MAX`, so the same bits as `isize`) and strides, and wraps (does not
        // own) the data.
        unsafe {
            let descr = (self.api.descr_from_type)(self.type_num);
            if descr.is_null() {
                return Err(PyErr::fetch(py));
            }
            let array = (self.api.new_from_descr)(
                self.api.ndarray,
                descr,
                shape.len() as c_int,
                shape.as_ptr().cast::<isize>(),
                self.byte_strides.as_ptr(),
                view.data_ptr().cast_mut().cast(),
                flags,
                std::ptr::null_mut(),
            );
            if array.is_null() {
                return Err(PyErr::fetch(py));
            }
            Ok(Bound::from_owned_ptr(py, array))
        }
    }

    /// Make `base` (a strong reference, taken over on every path) the base of `array`.
    ///
    /// # Safety
    /// `array` was made by [`ArrayLayout::new_array`] and has no base yet.
    unsafe fn set_base(&self, array: &Bound<'_, PyAny>, base: *mut ffi::PyObject) -> PyResult<()> {
        // SAFETY: GIL held; SetBaseObject steals `base` (on failure too).
        if unsafe { (self.api.set_base_object)(array.as_ptr(), base) } != 0 {
            return Err(PyErr::fetch(array.py()));
        }
        Ok(())
    }
}

/// The name of the capsules that hold an answered ndarray's owner ([`ndarray_owning`]).
const OWNER_CAPSULE: &CStr = c"dlbridge.owner";

/// `view` as a `numpy.ndarray` over the same memory whose `base` is a capsule holding the view's
/// owner: what `numpy.from_dlpack` builds (its base is a capsule too), without a protocol round
/// trip and without a dlbridge `Tensor` in between. Writable when the view is and the memory
/// may be handed out so (the array then counts as a writable alias until it is freed);
/// read-only otherwise. `layout` is the view's [`ArrayLayout::of`].
pub(crate) fn ndarray_owning(
    py: Python<'_>,
    layout: ArrayLayout,
    mut view: TensorView,
) -> PyResult<Bound<'_, PyAny>> {
    // The view is given up here: no reference made through it can live.
    let writable = !view.is_read_only() && view.owner.try_begin_writable_export_given_up();
    let (destructor, release): (ffi::PyCapsule_Destructor, fn(Owner)) = if writable {
        (release_writable_owner, Owner::release_writable_export)
    } else {
        (release_owner, drop)
    };
    // SAFETY: the base is set below, before the array is handed out, to a capsule that holds
    // the owner (and with it the alias counted when `writable`).
    let array = match unsafe { layout.new_array(py, &view, writable) } {
        Ok(array) => array,
        Err(e) => {
            release(view.into_owner());
            return Err(e);
        }
    };
    // The owner as a thin pointer, with no allocation of its own.
    let owner = view.into_owner().into_thin_raw();
    // SAFETY: GIL held; a static name; the destructor turns exactly this pointer back into its
    // handle, once.
    let capsule =
        unsafe { ffi::PyCapsule_New(owner.as_ptr(), OWNER_CAPSULE.as_ptr(), Some(destructor)) };
    if capsule.is_null() {
        // SAFETY: no capsule took the pointer: it is still ours, from `into_thin_raw` above.
        release(unsafe { Owner::from_thin_raw(owner) });
        return Err(PyErr::fetch(py));
    }
    // SAFETY: made by `new_array`, no base yet; the capsule keeps the memory alive.
    unsafe { layout.set_base(&array, capsule) }?;
    Ok(array)
}

/// # Safety
/// Called by Python, once, on a capsule made by [`ndarray_owning`] for a read-only array.
unsafe extern "C" fn release_owner(capsule: *mut ffi::PyObject) {
    // SAFETY: forwarded; called once, from the capsule's destructor.
    unsafe { with_owner_of(capsule, drop) }
}

/// # Safety
/// Called by Python, once, on a capsule made by [`ndarray_owning`] for a writable array.
unsafe extern "C" fn release_writable_owner(capsule: *mut ffi::PyObject) {
    // SAFETY: as in `release_owner`; the owner counted the array as a writable alias.
    unsafe { with_owner_of(capsule, Owner::release_writable_export) }
}

/// Hand the owner held by a capsule made by [`ndarray_owning`] to `release`, as the other
/// capsule destructors do their contents: a pending exception is kept, and nothing unwinds into
/// Python. Should Python code have renamed the capsule (`arr.base` is reachable), its pointer
/// cannot be trusted: the owner leaks, and an unraisable `ValueError` says so.
///
/// # Safety
/// Called once per capsule, from its destructor (the GIL is held).
unsafe fn with_owner_of(capsule: *mut ffi::PyObject, release: fn(Owner)) {
    // SAFETY: GIL held (the contract).
    unsafe {
        preserving_exception(|| {
            // One name check (the pointer under any other name is NULL, with an exception).
            let pointer = ffi::PyCapsule_GetPointer(capsule, OWNER_CAPSULE.as_ptr());
            let Some(thin) = NonNull::new(pointer) else {
                let py = Python::assume_attached();
                let renamed = PyValueError::new_err(
                    "the base capsule of a numpy array made by dlbridge was renamed: the memory \
                     it keeps alive is leaked",
                );
                renamed.set_cause(py, PyErr::take(py));
                // Reported without the capsule as its object: the capsule is being freed, and
                // a report takes (and gives back) a reference, which would free it again and
                // re-enter this destructor.
                renamed.write_unraisable(py, None);
                return;
            };
            // SAFETY: the capsule's pointer under its own name is the thin owner made in
            // `ndarray_owning` (`PyCapsule_SetPointer` is not reachable from Python), turned
            // back only here.
            release(Owner::from_thin_raw(thin));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{dtype_of_type_num, type_num_of_dtype};

    #[test]
    fn each_dtype_answers_with_its_first_builtin_type_number() {
        let mut seen = 0;
        for n in 0..=30 {
            if let Some(dtype) = dtype_of_type_num(n) {
                let first = (0..=n).find(|&k| dtype_of_type_num(k) == Some(dtype));
                assert_eq!(type_num_of_dtype(dtype), first, "{dtype:?}");
                seen += 1;
            }
        }
        assert_eq!(seen, 16);
        assert_eq!(type_num_of_dtype(crate::DType::BF16), None);
    }
}
