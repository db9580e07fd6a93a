//! The Arrow PyCapsule interface (cargo features `pyo3` + `arrow`), both ways.
//!
//! - Export: `Tensor.__arrow_c_schema__()` and `Tensor.__arrow_c_array__()` hand out
//!   `"arrow_schema"` / `"arrow_array"` capsules over the tensor's memory, so `pa.array(t)` is
//!   zero-copy: 1-D tensors become primitive arrays, N-D tensors `arrow.fixed_shape_tensor`
//!   columns (the schema is exported from the `Field`, so the extension metadata travels).
//!   Layouts Arrow cannot express (strided, transposed, negative strides) and booleans
//!   (bit-packed in Arrow) are copied to C order; dtypes Arrow lacks raise `TypeError`.
//! - Export of a stream: `Tensor.__arrow_c_stream__()` hands out one record batch with the
//!   tensor as its one column, for engines that read streams (polars, DuckDB).
//! - Import: [`arrow_view`] reads any `__arrow_c_array__` or `__arrow_c_stream__` producer
//!   (pyarrow `ChunkedArray`) as a read-only view that keeps the producer's buffers alive (the
//!   imported `ArrayData` owns the producer's release callback); the chunks of a longer stream
//!   are joined by one copy, and [`arrow_chunk_views`] gives one view per chunk instead.
//!
//! Capsule destructors free the boxed C struct, whose `Drop` calls its `release` callback unless
//! a consumer moved the struct out (leaving `release` null): each export is released exactly
//! once. Arrow capsules are never renamed by consumers.

use std::ffi::{c_void, CStr};

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{new_empty_array, Array, ArrayRef};
use arrow_schema::{ArrowError, DataType, Field};
use pyo3::exceptions::{PyBufferError, PyNotImplementedError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::errors::to_py_err;
use crate::interop::arrow::c_data::{
    field_from_c_schema, import_c_array, import_c_stream, ImportedArray,
};
use crate::interop::arrow::{ArrowExportOptions, ArrowImportOptions, Readers, TensorColumn};
use crate::{CopyPolicy, Error, SliceArg, TensorView};

const ARROW_SCHEMA: &CStr = c"arrow_schema";
const ARROW_ARRAY: &CStr = c"arrow_array";
const ARROW_STREAM: &CStr = c"arrow_array_stream";

/// Run an Arrow entry point, turning a panic left in arrow-rs into a `ValueError`: Python code
/// never sees a `PanicException` (which is not an `Exception`).
fn no_panic<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let detail = crate::interop::arrow::c_data::panic_message(payload.as_ref());
        Err(PyValueError::new_err(format!(
            "arrow-rs could not handle the data: {detail}"
        )))
    })
}

fn arrow_err(e: ArrowError) -> PyErr {
    to_py_err(crate::interop::arrow::arrow_err(e))
}

/// Exports copy when Arrow cannot reference the layout (strided views, booleans).
fn export_options() -> ArrowExportOptions {
    ArrowExportOptions::default().allow_copy()
}

// ---------------------------------------------------------------------------------------------
// Capsules
// ---------------------------------------------------------------------------------------------

use super::capsule::preserving_exception;

/// Free the boxed `T` of a capsule named `name`; `T`'s `Drop` calls the C struct's `release`
/// callback unless a consumer moved the struct out (which nulls `release`).
///
/// # Safety
/// GIL held; `capsule` is a live capsule whose pointer, under `name`, came from
/// `Box::<T>::into_raw` in [`boxed_capsule`] and is freed nowhere else.
unsafe fn free_boxed<T>(capsule: *mut ffi::PyObject, name: &CStr) {
    // SAFETY: per the contract; IsValid never raises.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, name.as_ptr()) != 1 {
            return;
        }
        preserving_exception(|| {
            let ptr = ffi::PyCapsule_GetPointer(capsule, name.as_ptr());
            drop(Box::from_raw(ptr.cast::<T>()));
        });
    }
}

unsafe extern "C" fn destroy_schema(capsule: *mut ffi::PyObject) {
    // SAFETY: CPython calls destructors with the GIL held; installed only by `boxed_capsule`
    // on boxed `FFI_ArrowSchema`s named "arrow_schema".
    unsafe { free_boxed::<FFI_ArrowSchema>(capsule, ARROW_SCHEMA) }
}

unsafe extern "C" fn destroy_array(capsule: *mut ffi::PyObject) {
    // SAFETY: as in `destroy_schema`, for boxed `FFI_ArrowArray`s named "arrow_array".
    unsafe { free_boxed::<FFI_ArrowArray>(capsule, ARROW_ARRAY) }
}

unsafe extern "C" fn destroy_stream(capsule: *mut ffi::PyObject) {
    // SAFETY: as in `destroy_schema`, for boxed `FFI_ArrowArrayStream`s named
    // "arrow_array_stream".
    unsafe { free_boxed::<FFI_ArrowArrayStream>(capsule, ARROW_STREAM) }
}

/// Move `value` into a new capsule named `name` whose destructor is `destroy`.
///
/// # Safety
/// `destroy` must free a `Box<T>` stored under `name` (see [`free_boxed`]).
unsafe fn boxed_capsule<'py, T>(
    py: Python<'py>,
    value: T,
    name: &'static CStr,
    destroy: unsafe extern "C" fn(*mut ffi::PyObject),
) -> PyResult<Bound<'py, PyAny>> {
    let raw = Box::into_raw(Box::new(value));
    // SAFETY: GIL held; `raw` is a live allocation the capsule takes over; `name` is static.
    let capsule = unsafe { ffi::PyCapsule_New(raw.cast::<c_void>(), name.as_ptr(), Some(destroy)) };
    if capsule.is_null() {
        // SAFETY: no capsule took `raw`: we still own it (dropping releases the C struct).
        drop(unsafe { Box::from_raw(raw) });
        return Err(PyErr::fetch(py));
    }
    // SAFETY: a new (owned) reference.
    Ok(unsafe { Bound::from_owned_ptr(py, capsule) })
}

/// The pointer of a capsule named `name`, or a `TypeError`/`ValueError` naming `what`.
fn capsule_pointer<T>(obj: &Bound<'_, PyAny>, name: &CStr, what: &str) -> PyResult<*mut T> {
    // SAFETY: GIL held (we have a Bound); `obj` is live. CheckExact/IsValid never raise.
    let valid = unsafe {
        ffi::PyCapsule_CheckExact(obj.as_ptr()) == 1
            && ffi::PyCapsule_IsValid(obj.as_ptr(), name.as_ptr()) == 1
    };
    if !valid {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a PyCapsule named {:?}, got {}",
            name,
            obj.repr()?
        )));
    }
    // SAFETY: a valid capsule of that name (checked), so this returns its non-null pointer.
    Ok(unsafe { ffi::PyCapsule_GetPointer(obj.as_ptr(), name.as_ptr()) }.cast::<T>())
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

/// The Arrow field `view` exports as, in O(ndim): the field of its zero-row slice, which has
/// the same type and extension metadata and needs no copy whatever the layout.
fn field_of(view: &TensorView) -> PyResult<Field> {
    let empty = if view.ndim() == 0 {
        view.clone()
    } else {
        view.slice(0, SliceArg::range(0, 0)).map_err(to_py_err)?
    };
    Ok(empty
        .to_arrow_for(&export_options(), Readers::C)
        .map_err(to_py_err)?
        .field)
}

/// `__arrow_c_schema__`: an `"arrow_schema"` capsule of the tensor's field.
pub(crate) fn schema_capsule<'py>(
    py: Python<'py>,
    view: &TensorView,
) -> PyResult<Bound<'py, PyAny>> {
    // The schema alone touches no data, but it promises an array that cannot follow: refuse
    // device memory here already (BufferError), as `__arrow_c_array__` does.
    view.require_host("the Arrow PyCapsule interface carries host memory only")
        .map_err(to_py_err)?;
    let schema = no_panic(|| FFI_ArrowSchema::try_from(&field_of(view)?).map_err(arrow_err))?;
    // SAFETY: `destroy_schema` frees a boxed FFI_ArrowSchema named "arrow_schema".
    unsafe { boxed_capsule(py, schema, ARROW_SCHEMA, destroy_schema) }
}

/// Whether the same memory can be read as `b` when exported as `a`: equal types, nested field
/// names and nullability aside (the exported data has no nulls).
fn same_storage(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::FixedSizeList(x, n), DataType::FixedSizeList(y, m)) => {
            n == m && same_storage(x.data_type(), y.data_type())
        }
        _ => a == b,
    }
}

/// The field to export `column` under when the consumer asked for `requested_schema`: the
/// column's own field for `None`; the requested field when only its name, nullability or
/// extension metadata differ (a zero-copy relabel, e.g. dropping `arrow.fixed_shape_tensor` to
/// get the plain fixed-size list); otherwise `NotImplementedError` (dlbridge converts no
/// element types: cast after import, `pa.array(t).cast(type)`). Refusing beats returning the
/// tensor's own type here, which the interface would allow, because pyarrow 26's
/// `pa.array(obj, type=...)` fails with an `AttributeError` on that path (its cast-after-import
/// branch in `array.pxi` calls `cast` on the module function `pa.array`, not on the imported
/// array; the branch came with apache/arrow#37797; no upstream report found as of 2026-12).
fn export_field(
    column: TensorColumn,
    requested_schema: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Field, ArrayRef)> {
    let Some(req) = requested_schema.filter(|r| !r.is_none()) else {
        return Ok((column.field, column.array));
    };
    let ptr = capsule_pointer::<FFI_ArrowSchema>(req, ARROW_SCHEMA, "requested_schema")?;
    // SAFETY: a live "arrow_schema" capsule holds an initialised FFI_ArrowSchema (released or
    // not: the call checks) and `req` keeps it alive for this borrow; we only read it.
    let requested = match unsafe { field_from_c_schema(ptr) } {
        Ok(field) => field,
        Err(Error::UnsupportedArrowType(what)) => {
            return Err(PyNotImplementedError::new_err(format!(
                "dlbridge exports this tensor as Arrow {} and does not convert it to the \
                 requested type {what}; cast after import (e.g. pa.array(t).cast(...))",
                column.field.data_type()
            )))
        }
        Err(e) => return Err(to_py_err(e)),
    };
    if same_storage(column.field.data_type(), requested.data_type()) {
        return Ok((requested, column.array));
    }
    Err(PyNotImplementedError::new_err(format!(
        "dlbridge exports this tensor as Arrow {} and does not convert it to the requested {}; \
         cast after import (e.g. pa.array(t).cast(...))",
        column.field.data_type(),
        requested.data_type()
    )))
}

/// `__arrow_c_array__`: `("arrow_schema", "arrow_array")` capsules over the tensor's memory
/// (copied to C order only when Arrow cannot describe the layout). See [`export_field`] for
/// `requested_schema`.
pub(crate) fn array_capsules<'py>(
    py: Python<'py>,
    view: &TensorView,
    requested_schema: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let (schema, array) = no_panic(|| {
        let column = view
            .to_arrow_for(&export_options(), Readers::C)
            .map_err(to_py_err)?;
        let (field, array) = export_field(column, requested_schema)?;
        let schema = FFI_ArrowSchema::try_from(&field).map_err(arrow_err)?;
        Ok((schema, FFI_ArrowArray::new(&array.to_data())))
    })?;
    // SAFETY: each destructor frees a boxed struct of its capsule's type and name.
    let schema = unsafe { boxed_capsule(py, schema, ARROW_SCHEMA, destroy_schema)? };
    // SAFETY: as above.
    let array = unsafe { boxed_capsule(py, array, ARROW_ARRAY, destroy_array)? };
    PyTuple::new(py, [schema, array])
}

/// `__arrow_c_stream__`: an `"arrow_array_stream"` capsule of one record batch with one column
/// named `tensor` (primitive for 1-D, `arrow.fixed_shape_tensor` for N-D, rows on the first
/// axis) over the tensor's memory, as `__arrow_c_array__` exports it. The stream keeps the
/// tensor's memory alive until the consumer releases the batch.
pub(crate) fn stream_capsule<'py>(
    py: Python<'py>,
    view: &TensorView,
) -> PyResult<Bound<'py, PyAny>> {
    let stream = no_panic(|| {
        let column = view
            .to_arrow_for(&export_options(), Readers::C)
            .map_err(to_py_err)?;
        let schema = std::sync::Arc::new(arrow_schema::Schema::new(vec![column.field]));
        let batch = arrow_array::RecordBatch::try_new(schema.clone(), vec![column.array])
            .map_err(arrow_err)?;
        let reader = arrow_array::RecordBatchIterator::new([Ok(batch)], schema);
        Ok(FFI_ArrowArrayStream::new(Box::new(reader)))
    })?;
    // SAFETY: the destructor frees a boxed stream of this capsule's type and name.
    unsafe { boxed_capsule(py, stream, ARROW_STREAM, destroy_stream) }
}

// ---------------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------------

/// True when `obj` has `__arrow_c_array__` or `__arrow_c_stream__`.
pub(crate) fn has_arrow(obj: &Bound<'_, PyAny>) -> bool {
    let py = obj.py();
    obj.hasattr(pyo3::intern!(py, "__arrow_c_array__"))
        .unwrap_or(false)
        || obj
            .hasattr(pyo3::intern!(py, "__arrow_c_stream__"))
            .unwrap_or(false)
}

/// Import `obj` through `__arrow_c_array__` or `__arrow_c_stream__`: `Ok(None)` when it has
/// neither. One array, or a stream of one chunk, is shared without copying; the chunks of a
/// longer stream are joined along the first axis with one copy (`is_copied`), which
/// `copy=False` refuses with `BufferError`. Booleans are copied to bytes unless `copy=False`
/// (then `BufferError`); nulls raise `ValueError`.
pub(crate) fn arrow_view(
    obj: &Bound<'_, PyAny>,
    copy: Option<bool>,
) -> PyResult<Option<TensorView>> {
    no_panic(|| {
        let Some((mut chunks, field)) = import_chunks(obj, copy)? else {
            return Ok(None);
        };
        match chunks.len() {
            0 => {
                let empty = ImportedArray {
                    data: new_empty_array(field.data_type()).to_data(),
                    field,
                    realigned: false,
                };
                empty
                    .into_tensor(&import_options(copy))
                    .map(Some)
                    .map_err(to_py_err)
            }
            1 => Ok(chunks.pop()),
            n if copy == Some(false) => Err(PyBufferError::new_err(format!(
                "an Arrow stream of {n} chunks is one tensor only as a copy (copy=False \
                 forbids it); use dlbridge.from_arrow_chunks for one tensor per chunk"
            ))),
            _ => TensorView::concatenate(&chunks)
                .map(Some)
                .map_err(to_py_err),
        }
    })
}

/// Every chunk of `obj` as a view without copying (booleans excepted): one for an
/// `__arrow_c_array__` producer, one per chunk of an `__arrow_c_stream__` (none for an empty
/// stream); `Ok(None)` when `obj` has neither.
pub(crate) fn arrow_chunk_views(
    obj: &Bound<'_, PyAny>,
    copy: Option<bool>,
) -> PyResult<Option<Vec<TensorView>>> {
    no_panic(|| Ok(import_chunks(obj, copy)?.map(|(chunks, _)| chunks)))
}

fn import_options(copy: Option<bool>) -> ArrowImportOptions {
    ArrowImportOptions {
        copy: if copy == Some(false) {
            CopyPolicy::Never
        } else {
            CopyPolicy::IfNeeded
        },
        null_fill: None,
    }
}

/// The views of every chunk of `obj`, and its field.
fn import_chunks(
    obj: &Bound<'_, PyAny>,
    copy: Option<bool>,
) -> PyResult<Option<(Vec<TensorView>, Field)>> {
    let py = obj.py();
    let opts = import_options(copy);
    if obj.hasattr(pyo3::intern!(py, "__arrow_c_array__"))? {
        let pair = obj.call_method0(pyo3::intern!(py, "__arrow_c_array__"))?;
        let (schema_cap, array_cap): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
            pair.extract().map_err(|_| {
                PyTypeError::new_err("__arrow_c_array__ must return a (schema, array) capsule pair")
            })?;
        let schema_ptr =
            capsule_pointer::<FFI_ArrowSchema>(&schema_cap, ARROW_SCHEMA, "the schema")?;
        let array_ptr = capsule_pointer::<FFI_ArrowArray>(&array_cap, ARROW_ARRAY, "the array")?;
        // SAFETY: the capsules hold initialised structs (released or not: the call checks) and
        // stay alive through the call; the array is moved out only when every check passes.
        let imported = unsafe { import_c_array(schema_ptr, array_ptr) }.map_err(to_py_err)?;
        let field = imported.field.clone();
        let view = imported.into_tensor(&opts).map_err(to_py_err)?;
        return Ok(Some((vec![view], field)));
    }
    if obj.hasattr(pyo3::intern!(py, "__arrow_c_stream__"))? {
        let cap = obj.call_method0(pyo3::intern!(py, "__arrow_c_stream__"))?;
        let ptr = capsule_pointer::<FFI_ArrowArrayStream>(&cap, ARROW_STREAM, "the stream")?;
        // SAFETY: the capsule holds an initialised stream (released or not: the call checks);
        // the call moves it out, leaving a released one for the capsule's destructor.
        let (field, chunks) = unsafe { import_c_stream(ptr) }.map_err(to_py_err)?;
        let views = chunks
            .into_iter()
            .map(|chunk| chunk.into_tensor(&opts))
            .collect::<crate::Result<Vec<_>>>()
            .map_err(to_py_err)?;
        return Ok(Some((views, field)));
    }
    Ok(None)
}
