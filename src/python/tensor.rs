//! `dlbridge.Tensor`: a [`TensorView`] as a Python object, and a producer for every protocol.

use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};

use dlpark::ffi::{
    DLManagedTensorVersioned, DLPackExchangeAPI, DLPackExchangeAPIHeader, DLPackVersion, DLTensor,
};

use super::borrow::SharedBorrow;
use super::buffer::BufferOwner;
use super::device::device_tuple;
use super::errors::to_py_err;
use super::runtime::PyObjectOwner;
use super::{capsule, exchange, pickle};
use crate::{DType, DTypeCode, Device, DeviceType, ManagedTensorVersioned, Order, TensorView};

/// A strided tensor shared without copying (see the module docs).
#[pyclass(frozen, weakref, module = "dlbridge", name = "Tensor")]
pub struct Tensor {
    pub(crate) view: TensorView,
    /// For memory outside the CPU imported from a Python producer: that producer, which
    /// `__dlpack__` asks again so the consumer's stream reaches the code owing the sync.
    pub(crate) producer: Option<Py<PyAny>>,
    /// Shape then strides as `i64`, built on first use by the exchange API's borrowed
    /// `DLTensor` export, which must point at storage living as long as the object.
    dims: OnceLock<Box<[i64]>>,
    /// Whether this object counts as a writable alias of its memory for the rest of its life:
    /// set by the exports that have no release hook (`__array_interface__`, the exchange
    /// API's borrowed `DLTensor`), whose consumers keep the object alive instead.
    alias_for_life: AtomicBool,
}

impl Drop for Tensor {
    fn drop(&mut self) {
        if *self.alias_for_life.get_mut() {
            // Before the view's handle goes (the alias was counted on it).
            self.view.owner.end_writable_export();
        }
    }
}

impl Tensor {
    /// `__dlpack__` of device memory with a Python producer: the producer answers the request.
    /// Unless it was asked for a copy or another device, its capsule must describe exactly
    /// this tensor (a producer whose tensor has changed since, by torch's `set_` say, would
    /// otherwise hand the consumer other memory than this tensor's).
    fn ask_producer<'py>(
        &self,
        producer: &Bound<'py, PyAny>,
        stream: Option<&Bound<'py, PyAny>>,
        max_version: Option<&Bound<'py, PyAny>>,
        dl_device: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = producer.py();
        let kwargs = PyDict::new(py);
        // Only what the consumer gave: a producer without a keyword still takes the rest.
        if let Some(stream) = stream {
            kwargs.set_item(pyo3::intern!(py, "stream"), stream)?;
        }
        if let Some(max_version) = max_version {
            kwargs.set_item(pyo3::intern!(py, "max_version"), max_version)?;
        }
        if let Some(dl_device) = dl_device {
            kwargs.set_item(pyo3::intern!(py, "dl_device"), dl_device)?;
        }
        if let Some(copy) = copy {
            kwargs.set_item(pyo3::intern!(py, "copy"), copy)?;
        }
        let cap = producer.call_method(pyo3::intern!(py, "__dlpack__"), (), Some(&kwargs))?;
        let elsewhere = match dl_device {
            None => false,
            Some(dev) => {
                dev.extract::<(i32, i32)>().ok()
                    != Some((self.view.device().kind.0, self.view.device().id))
            }
        };
        if copy != Some(true) && !elsewhere && !capsule::describes(&cap, &self.view)? {
            return Err(PyBufferError::new_err(
                "the producer's tensor no longer describes this tensor's memory (it was \
                 changed in place since the import); import it again",
            ));
        }
        Ok(cap)
    }

    pub(crate) fn from_view(view: TensorView) -> Tensor {
        Tensor {
            view,
            producer: None,
            dims: OnceLock::new(),
            alias_for_life: AtomicBool::new(false),
        }
    }

    pub(crate) fn from_import(imported: super::import::Imported) -> Tensor {
        Tensor {
            view: imported.view,
            producer: imported.producer,
            dims: OnceLock::new(),
            alias_for_life: AtomicBool::new(false),
        }
    }

    /// Clear the memory's reader marks when this object's view holds its only handle: no
    /// reference made through any view of it can live then, since this object never lends its
    /// view to Rust code (imports take a handle of their own). Called before writable exports,
    /// with the GIL held, which every path that could clone the view holds too.
    #[inline(always)]
    pub(crate) fn settle_reads(&self) {
        self.view.owner.forget_shared_reads_if_unique();
    }

    /// Whether an export with no release hook may hand the memory out writably: the tensor is
    /// writable and now counts as a writable alias for its life (see `alias_for_life`), which
    /// fails while safe Rust may hold shared references to the memory.
    pub(crate) fn writable_for_life(&self) -> bool {
        if self.view.is_read_only() {
            return false;
        }
        if self.alias_for_life.load(Ordering::Acquire) {
            return true;
        }
        self.settle_reads();
        if !self.view.owner.try_begin_writable_export() {
            return false;
        }
        if self.alias_for_life.swap(true, Ordering::AcqRel) {
            // Counted by another thread meanwhile: once is enough.
            self.view.owner.end_writable_export();
        }
        true
    }

    /// Shape then strides as `i64`, stable for the lifetime of `self`.
    pub(crate) fn dims_i64(&self) -> &[i64] {
        self.dims.get_or_init(|| {
            self.view
                .shape()
                .iter()
                .map(|&n| n as i64)
                .chain(self.view.strides().iter().map(|&s| s as i64))
                .collect()
        })
    }
}

/// The arguments of `_rebuild_tensor` (see the `pickle` module).
type PickledArgs<'py> = (
    Bound<'py, PyAny>,
    (u8, u8, u16),
    Vec<usize>,
    Vec<isize>,
    u64,
);

/// `pickle.PickleBuffer`.
fn pickle_buffer_type(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    TYPE.import(py, "pickle", "PickleBuffer")
}

/// `dlbridge._rebuild_tensor`, the unpickler of every dlbridge tensor, whichever extension
/// made it (their `Tensor` types differ; the reconstructor must be importable by name).
fn rebuild_function(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static REBUILD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    REBUILD
        .import(py, "dlbridge", "_rebuild_tensor")
        .cloned()
        .map_err(|e| {
            let err = pyo3::exceptions::PyTypeError::new_err(
                "pickling a dlbridge tensor needs the `dlbridge` Python module, whose \
                 _rebuild_tensor unpickles it",
            );
            err.set_cause(py, Some(e));
            err
        })
}

/// Unpickle a tensor (the reconstructor `Tensor.__reduce_ex__` names): view `data`, any
/// contiguous buffer, as the pickled tensor without copying. Exposed by the `dlbridge` module
/// as `_rebuild_tensor`.
#[pyfunction]
#[pyo3(name = "_rebuild_tensor", signature = (data, dtype, shape, strides, flags, /))]
pub fn rebuild_tensor(
    data: &Bound<'_, PyAny>,
    dtype: (u8, u8, u16),
    shape: Vec<usize>,
    strides: Vec<isize>,
    flags: u64,
) -> PyResult<Tensor> {
    pickle::rebuild(data, dtype, shape, strides, flags).map(Tensor::from_view)
}

/// The struct-module format string of a dtype, for the buffer protocol.
fn buffer_format(dtype: DType) -> Option<&'static CStr> {
    Some(match dtype {
        DType::BOOL => c"?",
        DType::I8 => c"b",
        DType::U8 => c"B",
        DType::I16 => c"h",
        DType::U16 => c"H",
        DType::I32 => c"i",
        DType::U32 => c"I",
        DType::I64 => c"q",
        DType::U64 => c"Q",
        DType::F16 => c"e",
        DType::F32 => c"f",
        DType::F64 => c"d",
        DType::C64 => c"Zf",
        DType::C128 => c"Zd",
        _ => return None,
    })
}

/// numpy's `typestr` for a dtype in native byte order, or `None` when numpy has no such type.
fn typestr(dtype: DType) -> Option<String> {
    let order = if cfg!(target_endian = "little") {
        '<'
    } else {
        '>'
    };
    let size = dtype.itemsize()?;
    if dtype.lanes() != 1 {
        return None;
    }
    let kind = match dtype.code() {
        DTypeCode::Bool => 'b',
        DTypeCode::Int => 'i',
        DTypeCode::UInt => 'u',
        DTypeCode::Float => 'f',
        DTypeCode::Complex => 'c',
        _ => return None,
    };
    let order = if size == 1 { '|' } else { order };
    Some(format!("{order}{kind}{size}"))
}

/// Python's spelling of a tuple of numbers: `(3,)`, `(2, 3)`, `()`.
fn py_tuple<T: std::fmt::Display>(items: &[T]) -> String {
    let inner: Vec<String> = items.iter().map(|x| x.to_string()).collect();
    match inner.len() {
        1 => format!("({},)", inner[0]),
        _ => format!("({})", inner.join(", ")),
    }
}

/// The array API's rules for `__dlpack__(stream=...)` on a tensor of `device` that needs no
/// synchronisation: CPU takes only `None`; CUDA takes `None`, `-1`, `1`, `2` or a stream
/// handle above 2 (0 is ambiguous); ROCm takes `None`, `-1`, `0` or a handle above 2; other
/// devices take `None` or an int.
fn check_stream(device: Device, stream: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let Some(stream) = stream.filter(|s| !s.is_none()) else {
        return Ok(());
    };
    if device == Device::CPU {
        return Err(PyValueError::new_err(
            "stream must be None for a CPU tensor (CPU has no streams)",
        ));
    }
    let value: i64 = stream.extract().map_err(|_| {
        PyTypeError::new_err(format!("stream must be None or an int, not {stream}"))
    })?;
    let refused = match device.kind {
        DeviceType::CUDA | DeviceType::CUDA_HOST | DeviceType::CUDA_MANAGED => value == 0,
        DeviceType::ROCM | DeviceType::ROCM_HOST => value == 1 || value == 2,
        _ => false,
    };
    if refused || value < -1 {
        return Err(PyValueError::new_err(format!(
            "stream {value} is not valid for a tensor on {device}"
        )));
    }
    Ok(())
}

/// Parse a `(device_type, device_id)` request.
fn is_cpu_request(dl_device: &Bound<'_, PyAny>) -> PyResult<bool> {
    let (kind, id): (i32, i32) = dl_device.extract().map_err(|_| {
        PyValueError::new_err("dl_device must be a (device_type, device_id) tuple of ints")
    })?;
    Ok(Device::from_dlpack(dlpark::ffi::DLDevice {
        device_type: dlpark::ffi::DLDeviceType(kind as u32),
        device_id: id,
    }) == Device::CPU)
}

#[pymethods]
impl Tensor {
    /// Python's garbage collector: the Python objects this tensor's memory owner holds (the
    /// object behind `__array_interface__`, a buffer exporter, ...), so that cycles through
    /// tensors are collected. No `__clear__`: a tensor never refers to itself, so every cycle
    /// runs through another object the collector can clear, and a tensor's memory stays valid
    /// for as long as the tensor exists.
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Some(producer) = &self.producer {
            visit.call(producer)?;
        }
        visit_python_objects(self.view.owner(), &visit)
    }

    /// The extent of each dimension.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.view.shape())
    }

    /// The step of each dimension, in elements.
    #[getter]
    fn strides<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.view.strides())
    }

    /// The numpy-style dtype name ("float32", "bfloat16", "bool", ...).
    #[getter]
    fn dtype(&self) -> String {
        self.view.dtype().name()
    }

    /// `(device_type, device_id)` as plain ints.
    #[getter]
    fn device(&self) -> (i32, i32) {
        let d = self.view.device();
        (d.kind.0, d.id)
    }

    /// Number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.view.ndim()
    }

    /// Bytes of the elements if laid out densely.
    #[getter]
    fn nbytes(&self) -> usize {
        self.view.nbytes()
    }

    /// True when nobody may write through this tensor.
    #[getter]
    fn readonly(&self) -> bool {
        self.view.is_read_only()
    }

    /// True when the memory is a fresh copy made for this tensor.
    #[getter]
    fn is_copied(&self) -> bool {
        self.view.is_copied()
    }

    /// Address of the first element.
    #[getter]
    fn data_ptr(&self) -> usize {
        self.view.data_ptr() as usize
    }

    fn __repr__(&self) -> String {
        let d = self.view.device();
        format!(
            "dlbridge.Tensor(shape={}, strides={}, dtype={}, device=({}, {}), readonly={})",
            py_tuple(self.view.shape()),
            py_tuple(self.view.strides()),
            self.view.dtype(),
            d.kind.0,
            d.id,
            if self.view.is_read_only() {
                "True"
            } else {
                "False"
            }
        )
    }

    /// Export as a DLPack capsule (array API semantics).
    ///
    /// Device tensors: one imported from a Python producer hands the whole request (`stream`,
    /// `max_version`, `dl_device`, `copy`) to that producer's `__dlpack__` and returns its
    /// capsule, so the producer synchronises with the consumer's stream as it owes. Other device
    /// tensors (made in Rust, or imported from a bare capsule) were made ready by their creator:
    /// `stream` is checked as the array API defines it and otherwise needs no work.
    #[pyo3(signature = (*, stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__<'py>(
        &self,
        py: Python<'py>,
        stream: Option<&Bound<'py, PyAny>>,
        max_version: Option<&Bound<'py, PyAny>>,
        dl_device: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let own = self.view.device();
        if own != Device::CPU {
            if let Some(producer) = &self.producer {
                return self.ask_producer(producer.bind(py), stream, max_version, dl_device, copy);
            }
        }
        check_stream(own, stream)?;
        if let Some(dev) = dl_device {
            let same = match dev.extract::<(i32, i32)>() {
                Ok((kind, id)) => kind == own.kind.0 && id == own.id,
                Err(_) => own == Device::CPU && is_cpu_request(dev)?,
            };
            if !same {
                return Err(PyBufferError::new_err(format!(
                    "unsupported dl_device {dev}: this tensor lives on {own} and dlbridge does \
                     not move data between devices"
                )));
            }
        }
        let versioned = match max_version {
            None => false,
            Some(v) => {
                let major = v
                    .cast::<PyTuple>()
                    .ok()
                    .filter(|t| t.len() == 2)
                    .and_then(|t| t.get_borrowed_item(0).ok()?.extract::<i64>().ok())
                    .ok_or_else(|| {
                        PyValueError::new_err("max_version must be a (major, minor) tuple of ints")
                    })?;
                major >= 1
            }
        };
        // Device memory is refused by the copy (BufferError): dlbridge never reads it.
        let copied = match copy {
            Some(true) => Some(self.view.to_contiguous(Order::C).map_err(to_py_err)?),
            _ => None,
        };
        if versioned {
            // A copy made for this export goes out as its sole owner, so it carries IS_COPIED.
            let managed = match copied {
                Some(copied) => copied.into_dlpack_versioned(),
                None => {
                    self.settle_reads();
                    self.view.to_dlpack_versioned()
                }
            };
            capsule::versioned_capsule(py, managed)
        } else {
            // A read-only tensor cannot go out as legacy (no flag for it); that is a BufferError
            // whatever `copy` says, unless `copy=True` made a writable copy above.
            let view = match copied.as_ref() {
                Some(copied) => copied,
                None => {
                    self.settle_reads();
                    &self.view
                }
            };
            let managed = view.to_dlpack_legacy().map_err(to_py_err)?;
            capsule::legacy_capsule(py, managed)
        }
    }

    /// Pickle support (see the `pickle` module of this crate for the format). Under protocol 5
    /// the data is one `PickleBuffer` over this tensor's own memory (a C-order copy first when
    /// the tensor is neither C- nor F-contiguous), which a `buffer_callback` sends out of band;
    /// protocols 2 to 4 copy it in-band. Unpickling needs the `dlbridge` Python module, whose
    /// `_rebuild_tensor` views the buffer it is given. Device memory raises `BufferError`.
    #[pyo3(signature = (protocol, /))]
    fn __reduce_ex__<'py>(
        &self,
        py: Python<'py>,
        protocol: i32,
    ) -> PyResult<(Bound<'py, PyAny>, PickledArgs<'py>)> {
        let p = pickle::payload(&self.view)?;
        let data = if protocol >= 5 {
            let bytes = Bound::new(py, Tensor::from_view(p.bytes))?;
            pickle_buffer_type(py)?.call1((bytes,))?
        } else {
            pickle::in_band(py, &p.bytes)?.into_any()
        };
        Ok((
            rebuild_function(py)?,
            (data, p.dtype, p.shape, p.strides, p.flags),
        ))
    }

    /// `(DLDeviceType, device_id)`.
    fn __dlpack_device__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        device_tuple(py, self.view.device())
    }

    /// The Arrow PyCapsule interface: an `"arrow_schema"` capsule of the tensor's Arrow field
    /// (1-D: the primitive type; N-D: `arrow.fixed_shape_tensor` with its metadata).
    #[cfg(feature = "arrow")]
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        super::arrow::schema_capsule(py, &self.view)
    }

    /// The Arrow PyCapsule interface: `("arrow_schema", "arrow_array")` capsules over the same
    /// memory (`pa.array(t)` is zero-copy); non-dense layouts and booleans are copied to C
    /// order. `requested_schema` may only relabel the same storage (name, nullability,
    /// extension metadata); other types raise `NotImplementedError` (cast after import).
    #[cfg(feature = "arrow")]
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        super::arrow::array_capsules(py, &self.view, requested_schema)
    }

    /// The Arrow PyCapsule stream interface: an `"arrow_array_stream"` capsule of one record
    /// batch with one column, `tensor` (primitive for 1-D, `arrow.fixed_shape_tensor` for N-D,
    /// rows on the first axis), over the same memory; so `pa.RecordBatchReader.from_stream(t)`,
    /// `polars.Series(t)` and DuckDB read the tensor (polars' `DataFrame(t)` takes
    /// `__arrow_c_array__` for a record batch, which a tensor is not). `requested_schema` is a hint this
    /// producer does not follow (the interface allows that; the consumer casts).
    #[cfg(feature = "arrow")]
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = requested_schema;
        super::arrow::stream_capsule(py, &self.view)
    }

    /// The DLPack C exchange API (a `"dlpack_exchange_api"` capsule on the type).
    #[classattr]
    fn __dlpack_c_exchange_api__(py: Python<'_>) -> PyResult<Py<PyAny>> {
        exchange::table_capsule(py, &API.0)
    }

    /// numpy's array interface (version 3): zero-copy for numpy; numpy keeps this object alive.
    /// Raises `TypeError` for dtypes numpy has no type for (bfloat16, float8, ...).
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let v = &self.view;
        let typestr = typestr(v.dtype()).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "numpy has no dtype for {}; use np.from_dlpack or ml_dtypes",
                v.dtype()
            ))
        })?;
        v.require_host("__array_interface__ needs host memory")
            .map_err(to_py_err)?;
        let size = v.itemsize().unwrap_or(1) as isize;
        let d = PyDict::new(py);
        d.set_item("version", 3)?;
        d.set_item("shape", PyTuple::new(py, v.shape())?)?;
        d.set_item("typestr", &typestr)?;
        d.set_item("descr", PyList::new(py, [("", typestr.as_str())])?)?;
        if v.is_c_contiguous() {
            d.set_item("strides", py.None())?;
        } else {
            let strides: Vec<isize> = v.strides().iter().map(|&s| s * size).collect();
            d.set_item("strides", PyTuple::new(py, strides)?)?;
        }
        // numpy keeps this object alive as the array's base, and says nothing when it is done:
        // a writable answer makes the object a writable alias for the rest of its life.
        d.set_item("data", (v.data_ptr() as usize, !self.writable_for_life()))?;
        Ok(d)
    }

    /// The buffer protocol: formats for every dtype `struct` can express, strided views when
    /// the request accepts strides, writable only when the tensor is.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        let v = &this.view;
        if view.is_null() {
            return Err(PyBufferError::new_err("NULL Py_buffer"));
        }
        let want_writable = flags & ffi::PyBUF_WRITABLE != 0;
        if want_writable && v.is_read_only() {
            return Err(PyBufferError::new_err("the tensor is read-only"));
        }
        v.require_host("the buffer protocol needs host memory")
            .map_err(to_py_err)?;
        let (Some(format), Some(itemsize)) = (buffer_format(v.dtype()), v.itemsize()) else {
            return Err(PyBufferError::new_err(format!(
                "{} has no struct format; use DLPack",
                v.dtype()
            )));
        };
        let want_strides = flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES;
        let want_shape = flags & ffi::PyBUF_ND == ffi::PyBUF_ND;
        let c_contig = v.is_c_contiguous();
        let check = |bit: c_int, ok: bool, what: &str| {
            if flags & bit == bit && !ok {
                Err(PyBufferError::new_err(format!("the tensor is not {what}")))
            } else {
                Ok(())
            }
        };
        check(ffi::PyBUF_C_CONTIGUOUS, c_contig, "C-contiguous")?;
        check(ffi::PyBUF_F_CONTIGUOUS, v.is_f_contiguous(), "F-contiguous")?;
        check(
            ffi::PyBUF_ANY_CONTIGUOUS,
            c_contig || v.is_f_contiguous(),
            "contiguous",
        )?;
        if !want_strides && !c_contig {
            return Err(PyBufferError::new_err(
                "the tensor is not C-contiguous; request strides (PyBUF_STRIDES)",
            ));
        }
        if v.nbytes() > isize::MAX as usize {
            return Err(PyBufferError::new_err(
                "the view is too large for the buffer protocol (len overflows Py_ssize_t)",
            ));
        }
        // Writable buffers are writable aliases of the memory until released: counted, and
        // refused (read-only when the consumer accepts that) while safe Rust may hold shared
        // references to the memory. The last step that can fail.
        let writable = !v.is_read_only() && {
            this.settle_reads();
            v.owner.try_begin_writable_export()
        };
        if want_writable && !writable {
            return Err(to_py_err(crate::Error::SharedReaders));
        }
        // Shape then strides (bytes), then whether the buffer counts as an alias; freed by
        // __releasebuffer__.
        let dims: Box<[ffi::Py_ssize_t]> = v
            .shape()
            .iter()
            .map(|&n| n as ffi::Py_ssize_t)
            .chain(v.strides().iter().map(|&s| s * itemsize as isize))
            .chain(std::iter::once(ffi::Py_ssize_t::from(writable)))
            .collect();
        let ndim = v.ndim();
        let dims = Box::into_raw(dims);
        let base = dims.cast::<ffi::Py_ssize_t>();
        // SAFETY: `view` is the caller's Py_buffer to fill (non-null, checked); `dims` is a live
        // allocation of 2 * ndim + 1 entries released in __releasebuffer__ via `internal`; the
        // format is a static C string never written through; `obj` gets a new reference that
        // CPython releases with the buffer, keeping the tensor (and its memory) alive.
        unsafe {
            (*view).buf = v.data_ptr().cast_mut().cast::<c_void>();
            (*view).obj = slf.clone().into_any().into_ptr();
            (*view).len = v.nbytes() as ffi::Py_ssize_t;
            (*view).itemsize = itemsize as ffi::Py_ssize_t;
            (*view).readonly = c_int::from(!writable);
            // Without PyBUF_ND the consumer sees a flat run of `len` bytes.
            (*view).ndim = if want_shape { ndim as c_int } else { 1 };
            (*view).format = if flags & ffi::PyBUF_FORMAT != 0 {
                format.as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).shape = if want_shape && ndim > 0 {
                base
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if want_strides && ndim > 0 {
                base.add(ndim)
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = dims.cast::<c_void>();
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, view: *mut ffi::Py_buffer) {
        // SAFETY: `view` was filled by __getbuffer__, whose `internal` is the boxed dims slice
        // of 2 * ndim + 1 entries; it is freed exactly once, here.
        unsafe {
            let internal = (*view).internal.cast::<ffi::Py_ssize_t>();
            if !internal.is_null() {
                let len = 2 * self.view.ndim() + 1;
                let dims = Box::from_raw(std::ptr::slice_from_raw_parts_mut(internal, len));
                if dims[len - 1] != 0 {
                    // The buffer was a writable alias; the tensor's handle outlives it.
                    self.view.owner.end_writable_export();
                }
                (*view).internal = std::ptr::null_mut();
            }
        }
    }
}

/// Report to Python's garbage collector every Python object `owner` holds a strong reference
/// to, so that reference cycles through tensors are collected (`tp_traverse`).
fn visit_python_objects(
    owner: &crate::Owner,
    visit: &pyo3::PyVisit<'_>,
) -> Result<(), pyo3::PyTraverseError> {
    let mut result = Ok(());
    owner.visit(&mut |owner| {
        if result.is_err() {
            return;
        }
        if let Some(held) = owner.value_ref::<PyObjectOwner>() {
            result = held.object().map_or(Ok(()), |obj| visit.call(obj));
        } else if let Some(held) = owner.value_ref::<BufferOwner>() {
            result = held.traverse(visit);
        } else if let Some(held) = owner.value_ref::<SharedBorrow>() {
            result = held.object().map_or(Ok(()), |obj| visit.call(obj));
        }
    });
    result
}

// ---------------------------------------------------------------------------------------------
// The DLPack C exchange API of `Tensor`
// ---------------------------------------------------------------------------------------------

/// The table is plain function pointers and a null `prev_api`: safe to share between threads.
#[repr(transparent)]
struct StaticApi(DLPackExchangeAPI);

// SAFETY: the table is immutable, its only pointer (`prev_api`) is null, and every function it
// points to may be called from any thread (they take the GIL contract from the caller).
unsafe impl Sync for StaticApi {}

/// `Tensor`'s DLPack exchange table (version 1.3, CPU only).
static API: StaticApi = StaticApi(DLPackExchangeAPI {
    header: DLPackExchangeAPIHeader {
        version: DLPackVersion {
            major: crate::dlpack::DLPACK_VERSION.0,
            minor: crate::dlpack::DLPACK_VERSION.1,
        },
        prev_api: std::ptr::null_mut(),
    },
    managed_tensor_allocator: Some(exchange::managed_tensor_allocator),
    managed_tensor_from_py_object_no_sync: Some(managed_tensor_from_py_object),
    managed_tensor_to_py_object_no_sync: Some(managed_tensor_to_py_object),
    dltensor_from_py_object_no_sync: Some(dltensor_from_py_object),
    current_work_stream: Some(exchange::current_work_stream),
});

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
    exchange::entry(|py| {
        if out.is_null() {
            return Err(PyTypeError::new_err("NULL out pointer"));
        }
        // SAFETY: the exchange API contract: a live object of our type, GIL held.
        let t = unsafe { as_tensor(py, py_object) }?;
        let tensor = t.get();
        tensor.settle_reads();
        let managed = tensor.view.to_dlpack_versioned();
        // SAFETY: `out` is non-null (checked) and points to the caller's slot.
        unsafe { *out = managed.into_raw() };
        Ok(())
    })
}

unsafe extern "C" fn managed_tensor_to_py_object(
    tensor: *mut DLManagedTensorVersioned,
    out_py_object: *mut *mut c_void,
) -> c_int {
    exchange::entry(|py| {
        // SAFETY: the contract hands us ownership of `tensor` (stolen, even on failure: the
        // import below runs the deleter when it refuses the tensor).
        let managed = unsafe { ManagedTensorVersioned::from_raw(tensor) }
            .ok_or_else(|| PyTypeError::new_err("NULL managed tensor"))?;
        let view = TensorView::from_dlpack_versioned(managed).map_err(to_py_err)?;
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
    exchange::entry(|py| {
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
        // The consumer keeps the object alive while it uses the DLTensor, and says nothing
        // when done: the object counts as a writable alias for the rest of its life.
        if !tensor.writable_for_life() {
            return Err(to_py_err(crate::Error::SharedReaders));
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
