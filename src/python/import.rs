//! Importing any Python array-like as a [`TensorView`]: `from_dlpack`, `asarray`, `from_arrow`.

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyString, PyTuple};

#[cfg(feature = "arrow")]
use super::arrow;
use super::buffer::{ByteOrder, Exported};
use super::errors::to_py_err;
use super::tensor::Tensor;
use super::{array_interface, borrow, buffer, capsule, exchange, numpy};
use crate::{Device, Order, TensorView};

/// `max_version` we ask producers for (DLPack 1.3), built once.
static MAX_VERSION: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();
/// `dl_device=(1, 0)`, built once.
static CPU_DEVICE: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

/// Resolve the `device` argument: `None`, `"cpu"`, or a `(device_type, device_id)` pair (ints
/// or `DLDeviceType` members). Other values are a `ValueError`.
fn requested_device(device: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Device>> {
    let Some(dev) = device else {
        return Ok(None);
    };
    if dev.is_none() {
        return Ok(None);
    }
    if let Ok(s) = dev.cast::<PyString>() {
        if s.to_str()? == "cpu" {
            return Ok(Some(Device::CPU));
        }
    } else if let Ok((kind, id)) = dev.extract::<(i32, i32)>() {
        return Ok(Some(Device {
            kind: crate::DeviceType(kind),
            id,
        }));
    }
    Err(PyValueError::new_err(format!(
        "unsupported device {dev}: give \"cpu\" or a (device_type, device_id) pair"
    )))
}

/// Apply the `copy` policy to an imported view. Device memory is never copied here (dlbridge
/// does not read it): `copy=True` must have been met by the producer.
#[inline]
fn finish(view: TensorView, copy: Option<bool>) -> PyResult<TensorView> {
    match copy {
        Some(true) if !view.is_copied() && !view.device().is_host_accessible() => {
            Err(PyBufferError::new_err(format!(
                "copy=True: the tensor lives on {} and its producer did not copy it; dlbridge \
                 never reads device memory",
                view.device()
            )))
        }
        // `is_copied` on an import means the producer made the copy for this request and
        // handed over its only handle (DLPack's IS_COPIED): that already is the caller's own.
        Some(true) if !view.is_copied() => view.to_contiguous(Order::C).map_err(to_py_err),
        Some(false) if view.is_copied() => Err(PyBufferError::new_err(
            "the producer copied the data (IS_COPIED) although copy=False forbids a copy",
        )),
        _ => Ok(view),
    }
}

/// The device the producer said it lives on (`__dlpack_device__`), when it says.
fn producer_device(obj: &Bound<'_, PyAny>) -> Option<Device> {
    let (kind, id) = obj
        .call_method0(pyo3::intern!(obj.py(), "__dlpack_device__"))
        .ok()?
        .extract::<(i32, i32)>()
        .ok()?;
    Some(Device {
        kind: crate::DeviceType(kind),
        id,
    })
}

/// An imported view and, for memory outside the CPU, the Python producer it came from: a
/// `Tensor` made of it asks that producer again on export, so the consumer's `stream` reaches
/// the code that owes the synchronisation.
pub(crate) struct Imported {
    pub(crate) view: TensorView,
    pub(crate) producer: Option<Py<PyAny>>,
}

impl Imported {
    fn plain(view: TensorView) -> Imported {
        Imported {
            view,
            producer: None,
        }
    }
}

/// The DLPack import path (exchange API, then `__dlpack__`, then a capsule), or `Ok(None)` if
/// `obj` speaks no DLPack.
fn dlpack_view(
    obj: &Bound<'_, PyAny>,
    info: exchange::TypeInfo,
    device: Option<Device>,
    copy: Option<bool>,
) -> PyResult<Option<Imported>> {
    let py = obj.py();
    // The exchange API cannot ask for a device or a copy, and does not synchronise: only
    // without a device request, and only for CPU memory when `__dlpack__` can be asked instead.
    if device.is_none() {
        if let Some(view) = exchange::import_via_api(obj, info)? {
            if view.device() == Device::CPU || !info.has_dlpack {
                let producer = (view.device() != Device::CPU).then(|| obj.clone().unbind());
                return Ok(Some(Imported { view, producer }));
            }
            // Device memory: dropping the view hands it back; `__dlpack__` synchronises.
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
                return dlpack_view(obj, info, device, copy);
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
        match device {
            Some(Device::CPU) => {
                let cpu = CPU_DEVICE.get_or_init(py, || {
                    PyTuple::new(py, [1i32, 0])
                        .expect("a tuple of two ints")
                        .unbind()
                });
                kwargs.set_item(pyo3::intern!(py, "dl_device"), cpu.bind(py))?;
            }
            Some(other) => {
                kwargs.set_item(pyo3::intern!(py, "dl_device"), (other.kind.0, other.id))?
            }
            None => {}
        }
        // copy=False is passed on so the producer refuses when it would have to copy.
        // copy=True is done here by the copy kernel for host memory; memory dlbridge cannot
        // read (the target device, or the producer's own) must be copied by the producer.
        let producer_copies = copy == Some(true)
            && !device
                .or_else(|| producer_device(obj))
                .is_some_and(Device::is_host_accessible);
        if copy == Some(false) || producer_copies {
            kwargs.set_item(pyo3::intern!(py, "copy"), copy)?;
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
        if let Some(wanted) = device {
            if view.device() != wanted {
                return Err(PyBufferError::new_err(format!(
                    "the producer returned a tensor on {} although {wanted} was requested",
                    view.device()
                )));
            }
        }
        // A copy the producer made is the caller's own: nothing to ask the producer later.
        let producer =
            (view.device() != Device::CPU && !view.is_copied()).then(|| obj.clone().unbind());
        return Ok(Some(Imported { view, producer }));
    }
    if capsule::is_capsule(obj) {
        return capsule::consume_capsule(obj).map(|v| Some(Imported::plain(v)));
    }
    Ok(None)
}

/// A tensor passed to `from_dlpack`/`asarray`: share its view (or copy it). `None` when only
/// its `__dlpack__` can answer: another device, or a copy of device memory (which its
/// producer, if it has one, must make).
fn from_tensor(
    t: &Bound<'_, Tensor>,
    device: Option<Device>,
    copy: Option<bool>,
) -> Option<PyResult<Imported>> {
    let tensor = t.get();
    let mut view = tensor.view.clone();
    let host = view.device().is_host_accessible();
    if device.is_some_and(|d| d != view.device()) || (copy == Some(true) && !host) {
        return None;
    }
    if copy == Some(true) {
        // The view is shared with `t`: even a copy must be copied again to be the caller's own.
        return Some(
            view.to_contiguous(Order::C)
                .map(Imported::plain)
                .map_err(to_py_err),
        );
    }
    // The new tensor shares `t`'s memory: whatever `t` was, this one is no fresh copy.
    view.set_flags(view.flags().with_is_copied(false));
    let producer = tensor.producer.as_ref().map(|p| p.clone_ref(t.py()));
    Some(finish(view, copy).map(|view| Imported { view, producer }))
}

/// Import any DLPack producer (or capsule) without copying: the array API's `from_dlpack`.
///
/// Looks up the C exchange API on `type(x)` first (cached per type), then calls
/// `x.__dlpack__(max_version=(1, 3), ...)` (retrying without keywords on `TypeError`), then
/// accepts a bare `"dltensor"`/`"dltensor_versioned"` capsule. `copy=Some(true)` always copies,
/// `copy=Some(false)` never does (`BufferError` when it would have to). Objects without DLPack
/// raise `TypeError`.
///
/// Device memory (CUDA, ROCm, ...) is imported as it is, never read: the view reports its
/// device and address. `device` (`"cpu"` or a `(device_type, device_id)` pair) is passed to
/// the producer's `__dlpack__(dl_device=...)`, which moves or copies the data if it can; the
/// exchange API is skipped then, as it cannot ask for a device. A copy of device memory
/// (`copy=Some(true)`) is asked of the producer too.
///
/// The view holds a shared borrow of the memory while it (or a clone) lives, so no
/// [`Requirements::extract_mut`](super::Requirements::extract_mut) guard can alias it.
pub fn from_dlpack(
    x: &Bound<'_, PyAny>,
    device: Option<&Bound<'_, PyAny>>,
    copy: Option<bool>,
) -> PyResult<TensorView> {
    let device = requested_device(device)?;
    // An exact numpy.ndarray on the CPU: its view and borrow in one owner, as in `asarray`.
    if copy != Some(true) && device.is_none() {
        if let Some(view) = numpy::borrowed_view_of_ndarray(x) {
            return view;
        }
    }
    borrow::shared(x.py(), import_dlpack(x, device, copy)?.view)
}

/// [`from_dlpack`] as a Python `Tensor` (what the `dlbridge` module's `from_dlpack` returns).
/// A tensor of device memory keeps its producer and asks it again when it is exported, so the
/// consumer's `stream`, `dl_device` and `copy` reach the producer.
pub fn from_dlpack_tensor<'py>(
    x: &Bound<'py, PyAny>,
    device: Option<&Bound<'py, PyAny>>,
    copy: Option<bool>,
) -> PyResult<Bound<'py, Tensor>> {
    let imported = import_dlpack(x, requested_device(device)?, copy)?;
    Bound::new(x.py(), Tensor::from_import(imported))
}

fn import_dlpack(
    x: &Bound<'_, PyAny>,
    device: Option<Device>,
    copy: Option<bool>,
) -> PyResult<Imported> {
    if let Ok(t) = x.cast::<Tensor>() {
        if let Some(imported) = from_tensor(t, device, copy) {
            return imported;
        }
    } else if device.is_none_or(|d| d == Device::CPU) {
        // An exact numpy.ndarray: read what its `__dlpack__` would describe, without the call.
        if let Some(view) = numpy::view_of_ndarray(x) {
            return finish(view, copy).map(Imported::plain);
        }
    }
    let info = exchange::type_info(x)?;
    match dlpack_view(x, info, device, copy)? {
        Some(imported) => Ok(Imported {
            view: finish(imported.view, copy)?,
            producer: imported.producer,
        }),
        None => Err(PyTypeError::new_err(format!(
            "{} does not support the DLPack protocol (no __dlpack__, not a DLPack capsule)",
            x.get_type().name()?
        ))),
    }
}

/// Turn a buffer/array-interface export into the final view. Shared when a tensor can describe
/// it; otherwise copied once (and flagged `is_copied`), or refused with `BufferError` under
/// `copy=False`: byte strides that are not whole elements (gathered from the bytes), data not
/// aligned for its dtype (copied to aligned memory), non-native byte order (byte-swapped).
#[inline]
fn finish_exported(e: Exported, copy: Option<bool>) -> PyResult<TensorView> {
    // The common case first, without moving the view around (it is 184 bytes).
    let v = &e.view;
    if e.elements.is_none()
        && e.order == ByteOrder::Native
        && crate::layout::is_aligned(v.data_ptr() as usize, v.dtype().alignment(), v.numel())
    {
        return finish(e.view, copy);
    }
    finish_exported_by_copy(e, copy)
}

#[cold]
#[inline(never)]
fn finish_exported_by_copy(e: Exported, copy: Option<bool>) -> PyResult<TensorView> {
    let Exported {
        view,
        order,
        elements,
    } = e;
    let dtype = elements.unwrap_or(view.dtype());
    let misaligned =
        !crate::layout::is_aligned(view.data_ptr() as usize, dtype.alignment(), view.numel());
    let reason = if elements.is_some() {
        Some("byte strides that are not whole elements")
    } else if misaligned {
        Some("data not aligned for its dtype")
    } else if order == ByteOrder::Swapped {
        Some("data not in native byte order")
    } else {
        None
    };
    match reason {
        None => return finish(view, copy),
        Some(reason) if copy == Some(false) => {
            return Err(PyBufferError::new_err(format!(
                "{reason}: a copy is required but copy=False"
            )))
        }
        Some(_) => {}
    }
    let view = match elements {
        // The elements' bytes, gathered in C order, are the elements.
        Some(dtype) => {
            let bytes = view.to_contiguous(Order::C).map_err(to_py_err)?;
            let last = bytes.ndim() - 1;
            let typed = bytes.reinterpret(dtype).map_err(to_py_err)?;
            typed.squeeze_axis(last).map_err(to_py_err)?
        }
        None if misaligned && order == ByteOrder::Native => {
            view.to_contiguous(Order::C).map_err(to_py_err)?
        }
        None => view,
    };
    match order {
        ByteOrder::Native => Ok(view),
        ByteOrder::Swapped => view.to_contiguous_byteswapped(Order::C).map_err(to_py_err),
    }
}

/// Share any array-like: DLPack producers, the Arrow PyCapsule interface (`__arrow_c_array__`,
/// `__arrow_c_stream__`, several chunks joined by one copy; feature `arrow`), the buffer protocol,
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
    Bound::new(
        obj.py(),
        Tensor::from_import(import_any_keeping_producer(obj, copy)?),
    )
}

/// [`asarray`] without the borrow: for views that go straight into a `Tensor` or are checked
/// further before they are handed out.
pub(crate) fn import_any(obj: &Bound<'_, PyAny>, copy: Option<bool>) -> PyResult<TensorView> {
    import_any_keeping_producer(obj, copy).map(|imported| imported.view)
}

/// Host data that is not aligned for its dtype (a DLPack producer may hand it over; numpy does
/// for a `frombuffer` at an odd offset) copied to aligned memory, flagged, or refused under
/// `copy=False`: what `asarray` promises (typed access and most consumers need aligned
/// elements). `from_dlpack` takes the producer's tensor as given instead.
fn aligned(view: TensorView, copy: Option<bool>) -> PyResult<TensorView> {
    if !view.device().is_host_accessible()
        || crate::layout::is_aligned(
            view.data_ptr() as usize,
            view.dtype().alignment(),
            view.numel(),
        )
    {
        return Ok(view);
    }
    if copy == Some(false) {
        return Err(PyBufferError::new_err(
            "data not aligned for its dtype: a copy is required but copy=False",
        ));
    }
    view.to_contiguous(Order::C).map_err(to_py_err)
}

/// [`import_any`], with the producer of device memory (see [`Imported`]).
fn import_any_keeping_producer(obj: &Bound<'_, PyAny>, copy: Option<bool>) -> PyResult<Imported> {
    let py = obj.py();
    if let Ok(t) = obj.cast::<Tensor>() {
        if let Some(imported) = from_tensor(t, None, copy) {
            let mut imported = imported?;
            imported.view = aligned(imported.view, copy)?;
            return Ok(imported);
        }
    }
    // Aligned by construction (misaligned arrays take the protocols).
    if let Some(view) = numpy::view_of_ndarray(obj) {
        return finish(view, copy).map(Imported::plain);
    }
    // Python's own buffers speak no other protocol: straight to it, without the type cache.
    if obj.is_exact_instance_of::<PyMemoryView>()
        || obj.is_exact_instance_of::<PyByteArray>()
        || obj.is_exact_instance_of::<PyBytes>()
    {
        if let Some(held) = buffer::get_buffer(obj)? {
            return finish_exported(held, copy).map(Imported::plain);
        }
    }
    let info = exchange::type_info(obj)?;
    let mut dlpack_error = None;
    if info.api.is_some() || info.has_dlpack || capsule::is_capsule(obj) {
        match dlpack_view(obj, info, None, copy) {
            Ok(Some(imported)) => {
                return Ok(Imported {
                    view: aligned(finish(imported.view, copy)?, copy)?,
                    producer: imported.producer,
                })
            }
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
        return finish_exported(held, copy).map(Imported::plain);
    }
    #[cfg(feature = "arrow")]
    if let Some(view) = arrow::arrow_view(obj, copy)? {
        return finish(view, copy).map(Imported::plain);
    }
    if let Some(held) = array_interface::get_interface(obj)? {
        return finish_exported(held, copy).map(Imported::plain);
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
/// `dlbridge.Tensor`, ...) or `__arrow_c_stream__` (pyarrow `ChunkedArray`; more than one chunk
/// is joined by one copy, `is_copied`, which `copy=Some(false)` refuses with `BufferError`; see
/// [`from_arrow_chunks`] for one tensor per chunk). `arrow.fixed_shape_tensor` columns give
/// `[rows, *shape]`. The result is read-only and keeps
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

/// One tensor per chunk of an Arrow stream (`__arrow_c_stream__`: a pyarrow `ChunkedArray`,
/// `Table` column, `RecordBatchReader` of one column), each shared without copying; one tensor
/// for an `__arrow_c_array__` producer; none for an empty stream. Read-only, keeping the
/// producer's buffers alive. `copy` as for [`from_arrow`], per chunk.
#[cfg(feature = "arrow")]
#[cfg_attr(docsrs, doc(cfg(feature = "arrow")))]
pub fn from_arrow_chunks(obj: &Bound<'_, PyAny>, copy: Option<bool>) -> PyResult<Vec<TensorView>> {
    import_arrow_chunks(obj, copy)?
        .into_iter()
        .map(|view| borrow::shared(obj.py(), view))
        .collect()
}

/// [`from_arrow_chunks`] as a list of Python `Tensor`s (what the `dlbridge` module returns).
#[cfg(feature = "arrow")]
#[cfg_attr(docsrs, doc(cfg(feature = "arrow")))]
pub fn from_arrow_chunks_tensors<'py>(
    obj: &Bound<'py, PyAny>,
    copy: Option<bool>,
) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    let py = obj.py();
    let tensors = import_arrow_chunks(obj, copy)?
        .into_iter()
        .map(|view| Bound::new(py, Tensor::from_view(view)))
        .collect::<PyResult<Vec<_>>>()?;
    pyo3::types::PyList::new(py, tensors)
}

#[cfg(feature = "arrow")]
fn import_arrow_chunks(obj: &Bound<'_, PyAny>, copy: Option<bool>) -> PyResult<Vec<TensorView>> {
    match arrow::arrow_chunk_views(obj, copy)? {
        Some(views) => views.into_iter().map(|v| finish(v, copy)).collect(),
        None => Err(PyTypeError::new_err(format!(
            "{} implements neither __arrow_c_array__ nor __arrow_c_stream__",
            obj.get_type().name()?
        ))),
    }
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
