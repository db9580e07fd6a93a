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

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCFunction, PyTuple};

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
        Error::InvalidArgument(_) => PyValueError::new_err(msg),
        Error::DtypeMismatch { .. } => PyTypeError::new_err(msg),
        Error::Foreign { .. } => PyRuntimeError::new_err(msg),
        _ => PyBufferError::new_err(msg),
    }
}

/// Set by an `atexit` hook: after it, owners never touch Python again (they leak instead).
static FINALIZING: AtomicBool = AtomicBool::new(false);

/// Run `f` attached to the interpreter, from any thread; `None` (and `f` not run) when the
/// interpreter is shutting down or gone, where taking the GIL could hang or crash.
pub(crate) fn with_gil<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    if FINALIZING.load(Ordering::Acquire) {
        return None;
    }
    Python::try_attach(f)
}

/// A Python object kept alive as the [`crate::Owner`] of memory it exposes. Dropping it takes
/// the GIL (from any thread) to release the reference, or leaks it at interpreter shutdown.
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
    let hook = PyCFunction::new_closure(py, None, None, |_args, _kwargs| {
        FINALIZING.store(true, Ordering::Release);
    })?;
    py.import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}
