//! Importing any Python array-like as a [`TensorView`]: `from_dlpack`, `asarray`, `from_arrow`.

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

#[cfg(feature = "arrow")]
use super::arrow;
use super::buffer::{ByteOrder, Exported};
use super::errors::to_py_err;
use super::tensor::Tensor;
use super::{array_interface, borrow, buffer, capsule, exchange, numpy};
use crate::{Order, TensorView};

/// `max_version` we ask producers for (DLPack 1.3), built once.
static MAX_VERSION: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();
/// `dl_device=(1, 0)`, built once.
static CPU_DEVICE: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

/// Resolve the `device` argument: `None`, `"cpu"`, `(1, 0)` or `DLDeviceType.kDLCPU` pairs.
/// Returns whether a device was requested; anything but the CPU is a `ValueError`.
fn check_device(device: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
    let Some(dev) = device else {
        return Ok(false);
    };
    if dev.is_none() {
        return Ok(false);
    }
    if let Ok(s) = dev.cast::<PyString>() {
        if s.to_str()? == "cpu" {
            return Ok(true);
        }
    } else if let Ok((kind, id)) = dev.extract::<(i32, i32)>() {
        if kind == crate::DeviceType::CPU.0 && id == 0 {
            return Ok(true);
        }
    }
    Err(PyValueError::new_err(format!(
        "unsupported device {dev}: dlbridge tensors live on the CPU (\"cpu\" or (1, 0))"
    )))
}

/// Apply the `copy` policy to an imported view.
#[inline]
fn finish(view: TensorView, copy: Option<bool>) -> PyResult<TensorView> {
    if !view.device().is_host_accessible() {
        return Err(PyBufferError::new_err(format!(
            "the tensor lives on {}; dlbridge only imports host memory",
            view.device()
        )));
    }
    match copy {
        // `is_copied` on an import means the producer made the copy for this request and
        // handed over its only handle (DLPack's IS_COPIED): that already is the caller's own.
        Some(true) if !view.is_copied() => view.to_contiguous(Order::C).map_err(to_py_err),
        Some(false) if view.is_copied() => Err(PyBufferError::new_err(
            "the producer copied the data (IS_COPIED) although copy=False forbids a copy",
        )),
        _ => Ok(view),
    }
}

/// The DLPack import path (exchange API, then `__dlpack__`, then a capsule), or `Ok(None)` if
/// `obj` speaks no DLPack.
fn dlpack_view(
    obj: &Bound<'_, PyAny>,
    info: exchange::TypeInfo,
    device_requested: bool,
    copy: Option<bool>,
) -> PyResult<Option<TensorView>> {
    let py = obj.py();
    // The exchange API cannot ask for a device: only without a device request.
    if !device_requested {
        if let Some(view) = exchange::import_via_api(obj, info)? {
            return Ok(Some(view));
        }
    }
    if info.has_dlpack {
        let method = match obj.getattr(pyo3::intern!(py, "__dlpack__")) {
            Ok(method) => method,
            // The class lost `__dlpack__` since its type was cached: look again.
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => {
                exchange::forget(obj);
                let info = exchange::type_info(obj)?;
                if info.has_dlpack {
                    return Err(e);
                }
                return dlpack_view(obj, info, device_requested, copy);
            }
            Err(e) => return Err(e),
        };
        let kwargs = PyDict::new(py);
        let max_version = MAX_VERSION.get_or_init(py, || {
            PyTuple::new(
                py,
                [
                    crate::dlpack::DLPACK_VERSION.0,
                    crate::dlpack::DLPACK_VERSION.1,
                ],
            )
            .expect("a tuple of two ints")
            .unbind()
        });
        kwargs.set_item(pyo3::intern!(py, "max_version"), max_version.bind(py))?;
        if device_requested {
            let cpu = CPU_DEVICE.get_or_init(py, || {
                PyTuple::new(py, [1i32, 0])
                    .expect("a tuple of two ints")
                    .unbind()
            });
            kwargs.set_item(pyo3::intern!(py, "dl_device"), cpu.bind(py))?;
        }
        // copy=True is done here, by the copy kernel; copy=False is passed on so the producer
        // refuses when it would have to copy.
        if copy == Some(false) {
            kwargs.set_item(pyo3::intern!(py, "copy"), false)?;
        }
        let cap = match method.call((), Some(&kwargs)) {
            Ok(cap) => cap,
            // A legacy producer that does not know the keywords: Python raises a plain
            // TypeError. Subclasses are a library's deliberate refusal (pyarrow's
            // ArrowTypeError for nulls and booleans): retrying would only repeat it.
            Err(e) if e.get_type(py).is(py.get_type::<PyTypeError>()) => method.call0()?,
            Err(e) => return Err(e),
        };
        let view = capsule::consume_capsule(&cap)?;
        if info.torch_checks
            && exchange::torch_state(obj, view.dtype())? == exchange::TorchState::Negative
        {
            return Err(exchange::negative_bit_error());
        }
        return Ok(Some(view));
    }
    if capsule::is_capsule(obj) {
        return capsule::consume_capsule(obj).map(Some);
    }
    Ok(None)
}

/// A tensor passed to `from_dlpack`/`asarray`: share its view (or copy it).
fn from_tensor(t: &Bound<'_, Tensor>, copy: Option<bool>) -> PyResult<TensorView> {
    let mut view = t.get().view.clone();
    if copy == Some(true) {
        // The view is shared with `t`: even a copy must be copied again to be the caller's own.
        return view.to_contiguous(Order::C).map_err(to_py_err);
    }
    // The new tensor shares `t`'s memory: whatever `t` was, this one is no fresh copy.
    view.flags.is_copied = false;
    finish(view, copy)
}

/// Import any DLPack producer (or capsule) without copying: the array API's `from_dlpack`.
///
/// Looks up the C exchange API on `type(x)` first (cached per type), then calls
/// `x.__dlpack__(max_version=(1, 3), ...)` (retrying without keywords on `TypeError`), then
/// accepts a bare `"dltensor"`/`"dltensor_versioned"` capsule. `copy=Some(true)` always copies,
/// `copy=Some(false)` never does (`BufferError` when it would have to); `device` may only name
/// the CPU (`None`, `"cpu"`, `(1, 0)`; others raise `ValueError`). Objects without DLPack raise
/// `TypeError`.
///
/// The view holds a shared borrow of the memory while it (or a clone) lives, so no
/// [`Requirements::extract_mut`](super::Requirements::extract_mut) guard can alias it.
pub fn from_dlpack(
    x: &Bound<'_, PyAny>,
    device: Option<&Bound<'_, PyAny>>,
    copy: Option<bool>,
) -> PyResult<TensorView> {
    // An exact numpy.ndarray on the CPU: its view and borrow in one owner, as in `asarray`.
    if copy != Some(true) && !check_device(device)? {
        if let Some(view) = numpy::borrowed_view_of_ndarray(x) {
            return view;
        }
    }
    borrow::shared(x.py(), import_dlpack(x, device, copy)?)
}

/// [`from_dlpack`] as a Python `Tensor` (what the `dlbridge` module's `from_dlpack` returns).
pub fn from_dlpack_tensor<'py>(
    x: &Bound<'py, PyAny>,
    device: Option<&Bound<'py, PyAny>>,
    copy: Option<bool>,
) -> PyResult<Bound<'py, Tensor>> {
    Bound::new(x.py(), Tensor::from_view(import_dlpack(x, device, copy)?))
}

fn import_dlpack(
    x: &Bound<'_, PyAny>,
    device: Option<&Bound<'_, PyAny>>,
    copy: Option<bool>,
) -> PyResult<TensorView> {
    let device_requested = check_device(device)?;
    if let Ok(t) = x.cast::<Tensor>() {
        return from_tensor(t, copy);
    }
    // An exact numpy.ndarray: read what its `__dlpack__` would describe, without the call.
    if let Some(view) = numpy::view_of_ndarray(x) {
        return finish(view, copy);
    }
    let info = exchange::type_info(x)?;
    match dlpack_view(x, info, device_requested, copy)? {
        Some(view) => finish(view, copy),
        None => Err(PyTypeError::new_err(format!(
            "{} does not support the DLPack protocol (no __dlpack__, not a DLPack capsule)",
            x.get_type().name()?
        ))),
    }
}

/// Turn a buffer/array-interface export into the final view: byte-swap copy if needed.
fn finish_exported(e: Exported, copy: Option<bool>) -> PyResult<TensorView> {
    match e.order {
        ByteOrder::Native => finish(e.view, copy),
        ByteOrder::Swapped if copy == Some(false) => Err(PyBufferError::new_err(
            "the data is not in native byte order; a copy is required but copy=False",
        )),
        ByteOrder::Swapped => e
            .view
            .to_contiguous_byteswapped(Order::C)
            .map_err(to_py_err),
    }
}

/// Share any array-like: DLPack producers, the Arrow PyCapsule interface (`__arrow_c_array__`,
/// single-chunk `__arrow_c_stream__`; feature `arrow`), the buffer protocol,
/// `__array_interface__`, tried in that order (Arrow also when DLPack refuses the object, as
/// pyarrow does for booleans and nulls). This is what `TensorView`'s `FromPyObject` does.
///
/// Zero-copy whenever the layout allows. Data in non-native byte order is copied (byte-swapped)
/// unless `copy=Some(false)`, which raises `BufferError`; `copy=Some(true)` always copies.
/// Objects that implement none of the protocols raise `TypeError`.
///
/// The view holds a shared borrow of the memory while it (or a clone) lives, so no
/// [`Requirements::extract_mut`](super::Requirements::extract_mut) guard can alias it.
#[inline]
pub fn asarray(obj: &Bound<'_, PyAny>, copy: Option<bool>) -> PyResult<TensorView> {
    // An exact numpy.ndarray is never copied unless asked: its view and borrow in one owner.
    if copy != Some(true) {
        if let Some(view) = numpy::borrowed_view_of_ndarray(obj) {
            return view;
        }
    }
    borrow::shared(obj.py(), import_any(obj, copy)?)
}

/// [`asarray`] as a Python `Tensor` (what the `dlbridge` module's `asarray` returns).
pub fn asarray_tensor<'py>(
    obj: &Bound<'py, PyAny>,
    copy: Option<bool>,
) -> PyResult<Bound<'py, Tensor>> {
    Bound::new(obj.py(), Tensor::from_view(import_any(obj, copy)?))
}

/// [`asarray`] without the borrow: for views that go straight into a `Tensor` or are checked
/// further before they are handed out.
pub(crate) fn import_any(obj: &Bound<'_, PyAny>, copy: Option<bool>) -> PyResult<TensorView> {
    let py = obj.py();
    if let Ok(t) = obj.cast::<Tensor>() {
        return from_tensor(t, copy);
    }
    if let Some(view) = numpy::view_of_ndarray(obj) {
        return finish(view, copy);
    }
    let info = exchange::type_info(obj)?;
    let mut dlpack_error = None;
    if info.api.is_some() || info.has_dlpack || capsule::is_capsule(obj) {
        match dlpack_view(obj, info, false, copy) {
            Ok(Some(view)) => return finish(view, copy),
            Ok(None) => {}
            // e.g. numpy refuses byte-swapped arrays: fall through to the other protocols.
            Err(e) if e.is_instance_of::<PyBufferError>(py) => dlpack_error = Some(e),
            // pyarrow refuses nulls and booleans over DLPack (ArrowTypeError): its Arrow
            // interface can still carry them (booleans as a copy, nulls as a clear error).
            #[cfg(feature = "arrow")]
            Err(e) if arrow::has_arrow(obj) => dlpack_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    // The buffer protocol before Arrow: its check is one C call, while looking for the Arrow
    // dunders costs attribute lookups (and no object of the ecosystem exposes both).
    if let Some(held) = buffer::get_buffer(obj)? {
        return finish_exported(held, copy);
    }
    #[cfg(feature = "arrow")]
    if let Some(view) = arrow::arrow_view(obj, copy)? {
        return finish(view, copy);
    }
    if let Some(held) = array_interface::get_interface(obj)? {
        return finish_exported(held, copy);
    }
    if let Some(e) = dlpack_error {
        return Err(e);
    }
    Err(PyTypeError::new_err(format!(
        "cannot share a {}: it supports neither DLPack, the buffer protocol nor \
         __array_interface__",
        obj.get_type().name()?
    )))
}

/// Share an Arrow array through the Arrow PyCapsule interface only, without copying.
///
/// Accepts any object with `__arrow_c_array__` (pyarrow arrays, `FixedShapeTensorArray`,
/// `dlbridge.Tensor`, ...) or a single-chunk `__arrow_c_stream__` (pyarrow `ChunkedArray`).
/// `arrow.fixed_shape_tensor` columns give `[rows, *shape]`. The result is read-only and keeps
/// the Arrow buffers alive. Booleans are copied to bytes unless `copy=Some(false)`
/// (`BufferError`); nulls raise `ValueError`; `copy=Some(true)` always copies; other objects
/// raise `TypeError`.
#[cfg(feature = "arrow")]
#[cfg_attr(docsrs, doc(cfg(feature = "arrow")))]
pub fn from_arrow(obj: &Bound<'_, PyAny>, copy: Option<bool>) -> PyResult<TensorView> {
    borrow::shared(obj.py(), import_arrow(obj, copy)?)
}

/// [`from_arrow`] as a Python `Tensor` (what the `dlbridge` module's `from_arrow` returns).
#[cfg(feature = "arrow")]
#[cfg_attr(docsrs, doc(cfg(feature = "arrow")))]
pub fn from_arrow_tensor<'py>(
    obj: &Bound<'py, PyAny>,
    copy: Option<bool>,
) -> PyResult<Bound<'py, Tensor>> {
    Bound::new(obj.py(), Tensor::from_view(import_arrow(obj, copy)?))
}

#[cfg(feature = "arrow")]
fn import_arrow(obj: &Bound<'_, PyAny>, copy: Option<bool>) -> PyResult<TensorView> {
    match arrow::arrow_view(obj, copy)? {
        Some(view) => finish(view, copy),
        None => Err(PyTypeError::new_err(format!(
            "{} implements neither __arrow_c_array__ nor __arrow_c_stream__",
            obj.get_type().name()?
        ))),
    }
}
