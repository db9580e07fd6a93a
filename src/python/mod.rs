//! The `dlbridge` Python module (cargo feature `python`, built by maturin).
//!
//! - `dlbridge.Tensor` wraps a [`TensorView`] and is a full producer: `__dlpack__` (versioned and
//!   legacy capsules), `__dlpack_device__`, the buffer protocol, `__array_interface__` and the
//!   type-level `__dlpack_c_exchange_api__` capsule.
//! - `dlbridge.from_dlpack` consumes any DLPack producer: the C exchange API of the producer's
//!   type when it has one (no Python call, no capsule), else `__dlpack__`, else a capsule.
//! - `dlbridge.asarray` adds the Arrow PyCapsule interface (feature `arrow`), the buffer
//!   protocol and `__array_interface__`.
//! - With the `arrow` feature, `Tensor` is also an Arrow producer (`__arrow_c_schema__`,
//!   `__arrow_c_array__`: `pa.array(t)` is zero-copy) and `dlbridge.from_arrow` imports through
//!   the Arrow interface only (see `arrow.rs`).
//!
//! Exceptions: `BufferError` when data cannot be described or shared as asked (dtype, layout,
//! device, read-only, a copy forbidden by `copy=False`), `ValueError` for invalid arguments
//! (a stream on CPU, a non-CPU target device, a spent capsule), `TypeError` for objects that
//! implement no protocol.

use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

use crate::{Error, TensorView};

mod array_interface;
#[cfg(feature = "arrow")]
mod arrow;
mod buffer;
mod capsule;
mod exchange;
mod import;
mod tensor;

pub use tensor::Tensor;

/// Map a crate error onto the Python exception the array API / DLPack specs ask for.
pub(crate) fn to_py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::AxisOutOfRange { .. }
        | Error::ArgumentCount { .. }
        | Error::NotAPermutation { .. }
        | Error::InvalidStep(_)
        | Error::Overlapping
        | Error::InvalidBool { .. }
        | Error::UnknownDtypeName(_)
        | Error::NothingToWrite(_)
        | Error::MalformedArrow(_)
        | Error::InvalidExtensionMetadata(_)
        | Error::Nulls(_)
        | Error::UnrepresentableFill { .. }
        | Error::UnsupportedTensor(_) => PyValueError::new_err(msg),
        Error::DtypeMismatch { .. } | Error::UnsupportedArrowType(_) => PyTypeError::new_err(msg),
        Error::Foreign(_) => PyRuntimeError::new_err(msg),
        _ => PyBufferError::new_err(msg),
    }
}

/// `Py_IsFinalizing` (3.13+) or `_Py_IsFinalizing` (3.11, 3.12), found at run time: neither is in
/// the stable ABI this module is built for, and each exists in only some of the versions it runs
/// on. `None` when neither is exported.
fn finalizing_probe() -> Option<unsafe extern "C" fn() -> std::ffi::c_int> {
    static PROBE: std::sync::OnceLock<Option<unsafe extern "C" fn() -> std::ffi::c_int>> =
        std::sync::OnceLock::new();
    *PROBE.get_or_init(|| {
        #[cfg(unix)]
        for name in [c"Py_IsFinalizing", c"_Py_IsFinalizing"] {
            // SAFETY: dlsym with RTLD_DEFAULT searches the loaded images (the interpreter is one)
            // for a NUL-terminated symbol name; it does not call the symbol.
            let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            if !symbol.is_null() {
                // SAFETY: both functions are `int (*)(void)` in every CPython that exports them.
                return Some(unsafe {
                    std::mem::transmute::<
                        *mut libc::c_void,
                        unsafe extern "C" fn() -> std::ffi::c_int,
                    >(symbol)
                });
            }
        }
        None
    })
}

/// True while the interpreter is shutting down (`sys.is_finalizing()`): not merely after `atexit`
/// handlers ran, which a program may trigger itself.
fn interpreter_finalizing() -> bool {
    // SAFETY: both functions only read a runtime flag and may be called without the GIL.
    finalizing_probe().is_some_and(|probe| unsafe { probe() } != 0)
}

/// Run `f` attached to the interpreter, from any thread; `None` (and `f` not run) when this
/// thread is not attached and the interpreter is shutting down or gone, where attaching could
/// hang or crash. A thread that already holds the GIL (the one running the finalizer, say) may
/// always release references.
pub(crate) fn with_gil<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    extern "C" {
        // Exported by every CPython since 3.4, though outside the limited API pyo3 binds here.
        fn PyGILState_Check() -> std::ffi::c_int;
    }
    // SAFETY: PyGILState_Check may be called from any thread, with or without the GIL.
    let attached = unsafe { PyGILState_Check() } == 1;
    if !attached && interpreter_finalizing() {
        return None;
    }
    Python::try_attach(f)
}

/// A Python object kept alive as the [`crate::Owner`] of memory it exposes. Dropping it takes
/// the GIL (from any thread) to release the reference, or leaks it at interpreter shutdown.
/// Views over it report it to Python's garbage collector (see [`visit_python_objects`]).
pub(crate) struct PyObjectOwner(Option<Py<PyAny>>);

impl PyObjectOwner {
    pub(crate) fn new(obj: Py<PyAny>) -> PyObjectOwner {
        PyObjectOwner(Some(obj))
    }
}

impl Drop for PyObjectOwner {
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            let mut slot = Some(obj);
            if with_gil(|_py| drop(slot.take())).is_none() {
                // Interpreter finalizing: dropping a `Py` now would touch a dying interpreter.
                std::mem::forget(slot);
            }
        }
    }
}

/// Report to Python's garbage collector every Python object `owner` holds a strong reference
/// to, so that reference cycles through tensors are collected (`tp_traverse`).
pub(crate) fn visit_python_objects(
    owner: &crate::Owner,
    visit: &pyo3::PyVisit<'_>,
) -> Result<(), pyo3::PyTraverseError> {
    let mut result = Ok(());
    owner.visit(&mut |value| {
        if result.is_err() {
            return;
        }
        if let Some(held) = value.downcast_ref::<PyObjectOwner>() {
            result = visit.call(&held.0);
        } else if let Some(held) = value.downcast_ref::<buffer::BufferOwner>() {
            result = held.traverse(visit);
        }
    });
    result
}

/// The `dlbridge.DLDeviceType` IntEnum and its CPU member (cached for `__dlpack_device__`).
struct DeviceEnum {
    class: Py<PyAny>,
    cpu: Py<PyAny>,
}

static DEVICE_ENUM: PyOnceLock<DeviceEnum> = PyOnceLock::new();

fn device_enum(py: Python<'_>) -> PyResult<&DeviceEnum> {
    DEVICE_ENUM.get_or_try_init(py, || {
        let members: Vec<(&str, i32)> = (1..=18)
            .filter_map(|n| crate::DeviceType(n).name().map(|name| (name, n)))
            .collect();
        let class = py
            .import("enum")?
            .getattr("IntEnum")?
            .call1(("DLDeviceType", members))?;
        class.setattr("__module__", "dlbridge")?;
        let cpu = class.call1((1,))?.unbind();
        Ok::<_, PyErr>(DeviceEnum {
            class: class.unbind(),
            cpu,
        })
    })
}

/// `(DLDeviceType member, id)` for `__dlpack_device__`.
pub(crate) fn device_tuple<'py>(
    py: Python<'py>,
    device: crate::Device,
) -> PyResult<Bound<'py, PyTuple>> {
    let e = device_enum(py)?;
    let kind = if device.kind == crate::DeviceType::CPU {
        e.cpu.bind(py).clone()
    } else {
        match e.class.bind(py).call1((device.kind.0,)) {
            Ok(member) => member,
            Err(_) => device.kind.0.into_pyobject(py)?.into_any(),
        }
    };
    PyTuple::new(py, [kind, device.id.into_pyobject(py)?.into_any()])
}

/// Wrap a view as a new `dlbridge.Tensor`.
pub(crate) fn new_tensor(py: Python<'_>, view: TensorView) -> PyResult<Bound<'_, Tensor>> {
    Bound::new(py, Tensor::from_view(view))
}

/// `dlbridge`: zero-copy tensor exchange (DLPack, buffer protocol, `__array_interface__`).
#[pymodule]
fn dlbridge(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Tensor>()?;
    m.add_function(wrap_pyfunction!(import::from_dlpack, m)?)?;
    m.add_function(wrap_pyfunction!(import::asarray, m)?)?;
    #[cfg(feature = "arrow")]
    m.add_function(wrap_pyfunction!(arrow::from_arrow, m)?)?;
    m.add("DLDeviceType", device_enum(py)?.class.clone_ref(py))?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
