//! The `dlbridge` Python module, built on the public pyo3 API of the `dlbridge` crate
//! (`dlbridge::python`), exactly as any extension author would build one.

use dlbridge::python::Tensor;
use pyo3::prelude::*;

/// Import any DLPack producer (or capsule) without copying.
///
/// Looks up the C exchange API on `type(x)` first (cached per type), then calls
/// `x.__dlpack__(max_version=(1, 3), ...)` (retrying without keywords on `TypeError`), then
/// accepts a bare `"dltensor"`/`"dltensor_versioned"` capsule. `copy=True` always copies,
/// `copy=False` never does. Device memory is imported untouched; `device` (`"cpu"` or a
/// `(device_type, device_id)` pair) is passed to the producer as `dl_device`.
#[pyfunction]
#[pyo3(signature = (x, /, *, device=None, copy=None))]
fn from_dlpack<'py>(
    x: &Bound<'py, PyAny>,
    device: Option<&Bound<'py, PyAny>>,
    copy: Option<bool>,
) -> PyResult<Bound<'py, Tensor>> {
    dlbridge::python::from_dlpack_tensor(x, device, copy)
}

/// Share any array-like: DLPack producers, the Arrow PyCapsule interface (`__arrow_c_array__`,
/// `__arrow_c_stream__`, chunks joined by one copy), the buffer protocol, `__array_interface__`, tried in that
/// order (Arrow also when DLPack refuses the object, as pyarrow does for booleans and nulls).
///
/// Zero-copy whenever the layout allows. Data in non-native byte order is copied (byte-swapped)
/// unless `copy=False`, which raises `BufferError`; `copy=True` always copies. Objects that
/// implement none of the protocols raise `TypeError`.
#[pyfunction]
#[pyo3(signature = (obj, /, *, copy=None))]
fn asarray<'py>(obj: &Bound<'py, PyAny>, copy: Option<bool>) -> PyResult<Bound<'py, Tensor>> {
    dlbridge::python::asarray_tensor(obj, copy)
}

/// Share an Arrow array through the Arrow PyCapsule interface only, without copying.
///
/// Accepts any object with `__arrow_c_array__` (pyarrow arrays, `FixedShapeTensorArray`,
/// `dlbridge.Tensor`, ...) or `__arrow_c_stream__` (pyarrow `ChunkedArray`: several chunks are
/// joined by one copy, `is_copied`, which `copy=False` refuses with `BufferError`).
/// `arrow.fixed_shape_tensor` columns give `[rows, *shape]`. The result is read-only and keeps
/// the Arrow buffers alive. Booleans are copied to bytes unless `copy=False` (`BufferError`);
/// nulls raise `ValueError`; `copy=True` always copies.
#[pyfunction]
#[pyo3(signature = (obj, /, *, copy=None))]
fn from_arrow<'py>(obj: &Bound<'py, PyAny>, copy: Option<bool>) -> PyResult<Bound<'py, Tensor>> {
    dlbridge::python::from_arrow_tensor(obj, copy)
}

/// Write the named tensors of `tensors` (a mapping of ``str`` to any array-like) to `path`:
/// safetensors when the name ends in ``.safetensors``, an Arrow IPC file otherwise (one
/// ``arrow.fixed_shape_tensor`` column per name, holding the whole tensor as its one row).
#[pyfunction]
fn save(path: std::path::PathBuf, tensors: &Bound<'_, pyo3::types::PyMapping>) -> PyResult<()> {
    dlbridge::python::save(path, tensors)
}

/// Memory-map the tensor file at `path` (safetensors or Arrow IPC, told by its contents) and
/// return ``{name: Tensor}`` in file order: read-only views into the mapping, read from disk
/// only when touched, keeping the mapping alive (also after the file is unlinked). The file
/// must not be changed or truncated while the tensors live (``save`` replaces by a rename).
#[pyfunction]
fn load(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    dlbridge::python::load(py, path)
}

/// One tensor per chunk of an Arrow stream (``__arrow_c_stream__``: a pyarrow ``ChunkedArray``,
/// a one-column ``RecordBatchReader``, ...), each without copying; one for an
/// ``__arrow_c_array__`` producer; an empty list for an empty stream. ``copy`` as for
/// ``from_arrow``, per chunk.
#[pyfunction]
#[pyo3(signature = (obj, /, *, copy=None))]
fn from_arrow_chunks<'py>(
    obj: &Bound<'py, PyAny>,
    copy: Option<bool>,
) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    dlbridge::python::from_arrow_chunks_tensors(obj, copy)
}

/// `dlbridge`: zero-copy tensor exchange (DLPack, buffer protocol, `__array_interface__`, Arrow).
#[pymodule]
#[pyo3(name = "dlbridge")]
fn dlbridge_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Tensor>()?;
    m.add_function(wrap_pyfunction!(from_dlpack, m)?)?;
    m.add_function(wrap_pyfunction!(asarray, m)?)?;
    m.add_function(wrap_pyfunction!(from_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(from_arrow_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(dlbridge::python::rebuild_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(save, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add("DLDeviceType", dlbridge::python::dl_device_type(py)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
